package tunnel

import (
	"context"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"runtime"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/yamux"
	"github.com/sallyport/sallyport/alpn"
	"github.com/sallyport/sallyport/internal/netutil"
)

// ServerConfig configures a Server. The zero value (or a nil *ServerConfig)
// works for ServeConn of a *tls.Conn; plain conns (Serve on a TCP
// listener, ServeConn from an alpn passthrough route) need TLSConfig.
type ServerConfig struct {
	// ID identifies this proxy to agents, which hold one tunnel per ID.
	// Empty means a random ID.
	ID string
	// TLSConfig terminates TLS for conns given to Serve and ServeConn
	// that are not *tls.Conn already. It must require and verify client
	// certificates (ClientAuth: tls.RequireAndVerifyClientCert, ClientCAs:
	// the cluster CA). Empty NextProtos means alpn.ProtocolReverseTunnel
	// and its "-ping" variant. Nil means Serve and ServeConn expect
	// *tls.Conn.
	TLSConfig *tls.Config
	// AgentID names the agent of a verified client certificate. Nil means
	// the certificate's Subject CommonName (an empty one is refused).
	AgentID func(*x509.Certificate) (string, error)
	// Peers is the initial list of the pool's proxies sent to agents (see
	// SetPeers). Nil means none: agents only know this proxy.
	Peers []Peer
	// HeartbeatInterval is how often the proxy sends a heartbeat on each
	// tunnel; MissedHeartbeats intervals without a message from the agent
	// end the tunnel. Zero means DefaultHeartbeatInterval and
	// DefaultMissedHeartbeats.
	HeartbeatInterval time.Duration
	MissedHeartbeats  int
	// HandshakeTimeout bounds the TLS handshake, the control handshake and
	// the stream header exchange of Dial when its ctx has no earlier
	// deadline. Zero means DefaultHandshakeTimeout.
	HandshakeTimeout time.Duration
	// StreamWindow is the receive window of each stream, in bytes (at
	// least 256 KiB). Zero means DefaultStreamWindow.
	StreamWindow uint32
	// MaxHandshakes bounds the TLS handshakes in progress; further
	// connections wait (within HandshakeTimeout) for their turn. When a
	// restarted proxy is flooded by thousands of agents at once, this
	// keeps each handshake fast instead of letting all of them slow down
	// past their timeouts. Zero means 16 per CPU.
	MaxHandshakes int
	// Logger receives tunnel events. Nil discards.
	Logger *slog.Logger
}

// Server is the proxy side: it accepts tunnels from agents, keeps the
// registry of connected agents and their services, and opens streams to
// them with Dial.
type Server struct {
	id        string
	tlsConfig *tls.Config
	agentID   func(*x509.Certificate) (string, error)
	hbEvery   time.Duration
	hbMissed  int
	hsTimeout time.Duration
	ymx       *yamux.Config
	log       *slog.Logger
	hsSem     chan struct{}

	mu        sync.Mutex
	agents    map[string]*serverTunnel
	all       map[*serverTunnel]struct{}
	conns     map[net.Conn]struct{} // every conn being served, from its handshake on
	listeners map[net.Listener]struct{}
	peers     []Peer
	shutdown  bool
	closed    bool
	wg        sync.WaitGroup

	replaced     atomic.Uint64
	accepted     atomic.Uint64
	streams      atomic.Int64
	streamsTotal atomic.Uint64
	bytesIn      atomic.Uint64
	bytesOut     atomic.Uint64
}

// ServerStats is a snapshot of a Server's counters.
type ServerStats struct {
	Tunnels      int    // agents connected now
	Accepted     uint64 // tunnels registered since start
	Replaced     uint64 // tunnels replaced by a newer one from the same agent
	Streams      int64  // streams open now
	StreamsTotal uint64 // streams opened since start
	BytesIn      uint64 // bytes read from agents' streams
	BytesOut     uint64 // bytes written to agents' streams
}

