package authapi

import (
	"bytes"
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"net"
	"strings"
	"sync"
	"testing"

	"golang.org/x/crypto/ssh"
	"google.golang.org/protobuf/types/known/durationpb"

	authv1 "github.com/sallyport/sallyport/authapi/proto/sallyport/auth/v1"
)

// testKeys generates each kind of key once per test binary (RSA is slow).
var testKeys = sync.OnceValue(func() map[string]crypto.Signer {
	m := map[string]crypto.Signer{}
	_, ed, _ := ed25519.GenerateKey(rand.Reader)
	m["ed25519"] = ed
	for name, c := range map[string]elliptic.Curve{"p256": elliptic.P256(), "p384": elliptic.P384(), "p521": elliptic.P521()} {
		k, _ := ecdsa.GenerateKey(c, rand.Reader)
		m[name] = k
	}
	for name, bits := range map[string]int{"rsa1024": 1024, "rsa2048": 2048} {
		k, _ := rsa.GenerateKey(rand.Reader, bits)
		m[name] = k
	}
	return m
})

func TestValidateKeys(t *testing.T) {
	keys := testKeys()
	cases := []struct {
		key string
		ok  bool
	}{
		{"ed25519", true},
		{"p256", true},
		{"p384", true},
		{"p521", false},
		{"rsa1024", false},
		{"rsa2048", true},
	}
	for _, tc := range cases {
		t.Run(tc.key, func(t *testing.T) {
			pub := keys[tc.key].Public()
			der, err := x509.MarshalPKIXPublicKey(pub)
			if err != nil {
				t.Fatal(err)
			}
			_, err = ParseTLSPublicKey(der)
			if (err == nil) != tc.ok || (err != nil && !errors.Is(err, ErrInvalidArgument)) {
				t.Errorf("ParseTLSPublicKey: %v, want ok %v", err, tc.ok)
			}
			spub, err := ssh.NewPublicKey(pub)
			if err != nil {
				t.Fatal(err)
			}
			_, err = ParseSSHPublicKey(ssh.MarshalAuthorizedKey(spub))
			if (err == nil) != tc.ok || (err != nil && !errors.Is(err, ErrInvalidArgument)) {
				t.Errorf("ParseSSHPublicKey: %v, want ok %v", err, tc.ok)
			}
			csr, err := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{Subject: pkix.Name{CommonName: "ignored"}}, keys[tc.key])
			if err != nil {
				t.Fatal(err)
			}
			if _, err := ParseCSR(csr); (err == nil) != tc.ok {
				t.Errorf("ParseCSR: %v, want ok %v", err, tc.ok)
			}
		})
	}

	// Malformed and oversized input.
	ed := keys["ed25519"]
	spub, _ := ssh.NewPublicKey(ed.Public())
	line := ssh.MarshalAuthorizedKey(spub)
	csr, _ := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{}, ed)
	tampered := bytes.Clone(csr)
	tampered[len(tampered)-1] ^= 1
	signer, _ := ssh.NewSignerFromKey(ed)
	cert := &ssh.Certificate{Key: spub, CertType: ssh.UserCert, ValidPrincipals: []string{"x"}}
	if err := cert.SignCert(rand.Reader, signer); err != nil {
		t.Fatal(err)
	}
	bad := []struct {
		name string
		err  error
	}{
		{"ssh-empty", func() error { _, err := ParseSSHPublicKey(nil); return err }()},
		{"ssh-garbage", func() error { _, err := ParseSSHPublicKey([]byte("ssh-ed25519 !!!")); return err }()},
		{"ssh-oversized", func() error {
			_, err := ParseSSHPublicKey(append(bytes.TrimSpace(line), []byte(" "+strings.Repeat("c", MaxPublicKeySize))...))
			return err
		}()},
		{"ssh-certificate", func() error { _, err := ParseSSHPublicKey(ssh.MarshalAuthorizedKey(cert)); return err }()},
		{"tls-empty", func() error { _, err := ParseTLSPublicKey(nil); return err }()},
		{"tls-garbage", func() error { _, err := ParseTLSPublicKey([]byte{0x30, 0x03, 1, 2, 3}); return err }()},
		{"tls-oversized", func() error { _, err := ParseTLSPublicKey(make([]byte, MaxPublicKeySize+1)); return err }()},
		{"csr-bad-signature", func() error { _, err := ParseCSR(tampered); return err }()},
		{"csr-oversized", func() error { _, err := ParseCSR(make([]byte, MaxCSRSize+1)); return err }()},
	}
	for _, tc := range bad {
		if !errors.Is(tc.err, ErrInvalidArgument) {
			t.Errorf("%s: %v, want ErrInvalidArgument", tc.name, tc.err)
		}
	}
}

