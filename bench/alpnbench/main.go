// Command alpnbench is the client and server side of bench/alpn.sh: a TLS
// backend, the alpn router in front of it, and clients that measure bulk
// throughput and full handshakes per second through any of them.
//
//	alpnbench freeports N   (prints N free loopback ports)
//	alpnbench backend -listen ADDR
//	alpnbench router -listen ADDR -backend ADDR
//	alpnbench throughput -addr ADDR [-sni NAME] [-alpn P] [-mib N]
//	alpnbench handshakes -addr ADDR [-sni NAME] [-alpn P] [-conns N] [-duration D]
//
// The backend (and the router's terminating route) answers each TLS
// connection with one byte, reads to EOF and answers with the byte count.
// Clients skip certificate verification (the same on every path).
package main

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"encoding/binary"
	"errors"
	"flag"
	"fmt"
	"io"
	"math/big"
	"net"
	"os"
	"os/signal"
	"runtime/pprof"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/sallyport/sallyport/alpn"
)

// TermProtocol is the ALPN protocol of the router's terminating route.
const TermProtocol = "bench-term"

func main() {
	if len(os.Args) < 2 {
		fmt.Fprintln(os.Stderr, "usage: alpnbench backend|router|throughput|handshakes [flags]")
		os.Exit(2)
	}
	fs := flag.NewFlagSet(os.Args[1], flag.ExitOnError)
	listen := fs.String("listen", "127.0.0.1:0", "listen address")
	backend := fs.String("backend", "", "backend address (router)")
	addr := fs.String("addr", "", "address to dial")
	sni := fs.String("sni", "backend.bench", "server name")
	proto := fs.String("alpn", "", "ALPN protocol to offer")
	mib := fs.Int("mib", 1024, "MiB to send (throughput)")
	conns := fs.Int("conns", 8, "concurrent clients (handshakes)")
	duration := fs.Duration("duration", 2*time.Second, "how long to measure (handshakes)")
	cpuProfile := fs.String("cpuprofile", "", "write a CPU profile of the backend or router to this file")
	fs.Parse(os.Args[2:])

	if *cpuProfile != "" {
		f, err := os.Create(*cpuProfile)
		if err != nil {
			fmt.Fprintln(os.Stderr, "alpnbench:", err)
			os.Exit(1)
		}
		pprof.StartCPUProfile(f)
		defer func() {
			pprof.StopCPUProfile()
			f.Close()
		}()
	}
	var err error
	switch os.Args[1] {
	case "freeports":
		err = freePorts(fs.Args())
	case "backend":
		err = runBackend(*listen)
	case "router":
		err = runRouter(*listen, *backend)
	case "throughput":
		err = throughput(*addr, *sni, *proto, int64(*mib)<<20)
	case "handshakes":
		err = handshakes(*addr, *sni, *proto, *conns, *duration)
	default:
		err = fmt.Errorf("unknown command %q", os.Args[1])
	}
	if err != nil {
		pprof.StopCPUProfile()
		fmt.Fprintln(os.Stderr, "alpnbench:", err)
		os.Exit(1)
	}
}

// freePorts prints n loopback ports that were free a moment ago.
func freePorts(args []string) error {
	n := 1
	if len(args) > 0 {
		if _, err := fmt.Sscan(args[0], &n); err != nil {
			return err
		}
	}
	var ls []net.Listener
	defer func() {
		for _, l := range ls {
			l.Close()
		}
	}()
	for range n {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return err
		}
		ls = append(ls, l)
		fmt.Println(l.Addr().(*net.TCPAddr).Port)
	}
	return nil
}

func cert() (tls.Certificate, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return tls.Certificate{}, err
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1),
		DNSNames:     []string{"backend.bench", "term.bench"},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(24 * time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return tls.Certificate{}, err
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}, nil
}

func serverConfig() (*tls.Config, error) {
	c, err := cert()
	if err != nil {
		return nil, err
	}
	return &tls.Config{Certificates: []tls.Certificate{c}, NextProtos: []string{TermProtocol}}, nil
}

// serveTLS answers one byte after the handshake, reads to EOF and answers
// the byte count.
func serveTLS(c *tls.Conn) {
	defer c.Close()
	c.SetDeadline(time.Now().Add(10 * time.Minute))
	if err := c.Handshake(); err != nil {
		return
	}
	if _, err := c.Write([]byte{'k'}); err != nil {
		return
	}
	buf := make([]byte, 64<<10)
	var n int64
	for {
		m, err := c.Read(buf)
		n += int64(m)
		if err != nil {
			break
		}
	}
	c.Write(binary.BigEndian.AppendUint64(nil, uint64(n)))
}

