package alpn

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/sallyport/sallyport/internal/netutil"
)

// DefaultHandshakeTimeout bounds reading the ClientHello and, on
// terminating routes, the TLS handshake, when Config.HandshakeTimeout is
// zero.
const DefaultHandshakeTimeout = 10 * time.Second

// DefaultMaxHandshakes caps concurrent handshakes when
// Config.MaxHandshakes is zero.
const DefaultMaxHandshakes = 1024

var (
	// ErrRouterClosed is returned by Serve and ServeConn after Shutdown or
	// Close.
	ErrRouterClosed = errors.New("alpn: router closed")
	// ErrNoRoute means no route matched the ClientHello and there is no
	// default route.
	ErrNoRoute = errors.New("alpn: no route")
	// ErrInvalidRoute is wrapped by the errors of Handle and Listener.
	ErrInvalidRoute = errors.New("alpn: invalid route")
)

// Config configures a Router. The zero value (or a nil *Config) works.
type Config struct {
	// HandshakeTimeout bounds reading the ClientHello and, on terminating
	// routes, the TLS handshake; it also bounds how long a conn waits for
	// a route listener's Accept. Zero means DefaultHandshakeTimeout.
	HandshakeTimeout time.Duration
	// MaxHelloBytes bounds the bytes read while looking for the
	// ClientHello. Zero means DefaultMaxHelloBytes.
	MaxHelloBytes int
	// MaxHandshakes caps the connections that are reading their
	// ClientHello or doing a terminating route's TLS handshake at once;
	// at the cap Serve stops accepting (and ServeConn waits) until one
	// finishes, so slow or silent clients cannot pile up. Zero means
	// DefaultMaxHandshakes.
	MaxHandshakes int
	// GetCertificate serves terminating routes whose TLS config has no
	// certificate of its own. Nil means every terminating route must bring
	// its own.
	GetCertificate func(*tls.ClientHelloInfo) (*tls.Certificate, error)
	// Logger receives one record per failed or unrouted connection (at
	// debug level) and errors of the accept loop. Nil discards.
	Logger *slog.Logger
}

// Route says which connections a route takes and what it does with them.
// A connection matches when its SNI matches one of SNI (or SNI is empty)
// and one of the offered ALPN protocols matches one of ALPN (or ALPN is
// empty). Routes are tried in the order they were added; a route with
// neither SNI nor ALPN is the default route, tried last (there is at most
// one).
type Route struct {
	// Name names the route in Hello.Route and logs. Zero means the
	// first ALPN or SNI pattern, or "default".
	Name string
	// ALPN patterns: an exact protocol name, a prefix ending in "*"
	// ("sallyport-*"), or "" which matches a ClientHello without ALPN.
	ALPN []string
	// SNI patterns: an exact host name or "*.domain", which matches one
	// more label in front of domain. Case does not matter.
	SNI []string
	// TLSConfig, when set, makes the route terminate TLS: the handler gets
	// the *tls.Conn with the handshake done. When it has no certificate
	// (Certificates, GetCertificate, GetConfigForClient), the router's
	// Config.GetCertificate is used; when NextProtos is empty, the
	// protocol that matched is negotiated. Nil means passthrough: the
	// handler gets a *Conn that replays the ClientHello.
	TLSConfig *tls.Config
	// Handler serves the route's connections. It is ignored by Listener
	// and required by Handle.
	Handler Handler
}

// Handler serves connections of a route.
//
// HandleConn serves c until it returns; the router closes c then (the
// handler may close it earlier). ctx is canceled when the router is
// closed, when Shutdown gives up waiting, or when ServeConn's context is
// canceled. Shutdown waits for running handlers.
type Handler interface {
	HandleConn(ctx context.Context, c net.Conn, h *Hello)
}

// HandlerFunc adapts a function to Handler.
type HandlerFunc func(ctx context.Context, c net.Conn, h *Hello)

// HandleConn calls f.
func (f HandlerFunc) HandleConn(ctx context.Context, c net.Conn, h *Hello) { f(ctx, c, h) }

// Stats are the router's counters since it was created.
type Stats struct {
	Routed  uint64 // connections handed to a handler or route listener
	Unknown uint64 // well-formed ClientHellos that matched no route
	Failed  uint64 // not TLS, malformed, timed out, or failed handshake/delivery
}

