package authapi

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"slices"
	"strings"
	"sync"
	"time"

	"golang.org/x/crypto/ssh"
	"google.golang.org/grpc"
	"google.golang.org/grpc/backoff"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/resolver"
	"google.golang.org/grpc/resolver/manual"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/durationpb"

	"github.com/sallyport/sallyport/alpn"
	authv1 "github.com/sallyport/sallyport/authapi/proto/sallyport/auth/v1"
)

// ALPN is the ALPN protocol a proxy routes, as TLS passthrough, to the
// Auth Service (see the alpn package). Set ClientConfig.ALPN to it when
// Addrs are proxy addresses.
const ALPN = "sallyport-auth"

// ClientConfig configures a Client. Only Addrs is required, and one of
// Credentials or CAPin.
type ClientConfig struct {
	// Addrs are the auth servers (or proxies, with ALPN set) as host:port.
	// The client spreads calls over those that answer and fails over when
	// one goes away.
	Addrs []string
	// Credentials is the client's identity, presented as its TLS client
	// certificate; its host CAs verify the server. Nil means no client
	// certificate: only the RPCs the table allows "none" can be called,
	// and CAPin must be set.
	Credentials *Credentials
	// CAPin, when Credentials is nil, is the pin ("sha256:<hex>") of the
	// cluster's host CA: the server's chain must contain that CA and be
	// signed by it, or the handshake fails before anything is sent.
	CAPin string
	// ClusterName, when set, is the cluster the server must belong to;
	// zero means the cluster of Credentials, or any when pinning.
	ClusterName string
	// DialContext opens the connection to an address; nil means a
	// net.Dialer. Use it to reach auth through a proxy (HTTP CONNECT, or
	// the proxy's TLS router with ALPN set).
	DialContext func(ctx context.Context, addr string) (net.Conn, error)
	// ALPN, when set, is offered before "h2" in the TLS handshake (for
	// example ALPN, so a proxy's TLS router passes the connection to auth).
	ALPN []string
	// DialTLS, when set, opens the connection and runs the TLS handshake
	// itself (DialContext is then unused), with the client's TLS
	// configuration (ALPN, client certificate, server verification).
	// ALPNDialTLS makes one from an alpn.Dialer, which reaches a proxy's
	// TLS router through a Layer-7 load balancer that terminates TLS.
	// Nil means DialContext and the handshake of the gRPC transport.
	DialTLS DialTLSFunc
	// MaxRetries is how often an idempotent call is retried when no
	// server is available; zero means 5, negative means never.
	MaxRetries int
	// RetryBackoff is the first wait between retries, doubling up to two
	// seconds; zero means 100ms.
	RetryBackoff time.Duration
	// Logger receives the client's logs; nil discards them.
	Logger *slog.Logger
}

// Client talks to the Auth Service. It is safe for concurrent use.
type Client struct {
	cfg    ClientConfig
	conn   *grpc.ClientConn
	api    authv1.AuthServiceClient
	log    *slog.Logger
	pinErr error
	pinMu  sync.Mutex
	closed bool
	mu     sync.Mutex
}

// idempotent lists the RPCs retried on Unavailable.
var idempotent = map[string]bool{
	authv1.AuthService_Ping_FullMethodName:               true,
	authv1.AuthService_GetCertAuthorities_FullMethodName: true,
	authv1.AuthService_RenewHostIdentity_FullMethodName:  true,
	authv1.AuthService_ListJoinTokens_FullMethodName:     true,
	authv1.AuthService_ListUsers_FullMethodName:          true,
	authv1.AuthService_UpsertRole_FullMethodName:         true,
	authv1.AuthService_ListRoles_FullMethodName:          true,
	authv1.AuthService_SignIdentity_FullMethodName:       true,
	authv1.AuthService_Heartbeat_FullMethodName:          true,
	authv1.AuthService_ListServers_FullMethodName:        true,
	authv1.AuthService_SearchAuditEvents_FullMethodName:  true,
}

var resolverSeq struct {
	sync.Mutex
	n int
}

