// Package etcd is a backend.Backend stored in etcd (v3 API): several auth
// servers share one etcd cluster, and several sallyport clusters can share
// it too, each under its own key prefix.
//
// # Usage
//
//	b, err := etcd.Open(ctx, &etcd.Config{
//		Endpoints: []string{"https://etcd1:2379", "https://etcd2:2379"},
//		TLS:       tlsConfig, // CA and client certificate
//		Prefix:    "/sallyport/cluster1",
//	})
//	if err != nil { ... }
//	defer b.Close()
//
// or, with the driver imported for its side effect,
//
//	import _ "github.com/sallyport/sallyport/backend/etcd"
//	b, err := backend.Open(ctx, "etcd://etcd1:2379,etcd2:2379/sallyport/cluster1?ca=/etc/ca.pem&cert=/etc/c.pem&key=/etc/c.key")
//
// Config.Client takes a ready *clientv3.Client instead.
//
// # URI
//
//	etcd://[user:password@]host:port[,host:port...]/prefix?params
//
// The host part lists the endpoints, separated by commas; the parameter
// endpoints (comma-separated, may repeat) adds more, and an endpoint may
// carry its own scheme (https://host:port). The path is the key prefix.
// Parameters:
//
//	tls=true           connect with TLS (implied by ca or cert)
//	ca=FILE            PEM CA certificates that sign the servers' certificates
//	cert=FILE, key=FILE  PEM client certificate and key (together)
//	server_name=NAME   the name checked in the server certificate
//	dial_timeout=5s    Config.DialTimeout
//	request_timeout=10s  Config.RequestTimeout
//
// # Keys and values
//
// An item's key in etcd is the prefix, a "/" (added when the prefix does
// not end in one) and the key: "/sallyport/cluster1" and "/x" give
// "/sallyport/cluster1//x". The slash keeps "/a" and "/a1" apart. The
// stored value is one header byte (0: no expiry; 1: followed by the
// expiry as 8 bytes of big-endian Unix nanoseconds) and the item's value.
//
// # Revisions
//
// Revisions are etcd's: an item's Revision is its mod revision, and
// every write returns the revision of its etcd transaction, so all items
// of an AtomicWrite and all deletes of a DeleteRange share one.
//
// # Expiry
//
// An item with an expiry is attached to an etcd lease that ends at the
// next whole second after it (items expiring in the same second share a
// lease). etcd deletes the item when its lease ends, which watchers see
// as a delete event, about a second after the expiry or later (etcd
// grants leases a minimum TTL of a few seconds). Reads compare the stored
// expiry with the local clock, so an expired item is invisible at once;
// conditional writes treat it as absent. KeepAlive writes the item again
// with its new expiry and a new lease: watchers see a put with a new
// revision.
//
// # Conditional writes
//
// Create, Update, CompareAndSwap and Delete are etcd transactions. An item
// without expiry needs one round trip; for an item with a lease the
// driver reads it, checks its stored expiry and writes if its mod
// revision is unchanged. AtomicWrite reads all its keys in one
// transaction, checks the conditions, and writes in a second transaction
// guarded by every key's mod revision (or absence); if any key moved in
// between, it starts over.
//
// # Watches
//
// Each watcher is an etcd watch over the backend's prefix (narrowed to
// the watcher's prefixes), starting at the revision after the store's
// revision when NewWatcher was called, so nothing committed before is
// replayed and nothing after is missed. Events go through a
// backend.Fanout queue of Watch.QueueSize. The watcher stops with
// backend.ErrWatchBroken when the etcd watch ends: history compacted
// past its revision, the member lost its leader, or the connection to
// etcd was lost (the backend watches the client connection: while etcd is
// unreachable a watcher would lag without saying so).
//
// # Limits and server settings
//
// A value of backend.MaxValueSize (1 MiB) with its key and header fits
// etcd's default request limit of 1.5 MiB, but an AtomicWrite of several
// large values does not: run etcd with --max-request-bytes at least the
// largest AtomicWrite (the tests use 10 MiB). A request over the server's
// limit fails with an error wrapping backend.ErrTooLarge. An AtomicWrite
// of MaxAtomicWriteActions actions fits etcd's default --max-txn-ops of
// 128.
//
// # Lifecycle
//
// Open connects and checks that etcd answers. Close closes the watchers
// with backend.ErrClosed, waits for the backend's goroutines and closes
// the client if Open created it; leases are left to expire. A second
// Close returns an error wrapping backend.ErrClosed.
//
// # Errors
//
// Methods return the backend package's errors (ErrNotFound,
// ErrAlreadyExists, ErrCompareFailed, ErrTooLarge, ErrInvalid, ErrClosed)
// wrapped with the operation and key, and etcd's errors wrapped as the
// client returns them.
//
// # Cancellation
//
// Every method honours its context, and RequestTimeout bounds each call
// so that calls fail rather than wait while etcd is unreachable (the
// client would otherwise wait for the connection). A watcher stops when
// the context given to NewWatcher is done.
package etcd
