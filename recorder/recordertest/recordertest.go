package recordertest

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"io"
	"io/fs"
	"net"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sallyport/sallyport/recorder"
)

// Options tunes the suite. The zero value runs everything with defaults.
type Options struct {
	// LargeSize is the size of the large objects the suite puts (the
	// Large subtest and large cases of others): it should take the
	// driver's multipart or chunked path. Zero means 20 MiB; negative
	// skips the large cases (say why in the caller).
	LargeSize int64
	// Concurrency is how many goroutines race to Put one name in the
	// ConcurrentPut subtest. Zero means 8.
	Concurrency int
	// Timeout bounds each subtest's store calls. Zero means 2 minutes.
	Timeout time.Duration
}

// Run runs the conformance suite with default Options.
func Run(t *testing.T, open func(t testing.TB) recorder.Store) {
	t.Helper()
	RunOptions(t, open, Options{})
}

// RunOptions runs the conformance suite: each case is a subtest of t that
// opens its own store with open.
func RunOptions(t *testing.T, open func(t testing.TB) recorder.Store, opts Options) {
	t.Helper()
	if opts.LargeSize == 0 {
		opts.LargeSize = 20 << 20
	}
	if opts.Concurrency <= 0 {
		opts.Concurrency = 8
	}
	if opts.Timeout <= 0 {
		opts.Timeout = 2 * time.Minute
	}
	cases := []struct {
		name string
		fn   func(*testing.T, *env)
	}{
		{"PutGetStat", testPutGetStat},
		{"EmptyObject", testEmptyObject},
		{"NamesWithSlashes", testNamesWithSlashes},
		{"PutExisting", testPutExisting},
		{"NotExist", testNotExist},
		{"List", testList},
		{"Delete", testDelete},
		{"ReaderFailsMidway", testReaderFails},
		{"ReaderShort", testReaderShort},
		{"ReaderLong", testReaderLong},
		{"ConcurrentPut", testConcurrentPut},
		{"Large", testLarge},
		{"ContextCanceledBefore", testContextCanceledBefore},
		{"ContextCanceledDuringPut", testContextCanceledDuring},
		{"InvalidNames", testInvalidNames},
		{"Close", testClose},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if c.name == "Large" && opts.LargeSize < 0 {
				t.Skip("recordertest: Large disabled by Options.LargeSize < 0")
			}
			e := newEnv(t, open, opts)
			c.fn(t, e)
		})
	}
}

// env is one subtest's store, prefix and context.
type env struct {
	s      recorder.Store
	prefix string
	opts   Options
	ctx    context.Context
	closed bool
}

func newEnv(t *testing.T, open func(testing.TB) recorder.Store, opts Options) *env {
	t.Helper()
	s := open(t)
	if s == nil {
		t.Fatal("recordertest: open returned a nil store")
	}
	var rb [6]byte
	if _, err := rand.Read(rb[:]); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), opts.Timeout)
	e := &env{s: s, prefix: "rt-" + hex.EncodeToString(rb[:]) + "/", opts: opts, ctx: ctx}
	t.Cleanup(func() {
		defer cancel()
		if e.closed {
			return
		}
		// Remove what the subtest left, then close.
		cctx, ccancel := context.WithTimeout(context.Background(), time.Minute)
		defer ccancel()
		if objs, err := s.List(cctx, e.prefix); err == nil {
			for _, o := range objs {
				_ = s.Delete(cctx, o.Name)
			}
		}
		if err := s.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	return e
}

func (e *env) name(n string) string { return e.prefix + n }

// put stores data and fails the test on error.
func (e *env) put(t *testing.T, name string, data []byte) {
	t.Helper()
	if err := e.s.Put(e.ctx, name, bytes.NewReader(data), int64(len(data))); err != nil {
		t.Fatalf("Put(%q, %d bytes): %v", name, len(data), err)
	}
}

// get reads a whole object.
func (e *env) get(t *testing.T, name string) []byte {
	t.Helper()
	rc, err := e.s.Get(e.ctx, name)
	if err != nil {
		t.Fatalf("Get(%q): %v", name, err)
	}
	defer rc.Close()
	b, err := io.ReadAll(rc)
	if err != nil {
		t.Fatalf("Get(%q): read: %v", name, err)
	}
	return b
}

// wantAbsent checks that name is not visible through Stat, Get or List.
func (e *env) wantAbsent(t *testing.T, name string) {
	t.Helper()
	if info, err := e.s.Stat(e.ctx, name); !errors.Is(err, recorder.ErrNotExist) {
		t.Errorf("Stat(%q) = %+v, %v; want ErrNotExist", name, info, err)
	}
	if rc, err := e.s.Get(e.ctx, name); !errors.Is(err, recorder.ErrNotExist) {
		if err == nil {
			rc.Close()
		}
		t.Errorf("Get(%q) error = %v; want ErrNotExist", name, err)
	}
	objs, err := e.s.List(e.ctx, e.prefix)
	if err != nil {
		t.Fatalf("List(%q): %v", e.prefix, err)
	}
	for _, o := range objs {
		if o.Name == name {
			t.Errorf("List(%q) shows %q (%d bytes); want it absent", e.prefix, name, o.Size)
		}
	}
}

// call is one Store method applied to a name.
type call struct {
	method string
	do     func() error
}

// calls returns a call of every Store method with ctx on name (List: on
// the subtest's prefix); Put stores one byte.
func (e *env) calls(ctx context.Context, name string) []call {
	return []call{
		{"Put", func() error { return e.s.Put(ctx, name, bytes.NewReader([]byte("x")), 1) }},
		{"Get", func() error {
			rc, err := e.s.Get(ctx, name)
			if err == nil {
				rc.Close()
			}
			return err
		}},
		{"Stat", func() error { _, err := e.s.Stat(ctx, name); return err }},
		{"List", func() error { _, err := e.s.List(ctx, e.prefix); return err }},
		{"Delete", func() error { return e.s.Delete(ctx, name) }},
	}
}

func pattern(n int, seed byte) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(i*7) + seed
	}
	return b
}

