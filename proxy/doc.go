// Package proxy is the Proxy Service of a sallyport cluster as a library:
// the web API (ping and login), the SSH jump host for stock OpenSSH
// clients, the reverse-tunnel server that agents dial, and the TLS
// passthrough to the Auth Service, served on one port or three. An
// embedder runs it inside an existing Go program; the agent side is
// package agent.
//
//	svc, err := proxy.New(ctx, &proxy.Config{
//		AuthAddrs: []string{"auth.internal:3025"},
//		JoinToken: token, CAPin: pin,            // or Credentials: creds
//		PublicAddrs: []string{"proxy.example.com:443"},
//		ProxyProtocol: mux.ProxyRequired,        // behind a Layer-4 balancer
//		TrustedNetworks: []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8")},
//		Logger: logger,
//	})
//	go svc.ListenAndServe()                   // or svc.Serve(proxy.Listeners{Web: l})
//	...
//	svc.Shutdown(ctx)
//
// # Topology
//
// Users (OpenSSH, HTTPS clients) and agents reach the proxy, usually through
// a Layer-4 load balancer that sends a PROXY protocol v2 header. The proxy
// calls the Auth Service over mutual TLS with its own host identity: to log
// users in, to read roles, to heartbeat itself, to watch the live agents and
// to record audit events. Agents keep reverse tunnels to the proxy; a user's
// SSH connection to a node is carried as a stream of the node's tunnel, or
// dialed directly when the agent registered a direct address.
//
// # Listener modes and ports
//
// Multiplex (the default, TLS routing): everything on the web port (3080;
// 443 behind a balancer). Every listener is wrapped in a mux.Mux, which
// reads the PROXY header (Config.ProxyProtocol, Config.TrustedNetworks) and
// tells protocols apart. TLS connections go to an alpn.Router:
//
//	sallyport-auth          passthrough to the first answering AuthAddrs (mutual TLS stays end to end)
//	sallyport-reversetunnel agent tunnels (mutual TLS with host certificates)
//	sallyport-proxy-ssh     SSH inside TLS (for clients that can only dial TLS)
//	h2, http/1.1, none      the web API (Config.TLSConfig, or the host certificate)
//
// and plain SSH connections, recognised by their first bytes, go to the SSH
// jump host on the same port.
//
// Separate: the web port (3080) serves the web API and the sallyport-auth
// passthrough, 3023 serves SSH and 3024 serves tunnels; each port has its
// own mux for PROXY headers.
//
// # /webapi/ping
//
// GET /webapi/ping answers, without authentication, what clients and agents
// need before they log in or dial (PingResponse), with the field names of
// the Teleport Networking reference:
//
//	{
//	  "auth": {"type": "local", "second_factor": "optional"},
//	  "proxy": {
//	    "kube": {"enabled": false},
//	    "ssh": {
//	      "listen_addr": "10.0.0.5:3080", "tunnel_listen_addr": "10.0.0.5:3080",
//	      "web_listen_addr": "10.0.0.5:3080", "public_addr": "proxy.example.com:443",
//	      "ssh_public_addr": "proxy.example.com:443", "ssh_tunnel_public_addr": "proxy.example.com:443"
//	    },
//	    "db": {"postgres_listen_addr": "", "mysql_listen_addr": ""},
//	    "tls_routing_enabled": true
//	  },
//	  "server_version": "0.1.0", "min_client_version": "0.1.0",
//	  "cluster_name": "example.com", "dial_timeout": "10s"
//	}
//
// Listen addresses are the bound sockets. public_addr is the first of
// Config.PublicAddrs (with the web port when it has none); the others only
// become principals and SANs of the proxy's certificates. In separate mode
// ssh_public_addr and ssh_tunnel_public_addr carry the public host with the
// SSH and tunnel ports. Ping and ParsePing decode the answer.
//
// # Login
//
// POST /webapi/login with {"user", "password", "totp", "ttl"} calls the Auth
// Service's Login and answers LoginResponse: the SSH user certificate
// (ssh_cert), the X.509 certificate (tls_cert), the host CAs (host_cas)
// and known_hosts lines ("@cert-authority * ...") for the host CA.
//
// A client that holds its own keys sends their public halves and gets only
// certificates back: "ssh_public_key" (an authorized_keys line, for
// example id_ecdsa.pub from ssh-keygen) and "tls_public_key" (PEM PUBLIC
// KEY) or "csr" (PEM CERTIFICATE REQUEST). Allowed are Ed25519, ECDSA
// P-256/P-384 and RSA of 2048 to 8192 bits; the proxy checks them before
// it calls auth, and auth checks them again. For a key the client did not
// send the proxy makes one and returns it: an Ed25519 key
// (ssh_private_key, OpenSSH PEM) and a PKCS#8 key (tls_key). Errors answer
// {"error": "..."}: 400 malformed (including a refused key), 401 refused
// (the message never says which part was wrong), 429 rate-limited, 503
// auth unreachable.
//
// Failed logins are counted per client address (the one from the PROXY
// header when a trusted balancer sent it): after Config.LoginRateLimit
// failures in a minute the address gets 429 until its bucket refills.
// Every attempt is an audit event (user.login, user.login.failed) whose
// source is the client's address and whose fields name the proxy; the Auth
// Service records its own event too, with the proxy as source.
//
// # SSH
//
// The proxy is an SSH server with the host certificate it got when joining
// (principals: host ID, node name, public hosts). It accepts only user
// certificates of the cluster's user CA, whatever the login name given to
// it. A refused certificate (expired, not yet valid, of another cluster or
// CA) is explained to the client in an authentication banner, which
// OpenSSH prints before "Permission denied":
//
//	sallyport proxy: access denied: certificate expired at 2026-01-02T15:04:05Z; log in again
//
// and a connection that fails authentication is one access.denied event
// with the fields event=auth.failure, login and reason (every refused key's
// reason), the certificate's key ID as actor and the client's address as
// source. It offers AES ciphers only (GCM and CTR; chacha20-poly1305,
// OpenSSH's first choice, is slow in Go on amd64 and would be taken on
// every jump), and to a client that has AES-GCM only AES-GCM
// (OpenSSH would otherwise take AES-CTR with an HMAC,
// the slower of the two). It serves:
//
//   - "direct-tcpip" channels (ssh -J, ProxyJump, ssh -W): the target host is
//     a node name or host ID (optionally with ".<cluster>"); the port is
//     ignored.
//   - the subsystem "proxy:<node>:<port>" (ProxyCommand with ssh -s).
//
// The jump cannot see the login asked of the node, so the proxy authorises
// on labels (one of the user's roles, named in the certificate's
// sallyport-roles@sallyport extension, must grant a login and select the
// node's labels) and the node's SSH server checks the login and, by
// default, its own labels against the role rules carried in the SSH
// certificate (see package agent). A refused
// node fails the channel with "administratively prohibited: proxy: access
// denied: your roles do not allow node ..." and an access.denied event; an
// unknown node with "proxy: node not found: ...". Granted connections are
// access.granted events with the path taken (tunnel or direct). The
// original client address travels with the tunnel stream, so the node's
// session events carry it too.
//
// OpenSSH configuration for a user (files from /webapi/login; the proxy's
// SSH address is its web port in multiplex mode, else 3023):
//
//	Host proxy
//	    HostName proxy.example.com
//	    Port 3023
//	    HostKeyAlias proxy          # a principal of the proxy's host certificate
//	    ProxyJump none
//	Host *
//	    User root                   # the login on the nodes
//	    ProxyJump proxy
//	    IdentityFile ~/.sallyport/id_ed25519
//	    CertificateFile ~/.sallyport/id_ed25519-cert.pub
//	    UserKnownHostsFile ~/.sallyport/known_hosts   # the known_hosts of the login answer
//	    StrictHostKeyChecking yes
//
// then "ssh db01". With a ProxyCommand instead of ProxyJump:
//
//	ProxyCommand ssh -F ~/.sallyport/ssh_config proxy -s proxy:%h:%p
//
// # Caching and pools
//
// Agents and proxies are known from the Auth Service's presence watch
// (Client.WatchServers), kept whole in memory and replaced at every change.
// The live proxies (their announced tunnel addresses) become the tunnel
// server's peer list (tunnel.Server.SetPeers), so an agent given one proxy
// or a balancer keeps a tunnel to every proxy of the pool; a proxy only
// dials nodes whose agents have a tunnel to it (there is no proxy-to-proxy
// forwarding yet).
//
// Roles are cached too: reloaded every Config.RoleRefresh, and at most
// once a second when a user's roles do not allow a node (a role may have
// changed). While auth is unreachable all of it stays as it was, so SSH
// keeps working (logins need auth and answer 503).
//
// # Lifecycle
//
// New validates the Config and joins (Config.Credentials skips the join).
// Serve (or ListenAndServe) serves until Shutdown or Close and returns
// ErrServerClosed; it starts the heartbeat (Config.HeartbeatInterval), the
// agent watch and the role refresh. Shutdown stops accepting, lets web
// requests finish, waits for SSH connections, then asks agents to drain
// their tunnels (each step bounded by its ctx), and closes the rest,
// including auth passthrough connections, whose gRPC clients reconnect
// elsewhere. Close closes
// everything at once and waits for every goroutine; a second Shutdown or
// Close returns an error wrapping net.ErrClosed.
//
// # Errors
//
// New returns errors wrapping ErrInvalidConfig or the join's error
// (authapi.ErrPinMismatch, authapi.ErrAuthFailed, ...). DialNode returns
// errors wrapping ErrNodeNotFound, ErrAccessDenied or ErrNodeOffline. Serve
// returns ErrServerClosed. Web API errors are JSON ErrorResponse values.
//
// # Cancellation
//
// New's ctx bounds the join. DialNode's ctx bounds finding and dialing the
// node (at most Config.DialTimeout), not the returned conn. Shutdown's ctx
// bounds the drain. Connections end when Close is called.
package proxy