// serverTunnel is one agent's tunnel on the proxy.
type serverTunnel struct {
	agentID string
	sess    *yamux.Session
	ctrl    *control
	remote  net.Addr
	local   net.Addr

	mu       sync.Mutex
	services []string
}

// NewServer validates cfg and returns a Server. cfg may be nil.
func NewServer(cfg *ServerConfig) (*Server, error) {
	if cfg == nil {
		cfg = &ServerConfig{}
	}
	hb, missed, err := heartbeatDefaults(cfg.HeartbeatInterval, cfg.MissedHeartbeats)
	if err != nil {
		return nil, err
	}
	window, err := checkWindow(cfg.StreamWindow)
	if err != nil {
		return nil, err
	}
	if cfg.HandshakeTimeout < 0 || cfg.MaxHandshakes < 0 {
		return nil, fmt.Errorf("%w: negative HandshakeTimeout or MaxHandshakes", ErrInvalidConfig)
	}
	maxHS := cfg.MaxHandshakes
	if maxHS == 0 {
		maxHS = 16 * runtime.GOMAXPROCS(0)
	}
	if len(cfg.ID) > maxHeaderField {
		return nil, fmt.Errorf("%w: ID longer than %d bytes", ErrInvalidConfig, maxHeaderField)
	}
	if err := validPeers(cfg.Peers); err != nil {
		return nil, err
	}
	tlsConfig := cfg.TLSConfig
	if tlsConfig != nil && len(tlsConfig.NextProtos) == 0 {
		tlsConfig = tlsConfig.Clone()
		tlsConfig.NextProtos = alpn.WithPing(alpn.ProtocolReverseTunnel)
	}
	s := &Server{
		id:        cfg.ID,
		tlsConfig: tlsConfig,
		agentID:   cfg.AgentID,
		hbEvery:   hb,
		hbMissed:  missed,
		hsTimeout: cfg.HandshakeTimeout,
		ymx:       yamuxConfig(window, 4),
		log:       discardLogger(cfg.Logger),
		agents:    make(map[string]*serverTunnel),
		all:       make(map[*serverTunnel]struct{}),
		conns:     make(map[net.Conn]struct{}),
		listeners: make(map[net.Listener]struct{}),
		peers:     slices.Clone(cfg.Peers),
		hsSem:     make(chan struct{}, maxHS),
	}
	if s.id == "" {
		var b [8]byte
		rand.Read(b[:])
		s.id = hex.EncodeToString(b[:])
	}
	if s.hsTimeout == 0 {
		s.hsTimeout = DefaultHandshakeTimeout
	}
	if s.agentID == nil {
		s.agentID = commonName
	}
	return s, nil
}

func validPeers(peers []Peer) error {
	for _, p := range peers {
		if p.ID == "" || len(p.ID) > maxHeaderField || len(p.Addr) > maxHeaderField {
			return fmt.Errorf("%w: invalid peer %q", ErrInvalidConfig, p.ID)
		}
	}
	return nil
}

func commonName(c *x509.Certificate) (string, error) {
	if c.Subject.CommonName == "" {
		return "", errors.New("certificate has no CommonName")
	}
	return c.Subject.CommonName, nil
}

// ID returns the proxy ID agents see.
func (s *Server) ID() string { return s.id }

// Serve accepts connections on l and serves a tunnel on each, until
// Shutdown or Close (which close l) when it returns ErrServerClosed.
// Conns that are not *tls.Conn are TLS-terminated with
// ServerConfig.TLSConfig.
func (s *Server) Serve(l net.Listener) error {
	s.mu.Lock()
	if s.shutdown || s.closed {
		s.mu.Unlock()
		l.Close()
		return ErrServerClosed
	}
	s.listeners[l] = struct{}{}
	s.wg.Add(1)
	s.mu.Unlock()
	defer s.wg.Done()
	defer func() {
		s.mu.Lock()
		delete(s.listeners, l)
		s.mu.Unlock()
	}()
	var backoff netutil.AcceptBackoff
	for {
		c, err := l.Accept()
		if err != nil {
			s.mu.Lock()
			done := s.shutdown || s.closed
			s.mu.Unlock()
			if done {
				return ErrServerClosed
			}
			if delay, ok := backoff.Retry(err); ok {
				s.log.Warn("tunnel: accept", "err", err, "retry", delay)
				time.Sleep(delay)
				continue
			}
			return err
		}
		backoff.Reset()
		s.mu.Lock()
		if s.closed {
			s.mu.Unlock()
			c.Close()
			return ErrServerClosed
		}
		s.wg.Add(1)
		s.mu.Unlock()
		go s.serveAccepted(c)
	}
}