// readers are the ways a test hands data to Put: a bytes.Reader (an
// io.Seeker and io.ReaderAt a driver may read at offsets), the same at an
// offset past bytes that are no part of the object, and a plain reader
// the driver has to stream.
var readers = []struct {
	name string
	r    func(data []byte) io.Reader
}{
	{"seekable", func(d []byte) io.Reader { return bytes.NewReader(d) }},
	{"seekable at an offset", func(d []byte) io.Reader {
		r := bytes.NewReader(append([]byte("skipped"), d...))
		r.Seek(7, io.SeekStart)
		return r
	}},
	{"plain", func(d []byte) io.Reader { return PlainReader(bytes.NewReader(d)) }},
}

func testPutGetStat(t *testing.T, e *env) {
	sizes := []struct {
		name string
		size int
	}{{"empty", 0}, {"one byte", 1}, {"4099 bytes", 4099}, {"100 KiB", 100 << 10}}
	for _, rd := range readers {
		for _, sz := range sizes {
			t.Run(rd.name+"/"+sz.name, func(t *testing.T) {
				name := e.name(strings.ReplaceAll(rd.name+"/"+sz.name, " ", "-") + ".cast.gz")
				data := pattern(sz.size, byte(sz.size))
				before := time.Now()
				if err := e.s.Put(e.ctx, name, rd.r(data), int64(len(data))); err != nil {
					t.Fatalf("Put(%q, %d bytes): %v", name, len(data), err)
				}
				if got := e.get(t, name); !bytes.Equal(got, data) {
					t.Fatalf("Get returned %d bytes, want the %d bytes put", len(got), len(data))
				}
				e.wantInfo(t, name, int64(len(data)), before)
			})
		}
	}
}

// wantInfo checks what Stat says of an object put at about the time
// before.
func (e *env) wantInfo(t *testing.T, name string, size int64, before time.Time) {
	t.Helper()
	info, err := e.s.Stat(e.ctx, name)
	if err != nil {
		t.Fatalf("Stat: %v", err)
	}
	if info.Name != name || info.Size != size {
		t.Errorf("Stat = {Name:%q Size:%d}, want {Name:%q Size:%d}", info.Name, info.Size, name, size)
	}
	if info.Modified.IsZero() {
		t.Error("Stat: Modified is zero")
	} else if d := info.Modified.Sub(before); d < -time.Hour || d > time.Hour {
		t.Errorf("Stat: Modified %v is more than an hour from the time of Put %v", info.Modified, before)
	}
}