// TestLoginOwnKeys logs in with the caller's own keys: the certificates
// are for those keys, no private key is made, and the SSH certificate
// carries the roles' SSH rules.
func TestLoginOwnKeys(t *testing.T) {
	ts := startServer(t, nil, &Config{RateLimit: -1})
	ctx := testCtx(t)
	admin := ts.client(t, ts.Admin).API()
	role := &authv1.Role{Name: "dev", Logins: []string{"ubuntu"}, NodeLabels: map[string]*authv1.LabelValues{"env": {Values: []string{"dev"}}}}
	if _, err := admin.UpsertRole(ctx, &authv1.UpsertRoleRequest{Role: role}); err != nil {
		t.Fatal(err)
	}
	if _, err := admin.UpsertUser(ctx, &authv1.UpsertUserRequest{Name: "alice", Roles: []string{"dev"}, Password: "correct horse"}); err != nil {
		t.Fatal(err)
	}
	c := ts.client(t, nil)
	keys := testKeys()
	csrOf := func(k crypto.Signer) []byte {
		der, err := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{Subject: pkix.Name{CommonName: "mallory"}}, k)
		if err != nil {
			t.Fatal(err)
		}
		return der
	}
	sshOf := func(k crypto.Signer) ssh.PublicKey {
		p, err := ssh.NewPublicKey(k.Public())
		if err != nil {
			t.Fatal(err)
		}
		return p
	}
	cases := []struct {
		name    string
		req     LoginRequest
		sshKey  crypto.Signer // expected key of the SSH certificate (nil: generated)
		tlsKey  crypto.Signer // expected key of the X.509 certificate (nil: generated)
		wantErr error
	}{
		{name: "rsa-ssh-ecdsa-tls", req: LoginRequest{SSHPublicKey: sshOf(keys["rsa2048"]), TLSPublicKey: keys["p384"].Public()}, sshKey: keys["rsa2048"], tlsKey: keys["p384"]},
		{name: "ed25519-ssh-csr", req: LoginRequest{SSHPublicKey: sshOf(keys["ed25519"]), CSR: csrOf(keys["p256"])}, sshKey: keys["ed25519"], tlsKey: keys["p256"]},
		{name: "ssh-only", req: LoginRequest{SSHPublicKey: sshOf(keys["p256"])}, sshKey: keys["p256"]},
		{name: "rsa-csr-only", req: LoginRequest{CSR: csrOf(keys["rsa2048"])}, tlsKey: keys["rsa2048"]},
		{name: "generated", req: LoginRequest{}},
		{name: "weak-rsa-ssh", req: LoginRequest{SSHPublicKey: sshOf(keys["rsa1024"])}, wantErr: ErrInvalidArgument},
		{name: "p521-tls", req: LoginRequest{TLSPublicKey: keys["p521"].Public()}, wantErr: ErrInvalidArgument},
		{name: "key-and-csr", req: LoginRequest{TLSPublicKey: keys["p256"].Public(), CSR: csrOf(keys["p256"])}, wantErr: ErrInvalidArgument},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			tc.req.User, tc.req.Password = "alice", "correct horse"
			creds, err := c.Login(ctx, tc.req)
			if tc.wantErr != nil {
				if !errors.Is(err, tc.wantErr) {
					t.Fatalf("Login = %v, want %v", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if creds.Identity.Name != "alice" || creds.Certificate.Leaf.Subject.CommonName != "alice" {
				t.Errorf("identity %+v, subject %v", creds.Identity, creds.Certificate.Leaf.Subject)
			}
			if tc.tlsKey != nil {
				if creds.Certificate.PrivateKey != nil || !tc.tlsKey.Public().(interface{ Equal(crypto.PublicKey) bool }).Equal(creds.Certificate.Leaf.PublicKey) {
					t.Errorf("X.509 certificate not for the caller's key (private key %T)", creds.Certificate.PrivateKey)
				}
			} else if creds.Certificate.PrivateKey == nil {
				t.Error("no generated TLS key")
			}
			if tc.sshKey != nil {
				if creds.SSHKey != nil || creds.SSHSigner != nil || !bytes.Equal(creds.SSHCert.Key.Marshal(), sshOf(tc.sshKey).Marshal()) {
					t.Error("SSH certificate not for the caller's key, or a private key was made")
				}
			} else if creds.SSHKey == nil || creds.SSHSigner == nil {
				t.Error("no generated SSH key")
			}
			if err := CheckSSHLogin(creds.SSHCert.Extensions, "ubuntu", map[string]string{"env": "dev"}); err != nil {
				t.Errorf("rules in the certificate refuse ubuntu on env=dev: %v", err)
			}
			if err := CheckSSHLogin(creds.SSHCert.Extensions, "ubuntu", map[string]string{"env": "prod"}); !errors.Is(err, ErrAccessDenied) {
				t.Errorf("rules in the certificate allow env=prod: %v", err)
			}
		})
	}

	// The RPC itself validates too (a client that skips the checks).
	ed := keys["ed25519"]
	der, _ := x509.MarshalPKIXPublicKey(ed.Public())
	rsaSSH := string(ssh.MarshalAuthorizedKey(sshOf(keys["rsa1024"])))
	for _, r := range []*authv1.LoginRequest{
		{User: "alice", Password: "correct horse", TlsPublicKey: der, SshPublicKey: rsaSSH},
		{User: "alice", Password: "correct horse", TlsPublicKey: der, Csr: csrOf(ed)},
		{User: "alice", Password: "correct horse"},
	} {
		if _, err := c.API().Login(ctx, r); !errors.Is(err, ErrInvalidArgument) {
			t.Errorf("RPC Login(%v) = %v, want ErrInvalidArgument", r, err)
		}
	}
}

