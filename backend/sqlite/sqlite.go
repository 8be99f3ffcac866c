package sqlite

import (
	"bytes"
	"context"
	"database/sql"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	_ "modernc.org/sqlite" // the "sqlite" database/sql driver

	"github.com/sallyport/sallyport/backend"
)

func init() {
	backend.Register("sqlite", openURI)
}

// Config configures a SQLite backend. Only Path is required.
type Config struct {
	// Path is the database file. It is created, with the schema, when
	// missing; its directory must exist.
	Path string

	// SweepInterval is how often expired items are deleted (with delete
	// events) and old change-log rows pruned. Expired items are invisible
	// to reads at once whatever the interval. Zero means 1s.
	SweepInterval time.Duration

	// PollInterval is how often the change log is read for writes made by
	// other processes using the same file, for this process's watchers.
	// Writes made through this Backend reach its watchers at once. Zero
	// means 250ms.
	PollInterval time.Duration

	// ChangeRetention is how long rows stay in the change log. A process
	// whose watchers fall further behind than this sees them fail with
	// ErrWatchBroken. Zero means 1 minute.
	ChangeRetention time.Duration

	// BusyTimeout is how long a statement waits for a lock held by another
	// process before failing. Zero means 10s.
	BusyTimeout time.Duration

	// ReadConns is the number of reader connections. Zero means 4.
	ReadConns int

	// Logger receives background errors (sweeps, polls). Nil discards.
	Logger *slog.Logger
}

