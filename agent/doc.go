// Package agent runs a sallyport node inside a Go program: it joins the
// cluster with a token, serves SSH (package sshserver) with the host
// certificate it got, through a reverse tunnel to the proxies (package
// tunnel) or on a direct port, and announces itself and its labels to the
// Auth Service.
//
//	a, err := agent.New(ctx, &agent.Config{
//		ProxyAddr: "proxy.example.com:443",
//		JoinToken: token, CAPin: pin,
//		NodeName:  "db01",
//		Labels:    map[string]string{"env": "prod"},
//		SSH: sshserver.Config{Recorder: record}, // hooks and settings
//		Logger:    logger,
//	})
//	go a.Serve(ctx)
//	...
//	a.Shutdown(ctx)
//
// # Topology
//
// The agent dials out only. Every connection goes to Config.ProxyAddr
// through Config.Dialer, by default a proxyconnect.Dialer that honours
// HTTPS_PROXY, HTTP_PROXY and NO_PROXY, so an agent behind a corporate
// HTTP CONNECT proxy (with Basic authentication in the proxy URL) needs no
// other setting; the proxy's name is resolved by the HTTP proxy.
//
//  1. Join: a TLS connection with ALPN sallyport-auth, which the proxy
//     passes through to the Auth Service; the agent checks the cluster's CA
//     against Config.CAPin before it sends the token, and gets an X.509
//     and an SSH host certificate (principals: host ID, node name, the
//     hosts of Config.PublicAddrs).
//  2. Discovery: GET /webapi/ping on the proxy. With tls_routing_enabled the
//     tunnel goes to ProxyAddr itself (ALPN sallyport-reversetunnel, with
//     the WebSocket upgrade fallback behind TLS-terminating balancers);
//     otherwise to ssh_tunnel_public_addr (or ProxyAddr's host with the
//     port of tunnel_listen_addr).
//  3. Tunnel: a tunnel.Agent with mutual TLS; the SSH server is registered as
//     service "ssh" and serves each stream (ServeConn), whose RemoteAddr is
//     the original client's address.
//  4. Presence: the agent heartbeats (kind "agent", host ID, node name,
//     labels, direct addresses, service "ssh") every Config.HeartbeatInterval
//     through the same sallyport-auth route; proxies watch these records.
//
// Steps 1 and 4 (and audit events) use authapi.ALPNDialTLS: when a
// Layer-7 load balancer that terminates TLS sits in front of the proxy
// (the ALPN protocol is lost), they fall back to the proxy's WebSocket
// connection upgrade, like the tunnel, with the TLS handshake to auth (and
// its CA pin check) inside it. The balancer's certificate is verified with
// Config.ProxyRoots (nil: the system roots) and ProxyAddr's host name.
// Config.AuthAddrs makes steps 1 and 4 go to the Auth Service directly.
//
// # Direct mode
//
// With Config.DirectListener or Config.DirectAddr (port 3022 by
// convention) the agent serves SSH on that listener instead of a tunnel and
// announces Config.PublicAddrs (default: the listener's address); proxies
// dial it when the node has no tunnel to them.
//
// # SSH service
//
// Config.SSH is used as given except HostKey, HostCert, UserCAs,
// ClusterName, NodeName and Labels, which come from the identity and the
// Config. Users connect as a login that their certificate's principals
// (their roles' logins) include. Every sshserver audit event (session start
// and end, exec, port forwarding, refusals) is passed to Config.SSH.Audit,
// if set, and sent to the Auth Service: refusals as access.denied, the
// rest as session events, with the client's address as source and the
// sshserver event type in the "event" field. Config.SSH.Recorder records
// terminal sessions.
//
// The node checks the roles itself, so that a direct port reached without
// a proxy still applies them: every SSH action needs one of the roles in
// the user certificate's sallyport-rules@sallyport extension
// (authapi.ExtRules: the logins and node label selectors of the user's
// roles at login time) to grant the login and select Config.Labels
// (authapi.CheckSSHLogin); then Config.SSH.Authorize, when set, is asked
// too. A refusal fails the request on the client and is an access.denied
// audit event whose "reason" names the roles. Role changes reach a node
// with the user's next certificate (they are short-lived); the proxy,
// which reads roles from auth, applies them at once. Config.SkipRoleCheck
// turns the node's check off.
//
// # Lifecycle
//
// New validates the Config and joins (Config.Credentials skips the join).
// Serve(ctx) reads the ping (bounded by ctx), starts the tunnel or the direct
// listener and the heartbeat, and blocks until Shutdown or Close; then it
// returns ErrServerClosed. Shutdown stops new SSH connections and waits for
// running sessions until its ctx ends; Close ends everything at once. Both
// wait for the agent's goroutines; a second call returns an error wrapping
// net.ErrClosed. The tunnel reconnects on its own (with backoff) when the
// proxy goes away.
//
// # Errors
//
// New returns errors wrapping ErrInvalidConfig or the join's error
// (authapi.ErrPinMismatch when the pin does not match, authapi.ErrAuthFailed
// for a refused token). Serve returns the ping's error when the proxy
// cannot be read, and ErrServerClosed after Shutdown or Close.
//
// # Cancellation
//
// New's ctx bounds the join; Serve's ctx bounds the ping only. Sessions end
// with Shutdown or Close.
package agent
