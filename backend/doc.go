// Package backend is the cluster-state store of sallyport: a small,
// ordered key-value interface that the Auth Service keeps its certificate
// authorities, users, roles, join tokens and presence records in, and the
// registry of drivers that implement it.
//
// A program opens a backend by URI with the drivers it imports:
//
//	import (
//		"github.com/sallyport/sallyport/backend"
//		_ "github.com/sallyport/sallyport/backend/sqlite"
//	)
//
//	b, err := backend.Open(ctx, "sqlite:///var/lib/sallyport/state.db")
//	if err != nil {
//		return err
//	}
//	defer b.Close()
//	rev, err := b.Create(ctx, backend.Item{Key: backend.Key("cluster", "ca"), Value: caPEM})
//
// or calls a driver's constructor directly (memory.New, sqlite.Open,
// postgres.Open, etcd.Open), which takes a plain Config.
//
// # Keys and values
//
// Keys are non-empty byte strings of at most MaxKeySize bytes, by
// convention "/"-separated paths built with Key ("/users/alice"). Any byte
// is allowed, 0x00 and 0xff included, and keys sort as bytes
// (bytes.Compare). GetRange and DeleteRange take a half-open range
// [start, end); RangeEnd(prefix) is the end of the range of every key
// under prefix, and a nil end means "to the last key". Values are at most
// MaxValueSize (1 MiB); nil and empty values are the same.
//
// Items returned by reads belong to the caller. Event items delivered to
// watchers are shared between the watchers of one store: treat them as
// read-only.
//
// # Revisions
//
// Every write gets a revision from one counter per store: a later write
// has a greater revision, all items written by one AtomicWrite share
// theirs, and revisions never repeat, across keys and across the
// instances (processes, clients) that use the same store. Each write
// method returns its revision and Item.Revision says which write last
// changed an item. CompareAndSwap and the Revision condition of
// AtomicWrite use them for optimistic concurrency:
//
//	for {
//		cur, err := b.Get(ctx, key)
//		...
//		_, err = b.CompareAndSwap(ctx, backend.Item{Revision: cur.Revision}, next(cur))
//		if !errors.Is(err, backend.ErrCompareFailed) {
//			return err // nil: done
//		}
//	}
//
// AtomicWrite applies up to MaxAtomicWriteActions actions on distinct keys
// all or nothing, after checking every action's Condition (Exists,
// NotExists, Revision, or Whatever); an ActionNone action is a guard that
// only checks its key. When a condition fails nothing is written and the
// error is a *ConditionError naming the action.
//
// # Expiry
//
// An item with a non-zero Expires disappears at that time: from then on
// reads do not return it, Update, Delete and KeepAlive see it absent and
// Create may reuse its key, at once, whatever the driver's background
// work. Watchers get a delete event for it when the driver sweeps it,
// within the driver's sweep interval. KeepAlive moves the expiry of an
// existing item (zero: never) without changing its value.
//
// # Watches and the re-read contract
//
// NewWatcher starts a watch over key prefixes. Its first event is always
// OpInit; every change committed after it, to a key under the prefixes, is
// delivered as an OpPut (with the item) or OpDelete (with the key and the
// deletion's revision) event, in revision order. A cache follows the store
// like this:
//
//  1. open a watcher and wait for OpInit;
//  2. read the state it needs (GetRange);
//  3. apply the events that follow, skipping those whose revision is not
//     above the revision of the item it already holds.
//
// Watchers never drop events silently. A watcher that cannot deliver one
// stops: Done is closed, Events is closed after the events already queued,
// and Err says why: ErrWatcherFellBehind when its reader did not keep up
// with its queue (Watch.QueueSize), ErrWatchBroken when the store's change
// stream broke, ErrClosed when the watcher or the store was closed, or the
// error of the context given to NewWatcher. The reader then opens a new
// watcher and re-reads: the state is the truth, events are a way to keep
// up with it.
//
// Drivers build their watchers on Fanout, which filters events by prefix,
// queues them per watcher and stops the watchers that fall behind, so one
// slow reader never slows the writers or the other watchers.
//
// # Limits
//
// MaxKeySize, MaxValueSize and MaxAtomicWriteActions hold for every
// driver, so that state written through one driver fits in every other.
// Larger input fails with an error wrapping ErrTooLarge before anything
// is sent to the store. CheckKey, CheckItem, CheckRange and CheckActions
// are the checks drivers run.
//
// # Errors
//
// Methods return errors that wrap the package's sentinels, so compare
// them with errors.Is: ErrNotFound, ErrAlreadyExists, ErrCompareFailed
// (CompareAndSwap, AtomicWrite conditions), ErrTooLarge, ErrInvalid
// (malformed arguments), ErrClosed (after Close). Errors of the store
// itself (I/O, network) are returned wrapped with the driver's prefix.
//
// # Drivers
//
// Drivers live in subpackages and register a URI scheme with Register:
//
//	memory://                          memory: one process, nothing persists
//	sqlite:///var/lib/sallyport/s.db   sqlite: embedded default, one file
//	postgres://user@host/db            postgres: PostgreSQL
//	etcd://host:2379/prefix            etcd: etcd v3
//
// Each driver package documents its URI parameters and Config. Every
// driver passes the conformance suite in package backendtest.
//
// # Lifecycle
//
// A Backend is safe for concurrent use. Close stops its background work
// (expiry sweeps, change streams), closes its watchers with ErrClosed and
// releases its connections; later calls, Close included, return ErrClosed.
//
// # Cancellation
//
// Every method that may block takes a context. A context that is done
// before or while a method waits gives an error wrapping the context's
// error (context.Canceled or context.DeadlineExceeded). A write that was
// already handed to the store when the context ended may still be
// applied; drivers say which in their documentation. The context given to
// NewWatcher bounds the watcher's life: when it is done the watcher stops
// with its error.
package backend