func (s *Server) serveAccepted(c net.Conn) {
	defer s.wg.Done()
	tc, err := s.tlsConn(c)
	if err != nil {
		s.log.Error("tunnel: "+err.Error(), "remote", c.RemoteAddr())
		c.Close()
		return
	}
	if err := s.serve(context.Background(), tc); err != nil && !errors.Is(err, ErrServerClosed) {
		s.log.Debug("tunnel: ended", "remote", c.RemoteAddr(), "err", err)
	}
}

// tlsConn returns c when it is a *tls.Conn, else a TLS server conn over
// it with ServerConfig.TLSConfig. Between the two lies a batchConn, so
// that a yamux frame goes out in one system call rather than one per
// TLS record.
func (s *Server) tlsConn(c net.Conn) (*tls.Conn, error) {
	if tc, ok := c.(*tls.Conn); ok {
		return tc, nil
	}
	if s.tlsConfig == nil {
		return nil, errors.New("conn is not TLS and ServerConfig.TLSConfig is nil")
	}
	return tls.Server(&batchConn{Conn: c}, s.tlsConfig), nil
}

// ServeConn serves one tunnel on conn until the tunnel ends, ctx is
// canceled, or the server is shut down; it closes conn. conn is either a
// *tls.Conn (its handshake done or not) or a conn that still carries the
// agent's TLS handshake, such as an alpn passthrough route's conn; the
// server then runs TLS with ServerConfig.TLSConfig, and sends each stream
// frame in one system call, which it cannot do over a *tls.Conn made
// elsewhere. The agent must present a verified client certificate. It
// returns nil when the agent ended the tunnel (or replaced it), and
// ErrServerClosed after Close.
func (s *Server) ServeConn(ctx context.Context, conn net.Conn) error {
	s.mu.Lock()
	if s.closed || s.shutdown {
		s.mu.Unlock()
		conn.Close()
		return ErrServerClosed
	}
	s.wg.Add(1)
	s.mu.Unlock()
	defer s.wg.Done()
	tc, err := s.tlsConn(conn)
	if err != nil {
		conn.Close()
		return fmt.Errorf("tunnel: %s: %w", conn.RemoteAddr(), err)
	}
	return s.serve(ctx, tc)
}

