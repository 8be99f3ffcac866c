// Package memory is an in-memory backend: the whole store in one
// process's memory, for tests, examples and single-process tools. Nothing
// persists after Close.
//
//	b, err := memory.New(nil)
//	if err != nil {
//		return err
//	}
//	defer b.Close()
//
// or, with the package imported for its side effect,
// backend.Open(ctx, "memory://"). Every New or Open makes a new, empty
// store; the URI takes no host, path or parameters.
//
// # Storage
//
// Items live in a B-tree ordered by key (github.com/google/btree), with a
// second B-tree ordered by expiry. Reads take a shared lock and run in
// parallel; writes take the exclusive lock, so every operation is atomic
// and DeleteRange removes its range under one revision.
//
// # Expiry
//
// Expired items are invisible to reads at once. A sweeper goroutine sleeps
// until the next expiry and deletes what has expired, with one delete
// event each; every write also sweeps first, so watchers see the delete
// before any later change.
//
// # Errors and cancellation
//
// Errors wrap the backend package's sentinels. Operations do not block on
// I/O: the context is checked when an operation starts, and a done context
// gives its error.
//
// # Lifecycle
//
// New starts the sweeper; Close stops it, closes the watchers with
// ErrClosed and drops the items. A second Close returns ErrClosed.
package memory