func (c *Config) setDefaults() error {
	if c.Path == "" {
		return fmt.Errorf("%w: sqlite: Config.Path is empty", backend.ErrInvalid)
	}
	c.Path = filepath.Clean(c.Path)
	for _, d := range []struct {
		name string
		v    *time.Duration
		def  time.Duration
	}{
		{"SweepInterval", &c.SweepInterval, time.Second},
		{"PollInterval", &c.PollInterval, 250 * time.Millisecond},
		{"ChangeRetention", &c.ChangeRetention, time.Minute},
		{"BusyTimeout", &c.BusyTimeout, 10 * time.Second},
	} {
		if *d.v < 0 {
			return fmt.Errorf("%w: sqlite: negative Config.%s", backend.ErrInvalid, d.name)
		}
		if *d.v == 0 {
			*d.v = d.def
		}
	}
	if c.ReadConns < 0 {
		return fmt.Errorf("%w: sqlite: negative Config.ReadConns", backend.ErrInvalid)
	}
	if c.ReadConns == 0 {
		c.ReadConns = 4
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	return nil
}

func openURI(ctx context.Context, u *url.URL) (backend.Backend, error) {
	cfg, err := ParseURI(u)
	if err != nil {
		return nil, err
	}
	return Open(ctx, cfg)
}

// ParseURI returns the Config a URI describes: "sqlite:///abs/path.db",
// "sqlite://rel/path.db" or "sqlite:rel/path.db", with the parameters
// sweep_interval, poll_interval, change_retention, busy_timeout (Go
// durations) and read_conns. It does not validate the Config; Open does.
func ParseURI(u *url.URL) (Config, error) {
	var cfg Config
	switch {
	case u.Opaque != "":
		cfg.Path = u.Opaque
	default:
		cfg.Path = u.Host + u.Path
	}
	if p, err := url.PathUnescape(cfg.Path); err == nil {
		cfg.Path = p
	}
	for k, vs := range u.Query() {
		v := vs[len(vs)-1]
		var d *time.Duration
		switch k {
		case "sweep_interval":
			d = &cfg.SweepInterval
		case "poll_interval":
			d = &cfg.PollInterval
		case "change_retention":
			d = &cfg.ChangeRetention
		case "busy_timeout":
			d = &cfg.BusyTimeout
		case "read_conns":
			n, err := strconv.Atoi(v)
			if err != nil {
				return Config{}, fmt.Errorf("%w: sqlite: read_conns=%q", backend.ErrInvalid, v)
			}
			cfg.ReadConns = n
			continue
		default:
			return Config{}, fmt.Errorf("%w: sqlite: unknown URI parameter %q", backend.ErrInvalid, k)
		}
		dur, err := time.ParseDuration(v)
		if err != nil {
			return Config{}, fmt.Errorf("%w: sqlite: %s: %v", backend.ErrInvalid, k, err)
		}
		*d = dur
	}
	if cfg.Path == "" {
		return Config{}, fmt.Errorf("%w: sqlite: the URI names no file (sqlite:///abs/path.db or sqlite://rel/path.db)", backend.ErrInvalid)
	}
	return cfg, nil
}

const schema = `
CREATE TABLE IF NOT EXISTS sallyport_meta (
	id       INTEGER PRIMARY KEY CHECK (id = 1),
	revision INTEGER NOT NULL,
	version  INTEGER NOT NULL
);
INSERT OR IGNORE INTO sallyport_meta (id, revision, version) VALUES (1, 0, 1);
CREATE TABLE IF NOT EXISTS sallyport_kv (
	key      BLOB PRIMARY KEY NOT NULL,
	value    BLOB,
	revision INTEGER NOT NULL,
	expires  INTEGER NOT NULL
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS sallyport_kv_expires ON sallyport_kv (expires) WHERE expires > 0;
CREATE TABLE IF NOT EXISTS sallyport_changes (
	revision INTEGER NOT NULL,
	seq      INTEGER NOT NULL,
	op       INTEGER NOT NULL,
	key      BLOB NOT NULL,
	value    BLOB,
	expires  INTEGER NOT NULL,
	PRIMARY KEY (revision, seq)
);
`

// Schema is the SQL that creates the tables this driver uses, exported
// for comparisons and tooling. Keys are BLOBs, so they sort as bytes.
const Schema = schema

// Pragmas are the connection settings, as modernc.org/sqlite DSN
// parameters, that every connection uses (plus busy_timeout).
const Pragmas = "_pragma=journal_mode(WAL)&_pragma=synchronous(FULL)"

// DSN returns the modernc.org/sqlite data source name for path with the
// driver's pragmas; writer selects BEGIN IMMEDIATE transactions.
func DSN(path string, busy time.Duration, writer bool) string {
	prefix := "file:"
	if filepath.IsAbs(path) {
		prefix = "file://" // an empty authority, then the absolute path
	}
	dsn := prefix + (&url.URL{Path: filepath.Clean(path)}).EscapedPath() + "?" + Pragmas + fmt.Sprintf("&_pragma=busy_timeout(%d)", busy.Milliseconds())
	if writer {
		dsn += "&_txlock=immediate"
	}
	return dsn
}

const (
	opPut    = 1
	opDelete = 2
)

// The hot statements, prepared once per connection.
const (
	sqlGet    = `SELECT value, revision, expires FROM sallyport_kv WHERE key = ? AND (expires = 0 OR expires > ?)`
	sqlBump   = `UPDATE sallyport_meta SET revision = revision + 1 WHERE id = 1 RETURNING revision`
	sqlLog    = `INSERT INTO sallyport_changes (revision, seq, op, key, value, expires) VALUES (?, ?, ?, ?, ?, ?)`
	sqlUpsert = `INSERT INTO sallyport_kv (key, value, revision, expires) VALUES (?, ?, ?, ?)
		ON CONFLICT (key) DO UPDATE SET value = excluded.value, revision = excluded.revision, expires = excluded.expires`
	sqlDelete = `DELETE FROM sallyport_kv WHERE key = ?`
)

// stmts are the prepared hot statements of the writer connection.
type stmts struct {
	get, bump, log, upsert, del *sql.Stmt
}

func prepare(ctx context.Context, db *sql.DB) (*stmts, error) {
	var s stmts
	for _, p := range []struct {
		st  **sql.Stmt
		sql string
	}{{&s.get, sqlGet}, {&s.bump, sqlBump}, {&s.log, sqlLog}, {&s.upsert, sqlUpsert}, {&s.del, sqlDelete}} {
		st, err := db.PrepareContext(ctx, p.sql)
		if err != nil {
			return nil, err
		}
		*p.st = st
	}
	return &s, nil
}

// Backend is a backend.Backend stored in one SQLite file.
type Backend struct {
	cfg    Config
	rdb    *sql.DB // readers
	rget   *sql.Stmt
	wdb    *sql.DB // the one writer connection
	w      *stmts
	fanout backend.Fanout

	// reqs carries writes to writeLoop, the one goroutine that writes,
	// sweeps, polls the change log and publishes.
	reqs      chan *request
	published int64 // last revision delivered to the fanout; owned by writeLoop

	closed atomic.Bool
	stop   chan struct{}
	wg     sync.WaitGroup
}

var _ backend.Backend = (*Backend)(nil)

// Open opens (creating when missing) the database at cfg.Path and starts
// the writer goroutine, which also sweeps expired items and polls the
// change log. Close stops it.
func Open(ctx context.Context, cfg Config) (*Backend, error) {
	if err := cfg.setDefaults(); err != nil {
		return nil, err
	}
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("sqlite: open: %w", err)
	}
	if dir := filepath.Dir(cfg.Path); dir != "" {
		if _, err := os.Stat(dir); err != nil {
			return nil, fmt.Errorf("sqlite: open %s: %w", cfg.Path, err)
		}
	}
	wdb, err := sql.Open("sqlite", DSN(cfg.Path, cfg.BusyTimeout, true))
	if err != nil {
		return nil, fmt.Errorf("sqlite: open %s: %w", cfg.Path, err)
	}
	wdb.SetMaxOpenConns(1)
	wdb.SetMaxIdleConns(1)
	wdb.SetConnMaxLifetime(0)
	if _, err := wdb.ExecContext(ctx, schema); err != nil {
		wdb.Close()
		return nil, fmt.Errorf("sqlite: open %s: create schema: %w", cfg.Path, err)
	}
	var version int
	var rev int64
	if err := wdb.QueryRowContext(ctx, `SELECT version, revision FROM sallyport_meta WHERE id = 1`).Scan(&version, &rev); err != nil {
		wdb.Close()
		return nil, fmt.Errorf("sqlite: open %s: %w", cfg.Path, err)
	}
	if version != 1 {
		wdb.Close()
		return nil, fmt.Errorf("sqlite: open %s: schema version %d, this driver knows 1", cfg.Path, version)
	}
	rdb, err := sql.Open("sqlite", DSN(cfg.Path, cfg.BusyTimeout, false)+"&_query_only=1")
	if err != nil {
		wdb.Close()
		return nil, fmt.Errorf("sqlite: open %s: %w", cfg.Path, err)
	}
	rdb.SetMaxOpenConns(cfg.ReadConns)
	rdb.SetMaxIdleConns(cfg.ReadConns)
	rdb.SetConnMaxLifetime(0)
	if err := rdb.PingContext(ctx); err != nil {
		rdb.Close()
		wdb.Close()
		return nil, fmt.Errorf("sqlite: open %s: %w", cfg.Path, err)
	}
	ws, err := prepare(ctx, wdb)
	var rget *sql.Stmt
	if err == nil {
		rget, err = rdb.PrepareContext(ctx, sqlGet)
	}
	if err != nil {
		rdb.Close()
		wdb.Close()
		return nil, fmt.Errorf("sqlite: open %s: prepare: %w", cfg.Path, err)
	}
	b := &Backend{
		cfg:       cfg,
		rdb:       rdb,
		rget:      rget,
		wdb:       wdb,
		w:         ws,
		reqs:      make(chan *request),
		published: rev,
		stop:      make(chan struct{}),
	}
	b.wg.Add(1)
	go b.writeLoop()
	return b, nil
}