func (s *Server) serve(ctx context.Context, conn *tls.Conn) error {
	defer conn.Close()
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return ErrServerClosed
	}
	s.conns[conn] = struct{}{}
	s.mu.Unlock()
	defer func() {
		s.mu.Lock()
		delete(s.conns, conn)
		s.mu.Unlock()
	}()
	hctx, cancel := context.WithTimeout(ctx, s.hsTimeout)
	err := s.handshake(hctx, conn)
	cancel()
	if err != nil {
		return fmt.Errorf("tunnel: TLS handshake with %s: %w", conn.RemoteAddr(), err)
	}
	st := conn.ConnectionState()
	if len(st.PeerCertificates) == 0 || len(st.VerifiedChains) == 0 {
		return fmt.Errorf("%w: %s presented no verified client certificate", ErrUnauthenticated, conn.RemoteAddr())
	}
	agentID, err := s.agentID(st.PeerCertificates[0])
	if err != nil || agentID == "" {
		return fmt.Errorf("%w: %s: agent identity: %v", ErrUnauthenticated, conn.RemoteAddr(), err)
	}
	var nc net.Conn = conn
	if alpn.IsPing(st.NegotiatedProtocol) {
		pc := alpn.NewPingConn(conn, s.hbEvery)
		defer pc.Close()
		nc = pc
	}
	bc, _ := conn.NetConn().(*batchConn)
	sess, err := yamux.Server(&coalescer{Conn: nc, batch: bc}, s.ymx)
	if err != nil {
		return err
	}
	defer sess.Close()
	t := &serverTunnel{agentID: agentID, sess: sess, remote: conn.RemoteAddr(), local: conn.LocalAddr()}
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return ErrServerClosed
	}
	s.all[t] = struct{}{}
	s.mu.Unlock()
	defer s.forget(t)
	stop := context.AfterFunc(ctx, func() { sess.Close() })
	defer stop()

	// Control handshake: agent hello, proxy hello, accept.
	actx, cancel := context.WithTimeout(ctx, s.hsTimeout)
	cs, err := sess.AcceptStreamWithContext(actx)
	cancel()
	if err != nil {
		return fmt.Errorf("tunnel: agent %q: waiting for control stream: %w", agentID, err)
	}
	t.ctrl = &control{s: cs, writeTimeout: s.hsTimeout}
	hello, err := t.ctrl.recv(s.hsTimeout)
	if err != nil {
		return fmt.Errorf("tunnel: agent %q: hello: %w", agentID, err)
	}
	if hello.Type != msgAgentHello {
		return fmt.Errorf("%w: agent %q sent %s before hello", ErrProtocol, agentID, hello.Type)
	}
	t.services = hello.Services
	s.mu.Lock()
	peers := slices.Clone(s.peers)
	s.mu.Unlock()
	if err := t.ctrl.send(&message{Type: msgProxyHello, ProxyID: s.id, Peers: peers, HeartbeatMillis: s.hbEvery.Milliseconds()}); err != nil {
		return fmt.Errorf("tunnel: agent %q: hello: %w", agentID, err)
	}
	m, err := t.ctrl.recv(s.hsTimeout)
	if err != nil {
		// The agent closes a tunnel to a proxy it already holds.
		s.log.Debug("tunnel: agent did not keep the tunnel", "agent", agentID, "remote", t.remote, "err", err)
		return nil
	}
	if m.Type != msgAccept {
		return fmt.Errorf("%w: agent %q sent %s instead of accept", ErrProtocol, agentID, m.Type)
	}
	if err := s.register(t); err != nil {
		return err
	}
	s.log.Info("tunnel: agent connected", "agent", agentID, "remote", t.remote, "services", hello.Services)
	t.ctrl.startHeartbeats(s.hbEvery, func(error) { sess.Close() })
	defer t.ctrl.stopHeartbeats()

	silence := silenceLimit(s.hbEvery, hello.HeartbeatMillis, s.hbMissed)
	for {
		m, err := t.ctrl.recv(silence)
		if err != nil {
			s.mu.Lock()
			closed := s.closed
			s.mu.Unlock()
			if closed {
				return ErrServerClosed
			}
			if sess.IsClosed() && ctx.Err() == nil {
				s.log.Info("tunnel: agent disconnected", "agent", agentID, "remote", t.remote)
				return nil
			}
			s.log.Info("tunnel: agent lost", "agent", agentID, "remote", t.remote, "err", err)
			return fmt.Errorf("tunnel: agent %q: %w", agentID, err)
		}
		switch m.Type {
		case msgHeartbeat:
		case msgServices:
			t.mu.Lock()
			t.services = m.Services
			t.mu.Unlock()
			s.log.Debug("tunnel: services updated", "agent", agentID, "services", m.Services)
		default:
			return fmt.Errorf("%w: agent %q sent %s", ErrProtocol, agentID, m.Type)
		}
	}
}

// handshake runs the TLS handshake when it has not been done yet, waiting
// for a free handshake slot first.
func (s *Server) handshake(ctx context.Context, conn *tls.Conn) error {
	if conn.ConnectionState().HandshakeComplete {
		return nil
	}
	select {
	case s.hsSem <- struct{}{}:
	case <-ctx.Done():
		return fmt.Errorf("waiting for a handshake slot: %w", ctx.Err())
	}
	defer func() { <-s.hsSem }()
	return conn.HandshakeContext(ctx)
}

