package proxyconnect

import (
	"context"
	"crypto/tls"
	"encoding/base64"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/url"
	"time"
)

// DefaultHandshakeTimeout bounds the proxy leg of a dial when
// Dialer.HandshakeTimeout is zero.
const DefaultHandshakeTimeout = 30 * time.Second

// ContextDialer dials a network address. *net.Dialer implements it.
type ContextDialer interface {
	DialContext(ctx context.Context, network, addr string) (net.Conn, error)
}

// Dialer dials TCP addresses directly or through the proxy chosen for each
// target. The zero value reads HTTPS_PROXY, HTTP_PROXY and NO_PROXY at every
// dial and dials with a zero net.Dialer. A Dialer must not be modified
// while dials are running; it is safe for concurrent use otherwise.
type Dialer struct {
	// Config chooses the proxy per target. nil means FromEnvironment(),
	// read at each dial. A non-nil Config replaces the environment
	// entirely, so &Config{} dials everything directly.
	Config *Config

	// Proxy, when not nil, chooses the proxy for each target instead of
	// Config, in the manner of http.Transport.Proxy: it returns the proxy
	// URL (same forms as Config.HTTPSProxy), or nil to dial directly.
	Proxy func(target string) (*url.URL, error)

	// Forward dials the proxy, and the target when no proxy applies. nil
	// means a zero *net.Dialer.
	Forward ContextDialer

	// TLSConfig is used for the TLS connection to https:// proxies. nil
	// means the system roots. ServerName defaults to the proxy's host name
	// and NextProtos is always {"http/1.1"}; the config is cloned, never
	// modified.
	TLSConfig *tls.Config

	// HandshakeTimeout bounds the whole proxy leg: connecting to the
	// proxy, TLS with the proxy, and the CONNECT or SOCKS5 exchange. Zero
	// means DefaultHandshakeTimeout; negative means no bound other than
	// the context. Direct dials are bounded by the context (and Forward)
	// only.
	HandshakeTimeout time.Duration

	// Logger receives one debug record per dial naming the target, the
	// proxy (never its password) and, on failure, the error. nil discards.
	Logger *slog.Logger
}

// ProxyFor returns the proxy URL that a dial to target ("host:port") would
// use, or nil when it would go direct. The URL may hold a password: log
// it with url.URL.Redacted.
func (d *Dialer) ProxyFor(target string) (*url.URL, error) {
	if d.Proxy != nil {
		u, err := d.Proxy(target)
		if err != nil || u == nil {
			return nil, err
		}
		return ParseProxyURL(u.String())
	}
	cfg := d.Config
	if cfg == nil {
		cfg = FromEnvironment()
	}
	choose, err := cfg.compile()
	if err != nil {
		return nil, err
	}
	return choose(target)
}

// Dial is DialContext with context.Background().
func (d *Dialer) Dial(network, addr string) (net.Conn, error) {
	return d.DialContext(context.Background(), network, addr)
}

// DialContext connects to addr ("host:port") on network "tcp", "tcp4" or
// "tcp6", directly or through the proxy that ProxyFor chooses. Through a
// proxy the result is a *Conn (see Via); a direct connection is what
// Forward returned, unwrapped. Other networks are dialed directly by
// Forward. Errors of the proxy leg are *ProxyError values.
func (d *Dialer) DialContext(ctx context.Context, network, addr string) (net.Conn, error) {
	switch network {
	case "tcp", "tcp4", "tcp6":
	default:
		return d.forward().DialContext(ctx, network, addr)
	}
	proxy, err := d.ProxyFor(addr)
	if err != nil {
		return nil, err
	}
	if proxy == nil {
		d.log(ctx, "proxyconnect: dial direct", slog.String("target", addr))
		return d.forward().DialContext(ctx, network, addr)
	}
	c, err := d.dialVia(ctx, proxy, addr)
	if err != nil {
		d.log(ctx, "proxyconnect: dial via proxy failed", slog.String("target", addr),
			slog.String("proxy", proxy.Redacted()), slog.String("error", err.Error()))
		return nil, err
	}
	d.log(ctx, "proxyconnect: dialed via proxy", slog.String("target", addr), slog.String("proxy", proxy.Redacted()))
	return c, nil
}

func (d *Dialer) forward() ContextDialer {
	if d.Forward != nil {
		return d.Forward
	}
	return &net.Dialer{}
}

func (d *Dialer) log(ctx context.Context, msg string, attrs ...slog.Attr) {
	if d.Logger != nil {
		d.Logger.LogAttrs(ctx, slog.LevelDebug, msg, attrs...)
	}
}

// longAgo is a deadline in the past, used to interrupt blocked I/O.
var longAgo = time.Unix(1, 0)