// Path returns the database file's path.
func (b *Backend) Path() string { return b.cfg.Path }

// fail wraps err for op, preferring ErrClosed and the context's error when
// they explain it.
func (b *Backend) fail(ctx context.Context, op string, err error) error {
	if b.closed.Load() && !errors.Is(err, backend.ErrClosed) {
		return fmt.Errorf("sqlite: %s: %w", op, backend.ErrClosed)
	}
	if cerr := ctx.Err(); cerr != nil && !errors.Is(err, cerr) {
		return fmt.Errorf("sqlite: %s: %w (%v)", op, cerr, err)
	}
	return fmt.Errorf("sqlite: %s: %w", op, err)
}

func (b *Backend) check(ctx context.Context, op string) error {
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("sqlite: %s: %w", op, err)
	}
	if b.closed.Load() {
		return fmt.Errorf("sqlite: %s: %w", op, backend.ErrClosed)
	}
	return nil
}

func now() int64 { return time.Now().UnixNano() }

func unixNano(t time.Time) int64 {
	if t.IsZero() {
		return 0
	}
	if n := t.UnixNano(); n != 0 {
		return n
	}
	return 1 // 0 means "never"
}

func expiresTime(n int64) time.Time {
	if n == 0 {
		return time.Time{}
	}
	return time.Unix(0, n)
}

// blob returns v as a non-nil slice: a nil []byte would be stored as NULL.
func blob(v []byte) []byte {
	if v == nil {
		return []byte{}
	}
	return v
}