// register makes t the agent's tunnel, replacing (and closing) an older
// one.
func (s *Server) register(t *serverTunnel) error {
	s.mu.Lock()
	if s.closed || s.shutdown {
		s.mu.Unlock()
		return ErrServerClosed
	}
	old := s.agents[t.agentID]
	s.agents[t.agentID] = t
	s.mu.Unlock()
	s.accepted.Add(1)
	if old != nil {
		s.replaced.Add(1)
		s.log.Info("tunnel: replacing stale tunnel", "agent", t.agentID, "old", old.remote, "new", t.remote)
		old.sess.Close()
	}
	return nil
}

func (s *Server) forget(t *serverTunnel) {
	s.mu.Lock()
	delete(s.all, t)
	if s.agents[t.agentID] == t {
		delete(s.agents, t.agentID)
	}
	s.mu.Unlock()
}

// SetPeers replaces the list of the pool's proxies and sends it to every
// connected agent. Agents keep a tunnel to each proxy in the list.
func (s *Server) SetPeers(peers []Peer) error {
	if err := validPeers(peers); err != nil {
		return err
	}
	s.mu.Lock()
	s.peers = slices.Clone(peers)
	ts := s.tunnelsLocked()
	s.mu.Unlock()
	for _, t := range ts {
		if err := t.ctrl.send(&message{Type: msgPeers, Peers: peers}); err != nil {
			t.sess.Close()
		}
	}
	return nil
}

func (s *Server) tunnelsLocked() []*serverTunnel {
	ts := make([]*serverTunnel, 0, len(s.agents))
	for _, t := range s.agents {
		ts = append(ts, t)
	}
	return ts
}

// Agents returns the IDs of the agents connected now, sorted.
func (s *Server) Agents() []string {
	s.mu.Lock()
	ids := make([]string, 0, len(s.agents))
	for id := range s.agents {
		ids = append(ids, id)
	}
	s.mu.Unlock()
	slices.Sort(ids)
	return ids
}

