package netutil

import (
	"io"
	"sync"
)

// The buffers of Copy: a small one while the channel carries
// interactive traffic or sits idle (what io.Copy would hold), a large one,
// several packets, while it carries bulk data.
const (
	smallCopyBuf = 32 << 10
	largeCopyBuf = 256 << 10
)

var (
	smallCopyBufs = sync.Pool{New: func() any { b := make([]byte, smallCopyBuf); return &b }}
	largeCopyBufs = sync.Pool{New: func() any { b := make([]byte, largeCopyBuf); return &b }}
)

// Copy copies from src to dst until EOF or an error, like io.Copy, with
// a buffer that follows the traffic. While src carries interactive
// traffic or sits idle it holds a small pooled buffer (what io.Copy would
// allocate); once a read fills it, Copy switches to a buffer of several
// packets, so that one read takes everything that has arrived and one
// write passes it on, and back when reads come up short again. It never
// uses dst's ReadFrom or src's WriteTo, which would read in 32 KiB pieces
// into a buffer of their own.
//
// From an SSH channel, larger reads mean fewer window adjustments (x/crypto
// sends one, a packet and a system call, per read once a few packets are
// unacknowledged) and fewer frames on a tunnel stream.
func Copy(dst io.Writer, src io.Reader) (int64, error) {
	pool := &smallCopyBufs
	bp := pool.Get().(*[]byte)
	defer func() { pool.Put(bp) }()
	var written int64
	for {
		buf := *bp
		n, rerr := src.Read(buf)
		if n > 0 {
			m, werr := dst.Write(buf[:n])
			written += int64(m)
			if werr != nil {
				return written, werr
			}
			if m != n {
				return written, io.ErrShortWrite
			}
		}
		if rerr == io.EOF {
			return written, nil
		}
		if rerr != nil {
			return written, rerr
		}
		switch {
		case pool == &smallCopyBufs && n == len(buf):
			pool.Put(bp)
			pool = &largeCopyBufs
			bp = pool.Get().(*[]byte)
		case pool == &largeCopyBufs && n <= smallCopyBuf/2:
			pool.Put(bp)
			pool = &smallCopyBufs
			bp = pool.Get().(*[]byte)
		}
	}
}
