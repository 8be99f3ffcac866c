package postgres

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgtype"

	"github.com/sallyport/sallyport/backend"
)

const (
	// tailBatch is how many change rows one poll reads.
	tailBatch = 1000
	// initWindow is how many revisions below the starting position the
	// stream watches for late commits when it (re)starts.
	initWindow = 1000
	// maxSkipped bounds the set of skipped revisions watched for late
	// commits.
	maxSkipped = 10000
	// lateWindow is how long a skipped revision is watched.
	lateWindow = 10 * time.Minute
	// lateCheckEvery is how often skipped revisions are looked up.
	lateCheckEvery = time.Second
	// tailQueryTimeout bounds one query of the change stream, so a dead
	// connection is noticed.
	tailQueryTimeout = 15 * time.Second
)

// errLateCommit breaks the watchers when a revision the stream moved past
// commits after all.
var errLateCommit = errors.New("postgres: a revision committed after the change stream passed it")

// tailLoop runs the change stream: a session reads the change table from
// its position and publishes to the watchers; when a session fails, the
// watchers are broken and a new session starts after a backoff.
func (b *Backend) tailLoop(ctx context.Context) {
	defer b.wg.Done()
	backoff := 50 * time.Millisecond
	for {
		start := time.Now()
		err := b.tailSession(ctx)
		if ctx.Err() != nil {
			return
		}
		b.log.Warn("postgres: change stream broken", "err", err)
		b.tmu.Lock()
		b.healthy = false
		b.tailErr = err
		close(b.attempt)
		b.attempt = make(chan struct{})
		b.fan.CloseWatchers(fmt.Errorf("postgres: change stream: %w: %v", backend.ErrWatchBroken, err))
		b.tmu.Unlock()
		if time.Since(start) > 10*time.Second {
			backoff = 50 * time.Millisecond
		}
		t := time.NewTimer(backoff)
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-b.kick:
		case <-t.C:
		}
		t.Stop()
		backoff = min(backoff*2, 2*time.Second)
	}
}

// tailState is the position of one stream session.
type tailState struct {
	rev      int64
	key      []byte
	gapSince time.Time           // when the stream first waited at the current gap
	skipped  map[int64]time.Time // revisions moved past, watched for late commits
	nextLate time.Time
}

func (b *Backend) tailSession(ctx context.Context) error {
	cc := b.pool.Config().ConnConfig.Copy()
	cctx, cancel := context.WithTimeout(ctx, tailQueryTimeout)
	conn, err := pgx.ConnectConfig(cctx, cc)
	cancel()
	if err != nil {
		return err
	}
	defer conn.Close(context.Background())

	qctx, cancel := context.WithTimeout(ctx, tailQueryTimeout)
	defer cancel()
	if _, err := conn.Exec(qctx, "LISTEN "+pgx.Identifier{b.n.channel}.Sanitize()); err != nil {
		return err
	}
	st, err := b.tailStart(qctx, conn)
	if err != nil {
		return err
	}
	cancel()

	b.tmu.Lock()
	b.healthy = true
	b.pos = st.rev
	b.tailErr = nil
	close(b.attempt)
	b.attempt = make(chan struct{})
	b.tmu.Unlock()

	var blocked, idle bool
	for {
		if !idle {
			blocked, err = b.tailPoll(ctx, conn, st)
			if err != nil {
				return err
			}
			if err := b.tailLateCheck(ctx, conn, st); err != nil {
				return err
			}
		}
		wait := b.cfg.PollInterval
		if blocked {
			wait = min(wait, max(time.Until(st.gapSince.Add(b.cfg.GapTimeout)), 5*time.Millisecond))
		}
		if len(st.skipped) > 0 {
			wait = min(wait, max(time.Until(st.nextLate), 5*time.Millisecond))
		}
		wctx, cancel := context.WithTimeout(ctx, wait)
		_, err = conn.WaitForNotification(wctx)
		cancel()
		woken := err == nil
		if err != nil {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			if !errors.Is(err, context.DeadlineExceeded) || conn.IsClosed() {
				return err
			}
		}
		// With no watchers, and no NewWatcher waiting for the stream, a
		// wake-up is not worth a query: the position moves on at the
		// next poll interval, and NewWatcher wakes the stream when it
		// needs it. A write then costs its statement and its NOTIFY.
		idle = woken && b.fan.Len() == 0 && b.registering.Load() == 0
	}
}