func testEmptyObject(t *testing.T, e *env) {
	name := e.name("empty")
	e.put(t, name, nil)
	if got := e.get(t, name); len(got) != 0 {
		t.Fatalf("Get returned %d bytes, want 0", len(got))
	}
	info, err := e.s.Stat(e.ctx, name)
	if err != nil || info.Size != 0 {
		t.Fatalf("Stat = %+v, %v; want size 0", info, err)
	}
}

func testNamesWithSlashes(t *testing.T, e *env) {
	names := []string{
		"2026/11/21/0f8e2c1a-7d3b-4a51-9f0e-1c2d3e4f5a6b.cast.gz",
		"a/b/c/d/e/f/g/deep.cast.gz",
		"with-dash_and_underscore.and.dots/x~1.cast.gz",
	}
	for i, n := range names {
		e.put(t, e.name(n), pattern(100+i, byte(i)))
	}
	for i, n := range names {
		if got := e.get(t, e.name(n)); !bytes.Equal(got, pattern(100+i, byte(i))) {
			t.Errorf("Get(%q) returned other bytes than put", n)
		}
	}
	// A "directory" that only exists as a prefix is not an object.
	e.wantAbsent(t, e.name("2026/11"))
	e.wantAbsent(t, e.name("a/b/c"))
}

func testPutExisting(t *testing.T, e *env) {
	name := e.name("dup.cast.gz")
	first := pattern(1000, 3)
	e.put(t, name, first)
	tests := []struct {
		name string
		data []byte
	}{
		{"same size", pattern(1000, 9)},
		{"shorter", pattern(10, 9)},
		{"longer", pattern(5000, 9)},
		{"empty", nil},
	}
	if e.opts.LargeSize > 0 {
		tests = append(tests, struct {
			name string
			data []byte
		}{"LargeSize", pattern(int(e.opts.LargeSize), 9)})
	}
	for _, tc := range tests {
		// A plain reader: the driver cannot learn the size by seeking.
		err := e.s.Put(e.ctx, name, PlainReader(bytes.NewReader(tc.data)), int64(len(tc.data)))
		if !errors.Is(err, recorder.ErrExists) {
			t.Errorf("second Put (%s) error = %v; want ErrExists", tc.name, err)
		}
		if got := e.get(t, name); !bytes.Equal(got, first) {
			t.Fatalf("after second Put (%s) the object has %d bytes differing from the first Put", tc.name, len(got))
		}
	}
}

func testNotExist(t *testing.T, e *env) {
	name := e.name("never-put")
	_, err := e.s.Stat(e.ctx, name)
	if !errors.Is(err, recorder.ErrNotExist) || !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("Stat error = %v; want ErrNotExist", err)
	}
	rc, err := e.s.Get(e.ctx, name)
	if err == nil {
		rc.Close()
	}
	if !errors.Is(err, recorder.ErrNotExist) {
		t.Errorf("Get error = %v; want ErrNotExist", err)
	}
	if err := e.s.Delete(e.ctx, name); !errors.Is(err, recorder.ErrNotExist) {
		t.Errorf("Delete error = %v; want ErrNotExist", err)
	}
	objs, err := e.s.List(e.ctx, e.name("nothing-here/"))
	if err != nil || len(objs) != 0 {
		t.Errorf("List of an empty prefix = %v, %v; want no objects, nil", objs, err)
	}
}

func testList(t *testing.T, e *env) {
	sizes := map[string]int{
		"ab.cast":    1,
		"abc/d":      2,
		"ab/x":       3,
		"ab/y/z":     4,
		"a/x":        5,
		"b":          6,
		"abd.cast":   7,
		"zz/top/end": 8,
	}
	for n, sz := range sizes {
		e.put(t, e.name(n), pattern(sz, 0))
	}
	tests := []struct {
		name   string
		prefix string
		want   []string
	}{
		{"all", "", []string{"a/x", "ab.cast", "ab/x", "ab/y/z", "abc/d", "abd.cast", "b", "zz/top/end"}},
		{"string prefix, not directory", "ab", []string{"ab.cast", "ab/x", "ab/y/z", "abc/d", "abd.cast"}},
		{"directory prefix", "ab/", []string{"ab/x", "ab/y/z"}},
		{"partial element", "ab/y/", []string{"ab/y/z"}},
		{"exact object", "abd.cast", []string{"abd.cast"}},
		{"dot before slash", "ab.", []string{"ab.cast"}},
		{"no match", "c", nil},
		{"deep", "zz/to", []string{"zz/top/end"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			objs, err := e.s.List(e.ctx, e.name(tc.prefix))
			if err != nil {
				t.Fatalf("List(%q): %v", tc.prefix, err)
			}
			var got []string
			for _, o := range objs {
				rel, ok := strings.CutPrefix(o.Name, e.prefix)
				if !ok {
					t.Errorf("List(%q) returned %q outside the prefix", tc.prefix, o.Name)
					continue
				}
				got = append(got, rel)
				if want := sizes[rel]; o.Size != int64(want) {
					t.Errorf("List: %q has size %d, want %d", rel, o.Size, want)
				}
				if o.Modified.IsZero() {
					t.Errorf("List: %q has no modification time", rel)
				}
			}
			if !sort.StringsAreSorted(got) {
				t.Errorf("List(%q) not sorted: %q", tc.prefix, got)
			}
			if strings.Join(got, "|") != strings.Join(tc.want, "|") {
				t.Errorf("List(%q) = %q, want %q", tc.prefix, got, tc.want)
			}
		})
	}
}

