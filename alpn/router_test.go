package alpn

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"reflect"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"testing/iotest"
	"time"
)

var testNames = []string{"router.example.com", "app.example.com", "*.apps.example.com",
	"a.b.apps.example.com", "apps.example.com", "localhost", "127.0.0.1"}

// reportRoute answers with the route, the matched protocol, the SNI and the
// negotiated protocol of a terminated conn.
func reportRoute(ctx context.Context, c net.Conn, h *Hello) {
	defer c.Close()
	neg := "-"
	if tc, ok := c.(*tls.Conn); ok {
		neg = tc.ConnectionState().NegotiatedProtocol
	}
	fmt.Fprintf(c, "%s|%s|%s|%s|%v", h.Route, h.Protocol, h.ServerName, neg, h.Upgraded)
}

// backendHandler terminates TLS itself, like a backend behind a
// passthrough route, and reports.
func backendHandler(cfg *tls.Config) Handler {
	return HandlerFunc(func(ctx context.Context, c net.Conn, h *Hello) {
		if _, ok := c.(*Conn); !ok {
			c.Close()
			panic(fmt.Sprintf("passthrough handler got %T", c))
		}
		tc := tls.Server(c, cfg)
		tc.SetDeadline(time.Now().Add(10 * time.Second))
		if err := tc.HandshakeContext(ctx); err != nil {
			c.Close()
			return
		}
		fmt.Fprintf(tc, "%s|%s|%s|backend:%s|%v", h.Route, h.Protocol, h.ServerName, tc.ConnectionState().NegotiatedProtocol, h.Upgraded)
		tc.Close()
	})
}

func TestRoutes(t *testing.T) {
	pki := newPKI(t)
	cert := pki.Leaf(t, testNames...)
	backend := &tls.Config{Certificates: []tls.Certificate{cert},
		NextProtos: []string{"sallyport-postgres-ping", "sallyport-postgres", "h2", "http/1.1"}}
	r := newRouter(t, &Config{GetCertificate: func(*tls.ClientHelloInfo) (*tls.Certificate, error) { return &cert, nil }})
	mustHandle(t, r, Route{Name: "tunnel", ALPN: []string{ProtocolReverseTunnel},
		TLSConfig: &tls.Config{Certificates: []tls.Certificate{cert}}, Handler: HandlerFunc(reportRoute)})
	mustHandle(t, r, Route{Name: "db", ALPN: []string{"sallyport-postgres*"}, Handler: backendHandler(backend)})
	mustHandle(t, r, Route{Name: "app", SNI: []string{"app.example.com"}, Handler: backendHandler(backend)})
	mustHandle(t, r, Route{Name: "wild", SNI: []string{"*.apps.example.com"}, ALPN: WebProtocols(), Handler: backendHandler(backend)})
	mustHandle(t, r, Route{Name: "acme", ALPN: []string{ProtocolACME}, TLSConfig: &tls.Config{}, Handler: HandlerFunc(reportRoute)})
	mustHandle(t, r, Route{Name: "web", Handler: backendHandler(backend)})
	addr := serveRouter(t, r)

	tests := []struct {
		name   string
		sni    string
		protos []string
		want   string
	}{
		{"alpn exact, terminating", "router.example.com", []string{ProtocolReverseTunnel}, "tunnel|sallyport-reversetunnel|router.example.com|sallyport-reversetunnel|false"},
		{"alpn in client order", "router.example.com", []string{"other", ProtocolReverseTunnel}, "tunnel|sallyport-reversetunnel|router.example.com|sallyport-reversetunnel|false"},
		{"alpn prefix, passthrough", "router.example.com", []string{Ping(ProtocolPostgres), ProtocolPostgres}, "db|sallyport-postgres-ping|router.example.com|backend:sallyport-postgres-ping|false"},
		{"sni exact", "app.example.com", nil, "app||app.example.com|backend:|false"},
		{"sni exact ignores case", "APP.Example.com", []string{"h2"}, "app||app.example.com|backend:h2|false"},
		{"sni wildcard", "x.apps.example.com", []string{"http/1.1"}, "wild|http/1.1|x.apps.example.com|backend:http/1.1|false"},
		{"sni wildcard without alpn", "x.apps.example.com", nil, "wild||x.apps.example.com|backend:|false"},
		{"sni wildcard is one label", "a.b.apps.example.com", nil, "web||a.b.apps.example.com|backend:|false"},
		{"sni wildcard is not the apex", "apps.example.com", nil, "web||apps.example.com|backend:|false"},
		{"shared GetCertificate", "router.example.com", []string{ProtocolACME}, "acme|acme-tls/1|router.example.com|acme-tls/1|false"},
		{"no sni no alpn: default", "", nil, "web|||backend:|false"},
		{"unknown alpn: default", "localhost", []string{"x-unknown", "http/1.1"}, "web||localhost|backend:http/1.1|false"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := &tls.Config{RootCAs: pki.Pool, ServerName: tt.sni, NextProtos: tt.protos}
			if tt.sni == "" {
				cfg.ServerName = "127.0.0.1" // an IP address is not sent as SNI
			}
			c, err := tls.DialWithDialer(&net.Dialer{Timeout: 5 * time.Second}, "tcp", addr, cfg)
			if err != nil {
				t.Fatalf("dial: %v", err)
			}
			defer c.Close()
			if got := readAll(t, c); got != tt.want {
				t.Errorf("got %q, want %q", got, tt.want)
			}
		})
	}
	if s := r.Stats(); s.Routed != uint64(len(tests)) || s.Failed != 0 || s.Unknown != 0 {
		t.Errorf("stats %+v, want %d routed", s, len(tests))
	}
}

