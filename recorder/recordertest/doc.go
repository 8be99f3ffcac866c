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
// RunOptions takes Options: LargeSize (default 20 MiB; a driver passes a
// size that takes its multipart or chunked path, best no multiple of its
// part size; negative skips the large cases), Concurrency of the racing
// Puts (default 8) and a Timeout per subtest (default 2 minutes).
//
// # What it checks
//
//   - Put, Get, Stat (size, name, modification time), List (sorted, string
//     prefixes, sizes, times), Delete; empty objects; names with slashes; a
//     prefix that is only a "directory" is not an object.
//   - Put reads three kinds of source: a bytes.Reader (an io.Seeker and
//     io.ReaderAt a driver may read at offsets), one positioned past bytes
//     that are no part of the object, and a plain io.Reader the driver has
//     to stream; small objects and LargeSize ones, so the multipart path
//     sees all three.
//   - Put is create-only: a second Put (also of LargeSize) fails with
//     recorder.ErrExists and leaves the first object unchanged; of
//     concurrent Puts of one name exactly one wins and the object is the
//     winner's, whole.
//   - No partial object is ever visible: a reader that fails at the start
//     or mid-way (also past a multipart threshold), or yields fewer or
//     more bytes than size (seekable or plain, small or LargeSize), fails
//     the Put and leaves nothing; a later Put of the name succeeds.
//   - recorder.ErrNotExist (and fs.ErrNotExist) from Get, Stat and Delete
//     of a missing name; an empty List for a prefix without objects.
//   - Names that are not clean relative "/"-separated paths ("", ".",
//     "/abs", "a//b", "a/../b", "./a", "dir/") fail Put, Get, Stat and
//     Delete.
//   - Cancellation: every method fails with context.Canceled on a canceled
//     context; a Put whose context is canceled while it reads fails with
//     context.Canceled and leaves no object.
//   - After Close every method fails with an error wrapping net.ErrClosed;
//     a second Close returns nil or such an error.
//
// Drivers' own tests may use RandomData, PlainReader and WantObject.
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
