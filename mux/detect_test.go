package mux

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"errors"
	"io"
	"testing"
	"testing/iotest"
)

func pgPacket(n, code uint32, rest ...byte) []byte {
	b := binary.BigEndian.AppendUint32(nil, n)
	b = binary.BigEndian.AppendUint32(b, code)
	return append(b, rest...)
}

var detectCases = []struct {
	name string
	in   []byte
	want Protocol
	err  error
}{
	{"TLS 1.2 record", []byte("\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03"), TLS, nil},
	{"TLS 1.0 record", []byte("\x16\x03\x00\x00\x10"), TLS, nil},
	{"TLS bad major", []byte("\x16\x02\x01\x00\x10"), Unknown, nil},
	{"TLS bad minor", []byte("\x16\x03\x09\x00\x10"), Unknown, nil},
	{"SSH", []byte("SSH-2.0-OpenSSH_9.2\r\n"), SSH, nil},
	{"SSH exactly four bytes", []byte("SSH-"), SSH, nil},
	{"not SSH", []byte("SSX-2.0\r\n"), Unknown, nil},
	{"HTTP GET", []byte("GET / HTTP/1.1\r\nHost: x\r\n\r\n"), HTTP, nil},
	{"HTTP POST", []byte("POST /x HTTP/1.1\r\n"), HTTP, nil},
	{"HTTP PUT", []byte("PUT /x HTTP/1.1\r\n"), HTTP, nil},
	{"HTTP PATCH", []byte("PATCH /x HTTP/1.1\r\n"), HTTP, nil},
	{"HTTP CONNECT", []byte("CONNECT host:443 HTTP/1.1\r\n"), HTTP, nil},
	{"HTTP OPTIONS", []byte("OPTIONS * HTTP/1.1\r\n"), HTTP, nil},
	{"HTTP DELETE", []byte("DELETE /x HTTP/1.1\r\n"), HTTP, nil},
	{"HTTP HEAD", []byte("HEAD / HTTP/1.0\r\n"), HTTP, nil},
	{"HTTP TRACE", []byte("TRACE / HTTP/1.0\r\n"), HTTP, nil},
	{"WebDAV PROPFIND", []byte("PROPFIND / HTTP/1.1\r\n"), HTTP, nil},
	{"WebDAV PROPPATCH", []byte("PROPPATCH / HTTP/1.1\r\n"), HTTP, nil},
	{"h2c preface", []byte("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"), HTTP, nil},
	{"lower-case method", []byte("get / HTTP/1.1\r\n"), Unknown, nil},
	{"method without space", []byte("GETX / HTTP/1.1\r\n"), Unknown, nil},
	{"Postgres SSLRequest", pgPacket(8, pgSSLRequest), Postgres, nil},
	{"Postgres GSSENCRequest", pgPacket(8, pgGSSENCRequest), Postgres, nil},
	{"Postgres CancelRequest", pgPacket(16, pgCancelRequest, 0, 0, 0, 1, 0, 0, 0, 2), Postgres, nil},
	{"Postgres StartupMessage 3.0", pgPacket(41, 196608, []byte("user\x00postgres\x00database\x00test\x00\x00")...), Postgres, nil},
	{"Postgres StartupMessage 3.2", pgPacket(9, 196610, 0), Postgres, nil},
	{"Postgres SSLRequest wrong length", pgPacket(12, pgSSLRequest), Unknown, nil},
	{"Postgres CancelRequest wrong length", pgPacket(8, pgCancelRequest), Unknown, nil},
	{"Postgres protocol 2", pgPacket(296, 131072), Unknown, nil},
	{"Postgres startup too long", pgPacket(20000, 196608), Unknown, nil},
	{"binary junk", []byte{0x80, 0x01, 0x02}, Unknown, nil},
	{"empty", nil, Unknown, io.EOF},
	{"short TLS", []byte{0x16, 0x03}, Unknown, io.ErrUnexpectedEOF},
	{"short method", []byte("PO"), Unknown, io.ErrUnexpectedEOF},
	{"short Postgres", []byte{0, 0, 0, 8}, Unknown, io.ErrUnexpectedEOF},
}

func TestDetect(t *testing.T) {
	for _, tc := range detectCases {
		t.Run(tc.name, func(t *testing.T) {
			for _, oneByte := range []bool{false, true} {
				var r io.Reader = bytes.NewReader(tc.in)
				if oneByte {
					r = iotest.OneByteReader(r)
				}
				br := bufio.NewReader(r)
				got, err := Detect(br)
				if got != tc.want || !errors.Is(err, tc.err) {
					t.Fatalf("Detect (one byte at a time: %v) = %v, %v; want %v, %v", oneByte, got, err, tc.want, tc.err)
				}
				rest, _ := io.ReadAll(br)
				if !bytes.Equal(rest, tc.in) {
					t.Fatalf("Detect consumed bytes: left %q of %q", rest, tc.in)
				}
			}
		})
	}
}

// TestDetectDoesNotOverread feeds the first bytes of each protocol and
// then blocks: Detect must decide from what it has.
func TestDetectDoesNotOverread(t *testing.T) {
	for _, in := range []string{"\x16\x03\x01", "SSH-", "GET ", "PRI * HTTP/2.0", string(pgPacket(8, pgSSLRequest))} {
		r := io.MultiReader(bytes.NewReader([]byte(in)), blockingReader{})
		if p, err := Detect(bufio.NewReader(r)); err != nil || p == Unknown {
			t.Errorf("Detect(%q) = %v, %v", in, p, err)
		}
	}
}

type blockingReader struct{}

func (blockingReader) Read([]byte) (int, error) { panic("read past the bytes needed") }

func TestProtocolString(t *testing.T) {
	for p, want := range map[Protocol]string{Unknown: "unknown", TLS: "tls", SSH: "ssh", HTTP: "http", Postgres: "postgres", 99: "Protocol(99)"} {
		if got := p.String(); got != want {
			t.Errorf("%d.String() = %q, want %q", p, got, want)
		}
	}
}

func FuzzDetect(f *testing.F) {
	for _, tc := range detectCases {
		f.Add(tc.in)
	}
	f.Fuzz(func(t *testing.T, in []byte) {
		got, err := Detect(bufio.NewReader(bytes.NewReader(in)))
		// Fed one byte at a time, the answer must be the same.
		got1, err1 := Detect(bufio.NewReader(iotest.OneByteReader(bytes.NewReader(in))))
		if got != got1 || (err == nil) != (err1 == nil) {
			t.Fatalf("Detect = %v, %v; one byte at a time %v, %v", got, err, got1, err1)
		}
		switch got {
		case TLS:
			if len(in) < 3 || in[0] != 0x16 || in[1] != 3 {
				t.Fatalf("TLS for %q", in)
			}
		case SSH:
			if !bytes.HasPrefix(in, []byte("SSH-")) {
				t.Fatalf("SSH for %q", in)
			}
		case HTTP:
			ok := false
			for _, m := range httpMethods {
				ok = ok || bytes.HasPrefix(in, m)
			}
			if !ok {
				t.Fatalf("HTTP for %q", in)
			}
		case Postgres:
			if len(in) < 8 || in[0] != 0 {
				t.Fatalf("Postgres for %q", in)
			}
		case Unknown:
			if err == nil && len(in) == 0 {
				t.Fatal("no error for empty input")
			}
		default:
			t.Fatalf("protocol %v", got)
		}
	})
}