func TestNoRoute(t *testing.T) {
	pki := newPKI(t)
	r := newRouter(t, nil)
	mustHandle(t, r, Route{ALPN: []string{ProtocolAuth}, Handler: HandlerFunc(reportRoute)})
	addr := serveRouter(t, r)
	_, err := tls.Dial("tcp", addr, &tls.Config{RootCAs: pki.Pool, ServerName: "x", NextProtos: []string{"h2"}})
	if err == nil {
		t.Fatal("handshake succeeded without a route")
	}
	waitStats(t, r, Stats{Unknown: 1})

	// ServeConn reports the error.
	c1, c2 := net.Pipe()
	go func() {
		tls.Client(c2, &tls.Config{ServerName: "x", NextProtos: []string{"h2"}}).Handshake()
		c2.Close()
	}()
	if err := r.ServeConn(context.Background(), c1); !errors.Is(err, ErrNoRoute) {
		t.Errorf("ServeConn = %v, want ErrNoRoute", err)
	}
}

func waitStats(t testing.TB, r *Router, want Stats) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for r.Stats() != want {
		if time.Now().After(deadline) {
			t.Fatalf("stats %+v, want %+v", r.Stats(), want)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func TestBadInput(t *testing.T) {
	hello := clientHelloBytes(t, "example.com", []string{"h2"})
	tests := []struct {
		name  string
		input []byte
		close bool // close the writing side after the input
		want  error
	}{
		{"plain http", []byte("GET / HTTP/1.1\r\nHost: x\r\n\r\n"), false, ErrNotTLS},
		{"ssh banner", []byte("SSH-2.0-OpenSSH_9.2\r\n"), false, ErrNotTLS},
		{"handshake record, garbage body", append([]byte{0x16, 3, 1, 0, 8}, "garbage!"...), false, ErrBadHello},
		{"not a client hello", []byte{0x16, 3, 1, 0, 4, 2, 0, 0, 0}, false, ErrBadHello},
		{"record too large", []byte{0x16, 3, 1, 0xff, 0xff}, false, ErrBadHello},
		{"truncated hello then EOF", hello[:len(hello)/2], true, ErrBadHello},
		{"empty then EOF", nil, true, ErrBadHello},
		{"truncated hello then silence", hello[:len(hello)/2], false, ErrBadHello},
		{"nothing at all", nil, false, ErrBadHello},
	}
	r := newRouter(t, &Config{HandshakeTimeout: 300 * time.Millisecond})
	mustHandle(t, r, Route{Handler: HandlerFunc(reportRoute)})
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			a, b := tcpPair(t)
			go func() {
				b.Write(tt.input)
				if tt.close {
					b.(*net.TCPConn).CloseWrite()
				}
			}()
			start := time.Now()
			err := r.ServeConn(ctxT(t), a)
			if !errors.Is(err, tt.want) {
				t.Fatalf("ServeConn = %v, want %v", err, tt.want)
			}
			if d := time.Since(start); d > 2*time.Second {
				t.Errorf("took %v with a 300ms handshake timeout", d)
			}
			// The router closed the conn (EOF, or a reset when it left
			// input unread).
			b.SetReadDeadline(time.Now().Add(2 * time.Second))
			if _, err := io.ReadAll(b); err != nil && !errors.Is(err, syscall.ECONNRESET) {
				t.Errorf("peer read: %v (want EOF or reset)", err)
			}
		})
	}
	if s := r.Stats(); s.Failed != uint64(len(tests)) {
		t.Errorf("failed = %d, want %d", s.Failed, len(tests))
	}
}

