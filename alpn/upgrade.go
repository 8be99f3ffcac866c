package alpn

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"net/http"
	"strings"
	"time"
)

// UpgradePath is where the web route serves the connection upgrade by
// convention (see Router.UpgradeHandler and Dialer.UpgradePath).
const UpgradePath = "/webapi/connectionupgrade"

// UpgradeHandler returns the HTTP handler of the connection upgrade, to be
// mounted (at UpgradePath) on the http.Server that serves the web route.
//
// It serves a WebSocket upgrade (GET with "Upgrade: websocket") whose
// subprotocol (Sec-WebSocket-Protocol) names an ALPN protocol that a route
// of r takes by its ALPN patterns. After answering 101 it feeds the
// WebSocket stream — a TLS connection that the client starts inside it —
// back into r, which routes the inner ClientHello; the inner ClientHello
// must offer the subprotocol. The handler returns when the inner
// connection's handler does. A request for a protocol without a route is
// answered 404, a request that is no WebSocket upgrade 426 or 400.
func (r *Router) UpgradeHandler() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		ws, err := acceptWebSocket(w, req, r.cfg.HandshakeTimeout, r.chooseUpgrade)
		if err != nil {
			var he *httpError
			if errors.As(err, &he) {
				http.Error(w, he.msg, he.status)
			}
			r.log.Debug("alpn: connection upgrade", "remote", req.RemoteAddr, "err", err)
			return
		}
		if err := r.serveConn(req.Context(), ws, ws.proto); err != nil {
			r.log.Debug("alpn: upgraded connection", "remote", req.RemoteAddr, "protocol", ws.proto, "err", err)
		}
	})
}

// chooseUpgrade returns the first offered protocol that a route takes by
// its ALPN patterns.
func (r *Router) chooseUpgrade(offered []string) string {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, o := range offered {
		for _, rt := range r.routes {
			if len(rt.ALPN) == 0 {
				continue
			}
			if p, ok := matchALPN(rt.ALPN, []string{o}); ok && p != "" {
				return p
			}
		}
	}
	return ""
}

// UpgradeMode says when a Dialer tunnels through the connection upgrade.
type UpgradeMode int

const (
	// UpgradeAuto dials directly and falls back to the upgrade when the
	// direct handshake shows a TLS-terminating load balancer: the server
	// negotiated no ALPN protocol although some were requested, refused
	// them with the no_application_protocol alert, or its certificate did
	// not verify with TLSConfig.
	UpgradeAuto UpgradeMode = iota
	// UpgradeAlways always tunnels through the upgrade.
	UpgradeAlways
	// UpgradeNever never does.
	UpgradeNever
)

// ContextDialer dials network connections; *net.Dialer is one.
type ContextDialer interface {
	DialContext(ctx context.Context, network, addr string) (net.Conn, error)
}

// ErrALPNStripped is returned by a Dialer in UpgradeNever mode when the
// server negotiated no ALPN protocol although TLSConfig asked for some.
var ErrALPNStripped = errors.New("alpn: server negotiated no ALPN protocol (a TLS-terminating load balancer on the path?)")

// Dialer dials TLS connections to a router for an ALPN protocol, through a
// Layer-7 load balancer that terminates TLS when needed: it then opens an
// HTTPS connection to the balancer, upgrades it to a WebSocket at
// UpgradePath with the protocol as subprotocol, and runs the TLS handshake
// (with TLSConfig) inside it. Either way the result is a *tls.Conn to the
// router with TLSConfig's protocol negotiated end to end.
// The zero value is not usable: TLSConfig is required.
type Dialer struct {
	// TLSConfig configures the TLS connection to the router (ServerName,
	// RootCAs, Certificates, NextProtos). NextProtos is required: its
	// protocols are offered as the upgrade's WebSocket subprotocols too.
	TLSConfig *tls.Config
	// NetDialer dials TCP. Nil means a net.Dialer.
	NetDialer ContextDialer
	// Upgrade chooses when to tunnel. Zero means UpgradeAuto.
	Upgrade UpgradeMode
	// UpgradeTLSConfig configures the HTTPS connection to the load
	// balancer. Nil means TLSConfig's ServerName, RootCAs and
	// InsecureSkipVerify, with NextProtos http/1.1 and no client
	// certificate.
	UpgradeTLSConfig *tls.Config
	// UpgradePath is the path of the upgrade endpoint. Empty means
	// UpgradePath.
	UpgradePath string
	// HandshakeTimeout bounds a whole DialContext (the direct attempt and
	// the upgrade) when ctx has no earlier deadline. Zero means
	// DefaultHandshakeTimeout.
	HandshakeTimeout time.Duration
}

