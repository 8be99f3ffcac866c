package etcd_test

import (
	"testing"
	"time"

	"github.com/sallyport/sallyport/backend"
	"github.com/sallyport/sallyport/backend/backendtest"
	"github.com/sallyport/sallyport/backend/etcd"
	"github.com/sallyport/sallyport/internal/testservice"
)

// randomPrefix returns a fresh key prefix, so tests sharing one etcd do
// not see each other's keys.
func randomPrefix() string { return backendtest.RandomName("/test-") }

func open(t testing.TB, cfg *etcd.Config) *etcd.Backend {
	t.Helper()
	return backendtest.Open(t, etcd.Open, cfg)
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
