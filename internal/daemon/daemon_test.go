package daemon

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"io"
	"math/big"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// writeKeyPair writes a self-signed certificate for name into dir.
func writeKeyPair(t testing.TB, dir, name string) KeyPairFiles {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(time.Now().UnixNano()),
		Subject:      pkix.Name{CommonName: name},
		DNSNames:     []string{name},
		NotBefore:    time.Now().Add(-time.Minute),
		NotAfter:     time.Now().Add(time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	kder, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	f := KeyPairFiles{CertFile: filepath.Join(dir, "tls.crt"), KeyFile: filepath.Join(dir, "tls.key")}
	if err := os.WriteFile(f.CertFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(f.KeyFile, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: kder}), 0o600); err != nil {
		t.Fatal(err)
	}
	return f
}

// peerCN does a TLS handshake with addr and returns the server's CN.
func peerCN(t testing.TB, addr string) string {
	t.Helper()
	c, err := tls.Dial("tcp", addr, &tls.Config{InsecureSkipVerify: true})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	return c.ConnectionState().PeerCertificates[0].Subject.CommonName
}

func TestKeyPairsReload(t *testing.T) {
	dir := t.TempDir()
	files := writeKeyPair(t, dir, "old.example")
	kp, err := LoadKeyPairs([]KeyPairFiles{files})
	if err != nil {
		t.Fatal(err)
	}
	l, err := tls.Listen("tcp", "127.0.0.1:0", kp.TLSConfig())
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "hi") })}
	done := make(chan struct{})
	go func() { defer close(done); srv.Serve(l) }()
	t.Cleanup(func() { srv.Close(); <-done })

	if cn := peerCN(t, l.Addr().String()); cn != "old.example" {
		t.Fatalf("before reload: CN %q, want old.example", cn)
	}
	// An open connection made before the reload.
	open, err := tls.Dial("tcp", l.Addr().String(), &tls.Config{InsecureSkipVerify: true})
	if err != nil {
		t.Fatal(err)
	}
	defer open.Close()

	cases := []struct {
		name    string
		prepare func()
		wantCN  string
		wantErr bool
	}{
		{"garbage file keeps the old pair", func() { os.WriteFile(files.CertFile, []byte("not pem"), 0o644) }, "old.example", true},
		{"new pair is served", func() { writeKeyPair(t, dir, "new.example") }, "new.example", false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			tc.prepare()
			err := kp.Reload()
			if (err != nil) != tc.wantErr {
				t.Fatalf("Reload: %v, wantErr %v", err, tc.wantErr)
			}
			if cn := peerCN(t, l.Addr().String()); cn != tc.wantCN {
				t.Fatalf("CN %q, want %q", cn, tc.wantCN)
			}
		})
	}
	if ok, failed := kp.Reloads(); ok != 1 || failed != 1 {
		t.Fatalf("Reloads() = %d, %d; want 1, 1", ok, failed)
	}
	// The connection opened before the reloads still works.
	if _, err := io.WriteString(open, "GET / HTTP/1.1\r\nHost: x\r\n\r\n"); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 512)
	n, err := open.Read(buf)
	if err != nil || !strings.Contains(string(buf[:n]), "hi") {
		t.Fatalf("old connection: %q, %v", buf[:n], err)
	}
	if cn := open.ConnectionState().PeerCertificates[0].Subject.CommonName; cn != "old.example" {
		t.Fatalf("old connection CN %q", cn)
	}
}

func TestKeyPairsSNI(t *testing.T) {
	a := writeKeyPair(t, t.TempDir(), "a.example")
	b := writeKeyPair(t, t.TempDir(), "b.example")
	kp, err := LoadKeyPairs([]KeyPairFiles{a, b})
	if err != nil {
		t.Fatal(err)
	}
	cases := []struct{ name, sni, want string }{
		{"first", "a.example", "a.example"},
		{"second", "b.example", "b.example"},
		{"unknown falls back to first", "c.example", "a.example"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c, err := kp.GetCertificate(&tls.ClientHelloInfo{ServerName: tc.sni, SupportedVersions: []uint16{tls.VersionTLS13}, SignatureSchemes: []tls.SignatureScheme{tls.ECDSAWithP256AndSHA256}})
			if err != nil {
				t.Fatal(err)
			}
			leaf, _ := x509.ParseCertificate(c.Certificate[0])
			if leaf.Subject.CommonName != tc.want {
				t.Fatalf("got %s, want %s", leaf.Subject.CommonName, tc.want)
			}
		})
	}
	if _, err := LoadKeyPairs(nil); !errors.Is(err, ErrNoKeyPairs) {
		t.Fatalf("LoadKeyPairs(nil) = %v", err)
	}
}

