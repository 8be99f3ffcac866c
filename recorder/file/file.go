package file

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync/atomic"
	"syscall"

	"github.com/sallyport/sallyport/recorder"
)

// Scheme is the URI scheme this driver registers: "file:///var/lib/sallyport/recordings".
const Scheme = "file"

// DefaultDir is where recordings are stored when a file URI names no path.
const DefaultDir = "/var/lib/sallyport/recordings"

// tmpPrefix starts the names of files being written; List never shows
// them and object names may not contain an element that starts with it.
const tmpPrefix = ".tmp-put-"

// ErrInvalidName: the object name is not a clean relative "/"-separated path.
var ErrInvalidName = errors.New("file: invalid object name")

func init() {
	recorder.RegisterStore(Scheme, func(ctx context.Context, u *url.URL) (recorder.Store, error) {
		if u.Host != "" && u.Host != "localhost" {
			return nil, fmt.Errorf("file: URI names host %q; only local paths (file:///dir) are supported", u.Host)
		}
		dir := u.Path
		if u.Opaque != "" {
			dir = u.Opaque // file:relative/dir
		}
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		return Open(dir)
	})
}

// Store keeps objects as files below a directory. Object "a/b/c" is the
// file DIR/a/b/c. It is safe for concurrent use, also by several processes
// sharing the directory.
type Store struct {
	dir    string
	closed atomic.Bool
}

var _ recorder.Store = (*Store)(nil)

// Open returns a Store rooted at dir, creating the directory (mode 0750)
// when it does not exist.
func Open(dir string) (*Store, error) {
	if dir == "" {
		dir = DefaultDir
	}
	abs, err := filepath.Abs(dir)
	if err != nil {
		return nil, fmt.Errorf("file: %w", err)
	}
	if err := os.MkdirAll(abs, 0o750); err != nil {
		return nil, permError("open", abs, "write and search (w+x) on the parent directory to create it", err)
	}
	fi, err := os.Stat(abs)
	if err != nil {
		return nil, permError("open", abs, "search (x) on the path", err)
	}
	if !fi.IsDir() {
		return nil, fmt.Errorf("file: open %s: not a directory", abs)
	}
	return &Store{dir: abs}, nil
}

// Dir returns the store's root directory.
func (s *Store) Dir() string { return s.dir }

// permError names the permission an operation lacked.
func permError(op, path, need string, err error) error {
	if errors.Is(err, fs.ErrPermission) {
		return fmt.Errorf("file: %s %s: %s permission needed: %w", op, path, need, err)
	}
	return fmt.Errorf("file: %s: %w", op, err)
}

func (s *Store) path(op, name string) (string, error) {
	if s.closed.Load() {
		return "", fmt.Errorf("file: %s: %w", op, net.ErrClosed)
	}
	if !fs.ValidPath(name) || name == "." || strings.Contains(name, "\\") {
		return "", fmt.Errorf("%w: %q", ErrInvalidName, name)
	}
	for _, el := range strings.Split(name, "/") {
		if strings.HasPrefix(el, tmpPrefix) {
			return "", fmt.Errorf("%w: %q (elements may not start with %q)", ErrInvalidName, name, tmpPrefix)
		}
	}
	return filepath.Join(s.dir, filepath.FromSlash(name)), nil
}

// ctxReader stops a copy when the context ends.
type ctxReader struct {
	ctx context.Context
	r   io.Reader
}

func (c ctxReader) Read(p []byte) (int, error) {
	if err := c.ctx.Err(); err != nil {
		return 0, err
	}
	return c.r.Read(p)
}

