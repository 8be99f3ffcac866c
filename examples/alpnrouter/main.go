// Command alpnrouter shows the alpn router embedded into an existing HTTPS
// server: one port serves the web (h2, http/1.1, or no ALPN) through a
// plain net/http server, a terminating route for the custom protocol
// "example-echo" (and its "-ping" variant), and a passthrough route for
// "example-backend" that forwards the untouched TLS stream to a backend
// TLS server. The web server also serves the connection upgrade, so the
// custom protocols work through Layer-7 load balancers too.
//
//	go run ./examples/alpnrouter            # serve until interrupted
//	go run ./examples/alpnrouter -selftest  # run clients against itself, exit 0/1
package main

import (
	"bufio"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"math/big"
	"net"
	"net/http"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/sallyport/sallyport/alpn"
)

const (
	protoEcho    = "example-echo"
	protoBackend = "example-backend"
)

func main() {
	addr := flag.String("addr", "", "listen address (default 127.0.0.1:3080; an ephemeral port with -selftest)")
	selftest := flag.Bool("selftest", false, "run clients against the server, print checked results, exit 0 or 1")
	verbose := flag.Bool("v", false, "log routing decisions")
	flag.Parse()
	if *addr == "" {
		*addr = "127.0.0.1:3080"
		if *selftest {
			*addr = "127.0.0.1:0"
		}
	}
	level := slog.LevelInfo
	if *verbose {
		level = slog.LevelDebug
	}
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: level}))
	if err := run(*addr, *selftest, log); err != nil {
		fmt.Fprintln(os.Stderr, "alpnrouter:", err)
		os.Exit(1)
	}
}

// app is the example's server: an HTTPS server with the router in front.
type app struct {
	addr       string
	pool       *x509.CertPool // trusts the self-signed certificates
	web        *http.Server
	router     *alpn.Router
	backend    net.Listener
	backendCN  string
	serveErrs  chan error
	backendEnd chan struct{}
}

func run(addr string, selftest bool, log *slog.Logger) error {
	a, err := start(addr, log)
	if err != nil {
		return err
	}
	if selftest {
		err := a.selftest()
		a.stop()
		return err
	}
	fmt.Printf(`alpnrouter: serving on %[1]s (self-signed certificate for localhost)
  web:                 curl -k https://%[1]s/
  terminating route:   openssl s_client -quiet -connect %[1]s -alpn %[2]s      (type a line; it comes back)
  passthrough route:   openssl s_client -quiet -connect %[1]s -alpn %[3]s   (the TLS session is with the backend)
  self-test:           go run ./examples/alpnrouter -selftest
Ctrl-C stops.
`, a.addr, protoEcho, protoBackend)
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, os.Interrupt, syscall.SIGTERM)
	select {
	case s := <-sig:
		log.Info("shutting down", "signal", s.String())
	case err := <-a.serveErrs:
		a.stop()
		return err
	}
	a.stop()
	return nil
}

func start(addr string, log *slog.Logger) (*app, error) {
	cert, pool, err := selfSigned("localhost", "127.0.0.1")
	if err != nil {
		return nil, err
	}
	backendCert, _, err := selfSignedInto(pool, "backend.internal")
	if err != nil {
		return nil, err
	}

	// The backend of the passthrough route: a TLS server of its own.
	backend, err := tls.Listen("tcp", "127.0.0.1:0", &tls.Config{
		Certificates: []tls.Certificate{backendCert},
		NextProtos:   []string{protoBackend},
	})
	if err != nil {
		return nil, err
	}
	a := &app{pool: pool, backend: backend, backendCN: "backend.internal",
		serveErrs: make(chan error, 2), backendEnd: make(chan struct{})}
	go a.serveBackend()

	// The existing HTTPS server.
	mux := http.NewServeMux()
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, "hello from the web route over %s\n", r.Proto)
	})
	a.web = &http.Server{
		Handler:           mux,
		TLSConfig:         &tls.Config{Certificates: []tls.Certificate{cert}},
		ReadHeaderTimeout: 10 * time.Second,
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelDebug),
	}

	// The router in front of it.
	r, err := alpn.New(&alpn.Config{Logger: log})
	if err != nil {
		return nil, err
	}
	a.router = r
	mux.Handle(alpn.UpgradePath, r.UpgradeHandler())
	if err := r.Handle(alpn.Route{
		Name:      "echo",
		ALPN:      alpn.WithPing(protoEcho),
		TLSConfig: &tls.Config{Certificates: []tls.Certificate{cert}, NextProtos: alpn.WithPing(protoEcho)},
		Handler:   alpn.HandlerFunc(echo),
	}); err != nil {
		return nil, err
	}
	if err := r.Handle(alpn.Route{
		Name:    "backend",
		ALPN:    []string{protoBackend},
		Handler: alpn.Forward(nil, backend.Addr().String()),
	}); err != nil {
		return nil, err
	}
	web, err := r.Listener(alpn.Route{Name: "web", ALPN: alpn.WebProtocols()})
	if err != nil {
		return nil, err
	}
	l, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("%w (choose another address with -addr)", err)
	}
	a.addr = l.Addr().String()
	go func() {
		if err := a.web.ServeTLS(web, "", ""); !errors.Is(err, http.ErrServerClosed) && !errors.Is(err, net.ErrClosed) {
			a.serveErrs <- err
		}
	}()
	go func() {
		if err := r.Serve(l); !errors.Is(err, alpn.ErrRouterClosed) {
			a.serveErrs <- err
		}
	}()
	return a, nil
}

