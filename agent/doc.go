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
// (their roles' logins) include; the proxy has already checked their roles
// against the node's labels. Every sshserver audit event (session start
// and end, exec, port forwarding, refusals) is passed to Config.SSH.Audit,
// if set, and sent to the Auth Service: refusals as access.denied, the
// rest as session events, with the client's address as source and the
// sshserver event type in the "event" field. Config.SSH.Recorder records
// terminal sessions.
//
// The node itself checks the login (a principal of the certificate), not
// the roles' node labels: agents may not read roles from the Auth Service,
// so label checks happen at the proxy. A client that can reach a direct
// port without the proxy is only checked for the login; restrict direct
// ports to the proxies' network, or set Config.SSH.Authorize.
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