func testDelete(t *testing.T, e *env) {
	name := e.name("dir/to-delete")
	keep := e.name("dir/keep")
	e.put(t, name, pattern(10, 1))
	e.put(t, keep, pattern(11, 1))
	if err := e.s.Delete(e.ctx, name); err != nil {
		t.Fatalf("Delete: %v", err)
	}
	e.wantAbsent(t, name)
	if got := e.get(t, keep); !bytes.Equal(got, pattern(11, 1)) {
		t.Error("Delete of one object changed its neighbour")
	}
	if err := e.s.Delete(e.ctx, name); !errors.Is(err, recorder.ErrNotExist) {
		t.Errorf("second Delete error = %v; want ErrNotExist", err)
	}
	// The name is free again.
	e.put(t, name, pattern(12, 2))
	if got := e.get(t, name); !bytes.Equal(got, pattern(12, 2)) {
		t.Error("Put after Delete: Get returned other bytes")
	}
}

// failingReader yields n bytes, then fails with err.
type failingReader struct {
	n   int
	err error
}

var errReader = errors.New("recordertest: reader failed on purpose")

func (r *failingReader) Read(p []byte) (int, error) {
	if r.n == 0 {
		return 0, r.err
	}
	if len(p) > r.n {
		p = p[:r.n]
	}
	for i := range p {
		p[i] = 'x'
	}
	r.n -= len(p)
	return len(p), nil
}

func testReaderFails(t *testing.T, e *env) {
	tests := []struct {
		name string
		n    int
		size int64
	}{
		{"at start", 0, 1000},
		{"mid-way", 500, 1000},
		{"mid-way large", 6 << 20, 12 << 20},
	}
	if l := e.opts.LargeSize; l > 0 {
		tests = append(tests, struct {
			name string
			n    int
			size int64
		}{"mid-way LargeSize", int(l / 2), l})
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			name := e.name("fail/" + strings.ReplaceAll(tc.name, " ", "-"))
			err := e.s.Put(e.ctx, name, &failingReader{n: tc.n, err: errReader}, tc.size)
			if err == nil {
				t.Fatal("Put with a failing reader returned nil")
			}
			e.wantAbsent(t, name)
			// Nothing left behind blocks a later Put.
			e.put(t, name, pattern(20, 4))
			if got := e.get(t, name); !bytes.Equal(got, pattern(20, 4)) {
				t.Error("Put after a failed Put: Get returned other bytes")
			}
		})
	}
}

// sizeCase is a reader that holds have bytes given to a Put of size.
type sizeCase struct {
	name string
	have int
	size int64
}

func testReaderShort(t *testing.T, e *env) {
	tests := []sizeCase{
		{"one byte short", 999, 1000},
		{"empty reader", 0, 10},
		{"half", 512 << 10, 1 << 20},
	}
	if l := e.opts.LargeSize; l > 0 {
		tests = append(tests, sizeCase{"LargeSize one byte short", int(l - 1), l})
	}
	testWrongSize(t, e, "short", tests)
}

func testReaderLong(t *testing.T, e *env) {
	tests := []sizeCase{
		{"one byte long", 1001, 1000},
		{"size zero", 10, 0},
		{"double", 2 << 20, 1 << 20},
	}
	if l := e.opts.LargeSize; l > 0 {
		tests = append(tests, sizeCase{"LargeSize one byte long", int(l + 1), l})
	}
	testWrongSize(t, e, "long", tests)
}

