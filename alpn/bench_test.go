package alpn

import (
	"context"
	"crypto/tls"
	"io"
	"net"
	"testing"
	"time"
)

// benchBackend is a TLS server that answers one byte after the handshake
// and then discards what it reads.
func benchBackend(b *testing.B, cfg *tls.Config) string {
	l := listen(b)
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			go benchServe(tls.Server(c, cfg))
		}
	}()
	return l.Addr().String()
}

func benchServe(tc *tls.Conn) {
	defer tc.Close()
	tc.SetDeadline(time.Now().Add(time.Minute))
	if tc.Handshake() != nil {
		return
	}
	tc.Write([]byte{'k'})
	io.Copy(io.Discard, tc)
}

func benchSetup(b *testing.B) (direct, router string, cfg *tls.Config) {
	pki := newPKI(b)
	cert := pki.Leaf(b, "backend.bench", "term.bench")
	cfg = &tls.Config{Certificates: []tls.Certificate{cert}, NextProtos: []string{"bench-term"}}
	direct = benchBackend(b, cfg)
	r := newRouter(b, nil)
	mustHandle(b, r, Route{SNI: []string{"backend.bench"}, Handler: Forward(nil, direct)})
	mustHandle(b, r, Route{ALPN: []string{"bench-term"}, TLSConfig: cfg,
		Handler: HandlerFunc(func(ctx context.Context, c net.Conn, h *Hello) { benchServe(c.(*tls.Conn)) })})
	router = serveRouter(b, r)
	return direct, router, cfg
}

// BenchmarkPassthroughThroughput compares TLS bulk transfer directly to a
// backend with the same through a passthrough route (SetBytes: MB/s).
func BenchmarkPassthroughThroughput(b *testing.B) {
	direct, router, _ := benchSetup(b)
	for _, bc := range []struct{ name, addr string }{{"direct", direct}, {"passthrough", router}} {
		b.Run(bc.name, func(b *testing.B) {
			c, err := tls.Dial("tcp", bc.addr, &tls.Config{ServerName: "backend.bench", InsecureSkipVerify: true})
			if err != nil {
				b.Fatal(err)
			}
			defer c.Close()
			io.ReadFull(c, make([]byte, 1))
			buf := make([]byte, 256<<10)
			b.SetBytes(int64(len(buf)))
			b.ResetTimer()
			for b.Loop() {
				if _, err := c.Write(buf); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkHandshake measures one full TLS handshake (and first byte)
// directly, through a passthrough route, and on a terminating route.
func BenchmarkHandshake(b *testing.B) {
	direct, router, _ := benchSetup(b)
	for _, bc := range []struct{ name, addr, sni, proto string }{
		{"direct", direct, "backend.bench", ""},
		{"passthrough", router, "backend.bench", ""},
		{"terminating", router, "term.bench", "bench-term"},
	} {
		b.Run(bc.name, func(b *testing.B) {
			cfg := &tls.Config{ServerName: bc.sni, InsecureSkipVerify: true}
			if bc.proto != "" {
				cfg.NextProtos = []string{bc.proto}
			}
			b.SetParallelism(4)
			b.RunParallel(func(pb *testing.PB) {
				one := make([]byte, 1)
				for pb.Next() {
					c, err := tls.Dial("tcp", bc.addr, cfg)
					if err != nil {
						b.Error(err)
						return
					}
					io.ReadFull(c, one)
					c.Close()
				}
			})
		})
	}
}

func BenchmarkPingConn(b *testing.B) {
	a, c := tcpPair(b)
	w, r := NewPingConn(a, time.Second), NewPingConn(c, 0)
	defer w.Close()
	defer r.Close()
	go io.Copy(io.Discard, r)
	buf := make([]byte, 256<<10)
	b.SetBytes(int64(len(buf)))
	for b.Loop() {
		if _, err := w.Write(buf); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkWebSocket(b *testing.B) {
	for _, dir := range []string{"client-to-server", "server-to-client"} {
		b.Run(dir, func(b *testing.B) {
			client, server, stop, err := wsPair(b)
			if err != nil {
				b.Fatal(err)
			}
			defer stop()
			w, r := client, server
			if dir == "server-to-client" {
				w, r = server, client
			}
			go io.Copy(io.Discard, r)
			buf := make([]byte, 256<<10)
			b.SetBytes(int64(len(buf)))
			for b.Loop() {
				if _, err := w.Write(buf); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
