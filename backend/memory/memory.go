package memory

import (
	"bytes"
	"context"
	"fmt"
	"net/url"
	"sync"
	"time"

	"github.com/google/btree"

	"github.com/sallyport/sallyport/backend"
)

func init() {
	backend.Register("memory", func(ctx context.Context, u *url.URL) (backend.Backend, error) {
		if err := ctx.Err(); err != nil {
			return nil, fmt.Errorf("memory: open: %w", err)
		}
		if u.Host != "" || (u.Path != "" && u.Path != "/") || u.RawQuery != "" {
			return nil, fmt.Errorf("%w: memory: the URI takes no host, path or parameters: use memory://", backend.ErrInvalid)
		}
		return New(nil)
	})
}

// Config configures a memory backend. The zero value (and a nil *Config)
// is the only configuration today; the struct exists so that options can
// be added without changing New.
type Config struct{}

// entry is one stored item. Entries in the trees are never modified in
// place: a write replaces the entry, so a reader holding one sees a
// consistent item.
type entry struct {
	key     string
	value   []byte
	rev     int64
	expires int64 // Unix nanoseconds; 0: never
}

func (e *entry) expired(now int64) bool { return e.expires != 0 && e.expires <= now }

func (e *entry) item() backend.Item {
	it := backend.Item{Key: []byte(e.key), Value: bytes.Clone(e.value), Revision: e.rev}
	if e.expires != 0 {
		it.Expires = time.Unix(0, e.expires)
	}
	return it
}

func lessKey(a, b *entry) bool { return a.key < b.key }

func lessExpiry(a, b *entry) bool {
	if a.expires != b.expires {
		return a.expires < b.expires
	}
	return a.key < b.key
}

// Backend is an in-memory backend.Backend.
type Backend struct {
	mu      sync.RWMutex
	keys    *btree.BTreeG[*entry] // by key
	expiry  *btree.BTreeG[*entry] // entries with an expiry, by (expires, key)
	rev     int64
	closed  bool
	fanout  backend.Fanout
	wake    chan struct{} // nudges the sweeper when an earlier expiry appears
	stop    chan struct{}
	stopped sync.WaitGroup
}

var _ backend.Backend = (*Backend)(nil)

// New returns an empty in-memory backend and starts its expiry sweeper.
// A nil cfg means the zero Config. Close stops the sweeper.
func New(cfg *Config) (*Backend, error) {
	if cfg == nil {
		cfg = &Config{}
	}
	b := &Backend{
		keys:   btree.NewG(32, lessKey),
		expiry: btree.NewG(32, lessExpiry),
		wake:   make(chan struct{}, 1),
		stop:   make(chan struct{}),
	}
	b.stopped.Add(1)
	go b.sweepLoop()
	return b, nil
}

func now() int64 { return time.Now().UnixNano() }

func unixNano(t time.Time) int64 {
	if t.IsZero() {
		return 0
	}
	n := t.UnixNano()
	if n == 0 {
		n = 1 // 0 means "never"
	}
	return n
}

// begin checks the context and the closed flag before an operation.
func (b *Backend) check(ctx context.Context, op string) error {
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("memory: %s: %w", op, err)
	}
	if b.closed {
		return fmt.Errorf("memory: %s: %w", op, backend.ErrClosed)
	}
	return nil
}

// lookup returns the live entry at key, or nil.
func (b *Backend) lookup(key string, now int64) *entry {
	e, ok := b.keys.Get(&entry{key: key})
	if !ok || e.expired(now) {
		return nil
	}
	return e
}

// Get implements backend.Backend.
func (b *Backend) Get(ctx context.Context, key []byte) (backend.Item, error) {
	if err := backend.CheckKey(key); err != nil {
		return backend.Item{}, fmt.Errorf("memory: get: %w", err)
	}
	b.mu.RLock()
	defer b.mu.RUnlock()
	if err := b.check(ctx, "get"); err != nil {
		return backend.Item{}, err
	}
	e := b.lookup(string(key), now())
	if e == nil {
		return backend.Item{}, fmt.Errorf("memory: get %q: %w", key, backend.ErrNotFound)
	}
	return e.item(), nil
}

// GetRange implements backend.Backend.
func (b *Backend) GetRange(ctx context.Context, start, end []byte, limit int) (backend.Result, error) {
	if err := backend.CheckRange(start, end); err != nil {
		return backend.Result{}, fmt.Errorf("memory: get range: %w", err)
	}
	if limit <= 0 {
		limit = backend.DefaultRangeLimit
	}
	b.mu.RLock()
	defer b.mu.RUnlock()
	if err := b.check(ctx, "get range"); err != nil {
		return backend.Result{}, err
	}
	var res backend.Result
	t := now()
	b.ascend(start, end, func(e *entry) bool {
		if e.expired(t) {
			return true
		}
		if len(res.Items) == limit {
			res.Next = []byte(e.key)
			return false
		}
		res.Items = append(res.Items, e.item())
		return true
	})
	return res, nil
}