// testWrongSize puts readers of the wrong length, seekable and plain: each
// Put fails, leaves nothing, and the name is free afterwards. A driver
// that stores exactly size bytes and stops reading violates the contract
// too: the source was longer.
func testWrongSize(t *testing.T, e *env, dir string, tests []sizeCase) {
	for _, tc := range tests {
		data := pattern(tc.have, 5)
		for _, rd := range []struct {
			name string
			r    io.Reader
		}{{"seekable", bytes.NewReader(data)}, {"plain", PlainReader(bytes.NewReader(data))}} {
			t.Run(tc.name+"/"+rd.name, func(t *testing.T) {
				name := e.name(dir + "/" + strings.ReplaceAll(tc.name+"-"+rd.name, " ", "-"))
				if err := e.s.Put(e.ctx, name, rd.r, tc.size); err == nil {
					t.Fatalf("Put of %d bytes declared as %d returned nil", tc.have, tc.size)
				}
				e.wantAbsent(t, name)
				e.put(t, name, pattern(20, 4))
				if got := e.get(t, name); !bytes.Equal(got, pattern(20, 4)) {
					t.Error("Put after a failed Put: Get returned other bytes")
				}
			})
		}
	}
}

func testConcurrentPut(t *testing.T, e *env) {
	name := e.name("race.cast.gz")
	n := e.opts.Concurrency
	datas := make([][]byte, n)
	for i := range datas {
		// Different sizes and contents, some large enough for chunked uploads.
		size := 64<<10 + i*4099
		if i%3 == 0 {
			size = 3 << 20
		}
		datas[i] = pattern(size, byte(i+1))
	}
	errs := make([]error, n)
	var wg sync.WaitGroup
	start := make(chan struct{})
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			errs[i] = e.s.Put(e.ctx, name, bytes.NewReader(datas[i]), int64(len(datas[i])))
		}()
	}
	close(start)
	wg.Wait()
	// At most one Put may succeed and the losers fail. A loser normally
	// gets ErrExists; a networked store may also fail one with a transport
	// error (a server that rejects the losing upload may reset the
	// connection before the client reads the answer), which the contract
	// allows: Put may fail. What must hold is that the stored object is
	// exactly one contender's whole data.
	winner, exists, other := -1, 0, 0
	for i, err := range errs {
		switch {
		case err == nil:
			if winner >= 0 {
				t.Errorf("Put %d and Put %d both succeeded", winner, i)
			}
			winner = i
		case errors.Is(err, recorder.ErrExists):
			exists++
		default:
			other++
			t.Logf("Put %d failed without ErrExists (allowed for a losing Put): %v", i, err)
		}
	}
	if exists == 0 {
		t.Errorf("no losing Put returned ErrExists (%d other errors)", other)
	}
	got := e.get(t, name)
	if winner < 0 {
		// The winner's answer was lost in transit; its object must still be whole.
		for i := range datas {
			if bytes.Equal(got, datas[i]) {
				winner = i
			}
		}
		if winner < 0 {
			t.Fatalf("stored object (%d bytes) is none of the contenders' data", len(got))
		}
		t.Logf("no Put reported success; the object is Put %d's, whole", winner)
	}
	if !bytes.Equal(got, datas[winner]) {
		t.Fatalf("object has %d bytes, not the %d bytes of the winning Put %d", len(got), len(datas[winner]), winner)
	}
	info, err := e.s.Stat(e.ctx, name)
	if err != nil || info.Size != int64(len(datas[winner])) {
		t.Fatalf("Stat = %+v, %v; want size %d", info, err, len(datas[winner]))
	}
}

// testLarge puts an object of Options.LargeSize, large enough for a
// driver's multipart or chunked path, from each kind of reader.
func testLarge(t *testing.T, e *env) {
	size := e.opts.LargeSize
	data := RandomData(int(size), uint64(size))
	for _, rd := range readers {
		t.Run(rd.name, func(t *testing.T) {
			name := e.name("large/" + strings.ReplaceAll(rd.name, " ", "-") + ".cast.gz")
			before := time.Now()
			if err := e.s.Put(e.ctx, name, rd.r(data), size); err != nil {
				t.Fatalf("Put of %d bytes: %v", size, err)
			}
			e.wantInfo(t, name, size, before)
			if got := e.get(t, name); !bytes.Equal(got, data) {
				t.Fatalf("Get returned %d bytes (sha256 %x), want %d bytes (sha256 %x)", len(got), sha256.Sum256(got), size, sha256.Sum256(data))
			}
		})
	}
}

