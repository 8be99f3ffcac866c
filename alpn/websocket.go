package alpn

import (
	"bufio"
	"context"
	"crypto/rand"
	"crypto/sha1"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math"
	"net"
	"net/http"
	"strings"
	"sync"
	"time"
)

// WebSocket (RFC 6455) carries a byte stream for the connection upgrade:
// every data frame's payload is appended to the stream, message boundaries
// do not matter. Frames are binary; control frames (ping, pong, close) are
// handled inside Read.

const (
	// MaxWebSocketFrame is the largest data frame a WebSocket conn reads;
	// a larger one fails the conn with close code 1009.
	MaxWebSocketFrame = 1 << 20
	// webSocketWriteFrame is the largest frame a WebSocket conn writes.
	webSocketWriteFrame = 32 << 10

	wsOpContinuation = 0x0
	wsOpText         = 0x1
	wsOpBinary       = 0x2
	wsOpClose        = 0x8
	wsOpPing         = 0x9
	wsOpPong         = 0xa

	wsGUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
)

// ErrWebSocket is wrapped by WebSocket handshake and framing errors.
var ErrWebSocket = errors.New("alpn: websocket")

// wsConn is a net.Conn over a WebSocket.
type wsConn struct {
	net.Conn
	client bool // mask written frames; expect unmasked ones
	proto  string

	rmu       sync.Mutex
	br        *bufio.Reader
	hdr       [14]byte
	hdrN      int
	remaining int64 // payload left in the current data frame
	masked    bool
	mask      [4]byte
	maskPos   int
	inCtrl    bool
	ctrlOp    byte
	ctrl      [125]byte
	ctrlN     int
	ctrlLen   int
	rerr      error // sticky: close received or protocol error

	w         frameWriter // data and control frames
	closeSent bool        // under w.mu
	pmu       sync.Mutex
	pong      []byte // a pong owed to the peer; nil when none
	hasPong   bool

	closeOnce sync.Once
	closeErr  error
}

func newWSConn(c net.Conn, br *bufio.Reader, client bool, proto string) *wsConn {
	if br == nil {
		br = bufio.NewReaderSize(c, 16<<10)
	}
	return &wsConn{Conn: c, br: br, client: client, proto: proto, w: frameWriter{c: c}}
}

// NetConn returns the conn that carries the WebSocket.
func (c *wsConn) NetConn() net.Conn { return c.Conn }

func (c *wsConn) Read(b []byte) (int, error) {
	if len(b) == 0 {
		return 0, nil
	}
	c.rmu.Lock()
	defer c.rmu.Unlock()
	for {
		if c.rerr != nil {
			return 0, c.rerr
		}
		if c.remaining > 0 {
			n, err := c.br.Read(b[:min(int64(len(b)), c.remaining)])
			c.unmask(b[:n])
			c.remaining -= int64(n)
			if n > 0 {
				return n, nil
			}
			return 0, unexpectedEOF(err)
		}
		if c.inCtrl {
			for c.ctrlN < c.ctrlLen {
				n, err := c.br.Read(c.ctrl[c.ctrlN:c.ctrlLen])
				c.unmask(c.ctrl[c.ctrlN : c.ctrlN+n])
				c.ctrlN += n
				if err != nil {
					return 0, unexpectedEOF(err)
				}
			}
			c.inCtrl = false
			if err := c.control(c.ctrlOp, c.ctrl[:c.ctrlLen]); err != nil {
				return 0, err
			}
			continue
		}
		if err := c.readHeader(); err != nil {
			return 0, err
		}
	}
}

func unexpectedEOF(err error) error {
	if err == io.EOF {
		return io.ErrUnexpectedEOF
	}
	return err
}

func (c *wsConn) unmask(b []byte) {
	if c.masked {
		c.maskPos = maskBytes(c.mask, c.maskPos, b)
	}
}

// maskBytes XORs b with key, starting at key position pos, and returns the
// position after b.
func maskBytes(key [4]byte, pos int, b []byte) int {
	i := 0
	for ; i < len(b) && (pos+i)&3 != 0; i++ {
		b[i] ^= key[(pos+i)&3]
	}
	if len(b)-i >= 8 {
		k := uint64(binary.LittleEndian.Uint32(key[:]))
		k |= k << 32
		for ; len(b)-i >= 8; i += 8 {
			binary.LittleEndian.PutUint64(b[i:], binary.LittleEndian.Uint64(b[i:])^k)
		}
	}
	for ; i < len(b); i++ {
		b[i] ^= key[(pos+i)&3]
	}
	return pos + len(b)
}

