package backendtest_test

import (
	"context"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/sallyport/sallyport/backend"
	"github.com/sallyport/sallyport/backend/backendtest"
	"github.com/sallyport/sallyport/backend/memory"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

func openMemory(_ context.Context, cfg *memory.Config) (*memory.Backend, error) {
	return memory.New(cfg)
}

func TestWatchAndNextEvent(t *testing.T) {
	b := backendtest.Open(t, openMemory, nil)
	w := backendtest.Watch(t, b, "/w/")
	ctx := backendtest.Context(t)
	tests := []struct {
		name string
		key  string
	}{
		{"first", "/w/a"},
		{"second", "/w/b"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rev, err := b.Put(ctx, backend.Item{Key: []byte(tt.key), Value: []byte("v")})
			if err != nil {
				t.Fatal(err)
			}
			ev := backendtest.NextEvent(t, w, 5*time.Second)
			if ev.Type != backend.OpPut || string(ev.Item.Key) != tt.key || ev.Item.Revision != rev {
				t.Fatalf("event %v %q rev %d, want put %q rev %d", ev.Type, ev.Item.Key, ev.Item.Revision, tt.key, rev)
			}
		})
	}
}

func TestWaitFor(t *testing.T) {
	var n atomic.Int64
	go func() {
		for range 3 {
			time.Sleep(5 * time.Millisecond)
			n.Add(1)
		}
	}()
	backendtest.WaitFor(t, "three increments", 5*time.Second, func() bool { return n.Load() == 3 })
}

func TestRandomName(t *testing.T) {
	a, b := backendtest.RandomName("s_"), backendtest.RandomName("s_")
	if a == b || !strings.HasPrefix(a, "s_") || len(a) != len("s_")+10 {
		t.Fatalf("RandomName gave %q and %q", a, b)
	}
}

func TestParallel(t *testing.T) {
	tests := []struct {
		name    string
		callers int
	}{
		{"one caller", 1},
		{"many callers", 8},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var setups, ops atomic.Int64
			var n int
			res := testing.Benchmark(func(b *testing.B) {
				setups.Store(0)
				ops.Store(0)
				backendtest.Parallel(b, tt.callers, func(ctx context.Context) func() error {
					setups.Add(1)
					return func() error { ops.Add(1); return ctx.Err() }
				})
				n = b.N
			})
			// One warm-up operation per caller, then b.N timed ones.
			if res.N == 0 || ops.Load() != int64(n+tt.callers) {
				t.Fatalf("ran %d operations, want b.N + callers = %d", ops.Load(), n+tt.callers)
			}
			if setups.Load() != int64(tt.callers) {
				t.Fatalf("%d setups for %d callers", setups.Load(), tt.callers)
			}
		})
	}
}