// Router routes TLS connections on one port by SNI and ALPN.
type Router struct {
	cfg Config
	log *slog.Logger

	routed, unknown, failed atomic.Uint64

	mu        sync.Mutex
	routes    []*route
	def       *route
	listeners map[net.Listener]struct{}
	conns     map[net.Conn]context.CancelFunc // conns the router owns now
	wg        sync.WaitGroup                  // Serve loops, ServeConn calls
	closed    bool
	shutdown  chan struct{} // closed by Shutdown and Close
	handshake chan struct{} // semaphore of MaxHandshakes
	idle      chan struct{} // signaled when a ServeConn returns
}

type route struct {
	Route
	l        *routeListener // nil for Handle routes
	perProto sync.Map       // protocol -> *tls.Config negotiating it (TLSConfig without NextProtos)
	cached   atomic.Int32   // entries tried in perProto
}

// tlsConfig returns the TLS config that terminates a conn that matched on
// proto.
func (rt *route) tlsConfig(proto string) *tls.Config {
	if len(rt.TLSConfig.NextProtos) > 0 || proto == "" {
		return rt.TLSConfig
	}
	if c, ok := rt.perProto.Load(proto); ok {
		return c.(*tls.Config)
	}
	c := rt.TLSConfig.Clone()
	c.NextProtos = []string{proto}
	// Prefix patterns match names the client chooses: keep the cache small.
	if rt.cached.Add(1) > 64 {
		return c
	}
	actual, _ := rt.perProto.LoadOrStore(proto, c)
	return actual.(*tls.Config)
}

// New returns a Router. cfg may be nil.
func New(cfg *Config) (*Router, error) {
	r := &Router{
		listeners: map[net.Listener]struct{}{},
		conns:     map[net.Conn]context.CancelFunc{},
		shutdown:  make(chan struct{}),
		idle:      make(chan struct{}, 1),
	}
	if cfg != nil {
		r.cfg = *cfg
	}
	if r.cfg.HandshakeTimeout < 0 || r.cfg.MaxHelloBytes < 0 || r.cfg.MaxHandshakes < 0 {
		return nil, errors.New("alpn: negative HandshakeTimeout, MaxHelloBytes or MaxHandshakes")
	}
	if r.cfg.MaxHandshakes == 0 {
		r.cfg.MaxHandshakes = DefaultMaxHandshakes
	}
	r.handshake = make(chan struct{}, r.cfg.MaxHandshakes)
	if r.cfg.HandshakeTimeout == 0 {
		r.cfg.HandshakeTimeout = DefaultHandshakeTimeout
	}
	if r.cfg.MaxHelloBytes == 0 {
		r.cfg.MaxHelloBytes = DefaultMaxHelloBytes
	}
	if r.cfg.MaxHelloBytes < 1024 {
		return nil, errors.New("alpn: MaxHelloBytes below 1024")
	}
	r.log = r.cfg.Logger
	if r.log == nil {
		r.log = slog.New(slog.DiscardHandler)
	}
	return r, nil
}

// Handle adds a route served by rt.Handler.
func (r *Router) Handle(rt Route) error {
	if rt.Handler == nil {
		return fmt.Errorf("%w: Handler is nil", ErrInvalidRoute)
	}
	return r.add(&route{Route: rt})
}

// Listener adds a route whose connections are returned by the Accept of
// the listener it returns (for example to hand the web route to an
// http.Server's Serve or ServeTLS). Connections are *Conn on passthrough
// routes and *tls.Conn on terminating ones. A connection that no Accept
// takes within the handshake timeout is closed and counted as failed.
// Closing the listener stops its route; the router's Close closes it too.
func (r *Router) Listener(rt Route) (net.Listener, error) {
	l := &routeListener{r: r, ch: make(chan net.Conn), done: make(chan struct{})}
	rr := &route{Route: rt, l: l}
	if err := r.add(rr); err != nil {
		return nil, err
	}
	l.addr = routeAddr(rr.Name)
	return l, nil
}

