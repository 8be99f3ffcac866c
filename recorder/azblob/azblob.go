package azblob

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
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
	"sync"
	"sync/atomic"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/blob"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/bloberror"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/blockblob"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/container"

	"github.com/sallyport/sallyport/recorder"
)

// Scheme is the URI scheme the driver registers with recorder.RegisterStore.
const Scheme = "azblob"

// Limits of block blobs and the driver's defaults.
const (
	DefaultBlockSize       = 8 << 20  // Config.BlockSize when zero
	DefaultSingleThreshold = 16 << 20 // Config.SingleUploadThreshold when zero
	DefaultConcurrency     = 4        // Config.Concurrency when zero
	MaxBlockSize           = 4000 << 20
	MaxBlocks              = 50000
	maxSingleUpload        = 5000 << 20
)

// Errors of the driver besides those of package recorder.
var (
	// ErrInvalidName: an object name that is not a clean relative
	// "/"-separated path. It wraps fs.ErrInvalid.
	ErrInvalidName = fmt.Errorf("azblob: invalid object name: %w", fs.ErrInvalid)
	// ErrSize: the reader given to Put yielded other than the announced
	// number of bytes, or the size is out of range.
	ErrSize = errors.New("azblob: object size mismatch")
)

// Config configures a Store. The zero value of every field but Client
// selects a default.
type Config struct {
	// Client is the client of the container that holds the objects.
	// Required.
	Client *container.Client
	// Prefix is prepended to every object name ("recordings/"); zero
	// means none.
	Prefix string
	// NoCreateContainer makes Open fail when the container is missing
	// instead of creating it.
	NoCreateContainer bool
	// SingleUploadThreshold is the size from which Put stages blocks and
	// commits them; below it Put sends one Put Blob request. Zero means
	// DefaultSingleThreshold.
	SingleUploadThreshold int64
	// BlockSize is the size of each staged block; it grows when an object
	// would need more than MaxBlocks blocks. Zero means DefaultBlockSize.
	BlockSize int64
	// Concurrency is the number of blocks one Put stages at once; each
	// costs a block-sized buffer unless the reader is an io.ReaderAt and
	// io.Seeker. Zero means DefaultConcurrency.
	Concurrency int
	// Logger receives debug and informational records; nil discards
	// them. Account keys are never logged.
	Logger *slog.Logger
}

