package tunnel

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/yamux"
	"github.com/sallyport/sallyport/alpn"
	"github.com/sallyport/sallyport/proxyconnect"
)

// AgentConfig configures an Agent. ProxyAddrs and TLSConfig are required.
type AgentConfig struct {
	// ProxyAddrs are the "host:port" addresses to dial: the proxies'
	// tunnel port (DefaultPort) or their single TLS port, or a load
	// balancer in front of them. Names are resolved again at every dial.
	ProxyAddrs []string
	// TLSConfig holds the agent's client certificate (Certificates or
	// GetClientCertificate) and the roots that verify the proxies
	// (RootCAs). An empty ServerName means the host of the dialed address;
	// empty NextProtos means alpn.ProtocolReverseTunnel. Required.
	TLSConfig *tls.Config
	// Dialer dials TCP to the proxies. Nil means a zero
	// proxyconnect.Dialer, which honours HTTPS_PROXY and NO_PROXY.
	Dialer ContextDialer
	// TLSRouting dials through an alpn.Dialer in Upgrade mode, for the
	// proxies' single TLS port: behind a Layer-7 load balancer that
	// terminates TLS it falls back to the WebSocket connection upgrade.
	// False dials TLS directly (the separate tunnel port).
	TLSRouting bool
	// Upgrade is the alpn.Dialer mode when TLSRouting is set. Zero means
	// alpn.UpgradeAuto.
	Upgrade alpn.UpgradeMode
	// Services maps service names to local "host:port" addresses that
	// streams for them are joined with. Register adds handler services.
	Services map[string]string
	// LocalDialer dials the addresses of Services. Nil means a net.Dialer.
	LocalDialer ContextDialer
	// MaxStreams bounds the streams the agent serves at once, over all
	// tunnels; more are refused (ErrRefused on the proxy). Zero means
	// DefaultMaxStreams.
	MaxStreams int
	// HeartbeatInterval is how often the agent sends a heartbeat on each
	// tunnel; MissedHeartbeats intervals without a message from the proxy
	// end the tunnel. Zero means DefaultHeartbeatInterval and
	// DefaultMissedHeartbeats.
	HeartbeatInterval time.Duration
	MissedHeartbeats  int
	// ReconnectMin and ReconnectMax bound the exponential backoff (with
	// jitter) between failed dials. Zero means DefaultReconnectMin and
	// DefaultReconnectMax.
	ReconnectMin, ReconnectMax time.Duration
	// HandshakeTimeout bounds a dial with its TLS and control handshakes,
	// and reading each stream header. Zero means DefaultHandshakeTimeout.
	HandshakeTimeout time.Duration
	// StreamWindow is the receive window of each stream, in bytes (at
	// least 256 KiB). Zero means DefaultStreamWindow.
	StreamWindow uint32
	// Version is sent to proxies for their logs. Empty sends none.
	Version string
	// Logger receives tunnel events. Nil discards.
	Logger *slog.Logger
}

// Agent keeps reverse tunnels to every proxy of a pool and serves the
// streams the proxies open on them.
type Agent struct {
	addrs      []string
	tlsConfig  *tls.Config
	dialer     ContextDialer
	tlsRouting bool
	upgrade    alpn.UpgradeMode
	local      ContextDialer
	maxStreams int64
	hbEvery    time.Duration
	hbMissed   int
	backMin    time.Duration
	backMax    time.Duration
	hsTimeout  time.Duration
	ymx        *yamux.Config
	version    string
	log        *slog.Logger

	mu       sync.Mutex
	services map[string]service
	tunnels  map[string]*agentTunnel // live, not draining, by proxy ID
	all      map[*agentTunnel]struct{}
	seedIDs  map[string]string // seed address → proxy last reached through it
	seen     map[string]bool   // proxy IDs ever connected
	rr       int
	started  bool
	closed   bool
	cancel   context.CancelFunc
	done     chan struct{}
	wake     chan struct{}
	wg       sync.WaitGroup

	streams      atomic.Int64
	streamsTotal atomic.Uint64
	refused      atomic.Uint64
	connects     atomic.Uint64
	reconnects   atomic.Uint64
	dialFailures atomic.Uint64
	bytesIn      atomic.Uint64
	bytesOut     atomic.Uint64
}