func (a *app) stop() {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	a.router.Shutdown(ctx)
	a.web.Shutdown(ctx)
	a.backend.Close()
	<-a.backendEnd
}

// echo serves the terminating route: it echoes lines, framing with the
// keepalive protocol on the "-ping" variant.
func echo(ctx context.Context, c net.Conn, h *alpn.Hello) {
	tc := c.(*tls.Conn)
	proto := tc.ConnectionState().NegotiatedProtocol
	var conn net.Conn = tc
	if alpn.IsPing(proto) {
		conn = alpn.NewPingConn(tc, 15*time.Second)
	}
	defer conn.Close()
	stop := context.AfterFunc(ctx, func() { conn.Close() })
	defer stop()
	fmt.Fprintf(conn, "echo route: protocol %s, upgraded %v\n", proto, h.Upgraded)
	io.Copy(conn, conn)
}

func (a *app) serveBackend() {
	defer close(a.backendEnd)
	for {
		c, err := a.backend.Accept()
		if err != nil {
			return
		}
		go func() {
			defer c.Close()
			c.SetDeadline(time.Now().Add(time.Minute))
			tc := c.(*tls.Conn)
			if tc.Handshake() != nil {
				return
			}
			fmt.Fprintf(tc, "backend: TLS session with %s, protocol %s\n", a.backendCN, tc.ConnectionState().NegotiatedProtocol)
		}()
	}
}

// selftest runs clients against the server and prints checked results.
func (a *app) selftest() error {
	failed := 0
	check := func(name string, err error) {
		if err != nil {
			failed++
			fmt.Printf("FAIL %-40s %v\n", name, err)
			return
		}
		fmt.Printf("ok   %s\n", name)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()

	for _, h2 := range []bool{true, false} {
		name := "web route over http/1.1"
		if h2 {
			name = "web route over h2"
		}
		check(name, a.checkWeb(h2))
	}
	check("terminating route "+protoEcho, a.checkEcho(ctx, protoEcho, alpn.UpgradeNever))
	check("terminating route "+alpn.Ping(protoEcho)+" with keepalives", a.checkEcho(ctx, alpn.Ping(protoEcho), alpn.UpgradeNever))
	check("connection upgrade through the web route", a.checkEcho(ctx, alpn.Ping(protoEcho), alpn.UpgradeAlways))
	check("passthrough route "+protoBackend, a.checkBackend())
	check("unknown protocol is refused", a.checkUnknown())
	s := a.router.Stats()
	fmt.Printf("router stats: routed=%d unknown=%d failed=%d\n", s.Routed, s.Unknown, s.Failed)
	if s.Unknown != 1 {
		check("stats", fmt.Errorf("unknown=%d, want 1", s.Unknown))
	}
	if failed > 0 {
		return fmt.Errorf("%d checks failed", failed)
	}
	fmt.Println("selftest: all checks passed")
	return nil
}

func (a *app) checkWeb(h2 bool) error {
	cfg := &tls.Config{RootCAs: a.pool, ServerName: "localhost"}
	if !h2 {
		cfg.NextProtos = []string{"http/1.1"}
	}
	tr := &http.Transport{TLSClientConfig: cfg, ForceAttemptHTTP2: h2}
	defer tr.CloseIdleConnections()
	resp, err := (&http.Client{Transport: tr, Timeout: 10 * time.Second}).Get("https://" + a.addr + "/")
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return err
	}
	want := "hello from the web route over HTTP/1.1\n"
	if h2 {
		want = "hello from the web route over HTTP/2.0\n"
	}
	if string(b) != want {
		return fmt.Errorf("got %q, want %q", b, want)
	}
	return nil
}

