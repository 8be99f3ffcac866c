// Command tunnelbench measures the tunnel package at scale: N idle tunnels
// into one proxy process (memory per tunnel), and how long N agents take
// to come back after the proxy is killed and restarted.
//
// The proxy and the agents run in separate processes (each raises its
// open-file limit to the hard limit), both started by the default "run"
// mode:
//
//	go run ./bench/tunnelbench -n 10000
package main

import (
	"bufio"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"flag"
	"fmt"
	"io"
	"log"
	"math/big"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"runtime/pprof"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/sallyport/sallyport/tunnel"
)

func main() {
	mode := flag.String("mode", "run", "run | proxy | agents")
	n := flag.Int("n", 10000, "number of agents (tunnels)")
	dir := flag.String("dir", "", "directory with ca.pem and ca-key.pem (proxy and agents modes)")
	addr := flag.String("addr", "", "proxy address (proxy and agents modes)")
	timeout := flag.Duration("timeout", 5*time.Minute, "give up after this long")
	flag.Parse()
	raiseFileLimit()
	switch *mode {
	case "run":
		run(*n, *timeout)
	case "proxy":
		proxy(*dir, *addr)
	case "agents":
		agents(*dir, *addr, *n)
	default:
		log.Fatalf("unknown mode %q", *mode)
	}
}

func raiseFileLimit() {
	var rl syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &rl); err != nil {
		log.Fatal(err)
	}
	rl.Cur = rl.Max
	if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &rl); err != nil {
		log.Fatal(err)
	}
}

// status is what the proxy process prints every tick.
type status struct {
	Tunnels int    `json:"tunnels"`
	RSS     uint64 `json:"rss"`
	Heap    uint64 `json:"heap"`
	Gor     int    `json:"goroutines"`
}

func rss() uint64 {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return 0
	}
	for _, l := range strings.Split(string(b), "\n") {
		if strings.HasPrefix(l, "VmRSS:") {
			f := strings.Fields(l)
			kb, _ := strconv.ParseUint(f[1], 10, 64)
			return kb << 10
		}
	}
	return 0
}

func proxy(dir, addr string) {
	ca, caKey := loadCA(dir)
	pool := x509.NewCertPool()
	pool.AddCert(ca)
	cert := issue(ca, caKey, newKey(), "proxy", true, 2)
	srv, err := tunnel.NewServer(&tunnel.ServerConfig{
		ID: "proxy-1",
		TLSConfig: &tls.Config{
			Certificates: []tls.Certificate{cert},
			ClientAuth:   tls.RequireAndVerifyClientCert,
			ClientCAs:    pool,
		},
	})
	if err != nil {
		log.Fatal(err)
	}
	var ln net.Listener
	for i := 0; i < 100; i++ {
		if ln, err = net.Listen("tcp", addr); err == nil {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	if err != nil {
		log.Fatal(err)
	}
	go srv.Serve(ln)
	last := -1
	for {
		runtime.GC()
		n := srv.Stats().Tunnels
		if n == last {
			debug.FreeOSMemory()
			if f := os.Getenv("TUNNELBENCH_HEAPPROFILE"); f != "" && n > 0 {
				if w, err := os.Create(f); err == nil {
					pprof.WriteHeapProfile(w)
					w.Close()
				}
			}
		}
		last = n
		var ms runtime.MemStats
		runtime.ReadMemStats(&ms)
		b, _ := json.Marshal(status{Tunnels: n, RSS: rss(), Heap: ms.HeapInuse, Gor: runtime.NumGoroutine()})
		fmt.Println(string(b))
		time.Sleep(500 * time.Millisecond)
	}
}

func agents(dir, addr string, n int) {
	ca, caKey := loadCA(dir)
	pool := x509.NewCertPool()
	pool.AddCert(ca)
	key := newKey() // one key, n certificates: signing is cheap, key generation is not
	as := make([]*tunnel.Agent, 0, n)
	for i := 0; i < n; i++ {
		cert := issue(ca, caKey, key, fmt.Sprintf("node-%05d", i), false, int64(10+i))
		a, err := tunnel.NewAgent(&tunnel.AgentConfig{
			ProxyAddrs: []string{addr},
			TLSConfig:  &tls.Config{Certificates: []tls.Certificate{cert}, RootCAs: pool, ServerName: "127.0.0.1"},
			Dialer:     &net.Dialer{},
		})
		if err != nil {
			log.Fatal(err)
		}
		a.Register("echo", func(c net.Conn) { io.Copy(c, c) })
		as = append(as, a)
	}
	for _, a := range as {
		a.Start()
		time.Sleep(50 * time.Microsecond)
	}
	fmt.Println("started")
	select {}
}

func run(n int, timeout time.Duration) {
	dir, err := os.MkdirTemp("", "tunnelbench-")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(dir)
	writeCA(dir)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		log.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	self, err := os.Executable()
	if err != nil {
		log.Fatal(err)
	}
	var hard syscall.Rlimit
	syscall.Getrlimit(syscall.RLIMIT_NOFILE, &hard)
	fmt.Printf("tunnels: %d   open-file hard limit: %d (proxy and agents in separate processes)\n", n, hard.Max)

	p, st := startProxy(self, dir, addr)
	base := waitStatus(st, timeout, func(s status) bool { return true })
	ag := exec.Command(self, "-mode", "agents", "-dir", dir, "-addr", addr, "-n", strconv.Itoa(n))
	ag.Stderr = os.Stderr
	if err := ag.Start(); err != nil {
		log.Fatal(err)
	}
	defer ag.Process.Kill()
	t0 := time.Now()
	up := waitStatus(st, timeout, func(s status) bool { return s.Tunnels >= n })
	fmt.Printf("first connect of %d agents: %.1f s\n", n, time.Since(t0).Seconds())
	// Let the idle state settle (GC, freed memory returned) and take the
	// median of a few readings.
	var rs []uint64
	for i := 0; i < 5; i++ {
		s := waitStatus(st, timeout, func(s status) bool { return true })
		rs = append(rs, s.RSS)
		up = s
	}
	med := median(rs)
	fmt.Printf("proxy RSS: %.1f MiB before, %.1f MiB with %d idle tunnels (heap %.1f MiB, %d goroutines)\n",
		mib(base.RSS), mib(med), up.Tunnels, mib(up.Heap), up.Gor)
	fmt.Printf("memory per idle tunnel on the proxy: %.1f KiB (RSS delta / tunnels)\n", float64(med-base.RSS)/float64(n)/1024)

	// Kill the proxy and start it again on the same address.
	p.Process.Kill()
	p.Wait()
	t1 := time.Now()
	p, st = startProxy(self, dir, addr)
	defer p.Process.Kill()
	waitStatus(st, timeout, func(s status) bool { return s.Tunnels >= n })
	fmt.Printf("proxy restart: all %d tunnels back in %.1f s\n", n, time.Since(t1).Seconds())
}

func median(v []uint64) uint64 {
	s := append([]uint64(nil), v...)
	for i := range s {
		for j := i + 1; j < len(s); j++ {
			if s[j] < s[i] {
				s[i], s[j] = s[j], s[i]
			}
		}
	}
	return s[len(s)/2]
}

func mib(b uint64) float64 { return float64(b) / (1 << 20) }

func startProxy(self, dir, addr string) (*exec.Cmd, <-chan status) {
	cmd := exec.Command(self, "-mode", "proxy", "-dir", dir, "-addr", addr)
	cmd.Stderr = os.Stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		log.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		log.Fatal(err)
	}
	ch := make(chan status, 16)
	go func() {
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			var s status
			if json.Unmarshal(sc.Bytes(), &s) == nil {
				select {
				case ch <- s:
				default:
					<-ch
					ch <- s
				}
			}
		}
	}()
	return cmd, ch
}