// DialContext dials addr ("host:port") and returns the TLS connection with
// the handshake done. Cancelling ctx aborts the dial and the handshakes,
// not the returned conn.
func (d *Dialer) DialContext(ctx context.Context, network, addr string) (*tls.Conn, error) {
	if d.TLSConfig == nil {
		return nil, errors.New("alpn: Dialer.TLSConfig is nil")
	}
	timeout := d.HandshakeTimeout
	if timeout <= 0 {
		timeout = DefaultHandshakeTimeout
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	cfg := d.tlsConfig(addr)
	if d.Upgrade == UpgradeAlways {
		return d.dialUpgrade(ctx, network, addr, cfg)
	}
	raw, err := d.dial(ctx, network, addr)
	if err != nil {
		return nil, err
	}
	tc := tls.Client(raw, cfg)
	err = tc.HandshakeContext(ctx)
	switch {
	case err == nil && (len(cfg.NextProtos) == 0 || tc.ConnectionState().NegotiatedProtocol != ""):
		return tc, nil
	case d.Upgrade == UpgradeNever && err == nil:
		tc.Close()
		return nil, ErrALPNStripped
	case d.Upgrade == UpgradeNever || (err != nil && !isCertError(err) && !isNoALPNAlert(err)):
		tc.Close()
		return nil, err
	}
	tc.Close()
	up, uerr := d.dialUpgrade(ctx, network, addr, cfg)
	if uerr != nil {
		if err != nil {
			return nil, fmt.Errorf("alpn: direct dial: %w; upgrade: %w", err, uerr)
		}
		return nil, fmt.Errorf("alpn: ALPN stripped on the direct dial; upgrade: %w", uerr)
	}
	return up, nil
}

func (d *Dialer) tlsConfig(addr string) *tls.Config {
	cfg := d.TLSConfig
	if cfg.ServerName == "" {
		cfg = cfg.Clone()
		if host, _, err := net.SplitHostPort(addr); err == nil {
			cfg.ServerName = host
		}
	}
	return cfg
}

func (d *Dialer) dial(ctx context.Context, network, addr string) (net.Conn, error) {
	nd := d.NetDialer
	if nd == nil {
		nd = &net.Dialer{}
	}
	return nd.DialContext(ctx, network, addr)
}

// dialUpgrade tunnels a TLS connection (cfg) through the upgrade endpoint.
func (d *Dialer) dialUpgrade(ctx context.Context, network, addr string, cfg *tls.Config) (*tls.Conn, error) {
	if len(cfg.NextProtos) == 0 {
		return nil, errors.New("alpn: connection upgrade needs TLSConfig.NextProtos")
	}
	for _, p := range cfg.NextProtos {
		if p == "" || strings.ContainsAny(p, "\x00\r\n\t ,;\"") {
			return nil, fmt.Errorf("alpn: protocol %q cannot be a WebSocket subprotocol", p)
		}
	}
	ucfg := d.UpgradeTLSConfig
	if ucfg == nil {
		ucfg = &tls.Config{
			ServerName:         cfg.ServerName,
			RootCAs:            cfg.RootCAs,
			InsecureSkipVerify: cfg.InsecureSkipVerify,
			MinVersion:         tls.VersionTLS12,
		}
	} else {
		ucfg = ucfg.Clone()
		if ucfg.ServerName == "" {
			ucfg.ServerName = cfg.ServerName
		}
	}
	ucfg.NextProtos = []string{ProtocolHTTP1}
	raw, err := d.dial(ctx, network, addr)
	if err != nil {
		return nil, err
	}
	outer := tls.Client(raw, ucfg)
	if err := outer.HandshakeContext(ctx); err != nil {
		raw.Close()
		return nil, fmt.Errorf("alpn: upgrade: TLS to the load balancer: %w", err)
	}
	path := d.UpgradePath
	if path == "" {
		path = UpgradePath
	}
	host := ucfg.ServerName
	if _, port, err := net.SplitHostPort(addr); err == nil && host != "" && port != "443" {
		host = net.JoinHostPort(host, port)
	} else if host == "" {
		host = addr
	}
	if strings.ContainsAny(host+path, "\x00\r\n ") {
		outer.Close()
		return nil, fmt.Errorf("alpn: bad upgrade host %q or path %q", host, path)
	}
	ws, err := dialWebSocket(ctx, outer, host, path, strings.Join(cfg.NextProtos, ", "))
	if err != nil {
		outer.Close()
		return nil, err
	}
	tc := tls.Client(ws, cfg)
	if err := tc.HandshakeContext(ctx); err != nil {
		ws.Close()
		return nil, fmt.Errorf("alpn: upgrade: inner TLS handshake: %w", err)
	}
	return tc, nil
}

// isNoALPNAlert reports whether err is the no_application_protocol alert
// from the peer (a load balancer that terminates TLS and knows none of the
// protocols, such as nginx).
func isNoALPNAlert(err error) bool {
	var oe *net.OpError
	return errors.As(err, &oe) && oe.Op == "remote error" && oe.Err != nil &&
		oe.Err.Error() == "tls: no application protocol"
}

// isCertError reports whether err is a certificate verification failure.
func isCertError(err error) bool {
	var cve *tls.CertificateVerificationError
	var uae x509.UnknownAuthorityError
	var hne x509.HostnameError
	return errors.As(err, &cve) || errors.As(err, &uae) || errors.As(err, &hne)
}
