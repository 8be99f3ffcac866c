package alpn

import "strings"

// ALPN protocol names of the cluster. Each sallyport protocol has a "-ping"
// variant (see [Ping]) for long-lived streams that cross load balancers with
// idle timeouts: after the TLS handshake both sides wrap the connection with
// [NewPingConn].
const (
	ProtocolReverseTunnel = "sallyport-reversetunnel"
	ProtocolProxySSH      = "sallyport-proxy-ssh"
	ProtocolAuth          = "sallyport-auth"
	ProtocolPostgres      = "sallyport-postgres"
	ProtocolMySQL         = "sallyport-mysql"
	ProtocolRedis         = "sallyport-redis"
	ProtocolMongoDB       = "sallyport-mongodb"
	ProtocolPeer          = "sallyport-peer"

	// ProtocolACME is the ACME TLS-ALPN-01 challenge protocol (RFC 8737).
	ProtocolACME = "acme-tls/1"
	// ProtocolHTTP2 and ProtocolHTTP1 select the web API, as does a
	// ClientHello without ALPN (see [WebProtocols]).
	ProtocolHTTP2 = "h2"
	ProtocolHTTP1 = "http/1.1"

	// PingSuffix marks the keepalive-framed variant of a protocol.
	PingSuffix = "-ping"
)

// WebProtocols returns the ALPN patterns of the web route: "h2", "http/1.1"
// and "" (a ClientHello that offers no ALPN at all). Use it as
// Route.ALPN of the web route.
func WebProtocols() []string { return []string{ProtocolHTTP2, ProtocolHTTP1, ""} }

// Ping returns the "-ping" variant of proto. Ping of a name that already
// ends in "-ping" returns it unchanged.
func Ping(proto string) string {
	if IsPing(proto) {
		return proto
	}
	return proto + PingSuffix
}

// IsPing reports whether proto names a "-ping" variant.
func IsPing(proto string) bool { return strings.HasSuffix(proto, PingSuffix) }

// TrimPing returns the protocol that proto is the "-ping" variant of, or
// proto itself.
func TrimPing(proto string) string { return strings.TrimSuffix(proto, PingSuffix) }

// WithPing returns each protocol in protos preceded by its "-ping" variant,
// the order a client offers them in when it prefers keepalive framing.
func WithPing(protos ...string) []string {
	out := make([]string, 0, 2*len(protos))
	for _, p := range protos {
		out = append(out, Ping(p), TrimPing(p))
	}
	return out
}
