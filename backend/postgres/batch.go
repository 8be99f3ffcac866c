package postgres

import (
	"bytes"
	"context"
	"errors"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/sallyport/sallyport/backend"
)

// Single-key writes (Create, Put, Update, CompareAndSwap, Delete,
// KeepAlive) are one statement each. A write that finds no other write
// in flight goes straight to the database. Writes that come while others
// are in flight queue, and a committer sends up to maxBatch of them in
// one round trip, as one transaction: the statements run one after the
// other on one connection and commit together. Under concurrent writers
// that saves most of the per-statement cost (a transaction, a commit
// record, a round trip and its system calls); a lone writer pays nothing.
//
// Each statement still takes its own revision and locks only its own
// key, so the outcome is that of running the writes one after the other.
// A batch is sorted by key (stably, so two writes to one key keep their
// order), so two batches, or a batch and a DeleteRange, which locks in
// key order too, never deadlock. (An AtomicWrite that creates some of its
// keys locks those first; a deadlock with it is broken by the server, and
// the refused side reruns.)
//
// When the server reports an error for a statement, it rolls the whole
// transaction back, so nothing of the batch was written: each write is
// then run alone and gets its own outcome. When the connection fails
// instead, the outcome of every write in the batch is unknown, as for a
// lone write whose connection fails, and each gets the error.
const (
	maxBatch     = 64
	batchTimeout = 30 * time.Second // see runBatch
)

type writeReq struct {
	ctx  context.Context
	sql  string
	key  []byte
	args []any
	res  chan writeRes // buffered: the committer never waits for the caller
}

type writeRes struct {
	rev int64
	ok  bool
	err error
}

// writeQueue holds the writes waiting for a committer.
type writeQueue struct {
	mu      sync.Mutex
	queue   []*writeReq
	active  int  // writes and batches in flight
	stopped bool // the committers have stopped: Close
	wake    chan struct{}
	batches atomic.Int64 // batches of more than one write sent
}

// committers is how many batches may be in flight at once: half the
// pool, at least one, at most four, so that reads and the lone writer
// still find connections.
func committers(maxConns int32) int {
	return min(max(int(maxConns)/2, 1), 4)
}

// write runs one single-key write statement: at once when nothing else
// is in flight, otherwise in the next batch.
func (b *Backend) write(ctx context.Context, sql string, key []byte, args []any) (int64, bool, error) {
	w := &b.w
	w.mu.Lock()
	if w.stopped {
		w.mu.Unlock()
		return 0, false, backend.ErrClosed
	}
	if w.active == 0 && len(w.queue) == 0 {
		w.active++
		w.mu.Unlock()
		rev, ok, err := b.exec(ctx, sql, args)
		w.mu.Lock()
		w.active--
		w.mu.Unlock()
		return rev, ok, err
	}
	req := &writeReq{ctx: ctx, sql: sql, key: key, args: args, res: make(chan writeRes, 1)}
	w.queue = append(w.queue, req)
	w.mu.Unlock()
	w.signal()
	select {
	case r := <-req.res:
		return r.rev, r.ok, r.err
	case <-ctx.Done():
		// The write may still run (it may be on its way already), as
		// a statement whose context ends may still commit.
		return 0, false, ctx.Err()
	}
}

// signal wakes a committer, unless one is already due to wake.
func (w *writeQueue) signal() {
	select {
	case w.wake <- struct{}{}:
	default:
	}
}

// exec runs one write statement: its revision, or ok false when its
// condition did not hold.
func (b *Backend) exec(ctx context.Context, sql string, args []any) (int64, bool, error) {
	r := scanRevision(b.pool.QueryRow(ctx, sql, args...))
	return r.rev, r.ok, r.err
}

// scanRevision reads a write statement's result: the new revision, or
// no row when the write's condition did not hold.
func scanRevision(row pgx.Row) writeRes {
	var r writeRes
	err := row.Scan(&r.rev)
	switch {
	case err == nil:
		r.ok = true
	case !errors.Is(err, pgx.ErrNoRows):
		r.err = err
	}
	return r
}

