// Package authapi is the Auth Service of a sallyport cluster: its gRPC API
// (protobuf definitions in proto/sallyport/auth/v1, generated code
// committed), the Server that implements it over a backend.Backend, and the
// Client that calls it.
//
// The Auth Service holds the cluster's certificate authorities, turns join
// tokens into host identities, logs users in and issues their short-lived
// certificates, keeps the presence of proxies and agents, and records audit
// events. It is stateless apart from the backend: any number of instances
// can serve one backend, behind a Layer-4 load balancer, on port 3025
// (DefaultPort).
//
// # Usage
//
//	b, _ := backend.Open(ctx, "sqlite:///var/lib/sallyport/state.db")
//	srv, err := authapi.New(ctx, &authapi.Config{Backend: b, ClusterName: "example"})
//	l, _ := net.Listen("tcp", ":3025")
//	go srv.Serve(l)
//	fmt.Println("join pin:", srv.CAPin())
//
//	// On a new host, with a token from `auth tokens add` and the pin:
//	creds, err := authapi.Join(ctx, authapi.JoinConfig{
//		Addrs: []string{"auth.example.com:3025"}, Token: tok, CAPin: pin,
//	})
//	c, err := authapi.NewClient(&authapi.ClientConfig{Addrs: addrs, Credentials: creds})
//	go c.Announce(ctx, &authv1.Server{Kind: "agent", Labels: labels}, 20*time.Second)
//
// # Certificate authorities
//
// Every cluster has three CAs, each with an X.509 key (ECDSA P-256, a
// self-signed certificate valid ten years) and an SSH key (Ed25519):
// "host" signs host identities, "user" signs user and admin identities, and
// "db" is for database server certificates. The first instance to start
// generates them and writes each one with backend Create; an instance that
// loses the race reads back the winner, so instances that start together
// agree on one set. The CAs live in the backend under /authorities/<type>
// with their private keys in the clear (PKCS#8): whoever can read the
// backend can impersonate the cluster, so protect it like a key store
// (file permissions for SQLite, a dedicated role for PostgreSQL).
// GetCertAuthorities returns the public halves to anyone.
//
// The pin of the cluster (Server.CAPin, CAPin) is "sha256:" followed by
// the hex SHA-256 of the host CA certificate's SubjectPublicKeyInfo.
//
// # Identity encoding
//
// Every X.509 certificate the service issues carries the holder's Identity
// in a non-critical extension, OID 1.3.6.1.4.1.64729.1.1 (IdentityOID; a
// private arc not registered with IANA),
// whose value is JSON: {"v":1,"kind":...,"name":...,"cluster":...,
// "roles":[...],"rules":[...],"principals":[...]}. Kind is "host", "user"
// or "admin"; for hosts, roles are the system roles ("agent", "proxy",
// "auth") and name is the host ID; for users, roles are role names and
// rules are the full roles at issue time, so that proxies and agents can
// authorise (Identity.CanLogin, CanDatabase, CanApp, MatchLabels) from the
// certificate alone. The subject repeats it for humans: CN is the name, O
// the roles, OU the kind. Host certificates also carry DNS and IP SANs for
// the host ID, "<host ID>.<cluster>", the node name and the public
// addresses, and are valid for both client and server authentication.
// Host identities chain to the host CA, user and admin identities to the
// user CA; IdentityFromState checks both, and the cluster.
//
// SSH certificates: host certificates have key ID = host ID and principals
// = host ID, "<host ID>.<cluster>", node name and public addresses; user
// certificates have key ID = user name, principals = the logins of the
// user's roles, and the extensions permit-pty, permit-port-forwarding,
// permit-agent-forwarding, permit-X11-forwarding and permit-user-rc. Both
// carry sallyport-cluster@sallyport (ExtCluster) and
// sallyport-roles@sallyport (ExtRoles, the comma-separated role names).
// User certificates also carry sallyport-rules@sallyport (ExtRules): the
// SSH part of each role at issue time (name, logins, node label selector)
// as compact JSON, {"v":1,"r":[{"n":"dev","l":["root"],"s":{"env":["dev"]}}]},
// at most MaxSSHRulesSize bytes (a user whose roles do not fit gets no
// certificate: InvalidArgument). With it a node decides from the
// certificate alone whether a login is granted on its own labels
// (CheckSSHLogin), so an agent reached directly, without a proxy, still
// applies the roles; a certificate without it is refused there.
//
// # Authorization
//
// Every RPC is checked by an interceptor against the caller's identity,
// taken from its verified client certificate. Joining hosts connect with no
// certificate ("none"). A certificate that is expired, or that chains to
// another cluster's CA, fails the TLS handshake itself ("tls": the call
// fails with Unavailable). The table (checked by TestAuthorization, which
// reads it from this file):
//
//	RPC                  none  user  agent proxy auth  admin expired foreign
//	Ping                 allow allow allow allow allow allow tls     tls
//	GetCertAuthorities   allow allow allow allow allow allow tls     tls
//	Join                 allow allow allow allow allow allow tls     tls
//	CompleteSignup       allow allow allow allow allow allow tls     tls
//	Login                allow allow allow allow allow allow tls     tls
//	RenewHostIdentity    deny  deny  allow allow allow deny  tls     tls
//	CreateJoinToken      deny  deny  deny  deny  deny  allow tls     tls
//	ListJoinTokens       deny  deny  deny  deny  deny  allow tls     tls
//	DeleteJoinToken      deny  deny  deny  deny  deny  allow tls     tls
//	UpsertUser           deny  deny  deny  deny  deny  allow tls     tls
//	ListUsers            deny  deny  deny  deny  deny  allow tls     tls
//	DeleteUser           deny  deny  deny  deny  deny  allow tls     tls
//	UpsertRole           deny  deny  deny  deny  deny  allow tls     tls
//	ListRoles            deny  deny  deny  allow allow allow tls     tls
//	DeleteRole           deny  deny  deny  deny  deny  allow tls     tls
//	SignIdentity         deny  deny  deny  deny  deny  allow tls     tls
//	Heartbeat            deny  deny  allow allow deny  deny  tls     tls
//	ListServers          deny  allow allow allow allow allow tls     tls
//	WatchServers         deny  deny  allow allow allow allow tls     tls
//	EmitAuditEvent       deny  deny  allow allow allow allow tls     tls
//	SearchAuditEvents    deny  deny  deny  deny  deny  allow tls     tls
//
// Denials answer PermissionDenied and are audit events (access.denied).
// Handlers add finer checks: a host may heartbeat only as itself and only
// in a role it holds.
//
// # Joining
//
// An admin creates a join token (roles, lifetime, number of uses); only
// its SHA-256 is stored (/tokens/<hash>), and the value is returned once.
// The joining host dials without a client certificate and checks the
// server's chain against the pin in VerifyConnection, so a mismatch ends
// the handshake before the token is sent (ErrPinMismatch). Wrong, expired
// and used-up tokens all answer Unauthenticated with one message; the
// reason goes only to the audit log (join.failed). Join, Login and
// CompleteSignup are rate-limited per source IP (Config.RateLimit; behind a
// Layer-4 load balancer without PROXY protocol every caller shares the
// balancer's address, so raise the limit there). A host
// renews its identity with RenewHostIdentity before it expires.
//
// # Users and roles
//
// Passwords are bcrypt hashes; TOTP (package totp, RFC 6238) is optional
// per user and refuses a replayed code. Login issues an X.509 and an SSH
// certificate, valid for the smallest of the request, the roles'
// MaxSessionTTL and Config.MaxUserCertTTL, for the caller's own public
// keys: an authorized_keys SSH key, and a PKIX public key or a PKCS#10
// request (whose signature proves possession; its subject is ignored).
// Allowed are Ed25519, ECDSA P-256 and P-384, and RSA of 2048 to 8192 bits
// (ValidateSSHPublicKey, ValidateTLSPublicKey), in bounded sizes
// (MaxPublicKeySize, MaxCSRSize). Client.Login sends the keys of
// LoginRequest and makes new ones only for those not given. A user
// created without a password gets a one-time sign-up token
// (CompleteSignup).
//
// # Presence
//
// Proxies and agents Heartbeat their kind, addresses, labels and services
// with a TTL; the record is a backend item with Expires, extended with
// KeepAlive when unchanged. WatchServers is fed by a backend watcher: it
// sends an INIT event with the full set, then PUT and DELETE events, and
// when the watcher falls behind or breaks it opens a new one and sends a
// fresh INIT, which replaces whatever the receiver had. Client.Announce
// keeps a host announced; Client.WatchServers keeps a complete view across
// stream breaks and auth restarts. ListServers answers a user with the
// proxies and only the agents one of the user's roles selects by node
// labels (Identity.CanReachNode); hosts and admins see every server.
//
// # Audit
//
// Joins, failed joins, renewals, logins, failed logins, certificates
// issued, access denials and admin changes are audit events
// (package audit), by default in the backend under /audit/events/, keyed
// by time. Proxies and agents add their own (EmitAuditEvent); admins
// search them by time range and type (SearchAuditEvents).
//
// # Lifecycle
//
// New loads or creates the CAs and returns a Server; Serve(l) serves one
// listener (call it for several) until Shutdown or Close, then returns
// ErrServerClosed. Shutdown(ctx) stops accepting, ends watch streams and
// waits for running calls (or for ctx, then closes everything); Close
// closes at once and waits for the handlers. A second Shutdown or Close
// returns an error wrapping net.ErrClosed. The backend is not closed.
//
// NewClient connects lazily; Close releases its connections.
//
// # Through a proxy
//
// Clients and joining hosts reach auth through a proxy's TLS router with
// ClientConfig.ALPN (or JoinConfig.ALPN) set to ALPN: the proxy passes the
// TLS stream through, so the client still verifies auth itself. When a
// Layer-7 load balancer terminates TLS in front of the proxy, ALPN is lost
// on the way; set DialTLS to ALPNDialTLS(&alpn.Dialer{...}) and the client
// falls back to the proxy's WebSocket connection upgrade, with its own TLS
// handshake to auth inside it.
//
// # Errors
//
// Handlers answer gRPC status codes: InvalidArgument, PermissionDenied,
// Unauthenticated (token, password or code refused), ResourceExhausted
// (rate limit), NotFound, Internal (details only in the server log).
// Client calls return *RPCError, which unwraps to ErrInvalidArgument,
// ErrAccessDenied, ErrAuthFailed, ErrRateLimited, ErrNotFound or
// ErrUnavailable, and to ErrPinMismatch when the pin did not match.
// The Client retries idempotent calls (reads, UpsertRole, Heartbeat,
// RenewHostIdentity, SignIdentity) on Unavailable with exponential
// backoff, spreading calls over the addresses that answer.
//
// # Cancellation
//
// Every call takes a context; cancelling it ends the call (and a watch
// stream). Server.New takes a context for reading the backend.
package authapi