func TestWait(t *testing.T) {
	cases := []struct {
		name    string
		signals []os.Signal
		errc    error
		reload  error
		wantSig os.Signal
		wantErr error
		reloads int
	}{
		{"sigterm", []os.Signal{syscall.SIGTERM}, nil, nil, syscall.SIGTERM, nil, 0},
		{"sighup then sigint", []os.Signal{syscall.SIGHUP, syscall.SIGHUP, syscall.SIGINT}, nil, nil, syscall.SIGINT, nil, 2},
		{"failed reload keeps running", []os.Signal{syscall.SIGHUP, syscall.SIGTERM}, nil, errors.New("bad file"), syscall.SIGTERM, nil, 1},
		{"component error", nil, io.ErrUnexpectedEOF, nil, nil, io.ErrUnexpectedEOF, 0},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			sigc := make(chan os.Signal, len(tc.signals))
			for _, s := range tc.signals {
				sigc <- s
			}
			errc := make(chan error, 1)
			if tc.errc != nil {
				errc <- tc.errc
			}
			n := 0
			sig, err := Wait(context.Background(), WaitConfig{Signals: sigc, Errc: errc, Reload: func() error { n++; return tc.reload }})
			if sig != tc.wantSig || !errors.Is(err, tc.wantErr) || n != tc.reloads {
				t.Fatalf("Wait = %v, %v, %d reloads; want %v, %v, %d", sig, err, n, tc.wantSig, tc.wantErr, tc.reloads)
			}
		})
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := Wait(ctx, WaitConfig{Signals: make(chan os.Signal)}); !errors.Is(err, context.Canceled) {
		t.Fatalf("cancelled Wait = %v", err)
	}
}

// TestWaitRealSignal sends SIGHUP and SIGTERM to the test process itself.
func TestWaitRealSignal(t *testing.T) {
	reloaded := make(chan struct{}, 1)
	go func() {
		time.Sleep(100 * time.Millisecond)
		syscall.Kill(os.Getpid(), syscall.SIGHUP)
		<-reloaded
		syscall.Kill(os.Getpid(), syscall.SIGTERM)
	}()
	sig, err := Wait(context.Background(), WaitConfig{Reload: func() error { reloaded <- struct{}{}; return nil }})
	if sig != syscall.SIGTERM || err != nil {
		t.Fatalf("Wait = %v, %v", sig, err)
	}
}

func TestPIDFile(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "x.pid")
	remove, err := WritePIDFile(path)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := os.ReadFile(path)
	if strings.TrimSpace(string(b)) != strconv.Itoa(os.Getpid()) {
		t.Fatalf("pid file holds %q", b)
	}
	remove()
	if _, err := os.Stat(path); !os.IsNotExist(err) {
		t.Fatalf("pid file not removed: %v", err)
	}

	// A live other process: refused.
	cmd := exec.Command("sleep", "30")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	os.WriteFile(path, []byte(strconv.Itoa(cmd.Process.Pid)+"\n"), 0o644)
	if _, err := WritePIDFile(path); !errors.Is(err, ErrRunning) {
		t.Fatalf("live pid: %v, want ErrRunning", err)
	}
	// A stale one: replaced.
	cmd.Process.Kill()
	cmd.Wait()
	remove, err = WritePIDFile(path)
	if err != nil {
		t.Fatalf("stale pid: %v", err)
	}
	defer remove()
	if r, err := WritePIDFile(""); err != nil {
		t.Fatal(err)
	} else {
		r()
	}
}

func TestDiag(t *testing.T) {
	var notReady error = errors.New("auth unreachable")
	d := NewDiag(DiagConfig{
		Ready:   func() error { return notReady },
		Metrics: []Metric{{Name: "sallyport_test_total", Help: "Test.", Type: "counter", Value: func() float64 { return 42 }}},
	})
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- d.Serve(l) }()
	base := "http://" + l.Addr().String()
	get := func(path string) (int, string) {
		resp, err := http.Get(base + path)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	check := func(name, path string, code int, contains ...string) {
		t.Run(name, func(t *testing.T) {
			c, body := get(path)
			if c != code {
				t.Fatalf("%s: %d %q, want %d", path, c, body, code)
			}
			for _, s := range contains {
				if !strings.Contains(body, s) {
					t.Fatalf("%s: body %q lacks %q", path, body, s)
				}
			}
		})
	}
	check("healthz", "/healthz", 200, "ok")
	check("readyz not ready", "/readyz", 503, "auth unreachable")
	check("metrics", "/metrics", 200, "# TYPE sallyport_test_total counter\nsallyport_test_total 42\n", "sallyport_ready 0\n", "go_goroutines ")
	notReady = nil
	check("readyz ready", "/readyz", 200, "ready")
	check("metrics ready", "/metrics", 200, "sallyport_ready 1\n")
	d.SetDraining()
	check("readyz draining", "/readyz", 503, "draining")
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := d.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}
	if err := <-done; !errors.Is(err, http.ErrServerClosed) {
		t.Fatalf("Serve = %v", err)
	}
	http.DefaultClient.CloseIdleConnections()
}
