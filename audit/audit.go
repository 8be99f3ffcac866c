package audit

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"slices"

	"sync"
	"time"

	"github.com/sallyport/sallyport/backend"
)

// Event types the cluster emits. Other components may add their own.
const (
	TypeJoin          = "host.join"         // a host joined with a token
	TypeJoinFailed    = "host.join.failed"  // a join was refused
	TypeRenew         = "host.renew"        // a host renewed its identity
	TypeLogin         = "user.login"        // a user logged in
	TypeLoginFailed   = "user.login.failed" // a login was refused
	TypeSignup        = "user.signup"       // a sign-up token was used
	TypeCertIssued    = "cert.issued"       // a certificate was issued
	TypeAccessDenied  = "access.denied"     // an access decision denied a request
	TypeAccessGranted = "access.granted"    // an access decision allowed a request
	TypeAdminChange   = "admin.change"      // a token, user or role was changed
	TypeSession       = "session"           // a session event reported by an agent
)

// Errors returned by this package.
var (
	// ErrInvalidEvent: the event has no type, or is too large to store.
	ErrInvalidEvent = errors.New("audit: invalid event")
	// ErrClosed: the log was closed.
	ErrClosed = errors.New("audit: closed")
)

// MaxEventSize is the largest encoded event, in bytes.
const MaxEventSize = 64 << 10

// Event is one audit record.
type Event struct {
	// ID is unique; Emit assigns one when empty.
	ID string `json:"id"`
	// Time is when it happened; Emit sets the current time when zero.
	Time time.Time `json:"time"`
	// Type is one of the Type constants (or a component's own type).
	Type    string `json:"type"`
	Cluster string `json:"cluster,omitempty"`
	// Actor is who did it: a user name or a host ID; empty when unknown.
	Actor string `json:"actor,omitempty"`
	// Source is the remote address the request came from.
	Source  string            `json:"source,omitempty"`
	Success bool              `json:"success"`
	Fields  map[string]string `json:"fields,omitempty"`
}

// Query selects events.
type Query struct {
	// From and To bound Event.Time: From <= Time < To. Zero From means the
	// beginning; zero To means no upper bound.
	From, To time.Time
	// Types keeps only events of these types; none means every type.
	Types []string
	// Limit is the most events returned, oldest first; zero means 1000.
	Limit int
}

func (q Query) match(e *Event) bool {
	if !q.From.IsZero() && e.Time.Before(q.From) {
		return false
	}
	if !q.To.IsZero() && !e.Time.Before(q.To) {
		return false
	}
	return len(q.Types) == 0 || slices.Contains(q.Types, e.Type)
}

func (q Query) limit() int {
	if q.Limit <= 0 {
		return 1000
	}
	return q.Limit
}

// Log stores and searches events. Implementations are safe for concurrent
// use.
type Log interface {
	// Emit stores e, filling in ID and Time when they are empty.
	Emit(ctx context.Context, e Event) error
	// Search returns the events matching q, oldest first.
	Search(ctx context.Context, q Query) ([]Event, error)
}

// prepare fills in the ID and time and encodes the event.
func prepare(e *Event, now func() time.Time) ([]byte, error) {
	if e.Type == "" {
		return nil, fmt.Errorf("%w: empty type", ErrInvalidEvent)
	}
	if e.ID == "" {
		var b [12]byte
		rand.Read(b[:])
		e.ID = hex.EncodeToString(b[:])
	}
	if e.Time.IsZero() {
		e.Time = now()
	}
	e.Time = e.Time.UTC()
	data, err := json.Marshal(e)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrInvalidEvent, err)
	}
	if len(data) > MaxEventSize {
		return nil, fmt.Errorf("%w: %d bytes exceeds %d", ErrInvalidEvent, len(data), MaxEventSize)
	}
	return data, nil
}

// Backend stores events in a backend.Backend under a key prefix, one item
// per event, keyed by time so that a range read returns them in order:
// <prefix><unix nanoseconds, 20 digits>/<id>.
type Backend struct {
	b      backend.Backend
	prefix []byte
	now    func() time.Time
}

// NewBackend returns a Log over b. prefix is the key prefix; empty means
// "/audit/events/". now is the clock; nil means time.Now.
func NewBackend(b backend.Backend, prefix string, now func() time.Time) *Backend {
	if prefix == "" {
		prefix = "/audit/events/"
	}
	if now == nil {
		now = time.Now
	}
	return &Backend{b: b, prefix: []byte(prefix), now: now}
}

