package backend

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"time"
)

// Size limits every driver enforces, with an error wrapping ErrTooLarge.
const (
	// MaxKeySize is the largest key, in bytes. Keys are arbitrary bytes;
	// the limit keeps every driver's index usable (PostgreSQL b-tree
	// entries, etcd request size).
	MaxKeySize = 2048
	// MaxValueSize is the largest value, in bytes (1 MiB).
	MaxValueSize = 1 << 20
	// MaxAtomicWriteActions is the largest number of actions in one
	// AtomicWrite.
	MaxAtomicWriteActions = 64
)

// Errors every driver returns (possibly wrapped, so compare with errors.Is).
var (
	// ErrNotFound: the key does not exist (or has expired).
	ErrNotFound = errors.New("backend: not found")
	// ErrAlreadyExists: Create found the key present.
	ErrAlreadyExists = errors.New("backend: already exists")
	// ErrCompareFailed: a compare-and-swap or an AtomicWrite condition did
	// not hold; nothing was written.
	ErrCompareFailed = errors.New("backend: compare failed")
	// ErrTooLarge: a key, a value or an atomic write exceeds the limits
	// above.
	ErrTooLarge = errors.New("backend: too large")
	// ErrInvalid: an argument is malformed (empty key, end before start,
	// the same key twice in one AtomicWrite, ...).
	ErrInvalid = errors.New("backend: invalid argument")
	// ErrClosed: the backend or the watcher was closed.
	ErrClosed = errors.New("backend: closed")
	// ErrWatcherFellBehind: a watcher's queue overflowed; the events it
	// missed are not replayed. The caller must open a new watcher and
	// re-read the state it follows.
	ErrWatcherFellBehind = errors.New("backend: watcher fell behind")
	// ErrWatchBroken: the store's change stream broke (connection lost,
	// history compacted, ...). The caller must open a new watcher and
	// re-read.
	ErrWatchBroken = errors.New("backend: watch stream broken")
)

// Item is one key and its value.
type Item struct {
	// Key is a non-empty byte string, by convention a "/"-separated path
	// such as "/users/alice". At most MaxKeySize bytes; any byte value.
	Key []byte
	// Value is at most MaxValueSize bytes; nil and empty are the same.
	Value []byte
	// Revision is assigned by the store on every write and ignored on
	// input (except where a method says otherwise). Revisions of one store
	// increase strictly with each write operation: a later write has a
	// greater revision, and all items of one AtomicWrite share one.
	Revision int64
	// Expires is when the item disappears; zero means never. An expired
	// item is invisible to reads at once, and watchers get a delete event
	// for it (drivers sweep expired items in the background, so the event
	// may come later than the expiry by up to the driver's sweep interval).
	// A write to an expired key that has not been swept yet is a create:
	// watchers see its put event, and no delete event for the expired item.
	Expires time.Time
}

// Backend is the cluster-state store. All methods are safe for concurrent
// use. Every method that blocks takes a context and returns its error
// (wrapped) when it is done.
type Backend interface {
	// Get returns the item at key, or ErrNotFound.
	Get(ctx context.Context, key []byte) (Item, error)

	// GetRange returns the items with start <= key < end in key order,
	// at most limit of them (limit <= 0 means DefaultRangeLimit). When more
	// items follow, Result.Next is the key to pass as start to continue;
	// otherwise it is nil. A nil end means "no upper bound"; use RangeEnd to
	// range over a prefix.
	GetRange(ctx context.Context, start, end []byte, limit int) (Result, error)

	// Create writes item if its key is absent; otherwise ErrAlreadyExists.
	// It returns the new revision.
	Create(ctx context.Context, item Item) (int64, error)

	// Put writes item, whether or not its key exists, and returns the new
	// revision.
	Put(ctx context.Context, item Item) (int64, error)

	// Update writes item if its key exists; otherwise ErrNotFound.
	Update(ctx context.Context, item Item) (int64, error)

	// CompareAndSwap writes replace if the item at replace.Key is present
	// and matches expected: on its revision when expected.Revision is not
	// zero, else on its value (bytes.Equal). expected.Key, when not nil,
	// must equal replace.Key. A missing item or a mismatch gives
	// ErrCompareFailed.
	CompareAndSwap(ctx context.Context, expected, replace Item) (int64, error)

	// Delete removes key, or returns ErrNotFound.
	Delete(ctx context.Context, key []byte) error

	// DeleteRange removes every key with start <= key < end (a nil end
	// means no upper bound) and returns how many it removed. It need not
	// be atomic across the range; watchers get one delete event per key.
	DeleteRange(ctx context.Context, start, end []byte) (int64, error)

	// KeepAlive sets a new expiry on an existing key (zero: never expires)
	// without changing its value, and returns the new revision. Watchers
	// get a put event carrying the new expiry. ErrNotFound if absent.
	KeepAlive(ctx context.Context, key []byte, expires time.Time) (int64, error)

	// AtomicWrite applies all actions or none. Every action's condition
	// is checked first; if any fails it returns an error wrapping
	// ErrCompareFailed (a *ConditionError naming the action) and writes
	// nothing. At most MaxAtomicWriteActions actions, each key at most
	// once. All written items share the returned revision. When no action
	// writes (all are ActionNone), AtomicWrite only checks the conditions
	// and the revision it returns is unspecified beyond being at least the
	// revision the checks observed.
	AtomicWrite(ctx context.Context, actions []ConditionalAction) (int64, error)

	// NewWatcher starts a watch. The watcher's first event has type
	// OpInit: from then on every change to a key under the prefixes is
	// delivered, in revision order. See Watcher.
	NewWatcher(ctx context.Context, w Watch) (Watcher, error)

	// Close releases the store's resources and closes its watchers (with
	// ErrClosed). Later calls return ErrClosed. Close is safe to call more
	// than once.
	Close() error
}

