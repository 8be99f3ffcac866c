package alpn

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httputil"
	"net/netip"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/sallyport/sallyport/internal/testpki"
	"github.com/sallyport/sallyport/internal/testservice"
	"github.com/sallyport/sallyport/mux"
)

// cluster is a router embedded in an HTTPS server, the way the proxy
// service runs it: the web route served by net/http (with the upgrade
// endpoint), a terminating mutual-TLS route for the reverse tunnel and a
// passthrough route to a backend.
type cluster struct {
	pki    *testpki.CA
	cert   tls.Certificate
	router *Router
	addr   string
}

func startCluster(t *testing.T, extra ...Route) *cluster {
	t.Helper()
	pki := newPKI(t)
	cert := pki.Leaf(t, testNames...)
	r := newRouter(t, nil)
	mustHandle(t, r, Route{
		Name: "tunnel",
		ALPN: WithPing(ProtocolReverseTunnel),
		TLSConfig: &tls.Config{
			Certificates: []tls.Certificate{cert},
			ClientAuth:   tls.RequireAndVerifyClientCert,
			ClientCAs:    pki.Pool,
			NextProtos:   WithPing(ProtocolReverseTunnel),
		},
		Handler: HandlerFunc(echoHandler),
	})
	for _, rt := range extra {
		mustHandle(t, r, rt)
	}
	web, err := r.Listener(Route{Name: "web", ALPN: WebProtocols()})
	if err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	mux.Handle(UpgradePath, r.UpgradeHandler())
	mux.HandleFunc("/", func(w http.ResponseWriter, req *http.Request) { fmt.Fprint(w, "web") })
	srv := &http.Server{Handler: mux, TLSConfig: &tls.Config{Certificates: []tls.Certificate{cert}}}
	srvDone := make(chan error, 1)
	go func() { srvDone <- srv.ServeTLS(web, "", "") }()
	addr := serveRouter(t, r)
	t.Cleanup(func() {
		srv.Close()
		<-srvDone
	})
	return &cluster{pki: pki, cert: cert, router: r, addr: addr}
}

// echoHandler answers "upgraded=<bool> proto=<negotiated>\n", then echoes,
// framing with PingConn (pinging every 200ms) on the -ping protocols.
func echoHandler(ctx context.Context, c net.Conn, h *Hello) {
	tc := c.(*tls.Conn)
	proto := tc.ConnectionState().NegotiatedProtocol
	var conn net.Conn = tc
	if IsPing(proto) {
		conn = NewPingConn(tc, 200*time.Millisecond)
	}
	defer conn.Close()
	stop := context.AfterFunc(ctx, func() { conn.Close() })
	defer stop()
	fmt.Fprintf(conn, "upgraded=%v proto=%s\n", h.Upgraded, proto)
	io.Copy(conn, conn)
}

// tunnelDialer returns a client of the tunnel route.
func (cl *cluster) tunnelDialer(t testing.TB, mode UpgradeMode) *Dialer {
	return &Dialer{
		TLSConfig: &tls.Config{
			ServerName:   "router.example.com",
			RootCAs:      cl.pki.Pool,
			Certificates: []tls.Certificate{cl.pki.Leaf(t, "agent")},
			NextProtos:   WithPing(ProtocolReverseTunnel),
		},
		Upgrade: mode,
	}
}

// checkEcho reads the greeting and echoes a megabyte through c.
func checkEcho(t testing.TB, tc *tls.Conn, wantGreeting string, ping time.Duration) net.Conn {
	t.Helper()
	var c net.Conn = tc
	if IsPing(tc.ConnectionState().NegotiatedProtocol) {
		c = NewPingConn(tc, ping)
	}
	br := bufio.NewReader(c)
	c.SetDeadline(time.Now().Add(20 * time.Second))
	line, err := br.ReadString('\n')
	if err != nil {
		t.Fatalf("greeting: %v", err)
	}
	if strings.TrimSpace(line) != wantGreeting {
		t.Fatalf("greeting %q, want %q", line, wantGreeting)
	}
	data := make([]byte, 1<<20)
	rand.Read(data)
	go c.Write(data)
	got := make([]byte, len(data))
	if _, err := io.ReadFull(br, got); err != nil {
		t.Fatalf("echo: %v", err)
	}
	if !bytes.Equal(got, data) {
		t.Fatal("echo differs")
	}
	c.SetDeadline(time.Time{})
	return &bufConn{Conn: c, r: br}
}

type bufConn struct {
	net.Conn
	r *bufio.Reader
}

func (b *bufConn) Read(p []byte) (int, error) { return b.r.Read(p) }

