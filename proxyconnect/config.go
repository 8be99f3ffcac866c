package proxyconnect

import (
	"fmt"
	"net"
	"net/url"
	"strconv"
	"strings"

	"golang.org/x/net/http/httpproxy"
)

// Config chooses, per target, whether to dial directly or through a proxy.
// Its fields have the meaning of the environment variables of the same
// name, as interpreted by golang.org/x/net/http/httpproxy. The zero Config
// dials everything directly.
type Config struct {
	// HTTPSProxy is the proxy for targets treated as https (by default
	// every target; see TargetScheme). Empty means none. Forms:
	// "http://[user:password@]host[:port]", "https://...", "socks5://...",
	// "socks5h://...", or a bare "host:port", which means http://. The
	// default port is 80 for http, 443 for https and 1080 for SOCKS5.
	HTTPSProxy string
	// HTTPProxy is the proxy for targets treated as http (only when
	// TargetScheme is "http"). Empty means none. Same forms as HTTPSProxy.
	HTTPProxy string
	// NoProxy lists targets that are dialed directly, comma-separated:
	// host names (matching the name and its subdomains), ".domain"
	// (subdomains only), IP addresses, CIDRs ("10.0.0.0/8"), any of these
	// with ":port" (excluding only that port), or "*" for everything.
	// Empty means no exclusions. localhost and loopback addresses are
	// always dialed directly.
	NoProxy string
	// TargetScheme says which proxy applies to a target, since a TCP
	// address carries no scheme: "https" (or empty, the default) selects
	// HTTPSProxy, "http" selects HTTPProxy. The default suits TLS and
	// reverse-tunnel traffic, which is what HTTPS_PROXY is set up for.
	TargetScheme string
}

// FromEnvironment returns a Config filled from HTTPS_PROXY, HTTP_PROXY and
// NO_PROXY, or their lowercase forms (the uppercase form wins when both are
// set), as golang.org/x/net/http/httpproxy.FromEnvironment reads them.
func FromEnvironment() *Config {
	e := httpproxy.FromEnvironment()
	return &Config{HTTPSProxy: e.HTTPSProxy, HTTPProxy: e.HTTPProxy, NoProxy: e.NoProxy}
}

// Validate reports whether the proxy URLs and TargetScheme are usable. The
// error wraps ErrInvalidConfig and never contains a password.
func (c *Config) Validate() error {
	_, err := c.compile()
	return err
}

// proxyFunc chooses the proxy for a target "host:port"; nil means direct.
type proxyFunc func(target string) (*url.URL, error)

func (c *Config) compile() (proxyFunc, error) {
	if c == nil {
		return func(string) (*url.URL, error) { return nil, nil }, nil
	}
	scheme := strings.ToLower(c.TargetScheme)
	switch scheme {
	case "":
		scheme = "https"
	case "https", "http":
	default:
		return nil, fmt.Errorf("%w: TargetScheme %q is neither \"https\" nor \"http\"", ErrInvalidConfig, c.TargetScheme)
	}
	hc := httpproxy.Config{NoProxy: c.NoProxy}
	for _, f := range []struct {
		name string
		val  string
		dst  *string
	}{{"HTTPSProxy", c.HTTPSProxy, &hc.HTTPSProxy}, {"HTTPProxy", c.HTTPProxy, &hc.HTTPProxy}} {
		u, err := ParseProxyURL(f.val)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", f.name, err)
		}
		if u != nil {
			*f.dst = u.String()
		}
	}
	choose := hc.ProxyFunc()
	return func(target string) (*url.URL, error) {
		if _, _, err := net.SplitHostPort(target); err != nil {
			return nil, fmt.Errorf("proxyconnect: target %q: %w", target, err)
		}
		return choose(&url.URL{Scheme: scheme, Host: target})
	}, nil
}

// ParseProxyURL parses a proxy address the way the environment variables
// are read: a URL with scheme http, https, socks5 or socks5h, or a bare
// "[user:password@]host[:port]" meaning http://. An empty string returns
// (nil, nil). Userinfo is percent-decoded. The error wraps ErrInvalidConfig
// and never contains the password.
func ParseProxyURL(s string) (*url.URL, error) {
	s = strings.TrimSpace(s)
	if s == "" {
		return nil, nil
	}
	u, err := url.Parse(s)
	if err != nil || u.Scheme == "" || u.Host == "" {
		// Not a URL with a scheme: like httpproxy, try it as http://.
		if u2, err2 := url.Parse("http://" + s); err2 == nil {
			u, err = u2, nil
		}
	}
	if err != nil {
		// url.Parse's message quotes the input, which may hold a password.
		return nil, fmt.Errorf("%w: proxy URL does not parse", ErrInvalidConfig)
	}
	u.Scheme = strings.ToLower(u.Scheme)
	switch u.Scheme {
	case "http", "https", "socks5", "socks5h":
	default:
		return nil, fmt.Errorf("%w: proxy %s: unsupported scheme %q (want http, https, socks5 or socks5h)", ErrInvalidConfig, u.Redacted(), u.Scheme)
	}
	if u.Hostname() == "" {
		return nil, fmt.Errorf("%w: proxy %s: no host", ErrInvalidConfig, u.Redacted())
	}
	if p := u.Port(); p != "" {
		if n, err := strconv.Atoi(p); err != nil || n < 1 || n > 65535 {
			return nil, fmt.Errorf("%w: proxy %s: bad port %q", ErrInvalidConfig, u.Redacted(), p)
		}
	}
	if u.Path != "" && u.Path != "/" || u.RawQuery != "" || u.Fragment != "" {
		return nil, fmt.Errorf("%w: proxy %s: unexpected path or query", ErrInvalidConfig, u.Redacted())
	}
	if u.Scheme == "socks5" || u.Scheme == "socks5h" {
		if u.User != nil {
			p, _ := u.User.Password()
			if len(u.User.Username()) > 255 || len(p) > 255 {
				return nil, fmt.Errorf("%w: proxy %s: SOCKS5 user name and password are limited to 255 bytes", ErrInvalidConfig, u.Redacted())
			}
		}
	}
	u.Path = ""
	return u, nil
}

// proxyAddr returns the proxy's host:port, with the scheme's default port.
func proxyAddr(u *url.URL) string {
	port := u.Port()
	if port == "" {
		switch u.Scheme {
		case "https":
			port = "443"
		case "socks5", "socks5h":
			port = "1080"
		default:
			port = "80"
		}
	}
	return net.JoinHostPort(u.Hostname(), port)
}