// ascend visits the entries with start <= key < end (nil end: no bound).
func (b *Backend) ascend(start, end []byte, fn func(*entry) bool) {
	if end == nil {
		b.keys.AscendGreaterOrEqual(&entry{key: string(start)}, fn)
		return
	}
	b.keys.AscendRange(&entry{key: string(start)}, &entry{key: string(end)}, fn)
}

// write runs fn under the write lock after sweeping expired entries. fn
// stages its changes through the tx; they are applied, given the next
// revision and published when fn returns nil.
func (b *Backend) write(ctx context.Context, op string, fn func(tx *tx) error) (int64, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if err := b.check(ctx, op); err != nil {
		return 0, err
	}
	t := now()
	b.sweepLocked(t)
	tx := &tx{b: b, now: t}
	if err := fn(tx); err != nil {
		return 0, fmt.Errorf("memory: %s: %w", op, err)
	}
	return b.commitLocked(tx.puts, tx.deletes), nil
}

// tx stages the changes of one write.
type tx struct {
	b       *Backend
	now     int64
	puts    []*entry
	deletes []*entry
}

func (tx *tx) get(key []byte) *entry { return tx.b.lookup(string(key), tx.now) }

func (tx *tx) put(item backend.Item) {
	tx.puts = append(tx.puts, &entry{key: string(item.Key), value: bytes.Clone(item.Value), expires: unixNano(item.Expires)})
}

// commitLocked applies staged changes under one new revision and
// publishes them. With no changes it returns the current revision.
func (b *Backend) commitLocked(puts, deletes []*entry) int64 {
	if len(puts) == 0 && len(deletes) == 0 {
		return b.rev
	}
	b.rev++
	events := make([]backend.Event, 0, len(puts)+len(deletes))
	var earliest int64
	for _, e := range deletes {
		b.keys.Delete(e)
		if e.expires != 0 {
			b.expiry.Delete(e)
		}
		events = append(events, backend.Event{Type: backend.OpDelete, Item: backend.Item{Key: []byte(e.key), Revision: b.rev}})
	}
	for _, e := range puts {
		e.rev = b.rev
		if old, ok := b.keys.ReplaceOrInsert(e); ok && old.expires != 0 {
			b.expiry.Delete(old)
		}
		if e.expires != 0 {
			b.expiry.ReplaceOrInsert(e)
			if earliest == 0 || e.expires < earliest {
				earliest = e.expires
			}
		}
		events = append(events, backend.Event{Type: backend.OpPut, Item: e.item()})
	}
	b.fanout.Publish(events...)
	if earliest != 0 {
		select {
		case b.wake <- struct{}{}:
		default:
		}
	}
	return b.rev
}

// sweepLocked deletes every entry expired at t, under one revision.
func (b *Backend) sweepLocked(t int64) {
	var expired []*entry
	b.expiry.Ascend(func(e *entry) bool {
		if !e.expired(t) {
			return false
		}
		expired = append(expired, e)
		return true
	})
	b.commitLocked(nil, expired)
}

// sweepLoop deletes expired entries when they expire, so that watchers get
// their delete events on time.
func (b *Backend) sweepLoop() {
	defer b.stopped.Done()
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	for {
		b.mu.Lock()
		b.sweepLocked(now())
		wait := time.Hour
		if e, ok := b.expiry.Min(); ok {
			wait = time.Duration(e.expires - now())
		}
		b.mu.Unlock()
		timer.Reset(max(wait, time.Millisecond))
		select {
		case <-b.stop:
			return
		case <-b.wake:
		case <-timer.C:
		}
	}
}

// Create implements backend.Backend.
func (b *Backend) Create(ctx context.Context, item backend.Item) (int64, error) {
	if err := backend.CheckItem(item); err != nil {
		return 0, fmt.Errorf("memory: create: %w", err)
	}
	return b.write(ctx, "create", func(tx *tx) error {
		if tx.get(item.Key) != nil {
			return fmt.Errorf("%q: %w", item.Key, backend.ErrAlreadyExists)
		}
		tx.put(item)
		return nil
	})
}

// Put implements backend.Backend.
func (b *Backend) Put(ctx context.Context, item backend.Item) (int64, error) {
	if err := backend.CheckItem(item); err != nil {
		return 0, fmt.Errorf("memory: put: %w", err)
	}
	return b.write(ctx, "put", func(tx *tx) error {
		tx.put(item)
		return nil
	})
}

// Update implements backend.Backend.
func (b *Backend) Update(ctx context.Context, item backend.Item) (int64, error) {
	if err := backend.CheckItem(item); err != nil {
		return 0, fmt.Errorf("memory: update: %w", err)
	}
	return b.write(ctx, "update", func(tx *tx) error {
		if tx.get(item.Key) == nil {
			return fmt.Errorf("%q: %w", item.Key, backend.ErrNotFound)
		}
		tx.put(item)
		return nil
	})
}