func (r *Router) add(rt *route) error {
	rt.ALPN = append([]string(nil), rt.ALPN...)
	rt.SNI = append([]string(nil), rt.SNI...)
	for _, p := range rt.ALPN {
		if strings.Contains(strings.TrimSuffix(p, "*"), "*") {
			return fmt.Errorf("%w: ALPN pattern %q: '*' only at the end", ErrInvalidRoute, p)
		}
	}
	for i, s := range rt.SNI {
		s = strings.TrimSuffix(strings.ToLower(s), ".")
		if s == "" || strings.Contains(strings.TrimPrefix(s, "*."), "*") {
			return fmt.Errorf("%w: SNI pattern %q", ErrInvalidRoute, s)
		}
		rt.SNI[i] = s
	}
	if rt.TLSConfig != nil {
		c := rt.TLSConfig
		if len(c.Certificates) == 0 && c.GetCertificate == nil && c.GetConfigForClient == nil {
			if r.cfg.GetCertificate == nil {
				return fmt.Errorf("%w: terminating route without certificate and no Config.GetCertificate", ErrInvalidRoute)
			}
			c = c.Clone()
			c.GetCertificate = r.cfg.GetCertificate
			rt.TLSConfig = c
		}
	}
	if rt.Name == "" {
		switch {
		case len(rt.ALPN) > 0:
			rt.Name = rt.ALPN[0]
		case len(rt.SNI) > 0:
			rt.Name = rt.SNI[0]
		default:
			rt.Name = "default"
		}
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.closed {
		return ErrRouterClosed
	}
	if len(rt.ALPN) == 0 && len(rt.SNI) == 0 {
		if r.def != nil {
			return fmt.Errorf("%w: a default route exists already", ErrInvalidRoute)
		}
		r.def = rt
		return nil
	}
	r.routes = append(r.routes, rt)
	return nil
}

func (r *Router) removeListenerRoute(l *routeListener) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.def != nil && r.def.l == l {
		r.def = nil
	}
	for i, rt := range r.routes {
		if rt.l == l {
			r.routes = append(r.routes[:i:i], r.routes[i+1:]...)
			return
		}
	}
}

// match returns the route for h and the protocol that matched.
func (r *Router) match(h *Hello) (*route, string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, rt := range r.routes {
		if len(rt.SNI) > 0 && !matchSNI(rt.SNI, h.ServerName) {
			continue
		}
		if len(rt.ALPN) == 0 {
			return rt, ""
		}
		if p, ok := matchALPN(rt.ALPN, h.Protocols); ok {
			return rt, p
		}
	}
	return r.def, ""
}

func matchSNI(patterns []string, name string) bool {
	for _, p := range patterns {
		if p == name {
			return true
		}
		if d, ok := strings.CutPrefix(p, "*"); ok {
			// d is ".domain": one label in front of it.
			if label, ok := strings.CutSuffix(name, d); ok && label != "" && !strings.Contains(label, ".") {
				return true
			}
		}
	}
	return false
}

func matchALPN(patterns, offered []string) (string, bool) {
	if len(offered) == 0 {
		for _, p := range patterns {
			if p == "" {
				return "", true
			}
		}
		return "", false
	}
	for _, o := range offered {
		for _, p := range patterns {
			if p == "" {
				continue
			}
			if o == p {
				return o, true
			}
			if pre, ok := strings.CutSuffix(p, "*"); ok && strings.HasPrefix(o, pre) {
				return o, true
			}
		}
	}
	return "", false
}

// Stats returns the counters.
func (r *Router) Stats() Stats {
	return Stats{Routed: r.routed.Load(), Unknown: r.unknown.Load(), Failed: r.failed.Load()}
}

// Serve accepts connections on l and routes each in its own goroutine. It
// returns ErrRouterClosed after Shutdown or Close (which close l), or the
// first Accept error that is not temporary (such as EMFILE, retried with
// backoff). Serve may run on several listeners at once.
func (r *Router) Serve(l net.Listener) error {
	r.mu.Lock()
	if r.closed {
		r.mu.Unlock()
		return ErrRouterClosed
	}
	r.listeners[l] = struct{}{}
	r.wg.Add(1)
	r.mu.Unlock()
	defer r.wg.Done()
	defer func() {
		r.mu.Lock()
		delete(r.listeners, l)
		r.mu.Unlock()
	}()
	var backoff netutil.AcceptBackoff
	for {
		c, err := l.Accept()
		if err != nil {
			if r.isClosed() {
				return ErrRouterClosed
			}
			if delay, ok := backoff.Retry(err); ok {
				r.log.Warn("alpn: accept", "err", err, "retry", delay)
				select {
				case <-time.After(delay):
				case <-r.shutdown:
				}
				continue
			}
			return err
		}
		backoff.Reset()
		// At the cap, wait (without accepting more) for a slot.
		select {
		case r.handshake <- struct{}{}:
		case <-r.shutdown:
			c.Close()
			return ErrRouterClosed
		}
		if !r.track(c, nil) {
			<-r.handshake
			c.Close()
			return ErrRouterClosed
		}
		r.wg.Add(1)
		go r.serveAccepted(c)
	}
}