// TestBehindHAProxyL4 runs the router behind HAProxy in mode tcp: the
// client's ClientHello reaches the router untouched.
func TestBehindHAProxyL4(t *testing.T) {
	cl := startCluster(t)
	hap := testservice.HAProxyTCP(t, []string{cl.addr}, "")

	t.Run("tunnel direct", func(t *testing.T) {
		tc, err := cl.tunnelDialer(t, UpgradeAuto).DialContext(ctxT(t), "tcp", hap.Addr)
		if err != nil {
			t.Fatal(err)
		}
		c := checkEcho(t, tc, "upgraded=false proto=sallyport-reversetunnel-ping", 0)
		c.Close()
	})
	t.Run("web", func(t *testing.T) {
		tr := &http.Transport{TLSClientConfig: &tls.Config{RootCAs: cl.pki.Pool, ServerName: "router.example.com"}, ForceAttemptHTTP2: true}
		defer tr.CloseIdleConnections()
		resp, err := (&http.Client{Transport: tr}).Get("https://" + hap.Addr + "/")
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if string(b) != "web" || resp.Proto != "HTTP/2.0" {
			t.Errorf("got %q over %s", b, resp.Proto)
		}
	})
	t.Run("forced upgrade through an L4 balancer", func(t *testing.T) {
		tc, err := cl.tunnelDialer(t, UpgradeAlways).DialContext(ctxT(t), "tcp", hap.Addr)
		if err != nil {
			t.Fatal(err)
		}
		c := checkEcho(t, tc, "upgraded=true proto=sallyport-reversetunnel-ping", 0)
		c.Close()
	})
}

// nginxL7 starts nginx terminating TLS with its own certificate and
// proxying to the router's web route with WebSocket upgrade headers.
func nginxL7(t *testing.T, backend string, cert tls.Certificate, readTimeout string) string {
	t.Helper()
	addr := testservice.FreeAddr(t)
	certFile, keyFile := testpki.WriteFiles(t, t.TempDir(), cert)
	testservice.NginxConfig(t, addr, fmt.Sprintf(`events {}
http {
    map $http_upgrade $connection_upgrade { default upgrade; '' close; }
    server {
        listen %s ssl http2;
        ssl_certificate %s;
        ssl_certificate_key %s;
        location / {
            proxy_pass https://%s;
            proxy_http_version 1.1;
            proxy_set_header Upgrade $http_upgrade;
            proxy_set_header Connection $connection_upgrade;
            proxy_set_header Host $host;
            proxy_ssl_server_name on;
            proxy_ssl_name router.example.com;
            proxy_read_timeout %s;
            proxy_send_timeout %s;
        }
    }
}
`, addr, certFile, keyFile, backend, readTimeout, readTimeout))
	return addr
}