// AgentStats is a snapshot of an Agent's counters.
type AgentStats struct {
	Tunnels      int    // tunnels up now (not draining)
	Connects     uint64 // tunnels established since start
	Reconnects   uint64 // of those, to a proxy the agent had been connected to before
	DialFailures uint64 // failed dials and handshakes
	Streams      int64  // streams served now
	StreamsTotal uint64 // streams accepted since start
	Refused      uint64 // streams refused (unknown service, limit, draining, local dial failed)
	BytesIn      uint64 // bytes read from streams
	BytesOut     uint64 // bytes written to streams
}

type service struct {
	addr    string
	handler func(net.Conn)
}

type agentTunnel struct {
	proxyID string
	addr    string
	sess    *yamux.Session
	ctrl    *control
	local   net.Addr
	remote  net.Addr

	silence  time.Duration // see silenceLimit
	active   atomic.Int64
	draining atomic.Bool
	mu       sync.Mutex
	peers    []Peer
}

// NewAgent validates cfg and returns an Agent; Start or Run starts it.
func NewAgent(cfg *AgentConfig) (*Agent, error) {
	if cfg == nil {
		return nil, fmt.Errorf("%w: AgentConfig is required", ErrInvalidConfig)
	}
	if len(cfg.ProxyAddrs) == 0 {
		return nil, fmt.Errorf("%w: no ProxyAddrs", ErrInvalidConfig)
	}
	for _, a := range cfg.ProxyAddrs {
		if _, _, err := net.SplitHostPort(a); err != nil {
			return nil, fmt.Errorf("%w: proxy address %q: %v", ErrInvalidConfig, a, err)
		}
	}
	if cfg.TLSConfig == nil {
		return nil, fmt.Errorf("%w: TLSConfig is required", ErrInvalidConfig)
	}
	hb, missed, err := heartbeatDefaults(cfg.HeartbeatInterval, cfg.MissedHeartbeats)
	if err != nil {
		return nil, err
	}
	window, err := checkWindow(cfg.StreamWindow)
	if err != nil {
		return nil, err
	}
	if cfg.MaxStreams < 0 || cfg.ReconnectMin < 0 || cfg.ReconnectMax < 0 || cfg.HandshakeTimeout < 0 {
		return nil, fmt.Errorf("%w: negative MaxStreams, Reconnect or HandshakeTimeout", ErrInvalidConfig)
	}
	a := &Agent{
		addrs:      slices.Clone(cfg.ProxyAddrs),
		tlsConfig:  cfg.TLSConfig.Clone(),
		dialer:     cfg.Dialer,
		tlsRouting: cfg.TLSRouting,
		upgrade:    cfg.Upgrade,
		local:      cfg.LocalDialer,
		maxStreams: int64(cfg.MaxStreams),
		hbEvery:    hb,
		hbMissed:   missed,
		backMin:    cfg.ReconnectMin,
		backMax:    cfg.ReconnectMax,
		hsTimeout:  cfg.HandshakeTimeout,
		ymx:        yamuxConfig(window, 256),
		version:    cfg.Version,
		log:        discardLogger(cfg.Logger),
		services:   make(map[string]service),
		tunnels:    make(map[string]*agentTunnel),
		all:        make(map[*agentTunnel]struct{}),
		seedIDs:    make(map[string]string),
		seen:       make(map[string]bool),
		done:       make(chan struct{}),
		wake:       make(chan struct{}, 1),
	}
	if a.dialer == nil {
		a.dialer = &proxyconnect.Dialer{}
	}
	if a.local == nil {
		a.local = &net.Dialer{}
	}
	if a.maxStreams == 0 {
		a.maxStreams = DefaultMaxStreams
	}
	if a.backMin == 0 {
		a.backMin = DefaultReconnectMin
	}
	if a.backMax == 0 {
		a.backMax = DefaultReconnectMax
	}
	a.backMax = max(a.backMax, a.backMin)
	if a.hsTimeout == 0 {
		a.hsTimeout = DefaultHandshakeTimeout
	}
	if len(a.tlsConfig.NextProtos) == 0 {
		a.tlsConfig.NextProtos = []string{alpn.ProtocolReverseTunnel}
	}
	for name, addr := range cfg.Services {
		if err := validServiceName(name); err != nil {
			return nil, fmt.Errorf("%w: %v", ErrInvalidConfig, err)
		}
		if _, _, err := net.SplitHostPort(addr); err != nil {
			return nil, fmt.Errorf("%w: service %q address %q: %v", ErrInvalidConfig, name, addr, err)
		}
		a.services[name] = service{addr: addr}
	}
	return a, nil
}

