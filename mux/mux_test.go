package mux

import (
	"bufio"
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// startMux serves a Mux on a fresh loopback listener until the test ends.
// Listeners must be taken before the test dials.
func startMux(t testing.TB, cfg *Config) *Mux {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	m, err := New(l, cfg)
	if err != nil {
		l.Close()
		t.Fatal(err)
	}
	errc := make(chan error, 1)
	go func() { errc <- m.Serve() }()
	t.Cleanup(func() {
		m.Close()
		if err := <-errc; !errors.Is(err, net.ErrClosed) {
			t.Errorf("Serve returned %v, want an error wrapping net.ErrClosed", err)
		}
	})
	return m
}

// acceptConn accepts one connection from l within timeout.
func acceptConn(t testing.TB, l net.Listener, timeout time.Duration) (*Conn, error) {
	t.Helper()
	type res struct {
		c   net.Conn
		err error
	}
	ch := make(chan res, 1)
	go func() {
		c, err := l.Accept()
		ch <- res{c, err}
	}()
	select {
	case r := <-ch:
		if r.err != nil {
			return nil, r.err
		}
		c := r.c.(*Conn)
		t.Cleanup(func() { c.Close() })
		return c, nil
	case <-time.After(timeout):
		// Unblock the Accept by closing the listener.
		l.Close()
		r := <-ch
		if r.c != nil {
			r.c.Close()
		}
		return nil, errors.New("no connection accepted")
	}
}

func dial(t testing.TB, addr net.Addr) net.Conn {
	t.Helper()
	c, err := net.DialTimeout("tcp", addr.String(), 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// expectClosed checks that the mux closes c without sending anything.
func expectClosed(t testing.TB, c net.Conn) {
	t.Helper()
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	b, err := io.ReadAll(c)
	if err != nil && !isReset(err) {
		t.Fatalf("read from rejected conn: %v", err)
	}
	if len(b) > 0 {
		t.Fatalf("rejected conn sent %q", b)
	}
}

func isReset(err error) bool {
	return err != nil && strings.Contains(err.Error(), "connection reset")
}

func waitFor(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func mustHeader(t testing.TB, h *ProxyHeader) []byte {
	t.Helper()
	b, err := h.AppendBinary(nil)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

var (
	loopback   = []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")}
	elsewhere  = []netip.Prefix{netip.MustParsePrefix("192.0.2.0/24")}
	clientAddr = netip.MustParseAddrPort("203.0.113.7:40001")
	frontAddr  = netip.MustParseAddrPort("198.51.100.1:443")
)

// TestProxyModes runs every PROXY mode against trusted and untrusted
// sources, with no header, a version 1 and a version 2 header.
func TestProxyModes(t *testing.T) {
	type outcome int
	const (
		realAddr  outcome = iota // accepted, socket addresses
		proxyAddr                // accepted, addresses from the header
		rejected                 // closed, counted as a PROXY header error
	)
	tests := []struct {
		name    string
		mode    ProxyMode
		trusted bool
		header  int // 0 none, 1 or 2
		want    outcome
	}{
		{"off/trusted/none", ProxyOff, true, 0, realAddr},
		{"off/trusted/v1", ProxyOff, true, 1, rejected},
		{"off/trusted/v2", ProxyOff, true, 2, rejected},
		{"off/untrusted/none", ProxyOff, false, 0, realAddr},
		{"off/untrusted/v1", ProxyOff, false, 1, rejected},
		{"off/untrusted/v2", ProxyOff, false, 2, rejected},
		{"accept/trusted/none", ProxyAccept, true, 0, realAddr},
		{"accept/trusted/v1", ProxyAccept, true, 1, proxyAddr},
		{"accept/trusted/v2", ProxyAccept, true, 2, proxyAddr},
		{"accept/untrusted/none", ProxyAccept, false, 0, realAddr},
		{"accept/untrusted/v1", ProxyAccept, false, 1, rejected},
		{"accept/untrusted/v2", ProxyAccept, false, 2, rejected},
		{"required/trusted/none", ProxyRequired, true, 0, rejected},
		{"required/trusted/v1", ProxyRequired, true, 1, proxyAddr},
		{"required/trusted/v2", ProxyRequired, true, 2, proxyAddr},
		{"required/untrusted/none", ProxyRequired, false, 0, rejected},
		{"required/untrusted/v1", ProxyRequired, false, 1, rejected},
		{"required/untrusted/v2", ProxyRequired, false, 2, rejected},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			nets := elsewhere
			if tc.trusted {
				nets = loopback
			}
			m := startMux(t, &Config{ProxyProtocol: tc.mode, TrustedNetworks: nets, DetectTimeout: 5 * time.Second})
			sshL := m.Listener(SSH)
			c := dial(t, m.Addr())
			var hdr []byte
			if tc.header != 0 {
				hdr = mustHeader(t, &ProxyHeader{Version: tc.header, Command: ProxyProxy, Source: clientAddr, Destination: frontAddr})
			}
			const hello = "SSH-2.0-test\r\n"
			if _, err := c.Write(append(hdr, hello...)); err != nil {
				t.Fatal(err)
			}
			if tc.want == rejected {
				expectClosed(t, c)
				s := m.Stats()
				if s.ProxyHeaderErrors != 1 || s.Accepted[SSH] != 0 {
					t.Fatalf("stats %+v, want one PROXY header error and nothing accepted", s)
				}
				return
			}
			sc, err := acceptConn(t, sshL, 5*time.Second)
			if err != nil {
				t.Fatal(err)
			}
			line, err := bufio.NewReader(sc).ReadString('\n')
			if err != nil || line != hello {
				t.Fatalf("server read %q, %v; want %q", line, err, hello)
			}
			wantRemote, wantLocal := c.LocalAddr().String(), c.RemoteAddr().String()
			if tc.want == proxyAddr {
				wantRemote, wantLocal = clientAddr.String(), frontAddr.String()
				if sc.ProxyHeader() == nil || sc.ProxyHeader().Version != tc.header {
					t.Errorf("ProxyHeader() = %+v, want version %d", sc.ProxyHeader(), tc.header)
				}
			} else if sc.ProxyHeader() != nil {
				t.Errorf("ProxyHeader() = %+v, want nil", sc.ProxyHeader())
			}
			if got := sc.RemoteAddr().String(); got != wantRemote {
				t.Errorf("RemoteAddr = %s, want %s", got, wantRemote)
			}
			if got := sc.LocalAddr().String(); got != wantLocal {
				t.Errorf("LocalAddr = %s, want %s", got, wantLocal)
			}
			if sc.Protocol() != SSH {
				t.Errorf("Protocol = %v", sc.Protocol())
			}
			waitFor(t, "accepted counter", func() bool { return m.Stats().Accepted[SSH] == 1 })
			if s := m.Stats(); s.ProxyHeaderErrors != 0 {
				t.Errorf("stats %+v", s)
			}
		})
	}
}

// TestProxyHeaderKinds covers headers that are not a plain PROXY command:
// LOCAL, UNKNOWN, malformed, oversized and truncated ones.
func TestProxyHeaderKinds(t *testing.T) {
	v2local := mustHeader(t, &ProxyHeader{Version: 2, Command: ProxyLocal})
	oversized := []byte("\r\n\r\n\x00\r\nQUIT\n\x21\x11\xff\xff")
	v1long := []byte("PROXY TCP4 " + strings.Repeat("1", 120) + "\r\n")
	tests := []struct {
		name     string
		send     []byte
		closeW   bool // half-close after sending
		accepted bool // reaches the SSH listener with the socket's addresses
		counter  func(Stats) uint64
	}{
		{"v2 LOCAL keeps socket addresses", append(v2local, "SSH-2.0-x\r\n"...), false, true, nil},
		{"v1 UNKNOWN keeps socket addresses", []byte("PROXY UNKNOWN whatever\r\nSSH-2.0-x\r\n"), false, true, nil},
		{"v1 bad address", []byte("PROXY TCP4 1.2.3 4.5.6.7 1 2\r\nSSH-2.0-x\r\n"), false, false, func(s Stats) uint64 { return s.ProxyHeaderErrors }},
		{"v1 family mismatch", []byte("PROXY TCP6 1.2.3.4 4.5.6.7 1 2\r\nSSH-2.0-x\r\n"), false, false, func(s Stats) uint64 { return s.ProxyHeaderErrors }},
		{"v1 too long", v1long, false, false, func(s Stats) uint64 { return s.ProxyHeaderErrors }},
		{"v2 oversized", oversized, false, false, func(s Stats) uint64 { return s.ProxyHeaderErrors }},
		{"v2 bad version", []byte("\r\n\r\n\x00\r\nQUIT\n\x31\x11\x00\x0c"), false, false, func(s Stats) uint64 { return s.ProxyHeaderErrors }},
		{"v2 truncated then closed", []byte("\r\n\r\n\x00\r\nQUIT\n\x21\x11\x00\x0c\x01\x02"), true, false, func(s Stats) uint64 { return s.ProxyHeaderErrors }},
		{"v2 LOCAL then close is a health check", v2local, true, false, func(s Stats) uint64 { return s.HealthChecks }},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			m := startMux(t, &Config{ProxyProtocol: ProxyAccept, TrustedNetworks: loopback})
			sshL := m.Listener(SSH)
			c := dial(t, m.Addr())
			if _, err := c.Write(tc.send); err != nil {
				t.Fatal(err)
			}
			if tc.closeW {
				c.(*net.TCPConn).CloseWrite()
			}
			if !tc.accepted {
				expectClosed(t, c)
				if got := tc.counter(m.Stats()); got != 1 {
					t.Fatalf("counter = %d, want 1; stats %+v", got, m.Stats())
				}
				return
			}
			sc, err := acceptConn(t, sshL, 5*time.Second)
			if err != nil {
				t.Fatal(err)
			}
			if got, want := sc.RemoteAddr().String(), c.LocalAddr().String(); got != want {
				t.Errorf("RemoteAddr = %s, want %s", got, want)
			}
			if h := sc.ProxyHeader(); h == nil || h.Command != ProxyLocal {
				t.Errorf("ProxyHeader = %+v, want a LOCAL header", h)
			}
		})
	}
}

// recordingHandler keeps the records at or above level.
type recordingHandler struct {
	level slog.Level
	mu    sync.Mutex
	recs  []slog.Record
}

func (h *recordingHandler) Enabled(_ context.Context, l slog.Level) bool { return l >= h.level }
func (h *recordingHandler) Handle(_ context.Context, r slog.Record) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.recs = append(h.recs, r)
	return nil
}
func (h *recordingHandler) WithAttrs([]slog.Attr) slog.Handler { return h }
func (h *recordingHandler) WithGroup(string) slog.Handler      { return h }
func (h *recordingHandler) messages() []string {
	h.mu.Lock()
	defer h.mu.Unlock()
	var s []string
	for _, r := range h.recs {
		s = append(s, r.Level.String()+" "+r.Message)
	}
	return s
}