// Put writes r to a temporary file in the object's directory, syncs it and
// links it into place; the link fails when the name exists, so Put is
// atomic and create-only.
func (s *Store) Put(ctx context.Context, name string, r io.Reader, size int64) (err error) {
	p, err := s.path("put", name)
	if err != nil {
		return err
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	if size < 0 {
		return fmt.Errorf("file: put %s: negative size %d", name, size)
	}
	if fi, err := os.Lstat(p); err == nil {
		if fi.IsDir() {
			return fmt.Errorf("file: put %s: the name is a directory of other objects", name)
		}
		return fmt.Errorf("file: put %s: %w", name, recorder.ErrExists)
	}
	dir := filepath.Dir(p)
	var f *os.File
	for attempt := 0; ; attempt++ {
		if err := os.MkdirAll(dir, 0o750); err != nil {
			return permError("put "+name, dir, "write and search (w+x) on the parent directory", err)
		}
		f, err = os.CreateTemp(dir, tmpPrefix+"*")
		// A concurrent Delete may remove the empty directory between
		// MkdirAll and CreateTemp: make it again.
		if errors.Is(err, fs.ErrNotExist) && attempt < 5 {
			continue
		}
		if err != nil {
			return permError("put "+name, dir, "write and search (w+x) on the directory", err)
		}
		break
	}
	tmp := f.Name()
	defer func() {
		if f != nil {
			f.Close()
		}
		os.Remove(tmp)
	}()
	n, err := io.Copy(f, io.LimitReader(ctxReader{ctx, r}, size))
	if err != nil {
		return fmt.Errorf("file: put %s: after %d of %d bytes: %w", name, n, size, err)
	}
	if n != size {
		return fmt.Errorf("file: put %s: reader gave %d bytes, size is %d: %w", name, n, size, io.ErrUnexpectedEOF)
	}
	// The reader must end here.
	var one [1]byte
	for {
		m, rerr := r.Read(one[:])
		if m > 0 {
			return fmt.Errorf("file: put %s: reader gives more than size %d bytes", name, size)
		}
		if rerr == io.EOF {
			break
		}
		if rerr != nil {
			return fmt.Errorf("file: put %s: %w", name, rerr)
		}
	}
	if err := f.Sync(); err != nil {
		return fmt.Errorf("file: put %s: sync: %w", name, err)
	}
	if err := f.Close(); err != nil {
		f = nil
		return fmt.Errorf("file: put %s: %w", name, err)
	}
	f = nil
	if err := ctx.Err(); err != nil {
		return err
	}
	if err := os.Link(tmp, p); err != nil {
		if errors.Is(err, fs.ErrExist) {
			return fmt.Errorf("file: put %s: %w", name, recorder.ErrExists)
		}
		return permError("put "+name, dir, "write (w) on the directory", err)
	}
	syncDir(dir)
	return nil
}

// syncDir makes a new directory entry durable (best effort).
func syncDir(dir string) {
	if d, err := os.Open(dir); err == nil {
		_ = d.Sync()
		d.Close()
	}
}

// Get opens the object's file.
func (s *Store) Get(ctx context.Context, name string) (io.ReadCloser, error) {
	p, err := s.path("get", name)
	if err != nil {
		return nil, err
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	f, err := os.Open(p)
	if err != nil {
		if isNotExist(err) {
			return nil, fmt.Errorf("file: get %s: %w", name, recorder.ErrNotExist)
		}
		return nil, permError("get "+name, p, "read (r) on the file and search (x) on its directories", err)
	}
	fi, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("file: get %s: %w", name, err)
	}
	if !fi.Mode().IsRegular() {
		f.Close()
		return nil, fmt.Errorf("file: get %s: %w", name, recorder.ErrNotExist)
	}
	return f, nil
}

// isNotExist also counts "a path element is a file" (ENOTDIR) as absent.
func isNotExist(err error) bool {
	return errors.Is(err, fs.ErrNotExist) || errors.Is(err, syscall.ENOTDIR)
}

// Stat describes the object's file.
func (s *Store) Stat(ctx context.Context, name string) (recorder.ObjectInfo, error) {
	p, err := s.path("stat", name)
	if err != nil {
		return recorder.ObjectInfo{}, err
	}
	if err := ctx.Err(); err != nil {
		return recorder.ObjectInfo{}, err
	}
	fi, err := os.Stat(p)
	if err != nil {
		if isNotExist(err) {
			return recorder.ObjectInfo{}, fmt.Errorf("file: stat %s: %w", name, recorder.ErrNotExist)
		}
		return recorder.ObjectInfo{}, permError("stat "+name, p, "search (x) on the directories", err)
	}
	if !fi.Mode().IsRegular() {
		return recorder.ObjectInfo{}, fmt.Errorf("file: stat %s: %w", name, recorder.ErrNotExist)
	}
	return recorder.ObjectInfo{Name: name, Size: fi.Size(), Modified: fi.ModTime()}, nil
}

// List walks the directories that can hold names beginning with prefix.
func (s *Store) List(ctx context.Context, prefix string) ([]recorder.ObjectInfo, error) {
	if s.closed.Load() {
		return nil, fmt.Errorf("file: list: %w", net.ErrClosed)
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	// Start at the deepest directory the prefix names in full.
	start := ""
	if i := strings.LastIndex(prefix, "/"); i >= 0 {
		start = prefix[:i]
		if !fs.ValidPath(start) {
			return nil, nil // no valid object name has this prefix
		}
	}
	root := s.dir
	if start != "" {
		root = filepath.Join(s.dir, filepath.FromSlash(start))
	}
	var out []recorder.ObjectInfo
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			if isNotExist(err) {
				if p == root {
					return fs.SkipAll
				}
				return nil // removed while walking
			}
			return permError("list "+prefix, p, "read and search (r+x) on the directory", err)
		}
		if err := ctx.Err(); err != nil {
			return err
		}
		if strings.HasPrefix(d.Name(), tmpPrefix) {
			return nil
		}
		rel, err := filepath.Rel(s.dir, p)
		if err != nil {
			return err
		}
		rel = filepath.ToSlash(rel)
		if d.IsDir() {
			if rel == "." || strings.HasPrefix(rel+"/", prefix) || strings.HasPrefix(prefix, rel+"/") {
				return nil
			}
			return fs.SkipDir
		}
		if !d.Type().IsRegular() || !strings.HasPrefix(rel, prefix) {
			return nil
		}
		fi, err := d.Info()
		if err != nil {
			if isNotExist(err) {
				return nil
			}
			return err
		}
		out = append(out, recorder.ObjectInfo{Name: rel, Size: fi.Size(), Modified: fi.ModTime()})
		return nil
	})
	if err != nil {
		return nil, err
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out, nil
}

// Delete removes the object's file and the directories it leaves empty.
func (s *Store) Delete(ctx context.Context, name string) error {
	p, err := s.path("delete", name)
	if err != nil {
		return err
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	fi, err := os.Lstat(p)
	if err == nil && !fi.Mode().IsRegular() {
		return fmt.Errorf("file: delete %s: %w", name, recorder.ErrNotExist)
	}
	if err := os.Remove(p); err != nil {
		if isNotExist(err) {
			return fmt.Errorf("file: delete %s: %w", name, recorder.ErrNotExist)
		}
		return permError("delete "+name, filepath.Dir(p), "write (w) on the directory", err)
	}
	// Prune empty parents up to the root; a concurrent Put recreates them.
	for d := filepath.Dir(p); d != s.dir && strings.HasPrefix(d, s.dir); d = filepath.Dir(d) {
		if os.Remove(d) != nil {
			break
		}
	}
	return nil
}

// Close marks the store closed; later calls fail with net.ErrClosed.
func (s *Store) Close() error {
	if s.closed.Swap(true) {
		return fmt.Errorf("file: close: %w", net.ErrClosed)
	}
	return nil
}
