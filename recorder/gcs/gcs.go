package gcs

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"io/fs"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"os"
	"sort"
	"strconv"
	"strings"
	"sync/atomic"

	"cloud.google.com/go/storage"
	"google.golang.org/api/googleapi"
	"google.golang.org/api/iterator"
	"google.golang.org/api/option"

	"github.com/sallyport/sallyport/recorder"
)

// Scheme is the URI scheme the driver registers with recorder.RegisterStore.
const Scheme = "gs"

// DefaultChunkSize is Config.ChunkSize when zero: objects up to this size
// go in one request, larger ones in a resumable upload of chunks this big.
const DefaultChunkSize = 16 << 20

// Errors of the driver besides those of package recorder.
var (
	// ErrInvalidName: an object name that is not a clean relative
	// "/"-separated path. It wraps fs.ErrInvalid.
	ErrInvalidName = fmt.Errorf("gcs: invalid object name: %w", fs.ErrInvalid)
	// ErrSize: the reader given to Put yielded other than the announced
	// number of bytes, or the size is negative.
	ErrSize = errors.New("gcs: object size mismatch")
)

// Config configures a Store. The zero value of every field but Client and
// Bucket selects a default.
type Config struct {
	// Client is the Cloud Storage client to use. Required. The caller
	// owns it: Store.Close does not close it.
	Client *storage.Client
	// Bucket is the bucket that holds the objects. Required.
	Bucket string
	// Prefix is prepended to every object name ("recordings/"); zero
	// means none.
	Prefix string
	// ProjectID is the project in which Open creates a missing bucket;
	// zero means a missing bucket is an error (ErrNotExist).
	ProjectID string
	// NoCreateBucket makes Open fail when the bucket is missing even when
	// ProjectID is set.
	NoCreateBucket bool
	// ChunkSize is the size of each request of a resumable upload (a
	// multiple of 256 KiB); objects no larger go in one request. Each Put
	// holds one buffer of this size. Zero means DefaultChunkSize.
	ChunkSize int
	// Logger receives debug and informational records; nil discards
	// them. Credentials are never logged.
	Logger *slog.Logger
}

// Store is a recorder.Store in a Cloud Storage bucket. It is safe for
// concurrent use.
type Store struct {
	c         *storage.Client
	bkt       *storage.BucketHandle
	bucket    string
	prefix    string
	chunk     int
	log       *slog.Logger
	ownClient bool // Close closes c
	closed    atomic.Bool
}

var _ recorder.Store = (*Store)(nil)

func init() {
	recorder.RegisterStore(Scheme, func(ctx context.Context, u *url.URL) (recorder.Store, error) {
		return OpenURI(ctx, u)
	})
}

type discardHandler struct{}

func (discardHandler) Enabled(context.Context, slog.Level) bool  { return false }
func (discardHandler) Handle(context.Context, slog.Record) error { return nil }
func (d discardHandler) WithAttrs([]slog.Attr) slog.Handler      { return d }
func (d discardHandler) WithGroup(string) slog.Handler           { return d }

// Open checks the configuration, makes sure the bucket exists (creating it
// in ProjectID when it does not) and returns the Store.
func Open(ctx context.Context, cfg *Config) (*Store, error) {
	if cfg == nil || cfg.Client == nil {
		return nil, errors.New("gcs: Config.Client is required")
	}
	if cfg.Bucket == "" {
		return nil, errors.New("gcs: Config.Bucket is required")
	}
	s := &Store{c: cfg.Client, bkt: cfg.Client.Bucket(cfg.Bucket), bucket: cfg.Bucket, prefix: cfg.Prefix, chunk: cfg.ChunkSize, log: cfg.Logger}
	if s.chunk == 0 {
		s.chunk = DefaultChunkSize
	}
	if s.chunk < 0 || s.chunk%(256<<10) != 0 {
		return nil, fmt.Errorf("gcs: ChunkSize %d is not a positive multiple of 256 KiB", s.chunk)
	}
	if s.log == nil {
		s.log = slog.New(discardHandler{})
	}
	_, err := s.bkt.Attrs(ctx)
	if err == nil {
		return s, nil
	}
	if !errors.Is(err, storage.ErrBucketNotExist) {
		return nil, s.wrap(err, "get bucket", "storage.buckets.get", "")
	}
	if cfg.NoCreateBucket || cfg.ProjectID == "" {
		return nil, fmt.Errorf("gcs: bucket %q does not exist (set a project to create it): %w", s.bucket, recorder.ErrNotExist)
	}
	if err := s.bkt.Create(ctx, cfg.ProjectID, nil); err != nil {
		if code(err) == http.StatusConflict {
			return s, nil // created concurrently
		}
		return nil, s.wrap(err, "create bucket", "storage.buckets.create", "")
	}
	s.log.LogAttrs(ctx, slog.LevelInfo, "gcs: created bucket", slog.String("bucket", s.bucket))
	return s, nil
}