// NewClient checks cfg and returns a Client. It connects lazily: the
// first call dials.
func NewClient(cfg *ClientConfig) (*Client, error) {
	if cfg == nil || len(cfg.Addrs) == 0 {
		return nil, fmt.Errorf("%w: ClientConfig.Addrs is required", ErrInvalidArgument)
	}
	c := &Client{cfg: *cfg}
	if c.cfg.Credentials == nil && c.cfg.CAPin == "" {
		return nil, fmt.Errorf("%w: ClientConfig needs Credentials or CAPin", ErrInvalidArgument)
	}
	if c.cfg.ClusterName == "" && c.cfg.Credentials != nil {
		c.cfg.ClusterName = c.cfg.Credentials.Cluster
	}
	if c.cfg.MaxRetries == 0 {
		c.cfg.MaxRetries = 5
	}
	if c.cfg.RetryBackoff == 0 {
		c.cfg.RetryBackoff = 100 * time.Millisecond
	}
	c.log = c.cfg.Logger
	if c.log == nil {
		c.log = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	tlsConf, err := c.tlsConfig()
	if err != nil {
		return nil, err
	}
	resolverSeq.Lock()
	resolverSeq.n++
	scheme := fmt.Sprintf("sallyport-auth-%d", resolverSeq.n)
	resolverSeq.Unlock()
	r := manual.NewBuilderWithScheme(scheme)
	var addrs []resolver.Address
	for _, a := range c.cfg.Addrs {
		addrs = append(addrs, resolver.Address{Addr: a})
	}
	r.InitialState(resolver.State{Addresses: addrs})
	dial := c.cfg.DialContext
	if dial == nil {
		var d net.Dialer
		dial = func(ctx context.Context, addr string) (net.Conn, error) { return d.DialContext(ctx, "tcp", addr) }
	}
	var tc credentials.TransportCredentials = credentials.NewTLS(tlsConf)
	if dialTLS := c.cfg.DialTLS; dialTLS != nil {
		// The gRPC transport adds "h2" to what it offers; so must we.
		dconf := tlsConf.Clone()
		if !slices.Contains(dconf.NextProtos, "h2") {
			dconf.NextProtos = append(dconf.NextProtos, "h2")
		}
		dial = func(ctx context.Context, addr string) (net.Conn, error) {
			conn, err := dialTLS(ctx, addr, dconf.Clone())
			if errors.Is(err, ErrPinMismatch) {
				c.setPinErr(fmt.Errorf("%w: the server's CA does not match %s", ErrPinMismatch, c.cfg.CAPin))
			}
			return conn, err
		}
		tc = dialedTLS{tc}
	}
	conn, err := grpc.NewClient(scheme+":///auth",
		grpc.WithResolvers(r),
		grpc.WithTransportCredentials(tc),
		grpc.WithContextDialer(dial),
		grpc.WithDefaultServiceConfig(`{"loadBalancingConfig":[{"round_robin":{}}]}`),
		grpc.WithChainUnaryInterceptor(c.retryInterceptor),
		// Reconnect quickly after an instance goes away (the gRPC default
		// waits a second before the first reconnect).
		grpc.WithConnectParams(grpc.ConnectParams{Backoff: backoff.Config{BaseDelay: 50 * time.Millisecond, Multiplier: 1.6, Jitter: 0.2, MaxDelay: 3 * time.Second}, MinConnectTimeout: 5 * time.Second}),
		grpc.WithChainStreamInterceptor(c.streamInterceptor),
	)
	if err != nil {
		return nil, fmt.Errorf("authapi: client: %w", err)
	}
	c.conn = conn
	c.api = authv1.NewAuthServiceClient(conn)
	return c, nil
}

// tlsConfig verifies the server by the cluster's host CA (from the
// credentials, or the pinned one), and requires an auth host identity.
func (c *Client) tlsConfig() (*tls.Config, error) {
	conf := &tls.Config{
		MinVersion:         tls.VersionTLS12,
		ServerName:         "auth",
		InsecureSkipVerify: true, // replaced by VerifyConnection below
		NextProtos:         slices.Clone(c.cfg.ALPN),
	}
	creds := c.cfg.Credentials
	if creds != nil {
		if len(creds.Certificate.Certificate) == 0 {
			return nil, fmt.Errorf("%w: credentials without a certificate", ErrInvalidArgument)
		}
		cert := creds.Certificate
		conf.GetClientCertificate = func(*tls.CertificateRequestInfo) (*tls.Certificate, error) { return &cert, nil }
	}
	pin := c.cfg.CAPin
	if creds == nil && !strings.HasPrefix(pin, "sha256:") {
		return nil, fmt.Errorf("%w: CAPin must look like sha256:<hex>", ErrInvalidArgument)
	}
	verify := func(st tls.ConnectionState) error {
		var roots []*x509.Certificate
		if creds != nil {
			roots = creds.HostCAs
		} else {
			for _, cert := range st.PeerCertificates[1:] {
				if cert.IsCA && CAPin(cert) == pin {
					roots = append(roots, cert)
				}
			}
			if len(roots) == 0 {
				return fmt.Errorf("%w: the server's CA does not match %s", ErrPinMismatch, pin)
			}
		}
		return verifyAuthServer(st, roots, c.cfg.ClusterName)
	}
	if c.cfg.DialTLS != nil {
		// The hook may try several paths (an alpn.Dialer tries the
		// direct one, then the connection upgrade): report every
		// failure as a certificate failure, which makes it try the next
		// path, and record a pin mismatch only when the dial as a whole
		// fails (see NewClient).
		conf.VerifyConnection = func(st tls.ConnectionState) error {
			err := verify(st)
			if err == nil && len(c.cfg.ALPN) > 0 && st.NegotiatedProtocol == "" {
				// A TLS-terminating load balancer answered, with a
				// certificate that happens to verify.
				err = errNoALPN
			}
			if err != nil {
				return &tls.CertificateVerificationError{UnverifiedCertificates: st.PeerCertificates, Err: err}
			}
			return nil
		}
		return conf, nil
	}
	conf.VerifyConnection = func(st tls.ConnectionState) error {
		err := verify(st)
		if errors.Is(err, ErrPinMismatch) {
			c.setPinErr(err)
		}
		return err
	}
	return conf, nil
}

func (c *Client) setPinErr(err error) {
	c.pinMu.Lock()
	defer c.pinMu.Unlock()
	if c.pinErr == nil {
		c.pinErr = err
	}
}

// errNoALPN: the server negotiated none of the ALPN protocols offered.
var errNoALPN = errors.New("authapi: the server negotiated no ALPN protocol (a TLS-terminating load balancer on the path?)")

// DialTLSFunc opens a connection to addr and runs the TLS handshake with
// conf, returning the established connection: a *tls.Conn, or any net.Conn
// with a ConnectionState() tls.ConnectionState method. See
// ClientConfig.DialTLS.
type DialTLSFunc func(ctx context.Context, addr string, conf *tls.Config) (net.Conn, error)

// ALPNDialTLS returns a DialTLSFunc that dials with a copy of d whose
// TLSConfig is the client's: directly to a proxy's TLS router, or, when a
// Layer-7 load balancer terminates TLS on the way, through the proxy's
// WebSocket connection upgrade (see alpn.Dialer). Set d.NetDialer,
// d.UpgradeTLSConfig (which must verify the balancer's certificate and
// name it in ServerName) and d.Upgrade as needed; d.TLSConfig is ignored.
func ALPNDialTLS(d *alpn.Dialer) DialTLSFunc {
	var base alpn.Dialer
	if d != nil {
		base = *d
	}
	return func(ctx context.Context, addr string, conf *tls.Config) (net.Conn, error) {
		dd := base
		dd.TLSConfig = conf
		return dd.DialContext(ctx, "tcp", addr)
	}
}

// dialedTLS is the transport credentials of a connection whose TLS
// handshake ClientConfig.DialTLS has done already.
type dialedTLS struct {
	credentials.TransportCredentials
}

func (d dialedTLS) ClientHandshake(_ context.Context, _ string, raw net.Conn) (net.Conn, credentials.AuthInfo, error) {
	cs, ok := raw.(interface{ ConnectionState() tls.ConnectionState })
	if !ok {
		raw.Close()
		return nil, nil, errors.New("authapi: DialTLS returned a connection without TLS state")
	}
	return raw, credentials.TLSInfo{State: cs.ConnectionState(), CommonAuthInfo: credentials.CommonAuthInfo{SecurityLevel: credentials.PrivacyAndIntegrity}}, nil
}

func (d dialedTLS) Clone() credentials.TransportCredentials {
	return dialedTLS{d.TransportCredentials.Clone()}
}

// verifyAuthServer checks that the server's certificate chains to one of
// roots and names an auth host of cluster (any cluster when empty).
func verifyAuthServer(st tls.ConnectionState, roots []*x509.Certificate, cluster string) error {
	if len(st.PeerCertificates) == 0 {
		return fmt.Errorf("%w: server sent no certificate", ErrInvalidIdentity)
	}
	pool := x509.NewCertPool()
	for _, r := range roots {
		pool.AddCert(r)
	}
	inter := x509.NewCertPool()
	for _, cert := range st.PeerCertificates[1:] {
		inter.AddCert(cert)
	}
	leaf := st.PeerCertificates[0]
	if _, err := leaf.Verify(x509.VerifyOptions{Roots: pool, Intermediates: inter, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}); err != nil {
		return fmt.Errorf("authapi: server certificate: %w", err)
	}
	id, err := ParseIdentity(leaf)
	if err != nil {
		return err
	}
	if id.Kind != KindHost || !id.HasRole(RoleAuth) {
		return fmt.Errorf("%w: server is not an auth host", ErrInvalidIdentity)
	}
	if cluster != "" && id.Cluster != cluster {
		return fmt.Errorf("%w: server belongs to cluster %q, not %q", ErrInvalidIdentity, id.Cluster, cluster)
	}
	return nil
}

func (c *Client) wrapErr(method string, err error) error {
	if err == nil {
		return nil
	}
	c.pinMu.Lock()
	pinErr := c.pinErr
	c.pinMu.Unlock()
	if pinErr != nil && status.Code(err) == codes.Unavailable {
		return &RPCError{Method: method, Code: codes.Unavailable, Msg: pinErr.Error(), cause: pinErr}
	}
	return rpcError(method, err)
}

// retryInterceptor retries idempotent calls on Unavailable with
// exponential backoff and converts errors to *RPCError.
func (c *Client) retryInterceptor(ctx context.Context, method string, req, reply any, cc *grpc.ClientConn, invoker grpc.UnaryInvoker, opts ...grpc.CallOption) error {
	backoff := c.cfg.RetryBackoff
	for attempt := 0; ; attempt++ {
		err := invoker(ctx, method, req, reply, cc, opts...)
		if err == nil || status.Code(err) != codes.Unavailable || !idempotent[method] || attempt >= c.cfg.MaxRetries {
			return c.wrapErr(method, err)
		}
		c.pinMu.Lock()
		pinned := c.pinErr != nil
		c.pinMu.Unlock()
		if pinned {
			return c.wrapErr(method, err)
		}
		c.log.Debug("auth unavailable; retrying", "method", method, "attempt", attempt+1, "err", err)
		t := time.NewTimer(backoff)
		select {
		case <-ctx.Done():
			t.Stop()
			return c.wrapErr(method, err)
		case <-t.C:
		}
		backoff = min(2*backoff, 2*time.Second)
	}
}

func (c *Client) streamInterceptor(ctx context.Context, desc *grpc.StreamDesc, cc *grpc.ClientConn, method string, streamer grpc.Streamer, opts ...grpc.CallOption) (grpc.ClientStream, error) {
	s, err := streamer(ctx, desc, cc, method, opts...)
	if err != nil {
		return nil, c.wrapErr(method, err)
	}
	return &errStream{ClientStream: s, c: c, method: method}, nil
}

type errStream struct {
	grpc.ClientStream
	c      *Client
	method string
}

func (s *errStream) RecvMsg(m any) error {
	err := s.ClientStream.RecvMsg(m)
	if err == nil || errors.Is(err, io.EOF) {
		return err
	}
	return s.c.wrapErr(s.method, err)
}

// API returns the generated gRPC client. Its calls go through the
// client's retry policy, and their errors are *RPCError values.
func (c *Client) API() authv1.AuthServiceClient { return c.api }

// Close closes the connections. A second Close returns an error wrapping
// net.ErrClosed.
func (c *Client) Close() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return fmt.Errorf("authapi: client: %w", net.ErrClosed)
	}
	c.closed = true
	return c.conn.Close()
}

