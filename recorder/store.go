package recorder

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net/url"
	"sort"
	"strings"
	"sync"
	"time"
)

// Errors storage drivers return (possibly wrapped; compare with errors.Is).
var (
	// ErrExists: Put found a complete object under the name already. The
	// existing object is left as it was.
	ErrExists = errors.New("recorder: object exists")
	// ErrNotExist: no object has the name. It is fs.ErrNotExist, so
	// errors.Is(err, fs.ErrNotExist) also holds.
	ErrNotExist = fs.ErrNotExist
	// ErrPermission: the store refused the operation for lack of a
	// permission; the wrapping error names the permission.
	ErrPermission = fs.ErrPermission
)

// ObjectInfo describes a stored object.
type ObjectInfo struct {
	Name     string
	Size     int64
	Modified time.Time
}

// Store is the narrow interface a storage driver implements. Object names
// are "/"-separated relative paths such as "2026/11/21/<session-id>.cast.gz";
// drivers map them to their own naming. All methods are safe for concurrent
// use.
type Store interface {
	// Put stores size bytes read from r under name, only if no object has
	// that name: otherwise it returns an error wrapping ErrExists and
	// leaves the existing object untouched. No reader of the store ever
	// sees a partial object under name: the object appears whole when Put
	// returns nil, and not at all when Put fails or the process dies
	// mid-way (multipart and resumable uploads are completed or
	// abandoned, never exposed). A reader that yields other than size
	// bytes fails the Put. Put may read r more than once only if r is an
	// io.Seeker.
	Put(ctx context.Context, name string, r io.Reader, size int64) error

	// Get opens the object for reading; ErrNotExist if absent.
	Get(ctx context.Context, name string) (io.ReadCloser, error)

	// Stat describes the object; ErrNotExist if absent.
	Stat(ctx context.Context, name string) (ObjectInfo, error)

	// List returns the objects whose names begin with prefix, sorted by
	// name.
	List(ctx context.Context, prefix string) ([]ObjectInfo, error)

	// Delete removes the object; ErrNotExist if absent.
	Delete(ctx context.Context, name string) error

	// Close releases the driver's resources. Safe to call more than once.
	Close() error
}

// OpenFunc opens a Store from a parsed URI. Drivers register one with
// RegisterStore. Opening checks that the bucket or container exists and
// creates it when it does not.
type OpenFunc func(ctx context.Context, u *url.URL) (Store, error)

var (
	storesMu sync.RWMutex
	stores   = map[string]OpenFunc{}
)

// RegisterStore makes a storage driver available to OpenStore under a URI
// scheme ("file", "s3", "gs", "azblob"). Drivers call it from init; a
// program imports the drivers it wants. It panics on a duplicate scheme.
func RegisterStore(scheme string, open OpenFunc) {
	storesMu.Lock()
	defer storesMu.Unlock()
	if open == nil {
		panic("recorder: RegisterStore with nil OpenFunc for " + scheme)
	}
	if _, dup := stores[scheme]; dup {
		panic("recorder: RegisterStore called twice for " + scheme)
	}
	stores[scheme] = open
}

// OpenStore opens the store a URI names: "file:///var/lib/sallyport/recordings",
// "s3://bucket?endpoint=...&region=...&path_style=true", "gs://bucket",
// "azblob://container?account=...&endpoint=...". Each driver package
// documents its parameters.
func OpenStore(ctx context.Context, uri string) (Store, error) {
	u, err := url.Parse(uri)
	if err != nil {
		var ue *url.Error // the URI may hold a secret: report only the reason
		if errors.As(err, &ue) {
			err = ue.Err
		}
		return nil, fmt.Errorf("recorder: bad store URI: %w", err)
	}
	storesMu.RLock()
	open := stores[strings.ToLower(u.Scheme)]
	storesMu.RUnlock()
	if open == nil {
		return nil, fmt.Errorf("recorder: no store driver for scheme %q (registered: %s; import the driver package)", u.Scheme, strings.Join(StoreDrivers(), ", "))
	}
	return open(ctx, u)
}

// StoreDrivers returns the registered store schemes, sorted.
func StoreDrivers() []string {
	storesMu.RLock()
	defer storesMu.RUnlock()
	s := make([]string, 0, len(stores))
	for k := range stores {
		s = append(s, k)
	}
	sort.Strings(s)
	return s
}
