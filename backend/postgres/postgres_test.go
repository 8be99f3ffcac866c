package postgres_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/sallyport/sallyport/backend"
	"github.com/sallyport/sallyport/backend/backendtest"
	"github.com/sallyport/sallyport/backend/postgres"
	"github.com/sallyport/sallyport/internal/testservice"
)

func connect(t testing.TB, url string) *pgx.Conn {
	t.Helper()
	c, err := pgx.Connect(backendtest.Context(t), url)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close(context.Background()) })
	return c
}

// TestPermissions checks that Open names the missing privilege when the
// role may not create the tables, and that the same role works once an
// administrator has created them and granted it the data privileges.
func TestPermissions(t *testing.T) {
	pg := testservice.StartPostgres(t, nil)
	pg.Exec(t, "postgres", "CREATE DATABASE app")
	pg.Exec(t, "postgres", "CREATE ROLE limited LOGIN")
	// PostgreSQL 15 no longer lets PUBLIC create in schema public; say
	// it anyway for older servers.
	pg.Exec(t, "app", "REVOKE CREATE ON SCHEMA public FROM PUBLIC")
	limitedURL := testservice.PostgresURL(pg.Addr, "limited", "app")

	_, err := postgres.Open(backendtest.Context(t), &postgres.Config{ConnString: limitedURL})
	if !errors.Is(err, postgres.ErrPermission) {
		t.Fatalf("open without CREATE: %v, want ErrPermission", err)
	}
	for _, want := range []string{"CREATE privilege on the current schema", "permission denied for schema public", "GRANT CREATE ON SCHEMA"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not say %q", err, want)
		}
	}
	// A schema of its own needs CREATE on the database.
	_, err = postgres.Open(backendtest.Context(t), &postgres.Config{ConnString: limitedURL, Schema: "mine"})
	if !errors.Is(err, postgres.ErrPermission) || !strings.Contains(err.Error(), `CREATE privilege on the database, to create schema "mine"`) {
		t.Fatalf("open with a new schema without CREATE on the database: %v", err)
	}

	// An administrator creates the tables and grants the data privileges.
	admin := open(t, &postgres.Config{ConnString: pg.URL("app")})
	admin.Close()
	pg.Exec(t, "app", `GRANT SELECT, INSERT, UPDATE, DELETE ON sallyport_kv, sallyport_events TO limited;
GRANT USAGE, SELECT, UPDATE ON SEQUENCE sallyport_revision TO limited`)
	b := open(t, &postgres.Config{ConnString: limitedURL})
	w := backendtest.Watch(t, b, "/p/")
	rev, err := b.Put(backendtest.Context(t), backend.Item{Key: []byte("/p/a"), Value: []byte("v")})
	if err != nil {
		t.Fatalf("put as the limited role: %v", err)
	}
	if ev := backendtest.NextEvent(t, w, 5*time.Second); ev.Type != backend.OpPut || ev.Item.Revision != rev {
		t.Fatalf("event %v rev %d, want put rev %d", ev.Type, ev.Item.Revision, rev)
	}
}

// TestGapWaitsForSlowTransaction holds a revision in an open transaction
// while a later revision commits: the watcher must get both, in revision
// order, once the slow one commits.
func TestGapWaitsForSlowTransaction(t *testing.T) {
	url := testservice.PostgresDB(t)
	cfg := testConfig(url, "")
	cfg.GapTimeout = 30 * time.Second
	b := open(t, cfg)
	w := backendtest.Watch(t, b, "/gap/")
	ctx := backendtest.Context(t)

	slow := connect(t, url)
	tx, err := slow.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var r1 int64
	if err := tx.QueryRow(ctx, `SELECT nextval('sallyport_revision')`).Scan(&r1); err != nil {
		t.Fatal(err)
	}
	r2, err := b.Put(ctx, backend.Item{Key: []byte("/gap/fast"), Value: []byte("2")})
	if err != nil {
		t.Fatal(err)
	}
	if r2 <= r1 {
		t.Fatalf("put revision %d not after the held %d", r2, r1)
	}
	select {
	case ev := <-w.Events():
		t.Fatalf("event %v rev %d delivered while revision %d is in flight", ev.Type, ev.Item.Revision, r1)
	case <-time.After(700 * time.Millisecond):
	}
	// The slow transaction writes the way the driver does, then commits.
	if _, err := tx.Exec(ctx, `INSERT INTO sallyport_kv (key, value, revision) VALUES ('/gap/slow', '1', $1)`, r1); err != nil {
		t.Fatal(err)
	}
	if _, err := tx.Exec(ctx, `INSERT INTO sallyport_events (revision, key, op, value) VALUES ($1, '/gap/slow', 1, '1')`, r1); err != nil {
		t.Fatal(err)
	}
	if err := tx.Commit(ctx); err != nil {
		t.Fatal(err)
	}
	for _, want := range []struct {
		key string
		rev int64
	}{{"/gap/slow", r1}, {"/gap/fast", r2}} {
		ev := backendtest.NextEvent(t, w, 5*time.Second)
		if ev.Type != backend.OpPut || string(ev.Item.Key) != want.key || ev.Item.Revision != want.rev {
			t.Fatalf("event %v %q rev %d, want put %q rev %d", ev.Type, ev.Item.Key, ev.Item.Revision, want.key, want.rev)
		}
	}
}

