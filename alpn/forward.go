package alpn

import (
	"context"
	"io"
	"net"
	"sync"
)

// Forward returns a passthrough handler that dials addr with d (a
// net.Dialer when nil) and copies bytes both ways until both directions
// end, or ctx is canceled (see Join).
func Forward(d ContextDialer, addr string) Handler {
	if d == nil {
		d = &net.Dialer{}
	}
	return HandlerFunc(func(ctx context.Context, c net.Conn, h *Hello) {
		defer c.Close()
		up, err := d.DialContext(ctx, "tcp", addr)
		if err != nil {
			return
		}
		defer up.Close()
		Join(ctx, c, up)
	})
}

// Join copies between a and b in both directions, half-closing each
// writing side when the other direction ends, until both directions end
// or ctx is canceled; then it closes both. Small messages go through a
// small buffer; once a direction carries bulk data it splices when both
// conns are TCP (or unwrap to TCP through io.WriterTo/io.ReaderFrom, as
// *Conn does).
func Join(ctx context.Context, a, b net.Conn) {
	stop := context.AfterFunc(ctx, func() { a.Close(); b.Close() })
	defer stop()
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		copyHalf(a, b)
	}()
	copyHalf(b, a)
	wg.Wait()
	a.Close()
	b.Close()
}

func copyHalf(dst, src net.Conn) {
	err := copyAdaptive(dst, src)
	if cw, ok := dst.(interface{ CloseWrite() error }); ok && err == nil {
		cw.CloseWrite()
	} else {
		dst.Close()
		src.Close()
	}
}

// copyBufSize is the user-space buffer of copyAdaptive.
const copyBufSize = 8 << 10

var copyBufs = sync.Pool{New: func() any { b := make([]byte, copyBufSize); return &b }}

// copyAdaptive copies src to dst through a small buffer while the stream
// carries small messages (a TLS handshake, interactive traffic) and
// switches to io.Copy, which splices between TCP conns, at the first read
// that fills the buffer: splice costs more than read and write for small
// messages and much less for bulk data.
func copyAdaptive(dst, src net.Conn) error {
	bp := copyBufs.Get().(*[]byte)
	buf := *bp
	for {
		n, err := src.Read(buf)
		if n > 0 {
			if _, werr := dst.Write(buf[:n]); werr != nil {
				copyBufs.Put(bp)
				return werr
			}
		}
		if err != nil {
			copyBufs.Put(bp)
			if err == io.EOF {
				return nil
			}
			return err
		}
		if n == len(buf) {
			break
		}
	}
	copyBufs.Put(bp)
	_, err := io.Copy(dst, src)
	return err
}
