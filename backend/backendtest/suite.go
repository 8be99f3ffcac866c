package backendtest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/sallyport/sallyport/backend"
)

// NewFunc returns a new, empty backend for one test. The suite closes it
// at the end of the test (closing twice is part of the contract); the
// function registers with t.Cleanup whatever else it must release.
type NewFunc func(t testing.TB) backend.Backend

// Capabilities describes what a driver can do beyond the interface's
// minimum and how fast it does it. The zero value describes a driver with
// a single instance, expiries stored to the millisecond and delete events
// for expired items within five seconds.
type Capabilities struct {
	// Reopen opens a second backend over the same stored state as b:
	// another process on the same file, or another client of the same
	// database. The suite checks that writes through one instance are
	// read and watched through the other. Nil means the driver has no
	// such mode: the suite reports it in the subtest
	// "Unsupported/MultiInstance" (skipped, with the reason logged).
	Reopen func(t testing.TB, b backend.Backend) backend.Backend

	// ExpiryEventDelay is the longest the driver may take to deliver
	// the delete event of an expired item (its sweep interval plus a
	// margin). Zero means 5s.
	ExpiryEventDelay time.Duration

	// ExpiryPrecision is how far a stored expiry may differ from the one
	// written (etcd leases count whole seconds). The suite's items expire
	// at least twice this far in the future. Zero means 1ms.
	ExpiryPrecision time.Duration

	// WatchWrites is the number of concurrent writes in the "no event
	// lost" watch test. Zero means 10,000 (2,000 under the race
	// detector).
	WatchWrites int
}

func (c Capabilities) expiryEventDelay() time.Duration {
	if c.ExpiryEventDelay > 0 {
		return c.ExpiryEventDelay
	}
	return 5 * time.Second
}

func (c Capabilities) expiryPrecision() time.Duration {
	if c.ExpiryPrecision > 0 {
		return c.ExpiryPrecision
	}
	return time.Millisecond
}

// ttl is how far in the future the suite's expiring items expire.
func (c Capabilities) ttl() time.Duration {
	return max(400*time.Millisecond, 2*c.expiryPrecision())
}

func (c Capabilities) watchWrites() int {
	if c.WatchWrites > 0 {
		return c.WatchWrites
	}
	if raceEnabled {
		return 2000
	}
	return 10000
}

// scale returns n, or n/div under the race detector.
func scale(t testing.TB, n, div int) int {
	if !raceEnabled {
		return n
	}
	t.Logf("race detector on: %d instead of %d", n/div, n)
	return n / div
}

// Run runs the conformance suite against the backends newBackend makes.
// caps, at most one, describes the driver; none means the zero
// Capabilities. Every test gets its own backend.
func Run(t *testing.T, newBackend NewFunc, caps ...Capabilities) {
	if len(caps) > 1 {
		t.Fatalf("backendtest: Run takes at most one Capabilities, got %d", len(caps))
	}
	var c Capabilities
	if len(caps) == 1 {
		c = caps[0]
	}
	s := &suite{newBackend: newBackend, caps: c}
	tests := []struct {
		name string
		fn   func(t *testing.T)
	}{
		{"CRUD", s.testCRUD},
		{"Revisions", s.testRevisions},
		{"InvalidArguments", s.testInvalidArguments},
		{"SizeLimits", s.testSizeLimits},
		{"BinaryKeys", s.testBinaryKeys},
		{"LargeValues", s.testLargeValues},
		{"Range", s.testRange},
		{"DeleteRange", s.testDeleteRange},
		{"CompareAndSwap", s.testCompareAndSwap},
		{"ConcurrentIncrements", s.testConcurrentIncrements},
		{"AtomicWriteConditions", s.testAtomicWriteConditions},
		{"AtomicWriteLimit", s.testAtomicWriteLimit},
		{"AtomicTransfers", s.testAtomicTransfers},
		{"Expiry", s.testExpiry},
		{"KeepAlive", s.testKeepAlive},
		{"WatchInit", s.testWatchInit},
		{"WatchPrefixes", s.testWatchPrefixes},
		{"WatchEvents", s.testWatchEvents},
		{"WatchNoEventLost", s.testWatchNoEventLost},
		{"WatchSameKeyWriters", s.testWatchSameKeyWriters},
		{"WatchFellBehind", s.testWatchFellBehind},
		{"WatchClose", s.testWatchClose},
		{"ContextCancellation", s.testContextCancellation},
		{"Close", s.testClose},
		{"MultiInstance", s.testMultiInstance},
	}
	for _, tt := range tests {
		t.Run(tt.name, tt.fn)
	}
}

type suite struct {
	newBackend NewFunc
	caps       Capabilities
}

// open returns a new backend that is closed at the end of the test.
func (s *suite) open(t testing.TB) backend.Backend {
	t.Helper()
	b := s.newBackend(t)
	if b == nil {
		t.Fatal("backendtest: NewFunc returned nil")
	}
	t.Cleanup(func() { b.Close() })
	return b
}

// ctx returns a context for one test, cancelled at its end.
func ctx(t testing.TB) context.Context { return Context(t) }

func item(key, value string) backend.Item {
	return backend.Item{Key: []byte(key), Value: []byte(value)}
}

func wantErr(t testing.TB, what string, err, want error) {
	t.Helper()
	if !errors.Is(err, want) {
		t.Fatalf("%s: got error %v, want %v", what, err, want)
	}
}

func noErr(t testing.TB, what string, err error) {
	t.Helper()
	if err != nil {
		t.Fatalf("%s: %v", what, err)
	}
}

// mustGet returns the item at key, failing the test on error.
func mustGet(t testing.TB, b backend.Backend, key []byte) backend.Item {
	t.Helper()
	it, err := b.Get(ctx(t), key)
	if err != nil {
		t.Fatalf("get %q: %v", key, err)
	}
	return it
}

func wantValue(t testing.TB, b backend.Backend, key, value string) backend.Item {
	t.Helper()
	it := mustGet(t, b, []byte(key))
	if string(it.Value) != value {
		t.Fatalf("get %q: value %q, want %q", key, it.Value, value)
	}
	if !bytes.Equal(it.Key, []byte(key)) {
		t.Fatalf("get %q: item key %q", key, it.Key)
	}
	return it
}

func wantAbsent(t testing.TB, b backend.Backend, key []byte) {
	t.Helper()
	_, err := b.Get(ctx(t), key)
	wantErr(t, fmt.Sprintf("get %q", key), err, backend.ErrNotFound)
}

// all reads every item in [start, end) page by page with the given limit.
func all(t testing.TB, b backend.Backend, start, end []byte, limit int) []backend.Item {
	t.Helper()
	var items []backend.Item
	for pages := 0; ; pages++ {
		if pages > 100000 {
			t.Fatal("range did not terminate")
		}
		res, err := b.GetRange(ctx(t), start, end, limit)
		noErr(t, "get range", err)
		if limit > 0 && len(res.Items) > limit {
			t.Fatalf("get range: %d items, limit %d", len(res.Items), limit)
		}
		items = append(items, res.Items...)
		if res.Next == nil {
			return items
		}
		if bytes.Compare(res.Next, start) <= 0 {
			t.Fatalf("get range: next %q does not advance past start %q", res.Next, start)
		}
		start = res.Next
	}
}

