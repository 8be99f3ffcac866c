// Package audit records the security events of a sallyport cluster (joins,
// logins, certificates issued, access decisions, sessions) and searches
// them by time range and type.
//
// Log is the interface; Backend stores events in the cluster's
// backend.Backend, one item per event under a key ordered by time
// (/audit/events/<unix ns, 20 digits>/<id>), so a time-range search reads
// only that range of keys; File appends JSON lines to a local file (one
// process only); Discard drops everything.
//
//	l := audit.NewBackend(b, "", nil)
//	l.Emit(ctx, audit.Event{Type: audit.TypeLogin, Actor: "alice", Success: true})
//	evs, err := l.Search(ctx, audit.Query{From: t0, Types: []string{audit.TypeLoginFailed}})
//
// Events never carry secrets: emitters record token hashes, never token
// values or passwords.
//
// # Lifecycle
//
// Backend has no resources of its own (the backend belongs to the caller).
// File holds an open file: Close it; a second Close returns an error
// wrapping net.ErrClosed, and Emit after Close returns ErrClosed.
//
// # Errors
//
// ErrInvalidEvent for an event without a type or larger than MaxEventSize;
// storage errors are wrapped (errors.Is works with backend's sentinels).
// Search skips stored records that do not decode.
//
// # Cancellation
//
// Emit and Search take a context and pass it to the storage.
package audit