func (r *Router) serveAccepted(c net.Conn) {
	defer r.wg.Done()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	r.serve(ctx, c, cancel, "")
}

func (r *Router) isClosed() bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.closed
}

// track registers c as owned by the router. It reports false after Close.
func (r *Router) track(c net.Conn, cancel context.CancelFunc) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.closed {
		return false
	}
	r.conns[c] = cancel
	return true
}

func (r *Router) untrack(c net.Conn) {
	r.mu.Lock()
	delete(r.conns, c)
	r.mu.Unlock()
	select {
	case r.idle <- struct{}{}:
	default:
	}
}

// ServeConn routes one connection and, for Handle routes, runs the handler
// before it returns. It closes c unless c was handed to a route listener.
// Cancelling ctx cancels the handler's context and aborts the handshake.
// It returns ErrNoRoute, an error wrapping ErrNotTLS or ErrBadHello, a
// handshake or delivery error, or nil once the handler returned.
func (r *Router) ServeConn(ctx context.Context, c net.Conn) error {
	return r.serveConn(ctx, c, "")
}

// serveConn is ServeConn; when want is not empty the ClientHello must
// offer that protocol (connections from the upgrade endpoint).
func (r *Router) serveConn(ctx context.Context, c net.Conn, want string) error {
	r.mu.Lock()
	if r.closed {
		r.mu.Unlock()
		c.Close()
		return ErrRouterClosed
	}
	r.wg.Add(1)
	r.mu.Unlock()
	defer r.wg.Done()
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	select {
	case r.handshake <- struct{}{}:
	case <-ctx.Done():
		c.Close()
		return ctx.Err()
	case <-r.shutdown:
		c.Close()
		return ErrRouterClosed
	}
	if !r.track(c, cancel) {
		<-r.handshake
		c.Close()
		return ErrRouterClosed
	}
	return r.serve(ctx, c, cancel, want)
}

