package tunnel

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"fmt"
	"io"
	"net"
	"slices"
	"syscall"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"
)

const benchChunk = 32 << 10

// sinkHandler discards a stream and reports how much it read.
func sinkHandler(done chan<- int64) func(net.Conn) {
	return func(c net.Conn) {
		n, _ := io.Copy(io.Discard, c)
		done <- n
	}
}

// pump writes n bytes to w in benchChunk writes.
func pump(b *testing.B, w io.Writer, n int64) {
	buf := make([]byte, benchChunk)
	for n > 0 {
		k := min(n, int64(len(buf)))
		if _, err := w.Write(buf[:k]); err != nil {
			b.Fatal(err)
		}
		n -= k
	}
}

// BenchmarkThroughput compares one stream's throughput through a tunnel
// with a direct TLS connection and an x/crypto/ssh channel, on loopback.
// Besides MB/s it reports the process's CPU time per GB (both ends run in
// the process), which the load of other processes disturbs less.
func BenchmarkThroughput(b *testing.B) {
	const total = 64 << 20
	b.Run("tunnel", func(b *testing.B) { withCPU(b, total, func() { benchTunnelThroughput(b, total, 0) }) })
	b.Run("tls", func(b *testing.B) { withCPU(b, total, func() { benchTLSThroughput(b, total) }) })
	b.Run("ssh", func(b *testing.B) { withCPU(b, total, func() { benchSSHThroughput(b, total) }) })
}

func cpuTime() time.Duration {
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// withCPU runs f and reports CPU seconds per GB moved (setup included,
// which is small next to b.N × total bytes).
func withCPU(b *testing.B, total int64, f func()) {
	start := cpuTime()
	f()
	used := cpuTime() - start
	b.ReportMetric(used.Seconds()/(float64(total)*float64(b.N)/1e9), "cpu-s/GB")
}

// BenchmarkWindow measures one stream's throughput per stream window.
func BenchmarkWindow(b *testing.B) {
	for _, w := range []uint32{256 << 10, 1 << 20, 4 << 20, 16 << 20} {
		b.Run(fmt.Sprintf("%dKiB", w>>10), func(b *testing.B) {
			withCPU(b, 64<<20, func() { benchTunnelThroughput(b, 64<<20, w) })
		})
	}
}

func benchPair(b *testing.B, window uint32) (*Server, *Agent, *testCA) {
	ca := newTestCA(b)
	p := startProxy(b, ca, "", ServerConfig{ID: "p1", StreamWindow: window})
	a := startAgent(b, ca, "node-1", AgentConfig{ProxyAddrs: []string{p.Addr}, StreamWindow: window, Dialer: &net.Dialer{}})
	return p.Server, a, ca
}

func benchTunnelThroughput(b *testing.B, total int64, window uint32) {
	srv, a, _ := benchPair(b, window)
	done := make(chan int64, 1)
	a.Register("sink", sinkHandler(done))
	waitAgent(b, srv, "node-1")
	b.SetBytes(total)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		c, err := srv.Dial(context.Background(), "node-1", "sink")
		if err != nil {
			b.Fatal(err)
		}
		pump(b, c, total)
		c.CloseWrite()
		if n := <-done; n != total {
			b.Fatalf("sink read %d bytes", n)
		}
		c.Close()
	}
}

func benchTLSThroughput(b *testing.B, total int64) {
	ca := newTestCA(b)
	ln, err := tls.Listen("tcp", "127.0.0.1:0", ca.serverTLS(b))
	if err != nil {
		b.Fatal(err)
	}
	defer ln.Close()
	done := make(chan int64, 1)
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				sinkHandler(done)(c)
			}()
		}
	}()
	cfg := ca.agentTLS(b, "node-1")
	cfg.ServerName = "127.0.0.1"
	b.SetBytes(total)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		c, err := tls.Dial("tcp", ln.Addr().String(), cfg)
		if err != nil {
			b.Fatal(err)
		}
		pump(b, c, total)
		c.CloseWrite()
		if n := <-done; n != total {
			b.Fatalf("sink read %d bytes", n)
		}
		c.Close()
	}
}

