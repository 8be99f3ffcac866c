package recorder

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"
)

// Helpers for storage drivers: the parts of a Store implementation that
// do not depend on the storage service. Drivers for object stores (the s3,
// gcs and azblob modules) use them; a program that only uses stores needs
// none of them.

// Errors the helpers return (possibly wrapped; compare with errors.Is).
var (
	// ErrInvalidName: an object name that is not a clean relative
	// "/"-separated path. It wraps fs.ErrInvalid.
	ErrInvalidName = fmt.Errorf("recorder: invalid object name: %w", fs.ErrInvalid)
	// ErrSize: the reader given to Store.Put yielded other than the
	// announced number of bytes, or the size is out of range.
	ErrSize = errors.New("recorder: object size mismatch")
)

// ValidateName returns nil when name is a valid object name: a clean
// relative "/"-separated path as io/fs.ValidPath defines it, other than
// "."; otherwise an error wrapping ErrInvalidName.
func ValidateName(name string) error {
	if name == "." || !fs.ValidPath(name) {
		return fmt.Errorf("%w: %q", ErrInvalidName, name)
	}
	return nil
}

// PermissionError reports an operation a store refused for lack of a
// permission. It wraps ErrPermission and the cause.
type PermissionError struct {
	Driver     string // the driver, such as "s3"
	Op         string // the refused operation, such as "PutObject"
	Permission string // the permission the caller lacks, such as "s3:PutObject"
	Container  string // the bucket or container
	Object     string // the object's key in the container; empty for operations on the container
	Err        error  // the cause, as the service's client reported it
}

func (e *PermissionError) Error() string {
	where := e.Container
	if e.Object != "" {
		where += "/" + e.Object
	}
	msg := fmt.Sprintf("%s: %s %q denied: missing permission %s", e.Driver, e.Op, where, e.Permission)
	if e.Err != nil {
		msg += ": " + e.Err.Error()
	}
	return msg
}

// Unwrap returns ErrPermission and the cause.
func (e *PermissionError) Unwrap() []error {
	if e.Err == nil {
		return []error{ErrPermission}
	}
	return []error{ErrPermission, e.Err}
}

// ParseSize reads a byte count: digits with an optional binary suffix K,
// M or G (also KiB, MiB, GiB), such as "8M" for 8 MiB. Counts above
// 1 PiB are refused.
func ParseSize(s string) (int64, error) {
	v, mult := s, int64(1)
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
	if err != nil || n < 0 || n > (1<<50)/mult {
		return 0, fmt.Errorf("recorder: %q is not a byte count", s)
	}
	return n * mult, nil
}

// URISpec describes the store URIs of a driver for ParseStoreURI:
//
//	SCHEME://CONTAINER[/PREFIX/][?PARAMETERS]
type URISpec struct {
	Driver      string   // begins error messages, such as "s3"
	Scheme      string   // the URI scheme, such as "s3"
	Container   string   // what the host names, such as "bucket"
	Credentials string   // where credentials come from instead, named in the error that refuses them in the URI
	Params      []string // the query parameters the driver knows
}

// StoreURI is a store URI ParseStoreURI checked. Its methods read query
// parameters; the first bad one is kept and Err returns it, so a driver
// reads every parameter and checks once.
type StoreURI struct {
	Container string // the host: the bucket or container
	Prefix    string // the path without its leading "/", put before every object name
	driver    string
	q         url.Values
	err       error
}