// readHeader reads one frame header, keeping a partial header across reads
// that time out. rmu is held.
func (c *wsConn) readHeader() error {
	need := 2
	for {
		for c.hdrN < need {
			n, err := c.br.Read(c.hdr[c.hdrN:need])
			c.hdrN += n
			if err != nil {
				if err == io.EOF && c.hdrN > 0 {
					err = io.ErrUnexpectedEOF
				}
				return err
			}
		}
		full := 2
		switch c.hdr[1] & 0x7f {
		case 126:
			full += 2
		case 127:
			full += 8
		}
		if c.hdr[1]&0x80 != 0 {
			full += 4
		}
		if need == full {
			break
		}
		need = full
	}
	h := c.hdr[:need]
	c.hdrN = 0
	fin, rsv, op := h[0]&0x80 != 0, h[0]&0x70, h[0]&0x0f
	masked := h[1]&0x80 != 0
	var size uint64
	rest := h[2:]
	switch l := h[1] & 0x7f; l {
	case 126:
		size, rest = uint64(binary.BigEndian.Uint16(rest)), rest[2:]
	case 127:
		size, rest = binary.BigEndian.Uint64(rest), rest[8:]
	default:
		size = uint64(l)
	}
	switch {
	case rsv != 0:
		return c.fail(1002, "reserved bits set")
	case masked == c.client:
		return c.fail(1002, "wrong masking")
	}
	c.masked, c.maskPos = masked, 0
	if masked {
		copy(c.mask[:], rest)
	}
	switch op {
	case wsOpContinuation, wsOpText, wsOpBinary:
		if size > MaxWebSocketFrame {
			return c.fail(1009, fmt.Sprintf("frame of %d bytes", size))
		}
		c.remaining = int64(size)
	case wsOpClose, wsOpPing, wsOpPong:
		if !fin || size > 125 {
			return c.fail(1002, "bad control frame")
		}
		c.inCtrl, c.ctrlOp, c.ctrlN, c.ctrlLen = true, op, 0, int(size)
	default:
		return c.fail(1002, fmt.Sprintf("unknown opcode %d", op))
	}
	return nil
}

// control handles a complete control frame. rmu is held.
func (c *wsConn) control(op byte, payload []byte) error {
	switch op {
	case wsOpPing:
		c.pmu.Lock()
		c.pong, c.hasPong = append(c.pong[:0], payload...), true
		c.pmu.Unlock()
		if c.w.mu.TryLock() {
			c.flushPong()
			c.w.mu.Unlock()
		}
	case wsOpClose:
		c.rerr = io.EOF
		code := []byte{0x03, 0xe8} // 1000
		if len(payload) >= 2 {
			code = payload[:2]
		}
		c.sendClose(code)
		return io.EOF
	}
	return nil
}

// fail records a protocol error, tells the peer and returns the error.
func (c *wsConn) fail(code uint16, reason string) error {
	c.rerr = fmt.Errorf("%w: %s", ErrWebSocket, reason)
	if code == 1009 {
		c.rerr = fmt.Errorf("%w: %w: %s", ErrWebSocket, ErrFrameTooLarge, reason)
	}
	c.sendClose(binary.BigEndian.AppendUint16(nil, code))
	return c.rerr
}

// sendClose sends a close frame unless one was sent or a write is in
// progress (the conn is failing anyway).
func (c *wsConn) sendClose(payload []byte) {
	if !c.w.mu.TryLock() {
		return
	}
	defer c.w.mu.Unlock()
	if c.closeSent {
		return
	}
	c.closeSent = true
	c.w.write(c.appendFrame(nil, wsOpClose, payload))
}

// flushPong sends an owed pong. w.mu is held.
func (c *wsConn) flushPong() {
	c.pmu.Lock()
	p, ok := c.pong, c.hasPong
	c.hasPong = false
	var frame []byte
	if ok {
		frame = c.appendFrame(nil, wsOpPong, p)
	}
	c.pmu.Unlock()
	if ok && !c.closeSent {
		c.w.write(frame)
	}
}