// Get implements backend.Backend.
func (b *Backend) Get(ctx context.Context, key []byte) (backend.Item, error) {
	if err := backend.CheckKey(key); err != nil {
		return backend.Item{}, fmt.Errorf("sqlite: get: %w", err)
	}
	if err := b.check(ctx, "get"); err != nil {
		return backend.Item{}, err
	}
	it := backend.Item{Key: bytes.Clone(key)}
	var exp int64
	err := b.rget.QueryRowContext(ctx, key, now()).
		Scan(&it.Value, &it.Revision, &exp)
	if errors.Is(err, sql.ErrNoRows) {
		return backend.Item{}, fmt.Errorf("sqlite: get %q: %w", key, backend.ErrNotFound)
	}
	if err != nil {
		return backend.Item{}, b.fail(ctx, "get", err)
	}
	it.Expires = expiresTime(exp)
	return it, nil
}

// rangeClause returns the WHERE conditions and arguments for [start, end).
func rangeClause(start, end []byte) (string, []any) {
	var conds []string
	var args []any
	if len(start) > 0 {
		conds = append(conds, "key >= ?")
		args = append(args, start)
	}
	if end != nil {
		conds = append(conds, "key < ?")
		args = append(args, blob(end))
	}
	if len(conds) == 0 {
		return "1", nil
	}
	return strings.Join(conds, " AND "), args
}

// GetRange implements backend.Backend.
func (b *Backend) GetRange(ctx context.Context, start, end []byte, limit int) (backend.Result, error) {
	if err := backend.CheckRange(start, end); err != nil {
		return backend.Result{}, fmt.Errorf("sqlite: get range: %w", err)
	}
	if err := b.check(ctx, "get range"); err != nil {
		return backend.Result{}, err
	}
	if limit <= 0 {
		limit = backend.DefaultRangeLimit
	}
	where, args := rangeClause(start, end)
	args = append(args, now(), limit+1)
	rows, err := b.rdb.QueryContext(ctx, `SELECT key, value, revision, expires FROM sallyport_kv WHERE `+where+` AND (expires = 0 OR expires > ?) ORDER BY key LIMIT ?`, args...)
	if err != nil {
		return backend.Result{}, b.fail(ctx, "get range", err)
	}
	defer rows.Close()
	var res backend.Result
	for rows.Next() {
		var it backend.Item
		var exp int64
		if err := rows.Scan(&it.Key, &it.Value, &it.Revision, &exp); err != nil {
			return backend.Result{}, b.fail(ctx, "get range", err)
		}
		if len(res.Items) == limit {
			res.Next = it.Key
			break
		}
		it.Expires = expiresTime(exp)
		res.Items = append(res.Items, it)
	}
	if err := rows.Err(); err != nil {
		return backend.Result{}, b.fail(ctx, "get range", err)
	}
	return res, nil
}

// wtx is one write transaction.
type wtx struct {
	ctx    context.Context
	tx     *sql.Tx
	st     *stmts
	now    int64
	rev    int64 // 0 until the first change
	events []backend.Event
}

type row struct {
	value   []byte
	rev     int64
	expires int64
}

// get returns the live row at key, or nil.
func (w *wtx) get(key []byte) (*row, error) {
	var r row
	err := w.tx.StmtContext(w.ctx, w.st.get).QueryRowContext(w.ctx, key, w.now).
		Scan(&r.value, &r.rev, &r.expires)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	return &r, nil
}

// bump takes the next revision for this transaction's changes.
func (w *wtx) bump() error {
	if w.rev != 0 {
		return nil
	}
	return w.tx.StmtContext(w.ctx, w.st.bump).QueryRowContext(w.ctx).Scan(&w.rev)
}

func (w *wtx) logChange(op int, key, value []byte, expires int64) error {
	_, err := w.tx.StmtContext(w.ctx, w.st.log).ExecContext(w.ctx,
		w.rev, len(w.events), op, key, blob(value), expires)
	if err != nil {
		return err
	}
	ev := backend.Event{Type: backend.OpPut, Item: backend.Item{Key: bytes.Clone(key), Revision: w.rev}}
	if op == opDelete {
		ev.Type = backend.OpDelete
	} else {
		ev.Item.Value = bytes.Clone(value)
		ev.Item.Expires = expiresTime(expires)
	}
	w.events = append(w.events, ev)
	return nil
}

func (w *wtx) put(key, value []byte, expires int64) error {
	if err := w.bump(); err != nil {
		return err
	}
	if _, err := w.tx.StmtContext(w.ctx, w.st.upsert).ExecContext(w.ctx,
		key, blob(value), w.rev, expires); err != nil {
		return err
	}
	return w.logChange(opPut, key, value, expires)
}