// Store is a recorder.Store in an Azure Blob Storage container. It is safe
// for concurrent use.
type Store struct {
	c         *container.Client
	container string
	prefix    string
	threshold int64
	blockSize int64
	conc      int
	log       *slog.Logger
	transport *http.Transport // owned when OpenURI built the client
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

// Open checks the configuration, makes sure the container exists (creating
// it unless NoCreateContainer) and returns the Store.
func Open(ctx context.Context, cfg *Config) (*Store, error) {
	if cfg == nil || cfg.Client == nil {
		return nil, errors.New("azblob: Config.Client is required")
	}
	s := &Store{c: cfg.Client, prefix: cfg.Prefix, threshold: cfg.SingleUploadThreshold, blockSize: cfg.BlockSize, conc: cfg.Concurrency, log: cfg.Logger}
	if u, err := url.Parse(cfg.Client.URL()); err == nil {
		p := strings.Split(strings.Trim(u.Path, "/"), "/")
		s.container = p[len(p)-1]
	}
	if s.threshold == 0 {
		s.threshold = DefaultSingleThreshold
	}
	if s.threshold < 0 || s.threshold > maxSingleUpload {
		return nil, fmt.Errorf("azblob: SingleUploadThreshold %d out of range", s.threshold)
	}
	if s.blockSize == 0 {
		s.blockSize = DefaultBlockSize
	}
	if s.blockSize < 0 || s.blockSize > MaxBlockSize {
		return nil, fmt.Errorf("azblob: BlockSize %d out of range", s.blockSize)
	}
	if s.conc == 0 {
		s.conc = DefaultConcurrency
	}
	if s.conc < 0 {
		return nil, fmt.Errorf("azblob: negative Concurrency %d", s.conc)
	}
	if s.log == nil {
		s.log = slog.New(discardHandler{})
	}
	_, err := s.c.GetProperties(ctx, nil)
	if err == nil {
		return s, nil
	}
	if !bloberror.HasCode(err, bloberror.ContainerNotFound) {
		return nil, s.wrap(err, "get container properties", "Microsoft.Storage/storageAccounts/blobServices/containers/read", "")
	}
	if cfg.NoCreateContainer {
		return nil, fmt.Errorf("azblob: container %q does not exist: %w", s.container, recorder.ErrNotExist)
	}
	if _, err := s.c.Create(ctx, nil); err != nil && !bloberror.HasCode(err, bloberror.ContainerAlreadyExists) {
		return nil, s.wrap(err, "create container", "Microsoft.Storage/storageAccounts/blobServices/containers/write", "")
	}
	s.log.LogAttrs(ctx, slog.LevelInfo, "azblob: created container", slog.String("container", s.container))
	return s, nil
}

// OpenURI opens the Store a URI names:
//
//	azblob://container/optional/prefix/?account=myaccount
//	azblob://container?account=devstoreaccount1&endpoint=http://127.0.0.1:10000/devstoreaccount1
//
// The account key comes from AZURE_STORAGE_KEY; without it, a SAS token
// from AZURE_STORAGE_SAS_TOKEN. See the package documentation.
func OpenURI(ctx context.Context, u *url.URL) (*Store, error) {
	if !strings.EqualFold(u.Scheme, Scheme) {
		return nil, fmt.Errorf("azblob: URI scheme %q is not %q", u.Scheme, Scheme)
	}
	if u.User != nil {
		return nil, errors.New("azblob: credentials in the URI are not accepted; use AZURE_STORAGE_KEY")
	}
	if u.Host == "" {
		return nil, errors.New("azblob: URI names no container")
	}
	q := u.Query()
	for k := range q {
		switch k {
		case "account", "endpoint", "block_size", "single_upload_threshold", "concurrency", "create_container":
		default:
			return nil, fmt.Errorf("azblob: unknown URI parameter %q", k)
		}
	}
	cfg := &Config{Prefix: strings.TrimPrefix(u.Path, "/")}
	account := q.Get("account")
	if account == "" {
		account = os.Getenv("AZURE_STORAGE_ACCOUNT")
	}
	if account == "" {
		return nil, errors.New("azblob: no account (URI parameter account or AZURE_STORAGE_ACCOUNT)")
	}
	endpoint := q.Get("endpoint")
	if endpoint == "" {
		endpoint = "https://" + account + ".blob.core.windows.net"
	}
	eu, err := url.Parse(endpoint)
	if err != nil || (eu.Scheme != "http" && eu.Scheme != "https") || eu.Host == "" {
		return nil, fmt.Errorf("azblob: bad endpoint %q (want http[s]://host[:port][/account])", endpoint)
	}
	if v := q.Get("create_container"); v != "" {
		create, err := strconv.ParseBool(v)
		if err != nil {
			return nil, fmt.Errorf("azblob: bad create_container %q", v)
		}
		cfg.NoCreateContainer = !create
	}
	for _, p := range []struct {
		name string
		dst  *int64
	}{{"block_size", &cfg.BlockSize}, {"single_upload_threshold", &cfg.SingleUploadThreshold}} {
		if v := q.Get(p.name); v != "" {
			n, err := parseSize(v)
			if err != nil {
				return nil, fmt.Errorf("azblob: bad %s %q", p.name, v)
			}
			*p.dst = n
		}
	}
	if v := q.Get("concurrency"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 {
			return nil, fmt.Errorf("azblob: bad concurrency %q", v)
		}
		cfg.Concurrency = n
	}

	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.MaxIdleConnsPerHost = 64
	opts := &container.ClientOptions{ClientOptions: azcore.ClientOptions{Transport: &http.Client{Transport: tr}}}
	curl := strings.TrimSuffix(eu.String(), "/") + "/" + url.PathEscape(u.Host)
	var c *container.Client
	if key := os.Getenv("AZURE_STORAGE_KEY"); key != "" {
		cred, err := container.NewSharedKeyCredential(account, key)
		if err != nil {
			return nil, errors.New("azblob: AZURE_STORAGE_KEY is not a valid account key") // the key itself stays out of the message
		}
		c, err = container.NewClientWithSharedKeyCredential(curl, cred, opts)
		if err != nil {
			return nil, fmt.Errorf("azblob: new client: %w", err)
		}
	} else if sas := os.Getenv("AZURE_STORAGE_SAS_TOKEN"); sas != "" {
		c, err = container.NewClientWithNoCredential(curl+"?"+strings.TrimPrefix(sas, "?"), opts)
		if err != nil {
			return nil, errors.New("azblob: new client with AZURE_STORAGE_SAS_TOKEN failed")
		}
	} else {
		return nil, errors.New("azblob: no credentials: set AZURE_STORAGE_KEY (or AZURE_STORAGE_SAS_TOKEN)")
	}
	cfg.Client = c
	s, err := Open(ctx, cfg)
	if err != nil {
		tr.CloseIdleConnections()
		return nil, err
	}
	s.transport = tr
	return s, nil
}

// parseSize reads a positive byte count with an optional K, M or G (binary,
// also KiB, MiB, GiB) suffix.
func parseSize(v string) (int64, error) {
	mult := int64(1)
	for _, u := range []struct {
		suffix string
		mult   int64
	}{{"GiB", 1 << 30}, {"MiB", 1 << 20}, {"KiB", 1 << 10}, {"G", 1 << 30}, {"M", 1 << 20}, {"K", 1 << 10}} {
		if rest, ok := strings.CutSuffix(v, u.suffix); ok {
			v, mult = rest, u.mult
			break
		}
	}
	n, err := strconv.ParseInt(v, 10, 64)
	if err != nil || n <= 0 || n > (1<<50)/mult {
		return 0, errors.New("not a byte count")
	}
	return n * mult, nil
}

// Container returns the name of the container the Store writes to.
func (s *Store) Container() string { return s.container }

// Client returns the container client the Store uses.
func (s *Store) Client() *container.Client { return s.c }

// Key returns the blob name that holds the object name.
func (s *Store) Key(name string) string { return s.prefix + name }

func (s *Store) check(name string) error {
	if s.closed.Load() {
		return fmt.Errorf("azblob: store is closed: %w", net.ErrClosed)
	}
	if name == "" || name == "." || !fs.ValidPath(name) {
		return fmt.Errorf("%w: %q", ErrInvalidName, name)
	}
	return nil
}

var ifNoneMatchAny = &blob.AccessConditions{ModifiedAccessConditions: &blob.ModifiedAccessConditions{IfNoneMatch: ptr(azcore.ETagAny)}}

func ptr[T any](v T) *T { return &v }

// Put uploads size bytes from r under name, only if no blob has that
// name. Objects below the single-upload threshold go in one Put Blob with
// If-None-Match: *; larger ones are staged as uncommitted blocks, which no
// reader sees, and committed by Put Block List with If-None-Match: *.
func (s *Store) Put(ctx context.Context, name string, r io.Reader, size int64) error {
	if err := s.check(name); err != nil {
		return err
	}
	if size < 0 || size > MaxBlockSize*MaxBlocks {
		return fmt.Errorf("%w: size %d out of range", ErrSize, size)
	}
	if size < s.threshold {
		return s.putSingle(ctx, name, r, size)
	}
	return s.putBlocks(ctx, name, r, size)
}

type nopCloser struct{ io.ReadSeeker }

func (nopCloser) Close() error { return nil }

// body returns a seekable reader of exactly size bytes of r, reading at
// offsets when r allows it and buffering otherwise.
func body(r io.Reader, size int64) (io.ReadSeeker, error) {
	sr, err := section(r, size)
	if err != nil || sr != nil {
		return sr, err
	}
	buf := make([]byte, size)
	if err := readPart(r, buf, true); err != nil {
		return nil, err
	}
	return bytes.NewReader(buf), nil
}

// section returns the size bytes of r from its current offset as a
// SectionReader when r can be read at offsets (an *os.File, a
// SectionReader, a bytes.Reader), checking that r holds exactly size
// bytes; nil when it cannot.
func section(r io.Reader, size int64) (*io.SectionReader, error) {
	ra, ok := r.(interface {
		io.ReaderAt
		io.Seeker
	})
	if !ok {
		return nil, nil
	}
	cur, err := ra.Seek(0, io.SeekCurrent)
	if err != nil {
		return nil, nil // not seekable after all (a pipe): read it in order
	}
	end, err := ra.Seek(0, io.SeekEnd)
	if err != nil {
		return nil, fmt.Errorf("azblob: seek object data: %w", err)
	}
	if _, err := ra.Seek(cur, io.SeekStart); err != nil {
		return nil, fmt.Errorf("azblob: seek object data: %w", err)
	}
	if end-cur != size {
		return nil, fmt.Errorf("%w: reader holds %d bytes, want %d", ErrSize, end-cur, size)
	}
	return io.NewSectionReader(ra, cur, size), nil
}

func readPart(r io.Reader, buf []byte, last bool) error {
	n, err := io.ReadFull(r, buf)
	if err == io.EOF || err == io.ErrUnexpectedEOF {
		return fmt.Errorf("%w: reader ended %d bytes early", ErrSize, len(buf)-n)
	}
	if err != nil {
		return fmt.Errorf("azblob: read object data: %w", err)
	}
	if last {
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
				return fmt.Errorf("azblob: read object data: %w", err)
			}
		}
	}
	return nil
}

