package proxy_test

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/crypto/ssh"

	"github.com/sallyport/sallyport/agent"
	"github.com/sallyport/sallyport/audit"
	authv1 "github.com/sallyport/sallyport/authapi/proto/sallyport/auth/v1"
	"github.com/sallyport/sallyport/internal/testservice"
	"github.com/sallyport/sallyport/proxy"
)

// TestOpenSSHOwnKey logs in with keys the user made (ssh-keygen, and a
// PKCS#10 request), gets only certificates back, and uses the key with the
// returned certificate in the real OpenSSH client through the proxy. A
// direct-mode agent whose labels the user's roles do not select refuses
// the same certificate when reached without the proxy.
func TestOpenSSHOwnKey(t *testing.T) {
	c := startCluster(t)
	c.role(t, "dev", []string{"root"}, map[string][]string{"env": {"dev"}})
	c.user(t, "alice", "correct horse", "dev")
	p := startProxy(t, c, proxy.Config{Mode: proxy.Multiplex})
	startAgent(t, c, p, agent.Config{NodeName: "dev1", Labels: map[string]string{"env": "dev"}})
	dl, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	startAgent(t, c, p, agent.Config{NodeName: "prod-direct", Labels: map[string]string{"env": "prod"}, DirectListener: dl})
	waitNode(t, p, "dev1", true)
	waitNode(t, p, "prod-direct", false)

	dir := t.TempDir()
	key := filepath.Join(dir, "id_ecdsa")
	keygen := testservice.Bin(t, "ssh-keygen")
	if out, err := exec.Command(keygen, "-q", "-t", "ecdsa", "-b", "384", "-N", "", "-C", "alice@laptop", "-f", key).CombinedOutput(); err != nil {
		t.Fatalf("ssh-keygen: %v\n%s", err, out)
	}
	pubLine, err := os.ReadFile(key + ".pub")
	if err != nil {
		t.Fatal(err)
	}
	tlsKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	csrDER, err := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{Subject: pkix.Name{CommonName: "root"}}, tlsKey)
	if err != nil {
		t.Fatal(err)
	}
	csrPEM := string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE REQUEST", Bytes: csrDER}))
	hc := webClient(t, c)

	// Keys that must be refused, before auth is asked.
	p521, err := ecdsa.GenerateKey(elliptic.P521(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	rsa1024, err := rsa.GenerateKey(rand.Reader, 1024)
	if err != nil {
		t.Fatal(err)
	}
	authorizedKey := func(k any) string {
		pk, err := ssh.NewPublicKey(k)
		if err != nil {
			t.Fatal(err)
		}
		return string(ssh.MarshalAuthorizedKey(pk))
	}
	bad := []struct {
		name string
		req  proxy.LoginRequest
	}{
		{"p521-ssh-key", proxy.LoginRequest{SSHPublicKey: authorizedKey(&p521.PublicKey)}},
		{"rsa1024-ssh-key", proxy.LoginRequest{SSHPublicKey: authorizedKey(&rsa1024.PublicKey)}},
		{"garbage-ssh-key", proxy.LoginRequest{SSHPublicKey: "ssh-ed25519 AAAA"}},
		{"csr-not-pem", proxy.LoginRequest{CSR: "MIIB"}},
		{"public-key-and-csr", proxy.LoginRequest{CSR: csrPEM, TLSPublicKey: "-----BEGIN PUBLIC KEY-----\n-----END PUBLIC KEY-----\n"}},
	}
	for _, tc := range bad {
		t.Run(tc.name, func(t *testing.T) {
			tc.req.User, tc.req.Password = "alice", "correct horse"
			status, _, msg := login(t, hc, p.webAddr, tc.req)
			if status != http.StatusBadRequest {
				t.Fatalf("status %d %q, want 400", status, msg)
			}
		})
	}

	status, lr, msg := login(t, hc, p.webAddr, proxy.LoginRequest{User: "alice", Password: "correct horse", SSHPublicKey: string(pubLine), CSR: csrPEM})
	if status != http.StatusOK {
		t.Fatalf("login with own keys: %d %q", status, msg)
	}
	if lr.SSHPrivateKey != "" || lr.TLSKey != "" {
		t.Fatal("the proxy returned private keys for a login with the client's own keys")
	}
	cert, _, _, _, err := ssh.ParseAuthorizedKey([]byte(lr.SSHCert))
	if err != nil {
		t.Fatal(err)
	}
	userPub, _, _, _, _ := ssh.ParseAuthorizedKey(pubLine)
	if sc, ok := cert.(*ssh.Certificate); !ok || string(sc.Key.Marshal()) != string(userPub.Marshal()) {
		t.Fatal("the SSH certificate is not for the client's key")
	}
	b, _ := pem.Decode([]byte(lr.TLSCert))
	leaf, err := x509.ParseCertificate(b.Bytes)
	if err != nil || !tlsKey.PublicKey.Equal(leaf.PublicKey) || leaf.Subject.CommonName != "alice" {
		t.Fatalf("the X.509 certificate is not alice's for the client's key (err %v)", err)
	}

	host, port, _ := net.SplitHostPort(p.sshAddr)
	env := writeSSHConfigKey(t, dir, key, lr, host, port)
	ctx := testCtx(t)
	out, err := env.run(ctx, "dev1", "echo own key as $(whoami)")
	if err != nil || !strings.Contains(out, "own key as root") {
		t.Fatalf("ssh through the proxy with the client's key: %v\n%s", err, out)
	}
	c.waitEvent(t, audit.TypeAccessGranted, func(e *authv1.AuditEvent) bool {
		return e.GetActor() == "alice" && e.GetFields()["node"] == "dev1"
	})

	// Straight to the direct-mode agent on env=prod, no proxy: the agent
	// checks its labels against the roles in the certificate.
	dhost, dport, _ := net.SplitHostPort(dl.Addr().String())
	out, err = env.run(ctx, "-o", "ProxyJump=none", "-o", "HostKeyAlias=prod-direct", "-p", dport, dhost, "echo should not run")
	if err == nil || strings.Contains(out, "should not run") {
		t.Fatalf("direct-mode agent on env=prod ran alice's command: %v\n%s", err, out)
	}
	c.waitEvent(t, audit.TypeAccessDenied, func(e *authv1.AuditEvent) bool {
		return e.GetActor() == "alice" && e.GetFields()["node"] == "prod-direct" && e.GetFields()["event"] == "access.denied" &&
			strings.Contains(e.GetFields()["reason"], "do not grant login")
	})
}
