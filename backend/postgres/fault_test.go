package postgres_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/sallyport/sallyport/backend"
	"github.com/sallyport/sallyport/backend/postgres"
	"github.com/sallyport/sallyport/internal/testservice"
)

// TestServerRestart takes the database away under running writers and a
// watcher, by a fast shutdown and by killing the server: operations fail
// while it is down, the watcher is broken with ErrWatchBroken, everything
// resumes by itself when it is back, and no acknowledged write is lost.
func TestServerRestart(t *testing.T) {
	tests := []struct {
		name string
		down func(pg *testservice.Postgres)
	}{
		{"fast shutdown", (*testservice.Postgres).Stop},
		{"kill", (*testservice.Postgres).Kill},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			pg := testservice.StartPostgres(t, nil)
			b := open(t, &postgres.Config{ConnString: pg.URL("postgres"), PollInterval: 200 * time.Millisecond})
			faultRun(t, b, func() { tt.down(pg) }, pg.Start)
		})
	}
}

// faultRun drives writers and a watcher across down() and up().
func faultRun(t *testing.T, b backend.Backend, down, up func()) {
	ctx := ctxT(t)
	w := watch(t, b, "/f/")

	var (
		mu     sync.Mutex
		acked  = map[string]int64{}
		errs   atomic.Int64
		stop   = make(chan struct{})
		wg     sync.WaitGroup
		nAcked atomic.Int64
	)
	for wr := range 4 {
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
	defer func() {
		close(stop)
		wg.Wait()
	}()
	waitFor(t, "writes before the fault", 20*time.Second, func() bool { return nAcked.Load() >= 50 })
	// The watcher delivers while the store is up.
	if ev := nextEvent(t, w, 10*time.Second); ev.Type != backend.OpPut {
		t.Fatalf("event %v before the fault", ev.Type)
	}

	down()
	select {
	case <-w.Done():
	case <-time.After(15 * time.Second):
		t.Fatal("watcher not stopped while the store is down")
	}
	if !errors.Is(w.Err(), backend.ErrWatchBroken) {
		t.Fatalf("watcher error %v, want ErrWatchBroken", w.Err())
	}
	errsBefore := errs.Load()
	waitFor(t, "failing writes while down", 15*time.Second, func() bool { return errs.Load() > errsBefore })
	octx, cancel := context.WithTimeout(ctx, 3*time.Second)
	_, err := b.Get(octx, []byte("/f/0/000000"))
	cancel()
	if err == nil {
		t.Fatal("get succeeded while the store is down")
	}
	ackedAtUp := nAcked.Load()

	up()
	waitFor(t, "writes after the restart", 30*time.Second, func() bool { return nAcked.Load() >= ackedAtUp+50 })

	// A new watcher can be opened again and sees new writes.
	var w2 backend.Watcher
	waitFor(t, "a new watcher", 30*time.Second, func() bool {
		nw, err := b.NewWatcher(ctx, backend.Watch{Prefixes: [][]byte{[]byte("/f2/")}})
		if err != nil {
			t.Logf("new watcher: %v", err)
			return false
		}
		w2 = nw
		return true
	})
	defer w2.Close()
	if ev := nextEvent(t, w2, 5*time.Second); ev.Type != backend.OpInit {
		t.Fatalf("first event %v", ev.Type)
	}
	rev, err := b.Put(ctx, backend.Item{Key: []byte("/f2/after")})
	if err != nil {
		t.Fatal(err)
	}
	if ev := nextEvent(t, w2, 10*time.Second); ev.Item.Revision != rev {
		t.Fatalf("event after the restart: rev %d, want %d", ev.Item.Revision, rev)
	}

	close(stop)
	wg.Wait()
	stop = make(chan struct{}) // for the deferred close
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

func waitFor(t testing.TB, what string, d time.Duration, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", d, what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
