// Package recordertest is the conformance suite for recorder.Store drivers.
//
// A driver's test calls Run with a function that opens a store for one
// subtest:
//
//	func TestConformance(t *testing.T) {
//		recordertest.Run(t, func(t testing.TB) recorder.Store {
//			s, err := file.Open(t.TempDir())
//			if err != nil {
//				t.Fatal(err)
//			}
//			return s
//		})
//	}
//
// RunOptions takes Options: LargeSize (default 20 MiB, so drivers exercise
// their multipart or chunked path; negative skips), Concurrency of the
// racing Puts (default 8) and a Timeout per subtest (default 2 minutes).
//
// # What it checks
//
//   - Put, Get, Stat (size, name, modification time), List (sorted, string
//     prefixes, sizes), Delete; empty objects; names with slashes; a
//     prefix that is only a "directory" is not an object.
//   - Put is create-only: a second Put fails with recorder.ErrExists and
//     leaves the first object unchanged; of concurrent Puts of one name
//     exactly one wins and the object is the winner's, whole.
//   - No partial object is ever visible: a reader that fails at the start
//     or mid-way (also past a multipart threshold), or yields fewer or
//     more bytes than size, fails the Put and leaves nothing; a later Put
//     of the name succeeds.
//   - recorder.ErrNotExist (and fs.ErrNotExist) from Get, Stat and Delete
//     of a missing name; an empty List for a prefix without objects.
//   - Cancellation: every method fails with context.Canceled on a canceled
//     context; a Put whose context is canceled while it reads fails with
//     context.Canceled and leaves no object.
//   - Close is safe twice.
//
// The suite never stores both "a/b" and "a/b/c", so stores that keep
// objects as files in directories pass.
//
// # Lifecycle
//
// The suite calls open once per subtest and closes the store when the
// subtest ends; open may register its own t.Cleanup for the backing
// service, which runs after the suite's Close. Every object lives under a
// random prefix, so open may hand out stores on one shared bucket; the
// suite deletes its objects when a subtest ends.
//
// # Errors and cancellation
//
// Failures are reported through the subtest's testing.T with the call,
// the name and the error. Each subtest's calls use a context bounded by
// Options.Timeout, so a hanging driver fails instead of blocking the run.
package recordertest