// TestDetectionOutcomes checks what happens to connections that are not
// handed over, and the counters and logs they leave.
func TestDetectionOutcomes(t *testing.T) {
	tests := []struct {
		name    string
		send    string
		closeW  bool
		counter func(Stats) uint64
	}{
		{"unknown protocol", "hello there\r\n", false, func(s Stats) uint64 { return s.Unknown }},
		{"no listener for TLS", "\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03", false, func(s Stats) uint64 { return s.NoListener }},
		{"undecided then closed", "GE", true, func(s Stats) uint64 { return s.Unknown }},
		{"silent client times out", "", false, func(s Stats) uint64 { return s.Timeouts }},
		{"half a method times out", "PROP", false, func(s Stats) uint64 { return s.Timeouts }},
		{"health check", "", true, func(s Stats) uint64 { return s.HealthChecks }},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			h := &recordingHandler{level: slog.LevelInfo}
			m := startMux(t, &Config{DetectTimeout: 200 * time.Millisecond, Logger: slog.New(h)})
			m.Listener(SSH)
			m.Listener(HTTP)
			c := dial(t, m.Addr())
			if tc.send != "" {
				c.Write([]byte(tc.send))
			}
			if tc.closeW {
				c.(*net.TCPConn).CloseWrite()
			}
			expectClosed(t, c)
			if got := tc.counter(m.Stats()); got != 1 {
				t.Fatalf("counter = %d, want 1; stats %+v", got, m.Stats())
			}
			if msgs := h.messages(); len(msgs) != 0 {
				t.Errorf("logged above debug level: %q", msgs)
			}
		})
	}
}