func (s *suite) testCRUD(t *testing.T) {
	b := s.open(t)
	c := ctx(t)
	k := "/crud/a"

	wantAbsent(t, b, []byte(k))
	rev1, err := b.Create(c, item(k, "one"))
	noErr(t, "create", err)
	if rev1 <= 0 {
		t.Fatalf("create returned revision %d, want > 0", rev1)
	}
	it := wantValue(t, b, k, "one")
	if it.Revision != rev1 {
		t.Fatalf("get after create: revision %d, want %d", it.Revision, rev1)
	}
	if !it.Expires.IsZero() {
		t.Fatalf("item without expiry reads back with expiry %v", it.Expires)
	}
	_, err = b.Create(c, item(k, "two"))
	wantErr(t, "create existing", err, backend.ErrAlreadyExists)
	wantValue(t, b, k, "one")

	rev2, err := b.Update(c, item(k, "two"))
	noErr(t, "update", err)
	if rev2 <= rev1 {
		t.Fatalf("update revision %d not after %d", rev2, rev1)
	}
	if it := wantValue(t, b, k, "two"); it.Revision != rev2 {
		t.Fatalf("revision after update %d, want %d", it.Revision, rev2)
	}
	_, err = b.Update(c, item("/crud/missing", "x"))
	wantErr(t, "update missing", err, backend.ErrNotFound)
	wantAbsent(t, b, []byte("/crud/missing"))

	rev3, err := b.Put(c, item(k, "three"))
	noErr(t, "put existing", err)
	if rev3 <= rev2 {
		t.Fatalf("put revision %d not after %d", rev3, rev2)
	}
	wantValue(t, b, k, "three")
	_, err = b.Put(c, item("/crud/b", "bee"))
	noErr(t, "put new", err)
	wantValue(t, b, "/crud/b", "bee")

	// nil and empty values are the same thing.
	_, err = b.Put(c, backend.Item{Key: []byte("/crud/empty")})
	noErr(t, "put nil value", err)
	if it := mustGet(t, b, []byte("/crud/empty")); len(it.Value) != 0 {
		t.Fatalf("nil value reads back as %q", it.Value)
	}

	// The store owns its copy: changing the caller's slices changes nothing.
	in := item("/crud/owned", "original")
	_, err = b.Put(c, in)
	noErr(t, "put", err)
	copy(in.Value, "XXXXXXXX")
	got := wantValue(t, b, "/crud/owned", "original")
	copy(got.Value, "YYYYYYYY")
	wantValue(t, b, "/crud/owned", "original")

	noErr(t, "delete", b.Delete(c, []byte(k)))
	wantAbsent(t, b, []byte(k))
	wantErr(t, "delete missing", b.Delete(c, []byte(k)), backend.ErrNotFound)
	_, err = b.Update(c, item(k, "four"))
	wantErr(t, "update deleted", err, backend.ErrNotFound)
	_, err = b.Create(c, item(k, "five"))
	noErr(t, "create after delete", err)
	wantValue(t, b, k, "five")
}

func (s *suite) testRevisions(t *testing.T) {
	b := s.open(t)
	c := ctx(t)
	var last int64
	step := func(what string, rev int64, err error) {
		t.Helper()
		noErr(t, what, err)
		if rev <= last {
			t.Fatalf("%s: revision %d not after %d", what, rev, last)
		}
		last = rev
	}
	rev, err := b.Create(c, item("/rev/a", "1"))
	step("create", rev, err)
	rev, err = b.Put(c, item("/rev/b", "1"))
	step("put", rev, err)
	rev, err = b.Update(c, item("/rev/a", "2"))
	step("update", rev, err)
	rev, err = b.CompareAndSwap(c, backend.Item{Revision: rev}, item("/rev/a", "3"))
	step("compare and swap", rev, err)
	rev, err = b.KeepAlive(c, []byte("/rev/b"), time.Now().Add(time.Hour))
	step("keep alive", rev, err)
	rev, err = b.AtomicWrite(c, []backend.ConditionalAction{
		{Key: []byte("/rev/a"), Action: backend.ActionPut, Item: backend.Item{Value: []byte("4")}},
		{Key: []byte("/rev/c"), Action: backend.ActionPut, Item: backend.Item{Value: []byte("1")}},
	})
	step("atomic write", rev, err)
	for _, k := range []string{"/rev/a", "/rev/c"} {
		if it := mustGet(t, b, []byte(k)); it.Revision != rev {
			t.Fatalf("%s: revision %d, want the atomic write's %d", k, it.Revision, rev)
		}
	}
	// Revisions of unrelated keys are global: a write to one key moves past
	// the revisions of all others.
	if it := mustGet(t, b, []byte("/rev/b")); it.Revision >= rev {
		t.Fatalf("/rev/b revision %d, want < %d", it.Revision, rev)
	}
}

func (s *suite) testInvalidArguments(t *testing.T) {
	b := s.open(t)
	c := ctx(t)
	_, err := b.Put(c, item("/inv/x", "x"))
	noErr(t, "put", err)
	tests := []struct {
		name string
		fn   func() error
	}{
		{"get empty key", func() error { _, err := b.Get(c, nil); return err }},
		{"create empty key", func() error { _, err := b.Create(c, item("", "x")); return err }},
		{"put empty key", func() error { _, err := b.Put(c, item("", "x")); return err }},
		{"update empty key", func() error { _, err := b.Update(c, item("", "x")); return err }},
		{"delete empty key", func() error { return b.Delete(c, []byte{}) }},
		{"keep alive empty key", func() error { _, err := b.KeepAlive(c, nil, time.Time{}); return err }},
		{"compare and swap empty key", func() error {
			_, err := b.CompareAndSwap(c, item("", "x"), item("", "y"))
			return err
		}},
		{"compare and swap key mismatch", func() error {
			_, err := b.CompareAndSwap(c, item("/inv/y", "x"), item("/inv/x", "y"))
			return err
		}},
		{"range end before start", func() error { _, err := b.GetRange(c, []byte("/b"), []byte("/a"), 0); return err }},
		{"delete range end before start", func() error { _, err := b.DeleteRange(c, []byte("/b"), []byte("/a")); return err }},
		{"atomic write without actions", func() error { _, err := b.AtomicWrite(c, nil); return err }},
		{"atomic write same key twice", func() error {
			_, err := b.AtomicWrite(c, []backend.ConditionalAction{
				{Key: []byte("/inv/x"), Action: backend.ActionDelete},
				{Key: []byte("/inv/x"), Action: backend.ActionPut},
			})
			return err
		}},
		{"atomic write empty key", func() error {
			_, err := b.AtomicWrite(c, []backend.ConditionalAction{{Action: backend.ActionPut}})
			return err
		}},
		{"atomic write unknown action", func() error {
			_, err := b.AtomicWrite(c, []backend.ConditionalAction{{Key: []byte("/inv/x"), Action: 99}})
			return err
		}},
		{"atomic write unknown condition", func() error {
			_, err := b.AtomicWrite(c, []backend.ConditionalAction{{Key: []byte("/inv/x"), Condition: backend.Condition{Kind: 99}}})
			return err
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			wantErr(t, tt.name, tt.fn(), backend.ErrInvalid)
		})
	}
	wantValue(t, b, "/inv/x", "x")
}

func (s *suite) testSizeLimits(t *testing.T) {
	b := s.open(t)
	c := ctx(t)
	long := bytes.Repeat([]byte{'k'}, backend.MaxKeySize+1)
	big := make([]byte, backend.MaxValueSize+1)
	tests := []struct {
		name string
		fn   func() error
	}{
		{"get long key", func() error { _, err := b.Get(c, long); return err }},
		{"put long key", func() error { _, err := b.Put(c, backend.Item{Key: long}); return err }},
		{"create long key", func() error { _, err := b.Create(c, backend.Item{Key: long}); return err }},
		{"delete long key", func() error { return b.Delete(c, long) }},
		{"range long bound", func() error { _, err := b.GetRange(c, long, nil, 0); return err }},
		{"put big value", func() error { _, err := b.Put(c, backend.Item{Key: []byte("/big"), Value: big}); return err }},
		{"update big value", func() error { _, err := b.Update(c, backend.Item{Key: []byte("/big"), Value: big}); return err }},
		{"compare and swap big value", func() error {
			_, err := b.CompareAndSwap(c, backend.Item{Revision: 1}, backend.Item{Key: []byte("/big"), Value: big})
			return err
		}},
		{"atomic write big value", func() error {
			_, err := b.AtomicWrite(c, []backend.ConditionalAction{{Key: []byte("/big"), Action: backend.ActionPut, Item: backend.Item{Value: big}}})
			return err
		}},
		{"atomic write long key", func() error {
			_, err := b.AtomicWrite(c, []backend.ConditionalAction{{Key: long, Action: backend.ActionPut}})
			return err
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			wantErr(t, tt.name, tt.fn(), backend.ErrTooLarge)
		})
	}
	wantAbsent(t, b, []byte("/big"))

	// The limits themselves are accepted.
	maxKey := bytes.Repeat([]byte{0xfe}, backend.MaxKeySize)
	_, err := b.Put(c, backend.Item{Key: maxKey, Value: []byte("v")})
	noErr(t, "put key of MaxKeySize", err)
	if it := mustGet(t, b, maxKey); string(it.Value) != "v" {
		t.Fatalf("key of MaxKeySize reads back %q", it.Value)
	}
}

