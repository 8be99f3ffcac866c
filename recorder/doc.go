// Package recorder records terminal sessions, keeps the recordings in a
// local spool that survives crashes and storage outages, uploads them to
// object storage through pluggable drivers, and plays them back.
//
//	store, err := recorder.OpenStore(ctx, "file:///var/lib/sallyport/recordings") // or s3://, gs://, azblob://
//	spool, err := recorder.Open(ctx, &recorder.Config{Dir: "/var/spool/sallyport", Store: store, Logger: log})
//	defer spool.Shutdown(ctx)
//
//	rec, err := spool.NewSession(ctx, recorder.Meta{User: "alice", Login: "root", Node: "db-1", Width: 80, Height: 24})
//	out := io.MultiWriter(client, rec) // tee the PTY's output into the recording
//	io.Copy(out, pty)
//	rec.Resize(120, 40)                // on window-change requests
//	rec.Close()                        // queued for upload
//
// # Capture format
//
// A recording is asciicast v2 (https://docs.asciinema.org/manual/asciicast/v2/),
// gzip-compressed, so asciinema players play it once decompressed
// (Export, Handler). The header line carries version 2, width, height,
// timestamp (the start, Unix seconds), title ("user@node as login" unless
// Meta.Title is set) and env (TERM); the session's metadata (Meta: ID,
// user, login, node, remote address, command, start with nanoseconds)
// is the extra header key "sallyport", which players ignore. Then one
// event per line:
//
//	[0.104217, "o", "$ ls\r\n"]     output; the time is seconds since the start
//	[3.500000, "r", "120x40"]       window size change, "COLSxROWS"
//	[9.000000, "m", "label"]        marker (Recording.Mark)
//	[12.250000, "m", "sallyport:end 2026-11-21T08:30:12.25Z"]
//
// The header is written first, so the end of the session is the last
// event: a marker whose label is EndMarkerPrefix and the end time (UTC,
// RFC 3339). A recording finished by crash recovery ends with
// "sallyport:end-recovered <time of its last event>". ReadInfo and
// Reader.End return it parsed.
//
// Output written within Config.FlushDelay (5ms) of an event's first byte
// is coalesced into that event; one event holds at most 256 KiB.
//
// Event data must be valid UTF-8 JSON text. A multi-byte sequence split
// across Writes is held back until the next output completes it. Bytes
// that are not valid UTF-8 are recorded as U+FFFD, one per invalid byte
// (what a terminal displays for them); the original byte values are not
// kept.
//
// # Capture cost
//
// Write copies into a bounded per-recording buffer (Config.BufferSize)
// and returns; a goroutine per recording encodes, compresses and writes to
// the spool file. Write blocks only when the buffer is full, that is when
// the disk or the CPU cannot keep up, so memory stays bounded for sessions
// of any length (about twice BufferSize, plus up to six times it for
// encoding, plus the compressor's state, per recording).
//
// Compression is gzip level Config.CompressionLevel (default 1) while
// output is interactive. Heavy output (batches of 64 KiB or more, above
// about 10 MB/s) is stored in gzip without compression until it calms
// down: compressing costs several nanoseconds of CPU per byte, as much as
// the rest of the session's path, so a burst such as printing a large
// file would otherwise run slower for being recorded. Such a burst takes
// about three times the space it would at level 1 (on the spool and in
// storage). Either way the file is standard gzip.
//
// # Spool lifecycle and crash recovery
//
// Open locks Config.Dir (ErrLocked if another spool holds it). A recording
// is written to Dir/active/YYYY/MM/DD/<id>.cast.gz as a sequence of gzip
// members: every checkpoint (Config.CheckpointInterval, default 5s, and
// Recording.Checkpoint) ends the current member at an event boundary and
// fsyncs the file, so the file up to the last checkpoint is a valid gzip
// stream of valid asciicast (concatenated gzip members are one stream).
// The header is checkpointed when the session starts. Close writes the end
// marker, fsyncs and moves the file to Dir/ready, which queues it for
// upload.
//
// When the process dies (kill -9, power loss), the next Open finds the
// files left in Dir/active, cuts each after its last complete gzip member
// (checked by CRC), appends the recovered end marker and queues it: a
// crash loses at most the last checkpoint interval of output. Files
// without a complete header are moved to Dir/damaged (or removed when
// empty) and counted in Stats.Damaged. Open also queues everything in
// Dir/ready, so recordings waiting for a store that was down are uploaded
// after a restart.
//
// Shutdown(ctx) refuses new sessions, waits for the active recordings to be
// closed by their owners and for the uploads to finish, then closes.
// Close finishes the active recordings itself, cancels uploads in flight
// (drivers leave no partial object) and keeps the rest on disk for the
// next Open.
//
// # Uploads
//
// Config.Uploads goroutines put finished recordings to Config.Store under
// their object name, YYYY/MM/DD/<session-id>.cast.gz (UTC start date).
// A failed upload is retried with exponential backoff and jitter between
// Config.RetryMin and Config.RetryMax, forever: each failure is logged and
// counted (Stats.UploadFailures, LastError); Stats.Pending and
// PendingBytes show what waits. When one upload succeeds, the others retry
// at once. A recording is deleted locally only after the store confirmed
// the whole object: Put returned nil, or Put said ErrExists and Stat shows
// the same size (an earlier attempt that succeeded without the spool
// learning it). When the existing object has another size, it is a
// different or partial object and is never replaced: the spool logs an
// error, counts Stats.Conflicts and uploads the recording as
// YYYY/MM/DD/<id>.conflict-N.cast.gz (the first free N).
//
// # Disk budget
//
// While the store is down, recordings wait in the spool. Config.DiskBudget
// (default 1 GiB) bounds what the spool holds; NewSession checks it. When
// it is used up, Config.OnBudgetExceeded decides: BudgetRefuse (default)
// makes NewSession fail with ErrBudgetExceeded and counts Stats.Refused;
// BudgetRecordLocal records the session anyway past the budget and counts
// Stats.OverBudget. Both are logged. Sessions already running are never
// cut.
//
// # Drivers and URIs
//
// A Store is the narrow driver contract in store.go; drivers register a
// URI scheme with RegisterStore and programs open them with OpenStore:
// "file:///path" (recorder/file), "s3://bucket?..." (recorder/s3),
// "gs://bucket" (recorder/gcs), "azblob://container?..."
// (recorder/azblob). Put is create-only and atomic. Every driver passes
// the conformance suite in recorder/recordertest.
//
// Drivers share helpers that do not depend on the storage service:
// ParseStoreURI and StoreURI read a store URI (refusing credentials in it
// and unknown parameters) and ParseSize its byte counts; ValidateName
// checks object names (ErrInvalidName); ReadPart, PutSection and PutBody
// read Put's source exactly (ErrSize otherwise); UploadParts, PartSize and
// PartCount run a multipart upload's parts concurrently; PermissionError
// names a permission a store refused.
//
// # Playback
//
// Play streams a recording to an io.Writer at its pace, faster
// (PlayOptions.Speed) or with long pauses cut (MaxIdle). Export and
// Decompress give the plain ".cast" file. Handler serves recordings over
// HTTP as application/x-asciicast for web players. Reader and Writer read
// and write asciicast v2 directly.
//
// # Metrics
//
// Spool.Stats returns a snapshot (active, pending, bytes, uploads,
// failures, last error, refused and over-budget sessions, recoveries,
// conflicts); publish it with expvar.Func(func() any { return s.Stats() })
// or a metrics library.
//
// # Errors
//
// Sentinels compare with errors.Is: ErrClosed (wraps net.ErrClosed),
// ErrBudgetExceeded, ErrLocked, ErrFormat (malformed asciicast; the
// *SyntaxError names the line), and the store's ErrExists, ErrNotExist
// (fs.ErrNotExist), ErrPermission (fs.ErrPermission; *PermissionError
// names the permission), and from the object-store drivers ErrInvalidName
// (fs.ErrInvalid) and ErrSize. When writing a recording's file fails
// (disk full), the error is logged, becomes sticky (Write returns it; a
// session that must not run unrecorded ends on it) and Close finishes the
// file as crash recovery would.
//
// # Cancellation
//
// The context given to Open bounds crash recovery; to NewSession, only the
// setup. Recordings live until Close, not until a context ends. Shutdown's
// context bounds the wait for owners and uploads. Play and Export stop
// when their context ends. Uploads run under the spool's own lifetime and
// are canceled by Close.
package recorder