func TestHealthChecksDoNotFloodLogs(t *testing.T) {
	h := &recordingHandler{level: slog.LevelInfo}
	m := startMux(t, &Config{ProxyProtocol: ProxyRequired, TrustedNetworks: loopback, Logger: slog.New(h)})
	m.Listener(HTTP)
	local := mustHeader(t, &ProxyHeader{Version: 2, Command: ProxyLocal})
	for i := range 50 {
		c, err := net.Dial("tcp", m.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		if i%2 == 0 {
			c.Write(local)
		}
		c.Close()
	}
	waitFor(t, "50 health checks", func() bool { return m.Stats().HealthChecks == 50 })
	if msgs := h.messages(); len(msgs) != 0 {
		t.Errorf("health checks logged above debug level: %q", msgs)
	}
}

func TestRejectionWarningsAreRateLimited(t *testing.T) {
	h := &recordingHandler{level: slog.LevelWarn}
	m := startMux(t, &Config{Logger: slog.New(h)})
	m.Listener(HTTP)
	for range 20 {
		c := dial(t, m.Addr())
		c.Write([]byte("PROXY TCP4 1.2.3.4 5.6.7.8 1 2\r\nGET / HTTP/1.1\r\n\r\n"))
		expectClosed(t, c)
	}
	if s := m.Stats(); s.ProxyHeaderErrors != 20 {
		t.Fatalf("ProxyHeaderErrors = %d, want 20", s.ProxyHeaderErrors)
	}
	if msgs := h.messages(); len(msgs) != 1 {
		t.Errorf("warnings = %q, want exactly one", msgs)
	}
}

func TestAcceptModeWarnsOnce(t *testing.T) {
	h := &recordingHandler{level: slog.LevelWarn}
	m := startMux(t, &Config{ProxyProtocol: ProxyAccept, TrustedNetworks: loopback, Logger: slog.New(h)})
	sshL := m.Listener(SSH)
	for range 3 {
		c := dial(t, m.Addr())
		c.Write(append(mustHeader(t, &ProxyHeader{Version: 2, Command: ProxyProxy, Source: clientAddr, Destination: frontAddr}), "SSH-2.0-x\r\n"...))
		if _, err := acceptConn(t, sshL, 5*time.Second); err != nil {
			t.Fatal(err)
		}
	}
	if msgs := h.messages(); len(msgs) != 1 || !strings.Contains(msgs[0], "accept mode") {
		t.Errorf("warnings = %q, want one about accept mode", msgs)
	}
}

// TestSlowClientDoesNotBlockOthers holds a silent connection open while
// another one is detected and accepted.
func TestSlowClientDoesNotBlockOthers(t *testing.T) {
	m := startMux(t, &Config{DetectTimeout: 10 * time.Second})
	httpL := m.Listener(HTTP)
	for range 5 {
		dial(t, m.Addr()) // silent
	}
	c := dial(t, m.Addr())
	c.Write([]byte("GET / HTTP/1.0\r\n\r\n"))
	start := time.Now()
	if _, err := acceptConn(t, httpL, 2*time.Second); err != nil {
		t.Fatalf("accept behind silent clients: %v", err)
	}
	t.Logf("accepted after %v behind 5 silent clients", time.Since(start))
}

// TestMaxDetecting checks that the cap on concurrent detections holds
// later connections back until a slot frees.
func TestMaxDetecting(t *testing.T) {
	const timeout = 300 * time.Millisecond
	m := startMux(t, &Config{DetectTimeout: timeout, MaxDetecting: 1})
	httpL := m.Listener(HTTP)
	dial(t, m.Addr()) // silent: holds the only slot until it times out
	time.Sleep(50 * time.Millisecond)
	start := time.Now()
	c := dial(t, m.Addr())
	c.Write([]byte("GET / HTTP/1.0\r\n\r\n"))
	if _, err := acceptConn(t, httpL, 5*time.Second); err != nil {
		t.Fatal(err)
	}
	if d := time.Since(start); d < timeout-100*time.Millisecond {
		t.Fatalf("accepted after %v although the only detection slot was taken for %v", d, timeout)
	}
	if s := m.Stats(); s.Timeouts != 1 {
		t.Fatalf("Timeouts = %d, want 1", s.Timeouts)
	}
}

func TestConfigValidation(t *testing.T) {
	tests := []struct {
		name string
		cfg  *Config
		ok   bool
	}{
		{"nil", nil, true},
		{"zero", &Config{}, true},
		{"accept without trusted networks", &Config{ProxyProtocol: ProxyAccept}, false},
		{"required without trusted networks", &Config{ProxyProtocol: ProxyRequired}, false},
		{"required with trusted networks", &Config{ProxyProtocol: ProxyRequired, TrustedNetworks: loopback}, true},
		{"invalid mode", &Config{ProxyProtocol: 7}, false},
		{"invalid prefix", &Config{ProxyProtocol: ProxyAccept, TrustedNetworks: []netip.Prefix{{}}}, false},
		{"negative timeout", &Config{DetectTimeout: -1}, false},
		{"negative cap", &Config{MaxDetecting: -1}, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			l, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				t.Fatal(err)
			}
			defer l.Close()
			m, err := New(l, tc.cfg)
			if (err == nil) != tc.ok {
				t.Fatalf("New error = %v, want ok=%v", err, tc.ok)
			}
			if m != nil {
				m.Close()
			}
		})
	}
}