// TestGapTimeoutAndLateCommit: a revision that stays in flight longer than
// GapTimeout is passed over, and when it commits after all the watchers
// are broken (they must re-read) instead of missing it silently.
func TestGapTimeoutAndLateCommit(t *testing.T) {
	url := testservice.PostgresDB(t)
	cfg := testConfig(url, "")
	cfg.GapTimeout = 300 * time.Millisecond
	b := open(t, cfg)
	w := backendtest.Watch(t, b, "/late/")
	ctx := backendtest.Context(t)

	slow := connect(t, url)
	tx, err := slow.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var r1 int64
	if err := tx.QueryRow(ctx, `SELECT nextval('sallyport_revision')`).Scan(&r1); err != nil {
		t.Fatal(err)
	}
	r2, err := b.Put(ctx, backend.Item{Key: []byte("/late/fast"), Value: []byte("2")})
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	ev := backendtest.NextEvent(t, w, 5*time.Second)
	if ev.Item.Revision != r2 {
		t.Fatalf("event rev %d, want %d", ev.Item.Revision, r2)
	}
	if waited := time.Since(start); waited < 200*time.Millisecond {
		t.Fatalf("revision %d delivered after %v, before the gap timeout", r2, waited)
	}
	if _, err := tx.Exec(ctx, `INSERT INTO sallyport_events (revision, key, op, value) VALUES ($1, '/late/slow', 1, '1')`, r1); err != nil {
		t.Fatal(err)
	}
	if err := tx.Commit(ctx); err != nil {
		t.Fatal(err)
	}
	select {
	case <-w.Done():
	case <-time.After(10 * time.Second):
		t.Fatal("watcher not broken by the late commit")
	}
	if !errors.Is(w.Err(), backend.ErrWatchBroken) {
		t.Fatalf("watcher error %v, want ErrWatchBroken", w.Err())
	}
	// A new watcher works.
	w2 := backendtest.Watch(t, b, "/late/")
	r3, err := b.Put(ctx, backend.Item{Key: []byte("/late/next"), Value: []byte("3")})
	if err != nil {
		t.Fatal(err)
	}
	if ev := backendtest.NextEvent(t, w2, 5*time.Second); ev.Item.Revision != r3 {
		t.Fatalf("new watcher: rev %d, want %d", ev.Item.Revision, r3)
	}
}

// TestTwoProcesses runs a writer in another OS process on the same
// database; this process's watcher sees all its writes, in order.
func TestTwoProcesses(t *testing.T) {
	url := testservice.PostgresDB(t)
	b := open(t, testConfig(url, ""))
	w := backendtest.Watch(t, b, "/proc/")
	const n = 200
	cmd := exec.Command(os.Args[0])
	cmd.Env = append(os.Environ(), "SALLYPORT_PG_WRITER="+url, "SALLYPORT_PG_WRITES="+strconv.Itoa(n))
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("writer process: %v\n%s", err, out)
	}
	var last int64
	for i := range n {
		ev := backendtest.NextEvent(t, w, 10*time.Second)
		if want := fmt.Sprintf("/proc/%04d", i); ev.Type != backend.OpPut || string(ev.Item.Key) != want {
			t.Fatalf("event %d: %v %q, want put %q", i, ev.Type, ev.Item.Key, want)
		}
		if ev.Item.Revision <= last {
			t.Fatalf("event %d: revision %d not after %d", i, ev.Item.Revision, last)
		}
		last = ev.Item.Revision
	}
}