func (s *Store) putSingle(ctx context.Context, name string, r io.Reader, size int64) error {
	b, err := body(r, size)
	if err != nil {
		return err
	}
	bc := s.c.NewBlockBlobClient(s.Key(name))
	for attempt := 0; ; attempt++ {
		_, err = bc.Upload(ctx, nopCloser{b}, &blockblob.UploadOptions{AccessConditions: ifNoneMatchAny})
		if err == nil {
			return nil
		}
		// Some services (Azurite) count a name that holds only
		// uncommitted blocks, left by a failed staged upload, as an
		// existing blob. Such blocks are no object: clear them and try
		// once more.
		if attempt > 0 || !bloberror.HasCode(err, bloberror.BlobAlreadyExists, bloberror.ConditionNotMet) || !s.clearUncommitted(ctx, bc) {
			return s.wrap(err, "put blob", "Microsoft.Storage/storageAccounts/blobServices/containers/blobs/write", name)
		}
		if _, serr := b.Seek(0, io.SeekStart); serr != nil {
			return fmt.Errorf("azblob: rewind object data: %w", serr)
		}
	}
}

// clearUncommitted deletes the uncommitted blocks of a name that has no
// committed blob, and reports whether it did. A committed blob is never
// deleted: the name is checked first.
func (s *Store) clearUncommitted(ctx context.Context, bc *blockblob.Client) bool {
	if _, err := bc.GetProperties(ctx, nil); !bloberror.HasCode(err, bloberror.BlobNotFound) {
		return false
	}
	if _, err := bc.Delete(ctx, nil); err != nil && !bloberror.HasCode(err, bloberror.BlobNotFound) {
		s.log.LogAttrs(ctx, slog.LevelDebug, "azblob: clear uncommitted blocks", slog.String("blob", bc.URL()), slog.String("error", err.Error()))
		return false
	}
	s.log.LogAttrs(ctx, slog.LevelDebug, "azblob: cleared uncommitted blocks", slog.String("blob", bc.URL()))
	return true
}

