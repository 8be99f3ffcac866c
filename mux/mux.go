package mux

import (
	"bufio"
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/sallyport/sallyport/internal/netutil"
)

// ProxyMode says whether connections may or must begin with a PROXY
// protocol header.
type ProxyMode uint8

const (
	// ProxyOff rejects every connection that begins with a PROXY header.
	ProxyOff ProxyMode = iota
	// ProxyAccept takes a header from a trusted source when there is one
	// and serves connections without a header as they are. The first
	// header accepted is logged at warn level, once, as a hint to use
	// ProxyRequired when every connection comes through load balancers.
	ProxyAccept
	// ProxyRequired rejects every connection that does not begin with a
	// PROXY header from a trusted source.
	ProxyRequired
)

func (m ProxyMode) String() string {
	switch m {
	case ProxyOff:
		return "off"
	case ProxyAccept:
		return "accept"
	case ProxyRequired:
		return "required"
	}
	return fmt.Sprintf("ProxyMode(%d)", uint8(m))
}

// Defaults used for zero Config fields.
const (
	DefaultDetectTimeout = 5 * time.Second
	DefaultMaxDetecting  = 1024
)

// Config configures a Mux. The zero value (and a nil *Config) is valid: no
// PROXY headers, a 5 s detection deadline, up to 1024 connections in
// detection at once, no logging.
type Config struct {
	// ProxyProtocol is the PROXY protocol mode. Zero is ProxyOff.
	ProxyProtocol ProxyMode

	// TrustedNetworks are the source networks whose PROXY headers are
	// believed (the load balancers). A header from any other source is
	// rejected and the connection closed. ProxyAccept and ProxyRequired
	// need at least one entry; to trust every source, list 0.0.0.0/0 and
	// ::/0 explicitly. IPv4-mapped IPv6 sources are matched as IPv4. Only
	// TCP sources can be trusted.
	TrustedNetworks []netip.Prefix

	// DetectTimeout bounds the time from accept until the PROXY header
	// and the protocol's first bytes have arrived. Zero means
	// DefaultDetectTimeout; it must not be negative.
	DetectTimeout time.Duration

	// MaxDetecting caps the connections being detected at once; when the
	// cap is reached, the Mux stops accepting until one finishes. Zero
	// means DefaultMaxDetecting; it must not be negative.
	MaxDetecting int

	// Logger receives events. Per-connection events (health checks,
	// unknown protocols, timeouts) are logged at debug level; rejected
	// PROXY headers at warn level, at most once per kind every 10 s, the
	// rest at debug level. Nil discards.
	Logger *slog.Logger
}

// Errors returned by a Mux and its listeners, and the reasons for
// rejecting a PROXY header (they appear in the log).
var (
	// ErrClosed is returned by Serve and by Accept on a listener after
	// the Mux or the listener was closed. errors.Is(ErrClosed,
	// net.ErrClosed) holds.
	ErrClosed error = closedError{}
	// ErrProxyHeaderNotAllowed: a header arrived in ProxyOff mode.
	ErrProxyHeaderNotAllowed = errors.New("mux: PROXY protocol header not allowed")
	// ErrProxyHeaderUntrusted: a header arrived from a source outside
	// Config.TrustedNetworks.
	ErrProxyHeaderUntrusted = errors.New("mux: PROXY protocol header from an untrusted source")
	// ErrProxyHeaderMissing: no header arrived in ProxyRequired mode.
	ErrProxyHeaderMissing = errors.New("mux: PROXY protocol header missing")
)

type closedError struct{}

func (closedError) Error() string { return "mux: closed" }
func (closedError) Unwrap() error { return net.ErrClosed }