// tailStart finds the stream's starting position: the newest committed
// change. Revisions just below it that are absent may belong to
// transactions still in flight, so they are watched for late commits.
func (b *Backend) tailStart(ctx context.Context, conn *pgx.Conn) (*tailState, error) {
	st := &tailState{skipped: map[int64]time.Time{}, key: []byte{}}
	err := conn.QueryRow(ctx, b.q.tailInit).Scan(&st.rev, &st.key)
	if errors.Is(err, pgx.ErrNoRows) {
		// Nothing committed yet (pruning keeps the newest revision), or
		// a crash of the server emptied the unlogged change table:
		// start after the last revision handed out.
		st.key = []byte{}
		err = conn.QueryRow(ctx, b.q.tailInitSeq).Scan(&st.rev)
	}
	if err != nil {
		return nil, err
	}
	low := max(st.rev-initWindow, 0)
	rows, err := conn.Query(ctx, b.q.tailPresent, low, st.rev)
	if err != nil {
		return nil, err
	}
	present := map[int64]bool{}
	for rows.Next() {
		var r int64
		if err := rows.Scan(&r); err != nil {
			rows.Close()
			return nil, err
		}
		present[r] = true
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return nil, err
	}
	now := time.Now()
	for r := low + 1; r <= st.rev; r++ {
		if !present[r] {
			st.skipped[r] = now
		}
	}
	st.nextLate = now.Add(lateCheckEvery)
	return st, nil
}

// tailPoll reads new change rows in revision order and publishes them. It
// stops at a gap (a revision taken by a transaction that has not committed
// yet) until GapTimeout has passed, and reports whether it is waiting at
// one.
func (b *Backend) tailPoll(ctx context.Context, conn *pgx.Conn, st *tailState) (blocked bool, err error) {
	for {
		qctx, cancel := context.WithTimeout(ctx, tailQueryTimeout)
		rows, err := conn.Query(qctx, b.q.tailPoll, st.rev, st.key, tailBatch)
		if err != nil {
			cancel()
			return false, err
		}
		var events []backend.Event
		n := 0
		blocked = false
		for rows.Next() {
			var (
				rev int64
				key []byte
				op  int16
				val []byte
				exp pgtype.Timestamptz
			)
			if err := rows.Scan(&rev, &key, &op, &val, &exp); err != nil {
				rows.Close()
				cancel()
				return false, err
			}
			n++
			if rev > st.rev+1 {
				now := time.Now()
				if st.gapSince.IsZero() {
					st.gapSince = now
				}
				if now.Sub(st.gapSince) < b.cfg.GapTimeout {
					blocked = true
					break
				}
				b.log.Warn("postgres: change stream moves past revisions that did not commit in time",
					"from", st.rev+1, "to", rev-1, "gap_timeout", b.cfg.GapTimeout)
				for r := st.rev + 1; r < rev && len(st.skipped) < maxSkipped; r++ {
					st.skipped[r] = now
				}
			}
			if rev != st.rev {
				st.gapSince = time.Time{}
			}
			st.rev, st.key = rev, key
			switch op {
			case opPut:
				events = append(events, backend.Event{Type: backend.OpPut, Item: backend.Item{
					Key: key, Value: val, Revision: rev, Expires: expiresVal(exp)}})
			case opDelete:
				events = append(events, backend.Event{Type: backend.OpDelete, Item: backend.Item{Key: key, Revision: rev}})
			}
		}
		rows.Close()
		cancel()
		if err := rows.Err(); err != nil {
			return false, err
		}
		b.fan.Publish(events...)
		b.setPos(st.rev)
		if blocked || n < tailBatch {
			return blocked, nil
		}
	}
}