// CompareAndSwap implements backend.Backend.
func (b *Backend) CompareAndSwap(ctx context.Context, expected, replace backend.Item) (int64, error) {
	if err := backend.CheckItem(replace); err != nil {
		return 0, fmt.Errorf("memory: compare and swap: %w", err)
	}
	if expected.Key != nil && !bytes.Equal(expected.Key, replace.Key) {
		return 0, fmt.Errorf("memory: compare and swap: %w: expected key %q differs from %q", backend.ErrInvalid, expected.Key, replace.Key)
	}
	return b.write(ctx, "compare and swap", func(tx *tx) error {
		cur := tx.get(replace.Key)
		switch {
		case cur == nil:
			return fmt.Errorf("%q is absent: %w", replace.Key, backend.ErrCompareFailed)
		case expected.Revision != 0 && cur.rev != expected.Revision:
			return fmt.Errorf("%q is at revision %d, not %d: %w", replace.Key, cur.rev, expected.Revision, backend.ErrCompareFailed)
		case expected.Revision == 0 && !bytes.Equal(cur.value, expected.Value):
			return fmt.Errorf("%q has another value: %w", replace.Key, backend.ErrCompareFailed)
		}
		tx.put(replace)
		return nil
	})
}

// Delete implements backend.Backend.
func (b *Backend) Delete(ctx context.Context, key []byte) error {
	if err := backend.CheckKey(key); err != nil {
		return fmt.Errorf("memory: delete: %w", err)
	}
	_, err := b.write(ctx, "delete", func(tx *tx) error {
		e := tx.get(key)
		if e == nil {
			return fmt.Errorf("%q: %w", key, backend.ErrNotFound)
		}
		tx.deletes = append(tx.deletes, e)
		return nil
	})
	return err
}

// DeleteRange implements backend.Backend. The range is removed atomically
// under one revision.
func (b *Backend) DeleteRange(ctx context.Context, start, end []byte) (int64, error) {
	if err := backend.CheckRange(start, end); err != nil {
		return 0, fmt.Errorf("memory: delete range: %w", err)
	}
	var n int64
	_, err := b.write(ctx, "delete range", func(tx *tx) error {
		b.ascend(start, end, func(e *entry) bool {
			tx.deletes = append(tx.deletes, e) // expired ones were swept already
			return true
		})
		n = int64(len(tx.deletes))
		return nil
	})
	return n, err
}

// KeepAlive implements backend.Backend.
func (b *Backend) KeepAlive(ctx context.Context, key []byte, expires time.Time) (int64, error) {
	if err := backend.CheckKey(key); err != nil {
		return 0, fmt.Errorf("memory: keep alive: %w", err)
	}
	return b.write(ctx, "keep alive", func(tx *tx) error {
		e := tx.get(key)
		if e == nil {
			return fmt.Errorf("%q: %w", key, backend.ErrNotFound)
		}
		tx.puts = append(tx.puts, &entry{key: e.key, value: e.value, expires: unixNano(expires)})
		return nil
	})
}

// AtomicWrite implements backend.Backend.
func (b *Backend) AtomicWrite(ctx context.Context, actions []backend.ConditionalAction) (int64, error) {
	if err := backend.CheckActions(actions); err != nil {
		return 0, fmt.Errorf("memory: atomic write: %w", err)
	}
	return b.write(ctx, "atomic write", func(tx *tx) error {
		for i, a := range actions {
			cur := tx.get(a.Key)
			ok := true
			switch a.Condition.Kind {
			case backend.Exists:
				ok = cur != nil
			case backend.NotExists:
				ok = cur == nil
			case backend.Revision:
				ok = cur != nil && cur.rev == a.Condition.Revision
			}
			if !ok {
				return &backend.ConditionError{Index: i, Key: bytes.Clone(a.Key), Kind: a.Condition.Kind}
			}
		}
		for _, a := range actions {
			switch a.Action {
			case backend.ActionPut:
				item := a.Item
				item.Key = a.Key
				tx.put(item)
			case backend.ActionDelete:
				if e := tx.get(a.Key); e != nil {
					tx.deletes = append(tx.deletes, e)
				}
			}
		}
		return nil
	})
}

// NewWatcher implements backend.Backend.
func (b *Backend) NewWatcher(ctx context.Context, w backend.Watch) (backend.Watcher, error) {
	b.mu.RLock()
	defer b.mu.RUnlock()
	if err := b.check(ctx, "new watcher"); err != nil {
		return nil, err
	}
	wt, err := b.fanout.NewWatcher(ctx, w)
	if err != nil {
		return nil, fmt.Errorf("memory: %w", err)
	}
	return wt, nil
}

// Close stops the sweeper and closes every watcher with ErrClosed. The
// stored items are dropped. A second Close returns ErrClosed.
func (b *Backend) Close() error {
	b.mu.Lock()
	if b.closed {
		b.mu.Unlock()
		return fmt.Errorf("memory: close: %w", backend.ErrClosed)
	}
	b.closed = true
	b.mu.Unlock()
	close(b.stop)
	b.stopped.Wait()
	b.fanout.Close()
	b.mu.Lock()
	b.keys.Clear(false)
	b.expiry.Clear(false)
	b.mu.Unlock()
	return nil
}
