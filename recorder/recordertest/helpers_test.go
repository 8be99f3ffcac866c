package recordertest_test

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"

	_ "github.com/sallyport/sallyport/recorder/file"
	"github.com/sallyport/sallyport/recorder/recordertest"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func TestRandomData(t *testing.T) {
	a, b, c := recordertest.RandomData(1000, 1), recordertest.RandomData(1000, 1), recordertest.RandomData(1000, 2)
	if len(a) != 1000 || !bytes.Equal(a, b) {
		t.Fatal("RandomData is not the same for the same seed")
	}
	if bytes.Equal(a, c) {
		t.Fatal("RandomData is the same for other seeds")
	}
}

func TestPlainReader(t *testing.T) {
	r := recordertest.PlainReader(bytes.NewReader([]byte("abc")))
	if _, ok := r.(io.Seeker); ok {
		t.Fatal("PlainReader is an io.Seeker")
	}
	if _, ok := r.(io.ReaderAt); ok {
		t.Fatal("PlainReader is an io.ReaderAt")
	}
	if b, err := io.ReadAll(r); err != nil || string(b) != "abc" {
		t.Fatalf("ReadAll = %q, %v", b, err)
	}
}

func TestGatedReader(t *testing.T) {
	tests := []struct {
		name    string
		open    bool
		want    string
		wantErr bool
	}{
		{"open", true, "0123456789", false},
		{"fail", false, "0123", true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			g := recordertest.NewGatedReader(strings.NewReader("0123456789"), 4)
			type result struct {
				b   []byte
				err error
			}
			done := make(chan result, 1)
			go func() {
				b, err := io.ReadAll(g)
				done <- result{b, err}
			}()
			<-g.Reached()
			select {
			case <-done:
				t.Fatal("read went past the gate")
			case <-time.After(20 * time.Millisecond):
			}
			if tc.open {
				g.Open()
			} else {
				g.Fail(errors.New("source failed"))
			}
			res := <-done
			if string(res.b) != tc.want || (res.err != nil) != tc.wantErr {
				t.Fatalf("ReadAll = %q, %v; want %q, error %v", res.b, res.err, tc.want, tc.wantErr)
			}
		})
	}
}

func TestUniqueName(t *testing.T) {
	seen := map[string]bool{}
	for range 100 {
		n := recordertest.UniqueName("x")
		if seen[n] || !strings.HasPrefix(n, "sp-x-") || strings.ToLower(n) != n || len(n) > 63 {
			t.Fatalf("UniqueName = %q (seen before: %v)", n, seen[n])
		}
		seen[n] = true
	}
}

func TestOpenURIAndWantObject(t *testing.T) {
	s := recordertest.OpenURI(t, "file://"+filepath.Join(t.TempDir(), "store"))
	data := recordertest.RandomData(5000, 7)
	if err := s.Put(t.Context(), "a/b", bytes.NewReader(data), int64(len(data))); err != nil {
		t.Fatal(err)
	}
	recordertest.WantObject(t, s, "a/b", data)
}

// A GatedReader stops an upload after the bytes the test chooses, until
// the test lets it go on or fail.
func ExampleGatedReader() {
	g := recordertest.NewGatedReader(strings.NewReader("first part|second part"), 10)
	done := make(chan string)
	go func() {
		b, _ := io.ReadAll(g)
		done <- string(b)
	}()
	<-g.Reached() // the reader has passed "first part" and waits
	fmt.Println("reached the gate")
	g.Open()
	fmt.Println(<-done)
	// Output:
	// reached the gate
	// first part|second part
}