// DefaultRangeLimit is the number of items GetRange returns when limit <= 0.
const DefaultRangeLimit = 1000

// Result is one page of a GetRange.
type Result struct {
	Items []Item
	// Next, when not nil, is the start key of the next page.
	Next []byte
}

// ConditionKind says what an AtomicWrite condition checks.
type ConditionKind int

const (
	// Whatever: no check.
	Whatever ConditionKind = iota
	// Exists: the key must be present.
	Exists
	// NotExists: the key must be absent.
	NotExists
	// Revision: the key must be present at Condition.Revision.
	Revision
)

func (k ConditionKind) String() string {
	switch k {
	case Whatever:
		return "whatever"
	case Exists:
		return "exists"
	case NotExists:
		return "not-exists"
	case Revision:
		return "revision"
	}
	return fmt.Sprintf("ConditionKind(%d)", int(k))
}

// Condition is checked against the current state of an action's key.
type Condition struct {
	Kind     ConditionKind
	Revision int64 // for Kind == Revision
}

// ActionKind says what an AtomicWrite action does.
type ActionKind int

const (
	// ActionNone only checks the condition (a read guard on another key).
	ActionNone ActionKind = iota
	// ActionPut writes Item.
	ActionPut
	// ActionDelete removes the key; deleting an absent key is not an
	// error (use an Exists condition to require it).
	ActionDelete
)

func (k ActionKind) String() string {
	switch k {
	case ActionNone:
		return "none"
	case ActionPut:
		return "put"
	case ActionDelete:
		return "delete"
	}
	return fmt.Sprintf("ActionKind(%d)", int(k))
}

// ConditionalAction is one element of an AtomicWrite.
type ConditionalAction struct {
	Key       []byte
	Condition Condition
	Action    ActionKind
	Item      Item // for ActionPut; Item.Key is ignored (Key is used)
}

// ConditionError says which condition of an AtomicWrite failed. It wraps
// ErrCompareFailed.
type ConditionError struct {
	Index int    // index of the action in the batch
	Key   []byte // its key
	Kind  ConditionKind
}

func (e *ConditionError) Error() string {
	return fmt.Sprintf("backend: atomic write: condition %s on action %d (key %q) failed", e.Kind, e.Index, e.Key)
}

func (e *ConditionError) Unwrap() error { return ErrCompareFailed }

// Watch says what a watcher follows.
type Watch struct {
	// Prefixes limits events to keys with one of these prefixes; none
	// means every key.
	Prefixes [][]byte
	// QueueSize is how many events may wait for the reader before the
	// watcher is closed with ErrWatcherFellBehind. Zero means
	// DefaultQueueSize.
	QueueSize int
}

// DefaultQueueSize is the watcher queue length when Watch.QueueSize is zero.
const DefaultQueueSize = 1024

// Matches reports whether key falls under the watch's prefixes.
func (w Watch) Matches(key []byte) bool {
	if len(w.Prefixes) == 0 {
		return true
	}
	for _, p := range w.Prefixes {
		if bytes.HasPrefix(key, p) {
			return true
		}
	}
	return false
}

// OpType is the type of a watch event.
type OpType int

const (
	// OpInit is the first event of every watcher: from here on no change
	// is missed. It carries no item.
	OpInit OpType = iota
	// OpPut: the item was created or changed (or its expiry was renewed).
	OpPut
	// OpDelete: the item was deleted or expired. Event.Item carries the key
	// and the revision of the deletion.
	OpDelete
)

func (o OpType) String() string {
	switch o {
	case OpInit:
		return "init"
	case OpPut:
		return "put"
	case OpDelete:
		return "delete"
	}
	return fmt.Sprintf("OpType(%d)", int(o))
}