func testContextCanceledBefore(t *testing.T, e *env) {
	ctx, cancel := context.WithCancel(e.ctx)
	cancel()
	name := e.name("canceled-before")
	data := pattern(100, 1)
	if err := e.s.Put(ctx, name, bytes.NewReader(data), int64(len(data))); !errors.Is(err, context.Canceled) {
		t.Errorf("Put with a canceled context: %v; want context.Canceled", err)
	}
	e.wantAbsent(t, name)
	e.put(t, name, data)
	for _, c := range e.calls(ctx, name) {
		if err := c.do(); !errors.Is(err, context.Canceled) {
			t.Errorf("%s with a canceled context: %v; want context.Canceled", c.method, err)
		}
	}
	if got := e.get(t, name); !bytes.Equal(got, data) {
		t.Error("object changed by calls with a canceled context")
	}
}

// cancelingReader cancels its context after the first read, then keeps
// yielding data slowly, so the driver has to notice the cancellation.
type cancelingReader struct {
	cancel context.CancelFunc
	n      int64
	reads  int
}

func (r *cancelingReader) Read(p []byte) (int, error) {
	if r.n <= 0 {
		return 0, io.EOF
	}
	r.reads++
	if r.reads == 2 {
		r.cancel()
	} else if r.reads > 2 {
		time.Sleep(time.Millisecond)
	}
	if len(p) > 32<<10 {
		p = p[:32<<10]
	}
	if int64(len(p)) > r.n {
		p = p[:r.n]
	}
	for i := range p {
		p[i] = 'c'
	}
	r.n -= int64(len(p))
	return len(p), nil
}

func testContextCanceledDuring(t *testing.T, e *env) {
	sizes := []struct {
		name string
		size int64
	}{
		{"small", 100 << 10},
		{"large", 12 << 20},
	}
	if l := e.opts.LargeSize; l > 0 {
		sizes = append(sizes, struct {
			name string
			size int64
		}{"LargeSize", l})
	}
	for _, tc := range sizes {
		t.Run(tc.name, func(t *testing.T) {
			ctx, cancel := context.WithCancel(e.ctx)
			defer cancel()
			name := e.name("canceled-during/" + tc.name)
			done := make(chan error, 1)
			go func() {
				done <- e.s.Put(ctx, name, &cancelingReader{cancel: cancel, n: tc.size}, tc.size)
			}()
			select {
			case err := <-done:
				if !errors.Is(err, context.Canceled) {
					t.Errorf("Put canceled mid-way: %v; want context.Canceled", err)
				}
			case <-time.After(e.opts.Timeout):
				t.Fatal("Put did not return after its context was canceled")
			}
			e.wantAbsent(t, name)
		})
	}
}

func testInvalidNames(t *testing.T, e *env) {
	names := []string{
		"",
		".",
		"..",
		"/" + e.name("absolute"),
		e.name("a/../b"),
		e.name("../escape"),
		e.name("a//b"),
		e.name("./a"),
		e.name("dir/"),
	}
	for _, name := range names {
		for _, c := range e.calls(e.ctx, name) {
			if err := c.do(); err == nil && c.method != "List" {
				t.Errorf("%s(%q) succeeded", c.method, name)
			}
		}
	}
	objs, err := e.s.List(e.ctx, e.prefix)
	if err != nil || len(objs) != 0 {
		t.Errorf("after Puts of invalid names List = %v, %v; want nothing", objs, err)
	}
}

func testClose(t *testing.T, e *env) {
	e.put(t, e.name("before-close"), []byte("x"))
	e.closed = true
	// Clean up with the store still open.
	_ = e.s.Delete(e.ctx, e.name("before-close"))
	if err := e.s.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	for _, c := range e.calls(e.ctx, e.name("after-close")) {
		if err := c.do(); !errors.Is(err, net.ErrClosed) {
			t.Errorf("%s after Close: %v; want an error wrapping net.ErrClosed", c.method, err)
		}
	}
	done := make(chan error, 1)
	go func() { done <- e.s.Close() }()
	select {
	case err := <-done:
		if err != nil && !errors.Is(err, net.ErrClosed) {
			t.Errorf("second Close: %v; want nil or an error wrapping net.ErrClosed", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("second Close hangs")
	}
}