// Register adds (or replaces) a service served by handler, which gets
// each stream for it and owns the conn (it is closed when handler
// returns). Connected proxies learn about the change at once.
func (a *Agent) Register(name string, handler func(net.Conn)) error {
	if err := validServiceName(name); err != nil {
		return fmt.Errorf("%w: %v", ErrInvalidConfig, err)
	}
	if handler == nil {
		return fmt.Errorf("%w: nil handler for %q", ErrInvalidConfig, name)
	}
	a.mu.Lock()
	a.services[name] = service{handler: handler}
	a.mu.Unlock()
	a.announce()
	return nil
}

// Deregister removes a service; streams to it are refused from now on.
func (a *Agent) Deregister(name string) {
	a.mu.Lock()
	delete(a.services, name)
	a.mu.Unlock()
	a.announce()
}

func (a *Agent) serviceNamesLocked() []string {
	names := make([]string, 0, len(a.services))
	for n := range a.services {
		names = append(names, n)
	}
	slices.Sort(names)
	return names
}

// announce sends the current services to every tunnel.
func (a *Agent) announce() {
	a.mu.Lock()
	names := a.serviceNamesLocked()
	ts := make([]*agentTunnel, 0, len(a.all))
	for t := range a.all {
		ts = append(ts, t)
	}
	a.mu.Unlock()
	for _, t := range ts {
		if err := t.ctrl.send(&message{Type: msgServices, Services: names}); err != nil {
			t.sess.Close()
		}
	}
}

// Start starts the agent in the background: it dials the proxies and
// keeps its tunnels until Close.
func (a *Agent) Start() error {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.closed {
		return ErrAgentClosed
	}
	if a.started {
		return fmt.Errorf("tunnel: agent already started")
	}
	a.started = true
	ctx, cancel := context.WithCancel(context.Background())
	a.cancel = cancel
	a.wg.Add(1)
	go a.maintain(ctx)
	return nil
}

// Run starts the agent and keeps its tunnels until ctx is done (then it
// closes the agent and returns ctx's error) or Close is called (then it
// returns ErrAgentClosed).
func (a *Agent) Run(ctx context.Context) error {
	if err := a.Start(); err != nil {
		return err
	}
	select {
	case <-ctx.Done():
		a.Close()
		return ctx.Err()
	case <-a.done:
		return ErrAgentClosed
	}
}

// Close closes every tunnel and stream and waits for the agent's
// goroutines, including running handlers, to return. A second Close
// returns an error wrapping net.ErrClosed.
func (a *Agent) Close() error {
	a.mu.Lock()
	if a.closed {
		a.mu.Unlock()
		return fmt.Errorf("tunnel: agent close: %w", net.ErrClosed)
	}
	a.closed = true
	close(a.done)
	if a.cancel != nil {
		a.cancel()
	}
	ts := make([]*agentTunnel, 0, len(a.all))
	for t := range a.all {
		ts = append(ts, t)
	}
	a.mu.Unlock()
	for _, t := range ts {
		t.sess.Close()
	}
	a.wg.Wait()
	return nil
}

// Proxies returns the IDs of the proxies the agent has a tunnel to (not
// counting draining tunnels), sorted.
func (a *Agent) Proxies() []string {
	a.mu.Lock()
	ids := make([]string, 0, len(a.tunnels))
	for id := range a.tunnels {
		ids = append(ids, id)
	}
	a.mu.Unlock()
	slices.Sort(ids)
	return ids
}