func (s *suite) testBinaryKeys(t *testing.T) {
	b := s.open(t)
	c := ctx(t)
	rng := rand.New(rand.NewPCG(1, 2))
	prefix := []byte{'/', 'b', 0xff, 0x00}
	var keys [][]byte
	// Keys that differ only by 0x00 / 0xff bytes and by length.
	for _, suffix := range [][]byte{{}, {0x00}, {0x00, 0x00}, {0x01}, {0xff}, {0xff, 0x00}, {0xff, 0xff}, {'a', 0x00, 'b'}} {
		keys = append(keys, append(bytes.Clone(prefix), suffix...))
	}
	for i := 0; i < 40; i++ {
		k := make([]byte, 1024)
		for j := range k {
			k[j] = byte(rng.IntN(256))
		}
		k[rng.IntN(1020)+4] = 0x00
		k[rng.IntN(1020)+4] = 0xff
		copy(k, prefix)
		keys = append(keys, k)
	}
	for i, k := range keys {
		v := make([]byte, 64)
		for j := range v {
			v[j] = byte(i + j) // values carry arbitrary bytes too
		}
		_, err := b.Put(c, backend.Item{Key: k, Value: v})
		noErr(t, fmt.Sprintf("put binary key %d", i), err)
	}
	// Neighbours outside the prefix.
	for _, k := range [][]byte{{'/', 'b', 0xfe, 0xff}, {'/', 'b', 0xff, 0x01}} {
		_, err := b.Put(c, backend.Item{Key: k, Value: []byte("out")})
		noErr(t, "put neighbour", err)
	}
	for i, k := range keys {
		it := mustGet(t, b, k)
		if !bytes.Equal(it.Key, k) || len(it.Value) != 64 || it.Value[0] != byte(i) || it.Value[63] != byte(i+63) {
			t.Fatalf("binary key %d reads back key %x value %x", i, it.Key, it.Value)
		}
	}
	got := all(t, b, prefix, backend.RangeEnd(prefix), 7)
	want := make([][]byte, len(keys))
	copy(want, keys)
	sortBytes(want)
	if len(got) != len(want) {
		t.Fatalf("prefix range returned %d items, want %d", len(got), len(want))
	}
	for i := range want {
		if !bytes.Equal(got[i].Key, want[i]) {
			t.Fatalf("prefix range item %d: key %x, want %x (keys must sort as bytes)", i, got[i].Key, want[i])
		}
	}
	n, err := b.DeleteRange(c, prefix, backend.RangeEnd(prefix))
	noErr(t, "delete binary range", err)
	if n != int64(len(keys)) {
		t.Fatalf("delete range removed %d, want %d", n, len(keys))
	}
	rest := all(t, b, []byte{'/'}, nil, 0)
	if len(rest) != 2 {
		t.Fatalf("%d items left after delete range, want the 2 neighbours", len(rest))
	}
}

func sortBytes(keys [][]byte) {
	for i := 1; i < len(keys); i++ {
		for j := i; j > 0 && bytes.Compare(keys[j-1], keys[j]) > 0; j-- {
			keys[j-1], keys[j] = keys[j], keys[j-1]
		}
	}
}

func (s *suite) testLargeValues(t *testing.T) {
	b := s.open(t)
	c := ctx(t)
	v := make([]byte, backend.MaxValueSize)
	for i := range v {
		v[i] = byte(i * 7)
	}
	w, err := b.NewWatcher(c, backend.Watch{Prefixes: [][]byte{[]byte("/large/")}})
	noErr(t, "new watcher", err)
	defer w.Close()
	waitInit(t, w)
	_, err = b.Put(c, backend.Item{Key: []byte("/large/a"), Value: v})
	noErr(t, "put 1 MiB", err)
	if it := mustGet(t, b, []byte("/large/a")); !bytes.Equal(it.Value, v) {
		t.Fatalf("1 MiB value reads back as %d different bytes", len(it.Value))
	}
	ev := NextEvent(t, w, 10*time.Second)
	if ev.Type != backend.OpPut || !bytes.Equal(ev.Item.Value, v) {
		t.Fatalf("watch event for the 1 MiB value: %v with %d bytes", ev.Type, len(ev.Item.Value))
	}
	v2 := bytes.Repeat([]byte{0xab}, backend.MaxValueSize)
	_, err = b.CompareAndSwap(c, backend.Item{Value: v}, backend.Item{Key: []byte("/large/a"), Value: v2})
	noErr(t, "compare and swap on a 1 MiB value", err)
	if it := mustGet(t, b, []byte("/large/a")); !bytes.Equal(it.Value, v2) {
		t.Fatal("1 MiB compare and swap did not write")
	}
}

func (s *suite) testRange(t *testing.T) {
	b := s.open(t)
	c := ctx(t)
	const n = 1500
	putMany(t, b, "/range/k", n)
	_, err := b.Put(c, item("/range", "below"))
	noErr(t, "put", err)
	_, err = b.Put(c, item("/range0", "above"))
	noErr(t, "put", err)

	prefix := []byte("/range/")
	tests := []struct {
		name  string
		limit int
	}{
		{"limit 1", 1},
		{"limit 100", 100},
		{"limit 999", 999},
		{"default limit", 0},
		{"limit above count", n + 10},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if tt.limit == 1 && testing.Short() {
				t.Skip("1,500 single-item pages in -short mode")
			}
			got := all(t, b, prefix, backend.RangeEnd(prefix), tt.limit)
			checkSequence(t, got, "/range/k", n)
		})
	}
	t.Run("first page", func(t *testing.T) {
		res, err := b.GetRange(c, prefix, backend.RangeEnd(prefix), 0)
		noErr(t, "get range", err)
		if len(res.Items) != backend.DefaultRangeLimit {
			t.Fatalf("default limit gave %d items, want %d", len(res.Items), backend.DefaultRangeLimit)
		}
		if want := keyN("/range/k", backend.DefaultRangeLimit); !bytes.Equal(res.Next, want) {
			t.Fatalf("next = %q, want %q", res.Next, want)
		}
	})
	t.Run("exact fit", func(t *testing.T) {
		res, err := b.GetRange(c, prefix, backend.RangeEnd(prefix), n)
		noErr(t, "get range", err)
		if len(res.Items) != n || res.Next != nil {
			t.Fatalf("limit == count: %d items, next %q; want %d and nil", len(res.Items), res.Next, n)
		}
	})
	t.Run("bounds", func(t *testing.T) {
		got := all(t, b, keyN("/range/k", 10), keyN("/range/k", 20), 0)
		if len(got) != 10 || !bytes.Equal(got[0].Key, keyN("/range/k", 10)) || !bytes.Equal(got[9].Key, keyN("/range/k", 19)) {
			t.Fatalf("range [10, 20) returned %d items", len(got))
		}
		everything := all(t, b, []byte("/"), nil, 500)
		if len(everything) != n+2 {
			t.Fatalf("open-ended range returned %d items, want %d", len(everything), n+2)
		}
		none, err := b.GetRange(c, []byte("/zzz"), nil, 0)
		noErr(t, "empty range", err)
		if len(none.Items) != 0 || none.Next != nil {
			t.Fatalf("empty range returned %d items", len(none.Items))
		}
		same, err := b.GetRange(c, []byte("/range"), []byte("/range"), 0)
		noErr(t, "start == end", err)
		if len(same.Items) != 0 {
			t.Fatalf("range [k, k) returned %d items", len(same.Items))
		}
	})
}

func keyN(prefix string, i int) []byte { return fmt.Appendf(nil, "%s%06d", prefix, i) }

// putMany writes n items prefix000000.. with AtomicWrite batches.
func putMany(t testing.TB, b backend.Backend, prefix string, n int) {
	t.Helper()
	for i := 0; i < n; i += backend.MaxAtomicWriteActions {
		var batch []backend.ConditionalAction
		for j := i; j < n && j < i+backend.MaxAtomicWriteActions; j++ {
			batch = append(batch, backend.ConditionalAction{Key: keyN(prefix, j), Action: backend.ActionPut, Item: backend.Item{Value: []byte(strconv.Itoa(j))}})
		}
		_, err := b.AtomicWrite(ctx(t), batch)
		noErr(t, "atomic write batch", err)
	}
}

func checkSequence(t testing.TB, items []backend.Item, prefix string, n int) {
	t.Helper()
	if len(items) != n {
		t.Fatalf("got %d items, want %d", len(items), n)
	}
	for i, it := range items {
		if !bytes.Equal(it.Key, keyN(prefix, i)) || string(it.Value) != strconv.Itoa(i) {
			t.Fatalf("item %d is %q=%q", i, it.Key, it.Value)
		}
	}
}