// Services returns the services the agent announced, or ErrAgentNotFound.
func (s *Server) Services(agentID string) ([]string, error) {
	s.mu.Lock()
	t := s.agents[agentID]
	s.mu.Unlock()
	if t == nil {
		return nil, ErrAgentNotFound
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	return slices.Clone(t.services), nil
}

// Stats returns a snapshot of the counters.
func (s *Server) Stats() ServerStats {
	s.mu.Lock()
	n := len(s.agents)
	s.mu.Unlock()
	return ServerStats{
		Tunnels:      n,
		Accepted:     s.accepted.Load(),
		Replaced:     s.replaced.Load(),
		Streams:      s.streams.Load(),
		StreamsTotal: s.streamsTotal.Load(),
		BytesIn:      s.bytesIn.Load(),
		BytesOut:     s.bytesOut.Load(),
	}
}

// Dial opens a stream to the agent's service. See DialFrom.
func (s *Server) Dial(ctx context.Context, agentID, service string) (*Conn, error) {
	return s.DialFrom(ctx, agentID, service, nil)
}

// DialFrom opens a stream to the agent's service on behalf of the client
// at clientAddr (nil when unknown), which the agent's handler sees as the
// conn's RemoteAddr. It fails with ErrAgentNotFound when the agent has no
// tunnel to this proxy, ErrNoService when the agent does not offer
// service, and a *RefusedError (ErrRefused) when the agent refused the
// stream. ctx bounds opening the stream and the header exchange (at most
// ServerConfig.HandshakeTimeout), not the returned conn.
func (s *Server) DialFrom(ctx context.Context, agentID, service string, clientAddr net.Addr) (*Conn, error) {
	hdr := streamHeader{Service: service}
	if clientAddr != nil {
		hdr.Network, hdr.Addr = clientAddr.Network(), clientAddr.String()
	}
	buf, err := appendStreamHeader(make([]byte, 0, 64), hdr)
	if err != nil {
		return nil, err
	}
	s.mu.Lock()
	if s.closed || s.shutdown {
		s.mu.Unlock()
		return nil, ErrServerClosed
	}
	t := s.agents[agentID]
	s.mu.Unlock()
	if t == nil {
		return nil, fmt.Errorf("%w: %q", ErrAgentNotFound, agentID)
	}
	t.mu.Lock()
	offered := slices.Contains(t.services, service)
	t.mu.Unlock()
	if !offered {
		return nil, fmt.Errorf("%w: agent %q, service %q", ErrNoService, agentID, service)
	}
	st, err := t.sess.OpenStream()
	if err != nil {
		return nil, fmt.Errorf("tunnel: agent %q: open stream: %w", agentID, err)
	}
	deadline := time.Now().Add(s.hsTimeout)
	if d, ok := ctx.Deadline(); ok && d.Before(deadline) {
		deadline = d
	}
	st.SetDeadline(deadline)
	stop := context.AfterFunc(ctx, func() { st.SetDeadline(time.Unix(1, 0)) })
	code, reason, err := exchangeHeader(st, buf)
	if !stop() || ctx.Err() != nil {
		st.Close()
		return nil, fmt.Errorf("tunnel: agent %q: open stream: %w", agentID, context.Cause(ctx))
	}
	if err != nil {
		st.Close()
		return nil, fmt.Errorf("tunnel: agent %q: stream header: %w", agentID, err)
	}
	switch code {
	case statusNoService:
		st.Close()
		return nil, fmt.Errorf("%w: agent %q, service %q: %s", ErrNoService, agentID, service, reason)
	case statusRefused:
		st.Close()
		return nil, &RefusedError{AgentID: agentID, Service: service, Reason: reason}
	}
	st.SetDeadline(time.Time{})
	s.streams.Add(1)
	s.streamsTotal.Add(1)
	return newConn(st, service, t.local, t.remote, &s.bytesIn, &s.bytesOut, func() { s.streams.Add(-1) }), nil
}

func exchangeHeader(st *yamux.Stream, hdr []byte) (byte, string, error) {
	if _, err := st.Write(hdr); err != nil {
		return 0, "", err
	}
	return readStatus(st)
}

// Shutdown stops accepting tunnels (closing the listeners given to Serve),
// asks every agent to drain — finish its streams and reconnect to another
// proxy — and waits until the agents have closed their tunnels or ctx is
// done; then it closes the server as Close does and returns ctx's error.
// Dial fails with ErrServerClosed once Shutdown has begun.
func (s *Server) Shutdown(ctx context.Context) error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return fmt.Errorf("tunnel: shutdown: %w", net.ErrClosed)
	}
	s.shutdown = true
	for l := range s.listeners {
		l.Close()
	}
	ts := s.tunnelsLocked()
	s.mu.Unlock()
	for _, t := range ts {
		if err := t.ctrl.send(&message{Type: msgDrain}); err != nil {
			t.sess.Close()
		}
	}
	s.log.Info("tunnel: draining agents", "tunnels", len(ts))
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for {
		s.mu.Lock()
		n := len(s.all)
		s.mu.Unlock()
		if n == 0 {
			s.Close()
			return nil
		}
		select {
		case <-ctx.Done():
			s.Close()
			return ctx.Err()
		case <-tick.C:
		}
	}
}

// Close closes the listeners and every tunnel at once and waits for the
// server's goroutines and ServeConn calls to return. A second Close
// returns an error wrapping net.ErrClosed.
func (s *Server) Close() error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return fmt.Errorf("tunnel: close: %w", net.ErrClosed)
	}
	s.closed = true
	s.shutdown = true
	for l := range s.listeners {
		l.Close()
	}
	ts := make([]*serverTunnel, 0, len(s.all))
	for t := range s.all {
		ts = append(ts, t)
	}
	for c := range s.conns {
		c.Close() // conns still in their handshake
	}
	s.mu.Unlock()
	for _, t := range ts {
		t.sess.Close()
	}
	s.wg.Wait()
	return nil
}