// Stats are the Mux's counters since New.
type Stats struct {
	// Accepted counts connections handed to a listener, per protocol.
	Accepted map[Protocol]uint64
	// Unknown counts connections whose first bytes matched no protocol
	// (or that ended before a protocol could be decided).
	Unknown uint64
	// Timeouts counts connections that did not send a PROXY header or
	// enough bytes within DetectTimeout.
	Timeouts uint64
	// ProxyHeaderErrors counts connections rejected for their PROXY
	// header: malformed or oversized, from an untrusted source, present
	// in ProxyOff mode or missing in ProxyRequired mode.
	ProxyHeaderErrors uint64
	// HealthChecks counts connections closed by the peer before their
	// first byte (or right after a PROXY header): load-balancer checks.
	HealthChecks uint64
	// NoListener counts connections of a protocol nobody listens for
	// (or whose listener was closed before it accepted them).
	NoListener uint64
	// ReadErrors counts other read errors during detection (resets).
	ReadErrors uint64
}

const (
	ctrUnknown = iota + int(numProtocols)
	ctrTimeouts
	ctrProxyErrors
	ctrHealthChecks
	ctrNoListener
	ctrReadErrors
	numCounters
)

// Mux splits one net.Listener into one listener per protocol. Create it
// with New, take listeners with Listener, then run Serve.
type Mux struct {
	l          net.Listener
	mode       ProxyMode
	trusted    []netip.Prefix
	timeout    time.Duration
	log        *slog.Logger
	sem        chan struct{}
	done       chan struct{} // closed by stop
	stopOnce   sync.Once
	wg         sync.WaitGroup
	counters   [numCounters]atomic.Uint64
	warnings   sync.Map // kind string -> *atomic.Int64 (unix nanos of last warn)
	acceptWarn sync.Once

	mu        sync.Mutex
	listeners [numProtocols]*listener
	detecting map[net.Conn]struct{}
	serving   bool
	closed    bool // Close or Shutdown was called
	stopped   bool // stop ran
}

// New returns a Mux that will accept connections from l once Serve runs.
// The Mux owns l: Close closes it. A nil cfg means the zero Config. New
// returns an error if cfg is invalid.
func New(l net.Listener, cfg *Config) (*Mux, error) {
	if cfg == nil {
		cfg = &Config{}
	}
	if l == nil {
		return nil, errors.New("mux: nil listener")
	}
	switch {
	case cfg.ProxyProtocol > ProxyRequired:
		return nil, fmt.Errorf("mux: invalid ProxyProtocol %v", cfg.ProxyProtocol)
	case cfg.ProxyProtocol != ProxyOff && len(cfg.TrustedNetworks) == 0:
		return nil, fmt.Errorf("mux: ProxyProtocol %v needs TrustedNetworks", cfg.ProxyProtocol)
	case cfg.DetectTimeout < 0:
		return nil, errors.New("mux: negative DetectTimeout")
	case cfg.MaxDetecting < 0:
		return nil, errors.New("mux: negative MaxDetecting")
	}
	m := &Mux{
		l:         l,
		mode:      cfg.ProxyProtocol,
		timeout:   cfg.DetectTimeout,
		log:       cfg.Logger,
		done:      make(chan struct{}),
		detecting: make(map[net.Conn]struct{}),
	}
	for _, p := range cfg.TrustedNetworks {
		if !p.IsValid() {
			return nil, fmt.Errorf("mux: invalid trusted network %v", p)
		}
		m.trusted = append(m.trusted, p.Masked())
	}
	if m.timeout == 0 {
		m.timeout = DefaultDetectTimeout
	}
	n := cfg.MaxDetecting
	if n == 0 {
		n = DefaultMaxDetecting
	}
	m.sem = make(chan struct{}, n)
	if m.log == nil {
		m.log = slog.New(slog.DiscardHandler)
	}
	return m, nil
}

// Addr returns the address of the underlying listener.
func (m *Mux) Addr() net.Addr { return m.l.Addr() }