func TestLifecycle(t *testing.T) {
	t.Run("close", func(t *testing.T) {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		m, err := New(l, nil)
		if err != nil {
			t.Fatal(err)
		}
		tlsL, httpL := m.Listener(TLS), m.Listener(HTTP)
		if m.Listener(TLS) != tlsL {
			t.Error("Listener(TLS) returned a different listener the second time")
		}
		errc := make(chan error, 1)
		go func() { errc <- m.Serve() }()
		acceptErr := make(chan error, 1)
		go func() { _, err := tlsL.Accept(); acceptErr <- err }()
		silent := dial(t, m.Addr()) // in detection when Close runs
		waitFor(t, "detection to start", func() bool {
			m.mu.Lock()
			defer m.mu.Unlock()
			return len(m.detecting) == 1
		})
		if err := m.Close(); err != nil {
			t.Fatalf("Close: %v", err)
		}
		if err := <-errc; !errors.Is(err, ErrClosed) || !errors.Is(err, net.ErrClosed) {
			t.Errorf("Serve = %v, want ErrClosed", err)
		}
		if err := <-acceptErr; !errors.Is(err, net.ErrClosed) {
			t.Errorf("pending Accept = %v, want net.ErrClosed", err)
		}
		if _, err := httpL.Accept(); !errors.Is(err, net.ErrClosed) {
			t.Errorf("Accept after Close = %v", err)
		}
		expectClosed(t, silent)
		if err := m.Close(); !errors.Is(err, net.ErrClosed) {
			t.Errorf("second Close = %v, want net.ErrClosed", err)
		}
		if err := m.Serve(); !errors.Is(err, net.ErrClosed) {
			t.Errorf("Serve after Close = %v", err)
		}
		if _, err := net.Dial("tcp", m.Addr().String()); err == nil {
			t.Error("underlying listener still accepts after Close")
		}
	})
	t.Run("listener close", func(t *testing.T) {
		m := startMux(t, nil)
		httpL := m.Listener(HTTP)
		if err := httpL.Close(); err != nil {
			t.Fatal(err)
		}
		if err := httpL.Close(); !errors.Is(err, net.ErrClosed) {
			t.Errorf("second listener Close = %v", err)
		}
		c := dial(t, m.Addr())
		c.Write([]byte("GET / HTTP/1.0\r\n\r\n"))
		expectClosed(t, c)
		waitFor(t, "NoListener", func() bool { return m.Stats().NoListener == 1 })
		if got := httpL.Addr().String(); got != m.Addr().String() {
			t.Errorf("listener Addr = %s, want %s", got, m.Addr())
		}
	})
	t.Run("shutdown hands over detected conns", func(t *testing.T) {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		m, err := New(l, nil)
		if err != nil {
			t.Fatal(err)
		}
		httpL := m.Listener(HTTP)
		errc := make(chan error, 1)
		go func() { errc <- m.Serve() }()
		c := dial(t, m.Addr())
		c.Write([]byte("GE"))
		waitFor(t, "detection to start", func() bool {
			m.mu.Lock()
			defer m.mu.Unlock()
			return len(m.detecting) == 1
		})
		got := make(chan net.Conn, 1)
		go func() {
			sc, err := httpL.Accept()
			if err != nil {
				got <- nil
				return
			}
			got <- sc
		}()
		done := make(chan error, 1)
		go func() { done <- m.Shutdown(context.Background()) }()
		time.Sleep(50 * time.Millisecond)
		c.Write([]byte("T / HTTP/1.0\r\n\r\n"))
		sc := <-got
		if sc == nil {
			t.Fatal("connection in detection was not handed over during Shutdown")
		}
		sc.Close()
		if err := <-done; err != nil {
			t.Fatalf("Shutdown: %v", err)
		}
		if err := <-errc; !errors.Is(err, net.ErrClosed) {
			t.Errorf("Serve = %v", err)
		}
	})
	t.Run("shutdown deadline", func(t *testing.T) {
		m := startMux(t, nil)
		m.Listener(HTTP)
		c := dial(t, m.Addr())
		c.Write([]byte("GET / HTTP/1.0\r\n\r\n")) // nobody accepts it
		waitFor(t, "handoff", func() bool {
			m.mu.Lock()
			defer m.mu.Unlock()
			return len(m.detecting) == 0
		})
		ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
		defer cancel()
		if err := m.Shutdown(ctx); !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("Shutdown = %v, want context.DeadlineExceeded", err)
		}
		expectClosed(t, c)
	})
}

