package proxyconnect

import (
	"bufio"
	"bytes"
	"context"
	"encoding/base64"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"slices"
	"syscall"
	"testing"
	"time"
)

// BenchmarkReadResponse measures parsing squid's answer to CONNECT.
func BenchmarkReadResponse(b *testing.B) {
	in := []byte("HTTP/1.1 200 Connection established\r\n\r\n")
	b.SetBytes(int64(len(in)))
	b.ReportAllocs()
	for b.Loop() {
		if _, _, _, err := readResponse(bytes.NewReader(in), MaxResponseHeaderBytes); err != nil {
			b.Fatal(err)
		}
	}
}

// handConnect is the baseline: a CONNECT to squid written by hand on a raw
// net.Dial connection, the response read with net/http.
func handConnect(proxyAddr, target, user, password string) (net.Conn, error) {
	c, err := net.Dial("tcp", proxyAddr)
	if err != nil {
		return nil, err
	}
	cred := base64.StdEncoding.EncodeToString([]byte(user + ":" + password))
	fmt.Fprintf(c, "CONNECT %s HTTP/1.1\r\nHost: %s\r\nProxy-Authorization: Basic %s\r\n\r\n", target, target, cred)
	br := bufio.NewReader(c)
	resp, err := http.ReadResponse(br, &http.Request{Method: http.MethodConnect})
	if err != nil {
		c.Close()
		return nil, err
	}
	if resp.StatusCode != 200 {
		c.Close()
		return nil, fmt.Errorf("hand CONNECT: %s", resp.Status)
	}
	if br.Buffered() > 0 {
		// Tunnel bytes arrived with the answer: read them through br
		// (which passes large reads straight to the socket once empty).
		return &bufferedConn{Conn: c, r: br}, nil
	}
	return c, nil
}

type bufferedConn struct {
	net.Conn
	r *bufio.Reader
}

func (c *bufferedConn) Read(p []byte) (int, error) { return c.r.Read(p) }

// benchSetup starts squid and a target that streams data forever, and
// returns the dial functions of both contenders.
func benchSetup(b *testing.B) map[string]func() (net.Conn, error) {
	squid, _ := startSquid(b, false)
	chunk := bytes.Repeat([]byte{'x'}, 256<<10)
	tg := startTarget(b, func(c net.Conn) {
		for {
			if _, err := c.Write(chunk); err != nil {
				return
			}
		}
	})
	target := "tunnel.test:" + tg.Port
	d := &Dialer{Config: &Config{HTTPSProxy: "http://" + userinfo(testUser, testPassword) + squid.Addr}}
	return map[string]func() (net.Conn, error){
		"proxyconnect": func() (net.Conn, error) { return d.DialContext(context.Background(), "tcp", target) },
		"hand":         func() (net.Conn, error) { return handConnect(squid.Addr, target, testUser, testPassword) },
	}
}

// BenchmarkSquidThroughput measures bulk download through squid on one
// tunnel: our dialer against a hand-written CONNECT (bench/proxyconnect.sh
// prints the ratio).
func BenchmarkSquidThroughput(b *testing.B) {
	dials := benchSetup(b)
	const perOp = 4 << 20
	for _, name := range []string{"proxyconnect", "hand"} {
		b.Run(name, func(b *testing.B) {
			c, err := dials[name]()
			if err != nil {
				b.Fatal(err)
			}
			defer c.Close()
			buf := make([]byte, 256<<10)
			b.SetBytes(perOp)
			b.ResetTimer()
			for range b.N {
				for n := 0; n < perOp; {
					m, err := c.Read(buf[:min(len(buf), perOp-n)])
					if err != nil {
						b.Fatal(err)
					}
					n += m
				}
			}
		})
	}
}

// BenchmarkSquidDial measures setting up a tunnel through squid with Basic
// auth, ours against the hand-written CONNECT.
func BenchmarkSquidDial(b *testing.B) {
	dials := benchSetup(b)
	for _, name := range []string{"proxyconnect", "hand"} {
		b.Run(name, func(b *testing.B) {
			for b.Loop() {
				c, err := dials[name]()
				if err != nil {
					b.Fatal(err)
				}
				c.Close()
			}
		})
	}
}

