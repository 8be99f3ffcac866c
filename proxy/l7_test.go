package proxy_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"math/big"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/sallyport/sallyport/agent"
	"github.com/sallyport/sallyport/internal/testservice"
	"github.com/sallyport/sallyport/proxy"
)

// selfSigned writes a self-signed certificate for 127.0.0.1 and returns
// the file names and a pool that trusts it.
func selfSigned(t testing.TB, dir string) (certFile, keyFile string, pool *x509.CertPool) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "lb.example.test"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)}, DNSNames: []string{"lb.example.test"},
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		BasicConstraintsValid: true, IsCA: true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	kder, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	certFile = testservice.WriteFile(t, dir, "lb.crt", string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})))
	keyFile = testservice.WriteFile(t, dir, "lb.key", string(pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: kder})))
	cert, _ := x509.ParseCertificate(der)
	pool = x509.NewCertPool()
	pool.AddCert(cert)
	return certFile, keyFile, pool
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
	certFile, keyFile, lbRoots := selfSigned(t, t.TempDir())
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