func (w *wtx) del(key []byte) error {
	if err := w.bump(); err != nil {
		return err
	}
	if _, err := w.tx.StmtContext(w.ctx, w.st.del).ExecContext(w.ctx, key); err != nil {
		return err
	}
	return w.logChange(opDelete, key, nil, 0)
}

// scanKeys reads a one-column result of keys and closes rows.
func scanKeys(rows *sql.Rows) ([][]byte, error) {
	defer rows.Close()
	var keys [][]byte
	for rows.Next() {
		var k []byte
		if err := rows.Scan(&k); err != nil {
			return nil, err
		}
		keys = append(keys, k)
	}
	return keys, rows.Err()
}

// deleted logs the deletion of keys, already removed from the table,
// under one revision, in key order (RETURNING has no order).
func (w *wtx) deleted(keys [][]byte) error {
	if err := w.bump(); err != nil {
		return err
	}
	slices.SortFunc(keys, bytes.Compare)
	for _, k := range keys {
		if err := w.logChange(opDelete, k, nil, 0); err != nil {
			return err
		}
	}
	return nil
}

type querier interface {
	QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error)
}

// changes reads the change log for revisions in (after, upTo]. It returns
// an error wrapping ErrWatchBroken when part of it was pruned.
func (b *Backend) changes(ctx context.Context, q querier, after, upTo int64) ([]backend.Event, error) {
	rows, err := q.QueryContext(ctx, `SELECT revision, op, key, value, expires FROM sallyport_changes WHERE revision > ? AND revision <= ? ORDER BY revision, seq`, after, upTo)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var events []backend.Event
	next := after + 1
	for rows.Next() {
		var ev backend.Event
		var op int
		var exp int64
		if err := rows.Scan(&ev.Item.Revision, &op, &ev.Item.Key, &ev.Item.Value, &exp); err != nil {
			return nil, err
		}
		if ev.Item.Revision > next {
			return nil, fmt.Errorf("%w: change log pruned after revision %d", backend.ErrWatchBroken, after)
		}
		next = ev.Item.Revision + 1
		ev.Type = backend.OpPut
		if op == opDelete {
			ev.Type = backend.OpDelete
			ev.Item.Value = nil
		} else {
			ev.Item.Expires = expiresTime(exp)
		}
		events = append(events, ev)
	}
	if err := rows.Err(); err != nil {
		return nil, err
	}
	if next <= upTo {
		return nil, fmt.Errorf("%w: change log pruned after revision %d", backend.ErrWatchBroken, after)
	}
	return events, nil
}

// Create implements backend.Backend.
func (b *Backend) Create(ctx context.Context, item backend.Item) (int64, error) {
	if err := backend.CheckItem(item); err != nil {
		return 0, fmt.Errorf("sqlite: create: %w", err)
	}
	return b.write(ctx, "create", func(w *wtx) error {
		cur, err := w.get(item.Key)
		if err != nil {
			return err
		}
		if cur != nil {
			return fmt.Errorf("%q: %w", item.Key, backend.ErrAlreadyExists)
		}
		return w.put(item.Key, item.Value, unixNano(item.Expires))
	})
}

// Put implements backend.Backend.
func (b *Backend) Put(ctx context.Context, item backend.Item) (int64, error) {
	if err := backend.CheckItem(item); err != nil {
		return 0, fmt.Errorf("sqlite: put: %w", err)
	}
	return b.write(ctx, "put", func(w *wtx) error {
		return w.put(item.Key, item.Value, unixNano(item.Expires))
	})
}

// Update implements backend.Backend.
func (b *Backend) Update(ctx context.Context, item backend.Item) (int64, error) {
	if err := backend.CheckItem(item); err != nil {
		return 0, fmt.Errorf("sqlite: update: %w", err)
	}
	return b.write(ctx, "update", func(w *wtx) error {
		cur, err := w.get(item.Key)
		if err != nil {
			return err
		}
		if cur == nil {
			return fmt.Errorf("%q: %w", item.Key, backend.ErrNotFound)
		}
		return w.put(item.Key, item.Value, unixNano(item.Expires))
	})
}

