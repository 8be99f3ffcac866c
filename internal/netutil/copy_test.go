package netutil

import (
	"bytes"
	"errors"
	"io"
	"math/rand/v2"
	"testing"
)

// chunkReader returns its data in reads of the given sizes, recording the
// size of every buffer it was given.
type chunkReader struct {
	data  []byte
	sizes []int
	bufs  []int
}

func (r *chunkReader) Read(p []byte) (int, error) {
	r.bufs = append(r.bufs, len(p))
	if len(r.data) == 0 {
		return 0, io.EOF
	}
	n := len(r.data)
	if len(r.sizes) > 0 {
		n = min(n, r.sizes[0])
		r.sizes = r.sizes[1:]
	}
	n = copy(p, r.data[:n])
	r.data = r.data[n:]
	return n, nil
}

func TestCopy(t *testing.T) {
	data := make([]byte, 10+200+smallCopyBuf+2*largeCopyBuf+5+7)
	rng := rand.New(rand.NewPCG(1, 1))
	for i := range data {
		data[i] = byte(rng.Uint32())
	}
	// Interactive, then bulk (reads that fill the buffer), then
	// interactive again.
	sizes := []int{10, 200, 1 << 20, 1 << 20, 1 << 20, 5, 7}
	r := &chunkReader{data: data, sizes: sizes}
	var dst bytes.Buffer
	n, err := Copy(&dst, r)
	if err != nil || n != int64(len(data)) || !bytes.Equal(dst.Bytes(), data) {
		t.Fatalf("copied %d bytes, err %v; equal %v", n, err, bytes.Equal(dst.Bytes(), data))
	}
	want := []int{smallCopyBuf, smallCopyBuf, smallCopyBuf, largeCopyBuf}
	for i, w := range want {
		if r.bufs[i] != w {
			t.Fatalf("read %d with a %d-byte buffer, want %d (buffers %v)", i, r.bufs[i], w, r.bufs)
		}
	}
	// After the bulk part ends with short reads it is back to the small
	// buffer.
	if last := r.bufs[len(r.bufs)-1]; last != smallCopyBuf {
		t.Fatalf("last read with a %d-byte buffer, want %d", last, smallCopyBuf)
	}
}

type failWriter struct{ short bool }

func (w failWriter) Write(p []byte) (int, error) {
	if w.short {
		return len(p) / 2, nil
	}
	return 0, errors.New("disk full")
}

func TestCopyErrors(t *testing.T) {
	if _, err := Copy(failWriter{}, &chunkReader{data: []byte("abc")}); err == nil || err.Error() != "disk full" {
		t.Fatalf("write error: %v", err)
	}
	if _, err := Copy(failWriter{short: true}, &chunkReader{data: []byte("abcd")}); !errors.Is(err, io.ErrShortWrite) {
		t.Fatalf("short write: %v", err)
	}
	readErr := errors.New("channel reset")
	r := io.MultiReader(bytes.NewReader([]byte("xy")), iotestErr{readErr})
	var dst bytes.Buffer
	if n, err := Copy(&dst, r); n != 2 || !errors.Is(err, readErr) {
		t.Fatalf("read error: n=%d err=%v", n, err)
	}
}

type iotestErr struct{ err error }

func (e iotestErr) Read([]byte) (int, error) { return 0, e.err }
