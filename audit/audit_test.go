package audit

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	_ "github.com/jackc/pgx/v5/stdlib"
	"go.uber.org/goleak"

	"github.com/sallyport/sallyport/backend/memory"
	"github.com/sallyport/sallyport/backend/sqlite"
	"github.com/sallyport/sallyport/internal/testservice"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// logs returns one of each implementation, over real storage.
func logs(t *testing.T) map[string]Log {
	t.Helper()
	b, err := memory.New(nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { b.Close() })
	f, err := OpenFile(filepath.Join(t.TempDir(), "audit.jsonl"), nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	lite, err := sql.Open("sqlite", sqlite.DSN(filepath.Join(t.TempDir(), "audit.db"), 5*time.Second, true))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { lite.Close() })
	liteLog, err := NewSQL(context.Background(), lite, "", nil)
	if err != nil {
		t.Fatal(err)
	}
	pg, err := sql.Open("pgx", testservice.PostgresDB(t))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { pg.Close() })
	pgLog, err := NewSQL(context.Background(), pg, "sallyport_audit", nil)
	if err != nil {
		t.Fatal(err)
	}
	return map[string]Log{"backend": NewBackend(b, "", nil), "file": f, "sqlite": liteLog, "postgres": pgLog}
}

func TestSearch(t *testing.T) {
	base := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	for name, l := range logs(t) {
		t.Run(name, func(t *testing.T) {
			ctx := context.Background()
			types := []string{TypeJoin, TypeLogin, TypeLoginFailed}
			for i := range 30 {
				e := Event{Time: base.Add(time.Duration(i) * time.Minute), Type: types[i%3], Actor: fmt.Sprint("a", i), Success: i%3 != 2}
				if err := l.Emit(ctx, e); err != nil {
					t.Fatal(err)
				}
			}
			cases := []struct {
				name      string
				q         Query
				want      int
				firstActr string
			}{
				{"everything", Query{}, 30, "a0"},
				{"time range", Query{From: base.Add(10 * time.Minute), To: base.Add(20 * time.Minute)}, 10, "a10"},
				{"type", Query{Types: []string{TypeLoginFailed}}, 10, "a2"},
				{"type and range", Query{Types: []string{TypeJoin, TypeLogin}, From: base.Add(25 * time.Minute)}, 3, "a25"},
				{"limit", Query{Limit: 4}, 4, "a0"},
				{"empty range", Query{From: base.Add(time.Hour), To: base.Add(2 * time.Hour)}, 0, ""},
			}
			for _, tc := range cases {
				t.Run(tc.name, func(t *testing.T) {
					evs, err := l.Search(ctx, tc.q)
					if err != nil {
						t.Fatal(err)
					}
					if len(evs) != tc.want {
						t.Fatalf("%d events, want %d", len(evs), tc.want)
					}
					if tc.want > 0 && evs[0].Actor != tc.firstActr {
						t.Fatalf("first event %+v, want actor %s", evs[0], tc.firstActr)
					}
					for i := 1; i < len(evs); i++ {
						if evs[i].Time.Before(evs[i-1].Time) {
							t.Fatal("events out of order")
						}
					}
					for _, e := range evs {
						if e.ID == "" {
							t.Fatal("event without ID")
						}
					}
				})
			}
			if err := l.Emit(ctx, Event{}); !errors.Is(err, ErrInvalidEvent) {
				t.Fatalf("Emit without type = %v", err)
			}
			big := Event{Type: "x", Fields: map[string]string{"v": strings.Repeat("a", MaxEventSize)}}
			if err := l.Emit(ctx, big); !errors.Is(err, ErrInvalidEvent) {
				t.Fatalf("Emit too large = %v", err)
			}
		})
	}
}

func TestConcurrentEmit(t *testing.T) {
	for name, l := range logs(t) {
		t.Run(name, func(t *testing.T) {
			var wg sync.WaitGroup
			for i := range 8 {
				wg.Add(1)
				go func() {
					defer wg.Done()
					for j := range 25 {
						if err := l.Emit(context.Background(), Event{Type: "t", Actor: fmt.Sprint(i, "-", j)}); err != nil {
							t.Error(err)
						}
					}
				}()
			}
			wg.Wait()
			evs, err := l.Search(context.Background(), Query{})
			if err != nil || len(evs) != 200 {
				t.Fatalf("%d events, %v; want 200", len(evs), err)
			}
		})
	}
}

func TestFileClose(t *testing.T) {
	path := filepath.Join(t.TempDir(), "a.jsonl")
	f, err := OpenFile(path, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := f.Emit(context.Background(), Event{Type: "x"}); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); !errors.Is(err, net.ErrClosed) {
		t.Fatalf("second Close = %v", err)
	}
	if err := f.Emit(context.Background(), Event{Type: "x"}); !errors.Is(err, ErrClosed) {
		t.Fatalf("Emit after Close = %v", err)
	}
	fi, err := os.Stat(path)
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("file mode %v, %v", fi.Mode(), err)
	}
	// A line that is not an event is skipped; a line over the limit fails.
	os.WriteFile(path, []byte("garbage\n{\"type\":\"ok\",\"time\":\"2026-01-01T00:00:00Z\"}\n"), 0o600)
	g, _ := OpenFile(path, nil)
	defer g.Close()
	evs, err := g.Search(context.Background(), Query{})
	if err != nil || len(evs) != 1 || evs[0].Type != "ok" {
		t.Fatalf("Search = %v, %v", evs, err)
	}
	os.WriteFile(path, []byte(strings.Repeat("x", MaxEventSize+10)+"\n"), 0o600)
	if _, err := g.Search(context.Background(), Query{}); err == nil {
		t.Fatal("Search over an oversized line succeeded")
	}
}

func FuzzScan(f *testing.F) {
	f.Add([]byte(`{"id":"1","type":"user.login","time":"2026-01-01T00:00:00Z"}` + "\n"))
	f.Add([]byte("{}\n\n{\"type\":1}\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		evs, err := scan(context.Background(), strings.NewReader(string(data)), Query{})
		if err != nil {
			return
		}
		for _, e := range evs {
			if e.Type == "" {
				t.Fatal("event without type returned")
			}
		}
	})
}

func ExampleFile() {
	dir, _ := os.MkdirTemp("", "audit")
	defer os.RemoveAll(dir)
	l, _ := OpenFile(filepath.Join(dir, "audit.jsonl"), nil)
	defer l.Close()
	ctx := context.Background()
	t0 := time.Date(2026, 5, 1, 12, 0, 0, 0, time.UTC)
	l.Emit(ctx, Event{Time: t0, Type: TypeLogin, Actor: "alice", Success: true})
	l.Emit(ctx, Event{Time: t0.Add(time.Second), Type: TypeLoginFailed, Actor: "mallory"})
	evs, _ := l.Search(ctx, Query{Types: []string{TypeLoginFailed}})
	for _, e := range evs {
		fmt.Println(e.Time.Format(time.RFC3339), e.Type, e.Actor)
	}
	// Output: 2026-05-01T12:00:01Z user.login.failed mallory
}