// tailLateCheck looks for skipped revisions that committed after all.
// Their changes were not delivered, so the watchers must re-read.
func (b *Backend) tailLateCheck(ctx context.Context, conn *pgx.Conn, st *tailState) error {
	now := time.Now()
	if len(st.skipped) == 0 || now.Before(st.nextLate) {
		return nil
	}
	st.nextLate = now.Add(lateCheckEvery)
	revs := make([]int64, 0, len(st.skipped))
	for r, since := range st.skipped {
		if now.Sub(since) > lateWindow {
			delete(st.skipped, r)
			continue
		}
		revs = append(revs, r)
	}
	if len(revs) == 0 {
		return nil
	}
	qctx, cancel := context.WithTimeout(ctx, tailQueryTimeout)
	defer cancel()
	rows, err := conn.Query(qctx, b.q.tailLate, revs)
	if err != nil {
		return err
	}
	var late []int64
	for rows.Next() {
		var r int64
		if err := rows.Scan(&r); err != nil {
			rows.Close()
			return err
		}
		late = append(late, r)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return err
	}
	if len(late) == 0 {
		return nil
	}
	for _, r := range late {
		delete(st.skipped, r)
	}
	b.log.Warn("postgres: revisions committed after the change stream passed them; watchers must re-read", "revisions", late)
	b.fan.CloseWatchers(fmt.Errorf("%w: %w (revision %d)", backend.ErrWatchBroken, errLateCommit, late[0]))
	return nil
}

// sweepLoop deletes expired items in small batches.
func (b *Backend) sweepLoop(ctx context.Context) {
	defer b.wg.Done()
	t := time.NewTicker(b.cfg.SweepInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		for ctx.Err() == nil {
			n, err := b.Sweep(ctx)
			if err != nil {
				if ctx.Err() == nil {
					b.log.Debug("postgres: expiry sweep", "err", err)
				}
				break
			}
			if n < int64(b.cfg.SweepBatch) {
				break
			}
		}
	}
}

// Sweep deletes up to Config.SweepBatch expired items now, writing a delete
// event for each, and returns how many it deleted. The backend sweeps by
// itself every Config.SweepInterval; Sweep is for tests and tools.
func (b *Backend) Sweep(ctx context.Context) (int64, error) {
	if err := b.checkOpen("sweep"); err != nil {
		return 0, err
	}
	var n int64
	if err := b.pool.QueryRow(ctx, b.q.sweep, b.cfg.SweepBatch).Scan(&n); err != nil {
		return 0, wrap("sweep", nil, err)
	}
	if n > 0 {
		b.changed()
	}
	return n, nil
}

// pruneLoop deletes change-table rows older than EventRetention.
func (b *Backend) pruneLoop(ctx context.Context) {
	defer b.wg.Done()
	every := min(b.cfg.EventRetention/4, time.Minute)
	every = max(every, time.Second)
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		for ctx.Err() == nil {
			n, err := b.Prune(ctx)
			if err != nil {
				if ctx.Err() == nil {
					b.log.Debug("postgres: change table pruning", "err", err)
				}
				break
			}
			if n < pruneBatch {
				break
			}
		}
	}
}

const pruneBatch = 1000

// Prune deletes up to 1000 of the oldest change-table rows that are older
// than Config.EventRetention and returns how many it deleted. The backend
// prunes by itself; Prune is for tests and tools.
func (b *Backend) Prune(ctx context.Context) (int64, error) {
	if err := b.checkOpen("prune"); err != nil {
		return 0, err
	}
	tag, err := b.pool.Exec(ctx, b.q.prune, pruneBatch, b.cfg.EventRetention.Seconds())
	if err != nil {
		return 0, wrap("prune", nil, err)
	}
	return tag.RowsAffected(), nil
}

