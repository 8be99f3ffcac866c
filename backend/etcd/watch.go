package etcd

import (
	"bytes"
	"context"
	"errors"
	"fmt"

	"go.etcd.io/etcd/api/v3/mvccpb"
	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/sallyport/sallyport/backend"
)

// watch is one backend watcher: an etcd watch from the revision after the
// store's revision when it was opened, feeding a Fanout with a single
// watcher (which owns the queue, the fell-behind check and the closing).
type watch struct {
	fan    backend.Fanout
	cancel context.CancelFunc
}

// NewWatcher implements backend.Backend. It reads the store's current
// revision and opens an etcd watch from the next one, so the watcher sees
// exactly the changes committed after NewWatcher began. The watcher breaks
// with backend.ErrWatchBroken when the etcd watch ends (history compacted,
// connection lost, the member lost its leader).
func (b *Backend) NewWatcher(ctx context.Context, w backend.Watch) (backend.Watcher, error) {
	if err := b.checkOpen("new watcher"); err != nil {
		return nil, err
	}
	octx, cancel := b.opCtx(ctx)
	resp, err := b.cli.Get(octx, string(b.prefix)+"\x00", clientv3.WithCountOnly())
	cancel()
	if err != nil {
		return nil, wrap("new watcher", nil, ctx, err)
	}
	return b.newWatcherAfter(ctx, w, resp.Header.Revision)
}

// newWatcherAfter starts a watcher that delivers the changes after
// revision rev.
func (b *Backend) newWatcherAfter(ctx context.Context, w backend.Watch, rev int64) (backend.Watcher, error) {
	wt := &watch{}
	fw, err := wt.fan.NewWatcher(ctx, w)
	if err != nil {
		return nil, fmt.Errorf("etcd: new watcher: %w", err)
	}
	start, end := b.watchRange(w)
	// The watch's context is not the caller's: the Fanout watcher stops
	// on the caller's context, and its stop cancels the etcd watch.
	wctx, wcancel := context.WithCancel(clientv3.WithRequireLeader(context.Background()))
	wt.cancel = wcancel
	opts := []clientv3.OpOption{clientv3.WithRev(rev + 1), clientv3.WithProgressNotify()}
	if end != "" {
		opts = append(opts, clientv3.WithRange(end))
	}
	wch := b.cli.Watch(wctx, start, opts...)

	b.mu.Lock()
	if b.closed.Load() {
		b.mu.Unlock()
		wcancel()
		fw.Close()
		return nil, fmt.Errorf("etcd: new watcher: %w", backend.ErrClosed)
	}
	b.watchers[wt] = struct{}{}
	b.wg.Add(1)
	b.mu.Unlock()
	go b.runWatch(wt, fw, wch)
	return fw, nil
}

// watchRange is the smallest stored key range covering the watch's
// prefixes ("" end: a single key, never used; the whole space ends "\x00").
func (b *Backend) watchRange(w backend.Watch) (start, end string) {
	if len(w.Prefixes) == 0 {
		return b.startKey(nil), b.rangeEnd(nil)
	}
	lo := w.Prefixes[0]
	var hi []byte
	unbounded := false
	for _, p := range w.Prefixes {
		if bytes.Compare(p, lo) < 0 {
			lo = p
		}
		e := backend.RangeEnd(p)
		if e == nil {
			unbounded = true
		} else if hi == nil || bytes.Compare(e, hi) > 0 {
			hi = e
		}
	}
	if unbounded {
		return b.startKey(lo), b.rangeEnd(nil)
	}
	return b.startKey(lo), b.key(hi)
}

// runWatch moves events from the etcd watch to the watcher until either
// ends.
func (b *Backend) runWatch(wt *watch, fw backend.Watcher, wch clientv3.WatchChan) {
	defer b.wg.Done()
	defer func() {
		wt.cancel()
		b.mu.Lock()
		delete(b.watchers, wt)
		b.mu.Unlock()
	}()
	for {
		select {
		case <-fw.Done():
			return
		case resp, ok := <-wch:
			if !ok {
				wt.fan.CloseWatchers(fmt.Errorf("etcd: %w: the etcd watch ended", backend.ErrWatchBroken))
				return
			}
			if err := resp.Err(); err != nil {
				if resp.CompactRevision != 0 || errors.Is(err, rpctypes.ErrCompacted) {
					err = fmt.Errorf("etcd: %w: history compacted at revision %d: %v", backend.ErrWatchBroken, resp.CompactRevision, err)
				} else {
					err = fmt.Errorf("etcd: %w: %v", backend.ErrWatchBroken, err)
				}
				wt.fan.CloseWatchers(err)
				return
			}
			if len(resp.Events) == 0 {
				continue // progress notification
			}
			events := make([]backend.Event, 0, len(resp.Events))
			for _, ev := range resp.Events {
				if !bytes.HasPrefix(ev.Kv.Key, b.prefix) {
					continue
				}
				switch ev.Type {
				case mvccpb.PUT:
					v, exp := decode(ev.Kv.Value)
					events = append(events, backend.Event{Type: backend.OpPut, Item: backend.Item{
						Key: ev.Kv.Key[len(b.prefix):], Value: v, Revision: ev.Kv.ModRevision, Expires: exp}})
				case mvccpb.DELETE:
					events = append(events, backend.Event{Type: backend.OpDelete, Item: backend.Item{
						Key: ev.Kv.Key[len(b.prefix):], Revision: ev.Kv.ModRevision}})
				}
			}
			wt.fan.Publish(events...)
		}
	}
}