func (s *Store) putBlocks(ctx context.Context, name string, r io.Reader, size int64) error {
	bc := s.c.NewBlockBlobClient(s.Key(name))
	// Fail early when the blob exists: the conditional commit would
	// refuse it anyway, after every block was sent.
	if _, err := bc.GetProperties(ctx, nil); err == nil {
		return fmt.Errorf("azblob: put %q: %w", name, recorder.ErrExists)
	} else if !bloberror.HasCode(err, bloberror.BlobNotFound) && !isStatus(err, http.StatusNotFound) {
		return s.wrap(err, "get blob properties", "Microsoft.Storage/storageAccounts/blobServices/containers/blobs/read", name)
	}
	blockSize := s.blockSize
	if (size+blockSize-1)/blockSize > MaxBlocks {
		blockSize = (size + MaxBlocks - 1) / MaxBlocks
		blockSize = (blockSize + (1<<20 - 1)) &^ (1<<20 - 1)
	}
	nblocks := int((size + blockSize - 1) / blockSize)
	if nblocks == 0 {
		nblocks = 1 // an empty object is one empty block
	}
	var ra io.ReaderAt
	sr, err := section(r, size)
	if err != nil {
		return err
	}
	if sr != nil {
		ra = sr
	}
	// Block IDs are unique to this upload (blocks another attempt left
	// uncommitted are not reused) and of one length, as Azure requires.
	var rb [8]byte
	if _, err := rand.Read(rb[:]); err != nil {
		return fmt.Errorf("azblob: block IDs: %w", err)
	}
	upload := hex.EncodeToString(rb[:])
	ids := make([]string, nblocks)
	for i := range ids {
		ids[i] = base64.StdEncoding.EncodeToString(fmt.Appendf(nil, "%s-%06d", upload, i))
	}

	pctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var (
		wg       sync.WaitGroup
		mu       sync.Mutex
		firstErr error
		bufs     = make(chan []byte, s.conc)
		slots    = make(chan struct{}, s.conc)
	)
	fail := func(e error) {
		mu.Lock()
		if firstErr == nil {
			firstErr = e
			cancel()
		}
		mu.Unlock()
	}
	for i := range nblocks {
		off := int64(i) * blockSize
		n := min(blockSize, size-off)
		select {
		case slots <- struct{}{}:
		case <-pctx.Done():
		}
		if pctx.Err() != nil {
			break
		}
		var pb io.ReadSeeker
		var buf []byte
		if ra != nil {
			pb = io.NewSectionReader(ra, off, n)
		} else {
			select {
			case buf = <-bufs:
			default:
				buf = make([]byte, blockSize)
			}
			buf = buf[:n]
			if err := readPart(r, buf, i == nblocks-1); err != nil {
				<-slots
				fail(err)
				break
			}
			pb = bytes.NewReader(buf)
		}
		wg.Add(1)
		go func(id string, pb io.ReadSeeker, buf []byte) {
			defer wg.Done()
			defer func() {
				if buf != nil {
					bufs <- buf[:cap(buf)]
				}
				<-slots
			}()
			if _, err := bc.StageBlock(pctx, id, nopCloser{pb}, nil); err != nil {
				fail(s.wrap(err, "put block", "Microsoft.Storage/storageAccounts/blobServices/containers/blobs/write", name))
			}
		}(ids[i], pb, buf)
	}
	wg.Wait()
	if firstErr == nil && ctx.Err() == nil {
		_, err := bc.CommitBlockList(ctx, ids, &blockblob.CommitBlockListOptions{AccessConditions: ifNoneMatchAny})
		if err == nil {
			return nil
		}
		firstErr = s.wrap(err, "put block list", "Microsoft.Storage/storageAccounts/blobServices/containers/blobs/write", name)
		// A rival that committed first may have cleared our blocks: the
		// name is taken either way.
		if _, perr := bc.GetProperties(ctx, nil); perr == nil {
			return fmt.Errorf("azblob: put %q: %w", name, recorder.ErrExists)
		}
	}
	// The service discards uncommitted blocks after a week; clear them now
	// so that they do not hold the name (best effort, even when ctx is done).
	cctx, ccancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
	s.clearUncommitted(cctx, bc)
	ccancel()
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("azblob: put %q: %w", name, err)
	}
	return firstErr
}

