package sqlite_test

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"path/filepath"
	"testing"
	"time"

	"github.com/sallyport/sallyport/backend"
	"github.com/sallyport/sallyport/backend/sqlite"
)

// TestWatchAcrossInstances follows writes of another instance on the same
// file through the change log, interleaved with its own writes.
func TestWatchAcrossInstances(t *testing.T) {
	path := filepath.Join(t.TempDir(), "state.db")
	a := open(t, testConfig(path))
	defer a.Close()
	b := open(t, testConfig(path))
	defer b.Close()
	ctx := context.Background()
	w, err := b.NewWatcher(ctx, backend.Watch{QueueSize: 1000})
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	if ev := <-w.Events(); ev.Type != backend.OpInit {
		t.Fatalf("first event %v", ev.Type)
	}
	var want []int64
	for i := 0; i < 50; i++ {
		inst := a
		if i%3 == 0 {
			inst = b
		}
		rev, err := inst.Put(ctx, backend.Item{Key: fmt.Appendf(nil, "/x/%d", i), Value: []byte("v")})
		if err != nil {
			t.Fatal(err)
		}
		want = append(want, rev)
	}
	for i, rev := range want {
		select {
		case ev := <-w.Events():
			if ev.Item.Revision != rev || string(ev.Item.Key) != fmt.Sprintf("/x/%d", i) {
				t.Fatalf("event %d: %q rev %d, want /x/%d rev %d", i, ev.Item.Key, ev.Item.Revision, i, rev)
			}
		case <-time.After(5 * time.Second):
			t.Fatalf("event %d (revision %d) not delivered", i, rev)
		}
	}
}

// TestWatchBrokenAfterPrune: an instance whose watchers fell further behind
// than the change log's retention closes them with ErrWatchBroken.
func TestWatchBrokenAfterPrune(t *testing.T) {
	path := filepath.Join(t.TempDir(), "state.db")
	writer := open(t, sqlite.Config{Path: path, SweepInterval: 10 * time.Millisecond, ChangeRetention: 30 * time.Millisecond})
	defer writer.Close()
	// This instance never polls on its own: it only learns of the other's
	// writes when it writes itself.
	lagging := open(t, sqlite.Config{Path: path, PollInterval: time.Hour})
	defer lagging.Close()
	ctx := context.Background()
	w, err := lagging.NewWatcher(ctx, backend.Watch{})
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	<-w.Events() // init
	if _, err := writer.Put(ctx, backend.Item{Key: []byte("/a"), Value: []byte("1")}); err != nil {
		t.Fatal(err)
	}
	// Wait for the writer to prune the change log.
	db, err := sql.Open("sqlite", path)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		var n int
		if err := db.QueryRow(`SELECT count(*) FROM sallyport_changes`).Scan(&n); err != nil {
			t.Fatal(err)
		}
		if n == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("change log still holds %d rows", n)
		}
	}
	if _, err := lagging.Put(ctx, backend.Item{Key: []byte("/b"), Value: []byte("2")}); err != nil {
		t.Fatal(err)
	}
	select {
	case <-w.Done():
	case <-time.After(5 * time.Second):
		t.Fatal("watcher not stopped after the change log was pruned under it")
	}
	if !errors.Is(w.Err(), backend.ErrWatchBroken) {
		t.Fatalf("Err = %v, want ErrWatchBroken", w.Err())
	}
	// A new watcher works and sees the next change.
	w2, err := lagging.NewWatcher(ctx, backend.Watch{})
	if err != nil {
		t.Fatal(err)
	}
	defer w2.Close()
	<-w2.Events()
	rev, err := lagging.Put(ctx, backend.Item{Key: []byte("/c"), Value: []byte("3")})
	if err != nil {
		t.Fatal(err)
	}
	select {
	case ev := <-w2.Events():
		if ev.Item.Revision != rev {
			t.Fatalf("new watcher got revision %d, want %d", ev.Item.Revision, rev)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("new watcher got nothing")
	}
}
