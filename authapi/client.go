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
	conn, err := grpc.NewClient(scheme+":///auth",
		grpc.WithResolvers(r),
		grpc.WithTransportCredentials(credentials.NewTLS(tlsConf)),
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
	conf.VerifyConnection = func(st tls.ConnectionState) error {
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
				err := fmt.Errorf("%w: the server's CA does not match %s", ErrPinMismatch, pin)
				c.pinMu.Lock()
				c.pinErr = err
				c.pinMu.Unlock()
				return err
			}
		}
		if err := verifyAuthServer(st, roots, c.cfg.ClusterName); err != nil {
			return err
		}
		return nil
	}
	return conf, nil
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
	// DialContext and ALPN are as in ClientConfig.
	DialContext func(ctx context.Context, addr string) (net.Conn, error)
	ALPN        []string
}

// Join joins the cluster with a token and returns the host's new
// credentials. It connects without a client certificate and verifies the
// server against CAPin before sending the token; a mismatch gives an
// error wrapping ErrPinMismatch.
func Join(ctx context.Context, cfg JoinConfig) (*Credentials, error) {
	if cfg.Token == "" || cfg.CAPin == "" {
		return nil, fmt.Errorf("%w: Join needs Token and CAPin", ErrInvalidArgument)
	}
	c, err := NewClient(&ClientConfig{Addrs: cfg.Addrs, CAPin: cfg.CAPin, DialContext: cfg.DialContext, ALPN: cfg.ALPN, MaxRetries: -1})
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
}

// Login checks a user's password (and TOTP code) and returns short-lived
// user credentials (X.509 and SSH certificates with new keys).
func (c *Client) Login(ctx context.Context, req LoginRequest) (*Credentials, error) {
	key, skey, spub, err := newKeys()
	if err != nil {
		return nil, err
	}
	resp, err := c.api.Login(ctx, &authv1.LoginRequest{User: req.User, Password: req.Password, TotpCode: req.TOTP, Ttl: durationpb.New(req.TTL), TlsPublicKey: marshalPub(key), SshPublicKey: string(ssh.MarshalAuthorizedKey(spub))})
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