// CompareAndSwap implements backend.Backend.
func (b *Backend) CompareAndSwap(ctx context.Context, expected, replace backend.Item) (int64, error) {
	if err := backend.CheckItem(replace); err != nil {
		return 0, fmt.Errorf("sqlite: compare and swap: %w", err)
	}
	if expected.Key != nil && !bytes.Equal(expected.Key, replace.Key) {
		return 0, fmt.Errorf("sqlite: compare and swap: %w: expected key %q differs from %q", backend.ErrInvalid, expected.Key, replace.Key)
	}
	return b.write(ctx, "compare and swap", func(w *wtx) error {
		cur, err := w.get(replace.Key)
		switch {
		case err != nil:
			return err
		case cur == nil:
			return fmt.Errorf("%q is absent: %w", replace.Key, backend.ErrCompareFailed)
		case expected.Revision != 0 && cur.rev != expected.Revision:
			return fmt.Errorf("%q is at revision %d, not %d: %w", replace.Key, cur.rev, expected.Revision, backend.ErrCompareFailed)
		case expected.Revision == 0 && !bytes.Equal(cur.value, expected.Value):
			return fmt.Errorf("%q has another value: %w", replace.Key, backend.ErrCompareFailed)
		}
		return w.put(replace.Key, replace.Value, unixNano(replace.Expires))
	})
}

// Delete implements backend.Backend.
func (b *Backend) Delete(ctx context.Context, key []byte) error {
	if err := backend.CheckKey(key); err != nil {
		return fmt.Errorf("sqlite: delete: %w", err)
	}
	_, err := b.write(ctx, "delete", func(w *wtx) error {
		cur, err := w.get(key)
		if err != nil {
			return err
		}
		if cur == nil {
			return fmt.Errorf("%q: %w", key, backend.ErrNotFound)
		}
		return w.del(key)
	})
	return err
}

// DeleteRange implements backend.Backend. The range is removed in one
// transaction under one revision. Expired items in the range are left to
// the sweeper (which sends their delete events) and are not counted.
func (b *Backend) DeleteRange(ctx context.Context, start, end []byte) (int64, error) {
	if err := backend.CheckRange(start, end); err != nil {
		return 0, fmt.Errorf("sqlite: delete range: %w", err)
	}
	var n int64
	_, err := b.write(ctx, "delete range", func(w *wtx) error {
		n = 0
		where, args := rangeClause(start, end)
		rows, err := w.tx.QueryContext(w.ctx, `DELETE FROM sallyport_kv WHERE `+where+` AND (expires = 0 OR expires > ?) RETURNING key`, append(args, w.now)...)
		if err != nil {
			return err
		}
		keys, err := scanKeys(rows)
		if err != nil || len(keys) == 0 {
			return err
		}
		if err := w.deleted(keys); err != nil {
			return err
		}
		n = int64(len(keys))
		return nil
	})
	if err != nil {
		return 0, err
	}
	return n, nil
}

// KeepAlive implements backend.Backend.
func (b *Backend) KeepAlive(ctx context.Context, key []byte, expires time.Time) (int64, error) {
	if err := backend.CheckKey(key); err != nil {
		return 0, fmt.Errorf("sqlite: keep alive: %w", err)
	}
	return b.write(ctx, "keep alive", func(w *wtx) error {
		cur, err := w.get(key)
		if err != nil {
			return err
		}
		if cur == nil {
			return fmt.Errorf("%q: %w", key, backend.ErrNotFound)
		}
		return w.put(key, cur.value, unixNano(expires))
	})
}

// AtomicWrite implements backend.Backend.
func (b *Backend) AtomicWrite(ctx context.Context, actions []backend.ConditionalAction) (int64, error) {
	if err := backend.CheckActions(actions); err != nil {
		return 0, fmt.Errorf("sqlite: atomic write: %w", err)
	}
	return b.write(ctx, "atomic write", func(w *wtx) error {
		present := make([]bool, len(actions))
		for i, a := range actions {
			cur, err := w.get(a.Key)
			if err != nil {
				return err
			}
			present[i] = cur != nil
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
		for i, a := range actions {
			var err error
			switch a.Action {
			case backend.ActionPut:
				err = w.put(a.Key, a.Item.Value, unixNano(a.Item.Expires))
			case backend.ActionDelete:
				if present[i] {
					err = w.del(a.Key)
				}
			}
			if err != nil {
				return err
			}
		}
		return nil
	})
}

// NewWatcher implements backend.Backend. Changes made through this Backend
// are delivered as they commit; changes made by other processes using the
// same file are delivered within Config.PollInterval.
func (b *Backend) NewWatcher(ctx context.Context, w backend.Watch) (backend.Watcher, error) {
	if err := b.check(ctx, "new watcher"); err != nil {
		return nil, err
	}
	wt, err := b.fanout.NewWatcher(ctx, w)
	if err != nil {
		return nil, fmt.Errorf("sqlite: %w", err)
	}
	return wt, nil
}