// Stats returns a snapshot of the counters.
func (a *Agent) Stats() AgentStats {
	a.mu.Lock()
	n := len(a.tunnels)
	a.mu.Unlock()
	return AgentStats{
		Tunnels:      n,
		Connects:     a.connects.Load(),
		Reconnects:   a.reconnects.Load(),
		DialFailures: a.dialFailures.Load(),
		Streams:      a.streams.Load(),
		StreamsTotal: a.streamsTotal.Load(),
		Refused:      a.refused.Load(),
		BytesIn:      a.bytesIn.Load(),
		BytesOut:     a.bytesOut.Load(),
	}
}

func (a *Agent) signal() {
	select {
	case a.wake <- struct{}{}:
	default:
	}
}

// maintain dials until the agent holds a tunnel through every seed address
// and to every proxy the connected proxies list, one dial at a time.
func (a *Agent) maintain(ctx context.Context) {
	defer a.wg.Done()
	var failures, dupes int
	for {
		addr, ok := a.nextTarget()
		if !ok {
			select {
			case <-ctx.Done():
				return
			case <-a.wake:
				continue
			}
		}
		err := a.connect(ctx, addr)
		if ctx.Err() != nil {
			return
		}
		var wait time.Duration
		switch {
		case err == nil:
			failures, dupes = 0, 0
			continue
		case errors.Is(err, errDuplicate):
			dupes++
			wait = a.backoff(dupes)
			a.log.Debug("tunnel: reached a proxy already connected", "addr", addr, "retry_in", wait)
		default:
			failures++
			a.dialFailures.Add(1)
			wait = a.backoff(failures)
			a.log.Warn("tunnel: connect failed", "addr", addr, "err", err, "retry_in", wait)
		}
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-t.C:
		}
	}
}

// backoff returns the wait after n consecutive failures: exponential from
// backMin to backMax, with the upper half jittered.
func (a *Agent) backoff(n int) time.Duration {
	d := a.backMin
	for i := 1; i < n && d < a.backMax; i++ {
		d *= 2
	}
	d = min(d, a.backMax)
	return d/2 + rand.N(d/2+1)
}

// nextTarget picks the address to dial: a seed address without a tunnel,
// else the address of a listed proxy the agent has no tunnel to (the
// seeds in turn when the list gives none).
func (a *Agent) nextTarget() (string, bool) {
	a.mu.Lock()
	defer a.mu.Unlock()
	for _, seed := range a.addrs {
		if id, ok := a.seedIDs[seed]; ok && a.tunnels[id] != nil {
			continue
		}
		held := false
		for _, t := range a.tunnels {
			if t.addr == seed {
				held = true
				break
			}
		}
		if !held {
			return seed, true
		}
	}
	for _, t := range a.tunnels {
		t.mu.Lock()
		peers := t.peers
		t.mu.Unlock()
		for _, p := range peers {
			if a.tunnels[p.ID] != nil {
				continue
			}
			if p.Addr != "" {
				return p.Addr, true
			}
			a.rr++
			return a.addrs[a.rr%len(a.addrs)], true
		}
	}
	return "", false
}

// dialTLS dials addr and completes the TLS handshake.
func (a *Agent) dialTLS(ctx context.Context, addr string) (*tls.Conn, error) {
	cfg := a.tlsConfig
	if cfg.ServerName == "" {
		host, _, _ := net.SplitHostPort(addr)
		cfg = cfg.Clone()
		cfg.ServerName = host
	}
	if a.tlsRouting {
		d := &alpn.Dialer{TLSConfig: cfg, NetDialer: a.dialer, Upgrade: a.upgrade, HandshakeTimeout: a.hsTimeout}
		return d.DialContext(ctx, "tcp", addr)
	}
	raw, err := a.dialer.DialContext(ctx, "tcp", addr)
	if err != nil {
		return nil, err
	}
	tc := tls.Client(&batchConn{Conn: raw}, cfg)
	if err := tc.HandshakeContext(ctx); err != nil {
		raw.Close()
		return nil, err
	}
	return tc, nil
}

