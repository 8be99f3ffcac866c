package authapi

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"net"
	"testing"
	"time"

	"go.uber.org/goleak"
	"golang.org/x/crypto/bcrypt"

	"github.com/sallyport/sallyport/backend"
	"github.com/sallyport/sallyport/backend/memory"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func newMemory(t testing.TB) backend.Backend {
	t.Helper()
	b, err := memory.New(nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { b.Close() })
	return b
}

// testServer is a running Server on a loopback port.
type testServer struct {
	*Server
	Addr  string
	Admin *Credentials
}

// startServer starts a Server over b (a new memory backend when nil).
// cfg may be nil; Backend, BcryptCost and Logger are filled in.
func startServer(t testing.TB, b backend.Backend, cfg *Config) *testServer {
	t.Helper()
	if b == nil {
		b = newMemory(t)
	}
	var c testConfig
	if cfg != nil {
		c.Config = *cfg
	}
	return startServerOn(t, b, c)
}

// testConfig is a Config and the address to listen on ("": any port).
type testConfig struct {
	Config
	listenAddr string
}

func startServerOn(t testing.TB, b backend.Backend, c testConfig) *testServer {
	t.Helper()
	c.Backend = b
	if c.BcryptCost == 0 {
		c.BcryptCost = bcrypt.MinCost
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	s, err := New(ctx, &c.Config)
	if err != nil {
		t.Fatal(err)
	}
	addr := c.listenAddr
	if addr == "" {
		addr = "127.0.0.1:0"
	}
	l, err := net.Listen("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- s.Serve(l) }()
	t.Cleanup(func() {
		s.Close()
		if err := <-done; err != ErrServerClosed {
			t.Errorf("Serve returned %v, want ErrServerClosed", err)
		}
	})
	admin, err := s.IssueIdentity(ctx, "admin", "root", time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	return &testServer{Server: s, Addr: l.Addr().String(), Admin: admin}
}

// client returns a Client for creds (nil: the pinned, unauthenticated one).
func (ts *testServer) client(t testing.TB, creds *Credentials) *Client {
	t.Helper()
	cfg := &ClientConfig{Addrs: []string{ts.Addr}, Credentials: creds, RetryBackoff: 20 * time.Millisecond, MaxRetries: 2}
	if creds == nil {
		cfg.CAPin = ts.CAPin()
	}
	c, err := NewClient(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

func testCtx(t testing.TB) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func newECKey(t testing.TB) *ecdsa.PrivateKey {
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return k
}
