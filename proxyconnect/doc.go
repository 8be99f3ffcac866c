// Package proxyconnect dials TCP addresses directly or through a proxy
// chosen per target, the way HTTPS_PROXY, HTTP_PROXY and NO_PROXY direct
// HTTP clients: through HTTP CONNECT (http:// and https:// proxies, Basic
// credentials from the URL's userinfo) or SOCKS5 (socks5://, socks5h://,
// username/password authentication).
//
// An agent behind a corporate firewall uses it to reach the cluster's
// proxies; anything that takes a DialContext function can use it.
//
// # Usage
//
// The zero Dialer reads the environment at every dial:
//
//	var d proxyconnect.Dialer
//	conn, err := d.DialContext(ctx, "tcp", "proxy.example.com:443")
//	if err != nil {
//		return err // a *ProxyError when the proxy leg failed
//	}
//	if u, ok := proxyconnect.Via(conn); ok {
//		logger.Info("connected through proxy", "proxy", u)
//	}
//	tlsConn := tls.Client(conn, tlsConfig)
//
// An explicit Config replaces the environment entirely:
//
//	d := &proxyconnect.Dialer{
//		Config:    &proxyconnect.Config{HTTPSProxy: "https://user:pa%40ss@proxy.corp:3129", NoProxy: ".internal"},
//		TLSConfig: &tls.Config{RootCAs: corpRoots}, // to verify the https:// proxy itself
//		Forward:   &net.Dialer{KeepAlive: 30 * time.Second},
//	}
//
// # Which proxy applies
//
// Selection follows golang.org/x/net/http/httpproxy (which the package
// builds on): NO_PROXY entries are host names (matching subdomains too),
// ".domain" (subdomains only), IP addresses and CIDRs, any of these with
// ":port" to exclude only that port, or "*". localhost and loopback
// addresses are never proxied. A TCP target has no scheme, so the package
// treats every target as https and uses HTTPS_PROXY: the traffic it carries
// (TLS, reverse tunnels) is what HTTPS_PROXY is configured for. Set
// Config.TargetScheme to "http" to use HTTP_PROXY instead. A proxy value
// without a scheme ("proxy.corp:3128") means http://. Dialer.Proxy replaces
// the selection with a function of the target, like http.Transport.Proxy.
//
// socks5:// resolves the target name locally and sends the address;
// socks5h:// sends the name for the proxy to resolve. HTTP CONNECT always
// sends the name.
//
// # Connections
//
// A direct dial returns what Dialer.Forward returned (a *net.TCPConn by
// default). A proxied dial returns a *Conn: Via(conn), or conn.Proxy(),
// reports the proxy it went through, with the user name but never the
// password; Via also looks through *tls.Conn and other wrappers with a
// NetConn method. RemoteAddr of a *Conn is the proxy's address.
//
// Bytes the proxy sends right after its 200 answer belong to the tunnel:
// the answer is read with a bounded buffer (MaxResponseHeaderBytes), and
// any tunnel bytes that arrived with it are returned first by Read and
// WriteTo. *Conn implements io.ReaderFrom and io.WriterTo by handing the
// copy to the underlying *net.TCPConn, so relays keep Linux splice(2).
//
// # Lifecycle
//
// A Dialer holds no resources and has nothing to close; it is safe for
// concurrent use as long as its fields are not changed. Each returned
// connection belongs to the caller, who closes it. The environment is read
// at every dial when Config is nil, so a long-lived process sees the
// values it started with (the environment of a process rarely changes).
//
// # Errors
//
// Every failure of the proxy leg is a *ProxyError whose message names the
// step, the target and the proxy (password replaced by "xxxxx") and says
// why. It unwraps to a sentinel that errors.Is can test: ErrProxyUnreachable
// (the proxy could not be reached), ErrProxyTLS (TLS with an https://
// proxy failed), ErrProxyAuth (407, with ProxyError.Realm from
// Proxy-Authenticate; or a SOCKS5 authentication failure), ErrProxyRefused
// (403, 502 or any other status; SOCKS5 replies other than success),
// ErrMalformedResponse (not HTTP/1.x, cut short, header too large) and
// ErrTimeout. It also unwraps to the underlying cause (a *net.OpError, a
// context error, ...). Configuration errors wrap ErrInvalidConfig. No error
// and no log record ever contains a proxy password; text that the proxy
// sends (status, realm) is sanitized before it is put in an error.
//
// # Cancellation
//
// DialContext honours ctx throughout: the connection to the proxy, the TLS
// handshake with it and the CONNECT or SOCKS5 exchange are interrupted when
// ctx is canceled or its deadline passes, and the error then unwraps to
// context.Canceled or context.DeadlineExceeded (the latter also to
// ErrTimeout). Dialer.HandshakeTimeout (default DefaultHandshakeTimeout)
// bounds the whole proxy leg independently of ctx. Once DialContext has
// returned, ctx no longer affects the connection; use deadlines on the
// connection.
package proxyconnect