// appendFrame appends one complete frame (masked when client) to dst.
func (c *wsConn) appendFrame(dst []byte, op byte, payload []byte) []byte {
	var maskBit byte
	if c.client {
		maskBit = 0x80
	}
	dst = append(dst, 0x80|op)
	switch n := len(payload); {
	case n <= 125:
		dst = append(dst, maskBit|byte(n))
	case n <= math.MaxUint16:
		dst = append(dst, maskBit|126)
		dst = binary.BigEndian.AppendUint16(dst, uint16(n))
	default:
		dst = append(dst, maskBit|127)
		dst = binary.BigEndian.AppendUint64(dst, uint64(n))
	}
	if !c.client {
		return append(dst, payload...)
	}
	var key [4]byte
	rand.Read(key[:])
	dst = append(dst, key[:]...)
	start := len(dst)
	dst = append(dst, payload...)
	maskBytes(key, 0, dst[start:])
	return dst
}

func (c *wsConn) Write(b []byte) (int, error) {
	c.w.mu.Lock()
	defer c.w.mu.Unlock()
	if c.closeSent {
		return 0, fmt.Errorf("%w: write after close: %w", ErrWebSocket, net.ErrClosed)
	}
	c.flushPong()
	written := 0
	for written < len(b) {
		chunk := b[written:min(len(b), written+webSocketWriteFrame)]
		c.w.buf = c.appendFrame(c.w.buf[:0], wsOpBinary, chunk)
		committed, err := c.w.write(c.w.buf)
		if committed {
			written += len(chunk)
		}
		if err != nil {
			return written, err
		}
	}
	if len(b) == 0 {
		return 0, c.w.flush()
	}
	return written, nil
}

// Close sends a close frame (unless a write is blocked) and closes the
// underlying conn.
func (c *wsConn) Close() error {
	c.closeOnce.Do(func() {
		if c.w.mu.TryLock() {
			if !c.closeSent {
				c.closeSent = true
				c.Conn.SetWriteDeadline(time.Now().Add(time.Second))
				if c.w.flush() == nil {
					c.w.write(c.appendFrame(nil, wsOpClose, []byte{0x03, 0xe8}))
				}
			}
			c.w.mu.Unlock()
		}
		c.closeErr = c.Conn.Close()
	})
	return c.closeErr
}

// headerHasToken reports whether a comma-separated header holds token.
func headerHasToken(h http.Header, name, token string) bool {
	for _, v := range h.Values(name) {
		for _, t := range strings.Split(v, ",") {
			if strings.EqualFold(strings.TrimSpace(t), token) {
				return true
			}
		}
	}
	return false
}

func headerTokens(h http.Header, name string) []string {
	var out []string
	for _, v := range h.Values(name) {
		for _, t := range strings.Split(v, ",") {
			if t = strings.TrimSpace(t); t != "" {
				out = append(out, t)
			}
		}
	}
	return out
}

func wsAccept(key string) string {
	s := sha1.Sum([]byte(key + wsGUID))
	return base64.StdEncoding.EncodeToString(s[:])
}

// httpError is a WebSocket handshake refusal with an HTTP status.
type httpError struct {
	status int
	msg    string
}

func (e *httpError) Error() string { return e.msg }

// acceptWebSocket checks a WebSocket upgrade request, lets choose pick one
// of the offered subprotocols ("" refuses), hijacks the connection and
// answers 101. On error nothing was hijacked and the caller answers
// with the status of the *httpError.
func acceptWebSocket(w http.ResponseWriter, r *http.Request, timeout time.Duration, choose func([]string) string) (*wsConn, error) {
	switch {
	case r.Method != http.MethodGet:
		return nil, &httpError{http.StatusMethodNotAllowed, "websocket upgrade needs GET"}
	case !headerHasToken(r.Header, "Connection", "upgrade") || !headerHasToken(r.Header, "Upgrade", "websocket"):
		return nil, &httpError{http.StatusUpgradeRequired, "websocket upgrade headers missing"}
	case r.Header.Get("Sec-WebSocket-Version") != "13":
		return nil, &httpError{http.StatusBadRequest, "unsupported Sec-WebSocket-Version"}
	}
	key := r.Header.Get("Sec-WebSocket-Key")
	if k, err := base64.StdEncoding.DecodeString(key); err != nil || len(k) != 16 {
		return nil, &httpError{http.StatusBadRequest, "bad Sec-WebSocket-Key"}
	}
	proto := choose(headerTokens(r.Header, "Sec-WebSocket-Protocol"))
	if proto == "" {
		return nil, &httpError{http.StatusNotFound, "no route for the requested subprotocols"}
	}
	conn, brw, err := http.NewResponseController(w).Hijack()
	if err != nil {
		return nil, &httpError{http.StatusInternalServerError, "connection cannot be upgraded: " + err.Error()}
	}
	conn.SetDeadline(time.Now().Add(timeout))
	resp := "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n" +
		"Sec-WebSocket-Accept: " + wsAccept(key) + "\r\nSec-WebSocket-Protocol: " + proto + "\r\n\r\n"
	if _, err := conn.Write([]byte(resp)); err != nil {
		conn.Close()
		return nil, fmt.Errorf("%w: writing 101: %w", ErrWebSocket, err)
	}
	conn.SetDeadline(time.Time{})
	return newWSConn(conn, brw.Reader, false, proto), nil
}

