package proxyconnect

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"io"
	"net"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sallyport/sallyport/internal/testpki"
	"github.com/sallyport/sallyport/internal/testservice"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// Test credentials. The password has characters that must be
// percent-encoded in a URL and is long enough to be found in any text.
const (
	testUser     = "agent"
	testPassword = "s3cr:t@p/ss%word"
)

// userinfo returns "agent:<percent-encoded password>@".
func userinfo(user, password string) string {
	return url.UserPassword(user, password).String() + "@"
}

// target is a loopback TCP server for tests. Each accepted connection is
// handed to handle (default: echo) and also sent on Accepted.
type target struct {
	ln       net.Listener
	Port     string
	Accepted chan net.Conn
	wg       sync.WaitGroup
}

func startTarget(t testing.TB, handle func(net.Conn)) *target {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	if handle == nil {
		handle = func(c net.Conn) { io.Copy(c, c) }
	}
	_, port, _ := net.SplitHostPort(ln.Addr().String())
	tg := &target{ln: ln, Port: port, Accepted: make(chan net.Conn, 64)}
	var mu sync.Mutex
	var conns []net.Conn
	tg.wg.Add(1)
	go func() {
		defer tg.wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			conns = append(conns, c)
			mu.Unlock()
			select {
			case tg.Accepted <- c:
			default:
			}
			tg.wg.Add(1)
			go func() {
				defer tg.wg.Done()
				defer c.Close()
				handle(c)
			}()
		}
	}()
	t.Cleanup(func() {
		ln.Close()
		mu.Lock()
		for _, c := range conns {
			c.Close()
		}
		mu.Unlock()
		tg.wg.Wait()
	})
	return tg
}

// testResolver is a Forward dialer that maps names ending in ".test" to
// 127.0.0.1, so a NO_PROXY target with a made-up name can be dialed
// directly.
type testResolver struct{ d net.Dialer }

func (r *testResolver) DialContext(ctx context.Context, network, addr string) (net.Conn, error) {
	host, port, err := net.SplitHostPort(addr)
	if err == nil && strings.HasSuffix(host, ".test") {
		addr = net.JoinHostPort("127.0.0.1", port)
	}
	return r.d.DialContext(ctx, network, addr)
}

// startSquid starts squid with Basic auth for testUser, the made-up names
// tunnel.test and denied.test mapped to 127.0.0.1, denied.test refused
// with 403, and (when tlsFiles) an https_port with a certificate for
// "localhost" and 127.0.0.1 signed by the returned pool's CA.
func startSquid(t testing.TB, withTLS bool) (*testservice.Squid, *x509.CertPool) {
	t.Helper()
	cfg := testservice.SquidConfig{
		Users:       map[string]string{testUser: testPassword},
		Realm:       "sallyport test proxy",
		Hosts:       map[string]string{"tunnel.test": "127.0.0.1", "denied.test": "127.0.0.1"},
		DenyDomains: []string{"denied.test"},
	}
	var pool *x509.CertPool
	if withTLS {
		dir := testservice.NobodyDir(t)
		var certPEM, keyPEM []byte
		pool, certPEM, keyPEM = testCert(t, "localhost")
		cfg.TLSCertFile = testservice.WriteFile(t, dir, "cert.pem", string(certPEM))
		cfg.TLSKeyFile = testservice.WriteFile(t, dir, "key.pem", string(keyPEM))
	}
	return testservice.StartSquid(t, cfg), pool
}

// testCert makes a CA and a server certificate for name and 127.0.0.1,
// returning the CA's pool and the certificate and key in PEM.
func testCert(t testing.TB, name string) (*x509.CertPool, []byte, []byte) {
	t.Helper()
	ca := testpki.NewCA(t, "proxyconnect test CA")
	certPEM, keyPEM := testpki.PEM(t, ca.Issue(t, name, []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}, name, "127.0.0.1"))
	return ca.Pool, certPEM, keyPEM
}

// tlsServerConfig returns a server config with a certificate from testCert.
func tlsServerConfig(t testing.TB, name string) (*tls.Config, *x509.CertPool) {
	pool, certPEM, keyPEM := testCert(t, name)
	cert, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		t.Fatal(err)
	}
	return &tls.Config{Certificates: []tls.Certificate{cert}}, pool
}

// roundTrip writes msg on c and reads it back (through an echo target).
func roundTrip(t testing.TB, c net.Conn, msg string) {
	t.Helper()
	c.SetDeadline(time.Now().Add(10 * time.Second))
	defer c.SetDeadline(time.Time{})
	if _, err := io.WriteString(c, msg); err != nil {
		t.Fatalf("write: %v", err)
	}
	got := make([]byte, len(msg))
	if _, err := io.ReadFull(c, got); err != nil {
		t.Fatalf("read: %v", err)
	}
	if string(got) != msg {
		t.Fatalf("echo = %q, want %q", got, msg)
	}
}

// mustProxyError asserts err is a *ProxyError of kind and returns it,
// checking that the password does not appear.
func mustProxyError(t testing.TB, err, kind error) *ProxyError {
	t.Helper()
	if err == nil {
		t.Fatalf("dial succeeded, want %v", kind)
	}
	var pe *ProxyError
	if !errors.As(err, &pe) {
		t.Fatalf("error %T %q is not a *ProxyError", err, err)
	}
	if kind != nil && !errors.Is(err, kind) {
		t.Fatalf("error %q is not %v", err, kind)
	}
	noSecret(t, err.Error())
	return pe
}

// noSecret fails when s contains the test password, raw or encoded.
func noSecret(t testing.TB, s string) {
	t.Helper()
	for _, form := range []string{testPassword, url.QueryEscape(testPassword), url.UserPassword("x", testPassword).String()[2:], "s3cr"} {
		if strings.Contains(s, form) {
			t.Fatalf("password (as %q) leaked into %q", form, s)
		}
	}
}
