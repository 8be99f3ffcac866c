package backend

import (
	"context"
	"fmt"
	"sync"
)

// Fanout delivers a store's change events to its watchers. It is the
// watcher half of a driver: the driver publishes every change, in revision
// order, and Fanout filters it by each watcher's prefixes and queues it.
//
// Publish never blocks. Each watcher has a bounded queue (Watch.QueueSize);
// a watcher whose queue is full when an event arrives is stopped with
// ErrWatcherFellBehind, so a slow reader never slows the writers or the
// other watchers, and never misses an event without being told.
//
// A driver calls Publish in revision order, after the change is durable
// and visible to reads, typically while it still holds the lock that
// orders its writes. A watcher registered with NewWatcher receives OpInit
// first and then every event published after NewWatcher returned; the
// change that was being committed as it registered may be delivered too,
// which the re-read contract makes harmless.
//
// The zero Fanout is ready to use. All methods are safe for concurrent
// use.
type Fanout struct {
	mu       sync.Mutex
	watchers map[*fanoutWatcher]struct{}
	closeErr error // set by Close: NewWatcher fails with it
}

// NewWatcher registers a watcher and queues its OpInit event. The watcher
// stops when ctx is done (Err returns ctx's error), when its queue
// overflows (ErrWatcherFellBehind), when the driver calls CloseWatchers or
// Close, or when its own Close is called (ErrClosed). A negative
// w.QueueSize is ErrInvalid; zero means DefaultQueueSize. The OpInit
// event counts as one of the queued events.
func (f *Fanout) NewWatcher(ctx context.Context, w Watch) (Watcher, error) {
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("backend: new watcher: %w", err)
	}
	if w.QueueSize < 0 {
		return nil, fmt.Errorf("%w: negative watcher queue size %d", ErrInvalid, w.QueueSize)
	}
	size := w.QueueSize
	if size == 0 {
		size = DefaultQueueSize
	}
	// Own the prefixes: the caller may reuse its slices.
	prefixes := make([][]byte, len(w.Prefixes))
	for i, p := range w.Prefixes {
		prefixes[i] = append([]byte(nil), p...)
	}
	fw := &fanoutWatcher{
		f:      f,
		watch:  Watch{Prefixes: prefixes, QueueSize: size},
		events: make(chan Event, size), // OpInit counts as a queued event
		done:   make(chan struct{}),
	}
	f.mu.Lock()
	if f.closeErr != nil {
		err := f.closeErr
		f.mu.Unlock()
		return nil, err
	}
	if f.watchers == nil {
		f.watchers = make(map[*fanoutWatcher]struct{})
	}
	f.watchers[fw] = struct{}{}
	fw.events <- Event{Type: OpInit}
	// If ctx is already done, the function runs at once in its own
	// goroutine and waits for f.mu.
	fw.stopCtx = context.AfterFunc(ctx, func() { fw.stop(fmt.Errorf("backend: watcher: %w", context.Cause(ctx))) })
	f.mu.Unlock()
	return fw, nil
}

// Publish delivers events, which must be in revision order, to every
// watcher whose prefixes match. Watchers share the events' byte slices:
// the driver must not modify them afterwards, and readers must treat them
// as read-only. A watcher whose queue is full is stopped with
// ErrWatcherFellBehind; the events queued before it stay readable.
func (f *Fanout) Publish(events ...Event) {
	if len(events) == 0 {
		return
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	for fw := range f.watchers {
		for _, ev := range events {
			if !fw.watch.Matches(ev.Item.Key) {
				continue
			}
			select {
			case fw.events <- ev:
			default:
				fw.stopLocked(fmt.Errorf("%w: queue of %d events is full", ErrWatcherFellBehind, fw.watch.QueueSize))
			}
			if fw.stopped {
				break
			}
		}
	}
}

// Len returns the number of running watchers.
func (f *Fanout) Len() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.watchers)
}

// CloseWatchers stops every running watcher with err (for example an error
// wrapping ErrWatchBroken when the store's change stream broke). New
// watchers may still be registered afterwards. A nil err means ErrClosed.
func (f *Fanout) CloseWatchers(err error) {
	if err == nil {
		err = ErrClosed
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	for fw := range f.watchers {
		fw.stopLocked(err)
	}
}

// Close stops every watcher with ErrClosed and makes NewWatcher fail with
// ErrClosed from then on. It is safe to call more than once.
func (f *Fanout) Close() {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.closeErr == nil {
		f.closeErr = ErrClosed
	}
	for fw := range f.watchers {
		fw.stopLocked(ErrClosed)
	}
}

// fanoutWatcher is the Watcher that Fanout hands out.
type fanoutWatcher struct {
	f       *Fanout
	watch   Watch
	events  chan Event
	done    chan struct{}
	stopCtx func() bool

	// Guarded by f.mu.
	stopped bool
	err     error
}

func (w *fanoutWatcher) Events() <-chan Event  { return w.events }
func (w *fanoutWatcher) Done() <-chan struct{} { return w.done }

func (w *fanoutWatcher) Err() error {
	w.f.mu.Lock()
	defer w.f.mu.Unlock()
	return w.err
}

func (w *fanoutWatcher) Close() error {
	w.stop(ErrClosed)
	return nil
}

func (w *fanoutWatcher) stop(err error) {
	w.f.mu.Lock()
	defer w.f.mu.Unlock()
	w.stopLocked(err)
}

// stopLocked stops the watcher with err unless it already stopped; the
// first reason wins. f.mu must be held: Publish sends under it, so the
// channel is never closed under a sender.
func (w *fanoutWatcher) stopLocked(err error) {
	if w.stopped {
		return
	}
	w.stopped = true
	w.err = err
	delete(w.f.watchers, w)
	if w.stopCtx != nil {
		w.stopCtx()
	}
	close(w.done)
	close(w.events)
}