// budgetReader reads at most n bytes, then io.ErrUnexpectedEOF; n is
// lifted after the handshake.
type budgetReader struct {
	r io.Reader
	n int64
}

func (b *budgetReader) Read(p []byte) (int, error) {
	if b.n <= 0 {
		return 0, fmt.Errorf("%w: handshake response too large", ErrWebSocket)
	}
	if int64(len(p)) > b.n {
		p = p[:b.n]
	}
	n, err := b.r.Read(p)
	b.n -= int64(n)
	return n, err
}

// dialWebSocket runs the client side of a WebSocket upgrade over c,
// offering the subprotocols protos (comma-separated, in order of
// preference) at host and path. ctx bounds the handshake.
func dialWebSocket(ctx context.Context, c net.Conn, host, path, protos string) (*wsConn, error) {
	var k [16]byte
	rand.Read(k[:])
	key := base64.StdEncoding.EncodeToString(k[:])
	if d, ok := ctx.Deadline(); ok {
		c.SetDeadline(d)
	}
	stop := context.AfterFunc(ctx, func() { c.SetDeadline(time.Unix(1, 0)) })
	defer stop()
	req := "GET " + path + " HTTP/1.1\r\nHost: " + host + "\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n" +
		"Sec-WebSocket-Key: " + key + "\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Protocol: " + protos +
		"\r\nUser-Agent: sallyport-alpn\r\n\r\n"
	fail := func(err error) (*wsConn, error) {
		if ctx.Err() != nil {
			err = errors.Join(err, ctx.Err())
		}
		return nil, err
	}
	if _, err := io.WriteString(c, req); err != nil {
		return fail(fmt.Errorf("%w: writing upgrade request: %w", ErrWebSocket, err))
	}
	budget := &budgetReader{r: c, n: 64 << 10}
	br := bufio.NewReaderSize(budget, 16<<10)
	resp, err := http.ReadResponse(br, &http.Request{Method: http.MethodGet})
	if err != nil {
		return fail(fmt.Errorf("%w: reading upgrade response: %w", ErrWebSocket, err))
	}
	resp.Body.Close()
	switch {
	case resp.StatusCode != http.StatusSwitchingProtocols:
		return fail(&UpgradeError{StatusCode: resp.StatusCode, Status: resp.Status})
	case !headerHasToken(resp.Header, "Upgrade", "websocket") || !headerHasToken(resp.Header, "Connection", "upgrade"):
		return fail(fmt.Errorf("%w: 101 without websocket upgrade headers", ErrWebSocket))
	case resp.Header.Get("Sec-WebSocket-Accept") != wsAccept(key):
		return fail(fmt.Errorf("%w: wrong Sec-WebSocket-Accept", ErrWebSocket))
	}
	proto := resp.Header.Get("Sec-WebSocket-Protocol")
	offered := strings.Split(protos, ",")
	for i := range offered {
		offered[i] = strings.TrimSpace(offered[i])
	}
	if !contains(offered, proto) {
		return fail(fmt.Errorf("%w: server chose subprotocol %q, not one of %q", ErrWebSocket, proto, protos))
	}
	if !stop() {
		return fail(context.Cause(ctx))
	}
	c.SetDeadline(time.Time{})
	budget.n = math.MaxInt64
	return newWSConn(c, br, true, proto), nil
}

// UpgradeError is returned by a Dialer when the upgrade endpoint answers
// with something other than 101 Switching Protocols.
type UpgradeError struct {
	StatusCode int
	Status     string
}

func (e *UpgradeError) Error() string {
	return fmt.Sprintf("alpn: connection upgrade refused: %s", e.Status)
}

// Unwrap returns ErrWebSocket.
func (e *UpgradeError) Unwrap() error { return ErrWebSocket }