func (l *Backend) timeKey(t time.Time) []byte {
	n := max(t.UnixNano(), 0)
	return fmt.Appendf(bytes.Clone(l.prefix), "%020d", n)
}

// Emit implements Log.
func (l *Backend) Emit(ctx context.Context, e Event) error {
	data, err := prepare(&e, l.now)
	if err != nil {
		return err
	}
	key := append(l.timeKey(e.Time), '/')
	key = append(key, e.ID...)
	if _, err := l.b.Create(ctx, backend.Item{Key: key, Value: data}); err != nil {
		return fmt.Errorf("audit: store event: %w", err)
	}
	return nil
}

// Search implements Log. It reads only the keys of the time range.
func (l *Backend) Search(ctx context.Context, q Query) ([]Event, error) {
	start := l.prefix
	if !q.From.IsZero() {
		start = l.timeKey(q.From)
	}
	end := backend.RangeEnd(l.prefix)
	if !q.To.IsZero() {
		end = l.timeKey(q.To)
	}
	if bytes.Compare(start, end) > 0 {
		return nil, nil
	}
	var out []Event
	for start != nil && len(out) < q.limit() {
		res, err := l.b.GetRange(ctx, start, end, 0)
		if err != nil {
			return nil, fmt.Errorf("audit: search: %w", err)
		}
		for _, it := range res.Items {
			var e Event
			if err := json.Unmarshal(it.Value, &e); err != nil {
				continue // not an event; skip rather than fail the search
			}
			if q.match(&e) {
				out = append(out, e)
				if len(out) == q.limit() {
					break
				}
			}
		}
		start = res.Next
	}
	return out, nil
}

// File appends events as JSON lines to a file, and searches by scanning it.
// It suits a single process; for a cluster use Backend.
type File struct {
	mu     sync.Mutex
	f      *os.File
	path   string
	now    func() time.Time
	closed bool
}

// OpenFile opens (creating it with mode 0600 if needed) the JSON-lines file
// at path. now is the clock; nil means time.Now.
func OpenFile(path string, now func() time.Time) (*File, error) {
	f, err := os.OpenFile(path, os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o600)
	if err != nil {
		return nil, fmt.Errorf("audit: %w", err)
	}
	if now == nil {
		now = time.Now
	}
	return &File{f: f, path: path, now: now}, nil
}

// Emit implements Log: it appends one line and syncs the file.
func (l *File) Emit(ctx context.Context, e Event) error {
	data, err := prepare(&e, l.now)
	if err != nil {
		return err
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closed {
		return ErrClosed
	}
	if _, err := l.f.Write(append(data, '\n')); err != nil {
		return fmt.Errorf("audit: %w", err)
	}
	return nil
}

// Search implements Log. Lines that do not parse are skipped; lines longer
// than MaxEventSize end the search with an error.
func (l *File) Search(ctx context.Context, q Query) ([]Event, error) {
	l.mu.Lock()
	closed := l.closed
	l.mu.Unlock()
	if closed {
		return nil, ErrClosed
	}
	f, err := os.Open(l.path)
	if err != nil {
		return nil, fmt.Errorf("audit: %w", err)
	}
	defer f.Close()
	return scan(ctx, f, q)
}

func scan(ctx context.Context, r io.Reader, q Query) ([]Event, error) {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 4096), MaxEventSize+1)
	var out []Event
	for n := 0; sc.Scan(); n++ {
		if n%1024 == 0 && ctx.Err() != nil {
			return nil, ctx.Err()
		}
		var e Event
		if json.Unmarshal(sc.Bytes(), &e) != nil || e.Type == "" {
			continue
		}
		if q.match(&e) {
			out = append(out, e)
		}
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("audit: read log: %w", err)
	}
	// Appends from several goroutines may interleave slightly out of order.
	slices.SortStableFunc(out, func(a, b Event) int { return a.Time.Compare(b.Time) })
	if len(out) > q.limit() {
		out = out[:q.limit()]
	}
	return out, nil
}

// Close closes the file. A second Close returns an error wrapping
// net.ErrClosed.
func (l *File) Close() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closed {
		return fmt.Errorf("audit: %w", net.ErrClosed)
	}
	l.closed = true
	return l.f.Close()
}

// Discard is a Log that drops every event and finds none.
type Discard struct{}

// Emit implements Log.
func (Discard) Emit(context.Context, Event) error { return nil }

// Search implements Log.
func (Discard) Search(context.Context, Query) ([]Event, error) { return nil, nil }
