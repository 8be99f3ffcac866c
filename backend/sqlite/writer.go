package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"github.com/sallyport/sallyport/backend"
)

// maxBatch is the most writes committed together.
const maxBatch = 128

// request is one write waiting for the writer.
type request struct {
	ctx  context.Context
	fn   func(w *wtx) error
	done chan response // buffered: the writer never blocks on it
}

type response struct {
	rev int64
	err error
}

// write hands fn to the writer goroutine and waits for its result. The
// context is honoured while the write waits for its turn; once the writer
// has started it, the write runs to its end, so that a write that commits
// is never reported as failed.
func (b *Backend) write(ctx context.Context, op string, fn func(w *wtx) error) (int64, error) {
	if err := b.check(ctx, op); err != nil {
		return 0, err
	}
	req := &request{ctx: ctx, fn: fn, done: make(chan response, 1)}
	select {
	case b.reqs <- req:
	case <-ctx.Done():
		return 0, fmt.Errorf("sqlite: %s: %w", op, ctx.Err())
	case <-b.stop:
		return 0, fmt.Errorf("sqlite: %s: %w", op, backend.ErrClosed)
	}
	r := <-req.done
	if r.err != nil {
		var ce *backend.ConditionError
		if errors.As(r.err, &ce) || errors.Is(r.err, backend.ErrNotFound) || errors.Is(r.err, backend.ErrAlreadyExists) ||
			errors.Is(r.err, backend.ErrCompareFailed) || errors.Is(r.err, ctx.Err()) {
			return 0, fmt.Errorf("sqlite: %s: %w", op, r.err)
		}
		return 0, b.fail(ctx, op, r.err)
	}
	return r.rev, nil
}

// writeLoop is the writer: it commits the writes that wait, in batches
// (group commit: one transaction and one fsync for all the writes that
// queued during the previous commit, each with its own revision), sweeps
// expired items and polls the change log for other processes' writes.
// Doing all of it in one goroutine keeps the fanout's events in revision
// order.
func (b *Backend) writeLoop() {
	defer b.wg.Done()
	poll := time.NewTicker(b.cfg.PollInterval)
	defer poll.Stop()
	sweep := time.NewTicker(b.cfg.SweepInterval)
	defer sweep.Stop()
	var marks []mark
	batch := make([]*request, 0, maxBatch)
	for {
		select {
		case <-b.stop:
			return
		case req := <-b.reqs:
			batch = append(batch[:0], req)
		drain:
			for len(batch) < maxBatch {
				select {
				case req := <-b.reqs:
					batch = append(batch, req)
				default:
					break drain
				}
			}
			b.commit(batch)
			clear(batch)
		case <-poll.C:
			if err := b.poll(); err != nil && !b.closed.Load() {
				b.cfg.Logger.Warn("sqlite: poll change log", "path", b.cfg.Path, "err", err)
			}
		case <-sweep.C:
			if err := b.sweep(); err != nil && !b.closed.Load() {
				b.cfg.Logger.Warn("sqlite: sweep expired items", "path", b.cfg.Path, "err", err)
			}
			var err error
			if marks, err = b.prune(marks); err != nil && !b.closed.Load() {
				b.cfg.Logger.Warn("sqlite: prune change log", "path", b.cfg.Path, "err", err)
			}
		}
	}
}

// commit runs a batch of writes in one transaction and replies to each.
// With more than one write, each runs inside a savepoint, so that one
// failing (a compare that does not hold) leaves the others.
func (b *Backend) commit(batch []*request) {
	results := make([]response, len(batch))
	events, err := b.commitTx(batch, results)
	if err != nil {
		for i := range results {
			if results[i].err == nil {
				results[i] = response{err: err}
			}
		}
	} else if len(events) > 0 {
		b.fanout.Publish(events...)
		b.published = events[len(events)-1].Item.Revision
	}
	for i, req := range batch {
		req.done <- results[i]
	}
}

func (b *Backend) commitTx(batch []*request, results []response) ([]backend.Event, error) {
	ctx := context.Background()
	tx, err := b.wdb.BeginTx(ctx, nil) // BEGIN IMMEDIATE: the file's write lock
	if err != nil {
		return nil, err
	}
	defer tx.Rollback()
	var events []backend.Event
	cur := b.published // the revision a write that changes nothing returns
	gapChecked := false
	multi := len(batch) > 1
	changed := false
	for i, req := range batch {
		if err := req.ctx.Err(); err != nil {
			results[i].err = err
			continue
		}
		if multi {
			if _, err := tx.ExecContext(ctx, `SAVEPOINT w`); err != nil {
				return nil, err
			}
		}
		w := &wtx{ctx: ctx, tx: tx, st: b.w, now: now()}
		if err := req.fn(w); err != nil {
			results[i].err = err
			if !multi {
				return nil, nil // the deferred rollback undoes it
			}
			if _, err := tx.ExecContext(ctx, `ROLLBACK TO w; RELEASE w`); err != nil {
				return nil, err
			}
			continue
		}
		if multi {
			if _, err := tx.ExecContext(ctx, `RELEASE w`); err != nil {
				return nil, err
			}
		}
		if w.rev != 0 {
			if !gapChecked {
				gapChecked = true
				if w.rev-1 > b.published {
					// Another process wrote since our last publish: deliver
					// its changes first, in order.
					other, err := b.otherChanges(ctx, tx, w.rev-1)
					if err != nil {
						return nil, err
					}
					events = append(other, events...)
				}
			}
			cur = w.rev
			changed = true
			events = append(events, w.events...)
		}
		results[i].rev = cur
	}
	if !changed {
		return events, nil // the deferred rollback ends the transaction
	}
	if err := tx.Commit(); err != nil {
		return nil, err
	}
	return events, nil
}

