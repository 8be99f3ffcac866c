package proxyconnect

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"strings"
)

// MaxResponseHeaderBytes bounds the proxy's answer to CONNECT: status line
// and header fields together. A longer answer fails with
// ErrMalformedResponse.
const MaxResponseHeaderBytes = 16 << 10

// response is the part of a proxy's answer to CONNECT that the dialer uses.
type response struct {
	code   int      // status code, 100..999
	reason string   // reason phrase, possibly empty
	auth   []string // Proxy-Authenticate values
	www    []string // WWW-Authenticate values (some proxies answer 401)
}

// readResponse reads an HTTP/1.x response header from r, reading at most
// limit bytes. It returns the parsed header, the header length, and the bytes
// read past the header (the first bytes of the tunnel), which the caller
// must not lose.
func readResponse(r io.Reader, limit int) (resp response, hdrLen int, rest []byte, err error) {
	buf := make([]byte, 0, min(limit, 1024))
	scanned := 0
	for {
		if len(buf) == cap(buf) {
			if len(buf) >= limit {
				return resp, 0, nil, fmt.Errorf("header larger than %d bytes", limit)
			}
			nb := make([]byte, len(buf), min(limit, 2*cap(buf)))
			copy(nb, buf)
			buf = nb
		}
		n, rerr := r.Read(buf[len(buf):cap(buf)])
		buf = buf[:len(buf)+n]
		if end := headerEnd(buf, scanned); end >= 0 {
			resp, err = parseResponse(buf[:end])
			if err != nil {
				return resp, 0, nil, err
			}
			return resp, end, buf[end:], nil
		}
		scanned = max(0, len(buf)-3)
		if rerr != nil {
			if rerr == io.EOF {
				rerr = io.ErrUnexpectedEOF
			}
			return resp, 0, nil, fmt.Errorf("reading response after %d bytes: %w", len(buf), rerr)
		}
	}
}

// headerEnd returns the length of the header including its terminating
// empty line ("\r\n\r\n" or "\n\n"), or -1 when b does not hold it yet.
// The search starts at from.
func headerEnd(b []byte, from int) int {
	for i := from; i < len(b); i++ {
		if b[i] != '\n' {
			continue
		}
		if i+1 < len(b) && b[i+1] == '\n' {
			return i + 2
		}
		if i+2 < len(b) && b[i+1] == '\r' && b[i+2] == '\n' {
			return i + 3
		}
	}
	return -1
}

var errMalformed = errors.New("malformed header")

// parseResponse parses a complete response header (status line and fields,
// ending in an empty line).
func parseResponse(h []byte) (response, error) {
	var resp response
	lines := bytes.Split(h, []byte("\n"))
	for i, l := range lines {
		lines[i] = bytes.TrimSuffix(l, []byte("\r"))
	}
	status := lines[0]
	// "HTTP/1.x SP 3DIGIT [SP reason]"
	if len(status) < 12 || !bytes.HasPrefix(status, []byte("HTTP/1.")) ||
		status[7] < '0' || status[7] > '9' || status[8] != ' ' {
		return resp, fmt.Errorf("%w: bad status line %q", errMalformed, truncate(status))
	}
	code := 0
	for _, c := range status[9:12] {
		if c < '0' || c > '9' {
			return resp, fmt.Errorf("%w: bad status code in %q", errMalformed, truncate(status))
		}
		code = code*10 + int(c-'0')
	}
	if code < 100 {
		return resp, fmt.Errorf("%w: bad status code in %q", errMalformed, truncate(status))
	}
	if len(status) > 12 {
		if status[12] != ' ' {
			return resp, fmt.Errorf("%w: bad status line %q", errMalformed, truncate(status))
		}
		resp.reason = string(bytes.TrimSpace(status[13:]))
	}
	resp.code = code
	for _, l := range lines[1:] {
		if len(l) == 0 {
			continue // the terminating empty line(s)
		}
		if l[0] == ' ' || l[0] == '\t' {
			continue // obsolete line folding: a continuation we do not need
		}
		colon := bytes.IndexByte(l, ':')
		if colon <= 0 || !isToken(l[:colon]) {
			return resp, fmt.Errorf("%w: bad header line %q", errMalformed, truncate(l))
		}
		switch name := string(l[:colon]); {
		case strings.EqualFold(name, "Proxy-Authenticate"):
			resp.auth = append(resp.auth, string(bytes.TrimSpace(l[colon+1:])))
		case strings.EqualFold(name, "WWW-Authenticate"):
			resp.www = append(resp.www, string(bytes.TrimSpace(l[colon+1:])))
		}
	}
	return resp, nil
}

func isToken(b []byte) bool {
	for _, c := range b {
		if c <= ' ' || c >= 0x7f || strings.IndexByte("()<>@,;:\\\"/[]?={}", c) >= 0 {
			return false
		}
	}
	return true
}

func truncate(b []byte) []byte {
	if len(b) > 64 {
		return b[:64]
	}
	return b
}

// realm returns the realm of the first challenge that names one, preferring
// a Basic challenge. Only the first challenge of each header value is read.
func realm(challenges []string) string {
	var first string
	for _, ch := range challenges {
		r := realmParam(ch)
		if r == "" {
			continue
		}
		scheme, _, _ := strings.Cut(ch, " ")
		if strings.EqualFold(scheme, "Basic") {
			return r
		}
		if first == "" {
			first = r
		}
	}
	return first
}

func realmParam(ch string) string {
	// An ASCII case-insensitive search: strings.ToLower may change the
	// length of invalid UTF-8, so its indexes do not apply to ch.
	i := -1
	for j := 0; j+len("realm=") <= len(ch); j++ {
		if strings.EqualFold(ch[j:j+len("realm=")], "realm=") {
			i = j
			break
		}
	}
	if i < 0 {
		return ""
	}
	v := ch[i+len("realm="):]
	if !strings.HasPrefix(v, `"`) {
		end := strings.IndexAny(v, ", ")
		if end >= 0 {
			v = v[:end]
		}
		return v
	}
	var b strings.Builder
	for j := 1; j < len(v); j++ {
		switch v[j] {
		case '\\':
			if j+1 < len(v) {
				j++
				b.WriteByte(v[j])
			}
		case '"':
			return b.String()
		default:
			b.WriteByte(v[j])
		}
	}
	return b.String()
}
