package backendtest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"net/url"
	"testing"
	"time"

	"github.com/sallyport/sallyport/backend"
)

// Context returns a context for one test that is cancelled at its end
// (and after two minutes at the latest).
func Context(t testing.TB) context.Context {
	c, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	t.Cleanup(cancel)
	return c
}

// Open calls open(ctx, cfg) with a 30-second context, fails the test on an
// error and closes the backend at the end of the test. It is how a driver's
// tests open their backends:
//
//	b := backendtest.Open(t, etcd.Open, &etcd.Config{...})
func Open[C any, B backend.Backend](t testing.TB, open func(context.Context, C) (B, error), cfg C) B {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	b, err := open(ctx, cfg)
	if err != nil {
		t.Fatalf("open: %v", err)
	}
	t.Cleanup(func() { b.Close() })
	return b
}

// RandomName returns prefix followed by ten random hex digits: a fresh key
// prefix, schema or table name, so tests sharing one store do not see each
// other's data.
func RandomName(prefix string) string {
	var b [5]byte
	rand.Read(b[:])
	return prefix + hex.EncodeToString(b[:])
}

// Watch opens a watcher on b for keys under prefix ("" means all keys),
// checks that its first event is OpInit and closes it at the end of the
// test.
func Watch(t testing.TB, b backend.Backend, prefix string) backend.Watcher {
	t.Helper()
	w, err := b.NewWatcher(Context(t), backend.Watch{Prefixes: [][]byte{[]byte(prefix)}})
	if err != nil {
		t.Fatalf("new watcher: %v", err)
	}
	t.Cleanup(func() { w.Close() })
	waitInit(t, w)
	return w
}

// NextEvent returns the watcher's next event, failing the test if none
// comes within d or the watcher stops.
func NextEvent(t testing.TB, w backend.Watcher, d time.Duration) backend.Event {
	t.Helper()
	timer := time.NewTimer(d)
	defer timer.Stop()
	select {
	case ev, ok := <-w.Events():
		if !ok {
			t.Fatalf("watcher stopped: %v", w.Err())
		}
		return ev
	case <-timer.C:
		t.Fatalf("no event within %v", d)
	}
	return backend.Event{}
}

// WaitFor polls cond every 20ms until it holds, failing the test with what
// if it does not within d.
func WaitFor(t testing.TB, what string, d time.Duration, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", d, what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// URICase is one case of [RunParseURI]: a backend URI and what parsing
// it must give.
type URICase[C any] struct {
	// Name names the subtest.
	Name string
	// URI is parsed with url.Parse and then with the driver's ParseURI.
	URI string
	// WantErr means ParseURI must fail with an error wrapping
	// backend.ErrInvalid; false means it must succeed.
	WantErr bool
	// Check inspects the parsed configuration when WantErr is false; nil
	// checks nothing more.
	Check func(t *testing.T, c C)
}

// RunParseURI runs each case as a subtest against a driver's ParseURI.
func RunParseURI[C any](t *testing.T, parse func(*url.URL) (C, error), cases []URICase[C]) {
	for _, tt := range cases {
		t.Run(tt.Name, func(t *testing.T) {
			u, err := url.Parse(tt.URI)
			if err != nil {
				t.Fatal(err)
			}
			c, err := parse(u)
			if tt.WantErr {
				if !errors.Is(err, backend.ErrInvalid) {
					t.Fatalf("error %v, want ErrInvalid", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if tt.Check != nil {
				tt.Check(t, c)
			}
		})
	}
}
