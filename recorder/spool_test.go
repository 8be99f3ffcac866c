package recorder_test

import (
	"bytes"
	"compress/gzip"
	"context"
	"errors"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/sallyport/sallyport/recorder"
	"github.com/sallyport/sallyport/recorder/file"
)

func TestMain(m *testing.M) {
	if dir := os.Getenv(crashChildEnv); dir != "" {
		crashChild(dir) // never returns
	}
	goleak.VerifyTestMain(m)
}

// testLogger writes the spool's log to the test log.
func testLogger(t testing.TB) *slog.Logger {
	return slog.New(slog.NewTextHandler(tWriter{t}, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

type tWriter struct{ t testing.TB }

func (w tWriter) Write(p []byte) (int, error) {
	w.t.Helper()
	w.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}

func newFileStore(t testing.TB) *file.Store {
	t.Helper()
	s, err := file.Open(filepath.Join(t.TempDir(), "store"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// flakyStore fails Put and Stat while down is set.
type flakyStore struct {
	recorder.Store
	down  atomic.Bool
	puts  atomic.Int64
	block chan struct{} // if set, Put waits for it or ctx
}

var errDown = errors.New("flaky: storage is down")

func (f *flakyStore) Put(ctx context.Context, name string, r io.Reader, size int64) error {
	f.puts.Add(1)
	if f.block != nil {
		select {
		case <-f.block:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	if f.down.Load() {
		return errDown
	}
	return f.Store.Put(ctx, name, r, size)
}

func (f *flakyStore) Stat(ctx context.Context, name string) (recorder.ObjectInfo, error) {
	if f.down.Load() {
		return recorder.ObjectInfo{}, errDown
	}
	return f.Store.Stat(ctx, name)
}

func openSpool(t testing.TB, cfg recorder.Config) *recorder.Spool {
	t.Helper()
	if cfg.Dir == "" {
		cfg.Dir = filepath.Join(t.TempDir(), "spool")
	}
	if cfg.Logger == nil {
		cfg.Logger = testLogger(t)
	}
	sp, err := recorder.Open(context.Background(), &cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { sp.Close() })
	return sp
}

// readEvents reads a whole recording from the store.
func readEvents(t testing.TB, s recorder.Store, name string) (recorder.Header, []recorder.Event) {
	t.Helper()
	rc, err := s.Get(context.Background(), name)
	if err != nil {
		t.Fatalf("Get(%q): %v", name, err)
	}
	defer rc.Close()
	rd, err := recorder.NewReader(rc)
	if err != nil {
		t.Fatal(err)
	}
	var evs []recorder.Event
	for {
		e, err := rd.Next()
		if err == io.EOF {
			return rd.Header(), evs
		}
		if err != nil {
			t.Fatal(err)
		}
		evs = append(evs, e)
	}
}

func output(evs []recorder.Event) string {
	var b strings.Builder
	for _, e := range evs {
		if e.Type == recorder.EventOutput {
			b.WriteString(e.Data)
		}
	}
	return b.String()
}

func shutdown(t testing.TB, sp *recorder.Spool) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if err := sp.Shutdown(ctx); err != nil {
		t.Fatalf("Shutdown: %v (stats %+v)", err, sp.Stats())
	}
}

func TestRecordAndUpload(t *testing.T) {
	store := newFileStore(t)
	sp := openSpool(t, recorder.Config{Store: store})
	start := time.Date(2026, 11, 21, 8, 0, 0, 0, time.UTC)
	rec, err := sp.NewSession(context.Background(), recorder.Meta{
		ID: "s1", User: "alice", Login: "root", Node: "db-1", Start: start, Width: 100, Height: 30, Term: "xterm-256color",
	})
	if err != nil {
		t.Fatal(err)
	}
	if got, want := rec.Name(), "2026/11/21/s1.cast.gz"; got != want {
		t.Errorf("Name = %q, want %q", got, want)
	}
	io.WriteString(rec, "$ ls\r\n")
	if err := rec.Resize(120, 40); err != nil {
		t.Fatal(err)
	}
	io.WriteString(rec, "a b c\r\n\x1b[1mbold\x1b[0m \"q\" \\ é 日本\r\n")
	if err := rec.Mark("after ls"); err != nil {
		t.Fatal(err)
	}
	if err := rec.Close(); err != nil {
		t.Fatal(err)
	}
	if err := rec.Close(); !errors.Is(err, recorder.ErrClosed) {
		t.Errorf("second Close: %v; want ErrClosed", err)
	}
	if _, err := rec.Write([]byte("x")); !errors.Is(err, recorder.ErrClosed) {
		t.Errorf("Write after Close: %v; want ErrClosed", err)
	}
	shutdown(t, sp)

	hdr, evs := readEvents(t, store, rec.Name())
	if hdr.Version != 2 || hdr.Width != 100 || hdr.Height != 30 || hdr.Timestamp != start.Unix() || hdr.Env["TERM"] != "xterm-256color" {
		t.Errorf("header = %+v", hdr)
	}
	if hdr.Title != "alice@db-1 as root" {
		t.Errorf("title = %q", hdr.Title)
	}
	if m := hdr.Session; m == nil || m.ID != "s1" || m.User != "alice" || m.Login != "root" || m.Node != "db-1" || !m.Start.Equal(start) {
		t.Errorf("header session = %+v", hdr.Session)
	}
	want := "$ ls\r\na b c\r\n\x1b[1mbold\x1b[0m \"q\" \\ é 日本\r\n"
	if got := output(evs); got != want {
		t.Errorf("output = %q, want %q", got, want)
	}
	var types []string
	for _, e := range evs {
		types = append(types, e.Type)
	}
	if got := strings.Join(types, ""); got != "oromm" {
		t.Errorf("event types = %q, want output, resize, output, marker, end marker", got)
	}
	if evs[1].Data != "120x40" || evs[3].Data != "after ls" {
		t.Errorf("resize/marker data = %q, %q", evs[1].Data, evs[3].Data)
	}
	end, recovered, ok := recorder.ParseEndMarker(evs[len(evs)-1].Data)
	if !ok || recovered || end.Before(time.Now().Add(-time.Minute)) {
		t.Errorf("last event %+v is not a fresh end marker", evs[len(evs)-1])
	}
	for i := 1; i < len(evs); i++ {
		if evs[i].Time < evs[i-1].Time {
			t.Errorf("event %d time %v before event %d time %v", i, evs[i].Time, i-1, evs[i-1].Time)
		}
	}
	st := sp.Stats()
	if st.Uploaded != 1 || st.Pending != 0 || st.Active != 0 || st.DiskBytes != 0 || st.UploadFailures != 0 {
		t.Errorf("stats = %+v", st)
	}
}

func TestUTF8AcrossWrites(t *testing.T) {
	store := newFileStore(t)
	sp := openSpool(t, recorder.Config{Store: store, FlushDelay: time.Millisecond})
	tests := []struct {
		name   string
		writes []string
		want   string
	}{
		{"two-byte split", []string{"caf\xc3", "\xa9!"}, "café!"},
		{"four-byte split three ways", []string{"\xf0\x9f", "\x98", "\x80 ok"}, "😀 ok"},
		{"invalid byte", []string{"a\xffb"}, "a\uFFFDb"},
		{"truncated at close", []string{"end\xe6\x97"}, "end\uFFFD\uFFFD"},
		{"invalid continuation", []string{"\xe6", "x"}, "\uFFFDx"},
		{"lone continuation", []string{"\x80\x80"}, "\uFFFD\uFFFD"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			rec, err := sp.NewSession(context.Background(), recorder.Meta{})
			if err != nil {
				t.Fatal(err)
			}
			for _, w := range tc.writes {
				io.WriteString(rec, w)
				time.Sleep(5 * time.Millisecond) // let each write become its own event
			}
			if err := rec.Close(); err != nil {
				t.Fatal(err)
			}
			local := filepath.Join(t.TempDir(), "x")
			_ = local
			name := rec.Name()
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			waitFor(ctx, t, func() bool { _, err := store.Stat(ctx, name); return err == nil })
			_, evs := readEvents(t, store, name)
			if got := output(evs); got != tc.want {
				t.Errorf("output = %q, want %q", got, tc.want)
			}
		})
	}
}

func waitFor(ctx context.Context, t testing.TB, cond func() bool) {
	t.Helper()
	for !cond() {
		select {
		case <-ctx.Done():
			t.Fatal("condition not met in time")
		case <-time.After(5 * time.Millisecond):
		}
	}
}

func TestCoalescing(t *testing.T) {
	store := newFileStore(t)
	sp := openSpool(t, recorder.Config{Store: store, FlushDelay: 50 * time.Millisecond})
	rec, err := sp.NewSession(context.Background(), recorder.Meta{})
	if err != nil {
		t.Fatal(err)
	}
	var want strings.Builder
	for i := range 200 {
		s := strings.Repeat(string(rune('a'+i%26)), i%7+1)
		want.WriteString(s)
		io.WriteString(rec, s)
	}
	rec.Close()
	shutdown(t, sp)
	_, evs := readEvents(t, store, rec.Name())
	n := 0
	for _, e := range evs {
		if e.Type == recorder.EventOutput {
			n++
		}
	}
	if output(evs) != want.String() {
		t.Fatal("output differs from what was written")
	}
	if n > 20 {
		t.Errorf("200 quick writes became %d output events; want them coalesced into a few", n)
	}
}

func TestLargeOutputBoundedEvents(t *testing.T) {
	store := newFileStore(t)
	sp := openSpool(t, recorder.Config{Store: store, BufferSize: 64 << 10})
	rec, err := sp.NewSession(context.Background(), recorder.Meta{})
	if err != nil {
		t.Fatal(err)
	}
	chunk := bytes.Repeat([]byte("0123456789abcdefé\r\n"), 1000)
	var total int
	for range 200 {
		n, err := rec.Write(chunk)
		if err != nil || n != len(chunk) {
			t.Fatalf("Write = %d, %v", n, err)
		}
		total += n
	}
	rec.Close()
	shutdown(t, sp)
	_, evs := readEvents(t, store, rec.Name())
	got := output(evs)
	if len(got) != total || !strings.HasPrefix(got, string(chunk)) || !strings.HasSuffix(got, string(chunk)) || strings.ContainsRune(got, '\uFFFD') {
		t.Fatalf("output is %d bytes, want %d intact", len(got), total)
	}
	for _, e := range evs {
		if len(e.Data) > 256<<10 {
			t.Fatalf("an event holds %d bytes; events are bounded", len(e.Data))
		}
	}
}

func TestCheckpointMakesFileValid(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "spool")
	sp := openSpool(t, recorder.Config{Dir: dir, CheckpointInterval: 20 * time.Millisecond})
	rec, err := sp.NewSession(context.Background(), recorder.Meta{ID: "ck", Start: time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)})
	if err != nil {
		t.Fatal(err)
	}
	defer rec.Close()
	io.WriteString(rec, "checkpointed output\n")
	path := filepath.Join(dir, "active", "2026", "01", "02", "ck.cast.gz")
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	// Without Close, the interval alone makes the output durable and the
	// file a valid gzip stream.
	waitFor(ctx, t, func() bool {
		b, err := os.ReadFile(path)
		if err != nil {
			return false
		}
		zr, err := gzip.NewReader(bytes.NewReader(b))
		if err != nil {
			return false
		}
		plain, err := io.ReadAll(zr)
		return err == nil && bytes.Contains(plain, []byte("checkpointed output"))
	})
	io.WriteString(rec, "explicit\n")
	if err := rec.Checkpoint(); err != nil {
		t.Fatal(err)
	}
	b, _ := os.ReadFile(path)
	info, err := recorder.ReadInfo(bytes.NewReader(b))
	if err != nil {
		t.Fatal(err)
	}
	if info.OutputBytes != int64(len("checkpointed output\nexplicit\n")) {
		t.Errorf("after Checkpoint the file holds %d output bytes", info.OutputBytes)
	}
}

func TestStorageDownThenUp(t *testing.T) {
	store := &flakyStore{Store: newFileStore(t)}
	store.down.Store(true)
	sp := openSpool(t, recorder.Config{Store: store, RetryMin: 5 * time.Millisecond, RetryMax: 40 * time.Millisecond})
	var names []string
	for i := range 3 {
		rec, err := sp.NewSession(context.Background(), recorder.Meta{User: "u"})
		if err != nil {
			t.Fatal(err)
		}
		io.WriteString(rec, strings.Repeat("x", 1000*(i+1)))
		if err := rec.Close(); err != nil {
			t.Fatal(err)
		}
		names = append(names, rec.Name())
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	waitFor(ctx, t, func() bool { return sp.Stats().UploadFailures >= 6 })
	st := sp.Stats()
	if st.Pending != 3 || st.PendingBytes <= 0 || st.DiskBytes != st.PendingBytes || !strings.Contains(st.LastError, "storage is down") || st.LastErrorTime.IsZero() {
		t.Fatalf("while down: stats = %+v", st)
	}
	if got := sp.Pending(); len(got) != 3 {
		t.Fatalf("Pending = %q", got)
	}
	store.down.Store(false)
	shutdown(t, sp)
	for _, n := range names {
		if _, err := store.Stat(context.Background(), n); err != nil {
			t.Errorf("after storage returned, %s: %v", n, err)
		}
	}
	st = sp.Stats()
	if st.Uploaded != 3 || st.Pending != 0 || st.DiskBytes != 0 {
		t.Errorf("after: stats = %+v", st)
	}
}

func TestDiskBudget(t *testing.T) {
	tests := []struct {
		name       string
		policy     recorder.BudgetPolicy
		wantErr    error
		refused    int64
		overBudget int64
	}{
		{"refuse", recorder.BudgetRefuse, recorder.ErrBudgetExceeded, 1, 0},
		{"record local", recorder.BudgetRecordLocal, nil, 0, 1},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			store := &flakyStore{Store: newFileStore(t)}
			store.down.Store(true)
			sp := openSpool(t, recorder.Config{Store: store, DiskBudget: 100, OnBudgetExceeded: tc.policy, RetryMin: time.Millisecond, RetryMax: 5 * time.Millisecond})
			rec, err := sp.NewSession(context.Background(), recorder.Meta{})
			if err != nil {
				t.Fatal(err)
			}
			io.WriteString(rec, strings.Repeat("budget ", 100))
			rec.Close()
			rec2, err := sp.NewSession(context.Background(), recorder.Meta{})
			if !errors.Is(err, tc.wantErr) {
				t.Fatalf("NewSession over budget: %v; want %v", err, tc.wantErr)
			}
			if rec2 != nil {
				io.WriteString(rec2, "recorded past the budget")
				rec2.Close()
			}
			st := sp.Stats()
			if st.Refused != tc.refused || st.OverBudget != tc.overBudget {
				t.Errorf("stats = %+v", st)
			}
			store.down.Store(false)
			shutdown(t, sp)
			objs, err := store.List(context.Background(), "")
			if err != nil {
				t.Fatal(err)
			}
			if want := 2 - int(tc.refused); len(objs) != want {
				t.Errorf("store holds %d recordings, want %d", len(objs), want)
			}
		})
	}
}

func TestUploadConflict(t *testing.T) {
	start := time.Date(2026, 5, 6, 7, 8, 9, 0, time.UTC)
	tests := []struct {
		name          string
		existing      func(local []byte) []byte
		wantConflicts int64
		wantObjects   []string
	}{
		{"same size is the same upload", func(local []byte) []byte { return local }, 0, []string{"2026/05/06/c.cast.gz"}},
		{"different size kept, uploaded beside", func([]byte) []byte { return []byte("partial") }, 1, []string{"2026/05/06/c.cast.gz", "2026/05/06/c.conflict-1.cast.gz"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			fs := newFileStore(t)
			store := &flakyStore{Store: fs}
			store.down.Store(true)
			dir := filepath.Join(t.TempDir(), "spool")
			sp := openSpool(t, recorder.Config{Dir: dir, Store: store, RetryMin: time.Millisecond, RetryMax: 5 * time.Millisecond})
			rec, err := sp.NewSession(context.Background(), recorder.Meta{ID: "c", Start: start})
			if err != nil {
				t.Fatal(err)
			}
			io.WriteString(rec, "conflicting session")
			rec.Close()
			local, err := os.ReadFile(filepath.Join(dir, "ready", "2026", "05", "06", "c.cast.gz"))
			if err != nil {
				t.Fatal(err)
			}
			existing := tc.existing(local)
			if err := fs.Put(context.Background(), "2026/05/06/c.cast.gz", bytes.NewReader(existing), int64(len(existing))); err != nil {
				t.Fatal(err)
			}
			store.down.Store(false)
			shutdown(t, sp)
			objs, _ := fs.List(context.Background(), "")
			var names []string
			for _, o := range objs {
				names = append(names, o.Name)
			}
			if strings.Join(names, ",") != strings.Join(tc.wantObjects, ",") {
				t.Errorf("store holds %q, want %q", names, tc.wantObjects)
			}
			rc, _ := fs.Get(context.Background(), "2026/05/06/c.cast.gz")
			b, _ := io.ReadAll(rc)
			rc.Close()
			if !bytes.Equal(b, existing) {
				t.Error("the existing object was replaced")
			}
			if got := sp.Stats().Conflicts; got != tc.wantConflicts {
				t.Errorf("Conflicts = %d, want %d", got, tc.wantConflicts)
			}
		})
	}
}

func TestSpoolLocked(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "spool")
	openSpool(t, recorder.Config{Dir: dir})
	_, err := recorder.Open(context.Background(), &recorder.Config{Dir: dir})
	if !errors.Is(err, recorder.ErrLocked) {
		t.Fatalf("second Open of one directory: %v; want ErrLocked", err)
	}
}

func TestConfigValidation(t *testing.T) {
	tests := []struct {
		name string
		cfg  *recorder.Config
	}{
		{"dir is a file", &recorder.Config{Dir: "/dev/null"}},
		{"negative interval", &recorder.Config{Dir: t.TempDir(), CheckpointInterval: -1}},
		{"bad policy", &recorder.Config{Dir: t.TempDir(), OnBudgetExceeded: 7}},
		{"bad level", &recorder.Config{Dir: t.TempDir(), CompressionLevel: 42}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			sp, err := recorder.Open(context.Background(), tc.cfg)
			if err == nil {
				sp.Close()
				t.Fatal("Open succeeded")
			}
		})
	}
}

func TestCloseFinishesActiveAndReopenUploads(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "spool")
	store := newFileStore(t)
	blocked := &flakyStore{Store: store, block: make(chan struct{})}
	sp := openSpool(t, recorder.Config{Dir: dir, Store: blocked})
	rec, err := sp.NewSession(context.Background(), recorder.Meta{})
	if err != nil {
		t.Fatal(err)
	}
	io.WriteString(rec, "still running at close")
	done := make(chan error, 1)
	go func() { done <- sp.Close() }()
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Close hangs on a blocked upload")
	}
	if err := sp.Close(); !errors.Is(err, recorder.ErrClosed) {
		t.Errorf("second Close: %v; want ErrClosed", err)
	}
	if _, err := sp.NewSession(context.Background(), recorder.Meta{}); !errors.Is(err, recorder.ErrClosed) {
		t.Errorf("NewSession after Close: %v; want ErrClosed", err)
	}
	if _, err := rec.Write([]byte("x")); !errors.Is(err, recorder.ErrClosed) {
		t.Errorf("Write after the spool closed: %v", err)
	}
	if _, err := store.Stat(context.Background(), rec.Name()); !errors.Is(err, recorder.ErrNotExist) {
		t.Fatalf("canceled upload left an object: %v", err)
	}
	sp2 := openSpool(t, recorder.Config{Dir: dir, Store: store})
	shutdown(t, sp2)
	_, evs := readEvents(t, store, rec.Name())
	if output(evs) != "still running at close" {
		t.Errorf("output = %q", output(evs))
	}
}