func (s *suite) testDeleteRange(t *testing.T) {
	b := s.open(t)
	c := ctx(t)
	const n = 1200
	putMany(t, b, "/dr/k", n)
	for _, k := range []string{"/dr", "/dr0", "/dq/z"} {
		_, err := b.Put(c, item(k, "keep"))
		noErr(t, "put", err)
	}
	w, err := b.NewWatcher(c, backend.Watch{Prefixes: [][]byte{[]byte("/dr")}, QueueSize: 2 * n})
	noErr(t, "new watcher", err)
	defer w.Close()
	waitInit(t, w)

	deleted, err := b.DeleteRange(c, []byte("/dr/"), backend.RangeEnd([]byte("/dr/")))
	noErr(t, "delete range", err)
	if deleted != n {
		t.Fatalf("delete range removed %d, want %d", deleted, n)
	}
	if got := all(t, b, []byte("/dr/"), backend.RangeEnd([]byte("/dr/")), 0); len(got) != 0 {
		t.Fatalf("%d items left in the deleted range", len(got))
	}
	for _, k := range []string{"/dr", "/dr0", "/dq/z"} {
		wantValue(t, b, k, "keep")
	}
	seen := make(map[string]bool)
	for len(seen) < n {
		ev := NextEvent(t, w, 10*time.Second)
		if ev.Type != backend.OpDelete || !bytes.HasPrefix(ev.Item.Key, []byte("/dr/")) {
			t.Fatalf("unexpected event %v %q", ev.Type, ev.Item.Key)
		}
		if seen[string(ev.Item.Key)] {
			t.Fatalf("two delete events for %q", ev.Item.Key)
		}
		seen[string(ev.Item.Key)] = true
	}
	deleted, err = b.DeleteRange(c, []byte("/dr/"), backend.RangeEnd([]byte("/dr/")))
	noErr(t, "delete empty range", err)
	if deleted != 0 {
		t.Fatalf("delete of an empty range removed %d", deleted)
	}
	// nil end: everything from start on.
	deleted, err = b.DeleteRange(c, []byte("/dr"), nil)
	noErr(t, "delete open range", err)
	if deleted != 2 {
		t.Fatalf("open-ended delete removed %d, want 2", deleted)
	}
	wantValue(t, b, "/dq/z", "keep")
}

func (s *suite) testCompareAndSwap(t *testing.T) {
	b := s.open(t)
	c := ctx(t)
	k := "/cas/a"
	rev, err := b.Put(c, item(k, "v1"))
	noErr(t, "put", err)

	tests := []struct {
		name     string
		expected backend.Item
		wantErr  error
	}{
		{"stale revision", backend.Item{Revision: rev - 1}, backend.ErrCompareFailed},
		{"future revision", backend.Item{Revision: rev + 1000}, backend.ErrCompareFailed},
		{"wrong value", backend.Item{Value: []byte("v0")}, backend.ErrCompareFailed},
		{"empty value", backend.Item{}, backend.ErrCompareFailed},
		{"revision wins over value", backend.Item{Revision: rev + 1000, Value: []byte("v1")}, backend.ErrCompareFailed},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := b.CompareAndSwap(c, tt.expected, item(k, "never"))
			wantErr(t, tt.name, err, tt.wantErr)
			wantValue(t, b, k, "v1")
		})
	}

	rev2, err := b.CompareAndSwap(c, backend.Item{Key: []byte(k), Revision: rev}, item(k, "v2"))
	noErr(t, "compare and swap on revision", err)
	if rev2 <= rev {
		t.Fatalf("revision %d not after %d", rev2, rev)
	}
	if it := wantValue(t, b, k, "v2"); it.Revision != rev2 {
		t.Fatalf("revision %d, want %d", it.Revision, rev2)
	}
	_, err = b.CompareAndSwap(c, backend.Item{Revision: rev}, item(k, "v3"))
	wantErr(t, "compare and swap on a used revision", err, backend.ErrCompareFailed)

	_, err = b.CompareAndSwap(c, backend.Item{Value: []byte("v2")}, item(k, "v3"))
	noErr(t, "compare and swap on value", err)
	wantValue(t, b, k, "v3")

	_, err = b.CompareAndSwap(c, backend.Item{Value: []byte("x")}, item("/cas/missing", "y"))
	wantErr(t, "compare and swap on a missing key", err, backend.ErrCompareFailed)
	wantAbsent(t, b, []byte("/cas/missing"))

	// Empty value compares equal to an empty value.
	_, err = b.Put(c, item("/cas/empty", ""))
	noErr(t, "put", err)
	_, err = b.CompareAndSwap(c, backend.Item{}, item("/cas/empty", "filled"))
	noErr(t, "compare and swap on an empty value", err)
	wantValue(t, b, "/cas/empty", "filled")

	// A CAS may set an expiry.
	exp := time.Now().Add(time.Hour)
	_, err = b.CompareAndSwap(c, backend.Item{Value: []byte("filled")}, backend.Item{Key: []byte("/cas/empty"), Value: []byte("x"), Expires: exp})
	noErr(t, "compare and swap with expiry", err)
	s.wantExpires(t, mustGet(t, b, []byte("/cas/empty")), exp)
}

func (s *suite) wantExpires(t testing.TB, it backend.Item, want time.Time) {
	t.Helper()
	if it.Expires.IsZero() != want.IsZero() {
		t.Fatalf("%q expires %v, want %v", it.Key, it.Expires, want)
	}
	if d := it.Expires.Sub(want).Abs(); d > s.caps.expiryPrecision() {
		t.Fatalf("%q expires %v, want %v (off by %v)", it.Key, it.Expires, want, d)
	}
}

func (s *suite) testConcurrentIncrements(t *testing.T) {
	const workers = 16
	perWorker := scale(t, 25, 5)
	tests := []struct {
		name  string
		onRev bool
	}{
		{"on revision", true},
		{"on value", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b := s.open(t)
			c := ctx(t)
			key := []byte("/counter")
			_, err := b.Put(c, backend.Item{Key: key, Value: []byte("0")})
			noErr(t, "put", err)
			var wg sync.WaitGroup
			var conflicts atomic.Int64
			errs := make(chan error, workers)
			for w := 0; w < workers; w++ {
				wg.Add(1)
				go func() {
					defer wg.Done()
					for i := 0; i < perWorker; {
						cur, err := b.Get(c, key)
						if err != nil {
							errs <- err
							return
						}
						n, _ := strconv.Atoi(string(cur.Value))
						expected := backend.Item{Value: cur.Value}
						if tt.onRev {
							expected = backend.Item{Revision: cur.Revision}
						}
						_, err = b.CompareAndSwap(c, expected, backend.Item{Key: key, Value: []byte(strconv.Itoa(n + 1))})
						switch {
						case err == nil:
							i++
						case errors.Is(err, backend.ErrCompareFailed):
							conflicts.Add(1)
						default:
							errs <- err
							return
						}
					}
				}()
			}
			wg.Wait()
			close(errs)
			for err := range errs {
				t.Fatalf("increment: %v", err)
			}
			wantValue(t, b, string(key), strconv.Itoa(workers*perWorker))
			t.Logf("%d increments by %d goroutines, %d compare failures retried", workers*perWorker, workers, conflicts.Load())
		})
	}
}

func (s *suite) testAtomicWriteConditions(t *testing.T) {
	b := s.open(t)
	c := ctx(t)
	present := []byte("/aw/present")
	absent := []byte("/aw/absent")
	rev, err := b.Put(c, backend.Item{Key: present, Value: []byte("p")})
	noErr(t, "put", err)

	tests := []struct {
		name string
		key  []byte
		cond backend.Condition
		ok   bool
	}{
		{"whatever on present", present, backend.Condition{Kind: backend.Whatever}, true},
		{"whatever on absent", absent, backend.Condition{Kind: backend.Whatever}, true},
		{"exists on present", present, backend.Condition{Kind: backend.Exists}, true},
		{"exists on absent", absent, backend.Condition{Kind: backend.Exists}, false},
		{"not exists on present", present, backend.Condition{Kind: backend.NotExists}, false},
		{"not exists on absent", absent, backend.Condition{Kind: backend.NotExists}, true},
		{"revision matches", present, backend.Condition{Kind: backend.Revision, Revision: rev}, true},
		{"revision differs", present, backend.Condition{Kind: backend.Revision, Revision: rev + 1}, false},
		{"revision on absent", absent, backend.Condition{Kind: backend.Revision, Revision: rev}, false},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			target := fmt.Appendf(nil, "/aw/target%d", i)
			// The condition guards its key (ActionNone) and a put to
			// another key; both or neither happen.
			actions := []backend.ConditionalAction{
				{Key: []byte("/aw/first"), Action: backend.ActionPut, Item: backend.Item{Value: []byte(tt.name)}},
				{Key: tt.key, Condition: tt.cond, Action: backend.ActionNone},
				{Key: target, Condition: backend.Condition{Kind: backend.NotExists}, Action: backend.ActionPut, Item: backend.Item{Key: []byte("/ignored"), Value: []byte("t")}},
			}
			before := mustGetOrZero(t, b, []byte("/aw/first"))
			wrev, err := b.AtomicWrite(c, actions)
			if tt.ok {
				noErr(t, "atomic write", err)
				it := wantValue(t, b, string(target), "t")
				if it.Revision != wrev {
					t.Fatalf("target revision %d, want %d", it.Revision, wrev)
				}
				if first := wantValue(t, b, "/aw/first", tt.name); first.Revision != wrev {
					t.Fatalf("first revision %d, want %d", first.Revision, wrev)
				}
				wantAbsent(t, b, []byte("/ignored"))
				return
			}
			wantErr(t, "atomic write", err, backend.ErrCompareFailed)
			var ce *backend.ConditionError
			if !errors.As(err, &ce) {
				t.Fatalf("error %v is not a *backend.ConditionError", err)
			}
			if ce.Index != 1 || !bytes.Equal(ce.Key, tt.key) || ce.Kind != tt.cond.Kind {
				t.Fatalf("condition error names action %d %q %v, want 1 %q %v", ce.Index, ce.Key, ce.Kind, tt.key, tt.cond.Kind)
			}
			wantAbsent(t, b, target)
			if after := mustGetOrZero(t, b, []byte("/aw/first")); after.Revision != before.Revision {
				t.Fatal("a failed atomic write changed /aw/first")
			}
		})
	}
	t.Run("delete", func(t *testing.T) {
		_, err := b.Put(c, item("/aw/del", "x"))
		noErr(t, "put", err)
		_, err = b.AtomicWrite(c, []backend.ConditionalAction{
			{Key: []byte("/aw/del"), Condition: backend.Condition{Kind: backend.Exists}, Action: backend.ActionDelete},
			{Key: []byte("/aw/never-there"), Action: backend.ActionDelete},
		})
		noErr(t, "atomic delete", err)
		wantAbsent(t, b, []byte("/aw/del"))
		_, err = b.AtomicWrite(c, []backend.ConditionalAction{
			{Key: []byte("/aw/del"), Condition: backend.Condition{Kind: backend.Exists}, Action: backend.ActionDelete},
		})
		wantErr(t, "atomic delete of an absent key with Exists", err, backend.ErrCompareFailed)
	})
	t.Run("put with expiry", func(t *testing.T) {
		exp := time.Now().Add(time.Hour)
		_, err := b.AtomicWrite(c, []backend.ConditionalAction{
			{Key: []byte("/aw/exp"), Action: backend.ActionPut, Item: backend.Item{Value: []byte("e"), Expires: exp}},
		})
		noErr(t, "atomic put with expiry", err)
		s.wantExpires(t, mustGet(t, b, []byte("/aw/exp")), exp)
	})
}