// OpenURI opens the Store a URI names:
//
//	gs://bucket/optional/prefix/?project=my-project&endpoint=http://127.0.0.1:4443
//
// Credentials come from Application Default Credentials; an http://
// endpoint (an emulator) and STORAGE_EMULATOR_HOST use none. See the
// package documentation for every parameter.
func OpenURI(ctx context.Context, u *url.URL) (*Store, error) {
	if !strings.EqualFold(u.Scheme, Scheme) {
		return nil, fmt.Errorf("gcs: URI scheme %q is not %q", u.Scheme, Scheme)
	}
	if u.User != nil {
		return nil, errors.New("gcs: credentials in the URI are not accepted; use Application Default Credentials")
	}
	if u.Host == "" {
		return nil, errors.New("gcs: URI names no bucket")
	}
	q := u.Query()
	cfg := &Config{Bucket: u.Host, Prefix: strings.TrimPrefix(u.Path, "/"), ProjectID: q.Get("project")}
	for k := range q {
		switch k {
		case "endpoint", "project", "chunk_size", "create_bucket":
		default:
			return nil, fmt.Errorf("gcs: unknown URI parameter %q", k)
		}
	}
	if cfg.ProjectID == "" {
		cfg.ProjectID = os.Getenv("GOOGLE_CLOUD_PROJECT")
	}
	if v := q.Get("create_bucket"); v != "" {
		create, err := strconv.ParseBool(v)
		if err != nil {
			return nil, fmt.Errorf("gcs: bad create_bucket %q", v)
		}
		cfg.NoCreateBucket = !create
	}
	if v := q.Get("chunk_size"); v != "" {
		n, err := strconv.Atoi(strings.TrimSuffix(v, "M"))
		if err != nil || n <= 0 || n > 1<<12 {
			return nil, fmt.Errorf("gcs: bad chunk_size %q (want MiB, such as 16M)", v)
		}
		cfg.ChunkSize = n << 20
	}
	var opts []option.ClientOption
	if ep := q.Get("endpoint"); ep != "" {
		eu, err := url.Parse(ep)
		if err != nil || (eu.Scheme != "http" && eu.Scheme != "https") || eu.Host == "" {
			return nil, fmt.Errorf("gcs: bad endpoint %q (want http[s]://host[:port])", ep)
		}
		eu.Path = strings.TrimSuffix(eu.Path, "/") + "/storage/v1/"
		opts = append(opts, option.WithEndpoint(eu.String()))
		if eu.Scheme == "http" {
			// An emulator: credentials never travel in clear text.
			opts = append(opts, option.WithoutAuthentication())
		}
	}
	if cfg.ProjectID == "" && (q.Get("endpoint") != "" || os.Getenv("STORAGE_EMULATOR_HOST") != "") {
		cfg.ProjectID = "emulator" // emulators accept any project
	}
	c, err := storage.NewClient(ctx, opts...)
	if err != nil {
		return nil, fmt.Errorf("gcs: new client: %w", err)
	}
	cfg.Client = c
	s, err := Open(ctx, cfg)
	if err != nil {
		c.Close()
		return nil, err
	}
	s.ownClient = true
	return s, nil
}

// Bucket returns the bucket the Store writes to.
func (s *Store) Bucket() string { return s.bucket }

// Client returns the Cloud Storage client the Store uses.
func (s *Store) Client() *storage.Client { return s.c }

// Key returns the Cloud Storage object name that holds the object name.
func (s *Store) Key(name string) string { return s.prefix + name }

func (s *Store) check(name string) error {
	if s.closed.Load() {
		return fmt.Errorf("gcs: store is closed: %w", net.ErrClosed)
	}
	if name == "" || name == "." || !fs.ValidPath(name) {
		return fmt.Errorf("%w: %q", ErrInvalidName, name)
	}
	return nil
}