func waitStatus(ch <-chan status, timeout time.Duration, ok func(status) bool) status {
	deadline := time.After(timeout)
	for {
		select {
		case s := <-ch:
			if ok(s) {
				return s
			}
		case <-deadline:
			log.Fatalf("timed out after %v", timeout)
		}
	}
}

func newKey() *ecdsa.PrivateKey {
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		log.Fatal(err)
	}
	return k
}

func writeCA(dir string) {
	key := newKey()
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "tunnelbench CA"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		log.Fatal(err)
	}
	kder, _ := x509.MarshalPKCS8PrivateKey(key)
	os.WriteFile(filepath.Join(dir, "ca.pem"), pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600)
	os.WriteFile(filepath.Join(dir, "ca-key.pem"), pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: kder}), 0o600)
}

func loadCA(dir string) (*x509.Certificate, *ecdsa.PrivateKey) {
	cb, err := os.ReadFile(filepath.Join(dir, "ca.pem"))
	if err != nil {
		log.Fatal(err)
	}
	kb, err := os.ReadFile(filepath.Join(dir, "ca-key.pem"))
	if err != nil {
		log.Fatal(err)
	}
	cblk, _ := pem.Decode(cb)
	kblk, _ := pem.Decode(kb)
	cert, err := x509.ParseCertificate(cblk.Bytes)
	if err != nil {
		log.Fatal(err)
	}
	key, err := x509.ParsePKCS8PrivateKey(kblk.Bytes)
	if err != nil {
		log.Fatal(err)
	}
	return cert, key.(*ecdsa.PrivateKey)
}

func issue(ca *x509.Certificate, caKey, key *ecdsa.PrivateKey, cn string, server bool, serial int64) tls.Certificate {
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(serial), Subject: pkix.Name{CommonName: cn},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		KeyUsage:    x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
	}
	if server {
		tmpl.ExtKeyUsage = []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}
		tmpl.IPAddresses = []net.IP{net.IPv4(127, 0, 0, 1)}
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, &key.PublicKey, caKey)
	if err != nil {
		log.Fatal(err)
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}
}