// writerProcess is the writer side of TestTwoProcesses, run by TestMain
// in a child process.
func writerProcess(url string, n int) error {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	b, err := postgres.Open(ctx, &postgres.Config{ConnString: url})
	if err != nil {
		return err
	}
	defer b.Close()
	for i := range n {
		if _, err := b.Put(ctx, backend.Item{Key: fmt.Appendf(nil, "/proc/%04d", i), Value: []byte("x")}); err != nil {
			return err
		}
	}
	return nil
}

func TestOpenURI(t *testing.T) {
	u := testservice.PostgresDB(t)
	for _, scheme := range []string{"postgres", "postgresql"} {
		t.Run(scheme, func(t *testing.T) {
			uri := strings.Replace(u, "postgres://", scheme+"://", 1) + "&schema=uri_" + scheme + "&poll_interval=100ms&sweep_batch=10"
			b, err := backend.Open(backendtest.Context(t), uri)
			if err != nil {
				t.Fatalf("open %s: %v", uri, err)
			}
			defer b.Close()
			if got := b.(*postgres.Backend).Schema(); got != "uri_"+scheme {
				t.Fatalf("schema %q", got)
			}
			rev, err := b.Put(backendtest.Context(t), backend.Item{Key: []byte("/k"), Value: []byte("v")})
			if err != nil {
				t.Fatal(err)
			}
			it, err := b.Get(backendtest.Context(t), []byte("/k"))
			if err != nil || it.Revision != rev {
				t.Fatalf("get: %+v %v", it, err)
			}
		})
	}
}

func TestParseURI(t *testing.T) {
	backendtest.RunParseURI(t, postgres.ParseURI, []backendtest.URICase[*postgres.Config]{
		{Name: "plain", URI: "postgres://u:p@h:5432/db?sslmode=disable", Check: func(t *testing.T, c *postgres.Config) {
			if c.ConnString != "postgres://u:p@h:5432/db?sslmode=disable" || c.Schema != "" {
				t.Fatalf("%+v", c)
			}
		}},
		{Name: "driver parameters removed", URI: "postgresql://h/db?schema=s1&gap_timeout=2s&sweep_interval=3s&event_retention=1h&sweep_batch=7&poll_interval=250ms&sslmode=require",
			Check: func(t *testing.T, c *postgres.Config) {
				if c.ConnString != "postgres://h/db?sslmode=require" {
					t.Fatalf("conn string %q", c.ConnString)
				}
				if c.Schema != "s1" || c.GapTimeout != 2*time.Second || c.SweepInterval != 3*time.Second ||
					c.EventRetention != time.Hour || c.SweepBatch != 7 || c.PollInterval != 250*time.Millisecond {
					t.Fatalf("%+v", c)
				}
			}},
		{Name: "bad duration", URI: "postgres://h/db?gap_timeout=soon", WantErr: true},
		{Name: "negative batch", URI: "postgres://h/db?sweep_batch=-1", WantErr: true},
	})
}

func TestOpenInvalidConfig(t *testing.T) {
	tests := []struct {
		name string
		cfg  *postgres.Config
	}{
		{"nil", nil},
		{"no connection", &postgres.Config{}},
		{"negative interval", &postgres.Config{ConnString: "postgres://h/db", PollInterval: -1}},
		{"negative batch", &postgres.Config{ConnString: "postgres://h/db", SweepBatch: -1}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := postgres.Open(backendtest.Context(t), tt.cfg); !errors.Is(err, backend.ErrInvalid) {
				t.Fatalf("error %v, want ErrInvalid", err)
			}
		})
	}
}

