package mux

import (
	"bufio"
	"bytes"
	"io"
	"net"
	"sync"
	"syscall"
	"testing"
	"time"
)

// cpuTime returns the process's user+system CPU time. Benchmarks report
// CPU per operation besides wall-clock rates because the machine's load
// moves the rates far more than it moves the CPU spent.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// BenchmarkDetect measures the parsing cost of detection per connection:
// an optional PROXY header and the protocol's first bytes, from memory.
func BenchmarkDetect(b *testing.B) {
	hello := []byte("\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03" + string(make([]byte, 500)))
	v1 := mustHeader(b, &ProxyHeader{Version: 1, Command: ProxyProxy, Source: clientAddr, Destination: frontAddr})
	v2 := mustHeader(b, &ProxyHeader{Version: 2, Command: ProxyProxy, Source: clientAddr, Destination: frontAddr,
		TLVs: []TLV{{Type: TLVTypeAuthority, Value: []byte("example.com")}}})
	cases := []struct {
		name string
		in   []byte
		want Protocol
	}{
		{"tls", hello, TLS},
		{"http", []byte("GET / HTTP/1.1\r\nHost: example.com\r\n\r\n"), HTTP},
		{"ssh", []byte("SSH-2.0-OpenSSH_9.2p1\r\n"), SSH},
		{"postgres", pgPacket(8, pgSSLRequest), Postgres},
		{"proxy-v1+http", append(bytes.Clone(v1), "GET / HTTP/1.1\r\n\r\n"...), HTTP},
		{"proxy-v2+tls", append(bytes.Clone(v2), hello...), TLS},
	}
	for _, tc := range cases {
		b.Run(tc.name, func(b *testing.B) {
			r := bytes.NewReader(tc.in)
			br := bufio.NewReaderSize(r, 512)
			b.ReportAllocs()
			for b.Loop() {
				r.Reset(tc.in)
				br.Reset(r)
				if _, err := ReadProxyHeader(br); err != nil && err != ErrNoProxyHeader {
					b.Fatal(err)
				}
				if p, err := Detect(br); p != tc.want || err != nil {
					b.Fatalf("Detect = %v, %v", p, err)
				}
			}
		})
	}
}

// acceptTarget returns the listener a benchmark's server accepts from:
// the raw listener, or the Mux's SSH listener in front of it.
func acceptTarget(b *testing.B, viaMux bool, cfg *Config) net.Listener {
	b.Helper()
	if !viaMux {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			b.Fatal(err)
		}
		b.Cleanup(func() { l.Close() })
		return l
	}
	m := startMux(b, cfg)
	return m.Listener(SSH)
}

// BenchmarkAccept measures new connections per second: the client dials,
// sends an SSH version line and waits for the server, which accepts (from
// the raw listener or through the Mux), reads the line and closes. 4 clients in parallel.
func BenchmarkAccept(b *testing.B) {
	for _, tc := range []struct {
		name   string
		viaMux bool
		header bool
	}{{"direct", false, false}, {"mux", true, false}, {"mux-proxy-v2", true, true}} {
		b.Run(tc.name, func(b *testing.B) {
			l := acceptTarget(b, tc.viaMux, &Config{ProxyProtocol: ProxyAccept, TrustedNetworks: loopback})
			var wg sync.WaitGroup
			wg.Add(1)
			const line = "SSH-2.0-bench\r\n"
			go func() {
				defer wg.Done()
				buf := make([]byte, len(line))
				for {
					c, err := l.Accept()
					if err != nil {
						return
					}
					// Read what the client sent, as a server would.
					c.SetReadDeadline(time.Now().Add(10 * time.Second))
					if _, err := io.ReadFull(c, buf); err != nil || string(buf) != line {
						b.Errorf("server read %q, %v", buf, err)
					}
					c.Close()
				}
			}()
			hello := []byte(line)
			if tc.header {
				hello = append(mustHeader(b, &ProxyHeader{Version: 2, Command: ProxyProxy, Source: clientAddr, Destination: frontAddr}), hello...)
			}
			b.SetParallelism(2) // 2 × GOMAXPROCS clients
			cpu0 := cpuTime()
			b.ResetTimer()
			b.RunParallel(func(pb *testing.PB) {
				var buf [1]byte
				for pb.Next() {
					c, err := net.Dial("tcp", l.Addr().String())
					if err != nil {
						b.Error(err)
						return
					}
					c.Write(hello)
					c.SetReadDeadline(time.Now().Add(10 * time.Second))
					if _, err := c.Read(buf[:]); err != io.EOF && !isReset(err) {
						b.Errorf("read: %v", err)
					}
					c.Close()
				}
			})
			b.StopTimer()
			l.Close()
			wg.Wait()
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "conns/s")
			b.ReportMetric(float64((cpuTime()-cpu0).Microseconds())/float64(b.N), "cpu-µs/conn")
		})
	}
}

// BenchmarkThroughput measures bytes per second through a relay: the
// client writes into a connection the server accepted (raw, or through
// the Mux), and the server relays it with io.Copy to a second TCP
// connection whose peer discards it. Through the Mux, io.Copy goes
// through Conn.WriteTo and must still splice.
func BenchmarkThroughput(b *testing.B) {
	const chunk = 256 << 10
	for _, tc := range []struct {
		name   string
		viaMux bool
	}{{"direct", false}, {"mux", true}} {
		b.Run(tc.name, func(b *testing.B) {
			l := acceptTarget(b, tc.viaMux, nil)
			// Sink: the relay's upstream, discarding what it reads.
			sinkL, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				b.Fatal(err)
			}
			defer sinkL.Close()
			sunk := make(chan int64, 1)
			go func() {
				c, err := sinkL.Accept()
				if err != nil {
					sunk <- -1
					return
				}
				n, _ := io.Copy(io.Discard, c)
				c.Close()
				sunk <- n
			}()
			relayed := make(chan error, 1)
			go func() {
				c, err := l.Accept()
				if err != nil {
					relayed <- err
					return
				}
				defer c.Close()
				up, err := net.Dial("tcp", sinkL.Addr().String())
				if err != nil {
					relayed <- err
					return
				}
				_, err = io.Copy(up, c)
				up.Close()
				relayed <- err
			}()
			c, err := net.Dial("tcp", l.Addr().String())
			if err != nil {
				b.Fatal(err)
			}
			if _, err := c.Write([]byte("SSH-2.0-bench\r\n")); err != nil {
				b.Fatal(err)
			}
			buf := make([]byte, chunk)
			b.SetBytes(chunk)
			cpu0 := cpuTime()
			b.ResetTimer()
			for b.Loop() {
				if _, err := c.Write(buf); err != nil {
					b.Fatal(err)
				}
			}
			c.(*net.TCPConn).CloseWrite()
			if err := <-relayed; err != nil {
				b.Fatal(err)
			}
			n := <-sunk
			b.StopTimer()
			b.ReportMetric((cpuTime()-cpu0).Seconds()/(float64(b.N)*chunk/1e9), "cpu-s/GB")
			c.Close()
			if want := int64(b.N)*chunk + 15; n != want {
				b.Fatalf("sink got %d bytes, want %d", n, want)
			}
		})
	}
}