// newKeys generates the key pair of a new identity.
func newKeys() (*ecdsa.PrivateKey, ed25519.PrivateKey, ssh.PublicKey, error) {
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, nil, nil, err
	}
	spub, spriv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return nil, nil, nil, err
	}
	sp, err := ssh.NewPublicKey(spub)
	return k, spriv, sp, err
}

func marshalPub(k crypto.Signer) []byte {
	der, _ := x509.MarshalPKIXPublicKey(k.Public())
	return der
}

// JoinConfig configures Join.
type JoinConfig struct {
	// Addrs are the auth servers (or proxies, with ALPN set).
	Addrs []string
	// Token is the join token. Required.
	Token string
	// CAPin is the pin of the cluster's host CA (Server.CAPin, printed by
	// cmd/auth). Required: the token is only sent to a server whose chain
	// matches it.
	CAPin string
	// HostID is the host's ID; zero lets the server pick one.
	HostID string
	// NodeName is the host's name, added to its principals; zero means none.
	NodeName string
	// PublicAddrs are the addresses the host is reached at; they become
	// principals and SANs of its certificates.
	PublicAddrs []string
	// DialContext, ALPN and DialTLS are as in ClientConfig.
	DialContext func(ctx context.Context, addr string) (net.Conn, error)
	ALPN        []string
	DialTLS     DialTLSFunc
}