// BenchmarkSquidThroughputPaired compares the two contenders in rounds.
// Each round opens one tunnel of each kind to the same streaming target
// and reads them in alternating chunks (the order flips every chunk), so
// changes in machine load hit both alike. It reports the medians over the
// rounds of throughput (MB/s) and of this process's CPU time per GB
// (user+system; both ends of the stream live in this process), and the
// ratios ours/hand: of the medians, the median of the per-round ratios
// (paired) and of the best rounds. bench/proxyconnect.sh runs it with
// -benchtime Nx for N rounds.
func BenchmarkSquidThroughputPaired(b *testing.B) {
	dials := benchSetup(b)
	const (
		chunkBytes = 8 << 20
		chunks     = 8 // per contender per round
	)
	buf := make([]byte, 256<<10)
	read := func(c net.Conn) (time.Duration, time.Duration) {
		cpu0 := cpuTime()
		start := time.Now()
		for n := 0; n < chunkBytes; {
			m, err := c.Read(buf)
			if err != nil {
				b.Fatal(err)
			}
			n += m
		}
		return time.Since(start), cpuTime() - cpu0
	}
	var ours, hand, oursCPU, handCPU []float64
	for i := range b.N {
		co, err := dials["proxyconnect"]()
		if err != nil {
			b.Fatal(err)
		}
		ch, err := dials["hand"]()
		if err != nil {
			b.Fatal(err)
		}
		var to, th, cpuo, cpuh time.Duration
		for k := range 2 * chunks {
			if (k+i)%2 == 0 {
				el, cpu := read(co)
				to, cpuo = to+el, cpuo+cpu
			} else {
				el, cpu := read(ch)
				th, cpuh = th+el, cpuh+cpu
			}
		}
		co.Close()
		ch.Close()
		const total = chunkBytes * chunks
		ours = append(ours, total/to.Seconds()/1e6)
		hand = append(hand, total/th.Seconds()/1e6)
		oursCPU = append(oursCPU, cpuo.Seconds()/(total/1e9))
		handCPU = append(handCPU, cpuh.Seconds()/(total/1e9))
		b.Logf("round %d: proxyconnect %.0f MB/s %.3f CPU-s/GB, hand %.0f MB/s %.3f CPU-s/GB",
			i+1, ours[i], oursCPU[i], hand[i], handCPU[i])
	}
	mo, mh := median(ours), median(hand)
	co, ch := median(oursCPU), median(handCPU)
	paired := make([]float64, len(ours))
	for i := range ours {
		paired[i] = ours[i] / hand[i]
	}
	b.ReportMetric(0, "ns/op")
	b.ReportMetric(mo, "ours-MB/s")
	b.ReportMetric(mh, "hand-MB/s")
	b.ReportMetric(mo/mh, "ratio")
	b.ReportMetric(median(paired), "paired-ratio")
	b.ReportMetric(slices.Max(ours)/slices.Max(hand), "best-ratio")
	b.ReportMetric(co, "ours-CPU-s/GB")
	b.ReportMetric(ch, "hand-CPU-s/GB")
	b.ReportMetric(co/ch, "cpu-ratio")
}

// cpuTime returns the process's user+system CPU time so far.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

func median(v []float64) float64 {
	s := slices.Clone(v)
	slices.Sort(s)
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

// BenchmarkRelayCopy measures io.Copy between a *Conn and a *net.TCPConn
// in both directions against plain *net.TCPConn on both ends (splice on
// Linux) and against a copy through user space (wrappers that hide
// ReadFrom/WriteTo). Equal CPU-s/GB to "tcp-tcp" means the Conn kept
// splice.
func BenchmarkRelayCopy(b *testing.B) {
	proxy, _ := url.Parse("http://proxy.example:3128")
	type hide struct{ io.Reader }
	type hideW struct{ io.Writer }
	for _, tc := range []struct {
		name string
		copy func(dst, src net.Conn) (int64, error)
	}{
		{"tcp-tcp", func(dst, src net.Conn) (int64, error) { return io.Copy(dst, src) }},
		{"conn-to-tcp", func(dst, src net.Conn) (int64, error) { return io.Copy(dst, newConn(src, proxy, nil)) }},
		{"tcp-to-conn", func(dst, src net.Conn) (int64, error) { return io.Copy(newConn(dst, proxy, nil), src) }},
		{"userspace", func(dst, src net.Conn) (int64, error) { return io.Copy(hideW{dst}, hide{src}) }},
	} {
		b.Run(tc.name, func(b *testing.B) {
			const perOp = 64 << 20
			chunk := make([]byte, 256<<10)
			b.SetBytes(perOp)
			var cpu time.Duration
			for range b.N {
				srcR, srcW := tcpPair(b)
				dstW, dstR := tcpPair(b)
				done := make(chan struct{}, 2)
				go func() {
					for n := 0; n < perOp; n += len(chunk) {
						srcW.Write(chunk)
					}
					srcW.Close()
					done <- struct{}{}
				}()
				go func() { io.Copy(io.Discard, dstR); done <- struct{}{} }()
				c0 := cpuTime()
				if n, err := tc.copy(dstW, srcR); err != nil || n != perOp {
					b.Fatalf("copied %d, %v", n, err)
				}
				cpu += cpuTime() - c0
				dstW.Close()
				<-done
				<-done
				srcR.Close()
				dstR.Close()
			}
			b.ReportMetric(cpu.Seconds()/(float64(b.N)*perOp/1e9), "CPU-s/GB")
		})
	}
}

// BenchmarkSquidDialPaired alternates tunnel setups through squid, ours
// and hand-written, b.N times each, and reports the median setup time of
// each (milliseconds) and their ratio.
func BenchmarkSquidDialPaired(b *testing.B) {
	dials := benchSetup(b)
	var ours, hand []float64
	one := func(name string) float64 {
		start := time.Now()
		c, err := dials[name]()
		if err != nil {
			b.Fatal(err)
		}
		el := time.Since(start)
		c.Close()
		return el.Seconds() * 1e3
	}
	for i := range b.N {
		if i%2 == 0 {
			ours = append(ours, one("proxyconnect"))
			hand = append(hand, one("hand"))
		} else {
			hand = append(hand, one("hand"))
			ours = append(ours, one("proxyconnect"))
		}
	}
	b.ReportMetric(0, "ns/op")
	b.ReportMetric(median(ours), "ours-ms")
	b.ReportMetric(median(hand), "hand-ms")
	b.ReportMetric(median(ours)/median(hand), "ratio")
}
