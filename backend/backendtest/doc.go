// Package backendtest is the conformance suite and the benchmark set that
// every [backend.Backend] driver runs.
//
// A driver's test calls Run with a function that returns a new, empty
// backend; the suite runs every test against its own backend:
//
//	func TestConformance(t *testing.T) {
//		backendtest.Run(t, func(t testing.TB) backend.Backend {
//			b, err := mydriver.Open(context.Background(), mydriver.Config{...})
//			if err != nil {
//				t.Fatal(err)
//			}
//			return b
//		}, backendtest.Capabilities{Reopen: ...})
//	}
//
//	func BenchmarkDriver(b *testing.B) { backendtest.Bench(b, newBackend) }
//
// # Helpers for a driver's own tests
//
// A driver's tests share more than the suite: [Open] opens a backend and
// closes it at cleanup, [RandomName] makes a fresh prefix or schema name,
// [Context], [Watch], [NextEvent] and [WaitFor] drive watchers and wait,
// and [RunParseURI] runs a table of URIs against the driver's ParseURI.
// [FaultRun] takes the driver's store away under running writers and a
// watcher and checks recovery and that no acknowledged write is lost:
//
//	func TestServerRestart(t *testing.T) {
//		srv := testservice.StartEtcd(t)
//		b := backendtest.Open(t, etcd.Open, &etcd.Config{...})
//		backendtest.FaultRun(t, backendtest.FaultConfig{Backend: b, Down: srv.Stop, Up: srv.Start})
//	}
//
// For benchmarks next to the store's own client, [Parallel] runs an
// operation from a number of goroutines and [WatchLatency] measures the
// write-to-event path between two instances.
//
// # What the suite checks
//
// Create, Get, Put, Update, Delete and their errors; global revisions;
// argument and size-limit errors (ErrInvalid, ErrTooLarge, at and beyond
// MaxKeySize, MaxValueSize and MaxAtomicWriteActions); 1 KiB keys of
// arbitrary bytes (0x00 and 0xff included) that sort as bytes; 1 MiB
// values; GetRange pages and continuation over 1,500 keys; DeleteRange of
// 1,200 keys with one delete event each; compare-and-swap on revision and
// on value, and 16 goroutines incrementing one counter to the exact count;
// every AtomicWrite condition kind, all-or-nothing batches and concurrent
// transfers that conserve the total; expiry (invisible at once, a delete
// event within Capabilities.ExpiryEventDelay) and keep-alive; watches (the
// init event first, prefix filtering, event contents and order, no event
// lost across 10,000 concurrent writes, ErrWatcherFellBehind for an unread
// watcher, watcher close, context cancellation and store close); a
// cancelled context giving context.Canceled from every method; ErrClosed
// after Close; and, with Capabilities.Reopen, two instances over one store.
//
// Under the race detector, which slows pure-Go stores by an order of
// magnitude, the concurrent-increment and no-event-lost tests run at a
// fifth of their size and log it.
//
// # Capabilities
//
// A driver declares what it lacks or how coarse it is with Capabilities.
// A missing capability is never a silent pass: the suite logs it and
// skips a subtest named after it ("MultiInstance/Unsupported"), so it
// shows in go test -v output.
//
// # Lifecycle and cancellation
//
// The suite closes every backend it gets at the end of the test; the
// NewFunc registers with t.Cleanup anything else to release (a temporary
// database, a key prefix). Each test's context is cancelled at its end.
package backendtest