func TestHandshakeDeadline(t *testing.T) {
	r := newRouter(t, &Config{HandshakeTimeout: 200 * time.Millisecond})
	mustHandle(t, r, Route{Handler: HandlerFunc(reportRoute)})
	addr := serveRouter(t, r)
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	start := time.Now()
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, err := c.Read(make([]byte, 1)); err != io.EOF {
		t.Fatalf("read = %v, want EOF from the router closing", err)
	}
	if d := time.Since(start); d < 150*time.Millisecond || d > 2*time.Second {
		t.Errorf("closed after %v, want about 200ms", d)
	}
	waitStats(t, r, Stats{Failed: 1})

	// A client that never finishes the TLS handshake of a terminating
	// route is cut off too.
	pki := newPKI(t)
	cert := pki.Leaf(t, "x")
	mustHandle(t, r, Route{ALPN: []string{"slow"}, TLSConfig: &tls.Config{Certificates: []tls.Certificate{cert}}, Handler: HandlerFunc(reportRoute)})
	c2, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c2.Close()
	c2.Write(clientHelloBytes(t, "x", []string{"slow"}))
	c2.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, err := io.Copy(io.Discard, c2); err != nil {
		t.Fatalf("read: %v, want EOF", err)
	}
	waitStats(t, r, Stats{Failed: 2})
}

// tcpPair returns two ends of a loopback TCP connection.
func tcpPair(t testing.TB) (net.Conn, net.Conn) {
	t.Helper()
	l := listen(t)
	ch := make(chan net.Conn, 1)
	go func() {
		c, err := l.Accept()
		if err != nil {
			ch <- nil
			return
		}
		ch <- c
	}()
	b, err := net.Dial("tcp", l.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	a := <-ch
	if a == nil {
		t.Fatal("accept failed")
	}
	t.Cleanup(func() { a.Close(); b.Close() })
	return a, b
}

// clientHelloBytes returns the first flight of a Go TLS client.
func clientHelloBytes(t testing.TB, sni string, protos []string) []byte {
	t.Helper()
	a, b := net.Pipe()
	go func() {
		tls.Client(b, &tls.Config{ServerName: sni, NextProtos: protos, InsecureSkipVerify: true}).Handshake()
		b.Close()
	}()
	a.SetReadDeadline(time.Now().Add(5 * time.Second))
	hdr := make([]byte, 5)
	if _, err := io.ReadFull(a, hdr); err != nil {
		t.Fatal(err)
	}
	body := make([]byte, int(hdr[3])<<8|int(hdr[4]))
	if _, err := io.ReadFull(a, body); err != nil {
		t.Fatal(err)
	}
	a.Close()
	return append(hdr, body...)
}

// TestWebListener embeds the router's web route into an http.Server.
func TestWebListener(t *testing.T) {
	pki := newPKI(t)
	cert := pki.Leaf(t, testNames...)
	r := newRouter(t, nil)
	mustHandle(t, r, Route{ALPN: []string{ProtocolProxySSH}, TLSConfig: &tls.Config{Certificates: []tls.Certificate{cert}}, Handler: HandlerFunc(reportRoute)})
	web, err := r.Listener(Route{Name: "web", ALPN: WebProtocols()})
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{
		Handler: http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
			fmt.Fprintf(w, "web %s", req.Proto)
		}),
		TLSConfig: &tls.Config{Certificates: []tls.Certificate{cert}},
	}
	srvDone := make(chan error, 1)
	go func() { srvDone <- srv.ServeTLS(web, "", "") }()
	addr := serveRouter(t, r)
	t.Cleanup(func() {
		srv.Close()
		<-srvDone
	})

	for _, tt := range []struct {
		name  string
		http2 bool
		want  string
	}{
		{"h2", true, "web HTTP/2.0"},
		{"http/1.1", false, "web HTTP/1.1"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			tr := &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pki.Pool}, ForceAttemptHTTP2: tt.http2}
			if !tt.http2 {
				tr.TLSClientConfig.NextProtos = []string{"http/1.1"}
			}
			defer tr.CloseIdleConnections()
			resp, err := (&http.Client{Transport: tr}).Get("https://localhost:" + strings.Split(addr, ":")[1] + "/")
			if err != nil {
				t.Fatal(err)
			}
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if string(b) != tt.want {
				t.Errorf("got %q, want %q", b, tt.want)
			}
		})
	}
	t.Run("no alpn", func(t *testing.T) {
		c, err := tls.Dial("tcp", addr, &tls.Config{RootCAs: pki.Pool, ServerName: "localhost"})
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		fmt.Fprintf(c, "GET / HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
		resp, err := http.ReadResponse(bufio.NewReader(c), nil)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		if string(b) != "web HTTP/1.1" {
			t.Errorf("got %q", b)
		}
	})
	t.Run("custom protocol beside web", func(t *testing.T) {
		c, err := tls.Dial("tcp", addr, &tls.Config{RootCAs: pki.Pool, ServerName: "localhost", NextProtos: []string{ProtocolProxySSH}})
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		if got, want := readAll(t, c), "sallyport-proxy-ssh|sallyport-proxy-ssh|localhost|sallyport-proxy-ssh|false"; got != want {
			t.Errorf("got %q, want %q", got, want)
		}
	})
}

