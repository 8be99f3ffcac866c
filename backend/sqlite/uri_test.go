package sqlite_test

import (
	"context"
	"errors"
	"net/url"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/sallyport/sallyport/backend"
	"github.com/sallyport/sallyport/backend/sqlite"
)

func TestParseURI(t *testing.T) {
	tests := []struct {
		name    string
		uri     string
		want    sqlite.Config
		wantErr error
	}{
		{name: "absolute", uri: "sqlite:///var/lib/sallyport/state.db", want: sqlite.Config{Path: "/var/lib/sallyport/state.db"}},
		{name: "relative host form", uri: "sqlite://state.db", want: sqlite.Config{Path: "state.db"}},
		{name: "relative with directory", uri: "sqlite://data/state.db", want: sqlite.Config{Path: "data/state.db"}},
		{name: "opaque relative", uri: "sqlite:data/state.db", want: sqlite.Config{Path: "data/state.db"}},
		{name: "escaped space", uri: "sqlite:///tmp/my%20dir/s.db", want: sqlite.Config{Path: "/tmp/my dir/s.db"}},
		{name: "parameters", uri: "sqlite:///s.db?sweep_interval=500ms&poll_interval=50ms&change_retention=2m&busy_timeout=3s&read_conns=8",
			want: sqlite.Config{Path: "/s.db", SweepInterval: 500 * time.Millisecond, PollInterval: 50 * time.Millisecond,
				ChangeRetention: 2 * time.Minute, BusyTimeout: 3 * time.Second, ReadConns: 8}},
		{name: "unknown parameter", uri: "sqlite:///s.db?cache=shared", wantErr: backend.ErrInvalid},
		{name: "bad duration", uri: "sqlite:///s.db?sweep_interval=soon", wantErr: backend.ErrInvalid},
		{name: "bad count", uri: "sqlite:///s.db?read_conns=many", wantErr: backend.ErrInvalid},
		{name: "no path", uri: "sqlite://", wantErr: backend.ErrInvalid},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			u, err := url.Parse(tt.uri)
			if err != nil {
				t.Fatal(err)
			}
			got, err := sqlite.ParseURI(u)
			if tt.wantErr != nil {
				if !errors.Is(err, tt.wantErr) {
					t.Fatalf("ParseURI(%q) error %v, want %v", tt.uri, err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got != tt.want {
				t.Fatalf("ParseURI(%q) = %+v, want %+v", tt.uri, got, tt.want)
			}
		})
	}
}

func TestOpenURI(t *testing.T) {
	dir := t.TempDir()
	t.Chdir(dir)
	ctx := context.Background()
	for _, uri := range []string{"sqlite://" + filepath.Join(dir, "abs.db"), "sqlite://rel.db", "sqlite:rel2.db?poll_interval=10ms"} {
		b, err := backend.Open(ctx, uri)
		if err != nil {
			t.Fatalf("open %s: %v", uri, err)
		}
		if _, err := b.Put(ctx, backend.Item{Key: []byte("/k"), Value: []byte(uri)}); err != nil {
			t.Fatal(err)
		}
		if err := b.Close(); err != nil {
			t.Fatal(err)
		}
	}
	for _, f := range []string{"abs.db", "rel.db", "rel2.db"} {
		if _, err := os.Stat(filepath.Join(dir, f)); err != nil {
			t.Fatalf("%s not created: %v", f, err)
		}
	}
	if _, err := backend.Open(ctx, "sqlite:///no/such/dir/state.db"); err == nil {
		t.Fatal("open in a missing directory succeeded")
	}
	if _, err := sqlite.Open(ctx, sqlite.Config{}); !errors.Is(err, backend.ErrInvalid) {
		t.Fatalf("open without a path: %v, want ErrInvalid", err)
	}
	if _, err := sqlite.Open(ctx, sqlite.Config{Path: "x.db", PollInterval: -1}); !errors.Is(err, backend.ErrInvalid) {
		t.Fatalf("negative interval: %v, want ErrInvalid", err)
	}
}

// FuzzParseURI checks that no URI makes ParseURI panic, and that a parsed
// Config survives being written back into a URI.
func FuzzParseURI(f *testing.F) {
	for _, s := range []string{"sqlite:///a/b.db", "sqlite://x.db?read_conns=3", "sqlite:rel.db?sweep_interval=1s&poll_interval=2ms",
		"sqlite://", "sqlite:///%00", "sqlite://h:1/p?busy_timeout=-1s"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		u, err := url.Parse(s)
		if err != nil {
			return
		}
		cfg, err := sqlite.ParseURI(u)
		if err != nil {
			if !errors.Is(err, backend.ErrInvalid) {
				t.Fatalf("ParseURI(%q): error %v does not wrap ErrInvalid", s, err)
			}
			return
		}
		if cfg.Path == "" {
			t.Fatalf("ParseURI(%q) accepted an empty path", s)
		}
		back := &url.URL{Scheme: "sqlite", Path: cfg.Path}
		if cfg.Path[0] != '/' {
			back = &url.URL{Scheme: "sqlite", Opaque: url.PathEscape(cfg.Path)}
		}
		again, err := sqlite.ParseURI(back)
		if err != nil || again.Path != cfg.Path {
			t.Fatalf("path %q from %q did not round-trip through %q: %q %v", cfg.Path, s, back, again.Path, err)
		}
	})
}
