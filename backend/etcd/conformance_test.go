package etcd_test

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"testing"
	"time"

	"github.com/sallyport/sallyport/backend"
	"github.com/sallyport/sallyport/backend/backendtest"
	"github.com/sallyport/sallyport/backend/etcd"
	"github.com/sallyport/sallyport/internal/testservice"
)

// randomPrefix returns a fresh key prefix, so tests sharing one etcd do
// not see each other's keys.
func randomPrefix() string {
	var b [5]byte
	rand.Read(b[:])
	return "/test-" + hex.EncodeToString(b[:])
}

func open(t testing.TB, cfg *etcd.Config) *etcd.Backend {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	b, err := etcd.Open(ctx, cfg)
	if err != nil {
		t.Fatalf("open: %v", err)
	}
	t.Cleanup(func() { b.Close() })
	return b
}

func TestConformance(t *testing.T) {
	srv := testservice.StartEtcd(t)
	backendtest.Run(t, func(t testing.TB) backend.Backend {
		return open(t, &etcd.Config{Endpoints: []string{srv.Endpoint}, Prefix: randomPrefix()})
	}, backendtest.Capabilities{
		Reopen: func(t testing.TB, b backend.Backend) backend.Backend {
			// A second client over the same prefix.
			return open(t, &etcd.Config{Endpoints: []string{srv.Endpoint}, Prefix: b.(*etcd.Backend).Prefix()})
		},
		ExpiryEventDelay: 6 * time.Second,
	})
}
