package memory_test

import (
	"time"

	"testing"

	"go.uber.org/goleak"

	"github.com/sallyport/sallyport/backend"
	"github.com/sallyport/sallyport/backend/backendtest"
	"github.com/sallyport/sallyport/backend/memory"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

func newBackend(t testing.TB) backend.Backend {
	b, err := memory.New(nil)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestConformance(t *testing.T) {
	backendtest.Run(t, newBackend, backendtest.Capabilities{ExpiryEventDelay: 200 * time.Millisecond})
}

func BenchmarkDriver(b *testing.B) {
	backendtest.Bench(b, newBackend)
}
