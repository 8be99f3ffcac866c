package tunnel

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"io"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/sallyport/sallyport/internal/testpki"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// testCA is a throwaway cluster CA.
type testCA struct{ *testpki.CA }

func newTestCA(t testing.TB) *testCA {
	t.Helper()
	return &testCA{testpki.NewCA(t, "tunnel test CA")}
}

// issue returns a certificate for cn signed by the CA; server certificates
// name 127.0.0.1, localhost and every name in dnsNames.
func (ca *testCA) issue(t testing.TB, cn string, server bool, dnsNames ...string) tls.Certificate {
	t.Helper()
	if !server {
		return ca.Issue(t, cn, []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth})
	}
	sans := append([]string{"localhost", "127.0.0.1"}, dnsNames...)
	return ca.Issue(t, cn, []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}, sans...)
}

// serverTLS is the proxy's config: its certificate and mutual TLS with the CA.
func (ca *testCA) serverTLS(t testing.TB, dnsNames ...string) *tls.Config {
	return &tls.Config{
		Certificates: []tls.Certificate{ca.issue(t, "proxy", true, dnsNames...)},
		ClientAuth:   tls.RequireAndVerifyClientCert,
		ClientCAs:    ca.Pool,
		NextProtos:   []string{"sallyport-reversetunnel"},
	}
}

// agentTLS is an agent's config: a client certificate naming agentID.
func (ca *testCA) agentTLS(t testing.TB, agentID string) *tls.Config {
	return &tls.Config{
		Certificates: []tls.Certificate{ca.issue(t, agentID, false)},
		RootCAs:      ca.Pool,
	}
}

// testProxy is a Server serving a loopback listener.
type testProxy struct {
	*Server
	Addr string
	done chan error
}

// startProxy starts a Server on addr ("" means a free port) and closes it
// at cleanup.
func startProxy(t testing.TB, ca *testCA, addr string, cfg ServerConfig) *testProxy {
	t.Helper()
	if cfg.TLSConfig == nil {
		cfg.TLSConfig = ca.serverTLS(t, "proxy.tunnel.test")
	}
	srv, err := NewServer(&cfg)
	if err != nil {
		t.Fatal(err)
	}
	if addr == "" {
		addr = "127.0.0.1:0"
	}
	var ln net.Listener
	for i := 0; ; i++ { // a restarted proxy may wait for its old port
		ln, err = net.Listen("tcp", addr)
		if err == nil || i == 50 {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	if err != nil {
		t.Fatal(err)
	}
	p := &testProxy{Server: srv, Addr: ln.Addr().String(), done: make(chan error, 1)}
	go func() { p.done <- srv.Serve(ln) }()
	t.Cleanup(func() { p.stop(t) })
	return p
}

// stop closes the proxy (safe to call twice) and checks Serve's result.
func (p *testProxy) stop(t testing.TB) {
	p.Close()
	if err, ok := <-p.done; ok {
		close(p.done)
		if !errors.Is(err, ErrServerClosed) {
			t.Errorf("Serve = %v, want ErrServerClosed", err)
		}
	}
}

// startAgent starts an agent with agentID's certificate and fast
// reconnects, and closes it at cleanup.
func startAgent(t testing.TB, ca *testCA, agentID string, cfg AgentConfig) *Agent {
	t.Helper()
	if cfg.TLSConfig == nil {
		cfg.TLSConfig = ca.agentTLS(t, agentID)
	}
	if cfg.ReconnectMin == 0 {
		cfg.ReconnectMin = 20 * time.Millisecond
	}
	if cfg.ReconnectMax == 0 {
		cfg.ReconnectMax = 300 * time.Millisecond
	}
	a, err := NewAgent(&cfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := a.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { a.Close() })
	return a
}

// waitFor polls cond until it holds or timeout passes.
func waitFor(t testing.TB, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", timeout, what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// waitAgent waits until srv has agentID registered.
func waitAgent(t testing.TB, srv *Server, agentID string) {
	t.Helper()
	waitFor(t, 10*time.Second, "agent "+agentID+" on proxy "+srv.ID(), func() bool {
		_, err := srv.Services(agentID)
		return err == nil
	})
}

func echo(c net.Conn) { io.Copy(c, c) }

// roundTrip writes msg on c and expects it echoed back.
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

func dial(t testing.TB, srv *Server, agentID, service string) *Conn {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, err := srv.Dial(ctx, agentID, service)
	if err != nil {
		t.Fatalf("Dial(%s, %s) via %s: %v", agentID, service, srv.ID(), err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

func sameStrings(a, b []string) bool {
	return strings.Join(a, ",") == strings.Join(b, ",")
}