func mustGetOrZero(t testing.TB, b backend.Backend, key []byte) backend.Item {
	t.Helper()
	it, err := b.Get(ctx(t), key)
	if err != nil && !errors.Is(err, backend.ErrNotFound) {
		t.Fatalf("get %q: %v", key, err)
	}
	return it
}

func (s *suite) testAtomicWriteLimit(t *testing.T) {
	b := s.open(t)
	c := ctx(t)
	batch := func(n int) []backend.ConditionalAction {
		var actions []backend.ConditionalAction
		for i := 0; i < n; i++ {
			actions = append(actions, backend.ConditionalAction{
				Key: keyN("/limit/", i), Condition: backend.Condition{Kind: backend.NotExists},
				Action: backend.ActionPut, Item: backend.Item{Value: []byte(strconv.Itoa(i))},
			})
		}
		return actions
	}
	_, err := b.AtomicWrite(c, batch(backend.MaxAtomicWriteActions+1))
	wantErr(t, "atomic write of 65 actions", err, backend.ErrTooLarge)
	if got := all(t, b, []byte("/limit/"), nil, 0); len(got) != 0 {
		t.Fatalf("a refused atomic write left %d items", len(got))
	}
	rev, err := b.AtomicWrite(c, batch(backend.MaxAtomicWriteActions))
	noErr(t, "atomic write of 64 actions", err)
	got := all(t, b, []byte("/limit/"), nil, 0)
	checkSequence(t, got, "/limit/", backend.MaxAtomicWriteActions)
	for _, it := range got {
		if it.Revision != rev {
			t.Fatalf("%q has revision %d, want %d", it.Key, it.Revision, rev)
		}
	}
	// The same batch again fails on its last condition and writes nothing.
	actions := batch(backend.MaxAtomicWriteActions)
	for i := range actions[:len(actions)-1] {
		actions[i].Condition = backend.Condition{Kind: backend.Exists}
	}
	_, err = b.AtomicWrite(c, actions)
	var ce *backend.ConditionError
	if !errors.As(err, &ce) || ce.Index != backend.MaxAtomicWriteActions-1 {
		t.Fatalf("atomic write failing on its last action: %v", err)
	}
	for _, it := range all(t, b, []byte("/limit/"), nil, 0) {
		if it.Revision != rev {
			t.Fatalf("a failed atomic write changed %q", it.Key)
		}
	}
}