func TestShutdownWaitsForOwnersThenTimesOut(t *testing.T) {
	store := newFileStore(t)
	sp := openSpool(t, recorder.Config{Store: store})
	rec, err := sp.NewSession(context.Background(), recorder.Meta{})
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		time.Sleep(50 * time.Millisecond)
		io.WriteString(rec, "closed by its owner")
		rec.Close()
	}()
	shutdown(t, sp)
	wg.Wait()
	if _, err := store.Stat(context.Background(), rec.Name()); err != nil {
		t.Fatalf("Shutdown returned before the owner's recording was uploaded: %v", err)
	}

	sp2 := openSpool(t, recorder.Config{Store: &flakyStore{Store: store, block: make(chan struct{})}})
	rec2, _ := sp2.NewSession(context.Background(), recorder.Meta{})
	rec2.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	if err := sp2.Shutdown(ctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Shutdown with a stuck upload: %v; want DeadlineExceeded", err)
	}
}

func TestNewSessionMetaValidation(t *testing.T) {
	sp := openSpool(t, recorder.Config{})
	tests := []struct {
		name string
		meta recorder.Meta
		ok   bool
	}{
		{"defaults", recorder.Meta{}, true},
		{"uuid", recorder.Meta{ID: "0f8e2c1a-7d3b-4a51-9f0e-1c2d3e4f5a6b"}, true},
		{"slash", recorder.Meta{ID: "a/b"}, false},
		{"dot dot", recorder.Meta{ID: ".."}, false},
		{"space", recorder.Meta{ID: "a b"}, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			rec, err := sp.NewSession(context.Background(), tc.meta)
			if (err == nil) != tc.ok {
				t.Fatalf("NewSession(%+v) error = %v, want ok=%v", tc.meta, err, tc.ok)
			}
			if rec != nil {
				m := rec.Meta()
				if m.Width != 80 || m.Height != 24 || m.ID == "" || m.Start.IsZero() {
					t.Errorf("defaults not applied: %+v", m)
				}
				rec.Close()
			}
		})
	}
	// A second recording of the same session ID is refused.
	r1, err := sp.NewSession(context.Background(), recorder.Meta{ID: "same", Start: time.Now()})
	if err != nil {
		t.Fatal(err)
	}
	defer r1.Close()
	if _, err := sp.NewSession(context.Background(), recorder.Meta{ID: "same", Start: time.Now()}); !errors.Is(err, recorder.ErrExists) {
		t.Errorf("duplicate session: %v; want ErrExists", err)
	}
	// Also once the first is finished and waits for upload (no store).
	r1.Close()
	if _, err := sp.NewSession(context.Background(), recorder.Meta{ID: "same", Start: time.Now()}); !errors.Is(err, recorder.ErrExists) {
		t.Errorf("session recorded again while the first waits: %v; want ErrExists", err)
	}
}

func TestQueuedFileVanished(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "spool")
	store := &flakyStore{Store: newFileStore(t)}
	store.down.Store(true)
	sp := openSpool(t, recorder.Config{Dir: dir, Store: store, RetryMin: 400 * time.Millisecond, RetryMax: 400 * time.Millisecond})
	rec, err := sp.NewSession(context.Background(), recorder.Meta{ID: "gone", Start: time.Date(2026, 3, 4, 0, 0, 0, 0, time.UTC)})
	if err != nil {
		t.Fatal(err)
	}
	rec.Close()
	// Remove the file between two attempts (the next is 200-400ms away).
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	waitFor(ctx, t, func() bool { return sp.Stats().UploadFailures >= 1 })
	if err := os.Remove(filepath.Join(dir, "ready", "2026", "03", "04", "gone.cast.gz")); err != nil {
		t.Fatal(err)
	}
	store.down.Store(false)
	shutdown(t, sp)
	st := sp.Stats()
	if st.Pending != 0 || st.DiskBytes != 0 || !strings.Contains(st.LastError, "vanished") {
		t.Errorf("stats = %+v", st)
	}
}
