package mux

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"errors"
	"io"
	"strconv"
)

// Protocol is an application protocol told apart by its first bytes.
type Protocol uint8

const (
	// Unknown is any stream that matches none of the protocols below.
	Unknown Protocol = iota
	// TLS is a TLS handshake record (a ClientHello), any TLS version.
	TLS
	// SSH is an SSH version exchange ("SSH-").
	SSH
	// HTTP is an HTTP/1.x request line with a known method, or the
	// HTTP/2 prior-knowledge preface ("PRI * HTTP/2.0").
	HTTP
	// Postgres is a PostgreSQL startup packet: SSLRequest, GSSENCRequest,
	// CancelRequest or a protocol 3.x StartupMessage.
	Postgres

	numProtocols
)

var protocolNames = [...]string{"unknown", "tls", "ssh", "http", "postgres"}

// String returns the protocol's lower-case name ("tls", "ssh", ...).
func (p Protocol) String() string {
	if int(p) < len(protocolNames) {
		return protocolNames[p]
	}
	return "Protocol(" + strconv.Itoa(int(p)) + ")"
}

// Protocols lists every protocol Detect can report, Unknown excluded.
func Protocols() []Protocol { return []Protocol{TLS, SSH, HTTP, Postgres} }

// PostgreSQL startup codes (the second 32-bit word of the first packet).
const (
	pgCancelRequest = 80877102
	pgSSLRequest    = 80877103
	pgGSSENCRequest = 80877104
	pgMaxStartupLen = 10000 // the server's own MAX_STARTUP_PACKET_LENGTH
)

var httpMethods = [][]byte{
	[]byte("GET "), []byte("HEAD "), []byte("POST "), []byte("PUT "),
	[]byte("DELETE "), []byte("CONNECT "), []byte("OPTIONS "), []byte("TRACE "),
	[]byte("PATCH "), []byte("PRI * HTTP/2.0"),
	// WebDAV
	[]byte("PROPFIND "), []byte("PROPPATCH "), []byte("MKCOL "), []byte("COPY "),
	[]byte("MOVE "), []byte("LOCK "), []byte("UNLOCK "),
}

// maxDetectLen is the most bytes match ever needs to decide.
const maxDetectLen = 14 // len("PRI * HTTP/2.0")

// match classifies the first bytes of a stream. more is true when b is too
// short to decide (and then p is meaningless).
func match(b []byte) (p Protocol, more bool) {
	if len(b) == 0 {
		return Unknown, true
	}
	switch c := b[0]; {
	case c == 0x16: // TLS handshake record: 0x16, major version 3, minor 0..4
		if len(b) < 3 {
			return Unknown, true
		}
		if b[1] == 3 && b[2] <= 4 {
			return TLS, false
		}
		return Unknown, false
	case c == 0: // Postgres: big-endian length < 16 MiB, then a code
		if len(b) < 8 {
			return Unknown, true
		}
		n := binary.BigEndian.Uint32(b[0:4])
		code := binary.BigEndian.Uint32(b[4:8])
		switch {
		case code == pgSSLRequest || code == pgGSSENCRequest:
			if n == 8 {
				return Postgres, false
			}
		case code == pgCancelRequest:
			if n == 16 {
				return Postgres, false
			}
		case code>>16 == 3: // StartupMessage, protocol 3.x
			if n > 8 && n <= pgMaxStartupLen {
				return Postgres, false
			}
		}
		return Unknown, false
	case c == 'S':
		const sig = "SSH-"
		k := min(len(b), len(sig))
		if string(b[:k]) != sig[:k] {
			return Unknown, false
		}
		if k < len(sig) {
			return Unknown, true
		}
		return SSH, false
	}
	more = false
	for _, m := range httpMethods {
		k := min(len(b), len(m))
		if !bytes.Equal(b[:k], m[:k]) {
			continue
		}
		if k == len(m) {
			return HTTP, false
		}
		more = true
	}
	return Unknown, more
}

// Detect reports which protocol the stream in br speaks, judging by its
// first bytes, without consuming them: they stay buffered in br for
// whoever reads next. It reads only as many bytes as it needs to decide
// (at most 14), asking for one more byte only while the bytes seen so far
// could still begin a known protocol, so it does not wait for bytes a
// client would not send.
//
// A stream that matches no protocol yields Unknown and a nil error. A
// stream that ends before its first byte yields io.EOF; one that ends
// while undecided yields Unknown and io.ErrUnexpectedEOF; other read
// errors (a deadline, for example) are returned as they are. Detect does
// not set deadlines: the caller does, on the underlying connection.
func Detect(br *bufio.Reader) (Protocol, error) {
	if br.Size() < maxDetectLen {
		return Unknown, errSmallReader
	}
	n := 1
	for {
		b, err := br.Peek(max(n, min(br.Buffered(), maxDetectLen)))
		if p, more := match(b); !more {
			return p, nil
		}
		if err != nil {
			if errors.Is(err, io.EOF) && len(b) > 0 {
				err = io.ErrUnexpectedEOF
			}
			return Unknown, err
		}
		n = len(b) + 1
	}
}
