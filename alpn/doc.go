// Package alpn is a TLS router for one port: it reads the ClientHello of
// each connection without consuming it and routes the connection by SNI
// and ALPN to a handler that either receives the raw TLS stream
// (passthrough) or a terminated *tls.Conn.
//
// It also holds the two wire helpers of TLS routing through load
// balancers: the "-ping" keepalive framing ([PingConn]) for long streams
// that cross balancers with idle timeouts, and the WebSocket connection
// upgrade ([Router.UpgradeHandler], [Dialer]) that carries ALPN protocols
// through Layer-7 balancers that terminate TLS and drop ALPN.
//
// # Usage
//
//	r, err := alpn.New(&alpn.Config{GetCertificate: certs.GetCertificate})
//	// A terminating route: the handler gets a *tls.Conn.
//	r.Handle(alpn.Route{
//		ALPN:      alpn.WithPing(alpn.ProtocolReverseTunnel),
//		TLSConfig: tunnelTLS, // e.g. mutual TLS with the cluster CA
//		Handler:   alpn.HandlerFunc(serveTunnel),
//	})
//	// A passthrough route: the TLS stream goes to the auth servers as is.
//	r.Handle(alpn.Route{ALPN: []string{alpn.ProtocolAuth}, Handler: alpn.Forward(nil, "auth:3025")})
//	// The web route (h2, http/1.1, no ALPN) goes to an existing server.
//	web, err := r.Listener(alpn.Route{Name: "web", ALPN: alpn.WebProtocols()})
//	mux.Handle(alpn.UpgradePath, r.UpgradeHandler())
//	go httpServer.ServeTLS(web, "", "") // httpServer.TLSConfig holds the web certificate
//	go r.Serve(listener)                 // any net.Listener: TCP, a mux listener, ...
//
// # Embedding
//
// The router does not own the process or the port: [Router.Serve] takes
// any net.Listener (a TCP listener, the TLS listener of a protocol
// multiplexer, several at once), [Router.ServeConn] routes a single conn
// that some other code accepted, and [Router.Listener] turns a route back
// into a net.Listener for an existing http.Server (Serve or ServeTLS) or
// any other server loop. An existing web server keeps its tls.Config:
// give the web route no TLSConfig and call ServeTLS, or give the route the
// server's tls.Config and call Serve. [Router.UpgradeHandler] is an
// http.Handler to mount on the existing mux. Config.GetCertificate lets
// terminating routes share a certificate source (such as
// autocert.Manager.GetCertificate) with the web server.
//
// # Routing
//
// A [Route] matches on SNI patterns (exact, or "*.domain" for one more
// label) and ALPN patterns (exact, "prefix*", or "" for a ClientHello
// without ALPN); routes are tried in the order they were added, the route
// without patterns (the default route) last. A ClientHello that matches no
// route closes the connection. The ALPN protocol that matched is
// Hello.Protocol; a terminating route without NextProtos negotiates it.
// For example, a terminating route for [ProtocolACME] whose TLSConfig has
// GetCertificate from an autocert.Manager answers ACME TLS-ALPN-01
// challenges on the router's port.
//
// Passthrough handlers get a [*Conn] that replays the peeked bytes and then
// reads the socket; it implements io.WriterTo and io.ReaderFrom so that
// io.Copy to or from a *net.TCPConn still splices ([Forward] and [Join] do
// that). Reading the ClientHello is bounded (Config.MaxHelloBytes) and has
// a deadline (Config.HandshakeTimeout), as is the handshake of
// terminating routes; at most Config.MaxHandshakes connections are in
// those phases at once.
//
// # Load balancers
//
// Behind a Layer-4 balancer (HAProxy mode tcp, nginx stream) the router
// sees the client's ClientHello and routes as usual. A PROXY protocol
// header is not read by the router: put a listener that strips it (such
// as the mux package's) in front of Serve.
//
// Behind a Layer-7 balancer that terminates TLS, ALPN does not reach the
// router. A [Dialer] notices (no protocol negotiated, the
// no_application_protocol alert, or the balancer's certificate failing
// verification against the cluster's roots), opens an HTTPS request to
// [UpgradePath] with "Upgrade: websocket" and the ALPN protocol as
// WebSocket subprotocol, and runs its TLS handshake inside the WebSocket.
// The web route's [Router.UpgradeHandler] feeds that stream back into the
// router, which routes its inner ClientHello; the inner TLS is end to end.
// The "-ping" variants ([Ping], [NewPingConn]) keep such streams alive
// across idle timeouts: both ends wrap the TLS conn after the handshake
// when the negotiated protocol ends in "-ping".
//
// # Lifecycle
//
// [New] validates the Config; routes can be added before or while serving.
// [Router.Serve] runs an accept loop per listener; [Router.ServeConn]
// routes one connection on the caller's goroutine. [Router.Shutdown] closes
// the listeners (including route listeners) and waits for handshakes and
// handlers to finish until its context ends, then closes what is left.
// [Router.Close] closes the listeners and every connection the router
// still owns, cancels handler contexts and waits for the router's
// goroutines; a second Close returns an error wrapping net.ErrClosed.
// Connections handed to a route listener's Accept belong to whoever
// accepted them (for example an http.Server, which its own Shutdown
// drains).
//
// # Errors
//
// Serve returns [ErrRouterClosed] after Shutdown or Close. ServeConn
// returns [ErrNoRoute], errors wrapping [ErrNotTLS] or [ErrBadHello] (and
// the I/O error, such as os.ErrDeadlineExceeded), or handshake errors;
// [Router.Stats] counts routed, unknown and failed connections. Handle and
// Listener return errors wrapping [ErrInvalidRoute]. The WebSocket layer
// wraps [ErrWebSocket]; a refused upgrade is an [*UpgradeError]; a Dialer in
// UpgradeNever mode returns [ErrALPNStripped] when a balancer dropped ALPN.
// Frames above the bounds fail with [ErrFrameTooLarge].
//
// # Cancellation
//
// Cancelling the context of ServeConn aborts the ClientHello read and the
// handshake at once (by moving the conn's deadline) and cancels the
// handler's context; handlers get a context that is also cancelled by
// Close and by Shutdown when its deadline passes. Cancelling the context of
// Dialer.DialContext aborts the dial, the handshakes and the upgrade, not
// the returned conn.
package alpn
