package authapi

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"

	authv1 "github.com/sallyport/sallyport/authapi/proto/sallyport/auth/v1"
	"github.com/sallyport/sallyport/backend/memory"
)

func ExampleCheckSSHLogin() {
	// The Auth Service puts the SSH rules of the user's roles into the
	// SSH certificate (ExtRules); a node checks its own labels against
	// them.
	rules, _ := SSHRules([]Role{{Name: "dev", Logins: []string{"ubuntu"}, NodeLabels: map[string][]string{"env": {"dev"}}}})
	ext := map[string]string{ExtRules: rules}
	fmt.Println(rules)
	fmt.Println(CheckSSHLogin(ext, "ubuntu", map[string]string{"env": "dev"}))
	fmt.Println(CheckSSHLogin(ext, "ubuntu", map[string]string{"env": "prod"}))
	// Output:
	// {"v":1,"r":[{"n":"dev","l":["ubuntu"],"s":{"env":["dev"]}}]}
	// <nil>
	// authapi: access denied: roles [dev] do not grant login "ubuntu" on this node
}

func FuzzParseSSHRules(f *testing.F) {
	f.Add(`{"v":1,"r":[{"n":"dev","l":["ubuntu"],"s":{"env":["dev"]}}]}`)
	f.Add(`{"v":1,"r":[{"n":"all","l":["root"],"s":{"*":["*"]}}]}`)
	f.Add(`{"v":2}`)
	f.Add(`{"v":1,"r":null}`)
	f.Add(`[`)
	f.Fuzz(func(t *testing.T, s string) {
		roles, err := ParseSSHRules(s)
		if err != nil {
			if !errors.Is(err, ErrInvalidIdentity) {
				t.Fatalf("error %v does not wrap ErrInvalidIdentity", err)
			}
			if cerr := CheckSSHLogin(map[string]string{ExtRules: s}, "root", map[string]string{"env": "dev"}); !errors.Is(cerr, ErrAccessDenied) {
				t.Fatalf("unparsable rules granted access: %v", cerr)
			}
			return
		}
		// What parses re-encodes and parses to the same rules.
		enc, err := SSHRules(roles)
		if err != nil {
			return // larger once re-encoded (escapes)
		}
		again, err := ParseSSHRules(enc)
		if err != nil || len(again) != len(roles) {
			t.Fatalf("re-encoded rules %q: %v", enc, err)
		}
	})
}

func FuzzParseCSR(f *testing.F) {
	_, k, _ := ed25519.GenerateKey(rand.Reader)
	der, _ := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{}, k)
	f.Add(der)
	f.Add([]byte{0x30, 0x00})
	f.Fuzz(func(t *testing.T, b []byte) {
		pub, err := ParseCSR(b)
		if err != nil {
			if !errors.Is(err, ErrInvalidArgument) {
				t.Fatalf("error %v does not wrap ErrInvalidArgument", err)
			}
			return
		}
		if ValidateTLSPublicKey(pub) != nil {
			t.Fatalf("accepted a key that does not validate: %T", pub)
		}
	})
}

// ExampleClient_Login_ownKeys logs in with keys the caller keeps: only
// certificates come back.
func ExampleClient_Login_ownKeys() {
	ctx := context.Background()
	b, _ := memory.New(nil)
	defer b.Close()
	srv, _ := New(ctx, &Config{Backend: b, ClusterName: "example", BcryptCost: 4})
	l, _ := net.Listen("tcp", "127.0.0.1:0")
	go srv.Serve(l)
	defer srv.Close()
	addrs := []string{l.Addr().String()}
	adminCreds, _ := srv.IssueIdentity(ctx, "admin", "ops", time.Hour)
	admin, _ := NewClient(&ClientConfig{Addrs: addrs, Credentials: adminCreds})
	defer admin.Close()
	role := Role{Name: "dev", Logins: []string{"ubuntu"}, NodeLabels: map[string][]string{"env": {"staging"}}}
	admin.API().UpsertRole(ctx, &authv1.UpsertRoleRequest{Role: role.Proto()})
	admin.API().UpsertUser(ctx, &authv1.UpsertUserRequest{Name: "alice", Roles: []string{"dev"}, Password: "correct horse"})

	sshPub, _, _ := ed25519.GenerateKey(rand.Reader)
	sshKey, _ := ssh.NewPublicKey(sshPub)
	tlsKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	csr, _ := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{}, tlsKey)

	c, _ := NewClient(&ClientConfig{Addrs: addrs, CAPin: srv.CAPin()})
	defer c.Close()
	creds, err := c.Login(ctx, LoginRequest{User: "alice", Password: "correct horse", SSHPublicKey: sshKey, CSR: csr})
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println(bytes.Equal(creds.SSHCert.Key.Marshal(), sshKey.Marshal()), tlsKey.PublicKey.Equal(creds.Certificate.Leaf.PublicKey))
	fmt.Println(creds.SSHKey == nil, creds.Certificate.PrivateKey == nil)
	fmt.Println(CheckSSHLogin(creds.SSHCert.Extensions, "ubuntu", map[string]string{"env": "staging"}))
	// Output:
	// true true
	// true true
	// <nil>
}