// ParseStoreURI checks u against spec: its scheme, no credentials in it
// (they would end up in logs and process lists), a container in the host
// and no query parameter outside spec.Params, so that a typo does not
// silently change behaviour. Errors begin with spec.Driver and never hold
// the credentials.
func ParseStoreURI(u *url.URL, spec URISpec) (*StoreURI, error) {
	if !strings.EqualFold(u.Scheme, spec.Scheme) {
		return nil, fmt.Errorf("%s: URI scheme %q is not %q", spec.Driver, u.Scheme, spec.Scheme)
	}
	if u.User != nil {
		return nil, fmt.Errorf("%s: credentials in the URI are not accepted; use %s", spec.Driver, spec.Credentials)
	}
	if u.Host == "" {
		return nil, fmt.Errorf("%s: URI names no %s", spec.Driver, spec.Container)
	}
	q := u.Query()
	keys := make([]string, 0, len(q))
	for k := range q {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for _, k := range keys {
		if !slices.Contains(spec.Params, k) {
			return nil, fmt.Errorf("%s: unknown URI parameter %q", spec.Driver, k)
		}
	}
	return &StoreURI{Container: u.Host, Prefix: strings.TrimPrefix(u.Path, "/"), driver: spec.Driver, q: q}, nil
}

// Err returns the first error of the parameters read so far.
func (u *StoreURI) Err() error { return u.err }

func (u *StoreURI) bad(key, v, want string) {
	if u.err == nil {
		u.err = fmt.Errorf("%s: bad %s %q (want %s)", u.driver, key, v, want)
	}
}

// Get returns the parameter key; "" when absent.
func (u *StoreURI) Get(key string) string { return u.q.Get(key) }

// Bool returns the boolean parameter key (strconv.ParseBool); def when
// absent.
func (u *StoreURI) Bool(key string, def bool) bool {
	v := u.q.Get(key)
	if v == "" {
		return def
	}
	b, err := strconv.ParseBool(v)
	if err != nil {
		u.bad(key, v, "true or false")
		return def
	}
	return b
}

// Size returns the positive byte count key (ParseSize); 0 when absent.
func (u *StoreURI) Size(key string) int64 {
	v := u.q.Get(key)
	if v == "" {
		return 0
	}
	n, err := ParseSize(v)
	if err != nil || n == 0 {
		u.bad(key, v, "a positive byte count such as 8M")
		return 0
	}
	return n
}

// Count returns the positive whole number key; 0 when absent.
func (u *StoreURI) Count(key string) int {
	v := u.q.Get(key)
	if v == "" {
		return 0
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < 1 {
		u.bad(key, v, "a positive whole number")
		return 0
	}
	return n
}

// Endpoint returns the http or https URL key, without credentials; nil
// when absent.
func (u *StoreURI) Endpoint(key string) *url.URL {
	v := u.q.Get(key)
	if v == "" {
		return nil
	}
	eu, err := url.Parse(v)
	if err == nil && eu.User != nil {
		if u.err == nil {
			u.err = fmt.Errorf("%s: bad %s: credentials in the URI are not accepted", u.driver, key)
		}
		return nil
	}
	if err != nil || (eu.Scheme != "http" && eu.Scheme != "https") || eu.Host == "" {
		u.bad(key, v, "http[s]://host[:port][/path]")
		return nil
	}
	return eu
}

// ReadPart fills buf from r. When last, it also checks that r ends there.
// A reader that ends early, or holds more when last, yields an error
// wrapping ErrSize; a failing reader, one wrapping its error.
func ReadPart(r io.Reader, buf []byte, last bool) error {
	n, err := io.ReadFull(r, buf)
	if err == io.EOF || err == io.ErrUnexpectedEOF {
		return fmt.Errorf("%w: reader ended %d bytes early", ErrSize, len(buf)-n)
	}
	if err != nil {
		return fmt.Errorf("recorder: read object data: %w", err)
	}
	if !last {
		return nil
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
			return fmt.Errorf("recorder: read object data: %w", err)
		}
	}
}

// PutSection returns the size bytes of r from its current offset as a
// SectionReader when r can be read at offsets (an *os.File, an
// io.SectionReader, a bytes.Reader), after checking that r holds exactly
// size bytes (ErrSize otherwise); nil when r cannot be read at offsets.
// It leaves r's offset where it was.
func PutSection(r io.Reader, size int64) (*io.SectionReader, error) {
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
		return nil, fmt.Errorf("recorder: seek object data: %w", err)
	}
	if _, err := ra.Seek(cur, io.SeekStart); err != nil {
		return nil, fmt.Errorf("recorder: seek object data: %w", err)
	}
	if end-cur != size {
		return nil, fmt.Errorf("%w: reader holds %d bytes, want %d", ErrSize, end-cur, size)
	}
	return io.NewSectionReader(ra, cur, size), nil
}