// TestBehindNginxL7 runs the router behind nginx terminating TLS: the
// direct handshake reaches nginx, which negotiates no ALPN, so the dialer
// tunnels through the WebSocket upgrade; the inner TLS (mutual, with the
// cluster's CA) is end to end with the router.
func TestBehindNginxL7(t *testing.T) {
	cl := startCluster(t)
	lbPKI := newPKI(t)
	tests := []struct {
		name   string
		lbCert tls.Certificate
		lbCAs  *tls.Config
	}{
		// The balancer presents a certificate the cluster CA signed: the
		// handshake succeeds and only the missing ALPN tells.
		{"alpn stripped", cl.pki.Leaf(t, "router.example.com"), nil},
		// The balancer has a public certificate of another CA.
		{"foreign certificate", lbPKI.Leaf(t, "lb.example.com"), &tls.Config{RootCAs: lbPKI.Pool, ServerName: "lb.example.com"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			lb := nginxL7(t, cl.addr, tt.lbCert, "1s")
			d := cl.tunnelDialer(t, UpgradeAuto)
			d.UpgradeTLSConfig = tt.lbCAs
			tc, err := d.DialContext(ctxT(t), "tcp", lb)
			if err != nil {
				t.Fatal(err)
			}
			if st := tc.ConnectionState(); st.NegotiatedProtocol != Ping(ProtocolReverseTunnel) || st.PeerCertificates[0].Subject.CommonName != cl.cert.Leaf.Subject.CommonName {
				t.Fatalf("inner TLS: protocol %q, peer %q", st.NegotiatedProtocol, st.PeerCertificates[0].Subject.CommonName)
			}
			c := checkEcho(t, tc, "upgraded=true proto=sallyport-reversetunnel-ping", 200*time.Millisecond)
			defer c.Close()
			// Idle for longer than nginx's 1s proxy timeouts: the pings
			// keep the stream alive.
			time.Sleep(2500 * time.Millisecond)
			c.SetDeadline(time.Now().Add(5 * time.Second))
			if _, err := c.Write([]byte("still there\n")); err != nil {
				t.Fatal(err)
			}
			line, err := c.(*bufConn).r.ReadString('\n')
			if err != nil || line != "still there\n" {
				t.Fatalf("after idle: %q, %v", line, err)
			}

			// UpgradeNever reports what it saw.
			d.Upgrade = UpgradeNever
			if _, err := d.DialContext(ctxT(t), "tcp", lb); err == nil {
				t.Error("UpgradeNever dialed through an L7 balancer")
			}
		})
	}
	t.Run("balancer that ignores ALPN", func(t *testing.T) {
		// A Go reverse proxy whose TLS has no NextProtos completes the
		// handshake without ALPN: only the empty negotiated protocol tells.
		lb := goL7(t, cl)
		d := cl.tunnelDialer(t, UpgradeAuto)
		tc, err := d.DialContext(ctxT(t), "tcp", lb)
		if err != nil {
			t.Fatal(err)
		}
		c := checkEcho(t, tc, "upgraded=true proto=sallyport-reversetunnel-ping", 0)
		c.Close()
		d.Upgrade = UpgradeNever
		if _, err := d.DialContext(ctxT(t), "tcp", lb); !errors.Is(err, ErrALPNStripped) {
			t.Errorf("UpgradeNever: %v, want ErrALPNStripped", err)
		}
	})
	t.Run("without pings the balancer cuts idle streams", func(t *testing.T) {
		lb := nginxL7(t, cl.addr, cl.pki.Leaf(t, "router.example.com"), "1s")
		d := cl.tunnelDialer(t, UpgradeAuto)
		d.TLSConfig.NextProtos = []string{ProtocolReverseTunnel}
		tc, err := d.DialContext(ctxT(t), "tcp", lb)
		if err != nil {
			t.Fatal(err)
		}
		c := checkEcho(t, tc, "upgraded=true proto=sallyport-reversetunnel", 0)
		defer c.Close()
		time.Sleep(2500 * time.Millisecond)
		c.SetDeadline(time.Now().Add(5 * time.Second))
		c.Write([]byte("hello?\n"))
		if line, err := c.(*bufConn).r.ReadString('\n'); err == nil {
			t.Fatalf("idle stream survived nginx's timeout: %q", line)
		}
	})
	t.Run("web through the balancer", func(t *testing.T) {
		lb := nginxL7(t, cl.addr, cl.pki.Leaf(t, "router.example.com"), "5s")
		tr := &http.Transport{TLSClientConfig: &tls.Config{RootCAs: cl.pki.Pool, ServerName: "router.example.com"}}
		defer tr.CloseIdleConnections()
		resp, err := (&http.Client{Transport: tr}).Get("https://" + lb + "/")
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if string(b) != "web" {
			t.Errorf("got %q", b)
		}
	})
}

// goL7 starts an httputil.ReverseProxy terminating TLS without ALPN in
// front of the cluster's web route.
func goL7(t *testing.T, cl *cluster) string {
	t.Helper()
	target, _ := url.Parse("https://" + cl.addr)
	rp := httputil.NewSingleHostReverseProxy(target)
	tr := &http.Transport{TLSClientConfig: &tls.Config{RootCAs: cl.pki.Pool, ServerName: "router.example.com"}}
	rp.Transport = tr
	l := listen(t)
	srv := &http.Server{Handler: rp}
	lbCert := cl.pki.Leaf(t, "router.example.com")
	done := make(chan struct{})
	go func() {
		defer close(done)
		srv.Serve(tls.NewListener(l, &tls.Config{Certificates: []tls.Certificate{lbCert}}))
	}()
	t.Cleanup(func() {
		srv.Close()
		tr.CloseIdleConnections()
		<-done
	})
	return l.Addr().String()
}

// TestPassthroughToTLSBackend forwards a route to a real TLS server
// (nginx): the client's TLS session is with nginx, through the router.
func TestPassthroughToTLSBackend(t *testing.T) {
	pki := newPKI(t)
	backendCert := pki.Leaf(t, "backend.example.com")
	certFile, keyFile := testpki.WriteFiles(t, t.TempDir(), backendCert)
	backend := testservice.FreeAddr(t)
	testservice.NginxConfig(t, backend, fmt.Sprintf(`events {}
http {
    server {
        listen %s ssl;
        ssl_certificate %s;
        ssl_certificate_key %s;
        location / { return 200 "nginx backend $ssl_server_name $ssl_protocol\n"; }
    }
}
`, backend, certFile, keyFile))
	cl := startCluster(t, Route{Name: "backend", SNI: []string{"backend.example.com"}, Handler: Forward(nil, backend)})
	tr := &http.Transport{
		TLSClientConfig: &tls.Config{RootCAs: pki.Pool},
		DialContext: func(ctx context.Context, network, _ string) (net.Conn, error) {
			return (&net.Dialer{}).DialContext(ctx, network, cl.addr)
		},
	}
	defer tr.CloseIdleConnections()
	for i := range 3 {
		resp, err := (&http.Client{Transport: tr}).Get("https://backend.example.com/")
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if !strings.HasPrefix(string(b), "nginx backend backend.example.com TLSv1.") {
			t.Errorf("request %d: got %q", i, b)
		}
		if cn := resp.TLS.PeerCertificates[0].Subject.CommonName; cn != "backend.example.com" {
			t.Errorf("peer certificate %q, want nginx's", cn)
		}
		tr.CloseIdleConnections()
	}
	waitStats(t, cl.router, Stats{Routed: 3})
}

