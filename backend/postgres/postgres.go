package postgres

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/url"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgtype"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/sallyport/sallyport/backend"
)

func init() {
	backend.Register("postgres", openURI)
}

// Config configures a PostgreSQL backend. The zero value of every field but
// the connection (Pool or ConnString) means a default.
type Config struct {
	// Pool is a ready connection pool. The backend uses it and leaves it
	// open at Close. When nil, the backend opens a pool from ConnString and
	// closes it at Close. Each call holds one pool connection at a time;
	// the change stream uses a connection of its own, outside the pool,
	// made from the pool's configuration.
	Pool *pgxpool.Pool
	// ConnString is a pgx connection string (URL or key=value), used when
	// Pool is nil. The parameters below may also be given in a URL's
	// query (see the package documentation); they are removed before the
	// string reaches pgx.
	ConnString string
	// Schema holds the backend's tables. Empty means the connection's
	// current schema (usually public). Several clusters can share one
	// database with a schema each. A schema that does not exist is created.
	Schema string
	// PollInterval is how often the change table is read when no
	// notification arrives (a fallback for lost notifications). Zero means
	// one second.
	PollInterval time.Duration
	// GapTimeout is how long the change stream waits for a revision that
	// was assigned but is not yet committed (a slower concurrent
	// transaction) before it moves past it. Zero means five seconds. A
	// revision that commits later still is detected and breaks the
	// watchers (ErrWatchBroken), so no change is missed silently.
	GapTimeout time.Duration
	// SweepInterval is how often expired items are deleted (and their
	// delete events written). Zero means one second.
	SweepInterval time.Duration
	// SweepBatch is how many expired items one sweep statement deletes.
	// Zero means 500.
	SweepBatch int
	// EventRetention is how long change-table rows are kept. Zero means
	// one hour.
	EventRetention time.Duration
	// Logger receives background errors (sweeps, the change stream). Nil
	// discards them.
	Logger *slog.Logger
}