func TestLifecycle(t *testing.T) {
	r := newRouter(t, &Config{HandshakeTimeout: time.Second})
	started := make(chan struct{})
	var once sync.Once
	var handlerErr error
	mustHandle(t, r, Route{Handler: HandlerFunc(func(ctx context.Context, c net.Conn, h *Hello) {
		defer c.Close()
		once.Do(func() { close(started) })
		<-ctx.Done()
		handlerErr = ctx.Err()
	})})
	l := listen(t)
	served := make(chan error, 1)
	go func() { served <- r.Serve(l) }()
	c, err := net.Dial("tcp", l.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.Write(clientHelloBytes(t, "x", nil))
	<-started

	// Shutdown waits for the handler, then gives up at its deadline.
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	if err := r.Shutdown(ctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("Shutdown = %v, want DeadlineExceeded", err)
	}
	if !errors.Is(handlerErr, context.Canceled) {
		t.Errorf("handler context: %v, want Canceled", handlerErr)
	}
	if err := <-served; !errors.Is(err, ErrRouterClosed) {
		t.Errorf("Serve = %v", err)
	}
	if err := r.Close(); !errors.Is(err, net.ErrClosed) {
		t.Errorf("second Close = %v, want net.ErrClosed", err)
	}
	if err := r.Serve(listen(t)); !errors.Is(err, ErrRouterClosed) {
		t.Errorf("Serve after Close = %v", err)
	}
	if err := r.Handle(Route{Handler: HandlerFunc(reportRoute)}); !errors.Is(err, ErrRouterClosed) {
		t.Errorf("Handle after Close = %v", err)
	}
}

func TestInvalidRoutes(t *testing.T) {
	r := newRouter(t, nil)
	mustHandle(t, r, Route{Handler: HandlerFunc(reportRoute)})
	for _, tt := range []struct {
		name string
		rt   Route
	}{
		{"no handler", Route{ALPN: []string{"x"}}},
		{"second default", Route{Handler: HandlerFunc(reportRoute)}},
		{"star inside alpn", Route{ALPN: []string{"a*b"}, Handler: HandlerFunc(reportRoute)}},
		{"star inside sni", Route{SNI: []string{"a.*.com"}, Handler: HandlerFunc(reportRoute)}},
		{"terminating without certificate", Route{ALPN: []string{"x"}, TLSConfig: &tls.Config{}, Handler: HandlerFunc(reportRoute)}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			if err := r.Handle(tt.rt); !errors.Is(err, ErrInvalidRoute) {
				t.Errorf("Handle = %v, want ErrInvalidRoute", err)
			}
		})
	}
	if _, err := New(&Config{MaxHelloBytes: 10}); err == nil {
		t.Error("New accepted MaxHelloBytes 10")
	}
	r.Close()
}