// Get opens the object for reading.
func (s *Store) Get(ctx context.Context, name string) (io.ReadCloser, error) {
	if err := s.check(name); err != nil {
		return nil, err
	}
	resp, err := s.c.NewBlobClient(s.Key(name)).DownloadStream(ctx, nil)
	if err != nil {
		return nil, s.wrap(err, "get blob", "Microsoft.Storage/storageAccounts/blobServices/containers/blobs/read", name)
	}
	return resp.Body, nil
}

// Stat describes the object.
func (s *Store) Stat(ctx context.Context, name string) (recorder.ObjectInfo, error) {
	if err := s.check(name); err != nil {
		return recorder.ObjectInfo{}, err
	}
	p, err := s.c.NewBlobClient(s.Key(name)).GetProperties(ctx, nil)
	if err != nil {
		return recorder.ObjectInfo{}, s.wrap(err, "get blob properties", "Microsoft.Storage/storageAccounts/blobServices/containers/blobs/read", name)
	}
	info := recorder.ObjectInfo{Name: name}
	if p.ContentLength != nil {
		info.Size = *p.ContentLength
	}
	if p.LastModified != nil {
		info.Modified = *p.LastModified
	}
	return info, nil
}

// List returns the objects whose names begin with prefix, sorted by name.
func (s *Store) List(ctx context.Context, prefix string) ([]recorder.ObjectInfo, error) {
	if s.closed.Load() {
		return nil, fmt.Errorf("azblob: store is closed: %w", net.ErrClosed)
	}
	full := s.prefix + prefix
	pager := s.c.NewListBlobsFlatPager(&container.ListBlobsFlatOptions{Prefix: &full})
	var list []recorder.ObjectInfo
	for pager.More() {
		page, err := pager.NextPage(ctx)
		if err != nil {
			return nil, s.wrap(err, "list blobs", "Microsoft.Storage/storageAccounts/blobServices/containers/blobs/read", "")
		}
		for _, it := range page.Segment.BlobItems {
			if it.Name == nil || !strings.HasPrefix(*it.Name, s.prefix) {
				continue
			}
			o := recorder.ObjectInfo{Name: (*it.Name)[len(s.prefix):]}
			if it.Properties != nil {
				if it.Properties.ContentLength != nil {
					o.Size = *it.Properties.ContentLength
				}
				if it.Properties.LastModified != nil {
					o.Modified = *it.Properties.LastModified
				}
			}
			list = append(list, o)
		}
	}
	sort.Slice(list, func(i, j int) bool { return list[i].Name < list[j].Name })
	return list, nil
}

