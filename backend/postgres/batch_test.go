package postgres

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/sallyport/sallyport/backend"
	"github.com/sallyport/sallyport/backend/backendtest"
	"github.com/sallyport/sallyport/internal/testservice"
)

func openBatchTest(t *testing.T) *Backend {
	t.Helper()
	b, err := Open(backendtest.Context(t), &Config{ConnString: testservice.PostgresDB(t), Schema: "batch"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { b.Close() })
	return b
}

func putReq(b *Backend, key, val string, exp time.Time) *writeReq {
	return &writeReq{ctx: context.Background(), sql: b.q.put, key: []byte(key),
		args: []any{[]byte(key), []byte(val), expiresArg(exp)}, res: make(chan writeRes, 1)}
}

// TestBatch runs batches straight through runBatch: the writes are
// applied in key order, two writes to one key keep their order, and a
// statement the server refuses fails alone while the rest of its batch
// is written.
func TestBatch(t *testing.T) {
	b := openBatchTest(t)
	ctx := backendtest.Context(t)

	reqs := []*writeReq{putReq(b, "/c", "c", time.Time{}), putReq(b, "/b", "first", time.Time{}),
		putReq(b, "/a", "a", time.Time{}), putReq(b, "/b", "second", time.Time{})}
	b.runBatch(ctx, append([]*writeReq(nil), reqs...))
	revs := make([]int64, len(reqs))
	for i, r := range reqs {
		res := <-r.res
		if res.err != nil || !res.ok {
			t.Fatalf("write %d: %+v", i, res)
		}
		revs[i] = res.rev
	}
	// Key order: /a, /b (first), /b (second), /c.
	if !(revs[2] < revs[1] && revs[1] < revs[3] && revs[3] < revs[0]) {
		t.Fatalf("revisions /c /b /a /b = %v, want key order with the two /b writes in arrival order", revs)
	}
	it, err := b.Get(ctx, []byte("/b"))
	if err != nil || string(it.Value) != "second" || it.Revision != revs[3] {
		t.Fatalf("/b = %q at %d, %v; want second at %d", it.Value, it.Revision, err, revs[3])
	}

	// The year 300000 is past PostgreSQL's timestamptz range, so the
	// server refuses that statement and rolls the batch back; the other
	// writes are then run alone and succeed.
	bad := time.Date(300000, 1, 1, 0, 0, 0, 0, time.UTC)
	reqs = []*writeReq{putReq(b, "/d", "d", time.Time{}), putReq(b, "/e", "e", bad), putReq(b, "/f", "f", time.Time{})}
	b.runBatch(ctx, append([]*writeReq(nil), reqs...))
	for i, r := range reqs {
		res := <-r.res
		if i == 1 {
			var pe *pgconn.PgError
			if !errors.As(res.err, &pe) {
				t.Fatalf("/e: %+v, want the server's error", res)
			}
			continue
		}
		if res.err != nil || !res.ok {
			t.Fatalf("write %d: %+v", i, res)
		}
	}
	for _, k := range []string{"/d", "/f"} {
		if _, err := b.Get(ctx, []byte(k)); err != nil {
			t.Fatalf("%s: %v", k, err)
		}
	}
	if _, err := b.Get(ctx, []byte("/e")); !errors.Is(err, backend.ErrNotFound) {
		t.Fatalf("/e: %v, want not found", err)
	}

	// A write whose context ended before its batch ran is not sent.
	cctx, cancel := context.WithCancel(ctx)
	cancel()
	gone := putReq(b, "/g", "g", time.Time{})
	gone.ctx = cctx
	b.runBatch(ctx, []*writeReq{gone, putReq(b, "/h", "h", time.Time{})})
	if res := <-gone.res; !errors.Is(res.err, context.Canceled) {
		t.Fatalf("/g: %+v, want context.Canceled", res)
	}
	if _, err := b.Get(ctx, []byte("/g")); !errors.Is(err, backend.ErrNotFound) {
		t.Fatalf("/g: %v, want not found", err)
	}
}

// TestBatchConcurrentWriters has 32 writers racing on 8 keys through the
// public API: writes go into batches, every write gets its own revision,
// and each key ends holding its last acknowledged write.
func TestBatchConcurrentWriters(t *testing.T) {
	b := openBatchTest(t)
	ctx := backendtest.Context(t)
	const writers, each = 32, 50
	var (
		mu   sync.Mutex
		last = map[string]backend.Item{}
		seen = map[int64]bool{}
		wg   sync.WaitGroup
		errs = make(chan error, writers)
	)
	for w := range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range each {
				key := fmt.Sprintf("/k/%d", (w+i)%8)
				val := fmt.Sprintf("%d-%d", w, i)
				rev, err := b.Put(ctx, backend.Item{Key: []byte(key), Value: []byte(val)})
				if err != nil {
					errs <- err
					return
				}
				mu.Lock()
				if seen[rev] {
					mu.Unlock()
					errs <- fmt.Errorf("revision %d returned twice", rev)
					return
				}
				seen[rev] = true
				if rev > last[key].Revision {
					last[key] = backend.Item{Value: []byte(val), Revision: rev}
				}
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	if n := b.w.batches.Load(); n == 0 {
		t.Fatal("32 concurrent writers made no batch")
	}
	for key, want := range last {
		it, err := b.Get(ctx, []byte(key))
		if err != nil || it.Revision != want.Revision || string(it.Value) != string(want.Value) {
			t.Fatalf("%s = %q at %d, %v; want %q at %d", key, it.Value, it.Revision, err, want.Value, want.Revision)
		}
	}
	t.Logf("%d writes, %d batches of more than one", writers*each, b.w.batches.Load())
}

// TestBatchDeadline holds a row lock from another connection so that a
// batch waits on it: the batch fails at its deadline with a timeout for
// every write, the server cancels it so it writes nothing, and the
// backend goes on once the lock is gone.
func TestBatchDeadline(t *testing.T) {
	b := openBatchTest(t)
	ctx := backendtest.Context(t)
	b.batchTimeout = 300 * time.Millisecond
	if _, err := b.Put(ctx, backend.Item{Key: []byte("/held"), Value: []byte("before")}); err != nil {
		t.Fatal(err)
	}
	conn, err := pgx.Connect(ctx, b.pool.Config().ConnConfig.ConnString())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(context.Background())
	tx, err := conn.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tx.Exec(ctx, `SELECT 1 FROM `+b.n.kv+` WHERE key = $1 FOR UPDATE`, []byte("/held")); err != nil {
		t.Fatal(err)
	}
	reqs := []*writeReq{putReq(b, "/held", "one", time.Time{}), putReq(b, "/held", "two", time.Time{})}
	b.runBatch(ctx, append([]*writeReq(nil), reqs...))
	for i, r := range reqs {
		if res := <-r.res; !pgconn.Timeout(res.err) {
			t.Fatalf("write %d: %+v, want a timeout", i, res)
		}
	}
	// The driver asked the server to cancel the batch: wait until no
	// session waits for the lock any more, then let it go.
	for deadline := time.Now().Add(10 * time.Second); ; {
		var waiting int
		if err := conn.QueryRow(ctx, `SELECT count(*) FROM pg_stat_activity
WHERE datname = current_database() AND wait_event_type = 'Lock'`).Scan(&waiting); err != nil {
			t.Fatal(err)
		}
		if waiting == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the timed-out batch still waits for the lock 10 s after its cancel")
		}
		time.Sleep(20 * time.Millisecond)
	}
	if err := tx.Rollback(ctx); err != nil {
		t.Fatal(err)
	}
	if it, err := b.Get(ctx, []byte("/held")); err != nil || string(it.Value) != "before" {
		t.Fatalf("/held = %q, %v; want before (the batch timed out and was cancelled)", it.Value, err)
	}
	// The pool dropped the timed-out connection; writes go on.
	reqs = []*writeReq{putReq(b, "/held", "after", time.Time{}), putReq(b, "/other", "x", time.Time{})}
	b.runBatch(ctx, append([]*writeReq(nil), reqs...))
	for i, r := range reqs {
		if res := <-r.res; res.err != nil || !res.ok {
			t.Fatalf("write %d after the lock: %+v", i, res)
		}
	}
	if it, err := b.Get(ctx, []byte("/held")); err != nil || string(it.Value) != "after" {
		t.Fatalf("/held = %q, %v; want after", it.Value, err)
	}
}
