package authapi

import (
	"context"
	"crypto/x509"
	"encoding/json"
	"fmt"
	"net"
	"testing"
	"time"

	authv1 "github.com/sallyport/sallyport/authapi/proto/sallyport/auth/v1"
	"github.com/sallyport/sallyport/backend/memory"
)

func TestMatchLabels(t *testing.T) {
	cases := []struct {
		name     string
		selector map[string][]string
		labels   map[string]string
		want     bool
	}{
		{"empty selector matches nothing", nil, map[string]string{"a": "b"}, false},
		{"wildcard matches all", map[string][]string{"*": {"*"}}, nil, true},
		{"exact", map[string][]string{"env": {"prod"}}, map[string]string{"env": "prod"}, true},
		{"other value", map[string][]string{"env": {"prod"}}, map[string]string{"env": "dev"}, false},
		{"missing label", map[string][]string{"env": {"prod"}}, map[string]string{}, false},
		{"any value", map[string][]string{"env": {"*"}}, map[string]string{"env": "x"}, true},
		{"glob", map[string][]string{"env": {"dev-*"}}, map[string]string{"env": "dev-7"}, true},
		{"every key must match", map[string][]string{"env": {"prod"}, "team": {"db"}}, map[string]string{"env": "prod", "team": "web"}, false},
		{"star key with other value", map[string][]string{"*": {"x"}}, map[string]string{"a": "x"}, false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if got := MatchLabels(tc.selector, tc.labels); got != tc.want {
				t.Fatalf("MatchLabels = %v, want %v", got, tc.want)
			}
		})
	}
}

func TestDurationJSON(t *testing.T) {
	var r Role
	if err := json.Unmarshal([]byte(`{"name":"x","max_session_ttl":"90m"}`), &r); err != nil || time.Duration(r.MaxSessionTTL) != 90*time.Minute {
		t.Fatalf("%v %v", r.MaxSessionTTL, err)
	}
	b, _ := json.Marshal(r)
	if string(b) != `{"name":"x","max_session_ttl":"1h30m0s"}` {
		t.Fatalf("marshal = %s", b)
	}
	if err := json.Unmarshal([]byte(`{"max_session_ttl":"soon"}`), &r); err == nil {
		t.Fatal("bad duration accepted")
	}
}

func FuzzParseIdentity(f *testing.F) {
	f.Add([]byte(`{"v":1,"kind":"user","name":"alice","cluster":"c","roles":["dev"],"rules":[{"name":"dev","logins":["ubuntu"],"node_labels":{"*":["*"]}}]}`))
	f.Add([]byte(`{"v":1,"kind":"host","name":"n","cluster":"c","roles":["agent"]}`))
	f.Add([]byte(`{"v":2}`))
	f.Add([]byte(`null`))
	f.Fuzz(func(t *testing.T, data []byte) {
		id, err := parseIdentityExt(data, time.Time{})
		if err != nil {
			return
		}
		// Round trip: what parsed encodes and parses to the same identity.
		ext, err := id.extension()
		if err != nil {
			return
		}
		id2, err := parseIdentityExt(ext.Value, time.Time{})
		if err != nil {
			t.Fatalf("re-parse: %v", err)
		}
		a, _ := json.Marshal(id)
		b, _ := json.Marshal(id2)
		if string(a) != string(b) {
			t.Fatalf("round trip changed %s to %s", a, b)
		}
		id.CanLogin("root", map[string]string{"a": "b"})
		id.CanDatabase("x", "y")
		id.CanApp("z")
	})
}

func FuzzParseCredentials(f *testing.F) {
	f.Add([]byte(`{"cluster":"c","tls_cert":"-----BEGIN CERTIFICATE-----\nAA==\n-----END CERTIFICATE-----\n"}`))
	f.Add([]byte(`{}`))
	f.Add([]byte(`[`))
	f.Fuzz(func(t *testing.T, data []byte) {
		c, err := ParseCredentials(data)
		if err == nil && c.Identity == nil {
			t.Fatal("credentials without identity")
		}
	})
}

// Example shows a cluster of one auth instance: a host joins with a token
// and the CA pin, and becomes an agent.
func Example() {
	ctx := context.Background()
	b, _ := memory.New(nil)
	defer b.Close()
	srv, err := New(ctx, &Config{Backend: b, ClusterName: "example"})
	if err != nil {
		fmt.Println(err)
		return
	}
	l, _ := net.Listen("tcp", "127.0.0.1:0")
	go srv.Serve(l)
	defer srv.Close()

	// The operator's admin identity, and a join token for one agent.
	adminCreds, _ := srv.IssueIdentity(ctx, "admin", "ops", time.Hour)
	admin, _ := NewClient(&ClientConfig{Addrs: []string{l.Addr().String()}, Credentials: adminCreds})
	defer admin.Close()
	tok, err := admin.API().CreateJoinToken(ctx, &authv1.CreateJoinTokenRequest{Roles: []string{RoleAgent}})
	if err != nil {
		fmt.Println(err)
		return
	}

	// On the new host: the token and the pin give it an identity.
	creds, err := Join(ctx, JoinConfig{Addrs: []string{l.Addr().String()}, Token: tok.Token, CAPin: srv.CAPin(), HostID: "node-1"})
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println(creds.Identity.Kind, creds.Identity.Name, creds.Identity.Cluster, creds.Identity.Roles)
	fmt.Println(creds.SSHCert.ValidPrincipals[:2])
	// Output:
	// host node-1 example [agent]
	// [node-1 node-1.example]
}

func ExampleMatchLabels() {
	selector := map[string][]string{"env": {"staging", "dev-*"}}
	fmt.Println(MatchLabels(selector, map[string]string{"env": "dev-2"}))
	fmt.Println(MatchLabels(selector, map[string]string{"env": "prod"}))
	// Output:
	// true
	// false
}

// ExampleClient_Login logs a user in and authorises from the certificate
// alone, as a proxy or agent would.
func ExampleClient_Login() {
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

	// A client that knows only the pin logs in.
	c, _ := NewClient(&ClientConfig{Addrs: addrs, CAPin: srv.CAPin()})
	defer c.Close()
	creds, err := c.Login(ctx, LoginRequest{User: "alice", Password: "correct horse"})
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println(creds.SSHCert.ValidPrincipals)
	id, _ := ParseIdentity(creds.Certificate.Leaf)
	fmt.Println(id.CanLogin("ubuntu", map[string]string{"env": "staging"}))
	fmt.Println(id.CanLogin("ubuntu", map[string]string{"env": "prod"}))
	// Output:
	// [ubuntu]
	// true
	// false
}

func FuzzParsePublicKeys(f *testing.F) {
	k, _ := x509.MarshalPKIXPublicKey(newECKey(f).Public())
	f.Add(k, "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl test")
	f.Add([]byte{0x30, 0x00}, "ssh-rsa AAAA")
	f.Fuzz(func(t *testing.T, der []byte, line string) {
		if k, err := parseTLSPublicKey(der); err == nil && k == nil {
			t.Fatal("nil key without error")
		}
		if k, err := parseSSHPublicKey(line); err == nil && line != "" && k == nil {
			t.Fatal("nil ssh key without error")
		}
	})
}