func (a *app) checkEcho(ctx context.Context, proto string, mode alpn.UpgradeMode) error {
	d := &alpn.Dialer{
		TLSConfig: &tls.Config{RootCAs: a.pool, ServerName: "localhost", NextProtos: []string{proto}},
		Upgrade:   mode,
	}
	tc, err := d.DialContext(ctx, "tcp", a.addr)
	if err != nil {
		return err
	}
	var c net.Conn = tc
	if alpn.IsPing(tc.ConnectionState().NegotiatedProtocol) {
		c = alpn.NewPingConn(tc, 20*time.Millisecond)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(10 * time.Second))
	br := bufio.NewReader(c)
	greeting, err := br.ReadString('\n')
	if err != nil {
		return err
	}
	want := fmt.Sprintf("echo route: protocol %s, upgraded %v\n", proto, mode == alpn.UpgradeAlways)
	if greeting != want {
		return fmt.Errorf("greeting %q, want %q", greeting, want)
	}
	time.Sleep(60 * time.Millisecond) // let keepalives cross on -ping
	if _, err := io.WriteString(c, "ping pong\n"); err != nil {
		return err
	}
	line, err := br.ReadString('\n')
	if err != nil {
		return err
	}
	if line != "ping pong\n" {
		return fmt.Errorf("echo %q", line)
	}
	return nil
}

func (a *app) checkBackend() error {
	c, err := tls.DialWithDialer(&net.Dialer{Timeout: 10 * time.Second}, "tcp", a.addr, &tls.Config{
		RootCAs: a.pool, ServerName: a.backendCN, NextProtos: []string{protoBackend}})
	if err != nil {
		return err
	}
	defer c.Close()
	if cn := c.ConnectionState().PeerCertificates[0].Subject.CommonName; cn != a.backendCN {
		return fmt.Errorf("TLS session with %q, want the backend %q", cn, a.backendCN)
	}
	c.SetDeadline(time.Now().Add(10 * time.Second))
	b, err := io.ReadAll(c)
	if err != nil {
		return err
	}
	want := "backend: TLS session with backend.internal, protocol example-backend\n"
	if string(b) != want {
		return fmt.Errorf("got %q, want %q", b, want)
	}
	return nil
}

func (a *app) checkUnknown() error {
	c, err := tls.DialWithDialer(&net.Dialer{Timeout: 10 * time.Second}, "tcp", a.addr, &tls.Config{
		RootCAs: a.pool, ServerName: "localhost", NextProtos: []string{"no-such-protocol"}})
	if err == nil {
		c.Close()
		return errors.New("handshake succeeded")
	}
	if !strings.Contains(err.Error(), "EOF") && !strings.Contains(err.Error(), "reset") {
		return fmt.Errorf("unexpected error %v", err)
	}
	return nil
}

// selfSigned makes a self-signed CA certificate for names and a pool
// trusting it.
func selfSigned(names ...string) (tls.Certificate, *x509.CertPool, error) {
	return selfSignedInto(x509.NewCertPool(), names...)
}

func selfSignedInto(pool *x509.CertPool, names ...string) (tls.Certificate, *x509.CertPool, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return tls.Certificate{}, nil, err
	}
	serial, _ := rand.Int(rand.Reader, big.NewInt(1<<62))
	tmpl := &x509.Certificate{
		SerialNumber:          serial,
		Subject:               pkix.Name{CommonName: names[0]},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(30 * 24 * time.Hour),
		KeyUsage:              x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		IsCA:                  true,
		BasicConstraintsValid: true,
	}
	for _, n := range names {
		if ip := net.ParseIP(n); ip != nil {
			tmpl.IPAddresses = append(tmpl.IPAddresses, ip)
		} else {
			tmpl.DNSNames = append(tmpl.DNSNames, n)
		}
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return tls.Certificate{}, nil, err
	}
	leaf, err := x509.ParseCertificate(der)
	if err != nil {
		return tls.Certificate{}, nil, err
	}
	pool.AddCert(leaf)
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key, Leaf: leaf}, pool, nil
}