// Join joins the cluster with a token and returns the host's new
// credentials. It connects without a client certificate and verifies the
// server against CAPin before sending the token; a mismatch gives an
// error wrapping ErrPinMismatch.
func Join(ctx context.Context, cfg JoinConfig) (*Credentials, error) {
	if cfg.Token == "" || cfg.CAPin == "" {
		return nil, fmt.Errorf("%w: Join needs Token and CAPin", ErrInvalidArgument)
	}
	c, err := NewClient(&ClientConfig{Addrs: cfg.Addrs, CAPin: cfg.CAPin, DialContext: cfg.DialContext, ALPN: cfg.ALPN, DialTLS: cfg.DialTLS, MaxRetries: -1})
	if err != nil {
		return nil, err
	}
	defer c.Close()
	key, skey, spub, err := newKeys()
	if err != nil {
		return nil, err
	}
	resp, err := c.api.Join(ctx, &authv1.JoinRequest{
		Token: cfg.Token, HostId: cfg.HostID, NodeName: cfg.NodeName, PublicAddrs: cfg.PublicAddrs,
		TlsPublicKey: marshalPub(key), SshPublicKey: string(ssh.MarshalAuthorizedKey(spub)),
	})
	if err != nil {
		return nil, err
	}
	return newCredentials(resp.TlsCert, resp.SshCert, resp.Authorities, key, skey)
}

