package backendtest

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/sallyport/sallyport/backend"
)

// FaultConfig describes one run of [FaultRun]. Backend, Down and Up are
// required.
type FaultConfig struct {
	// Backend is the backend under test, connected to the store that Down
	// takes away. FaultRun writes keys under "/f/" and "/f2/".
	Backend backend.Backend
	// Down takes the store away (stops or kills the server) and returns
	// once it is gone.
	Down func()
	// Up brings the store back on the same address with the same data.
	Up func()
	// Writers is the number of goroutines that write while the store goes
	// down and comes back; zero means 4.
	Writers int
}

// FaultRun drives writers and a watcher across a store outage and checks
// what every driver promises about one:
//
//   - the watcher delivers while the store is up;
//   - after Down the watcher stops with [backend.ErrWatchBroken], writes
//     fail and a Get fails;
//   - after Up writes succeed again by themselves, and a new watcher can
//     be opened and sees new writes;
//   - every write that was acknowledged reads back at its revision.
//
// The caller opens the backend (with short request timeouts, so that
// operations fail fast while the store is down) and may check more after
// FaultRun returns.
func FaultRun(t *testing.T, cfg FaultConfig) {
	t.Helper()
	if cfg.Backend == nil || cfg.Down == nil || cfg.Up == nil {
		t.Fatal("backendtest: FaultRun needs Backend, Down and Up")
	}
	writers := cfg.Writers
	if writers == 0 {
		writers = 4
	}
	b := cfg.Backend
	ctx := Context(t)
	w := Watch(t, b, "/f/")

	var (
		mu     sync.Mutex
		acked  = map[string]int64{}
		errs   atomic.Int64
		nAcked atomic.Int64
		stop   = make(chan struct{})
		wg     sync.WaitGroup
	)
	for wr := range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				key := fmt.Sprintf("/f/%d/%06d", wr, i)
				octx, cancel := context.WithTimeout(ctx, 2*time.Second)
				rev, err := b.Put(octx, backend.Item{Key: []byte(key), Value: []byte(key)})
				cancel()
				if err != nil {
					errs.Add(1)
					time.Sleep(50 * time.Millisecond)
					continue
				}
				mu.Lock()
				acked[key] = rev
				mu.Unlock()
				nAcked.Add(1)
			}
		}()
	}
	stopWriters := sync.OnceFunc(func() {
		close(stop)
		wg.Wait()
	})
	defer stopWriters()

	WaitFor(t, "writes before the fault", 20*time.Second, func() bool { return nAcked.Load() >= 50 })
	if ev := NextEvent(t, w, 10*time.Second); ev.Type != backend.OpPut {
		t.Fatalf("event %v before the fault", ev.Type)
	}

	cfg.Down()
	select {
	case <-w.Done():
	case <-time.After(15 * time.Second):
		t.Fatal("watcher not stopped while the store is down")
	}
	if !errors.Is(w.Err(), backend.ErrWatchBroken) {
		t.Fatalf("watcher error %v, want ErrWatchBroken", w.Err())
	}
	errsBefore := errs.Load()
	WaitFor(t, "failing writes while down", 15*time.Second, func() bool { return errs.Load() > errsBefore })
	octx, cancel := context.WithTimeout(ctx, 3*time.Second)
	_, err := b.Get(octx, []byte("/f/0/000000"))
	cancel()
	if err == nil {
		t.Fatal("get succeeded while the store is down")
	}
	ackedAtUp := nAcked.Load()

	cfg.Up()
	WaitFor(t, "writes after the restart", 30*time.Second, func() bool { return nAcked.Load() >= ackedAtUp+50 })
	var w2 backend.Watcher
	WaitFor(t, "a new watcher", 30*time.Second, func() bool {
		nw, err := b.NewWatcher(ctx, backend.Watch{Prefixes: [][]byte{[]byte("/f2/")}})
		if err != nil {
			t.Logf("new watcher: %v", err)
			return false
		}
		w2 = nw
		return true
	})
	defer w2.Close()
	waitInit(t, w2)
	rev, err := b.Put(ctx, backend.Item{Key: []byte("/f2/after")})
	if err != nil {
		t.Fatal(err)
	}
	if ev := NextEvent(t, w2, 10*time.Second); ev.Item.Revision != rev {
		t.Fatalf("event after the restart: rev %d, want %d", ev.Item.Revision, rev)
	}

	stopWriters()
	mu.Lock()
	defer mu.Unlock()
	lost := 0
	for key, rev := range acked {
		it, err := b.Get(ctx, []byte(key))
		if err != nil || it.Revision != rev {
			lost++
			if lost < 5 {
				t.Errorf("acknowledged write %s (rev %d) reads back as %+v, %v", key, rev, it, err)
			}
		}
	}
	if lost > 0 {
		t.Fatalf("%d of %d acknowledged writes lost", lost, len(acked))
	}
	t.Logf("%d acknowledged writes all present; %d writes failed while the store was down", len(acked), errs.Load())
}
