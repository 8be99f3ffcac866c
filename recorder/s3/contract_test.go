package s3

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"sync"
	"testing"
	"time"

	"github.com/sallyport/sallyport/recorder"
)

// testContract checks a store against the contract of recorder.Store.
// newStore returns an empty store; bigSize is an object size that takes the
// driver's multipart/staged path.
func testContract(t *testing.T, newStore func(t *testing.T) recorder.Store, bigSize int) {
	ctx := context.Background()
	t.Run("RoundTrip", func(t *testing.T) {
		s := newStore(t)
		for _, tc := range []struct {
			name string
			size int
		}{
			{"empty", 0},
			{"one-byte", 1},
			{"small", 100 << 10},
			{"big", bigSize},
		} {
			t.Run(tc.name, func(t *testing.T) {
				data := randBytes(tc.size, uint64(tc.size))
				name := "2026/11/21/" + tc.name + ".cast"
				// A plain io.Reader, not a seeker: the driver must stream it.
				if err := s.Put(ctx, name, onlyReader{bytes.NewReader(data)}, int64(len(data))); err != nil {
					t.Fatalf("Put: %v", err)
				}
				mustGet(t, s, name, data)
				fi, err := s.Stat(ctx, name)
				if err != nil {
					t.Fatalf("Stat: %v", err)
				}
				if fi.Name != name || fi.Size != int64(len(data)) {
					t.Fatalf("Stat = %+v, want name %q size %d", fi, name, len(data))
				}
				if fi.Modified.IsZero() || time.Since(fi.Modified) > time.Hour {
					t.Fatalf("Stat modified %v, want about now", fi.Modified)
				}
			})
		}
	})
	t.Run("SeekableReader", func(t *testing.T) {
		s := newStore(t)
		data := randBytes(bigSize, 7)
		if err := s.Put(ctx, "seek/big", bytes.NewReader(data), int64(len(data))); err != nil {
			t.Fatalf("Put: %v", err)
		}
		mustGet(t, s, "seek/big", data)
		r := bytes.NewReader(append([]byte("skipped"), data[:1000]...))
		r.Seek(7, io.SeekStart)
		if err := s.Put(ctx, "seek/offset", r, 1000); err != nil {
			t.Fatalf("Put from an offset: %v", err)
		}
		mustGet(t, s, "seek/offset", data[:1000])
	})
	t.Run("CreateOnly", func(t *testing.T) {
		s := newStore(t)
		first := []byte("first version")
		if err := s.Put(ctx, "a/b", bytes.NewReader(first), int64(len(first))); err != nil {
			t.Fatal(err)
		}
		for _, tc := range []struct {
			name string
			size int
		}{{"small", 10}, {"big", bigSize}} {
			t.Run(tc.name, func(t *testing.T) {
				second := randBytes(tc.size, 3)
				err := s.Put(ctx, "a/b", onlyReader{bytes.NewReader(second)}, int64(len(second)))
				if !errors.Is(err, recorder.ErrExists) {
					t.Fatalf("second Put = %v, want ErrExists", err)
				}
				mustGet(t, s, "a/b", first)
			})
		}
	})
	t.Run("ConcurrentCreate", func(t *testing.T) {
		s := newStore(t)
		const n = 8
		var wg sync.WaitGroup
		errs := make([]error, n)
		for i := range n {
			wg.Add(1)
			go func() {
				defer wg.Done()
				d := bytes.Repeat([]byte{byte('a' + i)}, 1000)
				errs[i] = s.Put(ctx, "race", bytes.NewReader(d), int64(len(d)))
			}()
		}
		wg.Wait()
		winner := -1
		for i, err := range errs {
			switch {
			case err == nil && winner >= 0:
				t.Fatalf("Puts %d and %d both succeeded", winner, i)
			case err == nil:
				winner = i
			case !errors.Is(err, recorder.ErrExists):
				t.Fatalf("Put %d: %v, want nil or ErrExists", i, err)
			}
		}
		if winner < 0 {
			t.Fatal("no Put succeeded")
		}
		mustGet(t, s, "race", bytes.Repeat([]byte{byte('a' + winner)}, 1000))
	})
	t.Run("Missing", func(t *testing.T) {
		s := newStore(t)
		if _, err := s.Get(ctx, "no/such"); !errors.Is(err, recorder.ErrNotExist) {
			t.Errorf("Get = %v, want ErrNotExist", err)
		}
		if _, err := s.Stat(ctx, "no/such"); !errors.Is(err, recorder.ErrNotExist) {
			t.Errorf("Stat = %v, want ErrNotExist", err)
		}
		if err := s.Delete(ctx, "no/such"); !errors.Is(err, recorder.ErrNotExist) {
			t.Errorf("Delete = %v, want ErrNotExist", err)
		}
		l, err := s.List(ctx, "no/")
		if err != nil || len(l) != 0 {
			t.Errorf("List = %v, %v; want empty", l, err)
		}
	})
	t.Run("BadReaders", func(t *testing.T) {
		s := newStore(t)
		for _, tc := range []struct {
			name string
			r    func() io.Reader
			size int64
		}{
			{"short-small", func() io.Reader { return bytes.NewReader(make([]byte, 10)) }, 11},
			{"long-small", func() io.Reader { return onlyReader{bytes.NewReader(make([]byte, 12))} }, 11},
			{"short-big", func() io.Reader { return onlyReader{bytes.NewReader(make([]byte, bigSize-1))} }, int64(bigSize)},
			{"long-big", func() io.Reader { return onlyReader{bytes.NewReader(make([]byte, bigSize+1))} }, int64(bigSize)},
			{"failing-big", func() io.Reader {
				return io.MultiReader(bytes.NewReader(make([]byte, bigSize/2)), errReader{})
			}, int64(bigSize)},
		} {
			t.Run(tc.name, func(t *testing.T) {
				name := "bad/" + tc.name
				if err := s.Put(ctx, name, tc.r(), tc.size); err == nil {
					t.Fatal("Put succeeded")
				}
				if _, err := s.Stat(ctx, name); !errors.Is(err, recorder.ErrNotExist) {
					t.Fatalf("after failed Put, Stat = %v, want ErrNotExist", err)
				}
				// The name is still free.
				if err := s.Put(ctx, name, bytes.NewReader([]byte("ok")), 2); err != nil {
					t.Fatalf("Put after failure: %v", err)
				}
			})
		}
	})
	t.Run("CanceledPut", func(t *testing.T) {
		s := newStore(t)
		cctx, cancel := context.WithCancel(ctx)
		pr, pw := io.Pipe()
		go func() {
			pw.Write(make([]byte, bigSize/2))
			cancel()
			time.Sleep(100 * time.Millisecond)
			pw.CloseWithError(errors.New("writer gone"))
		}()
		if err := s.Put(cctx, "canceled", pr, int64(bigSize)); err == nil {
			t.Fatal("Put succeeded")
		}
		if _, err := s.Stat(ctx, "canceled"); !errors.Is(err, recorder.ErrNotExist) {
			t.Fatalf("Stat = %v, want ErrNotExist", err)
		}
	})
	t.Run("ListAndDelete", func(t *testing.T) {
		s := newStore(t)
		names := []string{"2026/11/22/z", "2026/11/21/b", "2026/11/21/a", "2026/11/210", "other/x"}
		for i, n := range names {
			d := bytes.Repeat([]byte("x"), i+1)
			if err := s.Put(ctx, n, bytes.NewReader(d), int64(len(d))); err != nil {
				t.Fatal(err)
			}
		}
		for _, tc := range []struct {
			name, prefix string
			want         []string
		}{
			{"day", "2026/11/21/", []string{"2026/11/21/a", "2026/11/21/b"}},
			{"partial", "2026/11/21", []string{"2026/11/21/a", "2026/11/21/b", "2026/11/210"}},
			{"all", "", []string{"2026/11/21/a", "2026/11/21/b", "2026/11/210", "2026/11/22/z", "other/x"}},
			{"none", "nothing", nil},
		} {
			t.Run(tc.name, func(t *testing.T) {
				l, err := s.List(ctx, tc.prefix)
				if err != nil {
					t.Fatal(err)
				}
				var got []string
				for _, o := range l {
					got = append(got, o.Name)
					if o.Size <= 0 || o.Modified.IsZero() {
						t.Errorf("List entry %+v lacks size or time", o)
					}
				}
				if fmt.Sprint(got) != fmt.Sprint(tc.want) {
					t.Fatalf("List(%q) = %v, want %v", tc.prefix, got, tc.want)
				}
			})
		}
		if err := s.Delete(ctx, "2026/11/21/a"); err != nil {
			t.Fatal(err)
		}
		if _, err := s.Stat(ctx, "2026/11/21/a"); !errors.Is(err, recorder.ErrNotExist) {
			t.Fatalf("Stat after Delete = %v", err)
		}
		if err := s.Delete(ctx, "2026/11/21/a"); !errors.Is(err, recorder.ErrNotExist) {
			t.Fatalf("second Delete = %v, want ErrNotExist", err)
		}
		// A deleted name can be written again.
		if err := s.Put(ctx, "2026/11/21/a", bytes.NewReader([]byte("again")), 5); err != nil {
			t.Fatal(err)
		}
		mustGet(t, s, "2026/11/21/a", []byte("again"))
	})
	t.Run("InvalidNames", func(t *testing.T) {
		s := newStore(t)
		for _, n := range []string{"", "/abs", "a/../b", "a//b", "./a", "a/"} {
			if err := s.Put(ctx, n, bytes.NewReader([]byte("x")), 1); err == nil {
				t.Errorf("Put(%q) succeeded", n)
			}
		}
	})
	t.Run("Close", func(t *testing.T) {
		s := newStore(t)
		if err := s.Close(); err != nil {
			t.Fatal(err)
		}
		if err := s.Close(); err != nil {
			t.Fatalf("second Close: %v", err)
		}
		if err := s.Put(ctx, "after-close", bytes.NewReader([]byte("x")), 1); err == nil {
			t.Fatal("Put after Close succeeded")
		}
	})
}

type onlyReader struct{ r io.Reader }

func (o onlyReader) Read(p []byte) (int, error) { return o.r.Read(p) }

type errReader struct{}

func (errReader) Read([]byte) (int, error) { return 0, errors.New("source failed") }

func randBytes(n int, seed uint64) []byte {
	r := rand.New(rand.NewPCG(seed, 42))
	b := make([]byte, n)
	for i := 0; i+8 <= n; i += 8 {
		v := r.Uint64()
		for j := range 8 {
			b[i+j] = byte(v >> (8 * j))
		}
	}
	for i := n &^ 7; i < n; i++ {
		b[i] = byte(r.Uint32())
	}
	return b
}

func mustGet(t testing.TB, s recorder.Store, name string, want []byte) {
	t.Helper()
	rc, err := s.Get(context.Background(), name)
	if err != nil {
		t.Fatalf("Get(%q): %v", name, err)
	}
	defer rc.Close()
	got, err := io.ReadAll(rc)
	if err != nil {
		t.Fatalf("read %q: %v", name, err)
	}
	if !bytes.Equal(got, want) {
		t.Fatalf("Get(%q) = %d bytes, want %d bytes (equal: %v)", name, len(got), len(want), bytes.Equal(got, want))
	}
}
