package backend

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"sort"
	"strings"
	"sync"
)

// OpenFunc opens a backend from a parsed URI. Drivers register one with
// Register.
type OpenFunc func(ctx context.Context, u *url.URL) (Backend, error)

var (
	driversMu sync.RWMutex
	drivers   = map[string]OpenFunc{}
)

// Register makes a driver available to Open under a URI scheme ("memory",
// "sqlite", "postgres", "etcd", ...). Drivers call it from init, so a
// program imports the drivers it wants:
//
//	import _ "github.com/sallyport/sallyport/backend/sqlite"
//
// Register panics if the scheme is registered twice or open is nil.
func Register(scheme string, open OpenFunc) {
	driversMu.Lock()
	defer driversMu.Unlock()
	if open == nil {
		panic("backend: Register with nil OpenFunc for " + scheme)
	}
	if _, dup := drivers[scheme]; dup {
		panic("backend: Register called twice for " + scheme)
	}
	drivers[scheme] = open
}

// Open opens the backend a URI names, with the driver registered for its
// scheme: "memory://", "sqlite:///var/lib/sallyport/state.db",
// "postgres://user@host/db", "etcd://host:2379/prefix". Each driver's
// package documents the URI parameters it takes.
func Open(ctx context.Context, uri string) (Backend, error) {
	u, err := url.Parse(uri)
	if err != nil {
		// The URI may hold a password: report the reason, not the URI.
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err
		}
		return nil, fmt.Errorf("backend: bad URI: %w", err)
	}
	scheme := strings.ToLower(u.Scheme)
	if scheme == "postgresql" {
		scheme = "postgres"
	}
	driversMu.RLock()
	open := drivers[scheme]
	driversMu.RUnlock()
	if open == nil {
		return nil, fmt.Errorf("backend: no driver for scheme %q (registered: %s; import the driver package)", u.Scheme, strings.Join(Drivers(), ", "))
	}
	return open(ctx, u)
}

// Drivers returns the registered schemes, sorted.
func Drivers() []string {
	driversMu.RLock()
	defer driversMu.RUnlock()
	s := make([]string, 0, len(drivers))
	for k := range drivers {
		s = append(s, k)
	}
	sort.Strings(s)
	return s
}