// sshPair returns a connected x/crypto/ssh client whose server accepts
// "bench" channels and hands them to handle.
func sshPair(b *testing.B, handle func(ssh.Channel)) *ssh.Client {
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	signer, err := ssh.NewSignerFromKey(key)
	if err != nil {
		b.Fatal(err)
	}
	scfg := &ssh.ServerConfig{NoClientAuth: true}
	scfg.AddHostKey(signer)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { ln.Close() })
	go func() {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		sc, chans, reqs, err := ssh.NewServerConn(c, scfg)
		if err != nil {
			return
		}
		b.Cleanup(func() { sc.Close() })
		go ssh.DiscardRequests(reqs)
		for nc := range chans {
			ch, creqs, err := nc.Accept()
			if err != nil {
				continue
			}
			go ssh.DiscardRequests(creqs)
			go handle(ch)
		}
	}()
	client, err := ssh.Dial("tcp", ln.Addr().String(), &ssh.ClientConfig{User: "bench", HostKeyCallback: ssh.InsecureIgnoreHostKey()})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { client.Close() })
	return client
}

func benchSSHThroughput(b *testing.B, total int64) {
	done := make(chan int64, 1)
	client := sshPair(b, func(ch ssh.Channel) {
		n, _ := io.Copy(io.Discard, ch)
		ch.Close()
		done <- n
	})
	b.SetBytes(total)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		ch, reqs, err := client.OpenChannel("bench", nil)
		if err != nil {
			b.Fatal(err)
		}
		go ssh.DiscardRequests(reqs)
		pump(b, ch, total)
		ch.CloseWrite()
		if n := <-done; n != total {
			b.Fatalf("sink read %d bytes", n)
		}
		ch.Close()
	}
}

// BenchmarkOpenStream measures opening a stream to an agent service and
// a 4-byte round trip on it (p50 and p99 per operation), next to the same
// on an x/crypto/ssh channel; for the tunnel also Dial alone (dial-p50,
// dial-p99).
func BenchmarkOpenStream(b *testing.B) {
	b.Run("tunnel", func(b *testing.B) {
		srv, a, _ := benchPair(b, 0)
		a.Register("echo", echo)
		waitAgent(b, srv, "node-1")
		buf := make([]byte, 4)
		lat := make([]time.Duration, 0, b.N)
		open := make([]time.Duration, 0, b.N)
		b.ResetTimer()
		for i := 0; i < b.N; i++ {
			start := time.Now()
			c, err := srv.Dial(context.Background(), "node-1", "echo")
			if err != nil {
				b.Fatal(err)
			}
			open = append(open, time.Since(start))
			c.Write([]byte("ping"))
			if _, err := io.ReadFull(c, buf); err != nil {
				b.Fatal(err)
			}
			lat = append(lat, time.Since(start))
			c.Close()
		}
		reportLatency(b, lat)
		// Dial alone: the stream is open once the agent's service has
		// accepted it.
		slices.Sort(open)
		b.ReportMetric(float64(open[len(open)/2].Nanoseconds())/1e3, "dial-p50-µs")
		b.ReportMetric(float64(open[int(0.99*float64(len(open)-1))].Nanoseconds())/1e3, "dial-p99-µs")
	})
	b.Run("ssh", func(b *testing.B) {
		client := sshPair(b, func(ch ssh.Channel) {
			io.Copy(ch, ch)
			ch.Close()
		})
		buf := make([]byte, 4)
		lat := make([]time.Duration, 0, b.N)
		b.ResetTimer()
		for i := 0; i < b.N; i++ {
			start := time.Now()
			ch, reqs, err := client.OpenChannel("bench", nil)
			if err != nil {
				b.Fatal(err)
			}
			go ssh.DiscardRequests(reqs)
			ch.Write([]byte("ping"))
			if _, err := io.ReadFull(ch, buf); err != nil {
				b.Fatal(err)
			}
			lat = append(lat, time.Since(start))
			ch.Close()
		}
		reportLatency(b, lat)
	})
}

func reportLatency(b *testing.B, lat []time.Duration) {
	if len(lat) == 0 {
		return
	}
	slices.Sort(lat)
	q := func(p float64) float64 { return float64(lat[int(p*float64(len(lat)-1))].Nanoseconds()) / 1e3 }
	b.ReportMetric(q(0.50), "p50-µs")
	b.ReportMetric(q(0.99), "p99-µs")
}
