package etcd

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	"net/url"
	"os"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"go.etcd.io/etcd/api/v3/mvccpb"
	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"
	"google.golang.org/grpc/connectivity"

	"github.com/sallyport/sallyport/backend"
)

func init() {
	backend.Register("etcd", openURI)
}

// Config configures an etcd backend. The zero value of every field but
// the connection (Client or Endpoints) means a default.
type Config struct {
	// Client is a ready etcd client. The backend uses it and leaves it
	// open at Close. When nil, the backend creates a client from Endpoints
	// and TLS and closes it at Close.
	Client *clientv3.Client
	// Endpoints are the etcd members' client URLs ("http://host:2379",
	// "https://host:2379"), used when Client is nil.
	Endpoints []string
	// TLS is the client's TLS configuration (CA, client certificate) for
	// https endpoints. Nil means plain connections.
	TLS *tls.Config
	// Username and Password authenticate to etcd when Username is set.
	Username, Password string
	// DialTimeout bounds the first connection. Zero means five seconds.
	DialTimeout time.Duration
	// Prefix is put before every key, so several clusters can share one
	// etcd. A prefix that does not end in "/" gets one appended. Empty
	// means no prefix: the backend owns the whole key space.
	Prefix string
	// RequestTimeout bounds each call to etcd on top of the caller's
	// context, so calls fail instead of waiting while etcd is unreachable.
	// Zero means ten seconds; negative means no bound but the context.
	RequestTimeout time.Duration
	// Logger receives background errors. Nil discards them.
	Logger *slog.Logger
}

// Backend is a backend.Backend stored in etcd.
type Backend struct {
	cli       *clientv3.Client
	ownClient bool
	prefix    []byte
	timeout   time.Duration
	log       *slog.Logger
	leases    leaseCache

	closed atomic.Bool
	cancel context.CancelFunc
	wg     sync.WaitGroup

	mu       sync.Mutex
	watchers map[*watch]struct{}
}

var _ backend.Backend = (*Backend)(nil)