// TestBehindHAProxyProxyV2 runs HAProxy with send-proxy-v2 in front of a
// mux that reads the PROXY header, with the router on the mux's TLS
// listener: handlers see the client's address, and splicing still works
// through both layers.
func TestBehindHAProxyProxyV2(t *testing.T) {
	pki := newPKI(t)
	cert := pki.Leaf(t, testNames...)
	r := newRouter(t, nil)
	mustHandle(t, r, Route{ALPN: []string{ProtocolProxySSH}, TLSConfig: &tls.Config{Certificates: []tls.Certificate{cert}},
		Handler: HandlerFunc(func(ctx context.Context, c net.Conn, h *Hello) {
			defer c.Close()
			fmt.Fprintf(c, "remote=%s", c.RemoteAddr())
		})})
	l := listen(t)
	m, err := mux.New(l, &mux.Config{ProxyProtocol: mux.ProxyRequired, TrustedNetworks: []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")}})
	if err != nil {
		t.Fatal(err)
	}
	tlsL := m.Listener(mux.TLS)
	muxDone := make(chan error, 1)
	go func() { muxDone <- m.Serve() }()
	routerDone := make(chan error, 1)
	go func() { routerDone <- r.Serve(tlsL) }()
	t.Cleanup(func() {
		r.Close()
		m.Close()
		<-muxDone
		if err := <-routerDone; !errors.Is(err, ErrRouterClosed) {
			t.Errorf("Serve = %v", err)
		}
	})
	hap := testservice.HAProxyTCP(t, []string{l.Addr().String()}, "send-proxy-v2")
	for i := range 3 {
		c, err := tls.Dial("tcp", hap.Addr, &tls.Config{RootCAs: pki.Pool, ServerName: "localhost", NextProtos: []string{ProtocolProxySSH}})
		if err != nil {
			t.Fatal(err)
		}
		got := readAll(t, c)
		c.Close()
		if want := "remote=" + c.LocalAddr().String(); got != want {
			t.Errorf("conn %d: %q, want %q (the client's address from the PROXY header)", i, got, want)
		}
	}
}

// TestUpgradeRefusals checks the upgrade endpoint's refusals.
func TestUpgradeRefusals(t *testing.T) {
	cl := startCluster(t)
	t.Run("protocol without a route", func(t *testing.T) {
		d := cl.tunnelDialer(t, UpgradeAlways)
		d.TLSConfig.NextProtos = []string{"sallyport-nothing"}
		_, err := d.DialContext(ctxT(t), "tcp", cl.addr)
		var ue *UpgradeError
		if !errors.As(err, &ue) || ue.StatusCode != http.StatusNotFound {
			t.Fatalf("dial = %v, want UpgradeError 404", err)
		}
	})
	t.Run("inner hello must offer the subprotocol", func(t *testing.T) {
		before := cl.router.Stats()
		raw, err := tls.Dial("tcp", cl.addr, &tls.Config{RootCAs: cl.pki.Pool, ServerName: "router.example.com", NextProtos: []string{"http/1.1"}})
		if err != nil {
			t.Fatal(err)
		}
		defer raw.Close()
		ws, err := dialWebSocket(ctxT(t), raw, "router.example.com", UpgradePath, ProtocolReverseTunnel)
		if err != nil {
			t.Fatal(err)
		}
		defer ws.Close()
		// Inside, ask for the web instead: the router refuses.
		inner := tls.Client(ws, &tls.Config{RootCAs: cl.pki.Pool, ServerName: "router.example.com", NextProtos: []string{"h2"}})
		if err := inner.HandshakeContext(ctxT(t)); err == nil {
			t.Fatal("inner handshake for another protocol succeeded")
		}
		want := before
		want.Routed++ // the outer web connection
		want.Unknown++
		waitStats(t, cl.router, want)
	})
}