// serve routes c, which the caller has tracked, holding a handshake slot
// that serve gives back.
func (r *Router) serve(ctx context.Context, c net.Conn, cancel context.CancelFunc, want string) error {
	r.mu.Lock()
	if _, ok := r.conns[c]; ok {
		r.conns[c] = cancel
	}
	r.mu.Unlock()
	owned, slot := true, true
	release := func() {
		if slot {
			slot = false
			<-r.handshake
		}
	}
	defer func() {
		release()
		if owned {
			c.Close()
		}
		r.untrack(c)
	}()
	// The handshake deadline also fires on ctx cancellation.
	deadline := time.Now().Add(r.cfg.HandshakeTimeout)
	c.SetDeadline(deadline)
	stop := context.AfterFunc(ctx, func() { c.SetDeadline(time.Unix(1, 0)) })
	h, peeked, err := readHello(c, r.cfg.MaxHelloBytes)
	if err != nil {
		stop()
		if ctx.Err() != nil {
			err = errors.Join(err, ctx.Err())
		}
		r.failed.Add(1)
		r.log.Debug("alpn: reading ClientHello", "remote", c.RemoteAddr(), "err", err)
		return err
	}
	h.Upgraded = want != ""
	rt, proto := r.match(h)
	if want != "" && !contains(h.Protocols, want) {
		rt = nil
	}
	if rt == nil {
		stop()
		r.unknown.Add(1)
		r.log.Debug("alpn: no route", "remote", c.RemoteAddr(), "sni", h.ServerName, "alpn", h.Protocols)
		return fmt.Errorf("%w for server name %q, protocols %q", ErrNoRoute, h.ServerName, h.Protocols)
	}
	h.Protocol, h.Route = proto, rt.Name
	var conn net.Conn = newConn(c, peeked, h)
	if rt.TLSConfig != nil {
		tc := tls.Server(conn, rt.tlsConfig(proto))
		// The deadline (moved by ctx's AfterFunc) bounds the handshake;
		// HandshakeContext would add a goroutine per handshake.
		if err := tc.Handshake(); err != nil {
			if ctx.Err() != nil {
				err = errors.Join(err, ctx.Err())
			}
			stop()
			r.failed.Add(1)
			r.log.Debug("alpn: TLS handshake", "remote", c.RemoteAddr(), "route", rt.Name, "err", err)
			return fmt.Errorf("alpn: route %s: TLS handshake: %w", rt.Name, err)
		}
		conn = tc
	}
	if !stop() {
		// ctx was cancelled in the meantime.
		r.failed.Add(1)
		return context.Cause(ctx)
	}
	c.SetDeadline(time.Time{})
	release()
	if rt.l != nil {
		if err := rt.l.deliver(ctx, conn, deadline); err != nil {
			r.failed.Add(1)
			r.log.Debug("alpn: route listener", "route", rt.Name, "err", err)
			return fmt.Errorf("alpn: route %s: %w", rt.Name, err)
		}
		owned = false
		r.routed.Add(1)
		return nil
	}
	r.routed.Add(1)
	rt.Handler.HandleConn(ctx, conn, h)
	return nil
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// Shutdown stops accepting (closing the listeners given to Serve and the
// route listeners), then waits for handshakes and handlers in progress to
// finish until ctx is done, when it closes the router as Close does and
// returns ctx's error.
func (r *Router) Shutdown(ctx context.Context) error {
	if !r.stopAccepting() {
		return fmt.Errorf("alpn: shutdown: %w", net.ErrClosed)
	}
	for {
		r.mu.Lock()
		n := len(r.conns)
		r.mu.Unlock()
		if n == 0 {
			break
		}
		select {
		case <-r.idle:
		case <-time.After(50 * time.Millisecond):
		case <-ctx.Done():
			r.closeAll()
			return ctx.Err()
		}
	}
	r.closeAll()
	return nil
}

// Close closes the listeners and every connection the router owns (not
// those already handed to a route listener's Accept), cancels handler
// contexts and waits for the router's goroutines and ServeConn calls to
// return. A second Close returns an error wrapping net.ErrClosed.
func (r *Router) Close() error {
	if !r.stopAccepting() {
		return fmt.Errorf("alpn: close: %w", net.ErrClosed)
	}
	r.closeAll()
	return nil
}

// stopAccepting marks the router closed and closes its listeners. It
// reports false when the router was closed already.
func (r *Router) stopAccepting() bool {
	r.mu.Lock()
	if r.closed {
		r.mu.Unlock()
		return false
	}
	r.closed = true
	close(r.shutdown)
	var ls []io.Closer
	for l := range r.listeners {
		ls = append(ls, l)
	}
	for _, rt := range append(r.routes, r.def) {
		if rt != nil && rt.l != nil {
			ls = append(ls, rt.l)
		}
	}
	r.mu.Unlock()
	for _, l := range ls {
		l.Close()
	}
	return true
}

func (r *Router) closeAll() {
	r.mu.Lock()
	for c, cancel := range r.conns {
		if cancel != nil {
			cancel()
		}
		c.Close()
	}
	r.mu.Unlock()
	r.wg.Wait()
}

// routeListener hands a route's connections to Accept.
type routeListener struct {
	r    *Router
	ch   chan net.Conn
	done chan struct{}
	once sync.Once
	addr net.Addr
}

func (l *routeListener) deliver(ctx context.Context, c net.Conn, deadline time.Time) error {
	t := time.NewTimer(time.Until(deadline))
	defer t.Stop()
	select {
	case l.ch <- c:
		return nil
	case <-l.done:
		return net.ErrClosed
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return errors.New("no Accept within the handshake timeout")
	}
}

// Accept returns the route's next connection.
func (l *routeListener) Accept() (net.Conn, error) {
	select {
	case c := <-l.ch:
		return c, nil
	case <-l.done:
		return nil, net.ErrClosed
	}
}

// Close stops the route; conns waiting for Accept are closed.
func (l *routeListener) Close() error {
	err := fmt.Errorf("alpn: route listener: %w", net.ErrClosed)
	l.once.Do(func() {
		close(l.done)
		if l.r != nil {
			l.r.removeListenerRoute(l)
		}
		err = nil
	})
	return err
}

// Addr returns a placeholder address naming the route.
func (l *routeListener) Addr() net.Addr { return l.addr }

type routeAddr string

func (a routeAddr) Network() string { return "alpn" }
func (a routeAddr) String() string  { return string(a) }
