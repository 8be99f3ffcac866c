// Package tunnel implements reverse tunnels: an Agent inside a private
// network dials out to the cluster's proxies, and each proxy's Server opens
// streams back through the tunnel to the services the agent offers (SSH,
// databases, web applications), so nothing inside needs an open port.
//
// # Architecture
//
// An agent dials the proxy's tunnel address — the "sallyport-reversetunnel"
// ALPN route of the single TLS port (AgentConfig.TLSRouting), or the
// separate tunnel port (DefaultPort, 3024) — through a proxyconnect.Dialer
// by default, so HTTPS_PROXY and NO_PROXY are honoured. Behind a Layer-7
// load balancer that terminates TLS, the alpn.Dialer used with TLSRouting
// falls back to the WebSocket connection upgrade. The TLS connection is
// mutual: the agent presents a certificate issued by the cluster CA and
// verifies the proxy; the proxy names the agent from its verified
// certificate (ServerConfig.AgentID, the CommonName by default). The TLS
// connection then carries a yamux session.
//
// Behind a load balancer an agent keeps one tunnel to every proxy of the
// pool: each proxy tells its agents the pool's proxies (ID and address,
// Server.SetPeers), and the agent dials the address again — the balancer
// sends it somewhere — until it holds a tunnel to each listed ID, closing
// tunnels to proxies it already holds. Addresses are resolved at every dial;
// failed dials back off exponentially with jitter (AgentConfig.ReconnectMin,
// ReconnectMax). A proxy that receives a second tunnel from the same agent
// replaces (closes) the older, stale one.
//
// # Control protocol
//
// The agent opens the first stream of the session, the control stream.
// Every message is a frame:
//
//	version u8 (1) | type u8 | length u32 big-endian | JSON payload
//
// with at most MaxMessageSize bytes of payload. The handshake is agent-hello
// (the services the agent offers), proxy-hello (the proxy ID and the peer
// list) and accept (the agent keeps the tunnel; an agent that already holds
// a tunnel to that proxy ID closes it instead). Afterwards: heartbeats both
// ways every HeartbeatInterval (30 s by default, far below the 350-second
// idle timeout of cloud load balancers), a tunnel without any message for
// MissedHeartbeats intervals is closed; "services" when the agent's services
// change (Register, Deregister); "peers" when the pool changes; "drain"
// when the proxy shuts down gracefully.
//
// # Streams
//
// Every other stream is opened by the proxy (Server.Dial, DialFrom) and
// starts with a header:
//
//	version u8 | len u8 | service | len u8 | network | len u8 | client address
//
// The agent answers with a status (code u8 | len u8 | reason): OK, no such
// service, or refused (stream limit reached, local service unreachable,
// tunnel draining). Then the stream carries the client's bytes. On the agent
// the stream goes to the registered handler (Agent.Register) or is joined
// with a local address (AgentConfig.Services); the handler's conn reports
// the original client address as RemoteAddr. Both ends see a *Conn, a
// net.Conn with deadlines and CloseWrite.
//
// # Usage
//
// On the proxy:
//
//	srv, err := tunnel.NewServer(&tunnel.ServerConfig{ID: "proxy-1", TLSConfig: mtls, Peers: pool})
//	go srv.Serve(listener) // or srv.ServeConn(ctx, conn) from an alpn route
//	conn, err := srv.DialFrom(ctx, "node-1", "ssh", clientAddr)
//
// On the agent:
//
//	a, err := tunnel.NewAgent(&tunnel.AgentConfig{
//		ProxyAddrs: []string{"proxy.example.com:3024"},
//		TLSConfig:  hostCertConfig, // Certificates + RootCAs of the cluster CA
//		Services:   map[string]string{"db": "127.0.0.1:5432"},
//	})
//	a.Register("ssh", sshServer.HandleConn)
//	err = a.Run(ctx)
//
// # Lifecycle
//
// NewServer and NewAgent validate their configs (errors wrap
// ErrInvalidConfig). Server.Serve runs an accept loop; ServeConn serves one
// tunnel on the caller's goroutine. Server.Shutdown stops accepting, asks
// every agent to drain — the agent refuses new streams on that tunnel, lets
// the running ones finish, closes the tunnel and connects to the other
// proxies — and waits for the tunnels to close until its context ends, then
// closes what is left. Server.Close closes everything at once and waits for
// the server's goroutines. An Agent starts with Start or Run; Agent.Close
// closes its tunnels and streams and waits for its goroutines, including
// running handlers (which must return once their conn fails). A second
// Close returns an error wrapping net.ErrClosed. Stats returns counters
// (tunnels, reconnects, streams, bytes); events are logged to the injected
// *slog.Logger.
//
// # Errors
//
// Server.Dial fails with ErrAgentNotFound (the agent has no tunnel to this
// proxy), ErrNoService (the agent does not offer the service) or a
// *RefusedError wrapping ErrRefused (the agent refused the stream), and with
// ErrServerClosed once Shutdown or Close began. Malformed control messages
// and stream headers wrap ErrProtocol; an agent without a verified client
// certificate, or whose identity AgentID rejects, ErrUnauthenticated.
// Run returns ErrAgentClosed after Close.
//
// # Cancellation
//
// Cancelling the context of Dial aborts opening the stream and the header
// exchange (bounded by HandshakeTimeout as well), not the returned conn: use
// its deadlines. Cancelling the context of ServeConn closes that tunnel.
// Cancelling the context of Run closes the agent. Dials of the agent are
// bounded by HandshakeTimeout and stop at Close.
package tunnel