// Listener returns the listener for protocol p, creating it on first use
// (later calls return the same listener). Connections of a protocol for
// which Listener was never called are closed, so call Listener for every
// protocol you serve before Serve. It panics if p is not one of
// Protocols().
func (m *Mux) Listener(p Protocol) net.Listener {
	if p == Unknown || p >= numProtocols {
		panic(fmt.Sprintf("mux: Listener(%v): not a detectable protocol", p))
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.listeners[p] == nil {
		m.listeners[p] = &listener{m: m, p: p, ch: make(chan *Conn), done: make(chan struct{})}
	}
	return m.listeners[p]
}

// Stats returns a snapshot of the counters.
func (m *Mux) Stats() Stats {
	s := Stats{Accepted: make(map[Protocol]uint64)}
	for _, p := range Protocols() {
		s.Accepted[p] = m.counters[p].Load()
	}
	s.Unknown = m.counters[ctrUnknown].Load()
	s.Timeouts = m.counters[ctrTimeouts].Load()
	s.ProxyHeaderErrors = m.counters[ctrProxyErrors].Load()
	s.HealthChecks = m.counters[ctrHealthChecks].Load()
	s.NoListener = m.counters[ctrNoListener].Load()
	s.ReadErrors = m.counters[ctrReadErrors].Load()
	return s
}

// Serve accepts connections and hands each, once detected, to the
// listener of its protocol. Detection runs in a goroutine per connection,
// so a slow client does not hold up others. Serve blocks until the Mux is
// closed (then it returns ErrClosed) or the underlying listener fails with
// a permanent error (then it stops the Mux, as Close does, and returns
// that error). Temporary accept errors are retried with a backoff. Serve
// may be called once.
func (m *Mux) Serve() error {
	m.mu.Lock()
	switch {
	case m.closed:
		m.mu.Unlock()
		return ErrClosed
	case m.serving:
		m.mu.Unlock()
		return errors.New("mux: Serve called twice")
	}
	m.serving = true
	m.wg.Add(1)
	m.mu.Unlock()
	defer m.wg.Done()
	return m.acceptLoop()
}

func (m *Mux) acceptLoop() error {
	var backoff netutil.AcceptBackoff
	for {
		select {
		case m.sem <- struct{}{}:
		case <-m.done:
			return ErrClosed
		}
		nc, err := m.l.Accept()
		if err != nil {
			<-m.sem
			if m.isClosed() {
				return ErrClosed
			}
			if delay, ok := backoff.Retry(err); ok {
				m.log.Warn("mux: accept", "err", err, "retry", delay)
				select {
				case <-time.After(delay):
					continue
				case <-m.done:
					return ErrClosed
				}
			}
			m.stop()
			return err
		}
		backoff.Reset()
		if !m.track(nc) {
			<-m.sem
			nc.Close()
			return ErrClosed
		}
		m.wg.Add(1)
		go m.serveConn(nc)
	}
}

func (m *Mux) isClosed() bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.closed || m.stopped
}

func (m *Mux) track(nc net.Conn) bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.stopped {
		return false
	}
	m.detecting[nc] = struct{}{}
	return true
}

func (m *Mux) untrack(nc net.Conn) {
	m.mu.Lock()
	delete(m.detecting, nc)
	m.mu.Unlock()
}

// serveConn detects nc's protocol and hands it over.
func (m *Mux) serveConn(nc net.Conn) {
	defer m.wg.Done()
	c, l := m.detect(nc)
	m.untrack(nc)
	<-m.sem
	if c == nil {
		nc.Close()
		return
	}
	select {
	case l.ch <- c:
		m.counters[c.proto].Add(1)
	case <-l.done:
		m.counters[ctrNoListener].Add(1)
		m.log.Debug("mux: listener closed", "remote", nc.RemoteAddr(), "protocol", c.proto)
		nc.Close()
	case <-m.done:
		nc.Close()
	}
}

var readerPool = sync.Pool{New: func() any { return bufio.NewReaderSize(nil, 512) }}

