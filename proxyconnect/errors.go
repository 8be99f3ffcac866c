package proxyconnect

import (
	"errors"
	"fmt"
	"strings"
)

// Sentinel errors. A failed dial through a proxy returns a *ProxyError whose
// Unwrap yields one of these (its Kind) and the underlying cause, so callers
// can test with errors.Is.
var (
	// ErrInvalidConfig reports a proxy URL that cannot be used (bad syntax,
	// unsupported scheme, missing host) or an invalid Config field.
	ErrInvalidConfig = errors.New("proxyconnect: invalid configuration")
	// ErrProxyUnreachable reports that the connection to the proxy itself
	// could not be made (refused, no route, DNS failure for the proxy host)
	// or failed during the exchange (reset).
	ErrProxyUnreachable = errors.New("proxyconnect: proxy unreachable")
	// ErrProxyTLS reports a failed TLS handshake with an https:// proxy
	// (for example an untrusted certificate).
	ErrProxyTLS = errors.New("proxyconnect: TLS handshake with proxy failed")
	// ErrProxyAuth reports that the proxy rejected or demanded credentials:
	// HTTP 407 (or 401, which some proxies send instead), or a SOCKS5
	// authentication failure.
	ErrProxyAuth = errors.New("proxyconnect: proxy authentication failed")
	// ErrProxyRefused reports that the proxy answered but did not open the
	// tunnel: an HTTP status other than 2xx, 407 and 401 (403 when its access
	// rules deny the target, 502/503 when it cannot reach the target), or
	// a SOCKS5 reply other than success.
	ErrProxyRefused = errors.New("proxyconnect: proxy refused the tunnel")
	// ErrMalformedResponse reports an answer from the proxy that does not
	// follow the protocol, is cut short, or has a header larger than
	// MaxResponseHeaderBytes.
	ErrMalformedResponse = errors.New("proxyconnect: malformed proxy response")
	// ErrTimeout reports that the proxy leg (dial, TLS, CONNECT or SOCKS5
	// exchange) did not finish within Dialer.HandshakeTimeout or the
	// context's deadline.
	ErrTimeout = errors.New("proxyconnect: proxy handshake timed out")
)

// ProxyError describes a failed dial through a proxy. Its message names the
// proxy (with any password replaced by "xxxxx"), the target and the reason.
type ProxyError struct {
	// Proxy is the proxy URL with its password redacted.
	Proxy string
	// Target is the address the tunnel was asked to reach (host:port).
	Target string
	// Op is the step that failed: "dial", "tls", "connect", "socks5" or
	// "resolve".
	Op string
	// StatusCode is the proxy's HTTP status code, 0 when there was none.
	StatusCode int
	// Status is the proxy's answer in words: the HTTP status line after the
	// protocol ("403 Forbidden"), or the SOCKS5 reply. Empty when there was
	// none.
	Status string
	// Realm is the realm of the proxy's Basic challenge on a 407 (or 401),
	// if given.
	Realm string
	// Kind is one of the package's sentinel errors; nil when the dial was
	// canceled by its context, or when a socks5:// target name could not be
	// resolved (Op "resolve").
	Kind error
	// Err is the underlying cause, or nil.
	Err error
}

func (e *ProxyError) Error() string {
	var b strings.Builder
	b.WriteString("proxyconnect: ")
	if e.Op != "" {
		b.WriteString(e.Op)
		b.WriteByte(' ')
	}
	b.WriteString(e.Target)
	b.WriteString(" via ")
	b.WriteString(e.Proxy)
	if e.Kind != nil {
		b.WriteString(": ")
		b.WriteString(strings.TrimPrefix(e.Kind.Error(), "proxyconnect: "))
	}
	if e.Status != "" {
		fmt.Fprintf(&b, ": %s", e.Status)
	}
	if e.Realm != "" {
		fmt.Fprintf(&b, " (realm %q)", e.Realm)
	}
	if e.Err != nil {
		b.WriteString(": ")
		b.WriteString(e.Err.Error())
	}
	return b.String()
}

// Unwrap returns Kind and Err (those that are not nil).
func (e *ProxyError) Unwrap() []error {
	var errs []error
	if e.Kind != nil {
		errs = append(errs, e.Kind)
	}
	if e.Err != nil {
		errs = append(errs, e.Err)
	}
	return errs
}

// Timeout reports whether the error is a timeout, in the manner of
// net.Error.
func (e *ProxyError) Timeout() bool { return errors.Is(e, ErrTimeout) }

// Temporary is false; it exists to satisfy net.Error.
func (e *ProxyError) Temporary() bool { return false }

// sanitize makes text that came from the network safe to put in an error
// or a log line: control characters are replaced, the length is bounded and
// the password, if the proxy echoed it, is masked.
func sanitize(s, password string) string {
	const max = 200
	if len(s) > max {
		s = s[:max] + "..."
	}
	s = strings.Map(func(r rune) rune {
		if r < 0x20 || r == 0x7f {
			return '?'
		}
		return r
	}, s)
	if password != "" {
		s = strings.ReplaceAll(s, password, "xxxxx")
	}
	return s
}
