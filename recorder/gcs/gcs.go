package gcs

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"os"
	"sort"
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

// errClosed: a call after Close.
var errClosed = fmt.Errorf("gcs: store is closed: %w", net.ErrClosed)

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
		s.log = slog.New(slog.DiscardHandler)
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
	su, err := recorder.ParseStoreURI(u, recorder.URISpec{
		Driver: "gcs", Scheme: Scheme, Container: "bucket",
		Credentials: "Application Default Credentials",
		Params:      []string{"endpoint", "project", "chunk_size", "create_bucket"},
	})
	if err != nil {
		return nil, err
	}
	cfg := &Config{
		Bucket:         su.Container,
		Prefix:         su.Prefix,
		ProjectID:      su.Get("project"),
		NoCreateBucket: !su.Bool("create_bucket", true),
		ChunkSize:      int(su.Size("chunk_size")),
	}
	endpoint := su.Endpoint("endpoint")
	if err := su.Err(); err != nil {
		return nil, err
	}
	if cfg.ProjectID == "" {
		cfg.ProjectID = os.Getenv("GOOGLE_CLOUD_PROJECT")
	}
	var opts []option.ClientOption
	if endpoint != nil {
		endpoint.Path = strings.TrimSuffix(endpoint.Path, "/") + "/storage/v1/"
		opts = append(opts, option.WithEndpoint(endpoint.String()))
		if endpoint.Scheme == "http" {
			// An emulator: credentials never travel in clear text.
			opts = append(opts, option.WithoutAuthentication())
		}
	}
	if cfg.ProjectID == "" && (endpoint != nil || os.Getenv("STORAGE_EMULATOR_HOST") != "") {
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
		return errClosed
	}
	return recorder.ValidateName(name)
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
		return fmt.Errorf("%w: negative size %d", recorder.ErrSize, size)
	}
	wctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var small []byte
	if size < int64(s.chunk) {
		// One request. The whole object is read first, so that a source
		// that fails or ends early never sends a byte.
		small = make([]byte, size)
		if err := recorder.ReadPart(r, small, true); err != nil {
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
		return fmt.Errorf("gcs: put %q: %w: reader ended %d bytes early", name, recorder.ErrSize, size-n)
	}
	// The reader must end here.
	if err := recorder.ReadPart(r, nil, true); err != nil {
		return fmt.Errorf("gcs: put %q: %w", name, err)
	}
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("gcs: put %q: %w", name, err)
	}
	if err := w.Close(); err != nil {
		return s.wrap(err, "write", "storage.objects.create", name)
	}
	return nil
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
		return nil, errClosed
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

// PermissionError reports an operation Cloud Storage refused: Op is the
// operation ("write"), Permission the IAM permission the caller lacks
// ("storage.objects.create"), Container the bucket and Object the object
// name. It wraps recorder.ErrPermission and the library's error.
type PermissionError = recorder.PermissionError

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
		return &PermissionError{Driver: "gcs", Op: op, Permission: perm, Container: s.bucket, Object: obj, Err: err}
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