// Event is one change seen by a watcher.
type Event struct {
	Type OpType
	Item Item
}

// Watcher delivers events. Events are never dropped silently: when the
// watcher cannot deliver an event (its queue overflowed, the store's change
// stream broke) it stops, Done is closed, and Err says why
// (ErrWatcherFellBehind, ErrWatchBroken, ErrClosed, or the context's
// error). The caller then opens a new watcher and re-reads.
type Watcher interface {
	// Events delivers the events; it is closed after Done.
	Events() <-chan Event
	// Done is closed when the watcher stops.
	Done() <-chan struct{}
	// Err says why the watcher stopped; nil while it runs.
	Err() error
	// Close stops the watcher; Err then returns ErrClosed. Safe twice.
	Close() error
}

// RangeEnd returns the end key for a range over every key that begins
// with prefix: GetRange(ctx, prefix, RangeEnd(prefix), n). It returns nil
// (no upper bound) when prefix is empty or all 0xff.
func RangeEnd(prefix []byte) []byte {
	end := bytes.Clone(prefix)
	for i := len(end) - 1; i >= 0; i-- {
		if end[i] < 0xff {
			end[i]++
			return end[:i+1]
		}
	}
	return nil
}

// Key joins path parts into a key with a leading "/": Key("users",
// "alice") is "/users/alice".
func Key(parts ...string) []byte {
	n := 0
	for _, p := range parts {
		n += len(p) + 1
	}
	b := make([]byte, 0, n)
	for _, p := range parts {
		b = append(b, '/')
		b = append(b, p...)
	}
	return b
}

// CheckKey returns an error wrapping ErrInvalid or ErrTooLarge when key is
// not acceptable. Drivers call it on every input key.
func CheckKey(key []byte) error {
	if len(key) == 0 {
		return fmt.Errorf("%w: empty key", ErrInvalid)
	}
	if len(key) > MaxKeySize {
		return fmt.Errorf("%w: key of %d bytes exceeds the limit of %d", ErrTooLarge, len(key), MaxKeySize)
	}
	return nil
}

// CheckItem checks the item's key and value sizes.
func CheckItem(item Item) error {
	if err := CheckKey(item.Key); err != nil {
		return err
	}
	if len(item.Value) > MaxValueSize {
		return fmt.Errorf("%w: value of %d bytes for key %q exceeds the limit of %d", ErrTooLarge, len(item.Value), truncKey(item.Key), MaxValueSize)
	}
	return nil
}

// CheckRange checks the bounds of a GetRange or DeleteRange.
func CheckRange(start, end []byte) error {
	if len(start) > MaxKeySize || len(end) > MaxKeySize {
		return fmt.Errorf("%w: range bound exceeds the key limit of %d", ErrTooLarge, MaxKeySize)
	}
	if end != nil && bytes.Compare(start, end) > 0 {
		return fmt.Errorf("%w: range end %q before start %q", ErrInvalid, truncKey(end), truncKey(start))
	}
	return nil
}

// CheckActions checks an AtomicWrite batch: its size, each key and value,
// each kind, and that no key appears twice.
func CheckActions(actions []ConditionalAction) error {
	if len(actions) == 0 {
		return fmt.Errorf("%w: atomic write with no actions", ErrInvalid)
	}
	if len(actions) > MaxAtomicWriteActions {
		return fmt.Errorf("%w: atomic write of %d actions exceeds the limit of %d", ErrTooLarge, len(actions), MaxAtomicWriteActions)
	}
	seen := make(map[string]struct{}, len(actions))
	for i, a := range actions {
		if err := CheckKey(a.Key); err != nil {
			return fmt.Errorf("action %d: %w", i, err)
		}
		if _, dup := seen[string(a.Key)]; dup {
			return fmt.Errorf("%w: key %q appears twice in one atomic write", ErrInvalid, truncKey(a.Key))
		}
		seen[string(a.Key)] = struct{}{}
		if a.Condition.Kind < Whatever || a.Condition.Kind > Revision {
			return fmt.Errorf("%w: action %d: unknown condition %v", ErrInvalid, i, a.Condition.Kind)
		}
		switch a.Action {
		case ActionNone, ActionDelete:
		case ActionPut:
			if len(a.Item.Value) > MaxValueSize {
				return fmt.Errorf("%w: action %d: value of %d bytes exceeds the limit of %d", ErrTooLarge, i, len(a.Item.Value), MaxValueSize)
			}
		default:
			return fmt.Errorf("%w: action %d: unknown action %v", ErrInvalid, i, a.Action)
		}
	}
	return nil
}

// truncKey shortens a key for an error message.
func truncKey(k []byte) []byte {
	if len(k) > 64 {
		return k[:64]
	}
	return k
}