// setPos records that the stream has published every change up to rev.
func (b *Backend) setPos(rev int64) {
	b.tmu.Lock()
	defer b.tmu.Unlock()
	if rev > b.pos {
		b.pos = rev
		close(b.progress)
		b.progress = make(chan struct{})
	}
}

// The shortest interval between two NOTIFYs (see notifyLoop): notifyGap
// normally, notifyGapBusy after an interval that saw more than busyWrites
// writes.
const (
	notifyGap     = 2 * time.Millisecond
	notifyGapBusy = 10 * time.Millisecond
	busyWrites    = 2
)

// changed asks for a wake-up of every instance's change stream after a
// committed write. Wake-ups that pile up while one is being sent merge
// into the next.
func (b *Backend) changed() {
	b.writes.Add(1)
	select {
	case b.notify <- struct{}{}:
	default:
	}
}

// notifyLoop sends the wake-ups: a NOTIFY in a transaction of its own,
// after the write committed. A NOTIFY inside the write transaction would
// hold PostgreSQL's notification lock through the commit's WAL flush and
// serialize all commits; this way writers never wait for it. A wake-up
// lost (the process dies between commit and NOTIFY) delays the other
// instances' events until their next poll (Config.PollInterval).
//
// The NOTIFYs go over a connection of their own with synchronous_commit
// off: a NOTIFY takes a transaction ID, so its commit would otherwise
// wait for a WAL flush, doubling the flushes of a stream of writes, for a
// transaction that changes nothing.
//
// A NOTIFY still costs the server a transaction, and it wakes every
// listening instance, each of which then reads the change table. So the
// loop sends at most one NOTIFY per notifyGap: a write that comes sooner
// after the last NOTIFY is merged with the writes that follow into one
// sent notifyGap after the last. A write after a quiet spell wakes the
// other instances at once; a trickle of writes (one every few
// milliseconds, such as a watcher's round trips) wakes them every 2 ms
// (about 3 ms with the timer's slack). When more than busyWrites writes
// came in one interval, the next interval is notifyGapBusy (10 ms), until
// an interval sees busyWrites or fewer: a sustained stream of writes then
// costs one NOTIFY per 10 ms, and its events reach the other instances
// within about 11 ms. A NOTIFY per write cost a fifth of the write
// throughput with 1 and with 16 writers, and one poll per write on every
// instance; one per 2 ms still cost single-writer Puts about a sixth.
func (b *Backend) notifyLoop(ctx context.Context) {
	defer b.wg.Done()
	var conn *pgx.Conn
	defer func() {
		if conn != nil {
			conn.Close(context.Background())
		}
	}()
	var last time.Time
	gap := notifyGap
	for {
		select {
		case <-ctx.Done():
			return
		case <-b.notify:
		}
		if d := gap - time.Since(last); d > 0 {
			t := time.NewTimer(d)
			select {
			case <-ctx.Done():
				t.Stop()
				return
			case <-t.C:
			}
			select {
			case <-b.notify:
			default:
			}
		}
		last = time.Now()
		gap = notifyGap
		if b.writes.Swap(0) > busyWrites {
			gap = notifyGapBusy
		}
		nctx, cancel := context.WithTimeout(ctx, tailQueryTimeout)
		var err error
		if conn == nil {
			cc := b.pool.Config().ConnConfig.Copy()
			if cc.RuntimeParams == nil {
				cc.RuntimeParams = map[string]string{}
			}
			cc.RuntimeParams["synchronous_commit"] = "off"
			conn, err = pgx.ConnectConfig(nctx, cc)
		}
		if err == nil {
			_, err = conn.Exec(nctx, "SELECT pg_notify($1, '')", b.n.channel)
		}
		cancel()
		if err != nil {
			if conn != nil {
				conn.Close(context.Background())
				conn = nil
			}
			if ctx.Err() == nil {
				b.log.Debug("postgres: notify", "err", err)
			}
		}
	}
}
