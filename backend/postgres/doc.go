// Package postgres is a backend.Backend stored in PostgreSQL: several
// auth servers share one database (a managed PostgreSQL is fine: no
// replication privilege or extension is needed), see each other's writes
// at once and follow each other's changes through watches.
//
// # Usage
//
//	b, err := postgres.Open(ctx, &postgres.Config{
//		ConnString: "postgres://sallyport@db.internal/sallyport?sslmode=verify-full",
//	})
//	if err != nil { ... }
//	defer b.Close()
//
// or, with the driver imported for its side effect,
//
//	import _ "github.com/sallyport/sallyport/backend/postgres"
//	b, err := backend.Open(ctx, "postgres://sallyport@db.internal/sallyport?schema=cluster1")
//
// Config.Pool takes a ready *pgxpool.Pool instead of a connection string.
//
// # URI parameters
//
// postgres:// and postgresql:// URIs are pgx connection URLs (host, port,
// user, password, database, sslmode, sslrootcert, pool_max_conns, ...).
// The driver reads and removes its own parameters before the URL reaches
// pgx:
//
//	schema=NAME           Config.Schema: the schema for the tables (created if missing)
//	poll_interval=1s      Config.PollInterval
//	gap_timeout=5s        Config.GapTimeout
//	sweep_interval=1s     Config.SweepInterval
//	sweep_batch=500       Config.SweepBatch
//	event_retention=1h    Config.EventRetention
//
// # Schema and permissions
//
// Open creates, when they do not exist, in Config.Schema (or the current
// schema):
//
//	CREATE TABLE sallyport_kv (key bytea PRIMARY KEY, value bytea NOT NULL,
//		revision bigint NOT NULL, expires timestamptz);
//	CREATE INDEX sallyport_kv_expires ON sallyport_kv (expires) WHERE expires IS NOT NULL;
//	CREATE UNLOGGED TABLE sallyport_events (revision bigint, key bytea, op smallint,
//		value bytea, expires timestamptz, created timestamptz DEFAULT now(),
//		PRIMARY KEY (revision, key));
//	CREATE SEQUENCE sallyport_revision;
//
// That needs the CREATE privilege on the schema (and on the database when
// the schema must be created). Without it, Open fails with an error
// wrapping ErrPermission that names the missing privilege. An
// administrator may instead create the objects once (by opening the
// backend as the owner) and grant the application role
//
//	GRANT SELECT, INSERT, UPDATE, DELETE ON sallyport_kv, sallyport_events TO app;
//	GRANT USAGE, SELECT, UPDATE ON SEQUENCE sallyport_revision TO app;
//
// When every object exists, Open changes nothing and needs no DDL
// privilege.
//
// # Revisions
//
// Every write takes one value of the sequence sallyport_revision, so
// revisions are global and increase with each write; all items of an
// AtomicWrite, and all deletes of a DeleteRange or of one expiry sweep,
// share one.
//
// # Watches
//
// Every write appends its change (key, new value and expiry, or delete)
// to sallyport_events in the same statement or transaction as the data,
// tagged with its revision. Each backend instance runs one change stream:
// a connection of its own (outside the pool) that reads the change table
// in revision order from its last position and fans the changes out to
// its watchers (backend.Fanout). It is woken by LISTEN/NOTIFY: after a
// write commits, the writing instance sends a NOTIFY in a transaction of
// its own (a NOTIFY inside the write would serialize every commit on
// PostgreSQL's notification lock), over a second connection of its own
// with synchronous_commit off (a NOTIFY takes a transaction ID, and its
// commit would otherwise wait for a WAL flush). It also polls every
// PollInterval, so a lost notification only delays events. An instance
// sends at most one NOTIFY every 2 ms, for all the writes in between, and
// one every 10 ms while more than two writes come in each interval: a
// write after a quiet spell wakes the watchers of every instance at
// once, a trickle of writes reaches them within about 3 ms, and a
// sustained stream within about 11 ms (a NOTIFY per write cost a fifth
// of the write throughput, and one read of the change table per write on
// every instance). While an
// instance has no watchers its stream does not read on wake-ups, only at
// the poll interval, so writes nobody watches cost no reads. Each
// instance thus holds its pool's connections plus two.
//
// The writes to one key commit in revision order. Every write locks the
// key's row, when there is one, before it takes its revision, so a write
// that waited for another gets the higher revision. The one exception is
// a compare-and-swap on the revision, which takes its revision first and
// needs no separate lock: any write that commits on the row before it
// changes the row's revision, so its condition then fails. Two Puts or Creates
// that both found no row race to insert it: the loser updates the row
// only if its revision is the higher, and is otherwise ordered before the
// winner (its event goes out at its revision, and the row keeps the
// winner's item). So each key's last event is what its row holds, and a
// cache fed by a watcher ends equal to the store. One interleaving is
// left, in a window of microseconds: a Put of an absent key that took its
// revision while two other writers inserted and then deleted that key
// inserts its item after the delete, with an older revision, and the
// watchers see the key deleted until its next write.
//
// Concurrent transactions may commit out of revision order: revision 11
// can still be in flight when 12 is visible. The stream never delivers
// past a missing revision while it may still commit: it waits at such a
// gap until the revision appears or GapTimeout passes. Writes take their
// revision only once their condition holds, and a statement that took a
// revision but wrote nothing records a no-op change, so gaps come only
// from transactions in flight or rolled back by an error. When a revision
// the stream moved past commits after all, or the stream restarts after
// a connection loss, the watchers are stopped with backend.ErrWatchBroken
// so their owners re-read: no change is ever missed silently. Serializing
// the writers instead (a lock around sequence and commit) would order
// commits by revision but would cap all writes of the cluster at one
// commit at a time.
//
// The change table is UNLOGGED: its rows are written to no WAL, which
// halves the WAL a write produces (the change row repeats the value). A
// change row is needed only by watchers that are running, and a crash of
// the database server, the one thing that loses unlogged rows (crash
// recovery empties the table, and it is not copied to replicas, so a
// failover starts it empty too), ends every connection and so breaks
// every watcher with backend.ErrWatchBroken: their owners re-read the
// logged items table. A stream that starts on an empty change table
// starts after the sequence's last value. The items table and the
// sequence are logged, so no acknowledged write is lost.
//
// After a crash, the sequence resumes a few values past the last one it
// handed out (PostgreSQL logs sequence values ahead). Where an
// administrator created the change table as a logged table, it survives
// the crash, and the stream waits GapTimeout once before it moves past
// those values.
//
// A new watcher waits until the stream has delivered every change
// committed before NewWatcher was called, so its first event after
// OpInit is newer than anything a read after NewWatcher could miss.
//
// # Concurrent writes
//
// A single-key write (Create, Put, Update, CompareAndSwap, Delete,
// KeepAlive) is one statement. When no other write of the instance is in
// flight it goes to the database at once. Writes that come while others
// are in flight queue, and up to half the pool's connections (one to
// four) each send up to 64 queued writes in one round trip as one
// transaction, sorted by key. Each write still takes its own revision
// and locks only its own key, so the outcome is that of running them one
// after the other; they become visible together. Under concurrent writers
// that saves most of a write's cost (its own transaction, commit record,
// round trip and system calls): with 16 callers, Put and CompareAndSwap
// run at one and a half to two times the rate of the same statements sent
// one per round trip. When the server refuses one statement (it then
// rolls the transaction back, so nothing of the batch is written), each
// write of the batch is run again alone and gets its own outcome; when
// the connection fails, every write of the batch gets the error, its
// outcome unknown, as a lone write's would be. Sorting by key keeps a
// batch from deadlocking with another batch or a DeleteRange, which lock
// in key order too. An AtomicWrite that creates some of its keys can
// still deadlock with a batch; PostgreSQL then refuses one of them after
// its deadlock_timeout, and a refused batch reruns its writes alone, as
// a refused AtomicWrite is retried. A caller whose context ends
// while its write is queued returns at once, and the write is not sent
// if its batch had not started. A batch that has started runs to its end,
// for up to 30 seconds: then its connection is closed, the server is
// asked to cancel it, and each of its writes fails with a timeout, its
// outcome unknown (the cancel may come after the commit).
//
// # Expiry and pruning
//
// Expired items are invisible to reads at once (expires > now() in every
// query; the database's clock decides). A background sweep every
// SweepInterval deletes up to SweepBatch expired rows per statement,
// locking them with FOR UPDATE SKIP LOCKED (it never waits on a writer
// and holds its locks for one short statement), and writes their delete
// events. Change rows older than EventRetention are pruned in batches of
// 1,000; the newest revision is always kept.
//
// # Limits
//
// Keys up to backend.MaxKeySize bytes (the primary-key index accepts
// them), values up to backend.MaxValueSize. AtomicWrite locks its keys in
// key order; a deadlock with a concurrent writer is retried.
//
// # Lifecycle
//
// Open checks the connection and the tables and starts its goroutines:
// the change stream, the NOTIFY sender, the expiry sweep, the pruning
// and the batch committers. Close stops them (writes still queued fail
// with backend.ErrClosed; a batch already sent runs to its end), closes the watchers with backend.ErrClosed and closes
// the pool if Open created it; a second Close returns an error wrapping
// backend.ErrClosed.
//
// # Errors
//
// Methods return the backend package's errors (ErrNotFound,
// ErrAlreadyExists, ErrCompareFailed, ErrTooLarge, ErrInvalid, ErrClosed)
// wrapped with the operation and key; database errors are wrapped as pgx
// returns them (*pgconn.PgError, connection errors). While the database is
// unreachable, calls fail and watchers stop with backend.ErrWatchBroken;
// NewWatcher fails until the change stream has reconnected, which it does
// by itself with a backoff of up to two seconds.
//
// # Cancellation
//
// Every method honours its context: a cancelled or expired context fails
// the call with an error wrapping the context's error, and a statement
// that had not committed has no effect. A watcher stops when the context
// given to NewWatcher is done.
package postgres