func (s *suite) testAtomicTransfers(t *testing.T) {
	b := s.open(t)
	c := ctx(t)
	const accounts, workers, transfers, initial = 5, 8, 25, 1000
	key := func(i int) []byte { return fmt.Appendf(nil, "/bank/%d", i) }
	for i := 0; i < accounts; i++ {
		_, err := b.Put(c, backend.Item{Key: key(i), Value: []byte(strconv.Itoa(initial))})
		noErr(t, "put", err)
	}
	var wg sync.WaitGroup
	var conflicts atomic.Int64
	errs := make(chan error, workers)
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			rng := rand.New(rand.NewPCG(uint64(w), 7))
			for done := 0; done < transfers; {
				from, to := rng.IntN(accounts), rng.IntN(accounts-1)
				if to >= from {
					to++
				}
				a, err := b.Get(c, key(from))
				if err != nil {
					errs <- err
					return
				}
				z, err := b.Get(c, key(to))
				if err != nil {
					errs <- err
					return
				}
				av, _ := strconv.Atoi(string(a.Value))
				zv, _ := strconv.Atoi(string(z.Value))
				amount := rng.IntN(50) + 1
				_, err = b.AtomicWrite(c, []backend.ConditionalAction{
					{Key: key(from), Condition: backend.Condition{Kind: backend.Revision, Revision: a.Revision}, Action: backend.ActionPut, Item: backend.Item{Value: []byte(strconv.Itoa(av - amount))}},
					{Key: key(to), Condition: backend.Condition{Kind: backend.Revision, Revision: z.Revision}, Action: backend.ActionPut, Item: backend.Item{Value: []byte(strconv.Itoa(zv + amount))}},
				})
				switch {
				case err == nil:
					done++
				case errors.Is(err, backend.ErrCompareFailed):
					conflicts.Add(1)
				default:
					errs <- err
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatalf("transfer: %v", err)
	}
	total := 0
	items := all(t, b, []byte("/bank/"), nil, 0)
	if len(items) != accounts {
		t.Fatalf("%d accounts, want %d", len(items), accounts)
	}
	for _, it := range items {
		v, err := strconv.Atoi(string(it.Value))
		noErr(t, "parse balance", err)
		total += v
	}
	if total != accounts*initial {
		t.Fatalf("total after %d transfers is %d, want %d", workers*transfers, total, accounts*initial)
	}
	t.Logf("%d transfers, %d conflicts retried, total conserved", workers*transfers, conflicts.Load())
}

func (s *suite) testExpiry(t *testing.T) {
	b := s.open(t)
	c := ctx(t)
	w, err := b.NewWatcher(c, backend.Watch{Prefixes: [][]byte{[]byte("/exp/")}})
	noErr(t, "new watcher", err)
	defer w.Close()
	waitInit(t, w)

	exp := time.Now().Add(s.caps.ttl())
	_, err = b.Put(c, backend.Item{Key: []byte("/exp/a"), Value: []byte("a"), Expires: exp})
	noErr(t, "put expiring", err)
	_, err = b.Put(c, item("/exp/z", "stays"))
	noErr(t, "put", err)
	s.wantExpires(t, wantValue(t, b, "/exp/a", "a"), exp)
	if got := all(t, b, []byte("/exp/"), nil, 0); len(got) != 2 {
		t.Fatalf("range before expiry: %d items, want 2", len(got))
	}
	for i := 0; i < 2; i++ {
		if ev := NextEvent(t, w, 5*time.Second); ev.Type != backend.OpPut {
			t.Fatalf("event %d: %v, want put", i, ev.Type)
		}
	}

	// Invisible at once after expiry, whatever the sweeper is doing.
	time.Sleep(time.Until(exp) + s.caps.expiryPrecision() + 5*time.Millisecond)
	wantAbsent(t, b, []byte("/exp/a"))
	got := all(t, b, []byte("/exp/"), nil, 0)
	if len(got) != 1 || string(got[0].Key) != "/exp/z" {
		t.Fatalf("range after expiry: %d items, want only /exp/z", len(got))
	}
	_, err = b.Update(c, item("/exp/a", "b"))
	wantErr(t, "update expired", err, backend.ErrNotFound)
	_, err = b.CompareAndSwap(c, backend.Item{Value: []byte("a")}, item("/exp/a", "b"))
	wantErr(t, "compare and swap expired", err, backend.ErrCompareFailed)
	_, err = b.KeepAlive(c, []byte("/exp/a"), time.Now().Add(time.Hour))
	wantErr(t, "keep alive expired", err, backend.ErrNotFound)
	_, err = b.AtomicWrite(c, []backend.ConditionalAction{{Key: []byte("/exp/a"), Condition: backend.Condition{Kind: backend.Exists}}})
	wantErr(t, "exists condition on expired", err, backend.ErrCompareFailed)

	// The delete event arrives within the driver's sweep delay.
	ev := NextEvent(t, w, s.caps.expiryEventDelay())
	if ev.Type != backend.OpDelete || string(ev.Item.Key) != "/exp/a" {
		t.Fatalf("after expiry: %v %q, want delete /exp/a", ev.Type, ev.Item.Key)
	}

	// The key is free again.
	_, err = b.Create(c, item("/exp/a", "again"))
	noErr(t, "create after expiry", err)
	wantValue(t, b, "/exp/a", "again")
	if ev := NextEvent(t, w, 5*time.Second); ev.Type != backend.OpPut || string(ev.Item.Value) != "again" {
		t.Fatalf("after create: %v %q", ev.Type, ev.Item.Value)
	}

	// An expiry in the past makes the write invisible at once.
	_, err = b.Put(c, backend.Item{Key: []byte("/exp/past"), Value: []byte("p"), Expires: time.Now().Add(-time.Minute)})
	noErr(t, "put already expired", err)
	wantAbsent(t, b, []byte("/exp/past"))
}

func (s *suite) testKeepAlive(t *testing.T) {
	b := s.open(t)
	c := ctx(t)
	ttl := s.caps.ttl()
	exp := time.Now().Add(ttl)
	rev, err := b.Put(c, backend.Item{Key: []byte("/ka/a"), Value: []byte("value"), Expires: exp})
	noErr(t, "put", err)
	w, err := b.NewWatcher(c, backend.Watch{Prefixes: [][]byte{[]byte("/ka/")}})
	noErr(t, "new watcher", err)
	defer w.Close()
	waitInit(t, w)

	later := time.Now().Add(time.Hour)
	rev2, err := b.KeepAlive(c, []byte("/ka/a"), later)
	noErr(t, "keep alive", err)
	if rev2 <= rev {
		t.Fatalf("keep alive revision %d not after %d", rev2, rev)
	}
	it := wantValue(t, b, "/ka/a", "value")
	s.wantExpires(t, it, later)
	if it.Revision != rev2 {
		t.Fatalf("revision %d, want %d", it.Revision, rev2)
	}
	ev := NextEvent(t, w, 5*time.Second)
	if ev.Type != backend.OpPut || string(ev.Item.Value) != "value" || ev.Item.Revision != rev2 {
		t.Fatalf("keep alive event: %v %q rev %d", ev.Type, ev.Item.Value, ev.Item.Revision)
	}
	s.wantExpires(t, ev.Item, later)

	// Past the first expiry, it is still there.
	time.Sleep(time.Until(exp) + s.caps.expiryPrecision() + 20*time.Millisecond)
	wantValue(t, b, "/ka/a", "value")

	// Zero: never expires.
	_, err = b.KeepAlive(c, []byte("/ka/a"), time.Time{})
	noErr(t, "keep alive forever", err)
	if it := wantValue(t, b, "/ka/a", "value"); !it.Expires.IsZero() {
		t.Fatalf("expiry %v after keep alive with zero time", it.Expires)
	}
	_, err = b.KeepAlive(c, []byte("/ka/missing"), later)
	wantErr(t, "keep alive missing", err, backend.ErrNotFound)
	wantAbsent(t, b, []byte("/ka/missing"))
}

// waitInit reads the watcher's first event and checks that it is OpInit.
func waitInit(t testing.TB, w backend.Watcher) {
	t.Helper()
	if ev := NextEvent(t, w, 10*time.Second); ev.Type != backend.OpInit {
		t.Fatalf("first event is %v %q, want init", ev.Type, ev.Item.Key)
	}
}

// noEvent checks that no event arrives within d.
func noEvent(t testing.TB, w backend.Watcher, d time.Duration) {
	t.Helper()
	select {
	case ev, ok := <-w.Events():
		if ok {
			t.Fatalf("unexpected event %v %q", ev.Type, ev.Item.Key)
		}
		t.Fatalf("watcher stopped: %v", w.Err())
	case <-time.After(d):
	}
}

func (s *suite) testWatchInit(t *testing.T) {
	b := s.open(t)
	c := ctx(t)
	_, err := b.Put(c, item("/wi/before", "x"))
	noErr(t, "put", err)
	w, err := b.NewWatcher(c, backend.Watch{})
	noErr(t, "new watcher", err)
	defer w.Close()
	waitInit(t, w) // never a replay of earlier writes
	if w.Err() != nil {
		t.Fatalf("Err = %v on a running watcher", w.Err())
	}
	rev, err := b.Put(c, item("/wi/after", "y"))
	noErr(t, "put", err)
	ev := NextEvent(t, w, 5*time.Second)
	if ev.Type != backend.OpPut || string(ev.Item.Key) != "/wi/after" || string(ev.Item.Value) != "y" || ev.Item.Revision != rev {
		t.Fatalf("event %v %q=%q rev %d, want put /wi/after=y rev %d", ev.Type, ev.Item.Key, ev.Item.Value, ev.Item.Revision, rev)
	}
}

func (s *suite) testWatchPrefixes(t *testing.T) {
	b := s.open(t)
	c := ctx(t)
	tests := []struct {
		name     string
		prefixes []string
		want     []string
	}{
		{"all", nil, []string{"/a/1", "/b/1", "/ab", "/c/1"}},
		{"one", []string{"/a/"}, []string{"/a/1"}},
		{"two", []string{"/a", "/c/"}, []string{"/a/1", "/ab", "/c/1"}},
		{"none match", []string{"/x/"}, nil},
	}
	var watchers []backend.Watcher
	for _, tt := range tests {
		var prefixes [][]byte
		for _, p := range tt.prefixes {
			prefixes = append(prefixes, []byte(p))
		}
		w, err := b.NewWatcher(c, backend.Watch{Prefixes: prefixes})
		noErr(t, "new watcher", err)
		defer w.Close()
		waitInit(t, w)
		watchers = append(watchers, w)
	}
	for _, k := range []string{"/a/1", "/b/1", "/ab", "/c/1"} {
		_, err := b.Put(c, item(k, "v"))
		noErr(t, "put", err)
	}
	_, err := b.Put(c, item("/zz/end", "marker"))
	noErr(t, "put", err)
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			w := watchers[i]
			var got []string
			for _, want := range tt.want {
				ev := NextEvent(t, w, 5*time.Second)
				got = append(got, string(ev.Item.Key))
				if string(ev.Item.Key) != want {
					t.Fatalf("got %q, want %q", got, tt.want)
				}
			}
			if tt.prefixes == nil {
				if ev := NextEvent(t, w, 5*time.Second); string(ev.Item.Key) != "/zz/end" {
					t.Fatalf("got %q after the writes, want /zz/end", ev.Item.Key)
				}
			}
			noEvent(t, w, 50*time.Millisecond)
		})
	}
}

