package sqlite_test

import (
	"context"
	"path/filepath"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/sallyport/sallyport/backend"
	"github.com/sallyport/sallyport/backend/backendtest"
	"github.com/sallyport/sallyport/backend/sqlite"
)

func TestMain(m *testing.M) {
	if crashChild() {
		return
	}
	goleak.VerifyTestMain(m)
}

// testConfig is a configuration with short background intervals.
func testConfig(path string) sqlite.Config {
	return sqlite.Config{Path: path, SweepInterval: 50 * time.Millisecond, PollInterval: 20 * time.Millisecond}
}

func open(t testing.TB, cfg sqlite.Config) *sqlite.Backend {
	t.Helper()
	b, err := sqlite.Open(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func newBackend(t testing.TB) backend.Backend {
	return open(t, testConfig(filepath.Join(t.TempDir(), "state.db")))
}

func TestConformance(t *testing.T) {
	backendtest.Run(t, newBackend, backendtest.Capabilities{
		Reopen: func(t testing.TB, b backend.Backend) backend.Backend {
			return open(t, testConfig(b.(*sqlite.Backend).Path()))
		},
		ExpiryEventDelay: time.Second,
	})
}

func BenchmarkDriver(b *testing.B) {
	backendtest.Bench(b, newBackend)
}