// RenewHostIdentity asks for a fresh host identity with new keys, using
// the client's current credentials, and returns it. publicAddrs replaces
// the host's addresses.
func (c *Client) RenewHostIdentity(ctx context.Context, publicAddrs []string) (*Credentials, error) {
	key, skey, spub, err := newKeys()
	if err != nil {
		return nil, err
	}
	resp, err := c.api.RenewHostIdentity(ctx, &authv1.RenewHostIdentityRequest{PublicAddrs: publicAddrs, TlsPublicKey: marshalPub(key), SshPublicKey: string(ssh.MarshalAuthorizedKey(spub))})
	if err != nil {
		return nil, err
	}
	return newCredentials(resp.TlsCert, resp.SshCert, resp.Authorities, key, skey)
}

// LoginRequest is what Login sends.
type LoginRequest struct {
	User, Password string
	// TOTP is the current code of the user's authenticator, if enrolled.
	TOTP string
	// TTL is the lifetime wanted; zero means the maximum the roles allow.
	TTL time.Duration
	// SSHPublicKey, when set, is the caller's own key that the SSH
	// certificate is issued for (see ValidateSSHPublicKey for the types
	// allowed); the caller keeps the private key, so the Credentials
	// returned have no SSHKey and no SSHSigner. Nil means a new Ed25519
	// key made by Login.
	SSHPublicKey ssh.PublicKey
	// TLSPublicKey, when set, is the caller's own key that the X.509
	// certificate is issued for (see ValidateTLSPublicKey); the
	// Credentials returned then have no Certificate.PrivateKey. Nil
	// (and no CSR) means a new ECDSA P-256 key made by Login.
	TLSPublicKey crypto.PublicKey
	// CSR, instead of TLSPublicKey, is a PKCS#10 certificate request (DER)
	// signed by the caller's key; only its public key is used.
	CSR []byte
}