func (d *Dialer) dialVia(ctx context.Context, proxy *url.URL, target string) (net.Conn, error) {
	pe := &ProxyError{Proxy: proxy.Redacted(), Target: target}
	for i := 0; i < len(target); i++ {
		if c := target[i]; c <= ' ' || c == 0x7f {
			pe.Kind, pe.Err = ErrInvalidConfig, errors.New("target contains a control character or space")
			return nil, pe
		}
	}
	timeout := d.HandshakeTimeout
	if timeout == 0 {
		timeout = DefaultHandshakeTimeout
	}
	hctx := ctx
	if timeout > 0 {
		var cancel context.CancelFunc
		hctx, cancel = context.WithTimeoutCause(ctx, timeout, ErrTimeout)
		defer cancel()
	}
	// fail fills in pe for an error of step op. A canceled or expired
	// context wins over the I/O error it caused.
	fail := func(op string, kind error, err error) error {
		pe.Op = op
		switch {
		case ctx.Err() != nil:
			pe.Kind, pe.Err = nil, ctx.Err()
			if errors.Is(ctx.Err(), context.DeadlineExceeded) {
				pe.Kind = ErrTimeout
			}
		case hctx.Err() != nil || isTimeout(err):
			pe.Kind, pe.Err = ErrTimeout, fmt.Errorf("no answer within %v", timeout)
			if dl, ok := ctx.Deadline(); ok && !time.Now().Before(dl) {
				// The connection's deadline (ctx's) fired before ctx's
				// own timer did.
				pe.Err = context.DeadlineExceeded
			}
		default:
			pe.Kind, pe.Err = kind, err
		}
		return pe
	}

	if proxy.Scheme == "socks5" {
		// socks5:// resolves the target locally; socks5h:// lets the proxy.
		t, err := resolve(hctx, target)
		if err != nil {
			return nil, fail("resolve", nil, err)
		}
		target = t
	}

	raw, err := d.forward().DialContext(hctx, "tcp", proxyAddr(proxy))
	if err != nil {
		return nil, fail("dial", ErrProxyUnreachable, err)
	}
	conn := raw
	if dl, ok := hctx.Deadline(); ok {
		conn.SetDeadline(dl)
	}
	stop := context.AfterFunc(hctx, func() { conn.SetDeadline(longAgo) })
	ok := false
	defer func() {
		if !ok {
			stop()
			conn.Close()
		}
	}()

	if proxy.Scheme == "https" {
		cfg := &tls.Config{}
		if d.TLSConfig != nil {
			cfg = d.TLSConfig.Clone()
		}
		if cfg.ServerName == "" {
			cfg.ServerName = proxy.Hostname()
		}
		cfg.NextProtos = []string{"http/1.1"}
		tc := tls.Client(raw, cfg)
		if err := tc.HandshakeContext(hctx); err != nil {
			return nil, fail("tls", ErrProxyTLS, err)
		}
		conn = tc
	}

	var early []byte
	switch proxy.Scheme {
	case "socks5", "socks5h":
		err = d.socks5(conn, proxy, target, pe)
	default:
		early, err = d.connect(conn, proxy, target, pe)
	}
	if err != nil {
		if pe.Status != "" && ctx.Err() == nil {
			return nil, pe // the proxy gave a definite answer
		}
		kind := ErrMalformedResponse // cut short, not HTTP, too large
		var opErr *net.OpError
		if errors.As(err, &opErr) {
			kind = ErrProxyUnreachable // the connection failed mid-exchange
		}
		return nil, fail(pe.Op, kind, err)
	}
	if !stop() {
		// The context ended while the exchange finished; the deadline may
		// already be in the past.
		return nil, fail(pe.Op, ErrTimeout, context.Cause(hctx))
	}
	if err := conn.SetDeadline(time.Time{}); err != nil {
		return nil, fail(pe.Op, ErrProxyUnreachable, err)
	}
	ok = true
	return newConn(conn, proxy, early), nil
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

// connect runs the HTTP CONNECT exchange. On a non-2xx answer it fills in
// pe (StatusCode, Kind, ...) and returns it; on a transport or parse error
// it returns that error for the caller to classify.
func (d *Dialer) connect(conn net.Conn, proxy *url.URL, target string, pe *ProxyError) ([]byte, error) {
	pe.Op = "connect"
	req := make([]byte, 0, 256)
	req = append(req, "CONNECT "...)
	req = append(req, target...)
	req = append(req, " HTTP/1.1\r\nHost: "...)
	req = append(req, target...)
	req = append(req, "\r\n"...)
	password := ""
	if proxy.User != nil {
		password, _ = proxy.User.Password()
		cred := proxy.User.Username() + ":" + password
		req = append(req, "Proxy-Authorization: Basic "...)
		req = base64.StdEncoding.AppendEncode(req, []byte(cred))
		req = append(req, "\r\n"...)
	}
	req = append(req, "\r\n"...)
	if _, err := conn.Write(req); err != nil {
		return nil, err
	}
	resp, _, rest, err := readResponse(conn, MaxResponseHeaderBytes)
	if err != nil {
		return nil, err
	}
	if resp.code/100 == 2 {
		return rest, nil
	}
	pe.StatusCode = resp.code
	pe.Status = sanitize(fmt.Sprintf("%d %s", resp.code, resp.reason), password)
	switch resp.code {
	case 407, 401:
		// 401 is not meant for proxies, but some (tinyproxy 1.11) send it
		// with WWW-Authenticate when proxy credentials are wrong.
		pe.Kind = ErrProxyAuth
		challenges := resp.auth
		if resp.code == 401 {
			challenges = resp.www
		}
		pe.Realm = sanitize(realm(challenges), password)
		if proxy.User == nil {
			pe.Err = errors.New("no credentials in the proxy URL")
		}
	default:
		pe.Kind = ErrProxyRefused
	}
	return nil, pe
}