func TestListenerPanicsOnUnknown(t *testing.T) {
	m := startMux(t, nil)
	defer func() {
		if recover() == nil {
			t.Error("Listener(Unknown) did not panic")
		}
	}()
	m.Listener(Unknown)
}

func TestTrustedSources(t *testing.T) {
	m, err := New(&net.TCPListener{}, &Config{ProxyProtocol: ProxyAccept, TrustedNetworks: []netip.Prefix{
		netip.MustParsePrefix("10.1.2.3/8"), // not masked: New masks it
		netip.MustParsePrefix("fd00::/8"),
	}})
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		addr net.Addr
		want bool
	}{
		{"ipv4 inside", net.TCPAddrFromAddrPort(netip.MustParseAddrPort("10.200.0.1:5000")), true},
		{"ipv4 outside", net.TCPAddrFromAddrPort(netip.MustParseAddrPort("11.0.0.1:5000")), false},
		{"ipv4-mapped ipv6 inside", &net.TCPAddr{IP: net.ParseIP("::ffff:10.0.0.9"), Port: 1}, true},
		{"ipv6 inside", net.TCPAddrFromAddrPort(netip.MustParseAddrPort("[fd12::1]:1")), true},
		{"ipv6 outside", net.TCPAddrFromAddrPort(netip.MustParseAddrPort("[2001:db8::1]:1")), false},
		{"unix socket", &net.UnixAddr{Name: "/run/x.sock", Net: "unix"}, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := m.isTrusted(tc.addr); got != tc.want {
				t.Errorf("isTrusted(%v) = %v, want %v", tc.addr, got, tc.want)
			}
		})
	}
}

