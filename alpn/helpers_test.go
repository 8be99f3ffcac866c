package alpn

import (
	"context"
	"errors"
	"io"
	"net"
	"testing"
	"time"

	"github.com/sallyport/sallyport/internal/testpki"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// newPKI returns a throwaway CA for the router's tests.
func newPKI(t testing.TB) *testpki.CA {
	t.Helper()
	return testpki.NewCA(t, "alpn test CA")
}

// listen returns a loopback TCP listener closed at cleanup.
func listen(t testing.TB) net.Listener {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	return l
}

// serveRouter runs r.Serve on a new listener and closes r at cleanup,
// checking that Serve returned ErrRouterClosed.
func serveRouter(t testing.TB, r *Router) string {
	t.Helper()
	l := listen(t)
	done := make(chan error, 1)
	go func() { done <- r.Serve(l) }()
	t.Cleanup(func() {
		r.Close()
		if err := <-done; !errors.Is(err, ErrRouterClosed) {
			t.Errorf("Serve returned %v, want ErrRouterClosed", err)
		}
	})
	return l.Addr().String()
}

func newRouter(t testing.TB, cfg *Config) *Router {
	t.Helper()
	r, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// mustHandle adds a route or fails.
func mustHandle(t testing.TB, r *Router, rt Route) {
	t.Helper()
	if err := r.Handle(rt); err != nil {
		t.Fatal(err)
	}
}

// readAll reads c until EOF with a deadline.
func readAll(t testing.TB, c net.Conn) string {
	t.Helper()
	c.SetReadDeadline(time.Now().Add(10 * time.Second))
	b, err := io.ReadAll(c)
	if err != nil {
		t.Fatalf("read: %v", err)
	}
	return string(b)
}

func ctxT(t testing.TB) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	t.Cleanup(cancel)
	return ctx
}
