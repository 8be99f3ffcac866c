// Package file is the recorder.Store driver for a local or mounted
// directory, registered for the "file" URI scheme:
//
//	import _ "github.com/sallyport/sallyport/recorder/file"
//
//	store, err := recorder.OpenStore(ctx, "file:///var/lib/sallyport/recordings")
//
// or directly:
//
//	store, err := file.Open("/var/lib/sallyport/recordings")
//
// A URI without a path ("file://") means DefaultDir; "file:rel/dir" is a
// path relative to the working directory.
//
// # Layout and atomicity
//
// Object "2026/11/21/id.cast.gz" is the file DIR/2026/11/21/id.cast.gz.
// Put writes to a temporary file (named ".tmp-put-*") in the object's
// directory, fsyncs it, then hard-links it to the object's name with
// os.Link, which fails when the name exists: so Put is create-only and
// atomic, also between processes sharing the directory, and a crash leaves
// at most a temporary file that List never shows. The directory entry is
// fsynced after the link. Delete removes directories it leaves empty.
// The directory must be on a filesystem that supports hard links.
//
// # Lifecycle
//
// Open creates the root directory (mode 0750) when it is missing. Close
// only marks the Store closed; later calls fail with an error wrapping
// net.ErrClosed.
//
// # Errors
//
// Errors wrap recorder.ErrExists, recorder.ErrNotExist and
// recorder.ErrPermission; a permission error says which permission on
// which path is missing ("write and search (w+x) on the directory").
// Names that are not clean relative paths fail with ErrInvalidName.
//
// # Cancellation
//
// Every method checks its context first; Put checks it between reads of
// the source and before linking, so a canceled Put leaves no object.
package file