func waitSignal() {
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, os.Interrupt, syscall.SIGTERM)
	<-sig
}

func runBackend(listen string) error {
	cfg, err := serverConfig()
	if err != nil {
		return err
	}
	l, err := tls.Listen("tcp", listen, cfg)
	if err != nil {
		return err
	}
	fmt.Println("backend", l.Addr())
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			go serveTLS(c.(*tls.Conn))
		}
	}()
	waitSignal()
	return l.Close()
}

func runRouter(listen, backend string) error {
	cfg, err := serverConfig()
	if err != nil {
		return err
	}
	r, err := alpn.New(nil)
	if err != nil {
		return err
	}
	if err := r.Handle(alpn.Route{Name: "passthrough", SNI: []string{"backend.bench"}, Handler: alpn.Forward(nil, backend)}); err != nil {
		return err
	}
	if err := r.Handle(alpn.Route{Name: "terminating", ALPN: []string{TermProtocol}, TLSConfig: cfg,
		Handler: alpn.HandlerFunc(func(ctx context.Context, c net.Conn, h *alpn.Hello) { serveTLS(c.(*tls.Conn)) })}); err != nil {
		return err
	}
	l, err := net.Listen("tcp", listen)
	if err != nil {
		return err
	}
	fmt.Println("router", l.Addr())
	done := make(chan error, 1)
	go func() { done <- r.Serve(l) }()
	waitSignal()
	r.Close()
	if err := <-done; !errors.Is(err, alpn.ErrRouterClosed) {
		return err
	}
	return nil
}

func clientConfig(sni, proto string) *tls.Config {
	cfg := &tls.Config{ServerName: sni, InsecureSkipVerify: true, ClientSessionCache: nil}
	if proto != "" {
		cfg.NextProtos = []string{proto}
	}
	return cfg
}

// throughput sends n bytes over one TLS connection and prints GB/s.
func throughput(addr, sni, proto string, n int64) error {
	c, err := tls.DialWithDialer(&net.Dialer{Timeout: 5 * time.Second}, "tcp", addr, clientConfig(sni, proto))
	if err != nil {
		return err
	}
	defer c.Close()
	one := make([]byte, 1)
	if _, err := io.ReadFull(c, one); err != nil {
		return err
	}
	buf := make([]byte, 256<<10)
	rand.Read(buf)
	start := time.Now()
	for sent := int64(0); sent < n; {
		m := min(int64(len(buf)), n-sent)
		if _, err := c.Write(buf[:m]); err != nil {
			return err
		}
		sent += m
	}
	if err := c.CloseWrite(); err != nil {
		return err
	}
	var got [8]byte
	if _, err := io.ReadFull(c, got[:]); err != nil {
		return fmt.Errorf("reading the count: %w", err)
	}
	d := time.Since(start)
	if m := int64(binary.BigEndian.Uint64(got[:])); m != n {
		return fmt.Errorf("server received %d bytes, sent %d", m, n)
	}
	fmt.Printf("%.3f\n", float64(n)/d.Seconds()/1e9)
	return nil
}

// handshakes runs conns clients doing full handshakes for d and prints
// handshakes per second.
func handshakes(addr, sni, proto string, conns int, d time.Duration) error {
	cfg := clientConfig(sni, proto)
	var count, failed atomic.Int64
	var mu sync.Mutex
	var firstErr error
	deadline := time.Now().Add(d)
	start := time.Now()
	var wg sync.WaitGroup
	for range conns {
		wg.Add(1)
		go func() {
			defer wg.Done()
			one := make([]byte, 1)
			for time.Now().Before(deadline) {
				c, err := tls.DialWithDialer(&net.Dialer{Timeout: 5 * time.Second}, "tcp", addr, cfg)
				if err == nil {
					_, err = io.ReadFull(c, one)
					c.Close()
				}
				if err != nil {
					failed.Add(1)
					mu.Lock()
					if firstErr == nil {
						firstErr = err
					}
					mu.Unlock()
					continue
				}
				count.Add(1)
			}
		}()
	}
	wg.Wait()
	if f := failed.Load(); f > 0 {
		return fmt.Errorf("%d handshakes failed, first: %v", f, firstErr)
	}
	fmt.Printf("%.0f\n", float64(count.Load())/time.Since(start).Seconds())
	return nil
}