// Delete removes the object.
func (s *Store) Delete(ctx context.Context, name string) error {
	if err := s.check(name); err != nil {
		return err
	}
	if _, err := s.c.NewBlobClient(s.Key(name)).Delete(ctx, nil); err != nil {
		return s.wrap(err, "delete blob", "Microsoft.Storage/storageAccounts/blobServices/containers/blobs/delete", name)
	}
	return nil
}

// Close releases the connections of a client the Store built itself
// (OpenURI). Later calls fail with an error wrapping net.ErrClosed. Close
// is safe to call more than once.
func (s *Store) Close() error {
	if s.closed.Swap(true) {
		return nil
	}
	if s.transport != nil {
		s.transport.CloseIdleConnections()
	}
	return nil
}

// PermissionError reports an operation Azure refused. It wraps
// recorder.ErrPermission and the SDK's error.
type PermissionError struct {
	Op         string // "put blob", "create container", ...
	Permission string // Azure RBAC data action the caller lacks
	Container  string
	Blob       string // empty for container operations
	Err        error
}

func (e *PermissionError) Error() string {
	where := "container " + strconv.Quote(e.Container)
	if e.Blob != "" {
		where += " blob " + strconv.Quote(e.Blob)
	}
	return fmt.Sprintf("azblob: %s on %s denied: missing permission %s: %v", e.Op, where, e.Permission, e.Err)
}

// Unwrap returns recorder.ErrPermission and the SDK's error.
func (e *PermissionError) Unwrap() []error { return []error{recorder.ErrPermission, e.Err} }

func isStatus(err error, code int) bool {
	var re *azcore.ResponseError
	return errors.As(err, &re) && re.StatusCode == code
}

func (s *Store) wrap(err error, op, perm, name string) error {
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return fmt.Errorf("azblob: %s %q: %w", op, name, err)
	}
	switch {
	case bloberror.HasCode(err, bloberror.ConditionNotMet, bloberror.BlobAlreadyExists) || isStatus(err, http.StatusPreconditionFailed):
		return fmt.Errorf("azblob: put %q: %w", name, recorder.ErrExists)
	case bloberror.HasCode(err, bloberror.ContainerNotFound):
		return fmt.Errorf("azblob: %s: container %q does not exist: %w", op, s.container, recorder.ErrNotExist)
	case bloberror.HasCode(err, bloberror.BlobNotFound) || isStatus(err, http.StatusNotFound):
		return fmt.Errorf("azblob: %s %q: %w", op, name, recorder.ErrNotExist)
	case bloberror.HasCode(err, bloberror.AuthorizationPermissionMismatch, bloberror.AuthorizationFailure, bloberror.InsufficientAccountPermissions) || isStatus(err, http.StatusForbidden):
		b := ""
		if name != "" {
			b = s.Key(name)
		}
		return &PermissionError{Op: op, Permission: perm, Container: s.container, Blob: b, Err: err}
	}
	return fmt.Errorf("azblob: %s %q: %w", op, name, err)
}
