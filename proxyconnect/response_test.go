package proxyconnect

import (
	"bytes"
	"io"
	"strings"
	"testing"
)

// chunkReader returns at most n bytes per Read.
type chunkReader struct {
	b []byte
	n int
}

func (r *chunkReader) Read(p []byte) (int, error) {
	if len(r.b) == 0 {
		return 0, io.EOF
	}
	k := min(len(p), r.n, len(r.b))
	copy(p, r.b[:k])
	r.b = r.b[k:]
	return k, nil
}

func TestReadResponse(t *testing.T) {
	for _, tc := range []struct {
		name   string
		in     string
		code   int
		reason string
		rest   string
		realm  string
		err    bool
	}{
		{name: "squid 200", in: "HTTP/1.1 200 Connection established\r\n\r\n", code: 200, reason: "Connection established"},
		{name: "no reason", in: "HTTP/1.0 200\r\n\r\n", code: 200},
		{name: "bare LF", in: "HTTP/1.1 200 OK\nServer: x\n\nrest", code: 200, reason: "OK", rest: "rest"},
		{name: "tunnel bytes", in: "HTTP/1.1 200 OK\r\n\r\nSSH-2.0-x\r\n", code: 200, reason: "OK", rest: "SSH-2.0-x\r\n"},
		{name: "407 realm", in: "HTTP/1.1 407 Proxy Authentication Required\r\nproxy-authenticate: Basic realm=\"Squid\"\r\n\r\n", code: 407, reason: "Proxy Authentication Required", realm: "Squid"},
		{name: "realm token", in: "HTTP/1.1 407 x\r\nProxy-Authenticate: Basic realm=corp, charset=\"UTF-8\"\r\n\r\n", code: 407, reason: "x", realm: "corp"},
		{name: "folded header ignored", in: "HTTP/1.1 200 OK\r\nX-A: 1\r\n  continued\r\n\r\n", code: 200, reason: "OK"},
		{name: "HTTP/2 status line", in: "HTTP/2 200\r\n\r\n", err: true},
		{name: "short code", in: "HTTP/1.1 20 OK\r\n\r\n", err: true},
		{name: "code below 100", in: "HTTP/1.1 099 OK\r\n\r\n", err: true},
		{name: "no space after code", in: "HTTP/1.1 200OK\r\n\r\n", err: true},
		{name: "header without colon", in: "HTTP/1.1 200 OK\r\nbad\r\n\r\n", err: true},
		{name: "space in header name", in: "HTTP/1.1 200 OK\r\nBad Name: x\r\n\r\n", err: true},
		{name: "EOF in header", in: "HTTP/1.1 200 OK\r\n", err: true},
		{name: "empty", in: "", err: true},
		{name: "too large", in: "HTTP/1.1 200 OK\r\n" + strings.Repeat("A: b\r\n", 4000) + "\r\n", err: true},
	} {
		for _, chunk := range []int{1, 7, 4096} {
			t.Run(tc.name, func(t *testing.T) {
				r := &chunkReader{b: []byte(tc.in), n: chunk}
				resp, hdrLen, rest, err := readResponse(r, MaxResponseHeaderBytes)
				if tc.err {
					if err == nil {
						t.Fatalf("no error; got %+v", resp)
					}
					return
				}
				if err != nil {
					t.Fatal(err)
				}
				if resp.code != tc.code || resp.reason != tc.reason || realm(resp.auth) != tc.realm {
					t.Fatalf("got code %d reason %q realm %q", resp.code, resp.reason, realm(resp.auth))
				}
				// rest plus the unread input is everything after the header.
				if hdrLen+len(tc.rest) != len(tc.in) || string(rest)+string(r.b) != tc.rest {
					t.Fatalf("hdrLen %d, rest %q, unread %q; input %q", hdrLen, rest, r.b, tc.in)
				}
			})
		}
	}
}

// FuzzReadResponse checks that the CONNECT response reader never panics,
// never reads more than its limit, and never loses a byte: header length
// plus returned rest equals what it consumed, and rest is exactly the
// input that follows the header.
func FuzzReadResponse(f *testing.F) {
	f.Add([]byte("HTTP/1.1 200 Connection established\r\n\r\n"), uint8(0))
	f.Add([]byte("HTTP/1.1 200 OK\r\n\r\nSSH-2.0-OpenSSH\r\n"), uint8(3))
	f.Add([]byte("HTTP/1.0 407 Proxy Authentication Required\r\nProxy-Authenticate: Basic realm=\"a\\\"b\"\r\n\r\n"), uint8(1))
	f.Add([]byte("HTTP/1.1 403 Forbidden\nContent-Length: 0\n\n"), uint8(255))
	f.Add([]byte("HTTP/1.1 200 OK\r\nX: y\r\n z\r\n\r\n\x16\x03\x01"), uint8(9))
	f.Add([]byte("SSH-2.0-x\r\n\r\n"), uint8(2))
	const limit = 512
	f.Fuzz(func(t *testing.T, data []byte, chunk uint8) {
		r := &chunkReader{b: data, n: int(chunk) + 1}
		resp, hdrLen, rest, err := readResponse(r, limit)
		consumed := len(data) - len(r.b)
		if consumed > limit {
			t.Fatalf("consumed %d bytes, limit %d", consumed, limit)
		}
		if err != nil {
			return
		}
		if hdrLen+len(rest) != consumed {
			t.Fatalf("header %d + rest %d != consumed %d", hdrLen, len(rest), consumed)
		}
		if !bytes.Equal(rest, data[hdrLen:consumed]) {
			t.Fatalf("rest %q is not the input after the header %q", rest, data[hdrLen:consumed])
		}
		if resp.code < 100 || resp.code > 999 {
			t.Fatalf("code %d", resp.code)
		}
		if !bytes.HasPrefix(data, []byte("HTTP/1.")) {
			t.Fatalf("accepted %q", data[:hdrLen])
		}
		_ = realm(resp.auth)
		_ = realm(resp.www)
		_ = sanitize(resp.reason, "pw")
	})
}

func TestRealm(t *testing.T) {
	for _, tc := range []struct {
		in   []string
		want string
	}{
		{nil, ""},
		{[]string{`Basic realm="a b"`}, "a b"},
		{[]string{`Digest realm="d", nonce="x"`, `Basic realm="b"`}, "b"},
		{[]string{`Negotiate`, `NTLM`}, ""},
		{[]string{`Digest REALM="d"`}, "d"},
		{[]string{`Basic realm="unterminated`}, "unterminated"},
	} {
		if got := realm(tc.in); got != tc.want {
			t.Errorf("realm(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}