// Login checks a user's password (and TOTP code) and returns short-lived
// user credentials: X.509 and SSH certificates for the caller's keys
// (LoginRequest.SSHPublicKey, TLSPublicKey or CSR), or for new keys made
// here for those not given. Keys are validated before anything is sent;
// a key of a type or size not allowed gives an error wrapping
// ErrInvalidArgument.
func (c *Client) Login(ctx context.Context, req LoginRequest) (*Credentials, error) {
	r := &authv1.LoginRequest{User: req.User, Password: req.Password, TotpCode: req.TOTP, Ttl: durationpb.New(req.TTL)}
	var key crypto.Signer
	switch {
	case len(req.CSR) > 0 && req.TLSPublicKey != nil:
		return nil, fmt.Errorf("%w: LoginRequest has both TLSPublicKey and CSR", ErrInvalidArgument)
	case len(req.CSR) > 0:
		if _, err := ParseCSR(req.CSR); err != nil {
			return nil, err
		}
		r.Csr = req.CSR
	case req.TLSPublicKey != nil:
		if err := ValidateTLSPublicKey(req.TLSPublicKey); err != nil {
			return nil, err
		}
		der, err := x509.MarshalPKIXPublicKey(req.TLSPublicKey)
		if err != nil {
			return nil, fmt.Errorf("%w: tls public key: %v", ErrInvalidArgument, err)
		}
		r.TlsPublicKey = der
	default:
		k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		if err != nil {
			return nil, err
		}
		key, r.TlsPublicKey = k, marshalPub(k)
	}
	var skey ed25519.PrivateKey
	if req.SSHPublicKey != nil {
		if err := ValidateSSHPublicKey(req.SSHPublicKey); err != nil {
			return nil, err
		}
		r.SshPublicKey = string(ssh.MarshalAuthorizedKey(req.SSHPublicKey))
	} else {
		spub, sk, err := ed25519.GenerateKey(rand.Reader)
		if err != nil {
			return nil, err
		}
		sp, err := ssh.NewPublicKey(spub)
		if err != nil {
			return nil, err
		}
		skey, r.SshPublicKey = sk, string(ssh.MarshalAuthorizedKey(sp))
	}
	resp, err := c.api.Login(ctx, r)
	if err != nil {
		return nil, err
	}
	return newCredentials(resp.TlsCert, resp.SshCert, resp.Authorities, key, skey)
}

// SignIdentity asks for an identity for automation (kind "admin", "user",
// "agent", "proxy" or "auth"), valid for ttl (zero: 30 days). Admin only.
func (c *Client) SignIdentity(ctx context.Context, kind, name string, ttl time.Duration) (*Credentials, error) {
	key, skey, spub, err := newKeys()
	if err != nil {
		return nil, err
	}
	resp, err := c.api.SignIdentity(ctx, &authv1.SignIdentityRequest{Kind: kind, Name: name, Ttl: durationpb.New(ttl), TlsPublicKey: marshalPub(key), SshPublicKey: string(ssh.MarshalAuthorizedKey(spub))})
	if err != nil {
		return nil, err
	}
	return newCredentials(resp.TlsCert, resp.SshCert, resp.Authorities, key, skey)
}