func (s *suite) testWatchEvents(t *testing.T) {
	b := s.open(t)
	c := ctx(t)
	w, err := b.NewWatcher(c, backend.Watch{Prefixes: [][]byte{[]byte("/we/")}})
	noErr(t, "new watcher", err)
	defer w.Close()
	waitInit(t, w)

	type want struct {
		op    backend.OpType
		key   string
		value string
	}
	var wants []want
	var revs []int64
	step := func(op backend.OpType, key, value string, rev int64, err error) {
		t.Helper()
		noErr(t, "write", err)
		wants = append(wants, want{op, key, value})
		revs = append(revs, rev)
	}
	rev, err := b.Create(c, item("/we/a", "1"))
	step(backend.OpPut, "/we/a", "1", rev, err)
	rev, err = b.Update(c, item("/we/a", "2"))
	step(backend.OpPut, "/we/a", "2", rev, err)
	rev, err = b.CompareAndSwap(c, backend.Item{Revision: rev}, item("/we/a", "3"))
	step(backend.OpPut, "/we/a", "3", rev, err)
	rev, err = b.Put(c, item("/we/b", "1"))
	step(backend.OpPut, "/we/b", "1", rev, err)
	err = b.Delete(c, []byte("/we/a"))
	step(backend.OpDelete, "/we/a", "", 0, err)
	rev, err = b.AtomicWrite(c, []backend.ConditionalAction{
		{Key: []byte("/we/b"), Action: backend.ActionDelete},
		{Key: []byte("/we/c"), Action: backend.ActionPut, Item: backend.Item{Value: []byte("c")}},
	})
	noErr(t, "atomic write", err)

	var last int64
	for i, wt := range wants {
		ev := NextEvent(t, w, 5*time.Second)
		if ev.Type != wt.op || string(ev.Item.Key) != wt.key || string(ev.Item.Value) != wt.value {
			t.Fatalf("event %d: %v %q=%q, want %v %q=%q", i, ev.Type, ev.Item.Key, ev.Item.Value, wt.op, wt.key, wt.value)
		}
		if ev.Item.Revision <= last {
			t.Fatalf("event %d: revision %d not after %d", i, ev.Item.Revision, last)
		}
		if revs[i] != 0 && ev.Item.Revision != revs[i] {
			t.Fatalf("event %d: revision %d, the write returned %d", i, ev.Item.Revision, revs[i])
		}
		last = ev.Item.Revision
	}
	// The atomic write's two events, in either order, share its revision.
	got := map[string]backend.OpType{}
	for i := 0; i < 2; i++ {
		ev := NextEvent(t, w, 5*time.Second)
		if ev.Item.Revision != rev {
			t.Fatalf("atomic write event %q: revision %d, want %d", ev.Item.Key, ev.Item.Revision, rev)
		}
		got[string(ev.Item.Key)] = ev.Type
	}
	if got["/we/b"] != backend.OpDelete || got["/we/c"] != backend.OpPut {
		t.Fatalf("atomic write events %v", got)
	}
	noEvent(t, w, 50*time.Millisecond)
}

func (s *suite) testWatchNoEventLost(t *testing.T) {
	b := s.open(t)
	c := ctx(t)
	n := s.caps.watchWrites()
	const writers, keys = 16, 64
	w, err := b.NewWatcher(c, backend.Watch{Prefixes: [][]byte{[]byte("/lost/")}, QueueSize: n + 100})
	noErr(t, "new watcher", err)
	defer w.Close()
	waitInit(t, w)
	other, err := b.NewWatcher(c, backend.Watch{Prefixes: [][]byte{[]byte("/other/")}, QueueSize: 1})
	noErr(t, "new watcher", err)
	defer other.Close()
	waitInit(t, other)

	// Each writer owns keys, and writes increasing values to them, so each
	// key's events must show its values in order.
	var wg sync.WaitGroup
	errs := make(chan error, writers)
	start := time.Now()
	for g := 0; g < writers; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := g; i < n; i += writers {
				key := fmt.Appendf(nil, "/lost/%02d", i%keys)
				if _, err := b.Put(c, backend.Item{Key: key, Value: []byte(strconv.Itoa(i))}); err != nil {
					errs <- err
					return
				}
			}
		}()
	}
	lastValue := map[string]int{}
	lastRev := int64(0)
	received := 0
	deadline := time.After(2 * time.Minute)
	for received < n {
		select {
		case ev, ok := <-w.Events():
			if !ok {
				t.Fatalf("watcher stopped after %d of %d events: %v", received, n, w.Err())
			}
			if ev.Type != backend.OpPut {
				t.Fatalf("unexpected %v event", ev.Type)
			}
			if ev.Item.Revision <= lastRev {
				t.Fatalf("revision %d after %d", ev.Item.Revision, lastRev)
			}
			lastRev = ev.Item.Revision
			v, _ := strconv.Atoi(string(ev.Item.Value))
			if prev, ok := lastValue[string(ev.Item.Key)]; ok && v <= prev {
				t.Fatalf("%q: value %d after %d: events of one key out of order", ev.Item.Key, v, prev)
			}
			lastValue[string(ev.Item.Key)] = v
			received++
		case <-deadline:
			t.Fatalf("received %d of %d events in 2 minutes", received, n)
		}
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatalf("put: %v", err)
	}
	t.Logf("%d concurrent writes by %d goroutines, all %d events received in %v", n, writers, received, time.Since(start).Round(time.Millisecond))
	for k := 0; k < keys; k++ {
		key := fmt.Sprintf("/lost/%02d", k)
		it := mustGet(t, b, []byte(key))
		if v, _ := strconv.Atoi(string(it.Value)); v != lastValue[key] {
			t.Fatalf("%s: stored %d, last event %d", key, v, lastValue[key])
		}
	}
	// The watcher of another prefix saw none of it.
	noEvent(t, other, 10*time.Millisecond)
}

