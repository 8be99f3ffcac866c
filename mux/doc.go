// Package mux serves several protocols on one port. It splits one
// net.Listener into one net.Listener per protocol, chosen by the first
// bytes each client sends: TLS, SSH, HTTP/1.x and PostgreSQL (SSLRequest,
// GSSENCRequest, CancelRequest or a plain StartupMessage), each optionally
// preceded by a PROXY protocol version 1 or 2 header from a trusted load
// balancer.
//
//	l, err := net.Listen("tcp", ":3080")
//	...
//	m, err := mux.New(l, &mux.Config{
//		ProxyProtocol:   mux.ProxyAccept,
//		TrustedNetworks: []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8")},
//		Logger:          logger,
//	})
//	...
//	go httpServer.Serve(tls.NewListener(m.Listener(mux.TLS), tlsConfig))
//	go sshServe(m.Listener(mux.SSH))
//	go pgProxy(m.Listener(mux.Postgres))
//	err = m.Serve() // until m.Close
//
// The connections the listeners return are *Conn values. They replay the
// bytes read during detection, report the client named by a trusted PROXY
// header as RemoteAddr (and the address the client connected to as
// LocalAddr; Conn.ProxyHeader returns the whole header), and pass
// io.WriterTo / io.ReaderFrom through to the socket, so io.Copy to or from
// a *net.TCPConn still uses splice(2) once the replayed bytes are written.
//
// Detect, ReadProxyHeader, ParseProxyHeader, ProxyHeader.AppendBinary and
// NewConn work on their own, for code that sniffs or accepts PROXY headers
// without a Mux.
//
// # Detection
//
// Each accepted connection is detected in a goroutine of its own, so a
// slow or silent client never holds up Accept for the others; at most
// Config.MaxDetecting connections are detected at once, and beyond that
// the Mux stops accepting (connections wait in the kernel's backlog)
// until one finishes. Detection reads only as many bytes as it needs and
// never waits for a byte that could not change the answer. It has a
// deadline (Config.DetectTimeout, 5 s by default) that covers the PROXY
// header and the first bytes of the protocol, and is cleared before the
// connection is handed over.
//
// Connections are closed, and counted in Stats, when their protocol is
// not recognised (Unknown), when the deadline passes (Timeouts), when
// nobody called Listener for their protocol or its listener is closed
// (NoListener), when their PROXY header is rejected (ProxyHeaderErrors),
// or when the peer closes before sending anything, which is what load
// balancer health checks do (HealthChecks). Only server-speaks-first
// protocols cannot be told apart this way: such a client never sends
// first and times out.
//
// # PROXY protocol and trust
//
// Config.ProxyProtocol chooses ProxyOff (the zero value: a connection that
// begins with a PROXY header is rejected), ProxyAccept (a header is used
// when present) or ProxyRequired (a connection without one is rejected).
// A header is believed only when the connection's source address is in
// Config.TrustedNetworks; a header from any other source is rejected and
// the connection closed, rather than stripped and ignored, because it
// means either a client trying to forge its address or a load balancer
// missing from the trusted list, and both should be seen, not served with
// the wrong address. Headers are parsed by this package with hard bounds
// (107 bytes for version 1, MaxProxyV2Payload for version 2); malformed
// or oversized headers are rejected. A LOCAL command (version 2) or
// UNKNOWN protocol (version 1), which load balancers use for health
// checks, keeps the socket's own addresses, as do version 2 headers of the
// UNSPEC or UNIX families. A version 2 CRC32C TLV is verified; other TLVs
// are kept in ProxyHeader.TLVs.
//
// # Lifecycle
//
// New validates the Config and takes ownership of the listener. Call
// Listener for each protocol served before Serve. Serve accepts until the
// Mux is closed; it returns ErrClosed then, or the listener's error if
// the listener fails (which stops the Mux). Close closes the underlying
// listener, the connections still in detection, and every per-protocol
// listener (their Accept returns ErrClosed), and waits for all of the
// Mux's goroutines. Shutdown(ctx) stops accepting, lets connections in
// detection finish and be accepted, then closes. Connections already
// handed out belong to their servers and are not closed. Closing one
// per-protocol listener stops only that protocol.
//
// # Errors
//
// ErrClosed (which matches net.ErrClosed with errors.Is) is returned after
// Close, by Serve and by a listener's Accept, and by a second Close.
// ReadProxyHeader and ParseProxyHeader return ErrNoProxyHeader when there
// is no header, and errors wrapping ErrProxyHeaderMalformed or
// ErrProxyHeaderTooLong for bad ones. ErrProxyHeaderNotAllowed,
// ErrProxyHeaderUntrusted and ErrProxyHeaderMissing name why a Mux
// rejected a connection; they appear in its log. Rejections are logged
// at warn level at most once per kind every 10 s and at debug level
// otherwise; health checks, timeouts and unknown protocols are logged at
// debug level only. Stats has the counts.
//
// # Cancellation
//
// Detection is bounded by Config.DetectTimeout, set as a read deadline on
// the connection. Close cancels everything at once by closing the
// listener and the connections in detection. Shutdown's ctx bounds how
// long it waits before it closes the rest. Accept on a per-protocol
// listener blocks until a connection arrives or the listener or Mux is
// closed; use Close to unblock it.
package mux