// PutBody returns a seekable reader of exactly the size bytes of r, for a
// request a client may have to send again: the section of r (PutSection)
// when r can be read at offsets, else a buffer of r read whole (ReadPart).
func PutBody(r io.Reader, size int64) (io.ReadSeeker, error) {
	sr, err := PutSection(r, size)
	if err != nil || sr != nil {
		return sr, err
	}
	buf := make([]byte, size)
	if err := ReadPart(r, buf, true); err != nil {
		return nil, err
	}
	return bytes.NewReader(buf), nil
}

// PartSize returns the part size of a multipart upload of size bytes:
// partSize, or, when that would take more than maxParts parts, the
// smallest multiple of 1 MiB that takes no more.
func PartSize(size, partSize, maxParts int64) int64 {
	if (size+partSize-1)/partSize <= maxParts {
		return partSize
	}
	partSize = (size + maxParts - 1) / maxParts
	return (partSize + (1<<20 - 1)) &^ (1<<20 - 1)
}

// PartCount returns the number of parts of partSize that hold size bytes;
// an empty object is one empty part.
func PartCount(size, partSize int64) int {
	return max(1, int((size+partSize-1)/partSize))
}

// UploadParts reads the size bytes of r in PartCount(size, partSize)
// parts and calls upload for each (part numbers from 0), concurrency calls
// at a time. When r can be read at offsets (PutSection), each part is a
// section of it and nothing is copied; otherwise parts are read in order
// into at most concurrency part-sized buffers, and the last read checks
// that r ends there (ErrSize). The body an upload call gets is valid until
// the call returns.
//
// The first error, of r or of an upload call, cancels the context the
// other calls got; UploadParts returns it once every call has returned.
// Without one it returns ctx.Err().
func UploadParts(ctx context.Context, r io.Reader, size, partSize int64, concurrency int, upload func(ctx context.Context, part int, body io.ReadSeeker, n int64) error) error {
	nparts := PartCount(size, partSize)
	sr, err := PutSection(r, size)
	if err != nil {
		return err
	}
	pctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var (
		wg       sync.WaitGroup
		mu       sync.Mutex
		firstErr error
		bufs     = make(chan []byte, concurrency)
		slots    = make(chan struct{}, concurrency)
	)
	fail := func(e error) {
		mu.Lock()
		if firstErr == nil {
			firstErr = e
			cancel()
		}
		mu.Unlock()
	}
	for i := range nparts {
		off := int64(i) * partSize
		n := min(partSize, size-off)
		select {
		case slots <- struct{}{}:
		case <-pctx.Done():
		}
		if pctx.Err() != nil {
			break
		}
		var body io.ReadSeeker
		var buf []byte
		if sr != nil {
			body = io.NewSectionReader(sr, off, n)
		} else {
			select {
			case buf = <-bufs:
			default:
				buf = make([]byte, partSize)
			}
			buf = buf[:n]
			if err := ReadPart(r, buf, i == nparts-1); err != nil {
				<-slots
				fail(err)
				break
			}
			body = bytes.NewReader(buf)
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer func() {
				if buf != nil {
					bufs <- buf[:cap(buf)]
				}
				<-slots
			}()
			if err := upload(pctx, i, body, n); err != nil {
				fail(err)
			}
		}()
	}
	wg.Wait()
	if firstErr != nil {
		return firstErr
	}
	return ctx.Err()
}
