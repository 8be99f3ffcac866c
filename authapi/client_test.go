package authapi

import (
	"context"
	"errors"
	"net"
	"testing"
	"time"

	authv1 "github.com/sallyport/sallyport/authapi/proto/sallyport/auth/v1"
)

// TestClientFailover: two instances share a backend; a client given both
// addresses keeps working while either one is down.
func TestClientFailover(t *testing.T) {
	b := newMemory(t)
	a := startServer(t, b, &Config{HostID: "auth-a"})
	bb := startServer(t, b, &Config{HostID: "auth-b"})
	if a.CAPin() != bb.CAPin() {
		t.Fatal("instances on one backend have different CAs")
	}
	ctx := testCtx(t)
	c, err := NewClient(&ClientConfig{Addrs: []string{a.Addr, bb.Addr}, Credentials: a.Admin, RetryBackoff: 10 * time.Millisecond, MaxRetries: 8})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	seen := map[string]bool{}
	for deadline := time.Now().Add(5 * time.Second); len(seen) < 2 && time.Now().Before(deadline); {
		p, err := c.API().Ping(ctx, &authv1.PingRequest{})
		if err != nil {
			t.Fatal(err)
		}
		seen[p.ServerHostId] = true
	}
	if !seen["auth-a"] || !seen["auth-b"] {
		t.Errorf("calls reached %v, want both instances", seen)
	}
	a.Close()
	for i := range 20 {
		p, err := c.API().Ping(ctx, &authv1.PingRequest{})
		if err != nil {
			t.Fatalf("call %d with one instance down: %v", i, err)
		}
		if i > 5 && p.ServerHostId != "auth-b" {
			t.Fatalf("call %d answered by %s", i, p.ServerHostId)
		}
	}
	// Writes made through one instance are visible through the other.
	if _, err := c.API().UpsertRole(ctx, &authv1.UpsertRoleRequest{Role: &authv1.Role{Name: "ops", Logins: []string{"root"}}}); err != nil {
		t.Fatal(err)
	}
	bb.Close()
	// With every instance down, idempotent calls retry and then fail
	// with ErrUnavailable.
	sctx, cancel := context.WithTimeout(ctx, 3*time.Second)
	defer cancel()
	if _, err := c.API().Ping(sctx, &authv1.PingRequest{}); !errors.Is(err, ErrUnavailable) {
		t.Fatalf("Ping with no server = %v, want ErrUnavailable", err)
	}
}

func TestClientConfig(t *testing.T) {
	cases := []struct {
		name string
		cfg  *ClientConfig
	}{
		{"nil", nil},
		{"no addrs", &ClientConfig{CAPin: "sha256:00"}},
		{"no credentials and no pin", &ClientConfig{Addrs: []string{"x:1"}}},
		{"malformed pin", &ClientConfig{Addrs: []string{"x:1"}, CAPin: "md5:00"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := NewClient(tc.cfg); !errors.Is(err, ErrInvalidArgument) {
				t.Fatalf("NewClient = %v, want ErrInvalidArgument", err)
			}
		})
	}
	c, err := NewClient(&ClientConfig{Addrs: []string{"127.0.0.1:1"}, CAPin: "sha256:00"})
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
	if err := c.Close(); !errors.Is(err, net.ErrClosed) {
		t.Fatalf("second Close = %v", err)
	}
}

// TestClientDialHook: the DialContext hook carries every connection (as a
// proxy route would).
func TestClientDialHook(t *testing.T) {
	ts := startServer(t, nil, nil)
	dialed := make(chan string, 10)
	var d net.Dialer
	c, err := NewClient(&ClientConfig{Addrs: []string{"auth.invalid:3025"}, Credentials: ts.Admin, DialContext: func(ctx context.Context, addr string) (net.Conn, error) {
		dialed <- addr
		return d.DialContext(ctx, "tcp", ts.Addr)
	}, ALPN: []string{ALPN}})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if _, err := c.API().Ping(testCtx(t), &authv1.PingRequest{}); err != nil {
		t.Fatal(err)
	}
	if got := <-dialed; got != "auth.invalid:3025" {
		t.Fatalf("dialed %q", got)
	}
}
