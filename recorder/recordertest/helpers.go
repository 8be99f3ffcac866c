package recordertest

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/sallyport/sallyport/recorder"
)

// RandomData returns n bytes from a generator seeded with seed: the same
// bytes for the same arguments, and data that does not compress.
func RandomData(n int, seed uint64) []byte {
	b := make([]byte, n)
	rand.NewChaCha8(seedKey(seed)).Read(b)
	return b
}

// TerminalOutput returns about n bytes of output like a busy shell's:
// colored ls listings, log lines with numbers, some UTF-8, lines ending
// in "\r\n". The same n gives the same bytes.
func TerminalOutput(n int) []byte {
	r := rand.New(rand.NewPCG(1, 2))
	var b bytes.Buffer
	words := []string{"error", "request", "完了", "über", "latency", "GET", "/api/v1/items", "200", "user", "node-3"}
	for b.Len() < n {
		switch r.IntN(3) {
		case 0:
			fmt.Fprintf(&b, "\x1b[01;34m%s\x1b[0m  \x1b[01;32m%s.sh\x1b[0m  file-%d.txt  ", words[r.IntN(len(words))], words[r.IntN(len(words))], r.IntN(10000))
		case 1:
			fmt.Fprintf(&b, "2026-11-21T08:%02d:%02d.%06dZ level=INFO msg=%q id=%x dur=%dms\r\n", r.IntN(60), r.IntN(60), r.IntN(1e6), words[r.IntN(len(words))], r.Uint64(), r.IntN(5000))
		case 2:
			for range r.IntN(8) + 1 {
				b.WriteString(words[r.IntN(len(words))])
				b.WriteByte(' ')
			}
			b.WriteString("\r\n")
		}
	}
	return b.Bytes()
}

func seedKey(seed uint64) (k [32]byte) {
	for i := range 8 {
		k[i] = byte(seed >> (8 * i))
	}
	return k
}

// PlainReader hides every method of r but Read (io.Seeker, io.ReaderAt,
// io.WriterTo), so that a driver has to stream it.
func PlainReader(r io.Reader) io.Reader { return plainReader{r} }

type plainReader struct{ r io.Reader }

func (p plainReader) Read(b []byte) (int, error) { return p.r.Read(b) }

// WantObject fails the test unless the object name in s holds exactly
// want.
func WantObject(t testing.TB, s recorder.Store, name string, want []byte) {
	t.Helper()
	rc, err := s.Get(context.Background(), name)
	if err != nil {
		t.Fatalf("Get(%q): %v", name, err)
	}
	defer rc.Close()
	got, err := io.ReadAll(rc)
	if err != nil {
		t.Fatalf("Get(%q): read: %v", name, err)
	}
	if !bytes.Equal(got, want) {
		t.Fatalf("Get(%q) returned %d bytes, want the %d bytes put", name, len(got), len(want))
	}
}

var nameSeq atomic.Int64

// UniqueName returns a bucket or container name no other call in this
// process returns: "sp-" tag, a time-derived number and a sequence
// number, in lower case, digits and dashes, as every object store
// accepts (for a short tag).
func UniqueName(tag string) string {
	return fmt.Sprintf("sp-%s-%d-%d", tag, time.Now().UnixNano()%1e9, nameSeq.Add(1))
}

// OpenURI opens the store a URI names (recorder.OpenStore), fails the
// test when it cannot, and closes the store when the test ends.
func OpenURI(t testing.TB, uri string) recorder.Store {
	t.Helper()
	s, err := recorder.OpenStore(context.Background(), uri)
	if err != nil {
		t.Fatalf("OpenStore(%s): %v", uri, err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// GatedReader passes the first n bytes of a reader, then holds further
// reads until the test opens the gate or makes them fail: it stops an
// upload in the middle, at a place the test chooses.
type GatedReader struct {
	r       io.Reader
	left    atomic.Int64
	reached chan struct{}
	once    sync.Once
	gate    chan struct{}
	err     error
}

// NewGatedReader returns a GatedReader of r that holds reads after n bytes.
func NewGatedReader(r io.Reader, n int64) *GatedReader {
	g := &GatedReader{r: r, reached: make(chan struct{}), gate: make(chan struct{})}
	g.left.Store(n)
	return g
}

// Read reads from the underlying reader; after the first n bytes it waits
// for Open or Fail.
func (g *GatedReader) Read(p []byte) (int, error) {
	left := g.left.Load()
	if left <= 0 {
		g.once.Do(func() { close(g.reached) })
		<-g.gate
		if g.err != nil {
			return 0, g.err
		}
		return g.r.Read(p)
	}
	if int64(len(p)) > left {
		p = p[:left]
	}
	n, err := g.r.Read(p)
	g.left.Add(-int64(n))
	return n, err
}

// Reached is closed once the reader has passed its first n bytes and a
// read waits at the gate.
func (g *GatedReader) Reached() <-chan struct{} { return g.reached }

// Open lets reads through the gate. Call Open or Fail once.
func (g *GatedReader) Open() { close(g.gate) }

// Fail makes reads at the gate fail with err. Call Open or Fail once.
func (g *GatedReader) Fail(err error) {
	g.err = err
	close(g.gate)
}