// testWatchSameKeyWriters: writers race on the same few keys, with Put
// and CompareAndSwap. Whatever order the store gives them, the last event
// of each key is what the store holds, value and revision, so a cache fed
// by the watcher ends equal to the store.
func (s *suite) testWatchSameKeyWriters(t *testing.T) {
	b := s.open(t)
	c := ctx(t)
	n := s.caps.watchWrites() / 2
	const writers, keys = 16, 4
	w, err := b.NewWatcher(c, backend.Watch{Prefixes: [][]byte{[]byte("/race/")}, QueueSize: n + 100})
	noErr(t, "new watcher", err)
	defer w.Close()
	waitInit(t, w)

	var wg sync.WaitGroup
	var done atomic.Int64 // writes that produced an event
	errs := make(chan error, writers)
	for g := 0; g < writers; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := g; i < n; i += writers {
				key := fmt.Appendf(nil, "/race/%d", i%keys)
				value := []byte(strconv.Itoa(i))
				if i%3 != 0 {
					if _, err := b.Put(c, backend.Item{Key: key, Value: value}); err != nil {
						errs <- err
						return
					}
					done.Add(1)
					continue
				}
				it, err := b.Get(c, key)
				if errors.Is(err, backend.ErrNotFound) {
					continue
				}
				if err != nil {
					errs <- err
					return
				}
				_, err = b.CompareAndSwap(c, backend.Item{Key: key, Revision: it.Revision}, backend.Item{Key: key, Value: value})
				if err == nil {
					done.Add(1)
				} else if !errors.Is(err, backend.ErrCompareFailed) {
					errs <- err
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatalf("write: %v", err)
	}
	last := map[string]backend.Item{}
	deadline := time.After(2 * time.Minute)
	for received := int64(0); received < done.Load(); {
		select {
		case ev, ok := <-w.Events():
			if !ok {
				t.Fatalf("watcher stopped after %d of %d events: %v", received, done.Load(), w.Err())
			}
			if ev.Type != backend.OpPut {
				t.Fatalf("unexpected %v event", ev.Type)
			}
			if prev, ok := last[string(ev.Item.Key)]; ok && ev.Item.Revision <= prev.Revision {
				t.Fatalf("%q: revision %d after %d", ev.Item.Key, ev.Item.Revision, prev.Revision)
			}
			last[string(ev.Item.Key)] = ev.Item
			received++
		case <-deadline:
			t.Fatalf("received %d of %d events in 2 minutes", received, done.Load())
		}
	}
	for k := 0; k < keys; k++ {
		key := fmt.Sprintf("/race/%d", k)
		it := mustGet(t, b, []byte(key))
		ev := last[key]
		if it.Revision != ev.Revision || !bytes.Equal(it.Value, ev.Value) {
			t.Fatalf("%s: stored %q at revision %d, last event %q at revision %d", key, it.Value, it.Revision, ev.Value, ev.Revision)
		}
	}
	noEvent(t, w, 10*time.Millisecond)
}

func (s *suite) testWatchFellBehind(t *testing.T) {
	b := s.open(t)
	c := ctx(t)
	const queue = 8
	w, err := b.NewWatcher(c, backend.Watch{QueueSize: queue})
	noErr(t, "new watcher", err)
	defer w.Close()
	reader, err := b.NewWatcher(c, backend.Watch{QueueSize: 1000})
	noErr(t, "new watcher", err)
	defer reader.Close()
	waitInit(t, reader)
	// Nobody reads w: it must stop and say so, not block the writers.
	for i := 0; i < 100; i++ {
		_, err := b.Put(c, backend.Item{Key: fmt.Appendf(nil, "/fb/%03d", i), Value: []byte("v")})
		noErr(t, "put", err)
	}
	select {
	case <-w.Done():
	case <-time.After(10 * time.Second):
		t.Fatal("an unread watcher with a queue of 8 did not stop after 100 writes")
	}
	wantErr(t, "watcher Err", w.Err(), backend.ErrWatcherFellBehind)
	n := 0
	for range w.Events() { // the channel is closed after Done
		n++
	}
	if n == 0 || n > queue+1 {
		t.Fatalf("the stopped watcher still held %d events, want 1..%d", n, queue+1)
	}
	// The other watcher is unaffected.
	for i := 0; i < 100; i++ {
		ev := NextEvent(t, reader, 5*time.Second)
		if want := fmt.Sprintf("/fb/%03d", i); string(ev.Item.Key) != want {
			t.Fatalf("reader got %q, want %q", ev.Item.Key, want)
		}
	}
}

func (s *suite) testWatchClose(t *testing.T) {
	stopped := func(t *testing.T, w backend.Watcher, want error) {
		t.Helper()
		select {
		case <-w.Done():
		case <-time.After(10 * time.Second):
			t.Fatal("watcher did not stop")
		}
		wantErr(t, "watcher Err", w.Err(), want)
		deadline := time.After(10 * time.Second)
		for {
			select {
			case _, ok := <-w.Events():
				if !ok {
					return
				}
			case <-deadline:
				t.Fatal("Events not closed after Done")
			}
		}
	}
	t.Run("watcher close", func(t *testing.T) {
		b := s.open(t)
		w, err := b.NewWatcher(ctx(t), backend.Watch{})
		noErr(t, "new watcher", err)
		waitInit(t, w)
		noErr(t, "close", w.Close())
		noErr(t, "second close", w.Close())
		stopped(t, w, backend.ErrClosed)
		_, err = b.Put(ctx(t), item("/after", "x"))
		noErr(t, "put after watcher close", err)
	})
	t.Run("context", func(t *testing.T) {
		b := s.open(t)
		wctx, cancel := context.WithCancel(ctx(t))
		w, err := b.NewWatcher(wctx, backend.Watch{})
		noErr(t, "new watcher", err)
		defer w.Close()
		waitInit(t, w)
		cancel()
		stopped(t, w, context.Canceled)
	})
	t.Run("store close", func(t *testing.T) {
		b := s.open(t)
		w1, err := b.NewWatcher(ctx(t), backend.Watch{})
		noErr(t, "new watcher", err)
		w2, err := b.NewWatcher(ctx(t), backend.Watch{Prefixes: [][]byte{[]byte("/p")}})
		noErr(t, "new watcher", err)
		waitInit(t, w1)
		noErr(t, "close store", b.Close())
		stopped(t, w1, backend.ErrClosed)
		stopped(t, w2, backend.ErrClosed)
		noErr(t, "watcher close after store close", w1.Close())
		_, err = b.NewWatcher(ctx(t), backend.Watch{})
		wantErr(t, "new watcher on a closed store", err, backend.ErrClosed)
	})
}

func (s *suite) testContextCancellation(t *testing.T) {
	b := s.open(t)
	_, err := b.Put(ctx(t), item("/ctx/a", "a"))
	noErr(t, "put", err)
	c, cancel := context.WithCancel(context.Background())
	cancel()
	a := []byte("/ctx/a")
	tests := []struct {
		name string
		fn   func() error
	}{
		{"get", func() error { _, err := b.Get(c, a); return err }},
		{"get range", func() error { _, err := b.GetRange(c, []byte("/"), nil, 0); return err }},
		{"create", func() error { _, err := b.Create(c, item("/ctx/new", "x")); return err }},
		{"put", func() error { _, err := b.Put(c, item("/ctx/a", "changed")); return err }},
		{"update", func() error { _, err := b.Update(c, item("/ctx/a", "changed")); return err }},
		{"compare and swap", func() error {
			_, err := b.CompareAndSwap(c, backend.Item{Value: []byte("a")}, item("/ctx/a", "changed"))
			return err
		}},
		{"delete", func() error { return b.Delete(c, a) }},
		{"delete range", func() error { _, err := b.DeleteRange(c, []byte("/"), nil); return err }},
		{"keep alive", func() error { _, err := b.KeepAlive(c, a, time.Now().Add(time.Second)); return err }},
		{"atomic write", func() error {
			_, err := b.AtomicWrite(c, []backend.ConditionalAction{{Key: a, Action: backend.ActionDelete}})
			return err
		}},
		{"new watcher", func() error {
			w, err := b.NewWatcher(c, backend.Watch{})
			if w != nil {
				w.Close()
			}
			return err
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			wantErr(t, tt.name, tt.fn(), context.Canceled)
		})
	}
	if it := wantValue(t, b, "/ctx/a", "a"); !it.Expires.IsZero() {
		t.Fatal("a cancelled keep alive changed the item")
	}
	wantAbsent(t, b, []byte("/ctx/new"))

	// A deadline that passes gives context.DeadlineExceeded.
	dc, dcancel := context.WithTimeout(context.Background(), time.Nanosecond)
	defer dcancel()
	<-dc.Done()
	_, err = b.Get(dc, a)
	wantErr(t, "get with an expired deadline", err, context.DeadlineExceeded)
}

func (s *suite) testClose(t *testing.T) {
	b := s.newBackend(t)
	_, err := b.Put(ctx(t), item("/close/a", "a"))
	noErr(t, "put", err)
	noErr(t, "close", b.Close())
	wantErr(t, "second close", b.Close(), backend.ErrClosed)
	c := ctx(t)
	tests := []struct {
		name string
		fn   func() error
	}{
		{"get", func() error { _, err := b.Get(c, []byte("/close/a")); return err }},
		{"get range", func() error { _, err := b.GetRange(c, []byte("/"), nil, 0); return err }},
		{"put", func() error { _, err := b.Put(c, item("/close/b", "b")); return err }},
		{"delete", func() error { return b.Delete(c, []byte("/close/a")) }},
		{"atomic write", func() error {
			_, err := b.AtomicWrite(c, []backend.ConditionalAction{{Key: []byte("/close/a"), Action: backend.ActionDelete}})
			return err
		}},
		{"new watcher", func() error { _, err := b.NewWatcher(c, backend.Watch{}); return err }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			wantErr(t, tt.name+" after close", tt.fn(), backend.ErrClosed)
		})
	}
}

func (s *suite) testMultiInstance(t *testing.T) {
	if s.caps.Reopen == nil {
		t.Run("Unsupported", func(t *testing.T) {
			t.Log("capability missing: this driver has no second instance over the same state (Capabilities.Reopen is nil); writes and watches across instances are not tested")
			t.Skip("UNSUPPORTED: multi-instance")
		})
		return
	}
	a := s.open(t)
	b := s.caps.Reopen(t, a)
	if b == nil {
		t.Fatal("backendtest: Reopen returned nil")
	}
	t.Cleanup(func() { b.Close() })
	c := ctx(t)
	wb, err := b.NewWatcher(c, backend.Watch{Prefixes: [][]byte{[]byte("/multi/")}})
	noErr(t, "new watcher on b", err)
	defer wb.Close()
	waitInit(t, wb)

	rev, err := a.Put(c, item("/multi/x", "from a"))
	noErr(t, "put on a", err)
	if it := wantValue(t, b, "/multi/x", "from a"); it.Revision != rev {
		t.Fatalf("b reads revision %d, a wrote %d", it.Revision, rev)
	}
	ev := NextEvent(t, wb, 10*time.Second)
	if ev.Type != backend.OpPut || string(ev.Item.Key) != "/multi/x" || ev.Item.Revision != rev {
		t.Fatalf("b's watcher: %v %q rev %d, want put /multi/x rev %d", ev.Type, ev.Item.Key, ev.Item.Revision, rev)
	}
	// Revisions stay global across instances.
	rev2, err := b.CompareAndSwap(c, backend.Item{Revision: rev}, item("/multi/x", "from b"))
	noErr(t, "compare and swap on b", err)
	if rev2 <= rev {
		t.Fatalf("b's revision %d not after a's %d", rev2, rev)
	}
	wantValue(t, a, "/multi/x", "from b")
	noErr(t, "delete on a", a.Delete(c, []byte("/multi/x")))
	for _, want := range []backend.OpType{backend.OpPut, backend.OpDelete} {
		if ev := NextEvent(t, wb, 10*time.Second); ev.Type != want {
			t.Fatalf("b's watcher: %v, want %v", ev.Type, want)
		}
	}
	// Concurrent increments through both instances.
	key := []byte("/multi/counter")
	_, err = a.Put(c, backend.Item{Key: key, Value: []byte("0")})
	noErr(t, "put", err)
	var wg sync.WaitGroup
	for _, inst := range []backend.Backend{a, b, a, b} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < 20; {
				cur, err := inst.Get(c, key)
				if err != nil {
					t.Error(err)
					return
				}
				n, _ := strconv.Atoi(string(cur.Value))
				_, err = inst.CompareAndSwap(c, backend.Item{Revision: cur.Revision}, backend.Item{Key: key, Value: []byte(strconv.Itoa(n + 1))})
				if err == nil {
					i++
				} else if !errors.Is(err, backend.ErrCompareFailed) {
					t.Error(err)
					return
				}
			}
		}()
	}
	wg.Wait()
	wantValue(t, b, string(key), "80")
}