func (c *Config) setDefaults() error {
	if c.PollInterval == 0 {
		c.PollInterval = time.Second
	}
	if c.GapTimeout == 0 {
		c.GapTimeout = 5 * time.Second
	}
	if c.SweepInterval == 0 {
		c.SweepInterval = time.Second
	}
	if c.SweepBatch == 0 {
		c.SweepBatch = 500
	}
	if c.EventRetention == 0 {
		c.EventRetention = time.Hour
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	switch {
	case c.PollInterval < 0, c.GapTimeout < 0, c.SweepInterval < 0, c.EventRetention < 0:
		return fmt.Errorf("%w: postgres: negative duration in Config", backend.ErrInvalid)
	case c.SweepBatch < 0:
		return fmt.Errorf("%w: postgres: negative SweepBatch", backend.ErrInvalid)
	case c.Pool == nil && c.ConnString == "":
		return fmt.Errorf("%w: postgres: Config needs a Pool or a ConnString", backend.ErrInvalid)
	}
	return nil
}

// Backend is a backend.Backend stored in PostgreSQL.
type Backend struct {
	cfg     Config
	pool    *pgxpool.Pool
	ownPool bool
	n       names
	q       queries
	log     *slog.Logger

	fan    backend.Fanout
	cancel context.CancelFunc
	wg     sync.WaitGroup
	closed atomic.Bool
	// registering counts NewWatcher calls waiting for the change stream.
	registering atomic.Int32

	// The change stream's state, guarded by tmu.
	tmu      sync.Mutex
	healthy  bool
	tailErr  error
	attempt  chan struct{} // closed and replaced after each connection attempt
	pos      int64         // the revision the stream has published up to
	progress chan struct{} // closed and replaced when pos advances
	kick     chan struct{}
	notify   chan struct{} // a pending wake-up for the change streams
	writes   atomic.Int64  // writes since the last NOTIFY
	w        writeQueue    // single-key writes waiting for a batch
	// batchTimeout bounds a batch once sent (batchTimeout; tests shorten it).
	batchTimeout time.Duration
	closeErr     error
}

var _ backend.Backend = (*Backend)(nil)

// Open connects to PostgreSQL, creates the backend's tables when they do
// not exist, and starts the change stream, the expiry sweep and the
// change-table pruning. A nil cfg is an error: the connection is required.
func Open(ctx context.Context, cfg *Config) (*Backend, error) {
	if cfg == nil {
		return nil, fmt.Errorf("%w: postgres: nil Config", backend.ErrInvalid)
	}
	c := *cfg
	if err := c.setDefaults(); err != nil {
		return nil, err
	}
	b := &Backend{cfg: c, pool: c.Pool, n: newNames(c.Schema), log: c.Logger,
		attempt: make(chan struct{}), progress: make(chan struct{}), kick: make(chan struct{}, 1),
		notify: make(chan struct{}, 1), batchTimeout: batchTimeout}
	if b.pool == nil {
		pool, err := pgxpool.New(ctx, c.ConnString)
		if err != nil {
			return nil, fmt.Errorf("postgres: open: %w", err)
		}
		b.pool, b.ownPool = pool, true
	}
	b.q = newQueries(b.n)
	if err := setupSchema(ctx, b.pool, b.n, c.Schema); err != nil {
		if b.ownPool {
			b.pool.Close()
		}
		return nil, err
	}
	bg, cancel := context.WithCancel(context.Background())
	b.cancel = cancel
	b.w.wake = make(chan struct{}, 1)
	n := committers(b.pool.Config().MaxConns)
	b.wg.Add(4 + n)
	for range n {
		go b.committer(bg)
	}
	go b.notifyLoop(bg)
	go b.tailLoop(bg)
	go b.sweepLoop(bg)
	go b.pruneLoop(bg)
	return b, nil
}

// openURI opens "postgres://user:password@host:port/db?schema=...". The
// query parameters of Config (schema, poll_interval, gap_timeout,
// sweep_interval, sweep_batch, event_retention) are read and removed; the
// rest goes to pgx (sslmode, pool_max_conns, ...).
func openURI(ctx context.Context, u *url.URL) (backend.Backend, error) {
	cfg, err := ParseURI(u)
	if err != nil {
		return nil, err
	}
	return Open(ctx, cfg)
}

// ParseURI turns a postgres:// or postgresql:// URL into a Config, taking
// the driver's own query parameters out of it.
func ParseURI(u *url.URL) (*Config, error) {
	cu := *u
	q := cu.Query()
	cfg := &Config{Schema: q.Get("schema")}
	durs := []struct {
		name string
		dst  *time.Duration
	}{
		{"poll_interval", &cfg.PollInterval},
		{"gap_timeout", &cfg.GapTimeout},
		{"sweep_interval", &cfg.SweepInterval},
		{"event_retention", &cfg.EventRetention},
	}
	for _, d := range durs {
		if s := q.Get(d.name); s != "" {
			v, err := time.ParseDuration(s)
			if err != nil || v < 0 {
				return nil, fmt.Errorf("%w: postgres: URI parameter %s=%q is not a duration", backend.ErrInvalid, d.name, s)
			}
			*d.dst = v
		}
		q.Del(d.name)
	}
	if s := q.Get("sweep_batch"); s != "" {
		v, err := strconv.Atoi(s)
		if err != nil || v < 0 {
			return nil, fmt.Errorf("%w: postgres: URI parameter sweep_batch=%q is not a count", backend.ErrInvalid, s)
		}
		cfg.SweepBatch = v
	}
	q.Del("sweep_batch")
	q.Del("schema")
	cu.RawQuery = q.Encode()
	if cu.Scheme == "postgresql" || cu.Scheme == "postgres" {
		cu.Scheme = "postgres"
	}
	cfg.ConnString = cu.String()
	return cfg, nil
}

// Pool returns the connection pool the backend uses.
func (b *Backend) Pool() *pgxpool.Pool { return b.pool }

// Close stops the background work, closes the watchers with
// backend.ErrClosed and closes the pool if the backend opened it. A second
// Close returns an error wrapping backend.ErrClosed.
func (b *Backend) Close() error {
	if b.closed.Swap(true) {
		return fmt.Errorf("postgres: close: %w", backend.ErrClosed)
	}
	b.cancel()
	b.wg.Wait()
	b.tmu.Lock()
	b.closeErr = backend.ErrClosed
	close(b.attempt) // wakes NewWatcher calls waiting for the stream
	b.attempt = make(chan struct{})
	b.tmu.Unlock()
	b.fan.Close()
	if b.ownPool {
		b.pool.Close()
	}
	return nil
}

func (b *Backend) checkOpen(op string) error {
	if b.closed.Load() {
		return fmt.Errorf("postgres: %s: %w", op, backend.ErrClosed)
	}
	return nil
}

// wrap adds the operation and key to a database error.
func wrap(op string, key []byte, err error) error {
	if key == nil {
		return fmt.Errorf("postgres: %s: %w", op, err)
	}
	return fmt.Errorf("postgres: %s %q: %w", op, truncKey(key), err)
}

func truncKey(k []byte) []byte {
	if len(k) > 64 {
		return k[:64]
	}
	return k
}

func expiresArg(t time.Time) pgtype.Timestamptz {
	if t.IsZero() {
		return pgtype.Timestamptz{}
	}
	return pgtype.Timestamptz{Time: t, Valid: true}
}

func expiresVal(t pgtype.Timestamptz) time.Time {
	if !t.Valid {
		return time.Time{}
	}
	return t.Time
}

// value makes nil values empty: the column is NOT NULL.
func value(v []byte) []byte {
	if v == nil {
		return []byte{}
	}
	return v
}

// Get implements backend.Backend.
func (b *Backend) Get(ctx context.Context, key []byte) (backend.Item, error) {
	if err := b.checkOpen("get"); err != nil {
		return backend.Item{}, err
	}
	if err := backend.CheckKey(key); err != nil {
		return backend.Item{}, err
	}
	it := backend.Item{Key: bytes.Clone(key)}
	var exp pgtype.Timestamptz
	err := b.pool.QueryRow(ctx, b.q.get, key).Scan(&it.Value, &it.Revision, &exp)
	if errors.Is(err, pgx.ErrNoRows) {
		return backend.Item{}, fmt.Errorf("postgres: get %q: %w", truncKey(key), backend.ErrNotFound)
	}
	if err != nil {
		return backend.Item{}, wrap("get", key, err)
	}
	it.Expires = expiresVal(exp)
	return it, nil
}

// GetRange implements backend.Backend.
func (b *Backend) GetRange(ctx context.Context, start, end []byte, limit int) (backend.Result, error) {
	if err := b.checkOpen("get range"); err != nil {
		return backend.Result{}, err
	}
	if err := backend.CheckRange(start, end); err != nil {
		return backend.Result{}, err
	}
	if limit <= 0 {
		limit = backend.DefaultRangeLimit
	}
	var rows pgx.Rows
	var err error
	if end == nil {
		rows, err = b.pool.Query(ctx, b.q.getRangeOpen, value(start), limit+1)
	} else {
		rows, err = b.pool.Query(ctx, b.q.getRange, value(start), end, limit+1)
	}
	if err != nil {
		return backend.Result{}, wrap("get range", start, err)
	}
	var res backend.Result
	for rows.Next() {
		var it backend.Item
		var exp pgtype.Timestamptz
		if err := rows.Scan(&it.Key, &it.Value, &it.Revision, &exp); err != nil {
			rows.Close()
			return backend.Result{}, wrap("get range", start, err)
		}
		it.Expires = expiresVal(exp)
		if len(res.Items) == limit {
			res.Next = it.Key
			break
		}
		res.Items = append(res.Items, it)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return backend.Result{}, wrap("get range", start, err)
	}
	return res, nil
}

// writeOne runs a single-statement write that returns the new revision, or
// no row when its condition did not hold, alone or in a batch (batch.go).
func (b *Backend) writeOne(ctx context.Context, op, sql string, key []byte, args ...any) (int64, bool, error) {
	if err := b.checkOpen(op); err != nil {
		return 0, false, err
	}
	rev, ok, err := b.write(ctx, sql, key, args)
	if err != nil {
		return 0, false, wrap(op, key, err)
	}
	if ok {
		b.changed()
	}
	return rev, ok, nil
}

// Create implements backend.Backend.
func (b *Backend) Create(ctx context.Context, item backend.Item) (int64, error) {
	if err := backend.CheckItem(item); err != nil {
		return 0, err
	}
	rev, ok, err := b.writeOne(ctx, "create", b.q.create, item.Key, item.Key, value(item.Value), expiresArg(item.Expires))
	if err == nil && !ok {
		err = fmt.Errorf("postgres: create %q: %w", truncKey(item.Key), backend.ErrAlreadyExists)
	}
	return rev, err
}

// Put implements backend.Backend.
func (b *Backend) Put(ctx context.Context, item backend.Item) (int64, error) {
	if err := backend.CheckItem(item); err != nil {
		return 0, err
	}
	rev, _, err := b.writeOne(ctx, "put", b.q.put, item.Key, item.Key, value(item.Value), expiresArg(item.Expires))
	return rev, err
}

// Update implements backend.Backend.
func (b *Backend) Update(ctx context.Context, item backend.Item) (int64, error) {
	if err := backend.CheckItem(item); err != nil {
		return 0, err
	}
	rev, ok, err := b.writeOne(ctx, "update", b.q.update, item.Key, item.Key, value(item.Value), expiresArg(item.Expires))
	if err == nil && !ok {
		err = fmt.Errorf("postgres: update %q: %w", truncKey(item.Key), backend.ErrNotFound)
	}
	return rev, err
}

// CompareAndSwap implements backend.Backend.
func (b *Backend) CompareAndSwap(ctx context.Context, expected, replace backend.Item) (int64, error) {
	if err := backend.CheckItem(replace); err != nil {
		return 0, err
	}
	if expected.Key != nil && !bytes.Equal(expected.Key, replace.Key) {
		return 0, fmt.Errorf("%w: compare and swap: expected key %q differs from replacement key %q", backend.ErrInvalid, truncKey(expected.Key), truncKey(replace.Key))
	}
	var (
		rev int64
		ok  bool
		err error
	)
	if expected.Revision != 0 {
		rev, ok, err = b.writeOne(ctx, "compare and swap", b.q.casRevision, replace.Key,
			replace.Key, value(replace.Value), expiresArg(replace.Expires), expected.Revision)
	} else {
		rev, ok, err = b.writeOne(ctx, "compare and swap", b.q.casValue, replace.Key,
			replace.Key, value(replace.Value), expiresArg(replace.Expires), value(expected.Value))
	}
	if err == nil && !ok {
		err = fmt.Errorf("postgres: compare and swap %q: %w", truncKey(replace.Key), backend.ErrCompareFailed)
	}
	return rev, err
}

// Delete implements backend.Backend.
func (b *Backend) Delete(ctx context.Context, key []byte) error {
	if err := backend.CheckKey(key); err != nil {
		return err
	}
	_, ok, err := b.writeOne(ctx, "delete", b.q.del, key, key)
	if err == nil && !ok {
		err = fmt.Errorf("postgres: delete %q: %w", truncKey(key), backend.ErrNotFound)
	}
	return err
}

// DeleteRange implements backend.Backend. It deletes the range in one
// statement, so all its delete events share one revision.
func (b *Backend) DeleteRange(ctx context.Context, start, end []byte) (int64, error) {
	if err := b.checkOpen("delete range"); err != nil {
		return 0, err
	}
	if err := backend.CheckRange(start, end); err != nil {
		return 0, err
	}
	var n int64
	var err error
	if end == nil {
		err = b.pool.QueryRow(ctx, b.q.deleteRangeOpen, value(start)).Scan(&n)
	} else {
		err = b.pool.QueryRow(ctx, b.q.deleteRange, value(start), end).Scan(&n)
	}
	if err != nil {
		return 0, wrap("delete range", start, err)
	}
	if n > 0 {
		b.changed()
	}
	return n, nil
}

// KeepAlive implements backend.Backend.
func (b *Backend) KeepAlive(ctx context.Context, key []byte, expires time.Time) (int64, error) {
	if err := backend.CheckKey(key); err != nil {
		return 0, err
	}
	rev, ok, err := b.writeOne(ctx, "keep alive", b.q.keepAlive, key, key, expiresArg(expires))
	if err == nil && !ok {
		err = fmt.Errorf("postgres: keep alive %q: %w", truncKey(key), backend.ErrNotFound)
	}
	return rev, err
}

// AtomicWrite implements backend.Backend. It runs one transaction: it
// locks every action's key (a placeholder row stands in for an absent key,
// so a concurrent writer cannot create it before the commit), checks the
// conditions, then writes.
func (b *Backend) AtomicWrite(ctx context.Context, actions []backend.ConditionalAction) (int64, error) {
	if err := b.checkOpen("atomic write"); err != nil {
		return 0, err
	}
	if err := backend.CheckActions(actions); err != nil {
		return 0, err
	}
	var lastErr error
	for range 5 {
		rev, err := b.atomicWrite(ctx, actions)
		var pe *pgconn.PgError
		if errors.As(err, &pe) && (pe.Code == "40P01" || pe.Code == "40001") && ctx.Err() == nil {
			lastErr = err // deadlock or serialization failure: nothing was written
			continue
		}
		if err != nil {
			var ce *backend.ConditionError
			if errors.As(err, &ce) {
				return 0, err
			}
			return 0, wrap("atomic write", nil, err)
		}
		b.changed()
		return rev, nil
	}
	return 0, wrap("atomic write", nil, lastErr)
}

func (b *Backend) atomicWrite(ctx context.Context, actions []backend.ConditionalAction) (int64, error) {
	keys := make([][]byte, len(actions))
	for i, a := range actions {
		keys[i] = a.Key
	}
	slices.SortFunc(keys, bytes.Compare)

	tx, err := b.pool.BeginTx(ctx, pgx.TxOptions{IsoLevel: pgx.ReadCommitted})
	if err != nil {
		return 0, err
	}
	defer tx.Rollback(context.WithoutCancel(ctx))

	if _, err := tx.Exec(ctx, b.q.awPlaceholders, keys); err != nil {
		return 0, err
	}
	type state struct {
		revision int64
		live     bool
		present  bool // a real row (not a placeholder), live or expired
	}
	cur := make(map[string]state, len(keys))
	rows, err := tx.Query(ctx, b.q.awLock, keys)
	if err != nil {
		return 0, err
	}
	for rows.Next() {
		var k []byte
		var s state
		if err := rows.Scan(&k, &s.revision, &s.live); err != nil {
			rows.Close()
			return 0, err
		}
		s.present = s.revision != 0
		cur[string(k)] = s
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return 0, err
	}
	for i, a := range actions {
		s := cur[string(a.Key)]
		ok := true
		switch a.Condition.Kind {
		case backend.Exists:
			ok = s.live
		case backend.NotExists:
			ok = !s.live
		case backend.Revision:
			ok = s.live && s.revision == a.Condition.Revision
		}
		if !ok {
			return 0, &backend.ConditionError{Index: i, Key: bytes.Clone(a.Key), Kind: a.Condition.Kind}
		}
	}

	var (
		putKeys, putVals [][]byte
		putExp           []pgtype.Timestamptz
		delKeys          [][]byte
	)
	for _, a := range actions {
		switch a.Action {
		case backend.ActionPut:
			putKeys = append(putKeys, a.Key)
			putVals = append(putVals, value(a.Item.Value))
			putExp = append(putExp, expiresArg(a.Item.Expires))
		case backend.ActionDelete:
			if cur[string(a.Key)].present {
				delKeys = append(delKeys, a.Key)
			}
		}
	}
	batch := &pgx.Batch{}
	var rev int64
	batch.Queue(b.q.awNextval).QueryRow(func(r pgx.Row) error { return r.Scan(&rev) })
	if len(putKeys) > 0 {
		batch.Queue(b.q.awPut, putKeys, putVals, putExp)
	}
	if len(delKeys) > 0 {
		batch.Queue(b.q.awDelete, delKeys)
	}
	if len(putKeys) == 0 && len(delKeys) == 0 {
		// Only checks: the revision is consumed, so record it as a no-op
		// for the change stream.
		batch.Queue(b.q.awNoop, keys[0])
	}
	batch.Queue(b.q.awCleanup, keys)
	if err := tx.SendBatch(ctx, batch).Close(); err != nil {
		return 0, err
	}
	if err := tx.Commit(ctx); err != nil {
		return 0, err
	}
	return rev, nil
}

// NewWatcher implements backend.Backend. The watcher receives the changes
// this backend's change stream reads from the change table, written by any
// instance on the same database. When the stream is down (the database is
// unreachable), NewWatcher waits for one reconnection attempt and then
// fails with an error wrapping backend.ErrWatchBroken.
func (b *Backend) NewWatcher(ctx context.Context, w backend.Watch) (backend.Watcher, error) {
	if err := b.checkOpen("new watcher"); err != nil {
		return nil, err
	}
	// The watcher must not replay changes committed before this call:
	// find the newest committed revision, and register once the stream
	// has published it.
	b.registering.Add(1)
	defer b.registering.Add(-1)
	var target int64
	err := b.pool.QueryRow(ctx, b.q.tailInit).Scan(&target, new([]byte))
	if err != nil && !errors.Is(err, pgx.ErrNoRows) {
		return nil, wrap("new watcher", nil, err)
	}
	waited, woken := false, false
	for {
		b.tmu.Lock()
		if b.closeErr != nil {
			b.tmu.Unlock()
			return nil, fmt.Errorf("postgres: new watcher: %w", b.closeErr)
		}
		if b.healthy && b.pos >= target {
			// Registered under tmu: the stream cannot publish, or break
			// and restart at a later position, between the check and the
			// registration.
			wt, err := b.fan.NewWatcher(ctx, w)
			b.tmu.Unlock()
			return wt, err
		}
		healthy, attempt, progress, tailErr := b.healthy, b.attempt, b.progress, b.tailErr
		b.tmu.Unlock()
		if healthy && !woken {
			// The newest revision may be one that sent no wake-up (a
			// failed Create's no-op): wake the stream instead of
			// waiting for its next poll.
			b.changed()
			woken = true
		}
		if !healthy {
			if waited {
				return nil, fmt.Errorf("postgres: new watcher: %w: %v", backend.ErrWatchBroken, tailErr)
			}
			select {
			case b.kick <- struct{}{}:
			default:
			}
		}
		select {
		case <-attempt:
			waited = !healthy
		case <-progress:
		case <-ctx.Done():
			return nil, fmt.Errorf("postgres: new watcher: %w", ctx.Err())
		}
	}
}

// Schema returns the schema that holds the backend's tables ("" for the
// connection's current schema).
func (b *Backend) Schema() string { return b.cfg.Schema }