// runAlone runs each write as a statement of its own and answers it.
func (b *Backend) runAlone(reqs []*writeReq) {
	for _, r := range reqs {
		r.res <- scanRevision(b.pool.QueryRow(r.ctx, r.sql, r.args...))
	}
}

// committer sends the queued writes in batches until ctx ends; then it
// answers every write still queued with ErrClosed.
func (b *Backend) committer(ctx context.Context) {
	defer b.wg.Done()
	w := &b.w
	for {
		select {
		case <-ctx.Done():
			w.mu.Lock()
			w.stopped = true
			left := w.queue
			w.queue = nil
			w.mu.Unlock()
			for _, r := range left {
				r.res <- writeRes{err: backend.ErrClosed}
			}
			return
		case <-w.wake:
		}
		for {
			w.mu.Lock()
			n := min(len(w.queue), maxBatch)
			if n == 0 {
				w.mu.Unlock()
				break
			}
			batch := slices.Clone(w.queue[:n])
			w.queue = slices.Delete(w.queue, 0, n)
			more := len(w.queue) > 0
			w.active++
			w.mu.Unlock()
			if more { // another committer may take the rest
				w.signal()
			}
			b.runBatch(ctx, batch)
			w.mu.Lock()
			w.active--
			w.mu.Unlock()
		}
	}
}

// runBatch runs the writes of one batch and answers each.
func (b *Backend) runBatch(ctx context.Context, reqs []*writeReq) {
	live := reqs[:0]
	for _, r := range reqs {
		if err := r.ctx.Err(); err != nil {
			r.res <- writeRes{err: err}
			continue
		}
		live = append(live, r)
	}
	if len(live) <= 1 {
		b.runAlone(live)
		return
	}
	b.w.batches.Add(1)
	slices.SortStableFunc(live, func(x, y *writeReq) int { return bytes.Compare(x.key, y.key) })
	batch := &pgx.Batch{}
	for _, r := range live {
		batch.Queue(r.sql, r.args...)
	}
	// The batch runs to its end whatever its callers' contexts do (each
	// caller stops waiting at its own deadline) and whether or not the
	// backend closes meanwhile, with a context that cannot end: with one
	// that could, batches whose connection broke left pgx context-watcher
	// goroutines behind (seen in TestServerRestart), and with one that
	// cannot, pgx starts none. Its deadline (b.batchTimeout) is set on
	// the connection's socket instead; when it passes, the connection is
	// closed, the server is asked to cancel the batch, and every write of
	// the batch gets the timeout, its outcome unknown (the cancel may
	// come after the commit).
	bctx := context.WithoutCancel(ctx)
	res := make([]writeRes, len(live))
	failed := b.sendBatch(bctx, batch, res)
	var pe *pgconn.PgError
	switch {
	case failed == nil:
		for i, r := range live {
			r.res <- res[i]
		}
	case errors.As(failed, &pe):
		// The server rolled the transaction back: run each alone.
		b.runAlone(live)
	default:
		for _, r := range live {
			r.res <- writeRes{err: failed}
		}
	}
}

// sendBatch sends one batch on a connection of the pool with a deadline
// on its socket, and fills res; it returns the first error.
func (b *Backend) sendBatch(ctx context.Context, batch *pgx.Batch, res []writeRes) error {
	conn, err := b.pool.Acquire(ctx)
	if err != nil {
		return err
	}
	defer conn.Release()
	sock := conn.Conn().PgConn().Conn()
	sock.SetDeadline(time.Now().Add(b.batchTimeout))
	br := conn.SendBatch(ctx, batch)
	var failed error
	for i := range res {
		res[i] = scanRevision(br.QueryRow())
		if failed == nil {
			failed = res[i].err
		}
	}
	if err := br.Close(); err != nil && failed == nil {
		failed = err
	}
	sock.SetDeadline(time.Time{}) // an error here means pgx closed it: the pool drops it
	if pgconn.Timeout(failed) {
		// The whole batch, its commit included, was sent: the server
		// would go on and may commit it later. Ask it to cancel.
		cctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		conn.Conn().PgConn().CancelRequest(cctx)
		cancel()
	}
	return failed
}
