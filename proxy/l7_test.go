package proxy_test

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/sallyport/sallyport/agent"
	"github.com/sallyport/sallyport/internal/testpki"
	"github.com/sallyport/sallyport/internal/testservice"
	"github.com/sallyport/sallyport/proxy"
)

// balancerCert writes a certificate for lb.example.test and 127.0.0.1,
// from a CA of its own, and returns the file names and a pool that trusts
// it.
func balancerCert(t testing.TB, dir string) (certFile, keyFile string, pool *x509.CertPool) {
	t.Helper()
	ca := testpki.NewCA(t, "balancer CA")
	certPEM, keyPEM := testpki.PEM(t, ca.Issue(t, "lb.example.test", []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}, "lb.example.test", "127.0.0.1"))
	certFile = testservice.WriteFile(t, dir, "lb.crt", string(certPEM))
	keyFile = testservice.WriteFile(t, dir, "lb.key", string(keyPEM))
	return certFile, keyFile, ca.Pool
}

// TestBehindTLSTerminatingBalancer puts nginx, terminating TLS with its own
// certificate (Layer 7, ALPN lost), in front of the proxy's single port:
// the agent joins and calls auth, and dials its tunnel, through the
// WebSocket connection upgrade that the proxy's web API serves, and users
// log in through nginx.
//
// With HTTP/2 on, nginx can negotiate "h2", which the auth client offers
// too: the auth client then tells the balancer from the router by its
// certificate and falls back all the same.
func TestBehindTLSTerminatingBalancer(t *testing.T) {
	for _, tc := range []struct{ name, listen string }{
		{"http1", "ssl"},
		{"http2", "ssl http2"},
	} {
		t.Run(tc.name, func(t *testing.T) { testBehindL7(t, tc.listen) })
	}
}

func testBehindL7(t *testing.T, listenOpts string) {
	c := startCluster(t)
	c.role(t, "dev", []string{"root"}, map[string][]string{"env": {"dev"}})
	c.user(t, "alice", "correct horse", "dev")
	p := startProxy(t, c, proxy.Config{Mode: proxy.Multiplex})
	certFile, keyFile, lbRoots := balancerCert(t, t.TempDir())
	lbAddr := testservice.FreeAddr(t)
	lb := testservice.NginxConfig(t, lbAddr, fmt.Sprintf(`events {}
http {
    log_format up '$request $status $http_sec_websocket_protocol';
    server {
        access_log {{dir}}/lb-access.log up;
        listen %s %s;
        ssl_certificate %s;
        ssl_certificate_key %s;
        location / {
            proxy_pass https://%s;
            proxy_ssl_verify off;
            proxy_http_version 1.1;
            proxy_set_header Upgrade $http_upgrade;
            proxy_set_header Connection "upgrade";
            proxy_read_timeout 1h;
            proxy_buffering off;
        }
    }
}`, lbAddr, listenOpts, certFile, keyFile, p.webAddr))

	// Everything goes through nginx: joining, heartbeats and audit (gRPC
	// to auth inside the upgraded connection), ping and the tunnel.
	ag := startAgent(t, c, p, agent.Config{
		ProxyAddr: lbAddr, ProxyRoots: lbRoots,
		NodeName: "dev1", Labels: map[string]string{"env": "dev"},
	})
	waitNode(t, p, "dev1", true)

	hc := &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: lbRoots}}}
	status, lr, msg := login(t, hc, lbAddr, proxy.LoginRequest{User: "alice", Password: "correct horse"})
	if status != http.StatusOK {
		t.Fatalf("login through nginx: %d %q", status, msg)
	}
	host, port, _ := net.SplitHostPort(p.sshAddr)
	env := writeSSHConfig(t, lr, host, port)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	out, err := env.run(ctx, "dev1", "echo via upgraded tunnel")
	if err != nil || !strings.Contains(out, "via upgraded tunnel") {
		t.Fatalf("ssh over the upgraded tunnel: %v\n%s", err, out)
	}
	// The tunnel went through nginx as a WebSocket upgrade (101); nginx
	// logs it when it ends.
	if err := ag.Close(); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		logData, err := os.ReadFile(filepath.Join(lb.Dir, "lb-access.log"))
		if err != nil {
			t.Fatal(err)
		}
		// One upgrade for the tunnel, and at least one for auth (the join,
		// then the heartbeat client).
		if strings.Contains(string(logData), "GET /webapi/connectionupgrade HTTP/1.1 101 sallyport-reversetunnel") &&
			strings.Contains(string(logData), "GET /webapi/connectionupgrade HTTP/1.1 101 sallyport-auth") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no upgraded tunnel in nginx's log:\n%s", logData)
		}
		time.Sleep(50 * time.Millisecond)
	}
}
