package alpn

import (
	"bytes"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"time"
)

// Hello is what the router read from a ClientHello, and how it routed it.
type Hello struct {
	// ServerName is the SNI, lower-cased and without a trailing dot; empty
	// when the client sent none.
	ServerName string
	// Protocols are the ALPN protocols the client offered, in its order.
	Protocols []string
	// Protocol is the offered protocol that selected the route; empty when
	// the route matched on SNI only or is the default route.
	Protocol string
	// Route is the Name of the route that took the connection.
	Route string
	// Upgraded is true when the connection arrived inside a connection
	// upgrade (WebSocket) through the web route.
	Upgraded bool
}

// DefaultMaxHelloBytes bounds how much the router reads while looking for
// a ClientHello when Config.MaxHelloBytes is zero.
const DefaultMaxHelloBytes = 64 << 10

// Errors reading the ClientHello. Errors returned by the router wrap one of
// them (and, for I/O failures, the I/O error, such as
// os.ErrDeadlineExceeded).
var (
	// ErrNotTLS means the first bytes are not a TLS handshake record.
	ErrNotTLS = errors.New("alpn: not a TLS handshake")
	// ErrBadHello means the ClientHello is malformed, too large or cut
	// short.
	ErrBadHello = errors.New("alpn: malformed ClientHello")
)

// errHelloRead stops the handshake once the ClientHello is parsed.
var errHelloRead = errors.New("alpn: hello read")

// recordingConn feeds crypto/tls from the client connection and keeps
// every byte it read, so they can be replayed. It never writes.
type recordingConn struct {
	net.Conn
	r       io.Reader
	buf     bytes.Buffer
	readErr error
}

func (c *recordingConn) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.buf.Write(p[:n])
	if err != nil && c.readErr == nil {
		c.readErr = err
	}
	return n, err
}

func (c *recordingConn) Write(p []byte) (int, error)        { return 0, io.ErrClosedPipe }
func (c *recordingConn) Close() error                       { return nil }
func (c *recordingConn) SetDeadline(t time.Time) error      { return nil }
func (c *recordingConn) SetReadDeadline(t time.Time) error  { return nil }
func (c *recordingConn) SetWriteDeadline(t time.Time) error { return nil }

// readHello reads a ClientHello from c without consuming it: it returns
// what it learnt and every byte it read, which the caller replays. At most
// max bytes are read. The caller sets the read deadline.
func readHello(c net.Conn, max int) (*Hello, []byte, error) {
	if max <= 0 {
		max = DefaultMaxHelloBytes
	}
	rc := &recordingConn{Conn: c, r: io.LimitReader(c, int64(max))}
	// A quick look at the record header tells plain text apart at once.
	var hdr [1]byte
	if _, err := io.ReadFull(rc, hdr[:]); err != nil {
		return nil, rc.buf.Bytes(), fmt.Errorf("%w: %w", ErrBadHello, err)
	}
	if hdr[0] != 0x16 {
		return nil, rc.buf.Bytes(), ErrNotTLS
	}
	var h *Hello
	cfg := &tls.Config{
		GetConfigForClient: func(chi *tls.ClientHelloInfo) (*tls.Config, error) {
			h = &Hello{
				ServerName: strings.TrimSuffix(strings.ToLower(chi.ServerName), "."),
				Protocols:  append([]string(nil), chi.SupportedProtos...),
			}
			return nil, errHelloRead
		},
	}
	err := tls.Server(&prefixConn{recordingConn: rc, prefix: hdr[:]}, cfg).Handshake()
	if h != nil {
		return h, rc.buf.Bytes(), nil
	}
	if rc.readErr != nil && rc.readErr != io.EOF {
		return nil, rc.buf.Bytes(), fmt.Errorf("%w: %w", ErrBadHello, rc.readErr)
	}
	if rc.buf.Len() >= max {
		return nil, rc.buf.Bytes(), fmt.Errorf("%w: more than %d bytes", ErrBadHello, max)
	}
	return nil, rc.buf.Bytes(), fmt.Errorf("%w: %v", ErrBadHello, err)
}

// prefixConn hands crypto/tls the byte readHello looked at first.
type prefixConn struct {
	*recordingConn
	prefix []byte
}

func (c *prefixConn) Read(p []byte) (int, error) {
	if len(c.prefix) > 0 {
		n := copy(p, c.prefix)
		c.prefix = c.prefix[n:]
		return n, nil
	}
	return c.recordingConn.Read(p)
}
