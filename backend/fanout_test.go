package backend_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/sallyport/sallyport/backend"
)

func put(key string, rev int64) backend.Event {
	return backend.Event{Type: backend.OpPut, Item: backend.Item{Key: []byte(key), Value: []byte("v"), Revision: rev}}
}

// next reads one event or fails after a second.
func next(t testing.TB, w backend.Watcher) (backend.Event, bool) {
	t.Helper()
	select {
	case ev, ok := <-w.Events():
		return ev, ok
	case <-time.After(time.Second):
		t.Fatal("no event within 1s")
		return backend.Event{}, false
	}
}

func TestFanoutDelivery(t *testing.T) {
	tests := []struct {
		name     string
		prefixes []string
		publish  []string
		want     []string
	}{
		{name: "all keys", publish: []string{"/a/1", "/b/1", "/a/2"}, want: []string{"/a/1", "/b/1", "/a/2"}},
		{name: "one prefix", prefixes: []string{"/a/"}, publish: []string{"/a/1", "/b/1", "/a/2"}, want: []string{"/a/1", "/a/2"}},
		{name: "two prefixes", prefixes: []string{"/a/", "/c"}, publish: []string{"/c", "/b/1", "/a/2", "/cc"}, want: []string{"/c", "/a/2", "/cc"}},
		{name: "no match", prefixes: []string{"/z"}, publish: []string{"/a", "/b"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var f backend.Fanout
			defer f.Close()
			var prefixes [][]byte
			for _, p := range tt.prefixes {
				prefixes = append(prefixes, []byte(p))
			}
			w, err := f.NewWatcher(context.Background(), backend.Watch{Prefixes: prefixes})
			if err != nil {
				t.Fatal(err)
			}
			if ev, _ := next(t, w); ev.Type != backend.OpInit {
				t.Fatalf("first event %v, want init", ev.Type)
			}
			for i, k := range tt.publish {
				f.Publish(put(k, int64(i+1)))
			}
			w.Close()
			var got []string
			for ev := range w.Events() {
				got = append(got, string(ev.Item.Key))
			}
			if fmt.Sprint(got) != fmt.Sprint(tt.want) {
				t.Fatalf("got %q, want %q", got, tt.want)
			}
			if !errors.Is(w.Err(), backend.ErrClosed) {
				t.Fatalf("Err = %v, want ErrClosed", w.Err())
			}
		})
	}
}

func TestFanoutFellBehind(t *testing.T) {
	var f backend.Fanout
	defer f.Close()
	slow, err := f.NewWatcher(context.Background(), backend.Watch{QueueSize: 4})
	if err != nil {
		t.Fatal(err)
	}
	fast, err := f.NewWatcher(context.Background(), backend.Watch{QueueSize: 100})
	if err != nil {
		t.Fatal(err)
	}
	for i := 1; i <= 10; i++ {
		f.Publish(put(fmt.Sprint(i), int64(i)))
	}
	<-slow.Done()
	if !errors.Is(slow.Err(), backend.ErrWatcherFellBehind) {
		t.Fatalf("slow watcher Err = %v, want ErrWatcherFellBehind", slow.Err())
	}
	// The slow watcher keeps what it had queued: init and three events.
	n := 0
	for range slow.Events() {
		n++
	}
	if n != 4 {
		t.Fatalf("slow watcher drained %d events, want 4", n)
	}
	if f.Len() != 1 {
		t.Fatalf("Len = %d, want 1", f.Len())
	}
	select {
	case <-fast.Done():
		t.Fatalf("fast watcher stopped: %v", fast.Err())
	default:
	}
	if fast.Err() != nil {
		t.Fatalf("fast watcher Err = %v", fast.Err())
	}
	for want := int64(0); want <= 10; want++ {
		ev, _ := next(t, fast)
		if ev.Item.Revision != want {
			t.Fatalf("fast watcher got revision %d, want %d", ev.Item.Revision, want)
		}
	}
}

func TestFanoutStop(t *testing.T) {
	tests := []struct {
		name string
		stop func(f *backend.Fanout, w backend.Watcher, cancel context.CancelFunc)
		want error
	}{
		{name: "watcher close", stop: func(_ *backend.Fanout, w backend.Watcher, _ context.CancelFunc) { w.Close(); w.Close() }, want: backend.ErrClosed},
		{name: "context", stop: func(_ *backend.Fanout, _ backend.Watcher, cancel context.CancelFunc) { cancel() }, want: context.Canceled},
		{name: "close watchers", stop: func(f *backend.Fanout, _ backend.Watcher, _ context.CancelFunc) {
			f.CloseWatchers(fmt.Errorf("lost: %w", backend.ErrWatchBroken))
		}, want: backend.ErrWatchBroken},
		{name: "fanout close", stop: func(f *backend.Fanout, _ backend.Watcher, _ context.CancelFunc) { f.Close(); f.Close() }, want: backend.ErrClosed},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var f backend.Fanout
			defer f.Close()
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			w, err := f.NewWatcher(ctx, backend.Watch{})
			if err != nil {
				t.Fatal(err)
			}
			tt.stop(&f, w, cancel)
			select {
			case <-w.Done():
			case <-time.After(time.Second):
				t.Fatal("watcher did not stop")
			}
			if !errors.Is(w.Err(), tt.want) {
				t.Fatalf("Err = %v, want %v", w.Err(), tt.want)
			}
			f.Publish(put("/after", 1)) // must not panic on a stopped watcher
			if f.Len() != 0 {
				t.Fatalf("Len = %d after stop", f.Len())
			}
		})
	}
}

func TestFanoutNewWatcherErrors(t *testing.T) {
	var f backend.Fanout
	if _, err := f.NewWatcher(context.Background(), backend.Watch{QueueSize: -1}); !errors.Is(err, backend.ErrInvalid) {
		t.Fatalf("negative queue: %v, want ErrInvalid", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := f.NewWatcher(ctx, backend.Watch{}); !errors.Is(err, context.Canceled) {
		t.Fatalf("cancelled ctx: %v, want context.Canceled", err)
	}
	f.Close()
	if _, err := f.NewWatcher(context.Background(), backend.Watch{}); !errors.Is(err, backend.ErrClosed) {
		t.Fatalf("after Close: %v, want ErrClosed", err)
	}
}

// TestFanoutConcurrent publishes from one goroutine while watchers come,
// read and go; run it with -race.
func TestFanoutConcurrent(t *testing.T) {
	var f backend.Fanout
	defer f.Close()
	const n = 5000
	var wg sync.WaitGroup
	for i := 0; i < 8; i++ {
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		w, err := f.NewWatcher(ctx, backend.Watch{QueueSize: n + 1})
		if err != nil {
			t.Fatal(err)
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			last := int64(-1)
			for ev := range w.Events() {
				if ev.Type != backend.OpInit && ev.Item.Revision <= last {
					t.Errorf("revision %d after %d", ev.Item.Revision, last)
				}
				last = ev.Item.Revision
				if last == n || (i%2 == 1 && last > n/2) {
					cancel()
				}
			}
			if !errors.Is(w.Err(), context.Canceled) {
				t.Errorf("Err = %v, want context.Canceled", w.Err())
			}
		}()
	}
	for i := int64(1); i <= n; i++ {
		f.Publish(put("/k", i))
	}
	wg.Wait()
}
