package proxy_test

import (
	"context"
	"net"
	"net/http"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/sallyport/sallyport/agent"
	"github.com/sallyport/sallyport/audit"
	authv1 "github.com/sallyport/sallyport/authapi/proto/sallyport/auth/v1"
	"github.com/sallyport/sallyport/internal/testservice"
	"github.com/sallyport/sallyport/mux"
	"github.com/sallyport/sallyport/proxy"
)

// TestBehindHAProxyAndSquid runs the production path: the proxy (TLS
// routing on one port, PROXY protocol required) sits behind a real HAProxy
// with send-proxy-v2, and the agent reaches it only through squid with
// Basic authentication (HTTPS_PROXY), by a name only squid can resolve.
// Users come from other loopback addresses (127.0.0.2 for the web login,
// 127.0.0.3 for ssh), and the audit events must show those addresses,
// not HAProxy's.
func TestBehindHAProxyAndSquid(t *testing.T) {
	c := startCluster(t)
	c.role(t, "dev", []string{"root"}, map[string][]string{"env": {"dev"}})
	c.user(t, "alice", "correct horse", "dev")
	p := startProxy(t, c, proxy.Config{
		Mode:            proxy.Multiplex,
		ProxyProtocol:   mux.ProxyRequired,
		TrustedNetworks: []netip.Prefix{netip.MustParsePrefix("127.0.0.1/32")},
		PublicAddrs:     []string{"proxy.lb.test"},
	})
	lb := testservice.HAProxyTCP(t, []string{p.webAddr}, "send-proxy-v2")
	_, lbPort, _ := net.SplitHostPort(lb.Addr)
	squid := testservice.StartSquid(t, testservice.SquidConfig{
		Users: map[string]string{"agent": "s3cret"},
		Hosts: map[string]string{"proxy.lb.test": "127.0.0.1"},
	})
	t.Setenv("HTTPS_PROXY", "http://agent:s3cret@"+squid.Addr)
	t.Setenv("NO_PROXY", "")

	// proxy.lb.test resolves only inside squid: every connection of the
	// agent (join, auth calls, ping, tunnel) must go through it.
	startAgent(t, c, p, agent.Config{ProxyAddr: "proxy.lb.test:" + lbPort, NodeName: "dev1", Labels: map[string]string{"env": "dev"}})
	waitNode(t, p, "dev1", true)
	squid.WaitAccessLog(t, 10*time.Second, "CONNECT proxy.lb.test:"+lbPort, "agent")

	// The web login through HAProxy from 127.0.0.2.
	hc := webClient(t, c)
	hc.Transport.(*http.Transport).DialContext = (&net.Dialer{LocalAddr: &net.TCPAddr{IP: net.IPv4(127, 0, 0, 2)}}).DialContext
	if status, _, msg := login(t, hc, lb.Addr, proxy.LoginRequest{User: "alice", Password: "wrong"}); status != http.StatusUnauthorized {
		t.Fatalf("bad password: %d %q", status, msg)
	}
	c.waitEvent(t, audit.TypeLoginFailed, func(e *authv1.AuditEvent) bool {
		return e.GetActor() == "alice" && strings.HasPrefix(e.GetSource(), "127.0.0.2:")
	})
	status, lr, msg := login(t, hc, lb.Addr, proxy.LoginRequest{User: "alice", Password: "correct horse"})
	if status != http.StatusOK {
		t.Fatalf("login: %d %q", status, msg)
	}

	// OpenSSH through HAProxy from 127.0.0.3.
	env := writeSSHConfig(t, lr, "127.0.0.1", lbPort)
	cfg, err := os.ReadFile(env.config)
	if err != nil {
		t.Fatal(err)
	}
	cfg = []byte(strings.Replace(string(cfg), "    HostKeyAlias proxy\n", "    HostKeyAlias proxy\n    BindAddress 127.0.0.3\n", 1))
	if err := os.WriteFile(env.config, cfg, 0o600); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	out, err := env.run(ctx, "dev1", "echo through the balancer")
	if err != nil || !strings.Contains(out, "through the balancer") {
		t.Fatalf("ssh through HAProxy: %v\n%s", err, out)
	}
	c.waitEvent(t, audit.TypeAccessGranted, func(e *authv1.AuditEvent) bool {
		return e.GetFields()["node"] == "dev1" && strings.HasPrefix(e.GetSource(), "127.0.0.3:")
	})
	// The agent sees the original client too (carried in the tunnel's
	// stream header).
	c.waitEvent(t, audit.TypeSession, func(e *authv1.AuditEvent) bool {
		return e.GetFields()["event"] == "session.start" && strings.HasPrefix(e.GetSource(), "127.0.0.3:")
	})
	if _, err := os.Stat(filepath.Join(env.dir, "known_hosts")); err != nil {
		t.Fatal(err)
	}
}