// TestPrune checks that old change rows go, the newest stays, and the
// change stream keeps working after pruning.
func TestPrune(t *testing.T) {
	url := testservice.PostgresDB(t)
	cfg := testConfig(url, "")
	cfg.EventRetention = time.Millisecond
	b := open(t, cfg)
	ctx := backendtest.Context(t)
	for i := range 5 {
		if _, err := b.Put(ctx, backend.Item{Key: fmt.Appendf(nil, "/prune/%d", i)}); err != nil {
			t.Fatal(err)
		}
	}
	time.Sleep(10 * time.Millisecond)
	if _, err := b.Prune(ctx); err != nil {
		t.Fatal(err)
	}
	c := connect(t, url)
	var n int
	if err := c.QueryRow(ctx, `SELECT count(*) FROM sallyport_events`).Scan(&n); err != nil {
		t.Fatal(err)
	}
	if n != 1 {
		t.Fatalf("%d change rows after pruning, want the newest only", n)
	}
	w := backendtest.Watch(t, b, "/prune/")
	rev, err := b.Put(ctx, backend.Item{Key: []byte("/prune/after")})
	if err != nil {
		t.Fatal(err)
	}
	if ev := backendtest.NextEvent(t, w, 5*time.Second); ev.Item.Revision != rev {
		t.Fatalf("event rev %d, want %d", ev.Item.Revision, rev)
	}
}

// TestChangeTableEmptiedByCrash: the change table is unlogged, so crash
// recovery empties it. A backend opened afterwards starts its change
// stream after the sequence's last revision and delivers the next write
// at once, instead of waiting at a gap over the lost revisions.
func TestChangeTableEmptiedByCrash(t *testing.T) {
	url := testservice.PostgresDB(t)
	cfg := testConfig(url, "")
	cfg.GapTimeout = time.Minute
	ctx := backendtest.Context(t)
	first := open(t, cfg)
	var last int64
	for i := range 50 {
		rev, err := first.Put(ctx, backend.Item{Key: fmt.Appendf(nil, "/crash/%d", i), Value: []byte("v")})
		if err != nil {
			t.Fatal(err)
		}
		last = rev
	}
	first.Close()

	c := connect(t, url)
	var persistence string
	if err := c.QueryRow(ctx, `SELECT relpersistence::text FROM pg_class WHERE relname = 'sallyport_events'`).Scan(&persistence); err != nil {
		t.Fatal(err)
	}
	if persistence != "u" {
		t.Fatalf("sallyport_events persistence %q, want unlogged (u)", persistence)
	}
	// What crash recovery does to an unlogged table.
	if _, err := c.Exec(ctx, `TRUNCATE sallyport_events`); err != nil {
		t.Fatal(err)
	}

	b := open(t, cfg)
	w := backendtest.Watch(t, b, "/crash/")
	rev, err := b.Put(ctx, backend.Item{Key: []byte("/crash/after"), Value: []byte("v")})
	if err != nil {
		t.Fatal(err)
	}
	if rev <= last {
		t.Fatalf("revision %d after the crash, want above %d", rev, last)
	}
	if ev := backendtest.NextEvent(t, w, 5*time.Second); ev.Type != backend.OpPut || ev.Item.Revision != rev {
		t.Fatalf("event %v rev %d, want put rev %d", ev.Type, ev.Item.Revision, rev)
	}
	// The data itself is logged: every item written before survives.
	res, err := b.GetRange(ctx, []byte("/crash/"), backend.RangeEnd([]byte("/crash/")), 100)
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Items) != 51 {
		t.Fatalf("%d items, want 51", len(res.Items))
	}
}

// TestExampleFlow runs the steps of Example on a real database.
func TestExampleFlow(t *testing.T) {
	b := open(t, &postgres.Config{ConnString: testservice.PostgresDB(t), Schema: "cluster1"})
	w := backendtest.Watch(t, b, "/nodes/")
	rev, err := b.Put(backendtest.Context(t), backend.Item{
		Key:     backend.Key("nodes", "node-1"),
		Value:   []byte(`{"addr":"10.0.0.1:3022"}`),
		Expires: time.Now().Add(time.Minute),
	})
	if err != nil {
		t.Fatal(err)
	}
	ev := backendtest.NextEvent(t, w, 5*time.Second)
	if got := fmt.Sprint(ev.Type, " ", string(ev.Item.Key), " ", ev.Item.Revision == rev); got != "put /nodes/node-1 true" {
		t.Fatalf("example prints %q", got)
	}
}