func TestSSHRules(t *testing.T) {
	roles := []Role{
		{Name: "dev", Logins: []string{"ubuntu"}, NodeLabels: map[string][]string{"env": {"dev", "stage-*"}}, DBNames: []string{"ignored"}},
		{Name: "ops", Logins: []string{"root"}, NodeLabels: map[string][]string{"*": {"*"}}, MaxSessionTTL: Duration(3600e9)},
		{Name: "none", Logins: []string{"nobody"}},
	}
	enc, err := SSHRules(roles)
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(enc, "ignored") || strings.Contains(enc, "3600") {
		t.Errorf("encoding carries more than the SSH rules: %s", enc)
	}
	ext := map[string]string{ExtRules: enc}
	cases := []struct {
		name   string
		ext    map[string]string
		login  string
		labels map[string]string
		ok     bool
	}{
		{"dev-on-dev", ext, "ubuntu", map[string]string{"env": "dev"}, true},
		{"dev-glob", ext, "ubuntu", map[string]string{"env": "stage-2"}, true},
		{"dev-on-prod", ext, "ubuntu", map[string]string{"env": "prod"}, false},
		{"dev-no-labels", ext, "ubuntu", nil, false},
		{"root-anywhere", ext, "root", map[string]string{"env": "prod"}, true},
		{"no-selector-grants-nothing", ext, "nobody", map[string]string{"env": "dev"}, false},
		{"missing-extension", map[string]string{}, "ubuntu", map[string]string{"env": "dev"}, false},
		{"garbage", map[string]string{ExtRules: "{"}, "ubuntu", map[string]string{"env": "dev"}, false},
		{"wrong-version", map[string]string{ExtRules: `{"v":2,"r":[{"n":"x","l":["ubuntu"],"s":{"*":["*"]}}]}`}, "ubuntu", nil, false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			err := CheckSSHLogin(tc.ext, tc.login, tc.labels)
			if (err == nil) != tc.ok || (err != nil && !errors.Is(err, ErrAccessDenied)) {
				t.Fatalf("CheckSSHLogin = %v, want ok %v", err, tc.ok)
			}
		})
	}
	big := []Role{{Name: "big", Logins: []string{strings.Repeat("x", MaxSSHRulesSize)}}}
	if _, err := SSHRules(big); !errors.Is(err, ErrInvalidArgument) {
		t.Errorf("oversized rules: %v", err)
	}
	if _, err := ParseSSHRules(`{"v":1,"r":[]}` + strings.Repeat(" ", MaxSSHRulesSize)); !errors.Is(err, ErrInvalidIdentity) {
		t.Errorf("oversized extension parsed: %v", err)
	}
}