// otherChanges returns the changes of revisions (b.published, upTo],
// written by other processes, when this process has watchers. A pruned
// change log closes the watchers with ErrWatchBroken.
func (b *Backend) otherChanges(ctx context.Context, q querier, upTo int64) ([]backend.Event, error) {
	if b.fanout.Len() == 0 {
		return nil, nil
	}
	events, err := b.changes(ctx, q, b.published, upTo)
	if errors.Is(err, backend.ErrWatchBroken) {
		b.fanout.CloseWatchers(fmt.Errorf("sqlite: %w", err))
		return nil, nil
	}
	return events, err
}

// sweep deletes the items expired now, under one revision, with delete
// events. The writer calls it.
func (b *Backend) sweep() error {
	var any bool
	t := now()
	if err := b.rdb.QueryRow(`SELECT EXISTS (SELECT 1 FROM sallyport_kv WHERE expires > 0 AND expires <= ?)`, t).Scan(&any); err != nil || !any {
		return err
	}
	req := &request{ctx: context.Background(), fn: sweepTx, done: make(chan response, 1)}
	b.commit([]*request{req})
	return (<-req.done).err
}

func sweepTx(w *wtx) error {
	rows, err := w.tx.QueryContext(w.ctx, `DELETE FROM sallyport_kv WHERE expires > 0 AND expires <= ? RETURNING key`, w.now)
	if err != nil {
		return err
	}
	keys, err := scanKeys(rows)
	if err != nil || len(keys) == 0 {
		return err
	}
	return w.deleted(keys)
}

// mark says which revision was current when, for pruning the change log.
type mark struct {
	at  time.Time
	rev int64
}

// prune deletes change-log rows older than ChangeRetention: it records
// the current revision at each call and cuts at the newest record that is
// old enough. It returns the records to keep.
func (b *Backend) prune(marks []mark) ([]mark, error) {
	var cur int64
	if err := b.rdb.QueryRow(`SELECT revision FROM sallyport_meta WHERE id = 1`).Scan(&cur); err != nil {
		return marks, err
	}
	t := time.Now()
	marks = append(marks, mark{t, cur})
	cut := int64(-1)
	for len(marks) > 0 && t.Sub(marks[0].at) >= b.cfg.ChangeRetention {
		cut = marks[0].rev
		marks = marks[1:]
	}
	if cut <= 0 {
		return marks, nil
	}
	_, err := b.wdb.Exec(`DELETE FROM sallyport_changes WHERE revision <= ?`, cut)
	return marks, err
}

// poll delivers changes committed by other processes. The writer calls it.
func (b *Backend) poll() error {
	ctx := context.Background()
	var cur int64
	if err := b.rdb.QueryRowContext(ctx, `SELECT revision FROM sallyport_meta WHERE id = 1`).Scan(&cur); err != nil {
		return err
	}
	if cur <= b.published {
		return nil
	}
	if b.fanout.Len() == 0 {
		b.published = cur
		return nil
	}
	events, err := b.changes(ctx, b.rdb, b.published, cur)
	if errors.Is(err, backend.ErrWatchBroken) {
		b.fanout.CloseWatchers(fmt.Errorf("sqlite: %w", err))
		b.published = cur
		return nil
	}
	if err != nil {
		return err
	}
	b.fanout.Publish(events...)
	b.published = cur
	return nil
}

// Close stops the writer goroutine (after the batch it is committing),
// closes every watcher with ErrClosed and closes the database. A second
// Close returns ErrClosed.
func (b *Backend) Close() error {
	if !b.closed.CompareAndSwap(false, true) {
		return fmt.Errorf("sqlite: close: %w", backend.ErrClosed)
	}
	close(b.stop)
	b.wg.Wait()
	b.fanout.Close()
	errs := []error{b.rget.Close()}
	for _, st := range []*sql.Stmt{b.w.get, b.w.bump, b.w.log, b.w.upsert, b.w.del} {
		errs = append(errs, st.Close())
	}
	errs = append(errs, b.rdb.Close(), b.wdb.Close())
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("sqlite: close: %w", err)
	}
	return nil
}