// Put uploads size bytes from r under name, only if no object has that
// name: the upload carries the precondition ifGenerationMatch=0
// (storage.Conditions{DoesNotExist: true}). Objects up to the chunk size
// go in one request; larger ones in a resumable upload, which Cloud
// Storage keeps invisible until its last chunk and which Put cancels when
// it fails.
func (s *Store) Put(ctx context.Context, name string, r io.Reader, size int64) (err error) {
	if err := s.check(name); err != nil {
		return err
	}
	if size < 0 {
		return fmt.Errorf("%w: negative size %d", ErrSize, size)
	}
	wctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var small []byte
	if size < int64(s.chunk) {
		// One request. The whole object is read first, so that a source
		// that fails or ends early never sends a byte.
		small = make([]byte, size)
		if err := readExact(r, small); err != nil {
			return fmt.Errorf("gcs: put %q: %w", name, err)
		}
		if err := ctx.Err(); err != nil {
			return fmt.Errorf("gcs: put %q: %w", name, err)
		}
	}
	w := s.bkt.Object(s.Key(name)).If(storage.Conditions{DoesNotExist: true}).NewWriter(wctx)
	w.ChunkSize = s.chunk
	w.ContentType = "application/octet-stream"
	if small != nil {
		w.ChunkSize = 0
		w.CRC32C = crc32.Checksum(small, crc32.MakeTable(crc32.Castagnoli))
		w.SendCRC32C = true
		r = bytes.NewReader(small)
	}
	dst := &writeCounter{w: w}
	defer func() {
		if err == nil {
			return
		}
		// Abandon the upload before it is finalised. The library would
		// do it on its own once it sees wctx canceled, but a Close racing
		// that could finalise what was written so far: abort the body
		// synchronously first, then wait for the upload goroutine.
		if dst.n > 0 {
			w.CloseWithError(err) //nolint:staticcheck // deterministic abort; see above
			cancel()
			w.Close()
		}
		cancel()
	}()
	src := &readErrReader{r: io.LimitReader(r, size)}
	n, err := io.Copy(dst, src)
	if err != nil {
		// The deferred cancel abandons the upload, whoever failed.
		if ctx.Err() != nil {
			return fmt.Errorf("gcs: put %q: %w", name, ctx.Err())
		}
		if src.err != nil {
			return fmt.Errorf("gcs: put %q: read object data: %w", name, src.err)
		}
		return s.wrap(err, "write", "storage.objects.create", name)
	}
	if n != size {
		return fmt.Errorf("%w: reader ended %d bytes early", ErrSize, size-n)
	}
	var one [1]byte
	for {
		m, rerr := r.Read(one[:])
		if m > 0 {
			return fmt.Errorf("%w: reader holds more bytes than announced", ErrSize)
		}
		if rerr == io.EOF {
			break
		}
		if rerr != nil {
			return fmt.Errorf("gcs: put %q: read object data: %w", name, rerr)
		}
	}
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("gcs: put %q: %w", name, err)
	}
	if err := w.Close(); err != nil {
		return s.wrap(err, "write", "storage.objects.create", name)
	}
	return nil
}

// readExact fills buf from r and checks that r ends there.
func readExact(r io.Reader, buf []byte) error {
	n, err := io.ReadFull(r, buf)
	if err == io.EOF || err == io.ErrUnexpectedEOF {
		return fmt.Errorf("%w: reader ended %d bytes early", ErrSize, len(buf)-n)
	}
	if err != nil {
		return fmt.Errorf("read object data: %w", err)
	}
	var one [1]byte
	for {
		n, err := r.Read(one[:])
		if n > 0 {
			return fmt.Errorf("%w: reader holds more bytes than announced", ErrSize)
		}
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return fmt.Errorf("read object data: %w", err)
		}
	}
}

// writeCounter counts what reached the writer: the library starts an
// upload at the first Write.
type writeCounter struct {
	w io.Writer
	n int64
}

func (c *writeCounter) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	c.n += int64(n)
	return n, err
}

// readErrReader remembers the error of its reader, so that Put can tell
// a failing source from a failing upload.
type readErrReader struct {
	r   io.Reader
	err error
}

func (e *readErrReader) Read(p []byte) (int, error) {
	n, err := e.r.Read(p)
	if err != nil && err != io.EOF {
		e.err = err
	}
	return n, err
}

// Get opens the object for reading.
func (s *Store) Get(ctx context.Context, name string) (io.ReadCloser, error) {
	if err := s.check(name); err != nil {
		return nil, err
	}
	r, err := s.bkt.Object(s.Key(name)).NewReader(ctx)
	if err != nil {
		return nil, s.wrap(err, "read", "storage.objects.get", name)
	}
	return r, nil
}