// detect reads the PROXY header and the protocol's first bytes. It returns
// the Conn to hand over and its listener, or nil when nc is to be closed.
func (m *Mux) detect(nc net.Conn) (*Conn, *listener) {
	nc.SetReadDeadline(time.Now().Add(m.timeout))
	br := readerPool.Get().(*bufio.Reader)
	br.Reset(nc)
	defer func() {
		br.Reset(nil)
		readerPool.Put(br)
	}()

	var hdr *ProxyHeader
	v, err := peekSignature(br)
	if err != nil {
		m.readFailed(nc, "proxy header", br.Buffered() == 0, err)
		return nil, nil
	}
	switch {
	case v != 0 && m.mode == ProxyOff:
		m.proxyError(nc, ErrProxyHeaderNotAllowed)
		return nil, nil
	case v != 0 && !m.isTrusted(nc.RemoteAddr()):
		m.proxyError(nc, ErrProxyHeaderUntrusted)
		return nil, nil
	case v != 0:
		hdr, err = ReadProxyHeader(br)
		if err != nil {
			if errors.Is(err, ErrProxyHeaderMalformed) || errors.Is(err, ErrProxyHeaderTooLong) {
				m.proxyError(nc, err)
			} else {
				m.readFailed(nc, "proxy header", false, err)
			}
			return nil, nil
		}
	case m.mode == ProxyRequired:
		m.proxyError(nc, ErrProxyHeaderMissing)
		return nil, nil
	}

	p, err := Detect(br)
	if err != nil && !errors.Is(err, io.ErrUnexpectedEOF) {
		m.readFailed(nc, "protocol", br.Buffered() == 0, err)
		return nil, nil
	}
	if p == Unknown {
		m.counters[ctrUnknown].Add(1)
		b, _ := br.Peek(min(br.Buffered(), 16))
		m.log.Debug("mux: unknown protocol", "remote", nc.RemoteAddr(), "first_bytes", hex.EncodeToString(b))
		return nil, nil
	}
	m.mu.Lock()
	l := m.listeners[p]
	m.mu.Unlock()
	if l == nil {
		m.counters[ctrNoListener].Add(1)
		m.log.Debug("mux: no listener", "remote", nc.RemoteAddr(), "protocol", p)
		return nil, nil
	}
	if err := nc.SetReadDeadline(time.Time{}); err != nil {
		m.readFailed(nc, "clear deadline", false, err)
		return nil, nil
	}
	var replay []byte
	if n := br.Buffered(); n > 0 {
		replay = make([]byte, n)
		br.Read(replay) // served from the buffer: no read on nc
	}
	if m.mode == ProxyAccept && hdr != nil && hdr.Command == ProxyProxy {
		m.acceptWarn.Do(func() {
			m.log.Warn("mux: PROXY header accepted in accept mode; if every connection comes through the load balancer, use ProxyRequired so that clients cannot bypass it",
				"remote", nc.RemoteAddr(), "client", hdr.Source)
		})
	}
	c := NewConn(nc, replay, hdr)
	c.proto = p
	return c, l
}

func (m *Mux) readFailed(nc net.Conn, stage string, empty bool, err error) {
	var ne net.Error
	switch {
	case errors.Is(err, io.EOF) || (empty && errors.Is(err, syscall.ECONNRESET)):
		// Closed (or reset, as HAProxy's checks do) before a byte was
		// sent, or right after a PROXY header.
		m.counters[ctrHealthChecks].Add(1)
		m.log.Debug("mux: closed before sending (health check)", "remote", nc.RemoteAddr())
	case errors.Is(err, os.ErrDeadlineExceeded) || (errors.As(err, &ne) && ne.Timeout()):
		m.counters[ctrTimeouts].Add(1)
		m.log.Debug("mux: detection timed out", "remote", nc.RemoteAddr(), "stage", stage)
	case errors.Is(err, io.ErrUnexpectedEOF):
		m.counters[ctrProxyErrors].Add(1)
		m.warn("truncated", "mux: truncated PROXY header", "remote", nc.RemoteAddr())
	default:
		m.counters[ctrReadErrors].Add(1)
		m.log.Debug("mux: read error during detection", "remote", nc.RemoteAddr(), "stage", stage, "err", err)
	}
}