// connect dials addr and, unless the agent already holds a tunnel to the
// proxy it reached (errDuplicate), keeps the tunnel.
func (a *Agent) connect(ctx context.Context, addr string) error {
	hctx, cancel := context.WithTimeout(ctx, a.hsTimeout)
	defer cancel()
	tc, err := a.dialTLS(hctx, addr)
	if err != nil {
		return err
	}
	var nc net.Conn = tc
	if alpn.IsPing(tc.ConnectionState().NegotiatedProtocol) {
		nc = alpn.NewPingConn(tc, a.hbEvery)
	}
	bc, _ := tc.NetConn().(*batchConn)
	sess, err := yamux.Client(&coalescer{Conn: nc, batch: bc}, a.ymx)
	if err != nil {
		nc.Close()
		return err
	}
	stop := context.AfterFunc(hctx, func() { sess.Close() })
	defer stop()
	t := &agentTunnel{addr: addr, sess: sess, local: tc.LocalAddr(), remote: tc.RemoteAddr()}
	fail := func(err error) error {
		sess.Close()
		nc.Close()
		return err
	}
	cs, err := sess.OpenStream()
	if err != nil {
		return fail(err)
	}
	t.ctrl = &control{s: cs, writeTimeout: a.hsTimeout}
	a.mu.Lock()
	names := a.serviceNamesLocked()
	a.mu.Unlock()
	if err := t.ctrl.send(&message{Type: msgAgentHello, Services: names, Version: a.version, HeartbeatMillis: a.hbEvery.Milliseconds()}); err != nil {
		return fail(fmt.Errorf("tunnel: hello to %s: %w", addr, err))
	}
	m, err := t.ctrl.recv(a.hsTimeout)
	if err != nil {
		return fail(fmt.Errorf("tunnel: hello from %s: %w", addr, err))
	}
	if m.Type != msgProxyHello {
		return fail(fmt.Errorf("%w: proxy at %s sent %s before hello", ErrProtocol, addr, m.Type))
	}
	t.proxyID, t.peers = m.ProxyID, m.Peers
	t.silence = silenceLimit(a.hbEvery, m.HeartbeatMillis, a.hbMissed)

	a.mu.Lock()
	a.seedIDs[addr] = t.proxyID
	if a.closed {
		a.mu.Unlock()
		return fail(ErrAgentClosed)
	}
	if a.tunnels[t.proxyID] != nil {
		a.mu.Unlock()
		return fail(errDuplicate)
	}
	a.mu.Unlock()
	if err := t.ctrl.send(&message{Type: msgAccept}); err != nil {
		return fail(fmt.Errorf("tunnel: accept to %s: %w", addr, err))
	}
	if !stop() {
		return fail(context.Cause(hctx))
	}
	a.mu.Lock()
	if a.closed {
		a.mu.Unlock()
		return fail(ErrAgentClosed)
	}
	a.tunnels[t.proxyID] = t
	a.all[t] = struct{}{}
	again := a.seen[t.proxyID]
	a.seen[t.proxyID] = true
	a.wg.Add(2)
	a.mu.Unlock()
	a.connects.Add(1)
	if again {
		a.reconnects.Add(1)
	}
	attrs := []any{"proxy", t.proxyID, "addr", addr, "remote", t.remote}
	if u, ok := proxyconnect.Via(tc); ok {
		attrs = append(attrs, "via", u.Redacted())
	}
	a.log.Info("tunnel: connected", attrs...)
	t.ctrl.startHeartbeats(a.hbEvery, func(error) { sess.Close() })
	go a.controlLoop(t)
	go a.acceptLoop(t)
	return nil
}