// Stat describes the object.
func (s *Store) Stat(ctx context.Context, name string) (recorder.ObjectInfo, error) {
	if err := s.check(name); err != nil {
		return recorder.ObjectInfo{}, err
	}
	a, err := s.bkt.Object(s.Key(name)).Attrs(ctx)
	if err != nil {
		return recorder.ObjectInfo{}, s.wrap(err, "stat", "storage.objects.get", name)
	}
	return recorder.ObjectInfo{Name: name, Size: a.Size, Modified: a.Updated}, nil
}

// List returns the objects whose names begin with prefix, sorted by name.
func (s *Store) List(ctx context.Context, prefix string) ([]recorder.ObjectInfo, error) {
	if s.closed.Load() {
		return nil, fmt.Errorf("gcs: store is closed: %w", net.ErrClosed)
	}
	q := &storage.Query{Prefix: s.prefix + prefix}
	if err := q.SetAttrSelection([]string{"Name", "Size", "Updated"}); err != nil {
		return nil, fmt.Errorf("gcs: list: %w", err)
	}
	it := s.bkt.Objects(ctx, q)
	var list []recorder.ObjectInfo
	for {
		a, err := it.Next()
		if err == iterator.Done {
			break
		}
		if err != nil {
			return nil, s.wrap(err, "list", "storage.objects.list", "")
		}
		if !strings.HasPrefix(a.Name, s.prefix) {
			continue
		}
		list = append(list, recorder.ObjectInfo{Name: a.Name[len(s.prefix):], Size: a.Size, Modified: a.Updated})
	}
	sort.Slice(list, func(i, j int) bool { return list[i].Name < list[j].Name })
	return list, nil
}

// Delete removes the object.
func (s *Store) Delete(ctx context.Context, name string) error {
	if err := s.check(name); err != nil {
		return err
	}
	if err := s.bkt.Object(s.Key(name)).Delete(ctx); err != nil {
		return s.wrap(err, "delete", "storage.objects.delete", name)
	}
	return nil
}

// Close closes the client when the Store built it (OpenURI). Later calls
// fail with an error wrapping net.ErrClosed. Close is safe to call more
// than once.
func (s *Store) Close() error {
	if s.closed.Swap(true) {
		return nil
	}
	if s.ownClient {
		if err := s.c.Close(); err != nil {
			return fmt.Errorf("gcs: close client: %w", err)
		}
	}
	return nil
}

// PermissionError reports an operation Cloud Storage refused. It wraps
// recorder.ErrPermission and the library's error.
type PermissionError struct {
	Op         string // "create bucket", "write", ...
	Permission string // IAM permission the caller lacks, such as "storage.objects.create"
	Bucket     string
	Object     string // empty for bucket operations
	Err        error
}

func (e *PermissionError) Error() string {
	where := "bucket " + strconv.Quote(e.Bucket)
	if e.Object != "" {
		where += " object " + strconv.Quote(e.Object)
	}
	return fmt.Sprintf("gcs: %s on %s denied: missing permission %s: %v", e.Op, where, e.Permission, e.Err)
}

// Unwrap returns recorder.ErrPermission and the library's error.
func (e *PermissionError) Unwrap() []error { return []error{recorder.ErrPermission, e.Err} }

func (s *Store) wrap(err error, op, perm, name string) error {
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return fmt.Errorf("gcs: %s %q: %w", op, name, err)
	}
	switch c := code(err); {
	case errors.Is(err, storage.ErrObjectNotExist) || (c == http.StatusNotFound && name != ""):
		return fmt.Errorf("gcs: %s %q: %w", op, name, recorder.ErrNotExist)
	case errors.Is(err, storage.ErrBucketNotExist) || c == http.StatusNotFound:
		return fmt.Errorf("gcs: %s: bucket %q does not exist: %w", op, s.bucket, recorder.ErrNotExist)
	case c == http.StatusPreconditionFailed:
		return fmt.Errorf("gcs: put %q: %w", name, recorder.ErrExists)
	case c == http.StatusForbidden || c == http.StatusUnauthorized:
		obj := ""
		if name != "" {
			obj = s.Key(name)
		}
		return &PermissionError{Op: op, Permission: perm, Bucket: s.bucket, Object: obj, Err: err}
	}
	return fmt.Errorf("gcs: %s %q: %w", op, name, err)
}

func code(err error) int {
	var ge *googleapi.Error
	if errors.As(err, &ge) {
		return ge.Code
	}
	return 0
}