func TestCancellation(t *testing.T) {
	t.Run("ServeConn", func(t *testing.T) {
		r := newRouter(t, &Config{HandshakeTimeout: time.Minute})
		defer r.Close()
		mustHandle(t, r, Route{Handler: HandlerFunc(reportRoute)})
		a, _ := tcpPair(t)
		ctx, cancel := context.WithCancel(context.Background())
		time.AfterFunc(100*time.Millisecond, cancel)
		start := time.Now()
		err := r.ServeConn(ctx, a)
		if !errors.Is(err, context.Canceled) || !errors.Is(err, ErrBadHello) {
			t.Errorf("ServeConn = %v, want Canceled and ErrBadHello", err)
		}
		if d := time.Since(start); d > 5*time.Second {
			t.Errorf("took %v", d)
		}
	})
	t.Run("Dialer", func(t *testing.T) {
		l := listen(t) // accepts (the kernel does) and never answers
		ctx, cancel := context.WithCancel(context.Background())
		time.AfterFunc(100*time.Millisecond, cancel)
		d := &Dialer{TLSConfig: &tls.Config{ServerName: "x", NextProtos: []string{"p"}}}
		start := time.Now()
		if _, err := d.DialContext(ctx, "tcp", l.Addr().String()); !errors.Is(err, context.Canceled) {
			t.Errorf("DialContext = %v, want Canceled", err)
		}
		if d := time.Since(start); d > 5*time.Second {
			t.Errorf("took %v", d)
		}
	})
}

func TestHelloParsing(t *testing.T) {
	hello := clientHelloBytes(t, "frag.example.com", []string{"a", ProtocolAuth})
	body := hello[5:]
	record := func(b []byte) []byte {
		return append([]byte{0x16, 3, 1, byte(len(b) >> 8), byte(len(b))}, b...)
	}
	var manyProtos []string
	for i := range 100 {
		manyProtos = append(manyProtos, fmt.Sprintf("protocol-number-%03d", i))
	}
	tests := []struct {
		name    string
		in      io.Reader
		max     int
		want    *Hello
		wantErr error
	}{
		{"one record", bytes.NewReader(hello), 0, &Hello{ServerName: "frag.example.com", Protocols: []string{"a", ProtocolAuth}}, nil},
		{"one byte per read", iotest.OneByteReader(bytes.NewReader(hello)), 0, &Hello{ServerName: "frag.example.com", Protocols: []string{"a", ProtocolAuth}}, nil},
		{"split over two records", bytes.NewReader(append(record(body[:40]), record(body[40:])...)), 0, &Hello{ServerName: "frag.example.com", Protocols: []string{"a", ProtocolAuth}}, nil},
		{"larger than MaxHelloBytes", bytes.NewReader(clientHelloBytes(t, "x", manyProtos)), 1024, nil, ErrBadHello},
		{"large hello within the default bound", bytes.NewReader(clientHelloBytes(t, "x", manyProtos)), 0, &Hello{ServerName: "x", Protocols: manyProtos}, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h, peeked, err := readHello(&memConn{r: tt.in}, tt.max)
			if !errors.Is(err, tt.wantErr) {
				t.Fatalf("err = %v, want %v", err, tt.wantErr)
			}
			if !reflect.DeepEqual(h, tt.want) {
				t.Errorf("hello %+v, want %+v", h, tt.want)
			}
			if err == nil && len(peeked) == 0 {
				t.Error("nothing peeked")
			}
		})
	}
}

func TestRouteListener(t *testing.T) {
	pki := newPKI(t)
	cert := pki.Leaf(t, "localhost")
	r := newRouter(t, &Config{HandshakeTimeout: 300 * time.Millisecond})
	term, err := r.Listener(Route{ALPN: []string{"term"}, TLSConfig: &tls.Config{Certificates: []tls.Certificate{cert}}})
	if err != nil {
		t.Fatal(err)
	}
	idle, err := r.Listener(Route{ALPN: []string{"idle"}}) // nobody accepts
	if err != nil {
		t.Fatal(err)
	}
	addr := serveRouter(t, r)
	go func() {
		c, err := tls.Dial("tcp", addr, &tls.Config{RootCAs: pki.Pool, ServerName: "localhost", NextProtos: []string{"term"}})
		if err == nil {
			io.Copy(io.Discard, c)
			c.Close()
		}
	}()
	c, err := term.Accept()
	if err != nil {
		t.Fatal(err)
	}
	tc, ok := c.(*tls.Conn)
	if !ok || tc.ConnectionState().NegotiatedProtocol != "term" || !tc.ConnectionState().HandshakeComplete {
		t.Fatalf("accepted %T, want a *tls.Conn with the handshake done", c)
	}
	if h := tc.NetConn().(*Conn).Hello(); h.Route != "term" || h.Protocol != "term" {
		t.Errorf("hello %+v", h)
	}
	c.Close()

	// A conn nobody accepts is dropped after the handshake timeout.
	raw, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer raw.Close()
	raw.Write(clientHelloBytes(t, "localhost", []string{"idle"}))
	raw.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, err := io.Copy(io.Discard, raw); err != nil {
		t.Fatalf("read: %v, want EOF", err)
	}
	waitStats(t, r, Stats{Routed: 1, Failed: 1})

	// Closing a route listener removes its route.
	if err := idle.Close(); err != nil {
		t.Fatal(err)
	}
	if err := idle.Close(); !errors.Is(err, net.ErrClosed) {
		t.Errorf("second Close = %v", err)
	}
	if _, err := idle.Accept(); !errors.Is(err, net.ErrClosed) {
		t.Errorf("Accept after Close = %v", err)
	}
	raw2, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer raw2.Close()
	raw2.Write(clientHelloBytes(t, "localhost", []string{"idle"}))
	io.Copy(io.Discard, raw2)
	waitStats(t, r, Stats{Routed: 1, Failed: 1, Unknown: 1})
}

