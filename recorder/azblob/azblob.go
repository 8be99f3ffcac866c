package azblob

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"os"
	"sort"
	"strings"
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

// errClosed: a call after Close.
var errClosed = fmt.Errorf("azblob: store is closed: %w", net.ErrClosed)

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
		s.log = slog.New(slog.DiscardHandler)
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
	su, err := recorder.ParseStoreURI(u, recorder.URISpec{
		Driver: "azblob", Scheme: Scheme, Container: "container",
		Credentials: "AZURE_STORAGE_KEY",
		Params:      []string{"account", "endpoint", "block_size", "single_upload_threshold", "concurrency", "create_container"},
	})
	if err != nil {
		return nil, err
	}
	cfg := &Config{
		Prefix:                su.Prefix,
		NoCreateContainer:     !su.Bool("create_container", true),
		BlockSize:             su.Size("block_size"),
		SingleUploadThreshold: su.Size("single_upload_threshold"),
		Concurrency:           su.Count("concurrency"),
	}
	eu := su.Endpoint("endpoint")
	if err := su.Err(); err != nil {
		return nil, err
	}
	account := su.Get("account")
	if account == "" {
		account = os.Getenv("AZURE_STORAGE_ACCOUNT")
	}
	if account == "" {
		return nil, errors.New("azblob: no account (URI parameter account or AZURE_STORAGE_ACCOUNT)")
	}
	if eu == nil {
		eu = &url.URL{Scheme: "https", Host: account + ".blob.core.windows.net"}
	}

	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.MaxIdleConnsPerHost = 64
	opts := &container.ClientOptions{ClientOptions: azcore.ClientOptions{Transport: &http.Client{Transport: tr}}}
	curl := strings.TrimSuffix(eu.String(), "/") + "/" + url.PathEscape(su.Container)
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

// Container returns the name of the container the Store writes to.
func (s *Store) Container() string { return s.container }

// Client returns the container client the Store uses.
func (s *Store) Client() *container.Client { return s.c }

// Key returns the blob name that holds the object name.
func (s *Store) Key(name string) string { return s.prefix + name }

func (s *Store) check(name string) error {
	if s.closed.Load() {
		return errClosed
	}
	return recorder.ValidateName(name)
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
		return fmt.Errorf("%w: size %d out of range", recorder.ErrSize, size)
	}
	if size < s.threshold {
		return s.putSingle(ctx, name, r, size)
	}
	return s.putBlocks(ctx, name, r, size)
}

// maxClearTries bounds how often putSingle clears a name's leftover
// uncommitted blocks and tries again.
const maxClearTries = 4

type nopCloser struct{ io.ReadSeeker }

func (nopCloser) Close() error { return nil }

func (s *Store) putSingle(ctx context.Context, name string, r io.Reader, size int64) error {
	b, err := recorder.PutBody(r, size)
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
		// again. A block whose request the failed upload cancelled may
		// still land after the clearing, so a few tries, a little apart.
		if attempt >= maxClearTries || !bloberror.HasCode(err, bloberror.BlobAlreadyExists, bloberror.ConditionNotMet) || !s.clearUncommitted(ctx, bc) {
			return s.wrap(err, "put blob", "Microsoft.Storage/storageAccounts/blobServices/containers/blobs/write", name)
		}
		if attempt > 0 {
			select {
			case <-time.After(time.Duration(attempt) * 100 * time.Millisecond):
			case <-ctx.Done():
				return fmt.Errorf("azblob: put %q: %w", name, ctx.Err())
			}
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
	blockSize := recorder.PartSize(size, s.blockSize, MaxBlocks)
	nblocks := recorder.PartCount(size, blockSize) // an empty object is one empty block
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

	// Blocks are read at their offsets when r allows, so they need no
	// buffer; otherwise block by block into a few buffers.
	err := recorder.UploadParts(ctx, r, size, blockSize, s.conc, func(ctx context.Context, i int, body io.ReadSeeker, _ int64) error {
		if _, err := bc.StageBlock(ctx, ids[i], nopCloser{body}, nil); err != nil {
			return s.wrap(err, "put block", "Microsoft.Storage/storageAccounts/blobServices/containers/blobs/write", name)
		}
		return nil
	})
	if err == nil {
		_, cerr := bc.CommitBlockList(ctx, ids, &blockblob.CommitBlockListOptions{AccessConditions: ifNoneMatchAny})
		if cerr == nil {
			return nil
		}
		err = s.wrap(cerr, "put block list", "Microsoft.Storage/storageAccounts/blobServices/containers/blobs/write", name)
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
	return err
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
		return nil, errClosed
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

// PermissionError reports an operation Azure refused: Op is the operation
// ("put blob"), Permission the Azure RBAC data action the caller lacks,
// Container the container and Object the blob name. It wraps
// recorder.ErrPermission and the SDK's error.
type PermissionError = recorder.PermissionError

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
		return &PermissionError{Driver: "azblob", Op: op, Permission: perm, Container: s.container, Object: b, Err: err}
	}
	return fmt.Errorf("azblob: %s %q: %w", op, name, err)
}