// TestConcurrentInstances: two instances write concurrently (so
// transactions commit out of revision order); a third instance's watcher
// gets every write exactly once, in increasing revision order.
func TestConcurrentInstances(t *testing.T) {
	url := testservice.PostgresDB(t)
	a := open(t, testConfig(url, ""))
	b := open(t, testConfig(url, ""))
	c := open(t, testConfig(url, ""))
	w, err := c.NewWatcher(backendtest.Context(t), backend.Watch{Prefixes: [][]byte{[]byte("/ci/")}, QueueSize: 10000})
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	if ev := backendtest.NextEvent(t, w, 5*time.Second); ev.Type != backend.OpInit {
		t.Fatal(ev.Type)
	}
	const perWriter = 150
	ctx := backendtest.Context(t)
	errc := make(chan error, 8)
	for i, inst := range []backend.Backend{a, b, a, b, a, b, a, b} {
		go func() {
			for j := range perWriter {
				if _, err := inst.Put(ctx, backend.Item{Key: fmt.Appendf(nil, "/ci/%d/%d", i, j)}); err != nil {
					errc <- err
					return
				}
			}
			errc <- nil
		}()
	}
	for range 8 {
		if err := <-errc; err != nil {
			t.Fatal(err)
		}
	}
	seen := map[string]bool{}
	var last int64
	for len(seen) < 8*perWriter {
		ev := backendtest.NextEvent(t, w, 10*time.Second)
		if ev.Item.Revision <= last {
			t.Fatalf("revision %d after %d", ev.Item.Revision, last)
		}
		last = ev.Item.Revision
		if seen[string(ev.Item.Key)] {
			t.Fatalf("%q delivered twice", ev.Item.Key)
		}
		seen[string(ev.Item.Key)] = true
	}
}

// TestSweepBatches: expired items are deleted in batches of SweepBatch,
// each batch one revision, with a delete event per item.
func TestSweepBatches(t *testing.T) {
	url := testservice.PostgresDB(t)
	cfg := testConfig(url, "")
	cfg.SweepBatch = 10
	cfg.SweepInterval = time.Hour // swept by hand below
	b := open(t, cfg)
	ctx := backendtest.Context(t)
	exp := time.Now().Add(50 * time.Millisecond)
	for i := range 25 {
		if _, err := b.Put(ctx, backend.Item{Key: fmt.Appendf(nil, "/sw/%02d", i), Expires: exp}); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := b.Put(ctx, backend.Item{Key: []byte("/sw/keep")}); err != nil {
		t.Fatal(err)
	}
	w := backendtest.Watch(t, b, "/sw/")
	time.Sleep(time.Until(exp) + 20*time.Millisecond)
	// Expired items are invisible before the sweep.
	res, err := b.GetRange(ctx, []byte("/sw/"), backend.RangeEnd([]byte("/sw/")), 0)
	if err != nil || len(res.Items) != 1 {
		t.Fatalf("range before the sweep: %d items, %v", len(res.Items), err)
	}
	if _, err := b.Update(ctx, backend.Item{Key: []byte("/sw/00")}); !errors.Is(err, backend.ErrNotFound) {
		t.Fatalf("update of an expired item: %v", err)
	}
	var counts []int64
	for {
		n, err := b.Sweep(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if n == 0 {
			break
		}
		counts = append(counts, n)
	}
	if fmt.Sprint(counts) != "[10 10 5]" {
		t.Fatalf("sweep batches %v, want [10 10 5]", counts)
	}
	revs := map[int64]int{}
	for range 25 {
		ev := backendtest.NextEvent(t, w, 5*time.Second)
		if ev.Type != backend.OpDelete {
			t.Fatalf("event %v %q, want delete", ev.Type, ev.Item.Key)
		}
		revs[ev.Item.Revision]++
	}
	if len(revs) != 3 {
		t.Fatalf("delete events over %d revisions, want 3 (one per batch): %v", len(revs), revs)
	}
	// A new item at an expired key's place is a plain create.
	if _, err := b.Create(ctx, backend.Item{Key: []byte("/sw/00"), Value: []byte("new")}); err != nil {
		t.Fatal(err)
	}
}