// controlLoop reads the proxy's control messages until the tunnel ends,
// then removes the tunnel.
func (a *Agent) controlLoop(t *agentTunnel) {
	defer a.wg.Done()
	defer a.drop(t)
	for {
		m, err := t.ctrl.recv(t.silence)
		if err != nil {
			if !t.sess.IsClosed() {
				a.log.Warn("tunnel: proxy lost", "proxy", t.proxyID, "err", err)
			}
			return
		}
		switch m.Type {
		case msgHeartbeat:
		case msgPeers:
			t.mu.Lock()
			t.peers = m.Peers
			t.mu.Unlock()
			a.signal()
		case msgDrain:
			a.log.Info("tunnel: proxy asks to drain", "proxy", t.proxyID, "streams", t.active.Load())
			t.draining.Store(true)
			a.mu.Lock()
			if a.tunnels[t.proxyID] == t {
				delete(a.tunnels, t.proxyID)
			}
			a.mu.Unlock()
			a.signal()
			if t.active.Load() == 0 {
				t.sess.Close()
			}
		default:
			a.log.Warn("tunnel: unexpected control message", "proxy", t.proxyID, "type", m.Type.String())
			t.sess.Close()
			return
		}
	}
}

func (a *Agent) drop(t *agentTunnel) {
	t.ctrl.stopHeartbeats()
	t.sess.Close()
	a.mu.Lock()
	delete(a.all, t)
	if a.tunnels[t.proxyID] == t {
		delete(a.tunnels, t.proxyID)
	}
	a.mu.Unlock()
	a.log.Info("tunnel: disconnected", "proxy", t.proxyID, "addr", t.addr)
	a.signal()
}

// acceptLoop accepts the streams the proxy opens.
func (a *Agent) acceptLoop(t *agentTunnel) {
	defer a.wg.Done()
	for {
		st, err := t.sess.AcceptStream()
		if err != nil {
			return
		}
		a.wg.Add(1)
		go a.serveStream(t, st)
	}
}

// serveStream reads the stream header, answers it and runs the service.
func (a *Agent) serveStream(t *agentTunnel, st *yamux.Stream) {
	defer a.wg.Done()
	st.SetDeadline(time.Now().Add(a.hsTimeout))
	h, err := readStreamHeader(st)
	if err != nil {
		a.log.Debug("tunnel: bad stream header", "proxy", t.proxyID, "err", err)
		st.Close()
		return
	}
	refuse := func(code byte, reason string) {
		a.refused.Add(1)
		a.log.Debug("tunnel: stream refused", "proxy", t.proxyID, "service", h.Service, "reason", reason)
		st.Write(appendStatus(nil, code, reason))
		st.Close()
	}
	a.mu.Lock()
	svc, ok := a.services[h.Service]
	a.mu.Unlock()
	if !ok {
		refuse(statusNoService, "unknown service")
		return
	}
	if t.draining.Load() {
		refuse(statusRefused, "agent is draining this tunnel")
		return
	}
	if n := a.streams.Add(1); n > a.maxStreams {
		a.streams.Add(-1)
		refuse(statusRefused, fmt.Sprintf("stream limit reached (%d)", a.maxStreams))
		return
	}
	t.active.Add(1)
	release := func() {
		a.streams.Add(-1)
		if t.active.Add(-1) == 0 && t.draining.Load() {
			t.sess.Close()
		}
	}
	var local net.Conn
	if svc.handler == nil {
		ctx, cancel := context.WithTimeout(context.Background(), a.hsTimeout)
		local, err = a.local.DialContext(ctx, "tcp", svc.addr)
		cancel()
		if err != nil {
			release()
			refuse(statusRefused, "service unreachable")
			a.log.Warn("tunnel: service unreachable", "service", h.Service, "err", err)
			return
		}
	}
	if _, err := st.Write(appendStatus(nil, statusOK, "")); err != nil {
		release()
		st.Close()
		if local != nil {
			local.Close()
		}
		return
	}
	st.SetDeadline(time.Time{})
	a.streamsTotal.Add(1)
	var remote net.Addr = t.remote
	if h.Addr != "" {
		network := h.Network
		if network == "" {
			network = "tcp"
		}
		remote = Addr{Net: network, Address: h.Addr}
	}
	c := newConn(st, h.Service, t.local, remote, &a.bytesIn, &a.bytesOut, release)
	if svc.handler != nil {
		defer c.Close()
		svc.handler(c)
		return
	}
	// Join ends when both directions end; closing the tunnel fails the
	// stream's side.
	alpn.Join(context.Background(), c, local)
}