// Open connects to etcd (or uses cfg.Client). A nil cfg is an error: the
// connection is required.
func Open(ctx context.Context, cfg *Config) (*Backend, error) {
	if cfg == nil {
		return nil, fmt.Errorf("%w: etcd: nil Config", backend.ErrInvalid)
	}
	c := *cfg
	if c.Client == nil && len(c.Endpoints) == 0 {
		return nil, fmt.Errorf("%w: etcd: Config needs a Client or Endpoints", backend.ErrInvalid)
	}
	if c.DialTimeout < 0 {
		return nil, fmt.Errorf("%w: etcd: negative DialTimeout", backend.ErrInvalid)
	}
	if c.DialTimeout == 0 {
		c.DialTimeout = 5 * time.Second
	}
	if c.RequestTimeout == 0 {
		c.RequestTimeout = 10 * time.Second
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	if c.Prefix != "" && !strings.HasSuffix(c.Prefix, "/") {
		c.Prefix += "/"
	}
	b := &Backend{cli: c.Client, prefix: []byte(c.Prefix), timeout: c.RequestTimeout, log: c.Logger,
		watchers: map[*watch]struct{}{}}
	if b.cli == nil {
		cli, err := clientv3.New(clientv3.Config{
			Endpoints:   c.Endpoints,
			TLS:         c.TLS,
			Username:    c.Username,
			Password:    c.Password,
			DialTimeout: c.DialTimeout,
			// A value of MaxValueSize plus its key and header, or an
			// atomic write of several, exceeds the default 2 MiB.
			MaxCallSendMsgSize: 128 << 20,
			MaxCallRecvMsgSize: math.MaxInt32,
			Logger:             zap.NewNop(),
		})
		if err != nil {
			return nil, fmt.Errorf("etcd: open: %w", err)
		}
		b.cli, b.ownClient = cli, true
	}
	// Check that etcd answers, so a wrong address fails here.
	octx, cancel := context.WithTimeout(ctx, c.DialTimeout)
	_, err := b.cli.Get(octx, string(b.prefix)+"\x00", clientv3.WithCountOnly())
	cancel()
	if err != nil {
		if b.ownClient {
			b.cli.Close()
		}
		return nil, fmt.Errorf("etcd: open: %w", mapErr(err))
	}
	bg, bgCancel := context.WithCancel(context.Background())
	b.cancel = bgCancel
	b.wg.Add(2)
	go b.monitorConnection(bg)
	go b.leases.expireLoop(bg, &b.wg)
	return b, nil
}

// openURI opens "etcd://host:port[,host:port...]/prefix?...". See the
// package documentation for the parameters.
func openURI(ctx context.Context, u *url.URL) (backend.Backend, error) {
	cfg, err := ParseURI(u)
	if err != nil {
		return nil, err
	}
	return Open(ctx, cfg)
}

// ParseURI turns an etcd:// URI into a Config. The host part holds one or
// more comma-separated host:port pairs; the endpoints query parameter adds
// more (comma-separated, or repeated). The path is the key prefix. TLS is
// used when tls=true or any of ca, cert, key is given (file paths);
// server_name overrides the name checked in the server certificate.
// User information gives Username and Password.
func ParseURI(u *url.URL) (*Config, error) {
	q := u.Query()
	cfg := &Config{Prefix: u.Path}
	var hosts []string
	if u.Host != "" {
		hosts = append(hosts, strings.Split(u.Host, ",")...)
	}
	for _, e := range q["endpoints"] {
		for _, h := range strings.Split(e, ",") {
			if h != "" {
				hosts = append(hosts, h)
			}
		}
	}
	if len(hosts) == 0 {
		return nil, fmt.Errorf("%w: etcd: URI names no endpoint", backend.ErrInvalid)
	}
	useTLS := q.Get("tls") == "true" || q.Get("tls") == "1" || q.Get("ca") != "" || q.Get("cert") != ""
	if q.Get("cert") != "" && q.Get("key") == "" || q.Get("cert") == "" && q.Get("key") != "" {
		return nil, fmt.Errorf("%w: etcd: URI parameters cert and key go together", backend.ErrInvalid)
	}
	scheme := "http://"
	if useTLS {
		scheme = "https://"
		tc := &tls.Config{MinVersion: tls.VersionTLS12, ServerName: q.Get("server_name")}
		if ca := q.Get("ca"); ca != "" {
			pem, err := os.ReadFile(ca)
			if err != nil {
				return nil, fmt.Errorf("etcd: URI parameter ca: %w", err)
			}
			tc.RootCAs = x509.NewCertPool()
			if !tc.RootCAs.AppendCertsFromPEM(pem) {
				return nil, fmt.Errorf("%w: etcd: no PEM certificate in ca file %s", backend.ErrInvalid, ca)
			}
		}
		if cert := q.Get("cert"); cert != "" {
			kp, err := tls.LoadX509KeyPair(cert, q.Get("key"))
			if err != nil {
				return nil, fmt.Errorf("etcd: URI parameters cert and key: %w", err)
			}
			tc.Certificates = []tls.Certificate{kp}
		}
		cfg.TLS = tc
	}
	for _, h := range hosts {
		if strings.Contains(h, "://") {
			cfg.Endpoints = append(cfg.Endpoints, h)
		} else {
			cfg.Endpoints = append(cfg.Endpoints, scheme+h)
		}
	}
	if u.User != nil {
		cfg.Username = u.User.Username()
		cfg.Password, _ = u.User.Password()
	}
	for _, d := range []struct {
		name string
		dst  *time.Duration
	}{{"dial_timeout", &cfg.DialTimeout}, {"request_timeout", &cfg.RequestTimeout}} {
		if s := q.Get(d.name); s != "" {
			v, err := time.ParseDuration(s)
			if err != nil {
				return nil, fmt.Errorf("%w: etcd: URI parameter %s=%q is not a duration", backend.ErrInvalid, d.name, s)
			}
			*d.dst = v
		}
	}
	return cfg, nil
}

// Client returns the etcd client the backend uses.
func (b *Backend) Client() *clientv3.Client { return b.cli }

// Prefix returns the key prefix (with its trailing "/"), or "".
func (b *Backend) Prefix() string { return string(b.prefix) }

// Close closes the watchers with backend.ErrClosed, revokes nothing (items
// keep their expiry) and closes the client if the backend created it. A
// second Close returns an error wrapping backend.ErrClosed.
func (b *Backend) Close() error {
	if b.closed.Swap(true) {
		return fmt.Errorf("etcd: close: %w", backend.ErrClosed)
	}
	b.cancel()
	b.mu.Lock()
	ws := make([]*watch, 0, len(b.watchers))
	for w := range b.watchers {
		ws = append(ws, w)
	}
	b.mu.Unlock()
	for _, w := range ws {
		w.fan.Close()
	}
	b.wg.Wait()
	if b.ownClient {
		b.cli.Close()
	}
	return nil
}

func (b *Backend) checkOpen(op string) error {
	if b.closed.Load() {
		return fmt.Errorf("etcd: %s: %w", op, backend.ErrClosed)
	}
	return nil
}

// opCtx bounds one call by RequestTimeout.
func (b *Backend) opCtx(ctx context.Context) (context.Context, context.CancelFunc) {
	if b.timeout < 0 {
		return context.WithCancel(ctx)
	}
	return context.WithTimeout(ctx, b.timeout)
}

// mapErr turns etcd's errors into the backend's where they match.
func mapErr(err error) error {
	if errors.Is(err, rpctypes.ErrRequestTooLarge) || errors.Is(err, rpctypes.ErrGRPCRequestTooLarge) {
		return fmt.Errorf("%w: %w (raise etcd's --max-request-bytes)", backend.ErrTooLarge, err)
	}
	return err
}

func wrap(op string, key []byte, ctx context.Context, err error) error {
	// A cancelled context may come back as a gRPC status: report the
	// context's own error so errors.Is works.
	if cerr := ctx.Err(); cerr != nil && !errors.Is(err, cerr) {
		err = fmt.Errorf("%w (%v)", cerr, err)
	}
	err = mapErr(err)
	if key == nil {
		return fmt.Errorf("etcd: %s: %w", op, err)
	}
	return fmt.Errorf("etcd: %s %q: %w", op, truncKey(key), err)
}

func truncKey(k []byte) []byte {
	if len(k) > 64 {
		return k[:64]
	}
	return k
}

// The stored value is a header and the item's value. The header is one
// byte, 0 for no expiry or 1 for an expiry, then for 1 the expiry as 8
// bytes of Unix nanoseconds (big-endian). Leases delete expired items;
// the stored expiry makes reads exact, as leases count whole seconds.
func encode(value []byte, expires time.Time) string {
	if expires.IsZero() {
		buf := make([]byte, 1+len(value))
		copy(buf[1:], value)
		return string(buf)
	}
	buf := make([]byte, 9+len(value))
	buf[0] = 1
	binary.BigEndian.PutUint64(buf[1:], uint64(expires.UnixNano()))
	copy(buf[9:], value)
	return string(buf)
}

// decode splits a stored value. Values written by other programs (no
// valid header) are returned whole, without expiry.
func decode(raw []byte) (value []byte, expires time.Time) {
	switch {
	case len(raw) >= 1 && raw[0] == 0:
		return raw[1:], time.Time{}
	case len(raw) >= 9 && raw[0] == 1:
		return raw[9:], time.Unix(0, int64(binary.BigEndian.Uint64(raw[1:9])))
	}
	return raw, time.Time{}
}

func live(expires, now time.Time) bool {
	return expires.IsZero() || expires.After(now)
}

// item turns a stored key-value into an Item, and reports whether it is
// live.
func (b *Backend) item(kv *mvccpb.KeyValue, now time.Time) (backend.Item, bool) {
	v, exp := decode(kv.Value)
	it := backend.Item{Key: kv.Key[len(b.prefix):], Value: v, Revision: kv.ModRevision, Expires: exp}
	return it, live(exp, now)
}

func (b *Backend) key(k []byte) string {
	return string(b.prefix) + string(k)
}

// startKey is the stored start key of a range; etcd has no empty key, and
// "\x00" is the lowest one.
func (b *Backend) startKey(k []byte) string {
	if s := b.key(k); s != "" {
		return s
	}
	return "\x00"
}

// rangeEnd is the stored end key for a range end (nil: the prefix's end).
func (b *Backend) rangeEnd(end []byte) string {
	if end != nil {
		return b.key(end)
	}
	if len(b.prefix) == 0 {
		return "\x00" // etcd: from the start key to the end of the key space
	}
	return string(backend.RangeEnd(b.prefix))
}

// Get implements backend.Backend.
func (b *Backend) Get(ctx context.Context, key []byte) (backend.Item, error) {
	if err := b.checkOpen("get"); err != nil {
		return backend.Item{}, err
	}
	if err := backend.CheckKey(key); err != nil {
		return backend.Item{}, err
	}
	octx, cancel := b.opCtx(ctx)
	defer cancel()
	resp, err := b.cli.Get(octx, b.key(key))
	if err != nil {
		return backend.Item{}, wrap("get", key, ctx, err)
	}
	if len(resp.Kvs) == 1 {
		if it, ok := b.item(resp.Kvs[0], time.Now()); ok {
			return it, nil
		}
	}
	return backend.Item{}, fmt.Errorf("etcd: get %q: %w", truncKey(key), backend.ErrNotFound)
}

// GetRange implements backend.Backend.
func (b *Backend) GetRange(ctx context.Context, start, end []byte, limit int) (backend.Result, error) {
	if err := b.checkOpen("get range"); err != nil {
		return backend.Result{}, err
	}
	if err := backend.CheckRange(start, end); err != nil {
		return backend.Result{}, err
	}
	if limit <= 0 {
		limit = backend.DefaultRangeLimit
	}
	octx, cancel := b.opCtx(ctx)
	defer cancel()
	var res backend.Result
	from := b.startKey(start)
	to := b.rangeEnd(end)
	now := time.Now()
	for {
		resp, err := b.cli.Get(octx, from, clientv3.WithRange(to), clientv3.WithLimit(int64(limit+1-len(res.Items))))
		if err != nil {
			return backend.Result{}, wrap("get range", start, ctx, err)
		}
		for _, kv := range resp.Kvs {
			it, ok := b.item(kv, now)
			if !ok {
				continue // expired, not yet deleted by its lease
			}
			if len(res.Items) == limit {
				res.Next = it.Key
				return res, nil
			}
			res.Items = append(res.Items, it)
		}
		if !resp.More || len(resp.Kvs) == 0 {
			return res, nil
		}
		// Expired items took room in the page: read on.
		from = string(resp.Kvs[len(resp.Kvs)-1].Key) + "\x00"
	}
}

// putOp builds the put of an item, with the lease for its expiry.
func (b *Backend) putOp(ctx context.Context, key []byte, value []byte, expires time.Time) (clientv3.Op, error) {
	var opts []clientv3.OpOption
	if !expires.IsZero() {
		id, err := b.leases.get(ctx, b.cli, expires)
		if err != nil {
			return clientv3.Op{}, err
		}
		opts = append(opts, clientv3.WithLease(id))
	}
	return clientv3.OpPut(b.key(key), encode(value, expires), opts...), nil
}

// Put implements backend.Backend.
func (b *Backend) Put(ctx context.Context, item backend.Item) (int64, error) {
	if err := b.checkOpen("put"); err != nil {
		return 0, err
	}
	if err := backend.CheckItem(item); err != nil {
		return 0, err
	}
	octx, cancel := b.opCtx(ctx)
	defer cancel()
	op, err := b.putOp(octx, item.Key, item.Value, item.Expires)
	if err != nil {
		return 0, wrap("put", item.Key, ctx, err)
	}
	resp, err := b.cli.Do(octx, op)
	if err != nil {
		return 0, wrap("put", item.Key, ctx, err)
	}
	return resp.Put().Header.Revision, nil
}

// condWrite writes with op when the key's current state satisfies ok. It
// first tries one transaction that succeeds when the key is present with
// no lease (no expiry to check) and first (the fast compare) holds; else
// it reads the key, checks ok on the live item (nil when absent or
// expired), and writes if the key did not change since.
func (b *Backend) condWrite(ctx context.Context, key []byte, first []clientv3.Cmp,
	ok func(it *backend.Item) error, op func(it *backend.Item) (clientv3.Op, error)) (int64, error) {
	k := b.key(key)
	if first != nil {
		w, err := op(nil)
		if err != nil {
			return 0, err
		}
		cmps := append(slices.Clone(first), clientv3.Compare(clientv3.LeaseValue(k), "=", 0))
		resp, err := b.cli.Txn(ctx).If(cmps...).Then(w).Else(clientv3.OpGet(k)).Commit()
		if err != nil {
			return 0, err
		}
		if resp.Succeeded {
			return resp.Header.Revision, nil
		}
		kvs := resp.Responses[0].GetResponseRange().Kvs
		if err := b.check(kvs, ok); err != nil {
			return 0, err
		}
		// The condition holds on a leased item: write if it is unchanged.
		return b.writeIfUnchanged(ctx, k, kvs, op)
	}
	for {
		resp, err := b.cli.Get(ctx, k)
		if err != nil {
			return 0, err
		}
		if err := b.check(resp.Kvs, ok); err != nil {
			return 0, err
		}
		rev, err := b.writeIfUnchanged(ctx, k, resp.Kvs, op)
		if errors.Is(err, errChanged) {
			continue
		}
		return rev, err
	}
}

var errChanged = errors.New("etcd: changed concurrently")

func (b *Backend) check(kvs []*mvccpb.KeyValue, ok func(it *backend.Item) error) error {
	var cur *backend.Item
	if len(kvs) == 1 {
		if it, live := b.item(kvs[0], time.Now()); live {
			cur = &it
		}
	}
	return ok(cur)
}

// writeIfUnchanged writes op if the key is still at the revision in kvs
// (absent when kvs is empty). It returns errChanged if it moved.
func (b *Backend) writeIfUnchanged(ctx context.Context, k string, kvs []*mvccpb.KeyValue, op func(it *backend.Item) (clientv3.Op, error)) (int64, error) {
	var cmp clientv3.Cmp
	var cur *backend.Item
	if len(kvs) == 1 {
		cmp = clientv3.Compare(clientv3.ModRevision(k), "=", kvs[0].ModRevision)
		it, _ := b.item(kvs[0], time.Now())
		cur = &it
	} else {
		cmp = clientv3.Compare(clientv3.CreateRevision(k), "=", 0)
	}
	w, err := op(cur)
	if err != nil {
		return 0, err
	}
	resp, err := b.cli.Txn(ctx).If(cmp).Then(w).Commit()
	if err != nil {
		return 0, err
	}
	if !resp.Succeeded {
		return 0, errChanged
	}
	return resp.Header.Revision, nil
}

// retryChanged runs a conditional write again when the key moved between
// its read and its write (the condition is then checked anew).
func retryChanged(fn func() (int64, error)) (int64, error) {
	for {
		rev, err := fn()
		if !errors.Is(err, errChanged) {
			return rev, err
		}
	}
}

// Create implements backend.Backend.
func (b *Backend) Create(ctx context.Context, item backend.Item) (int64, error) {
	if err := b.checkOpen("create"); err != nil {
		return 0, err
	}
	if err := backend.CheckItem(item); err != nil {
		return 0, err
	}
	octx, cancel := b.opCtx(ctx)
	defer cancel()
	k := b.key(item.Key)
	rev, err := retryChanged(func() (int64, error) {
		op, err := b.putOp(octx, item.Key, item.Value, item.Expires)
		if err != nil {
			return 0, err
		}
		resp, err := b.cli.Txn(octx).If(clientv3.Compare(clientv3.CreateRevision(k), "=", 0)).
			Then(op).Else(clientv3.OpGet(k)).Commit()
		if err != nil {
			return 0, err
		}
		if resp.Succeeded {
			return resp.Header.Revision, nil
		}
		kvs := resp.Responses[0].GetResponseRange().Kvs
		if err := b.check(kvs, func(it *backend.Item) error {
			if it != nil {
				return backend.ErrAlreadyExists
			}
			return nil
		}); err != nil {
			return 0, err
		}
		// Present but expired: replace it if it is still the same.
		return b.writeIfUnchanged(octx, k, kvs, func(*backend.Item) (clientv3.Op, error) { return op, nil })
	})
	if err != nil {
		return 0, wrap("create", item.Key, ctx, err)
	}
	return rev, nil
}

// Update implements backend.Backend.
func (b *Backend) Update(ctx context.Context, item backend.Item) (int64, error) {
	if err := b.checkOpen("update"); err != nil {
		return 0, err
	}
	if err := backend.CheckItem(item); err != nil {
		return 0, err
	}
	octx, cancel := b.opCtx(ctx)
	defer cancel()
	k := b.key(item.Key)
	put := func(*backend.Item) (clientv3.Op, error) { return b.putOp(octx, item.Key, item.Value, item.Expires) }
	rev, err := retryChanged(func() (int64, error) {
		return b.condWrite(octx, item.Key, []clientv3.Cmp{clientv3.Compare(clientv3.CreateRevision(k), ">", 0)},
			func(it *backend.Item) error {
				if it == nil {
					return backend.ErrNotFound
				}
				return nil
			}, put)
	})
	if err != nil {
		return 0, wrap("update", item.Key, ctx, err)
	}
	return rev, nil
}

// CompareAndSwap implements backend.Backend.
func (b *Backend) CompareAndSwap(ctx context.Context, expected, replace backend.Item) (int64, error) {
	if err := b.checkOpen("compare and swap"); err != nil {
		return 0, err
	}
	if err := backend.CheckItem(replace); err != nil {
		return 0, err
	}
	if expected.Key != nil && !bytes.Equal(expected.Key, replace.Key) {
		return 0, fmt.Errorf("%w: compare and swap: expected key %q differs from replacement key %q", backend.ErrInvalid, truncKey(expected.Key), truncKey(replace.Key))
	}
	octx, cancel := b.opCtx(ctx)
	defer cancel()
	k := b.key(replace.Key)
	var first []clientv3.Cmp
	var ok func(it *backend.Item) error
	if expected.Revision != 0 {
		first = []clientv3.Cmp{clientv3.Compare(clientv3.ModRevision(k), "=", expected.Revision)}
		ok = func(it *backend.Item) error {
			if it == nil || it.Revision != expected.Revision {
				return backend.ErrCompareFailed
			}
			return nil
		}
	} else {
		first = []clientv3.Cmp{clientv3.Compare(clientv3.Value(k), "=", encode(expected.Value, time.Time{}))}
		ok = func(it *backend.Item) error {
			if it == nil || !bytes.Equal(it.Value, expected.Value) {
				return backend.ErrCompareFailed
			}
			return nil
		}
	}
	put := func(*backend.Item) (clientv3.Op, error) {
		return b.putOp(octx, replace.Key, replace.Value, replace.Expires)
	}
	rev, err := retryChanged(func() (int64, error) { return b.condWrite(octx, replace.Key, first, ok, put) })
	if err != nil {
		return 0, wrap("compare and swap", replace.Key, ctx, err)
	}
	return rev, nil
}

// Delete implements backend.Backend.
func (b *Backend) Delete(ctx context.Context, key []byte) error {
	if err := b.checkOpen("delete"); err != nil {
		return err
	}
	if err := backend.CheckKey(key); err != nil {
		return err
	}
	octx, cancel := b.opCtx(ctx)
	defer cancel()
	k := b.key(key)
	del := func(*backend.Item) (clientv3.Op, error) { return clientv3.OpDelete(k), nil }
	_, err := retryChanged(func() (int64, error) {
		return b.condWrite(octx, key, []clientv3.Cmp{clientv3.Compare(clientv3.CreateRevision(k), ">", 0)},
			func(it *backend.Item) error {
				if it == nil {
					return backend.ErrNotFound
				}
				return nil
			}, del)
	})
	if err != nil {
		return wrap("delete", key, ctx, err)
	}
	return nil
}

// DeleteRange implements backend.Backend. It is one etcd delete: all its
// delete events share one revision. Expired items in the range are
// deleted too but not counted.
func (b *Backend) DeleteRange(ctx context.Context, start, end []byte) (int64, error) {
	if err := b.checkOpen("delete range"); err != nil {
		return 0, err
	}
	if err := backend.CheckRange(start, end); err != nil {
		return 0, err
	}
	octx, cancel := b.opCtx(ctx)
	defer cancel()
	resp, err := b.cli.Delete(octx, b.startKey(start), clientv3.WithRange(b.rangeEnd(end)), clientv3.WithPrevKV())
	if err != nil {
		return 0, wrap("delete range", start, ctx, err)
	}
	now := time.Now()
	var n int64
	for _, kv := range resp.PrevKvs {
		if _, ok := b.item(kv, now); ok {
			n++
		}
	}
	return n, nil
}

// KeepAlive implements backend.Backend: it writes the item again with the
// new expiry (and a lease for it), so watchers see a put with a new
// revision.
func (b *Backend) KeepAlive(ctx context.Context, key []byte, expires time.Time) (int64, error) {
	if err := b.checkOpen("keep alive"); err != nil {
		return 0, err
	}
	if err := backend.CheckKey(key); err != nil {
		return 0, err
	}
	octx, cancel := b.opCtx(ctx)
	defer cancel()
	rev, err := retryChanged(func() (int64, error) {
		return b.condWrite(octx, key, nil, func(it *backend.Item) error {
			if it == nil {
				return backend.ErrNotFound
			}
			return nil
		}, func(it *backend.Item) (clientv3.Op, error) {
			return b.putOp(octx, key, it.Value, expires)
		})
	})
	if err != nil {
		return 0, wrap("keep alive", key, ctx, err)
	}
	return rev, nil
}

// AtomicWrite implements backend.Backend: it reads every key in one
// transaction, checks the conditions, and writes in a second transaction
// guarded by every key's revision; when a key moved in between it starts
// over.
func (b *Backend) AtomicWrite(ctx context.Context, actions []backend.ConditionalAction) (int64, error) {
	if err := b.checkOpen("atomic write"); err != nil {
		return 0, err
	}
	if err := backend.CheckActions(actions); err != nil {
		return 0, err
	}
	octx, cancel := b.opCtx(ctx)
	defer cancel()
	for {
		rev, err := b.atomicWrite(octx, actions)
		if errors.Is(err, errChanged) {
			continue
		}
		if err != nil {
			var ce *backend.ConditionError
			if errors.As(err, &ce) {
				return 0, err
			}
			return 0, wrap("atomic write", nil, ctx, err)
		}
		return rev, nil
	}
}

func (b *Backend) atomicWrite(ctx context.Context, actions []backend.ConditionalAction) (int64, error) {
	gets := make([]clientv3.Op, len(actions))
	for i, a := range actions {
		gets[i] = clientv3.OpGet(b.key(a.Key))
	}
	resp, err := b.cli.Txn(ctx).Then(gets...).Commit()
	if err != nil {
		return 0, err
	}
	now := time.Now()
	cmps := make([]clientv3.Cmp, 0, len(actions))
	ops := make([]clientv3.Op, 0, len(actions))
	for i, a := range actions {
		k := b.key(a.Key)
		kvs := resp.Responses[i].GetResponseRange().Kvs
		var cur *backend.Item
		if len(kvs) == 1 {
			cmps = append(cmps, clientv3.Compare(clientv3.ModRevision(k), "=", kvs[0].ModRevision))
			if it, ok := b.item(kvs[0], now); ok {
				cur = &it
			}
		} else {
			cmps = append(cmps, clientv3.Compare(clientv3.CreateRevision(k), "=", 0))
		}
		ok := true
		switch a.Condition.Kind {
		case backend.Exists:
			ok = cur != nil
		case backend.NotExists:
			ok = cur == nil
		case backend.Revision:
			ok = cur != nil && cur.Revision == a.Condition.Revision
		}
		if !ok {
			return 0, &backend.ConditionError{Index: i, Key: bytes.Clone(a.Key), Kind: a.Condition.Kind}
		}
		switch a.Action {
		case backend.ActionPut:
			op, err := b.putOp(ctx, a.Key, a.Item.Value, a.Item.Expires)
			if err != nil {
				return 0, err
			}
			ops = append(ops, op)
		case backend.ActionDelete:
			if len(kvs) == 1 {
				ops = append(ops, clientv3.OpDelete(k))
			}
		}
	}
	if len(ops) == 0 {
		// Only checks: they held at the read's revision.
		return resp.Header.Revision, nil
	}
	wresp, err := b.cli.Txn(ctx).If(cmps...).Then(ops...).Commit()
	if err != nil {
		return 0, err
	}
	if !wresp.Succeeded {
		return 0, errChanged
	}
	return wresp.Header.Revision, nil
}

// monitorConnection breaks the watchers when the connection to etcd is
// lost: etcd's client would resume them silently once it reconnects, but
// while it is down they would lag without saying so. Their owners re-read
// and open new watchers, which succeed once etcd answers again.
func (b *Backend) monitorConnection(ctx context.Context) {
	defer b.wg.Done()
	conn := b.cli.ActiveConnection()
	if conn == nil {
		return
	}
	state := conn.GetState()
	for conn.WaitForStateChange(ctx, state) {
		prev := state
		state = conn.GetState()
		if prev == connectivity.Ready && state != connectivity.Ready {
			b.log.Warn("etcd: connection lost; breaking watchers", "state", state.String())
			b.breakWatchers(fmt.Errorf("etcd: %w: connection to etcd lost (%s)", backend.ErrWatchBroken, state))
		}
	}
}

func (b *Backend) breakWatchers(err error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	for w := range b.watchers {
		w.fan.CloseWatchers(err)
	}
}

// leaseCache shares leases between items that expire in the same second.
type leaseCache struct {
	mu     sync.Mutex
	leases map[int64]clientv3.LeaseID // by expiry second
}

// get returns a lease that ends at or after expires (within about a
// second after it).
func (c *leaseCache) get(ctx context.Context, cli *clientv3.Client, expires time.Time) (clientv3.LeaseID, error) {
	sec := expires.Unix()
	if expires.After(time.Unix(sec, 0)) {
		sec++ // round up: the lease must not end before the item
	}
	c.mu.Lock()
	id, ok := c.leases[sec]
	c.mu.Unlock()
	if ok {
		return id, nil
	}
	ttl := max(sec-time.Now().Unix()+1, 1)
	resp, err := cli.Grant(ctx, ttl)
	if err != nil {
		return 0, err
	}
	c.mu.Lock()
	if c.leases == nil {
		c.leases = map[int64]clientv3.LeaseID{}
	}
	if old, ok := c.leases[sec]; ok {
		id = old // another caller granted one first; ours expires unused
	} else {
		c.leases[sec] = resp.ID
		id = resp.ID
	}
	c.mu.Unlock()
	return id, nil
}

// expireLoop forgets leases that have ended.
func (c *leaseCache) expireLoop(ctx context.Context, wg *sync.WaitGroup) {
	defer wg.Done()
	t := time.NewTicker(time.Second)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		now := time.Now().Unix()
		c.mu.Lock()
		for sec := range c.leases {
			if sec <= now {
				delete(c.leases, sec)
			}
		}
		c.mu.Unlock()
	}
}