// TestDeadlineCleared checks that the detection deadline does not reach
// the server: a read after DetectTimeout still waits for data.
func TestDeadlineCleared(t *testing.T) {
	const timeout = 100 * time.Millisecond
	m := startMux(t, &Config{DetectTimeout: timeout})
	httpL := m.Listener(HTTP)
	c := dial(t, m.Addr())
	c.Write([]byte("GET / HTTP/1.1\r\n"))
	sc, err := acceptConn(t, httpL, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	go func() {
		time.Sleep(3 * timeout)
		c.Write([]byte("Host: x\r\n\r\n"))
	}()
	b := make([]byte, 64)
	var got []byte
	for !strings.HasSuffix(string(got), "\r\n\r\n") {
		n, err := sc.Read(b)
		if err != nil {
			t.Fatalf("read after the detection deadline: %v (got %q)", err, got)
		}
		got = append(got, b[:n]...)
	}
	if string(got) != "GET / HTTP/1.1\r\nHost: x\r\n\r\n" {
		t.Fatalf("read %q", got)
	}
}

// TestMixedConcurrent sends many connections of every protocol at once,
// some with PROXY headers and each written in small pieces, and checks
// that each arrives whole at its protocol's listener with its address.
func TestMixedConcurrent(t *testing.T) {
	m := startMux(t, &Config{ProxyProtocol: ProxyAccept, TrustedNetworks: loopback, MaxDetecting: 8})
	firsts := map[Protocol]string{
		TLS:      "\x16\x03\x01\x00\x05hello",
		SSH:      "SSH-2.0-mixed\r\n",
		HTTP:     "GET / HTTP/1.1\r\n\r\n",
		Postgres: string(pgPacket(8, pgSSLRequest)),
	}
	const perProto = 25
	type arrival struct {
		data, remote string
	}
	got := make(chan arrival, 4*perProto)
	var wg sync.WaitGroup
	for p := range firsts {
		l := m.Listener(p)
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range perProto {
				c, err := l.Accept()
				if err != nil {
					t.Errorf("%v Accept: %v", p, err)
					return
				}
				b := make([]byte, len(firsts[p])+1) // +1: the client's index byte
				_, err = io.ReadFull(c, b)
				c.Close()
				if err != nil {
					t.Errorf("%v read: %v", p, err)
					return
				}
				got <- arrival{string(b), c.RemoteAddr().String()}
			}
		}()
	}
	want := map[arrival]bool{}
	var clients sync.WaitGroup
	for p, first := range firsts {
		for i := range perProto {
			src := netip.AddrPortFrom(netip.AddrFrom4([4]byte{203, 0, 113, byte(i)}), uint16(1000+int(p)))
			var msg []byte
			if i%2 == 0 {
				msg = mustHeader(t, &ProxyHeader{Version: 1 + i%4/2, Command: ProxyProxy, Source: src, Destination: frontAddr})
			}
			msg = append(append(msg, first...), byte(i))
			clients.Add(1)
			c := dial(t, m.Addr())
			remote := c.LocalAddr().String()
			if i%2 == 0 {
				remote = src.String()
			}
			want[arrival{first + string([]byte{byte(i)}), remote}] = true
			go func() {
				defer clients.Done()
				for len(msg) > 0 { // small pieces
					n := min(len(msg), 3)
					if _, err := c.Write(msg[:n]); err != nil {
						t.Error(err)
						return
					}
					msg = msg[n:]
					time.Sleep(time.Millisecond)
				}
			}()
		}
	}
	clients.Wait()
	wg.Wait()
	close(got)
	for a := range got {
		if !want[a] {
			t.Errorf("unexpected arrival %q from %s", a.data, a.remote)
		}
		delete(want, a)
	}
	if len(want) != 0 {
		t.Errorf("%d connections did not arrive", len(want))
	}
	s := m.Stats()
	for p := range firsts {
		if s.Accepted[p] != perProto {
			waitFor(t, "accepted counters", func() bool { return m.Stats().Accepted[p] == perProto })
		}
	}
}