func TestShutdownGraceful(t *testing.T) {
	r := newRouter(t, nil)
	release := make(chan struct{})
	var finished atomic.Bool
	mustHandle(t, r, Route{Handler: HandlerFunc(func(ctx context.Context, c net.Conn, h *Hello) {
		<-release
		finished.Store(true)
	})})
	l := listen(t)
	go r.Serve(l)
	c, err := net.Dial("tcp", l.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.Write(clientHelloBytes(t, "x", nil))
	waitStats(t, r, Stats{Routed: 1})
	time.AfterFunc(100*time.Millisecond, func() { close(release) })
	if err := r.Shutdown(ctxT(t)); err != nil {
		t.Fatalf("Shutdown = %v", err)
	}
	if !finished.Load() {
		t.Error("Shutdown returned before the handler finished")
	}
	if _, err := net.Dial("tcp", l.Addr().String()); err == nil {
		t.Error("listener still open after Shutdown")
	}
}

// TestWebListenerTerminating gives the web route the server's tls.Config:
// the http.Server's Serve gets *tls.Conn and still speaks h2.
func TestWebListenerTerminating(t *testing.T) {
	pki := newPKI(t)
	cert := pki.Leaf(t, "localhost")
	srvTLS := &tls.Config{Certificates: []tls.Certificate{cert}, NextProtos: []string{"h2", "http/1.1"}}
	r := newRouter(t, nil)
	web, err := r.Listener(Route{Name: "web", ALPN: WebProtocols(), TLSConfig: srvTLS})
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{
		Handler:   http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) { fmt.Fprintf(w, "web %s", req.Proto) }),
		TLSConfig: srvTLS,
	}
	done := make(chan error, 1)
	go func() { done <- srv.Serve(web) }()
	addr := serveRouter(t, r)
	t.Cleanup(func() { srv.Close(); <-done })
	for _, h2 := range []bool{true, false} {
		tr := &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pki.Pool}, ForceAttemptHTTP2: h2}
		if !h2 {
			tr.TLSClientConfig.NextProtos = []string{"http/1.1"}
		}
		resp, err := (&http.Client{Transport: tr}).Get("https://localhost:" + strings.Split(addr, ":")[1])
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		tr.CloseIdleConnections()
		want := map[bool]string{true: "web HTTP/2.0", false: "web HTTP/1.1"}[h2]
		if string(b) != want {
			t.Errorf("got %q, want %q", b, want)
		}
	}
}

func TestMaxHandshakes(t *testing.T) {
	pki := newPKI(t)
	r := newRouter(t, &Config{HandshakeTimeout: 500 * time.Millisecond, MaxHandshakes: 1})
	mustHandle(t, r, Route{TLSConfig: &tls.Config{Certificates: []tls.Certificate{pki.Leaf(t, "localhost")}}, Handler: HandlerFunc(reportRoute)})
	addr := serveRouter(t, r)
	silent, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer silent.Close()
	time.Sleep(50 * time.Millisecond) // the silent conn takes the only slot
	start := time.Now()
	c, err := tls.Dial("tcp", addr, &tls.Config{RootCAs: pki.Pool, ServerName: "localhost"})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if got := readAll(t, c); !strings.HasPrefix(got, "default|") {
		t.Errorf("got %q", got)
	}
	if d := time.Since(start); d < 300*time.Millisecond {
		t.Errorf("served after %v while the only handshake slot was taken for 500ms", d)
	}
	waitStats(t, r, Stats{Routed: 1, Failed: 1})
	if _, err := New(&Config{MaxHandshakes: -1}); err == nil {
		t.Error("New accepted MaxHandshakes -1")
	}
}
