// Package sqlite is the embedded default backend: the cluster state in
// one SQLite file, through the pure-Go modernc.org/sqlite (no cgo).
//
//	b, err := sqlite.Open(ctx, sqlite.Config{Path: "/var/lib/sallyport/state.db"})
//	if err != nil {
//		return err
//	}
//	defer b.Close()
//
// or, with the package imported for its side effect,
// backend.Open(ctx, "sqlite:///var/lib/sallyport/state.db").
//
// # URIs
//
//	sqlite:///var/lib/sallyport/state.db   absolute path
//	sqlite://state.db                      relative to the working directory
//	sqlite://data/state.db                 relative, too (host + path)
//	sqlite:data/state.db                   relative (opaque form)
//
// Parameters: sweep_interval, poll_interval, change_retention and
// busy_timeout (Go durations such as 500ms) and read_conns, the fields of
// Config of the same names. Unknown parameters are an error.
//
// # Storage and durability
//
// The file is in WAL mode with synchronous=FULL: a write that has returned
// is on disk and survives the process being killed (kill -9) or the
// machine losing power, which the package's tests check by killing a
// writing child process. Items live in the table sallyport_kv (keys are
// BLOBs, so they sort as bytes), the store revision in sallyport_meta, and
// every change also goes to the change log sallyport_changes, which
// watchers of other processes read.
//
// All writes of a Backend go through one goroutine and one connection.
// Writes that arrive while a commit is in progress are committed together
// in the next transaction (group commit: one fsync for the batch), each in
// its own savepoint and with its own revision, so that a failing compare
// leaves the others. Reads use a pool of Config.ReadConns connections and
// never wait for writes.
//
// # Several processes
//
// Several processes may open the same file: SQLite's lock serialises their
// writes and the revision counter in the file keeps revisions global.
// Writes made through a Backend reach its own watchers as they commit;
// writes made by other processes reach them within Config.PollInterval,
// read from the change log. Change-log rows are kept for
// Config.ChangeRetention; a process whose watchers fall further behind
// than that closes them with ErrWatchBroken.
//
// # Expiry
//
// Expired items are invisible to reads at once (reads filter on the
// expiry). The writer deletes them every Config.SweepInterval, with one
// delete event each.
//
// # Errors
//
// Errors wrap the backend package's sentinels (ErrNotFound,
// ErrCompareFailed, ErrClosed, ...); SQLite errors are returned wrapped
// with the prefix "sqlite:". Background errors (sweeps, polls) go to
// Config.Logger.
//
// # Cancellation
//
// A read stops when its context is done. A write honours its context while
// it waits for the writer; once the writer has started it, it runs to its
// end and its result is returned, so that a write that committed is never
// reported as failed.
//
// # Lifecycle
//
// Open starts the writer goroutine; Close waits for the batch in progress,
// stops the goroutine, closes the watchers with ErrClosed and closes the
// file. A second Close returns ErrClosed.
package sqlite