// TestLoginRulesTooLarge: a user whose roles do not fit the SSH extension
// gets a clear refusal instead of a certificate without node checks.
func TestLoginRulesTooLarge(t *testing.T) {
	ts := startServer(t, nil, &Config{RateLimit: -1})
	ctx := testCtx(t)
	admin := ts.client(t, ts.Admin).API()
	var names []string
	for i := 0; i < 40; i++ {
		vals := make([]string, 40)
		for j := range vals {
			vals[j] = strings.Repeat("v", 10) + string(rune('a'+j%26))
		}
		name := "role" + string(rune('a'+i%26)) + string(rune('a'+i/26))
		names = append(names, name)
		if _, err := admin.UpsertRole(ctx, &authv1.UpsertRoleRequest{Role: &authv1.Role{Name: name, Logins: []string{"ubuntu"}, NodeLabels: map[string]*authv1.LabelValues{"env": {Values: vals}}}}); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := admin.UpsertUser(ctx, &authv1.UpsertUserRequest{Name: "alice", Roles: names, Password: "correct horse"}); err != nil {
		t.Fatal(err)
	}
	_, err := ts.client(t, nil).Login(ctx, LoginRequest{User: "alice", Password: "correct horse"})
	if !errors.Is(err, ErrInvalidArgument) || !strings.Contains(err.Error(), "ssh rules") {
		t.Fatalf("Login with oversized rules = %v", err)
	}
}

// TestDialTLS: a client whose DialTLS hook runs the handshake itself, and
// one whose hook returns a connection without TLS state.
func TestDialTLS(t *testing.T) {
	ts := startServer(t, nil, &Config{RateLimit: -1})
	ctx := testCtx(t)
	var dials int
	var mu sync.Mutex
	hook := func(ctx context.Context, addr string, conf *tls.Config) (net.Conn, error) {
		mu.Lock()
		dials++
		mu.Unlock()
		d := tls.Dialer{Config: conf}
		return d.DialContext(ctx, "tcp", addr)
	}
	c, err := NewClient(&ClientConfig{Addrs: []string{ts.Addr}, Credentials: ts.Admin, DialTLS: hook})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	p, err := c.API().Ping(ctx, &authv1.PingRequest{})
	if err != nil || p.CallerKind != ClassAdmin {
		t.Fatalf("Ping through DialTLS: %v %v", p, err)
	}
	mu.Lock()
	if dials == 0 {
		t.Error("DialTLS was not used")
	}
	mu.Unlock()
	// Join through the hook, with the pin checked by the client's config.
	tok, err := c.API().CreateJoinToken(ctx, &authv1.CreateJoinTokenRequest{Roles: []string{RoleAgent}, Ttl: durationpb.New(0)})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := Join(ctx, JoinConfig{Addrs: []string{ts.Addr}, Token: tok.Token, CAPin: "sha256:" + strings.Repeat("0", 64), DialTLS: hook}); !errors.Is(err, ErrPinMismatch) {
		t.Fatalf("Join with a wrong pin through DialTLS: %v", err)
	}
	creds, err := Join(ctx, JoinConfig{Addrs: []string{ts.Addr}, Token: tok.Token, CAPin: ts.CAPin(), DialTLS: hook})
	if err != nil || !creds.Identity.HasRole(RoleAgent) {
		t.Fatalf("Join through DialTLS: %v", err)
	}

	plain := func(ctx context.Context, addr string, _ *tls.Config) (net.Conn, error) {
		var d net.Dialer
		return d.DialContext(ctx, "tcp", addr)
	}
	c2, err := NewClient(&ClientConfig{Addrs: []string{ts.Addr}, Credentials: ts.Admin, DialTLS: plain, MaxRetries: -1})
	if err != nil {
		t.Fatal(err)
	}
	defer c2.Close()
	if _, err := c2.API().Ping(ctx, &authv1.PingRequest{}); !errors.Is(err, ErrUnavailable) {
		t.Fatalf("Ping over a plain connection: %v", err)
	}
}