func (m *Mux) proxyError(nc net.Conn, err error) {
	m.counters[ctrProxyErrors].Add(1)
	kind := err.Error()
	if errors.Is(err, ErrProxyHeaderMalformed) {
		kind = ErrProxyHeaderMalformed.Error()
	}
	m.warn(kind, "mux: PROXY header rejected", "remote", nc.RemoteAddr(), "mode", m.mode, "err", err)
}

// warn logs at warn level at most once per kind every 10 s, and at debug
// level otherwise, so a stream of bad connections cannot flood the log.
func (m *Mux) warn(kind, msg string, args ...any) {
	now := time.Now().UnixNano()
	v, _ := m.warnings.LoadOrStore(kind, new(atomic.Int64))
	last := v.(*atomic.Int64)
	prev := last.Load()
	if (prev == 0 || now-prev >= int64(10*time.Second)) && last.CompareAndSwap(prev, now) {
		m.log.Warn(msg, args...)
		return
	}
	m.log.Debug(msg, args...)
}

func (m *Mux) isTrusted(a net.Addr) bool {
	ta, ok := a.(*net.TCPAddr)
	if !ok {
		return false
	}
	ip := ta.AddrPort().Addr().Unmap()
	for _, p := range m.trusted {
		if p.Contains(ip) {
			return true
		}
	}
	return false
}

// stop closes the underlying listener, the connections in detection and
// the listeners; it does not wait.
func (m *Mux) stop() {
	m.stopOnce.Do(func() {
		m.mu.Lock()
		m.stopped = true
		conns := m.detecting
		m.detecting = map[net.Conn]struct{}{}
		m.mu.Unlock()
		close(m.done)
		m.l.Close()
		for nc := range conns {
			nc.Close()
		}
	})
}

// Close closes the underlying listener, every connection still being
// detected, and every listener (their Accept returns ErrClosed), then
// waits for the Mux's goroutines to finish. Connections already handed
// out are not touched. A second Close returns ErrClosed.
func (m *Mux) Close() error {
	m.mu.Lock()
	was := m.closed
	m.closed = true
	m.mu.Unlock()
	m.stop()
	m.wg.Wait()
	if was {
		return ErrClosed
	}
	return nil
}

// Shutdown stops accepting new connections, lets those already accepted
// finish detection and reach their listeners' Accept, then closes the Mux
// as Close does. If ctx ends first, Shutdown closes the Mux at once and
// returns ctx.Err().
func (m *Mux) Shutdown(ctx context.Context) error {
	m.mu.Lock()
	m.closed = true
	m.mu.Unlock()
	m.l.Close()
	idle := make(chan struct{})
	go func() { m.wg.Wait(); close(idle) }()
	var err error
	select {
	case <-idle:
	case <-ctx.Done():
		err = ctx.Err()
	}
	m.stop()
	<-idle
	return err
}

// listener is the net.Listener of one protocol.
type listener struct {
	m    *Mux
	p    Protocol
	ch   chan *Conn
	done chan struct{}
	once sync.Once
}

// Accept returns the next connection of the listener's protocol, a *Conn.
func (l *listener) Accept() (net.Conn, error) {
	select {
	case c := <-l.ch:
		return c, nil
	case <-l.done:
		return nil, ErrClosed
	case <-l.m.done:
		return nil, ErrClosed
	}
}

// Close stops this listener; connections of its protocol are closed from
// now on. The Mux and its other listeners go on. A second Close returns
// ErrClosed.
func (l *listener) Close() error {
	err := ErrClosed
	l.once.Do(func() { close(l.done); err = nil })
	return err
}

// Addr returns the address of the Mux's underlying listener.
func (l *listener) Addr() net.Addr { return l.m.l.Addr() }
