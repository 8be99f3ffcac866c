package authapi

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"regexp"
	"slices"
	"sync"
	"time"

	"golang.org/x/crypto/bcrypt"
	"golang.org/x/crypto/ssh"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/peer"
	"google.golang.org/protobuf/types/known/durationpb"

	"github.com/sallyport/sallyport/audit"
	authv1 "github.com/sallyport/sallyport/authapi/proto/sallyport/auth/v1"
	"github.com/sallyport/sallyport/backend"
)

// DefaultPort is the Auth Service's default port.
const DefaultPort = 3025

// Version is the server version reported by Ping.
const Version = "0.1.0"

// Config configures a Server. The zero value of every field but Backend
// works.
type Config struct {
	// Backend holds all cluster state (CAs, tokens, users, roles,
	// presence, and the audit log unless Audit is set). Required. The
	// Server does not close it.
	Backend backend.Backend
	// ClusterName names the cluster; zero means "sallyport". It is fixed
	// when the CAs are created: a backend holding another cluster's CAs is
	// refused.
	ClusterName string
	// HostID is this instance's host ID, the CN of its own certificate;
	// zero means a random one.
	HostID string
	// ServerNames are the DNS names and IP addresses clients use to reach
	// this instance, put in its own certificate; zero means "localhost",
	// "127.0.0.1" and "::1". (Clients verify the auth role and cluster in
	// the certificate rather than a name, so this matters only for
	// third-party clients.)
	ServerNames []string
	// Clock returns the current time; nil means time.Now.
	Clock func() time.Time
	// Logger receives the server's logs; nil discards them. Secrets
	// (tokens, passwords, keys) are never logged.
	Logger *slog.Logger
	// Audit receives audit events; nil means an audit.Backend over
	// Backend (keys under /audit/events/).
	Audit audit.Log
	// BcryptCost is the cost of new password hashes; zero means
	// bcrypt.DefaultCost.
	BcryptCost int
	// HostCertTTL is the lifetime of host identities issued by Join and
	// RenewHostIdentity; zero means 7 days.
	HostCertTTL time.Duration
	// MaxUserCertTTL caps user certificates issued by Login; zero means 12
	// hours. A role's MaxSessionTTL lowers it further.
	MaxUserCertTTL time.Duration
	// SignupTTL is the lifetime of sign-up tokens; zero means 1 hour.
	SignupTTL time.Duration
	// RateLimit is how many credential attempts (Join, Login,
	// CompleteSignup) one source IP may make per minute, with a burst of
	// the same size; zero means 30; negative means unlimited.
	RateLimit int
	// WatchQueueSize is the backend watcher queue of each WatchServers
	// stream; zero means the backend's default.
	WatchQueueSize int
}

// Server is one Auth Service instance. It keeps no state but its CAs
// (read from the backend at New) and a per-source rate limiter; any
// number of instances can share one backend.
type Server struct {
	cfg     Config
	log     *slog.Logger
	audit   audit.Log
	now     func() time.Time
	cluster string
	hostID  string
	cas     map[string]*certAuthority
	limiter *limiter
	grpc    *grpc.Server
	tlsConf *tls.Config

	certMu sync.Mutex
	cert   *tls.Certificate

	mu     sync.Mutex
	quit   chan struct{} // closed by Shutdown/Close: ends watch streams
	closed bool
}

var hostIDRe = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$`)

// New checks cfg, loads the cluster's CAs from the backend (creating
// them if this is the first instance) and returns a Server ready to Serve.
func New(ctx context.Context, cfg *Config) (*Server, error) {
	var c Config
	if cfg != nil {
		c = *cfg
	}
	if c.Backend == nil {
		return nil, fmt.Errorf("%w: Config.Backend is required", ErrInvalidArgument)
	}
	if c.ClusterName == "" {
		c.ClusterName = "sallyport"
	}
	if !hostIDRe.MatchString(c.ClusterName) {
		return nil, fmt.Errorf("%w: cluster name %q", ErrInvalidArgument, c.ClusterName)
	}
	if c.HostID == "" {
		c.HostID = newID()
	}
	if !hostIDRe.MatchString(c.HostID) {
		return nil, fmt.Errorf("%w: host ID %q", ErrInvalidArgument, c.HostID)
	}
	if len(c.ServerNames) == 0 {
		c.ServerNames = []string{"localhost", "127.0.0.1", "::1"}
	}
	if c.Clock == nil {
		c.Clock = time.Now
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	if c.Audit == nil {
		c.Audit = audit.NewBackend(c.Backend, "", c.Clock)
	}
	if c.BcryptCost == 0 {
		c.BcryptCost = bcrypt.DefaultCost
	}
	if c.BcryptCost < bcrypt.MinCost || c.BcryptCost > bcrypt.MaxCost {
		return nil, fmt.Errorf("%w: bcrypt cost %d", ErrInvalidArgument, c.BcryptCost)
	}
	if c.HostCertTTL == 0 {
		c.HostCertTTL = 7 * 24 * time.Hour
	}
	if c.MaxUserCertTTL == 0 {
		c.MaxUserCertTTL = 12 * time.Hour
	}
	if c.SignupTTL == 0 {
		c.SignupTTL = time.Hour
	}
	if c.HostCertTTL < time.Minute || c.MaxUserCertTTL < time.Minute || c.SignupTTL < time.Minute {
		return nil, fmt.Errorf("%w: certificate and token lifetimes must be at least a minute", ErrInvalidArgument)
	}
	if c.RateLimit == 0 {
		c.RateLimit = 30
	}
	cas, err := loadOrCreateCAs(ctx, c.Backend, c.ClusterName, c.Clock())
	if err != nil {
		return nil, err
	}
	s := &Server{
		cfg: c, log: c.Logger, audit: c.Audit, now: c.Clock,
		cluster: c.ClusterName, hostID: c.HostID, cas: cas,
		limiter: newLimiter(c.RateLimit, c.Clock),
		quit:    make(chan struct{}),
	}
	pool := x509.NewCertPool()
	pool.AddCert(cas[CAHost].cert)
	pool.AddCert(cas[CAUser].cert)
	s.tlsConf = &tls.Config{
		MinVersion:     tls.VersionTLS12,
		GetCertificate: s.getCertificate,
		// Joining hosts have no certificate yet; every other caller must
		// present one that chains to the host or user CA (expired ones and
		// other clusters' fail the handshake).
		ClientAuth: tls.VerifyClientCertIfGiven,
		ClientCAs:  pool,
	}
	if _, err := s.getCertificate(nil); err != nil {
		return nil, err
	}
	s.grpc = grpc.NewServer(
		grpc.Creds(credentials.NewTLS(s.tlsConf)),
		grpc.ChainUnaryInterceptor(s.unaryAuthz),
		grpc.ChainStreamInterceptor(s.streamAuthz),
		grpc.WaitForHandlers(true),
		grpc.MaxRecvMsgSize(4<<20),
		// A client that does not finish the TLS handshake in time is
		// dropped.
		grpc.ConnectionTimeout(10*time.Second),
	)
	authv1.RegisterAuthServiceServer(s.grpc, &service{s: s})
	return s, nil
}

func newID() string {
	var b [16]byte
	rand.Read(b[:])
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	h := hex.EncodeToString(b[:])
	return h[0:8] + "-" + h[8:12] + "-" + h[12:16] + "-" + h[16:20] + "-" + h[20:]
}

// ClusterName returns the cluster's name.
func (s *Server) ClusterName() string { return s.cluster }

// HostID returns this instance's host ID.
func (s *Server) HostID() string { return s.hostID }

// CAPin returns the pin of the cluster's host CA, which joining hosts pass
// to Join.
func (s *Server) CAPin() string { return CAPin(s.cas[CAHost].cert) }

// TLSConfig returns a clone of the server's TLS configuration (for
// serving the API behind another listener stack).
func (s *Server) TLSConfig() *tls.Config { return s.tlsConf.Clone() }

// getCertificate returns the instance's own certificate, issuing a fresh
// one from the host CA when it is missing or past half its lifetime.
func (s *Server) getCertificate(*tls.ClientHelloInfo) (*tls.Certificate, error) {
	s.certMu.Lock()
	defer s.certMu.Unlock()
	now := s.now()
	if s.cert != nil && now.Before(s.cert.Leaf.NotBefore.Add(s.cert.Leaf.NotAfter.Sub(s.cert.Leaf.NotBefore)/2)) {
		return s.cert, nil
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, err
	}
	dns, ips := hostNames(s.cfg.ServerNames...)
	dns = append(dns, s.hostID, s.hostID+"."+s.cluster)
	id := &Identity{Kind: KindHost, Name: s.hostID, Cluster: s.cluster, Roles: []string{RoleAuth}, Principals: s.cfg.ServerNames}
	der, err := s.cas[CAHost].signTLS(certRequest{
		pub: key.Public(), id: id, notBefore: now.Add(-time.Minute), notAfter: now.Add(s.cfg.HostCertTTL),
		dnsNames: dns, ips: ips, server: true,
	})
	if err != nil {
		return nil, fmt.Errorf("authapi: issue server certificate: %w", err)
	}
	leaf, _ := x509.ParseCertificate(der)
	// The chain includes the host CA so that joining clients can check
	// their pin against it.
	s.cert = &tls.Certificate{Certificate: [][]byte{der, s.cas[CAHost].cert.Raw}, PrivateKey: key, Leaf: leaf}
	return s.cert, nil
}

// Serve accepts connections on l and serves the API over TLS until
// Shutdown or Close; then it returns ErrServerClosed. l is closed on
// return. Serve may be called on several listeners at once.
func (s *Server) Serve(l net.Listener) error {
	s.mu.Lock()
	closed := s.closed
	s.mu.Unlock()
	if closed {
		l.Close()
		return ErrServerClosed
	}
	err := s.grpc.Serve(l)
	if errors.Is(err, grpc.ErrServerStopped) {
		return ErrServerClosed
	}
	s.mu.Lock()
	closed = s.closed
	s.mu.Unlock()
	if closed {
		return ErrServerClosed
	}
	return err
}

func (s *Server) markClosed() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return false
	}
	s.closed = true
	close(s.quit)
	return true
}

// Shutdown stops accepting connections, ends watch streams, and waits
// for the running RPCs to finish, or for ctx to be done (then it closes
// every connection like Close and returns ctx's error).
func (s *Server) Shutdown(ctx context.Context) error {
	if !s.markClosed() {
		return fmt.Errorf("authapi: shutdown: %w", net.ErrClosed)
	}
	done := make(chan struct{})
	go func() {
		s.grpc.GracefulStop()
		close(done)
	}()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		s.grpc.Stop()
		<-done
		return ctx.Err()
	}
}

// Close closes every listener and connection at once and waits for the
// handlers to return. A second Close returns an error wrapping
// net.ErrClosed.
func (s *Server) Close() error {
	if !s.markClosed() {
		return fmt.Errorf("authapi: close: %w", net.ErrClosed)
	}
	s.grpc.Stop()
	return nil
}

// policy is the authorization table: for each RPC, the caller classes
// allowed. It is documented in doc.go and checked by TestAuthorization.
var policy = map[string][]string{
	authv1.AuthService_Ping_FullMethodName:               {ClassNone, ClassUser, ClassAgent, ClassProxy, ClassAuth, ClassAdmin},
	authv1.AuthService_GetCertAuthorities_FullMethodName: {ClassNone, ClassUser, ClassAgent, ClassProxy, ClassAuth, ClassAdmin},
	authv1.AuthService_Join_FullMethodName:               {ClassNone, ClassUser, ClassAgent, ClassProxy, ClassAuth, ClassAdmin},
	authv1.AuthService_CompleteSignup_FullMethodName:     {ClassNone, ClassUser, ClassAgent, ClassProxy, ClassAuth, ClassAdmin},
	authv1.AuthService_Login_FullMethodName:              {ClassNone, ClassUser, ClassAgent, ClassProxy, ClassAuth, ClassAdmin},
	authv1.AuthService_RenewHostIdentity_FullMethodName:  {ClassAgent, ClassProxy, ClassAuth},
	authv1.AuthService_CreateJoinToken_FullMethodName:    {ClassAdmin},
	authv1.AuthService_ListJoinTokens_FullMethodName:     {ClassAdmin},
	authv1.AuthService_DeleteJoinToken_FullMethodName:    {ClassAdmin},
	authv1.AuthService_UpsertUser_FullMethodName:         {ClassAdmin},
	authv1.AuthService_ListUsers_FullMethodName:          {ClassAdmin},
	authv1.AuthService_DeleteUser_FullMethodName:         {ClassAdmin},
	authv1.AuthService_UpsertRole_FullMethodName:         {ClassAdmin},
	authv1.AuthService_ListRoles_FullMethodName:          {ClassAdmin, ClassProxy, ClassAuth},
	authv1.AuthService_DeleteRole_FullMethodName:         {ClassAdmin},
	authv1.AuthService_SignIdentity_FullMethodName:       {ClassAdmin},
	authv1.AuthService_Heartbeat_FullMethodName:          {ClassAgent, ClassProxy},
	authv1.AuthService_ListServers_FullMethodName:        {ClassUser, ClassAgent, ClassProxy, ClassAuth, ClassAdmin},
	authv1.AuthService_WatchServers_FullMethodName:       {ClassAgent, ClassProxy, ClassAuth, ClassAdmin},
	authv1.AuthService_EmitAuditEvent_FullMethodName:     {ClassAgent, ClassProxy, ClassAuth, ClassAdmin},
	authv1.AuthService_SearchAuditEvents_FullMethodName:  {ClassAdmin},
}

// Allowed reports whether the authorization table lets a caller with the
// given identity (nil: no certificate) call the RPC named by its full
// gRPC method name.
func Allowed(method string, id *Identity) bool {
	allowed, ok := policy[method]
	if !ok {
		return false
	}
	for _, c := range id.Classes() {
		if slices.Contains(allowed, c) {
			return true
		}
	}
	return false
}

type ctxKey struct{}

// callerFrom returns the verified identity of the caller (nil: none).
func callerFrom(ctx context.Context) *Identity {
	id, _ := ctx.Value(ctxKey{}).(*Identity)
	return id
}

// sourceOf returns the caller's IP address (the rate-limit key).
func sourceOf(ctx context.Context) string {
	p, ok := peer.FromContext(ctx)
	if !ok || p.Addr == nil {
		return ""
	}
	if h, _, err := net.SplitHostPort(p.Addr.String()); err == nil {
		return h
	}
	return p.Addr.String()
}

// IdentityFromState returns the identity of a TLS peer whose certificate
// was verified against the cluster's CAs (nil when it presented none). A
// host identity must chain to hostCA and a user or admin identity to
// userCA, and the identity must name cluster.
func IdentityFromState(st tls.ConnectionState, cluster string, hostCA, userCA *x509.Certificate) (*Identity, error) {
	if len(st.VerifiedChains) == 0 {
		if len(st.PeerCertificates) > 0 {
			return nil, fmt.Errorf("%w: unverified certificate", ErrInvalidIdentity)
		}
		return nil, nil
	}
	chain := st.VerifiedChains[0]
	id, err := ParseIdentity(chain[0])
	if err != nil {
		return nil, err
	}
	root := chain[len(chain)-1]
	want := userCA
	if id.Kind == KindHost {
		want = hostCA
	}
	if want == nil || !root.Equal(want) {
		return nil, fmt.Errorf("%w: %s identity not signed by the %s CA", ErrInvalidIdentity, id.Kind, map[bool]string{true: "host", false: "user"}[id.Kind == KindHost])
	}
	if id.Cluster != cluster {
		return nil, fmt.Errorf("%w: identity of cluster %q", ErrInvalidIdentity, id.Cluster)
	}
	return id, nil
}

// authorize derives the caller's identity and checks the table.
func (s *Server) authorize(ctx context.Context, method string) (context.Context, error) {
	var id *Identity
	if p, ok := peer.FromContext(ctx); ok {
		if ti, ok := p.AuthInfo.(credentials.TLSInfo); ok {
			var err error
			id, err = IdentityFromState(ti.State, s.cluster, s.cas[CAHost].cert, s.cas[CAUser].cert)
			if err != nil {
				s.emit(ctx, audit.Event{Type: audit.TypeAccessDenied, Fields: map[string]string{"method": method, "reason": "invalid identity"}})
				return ctx, statusErr(codes.Unauthenticated, "authapi: invalid client identity")
			}
		}
	}
	if !Allowed(method, id) {
		actor := ""
		if id != nil {
			actor = id.Name
		}
		s.emit(ctx, audit.Event{Type: audit.TypeAccessDenied, Actor: actor, Fields: map[string]string{"method": method, "classes": fmt.Sprint(id.Classes())}})
		return ctx, statusErr(codes.PermissionDenied, "authapi: %s may not call %s", fmt.Sprint(id.Classes()), method)
	}
	return context.WithValue(ctx, ctxKey{}, id), nil
}

func (s *Server) unaryAuthz(ctx context.Context, req any, info *grpc.UnaryServerInfo, h grpc.UnaryHandler) (any, error) {
	ctx, err := s.authorize(ctx, info.FullMethod)
	if err != nil {
		return nil, err
	}
	return h(ctx, req)
}

type authedStream struct {
	grpc.ServerStream
	ctx context.Context
}

func (a *authedStream) Context() context.Context { return a.ctx }

func (s *Server) streamAuthz(srv any, ss grpc.ServerStream, info *grpc.StreamServerInfo, h grpc.StreamHandler) error {
	ctx, err := s.authorize(ss.Context(), info.FullMethod)
	if err != nil {
		return err
	}
	return h(srv, &authedStream{ServerStream: ss, ctx: ctx})
}

// emit records an audit event, filling in the cluster and source; a
// failure to record is logged, not returned.
func (s *Server) emit(ctx context.Context, e audit.Event) {
	e.Cluster = s.cluster
	if e.Source == "" {
		e.Source = sourceOf(ctx)
	}
	if err := s.audit.Emit(context.WithoutCancel(ctx), e); err != nil {
		s.log.Warn("audit event not recorded", "type", e.Type, "err", err)
	}
}

// limiter is a per-source token bucket.
type limiter struct {
	mu      sync.Mutex
	rate    float64 // tokens per second
	burst   float64
	now     func() time.Time
	buckets map[string]*bucket
}

type bucket struct {
	tokens float64
	last   time.Time
}

func newLimiter(perMinute int, now func() time.Time) *limiter {
	if perMinute < 0 {
		return nil
	}
	return &limiter{rate: float64(perMinute) / 60, burst: float64(perMinute), now: now, buckets: map[string]*bucket{}}
}

// allow takes a token for source, or reports false.
func (l *limiter) allow(source string) bool {
	if l == nil {
		return true
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	now := l.now()
	if len(l.buckets) > 10000 {
		for k, b := range l.buckets {
			if now.Sub(b.last).Seconds()*l.rate >= l.burst {
				delete(l.buckets, k)
			}
		}
	}
	b := l.buckets[source]
	if b == nil {
		b = &bucket{tokens: l.burst, last: now}
		l.buckets[source] = b
	}
	b.tokens = min(l.burst, b.tokens+now.Sub(b.last).Seconds()*l.rate)
	b.last = now
	if b.tokens < 1 {
		return false
	}
	b.tokens--
	return true
}

// IssueIdentity issues credentials directly from this instance's CAs,
// without an RPC: kind is "admin", "user", "agent", "proxy" or "auth" as in
// SignIdentity, ttl zero means 30 days. It is how the first admin identity
// of a cluster is made (cmd/auth writes one to its data directory), so
// guard what it returns like the backend itself.
func (s *Server) IssueIdentity(ctx context.Context, kind, name string, ttl time.Duration) (*Credentials, error) {
	key, skey, spub, err := newKeys()
	if err != nil {
		return nil, err
	}
	local := context.WithValue(ctx, ctxKey{}, &Identity{Kind: KindAdmin, Name: "local:" + s.hostID, Cluster: s.cluster})
	resp, err := (&service{s: s}).SignIdentity(local, &authv1.SignIdentityRequest{
		Kind: kind, Name: name, Ttl: durationpb.New(ttl), TlsPublicKey: marshalPub(key), SshPublicKey: string(ssh.MarshalAuthorizedKey(spub)),
	})
	if err != nil {
		return nil, rpcError("IssueIdentity", err)
	}
	return newCredentials(resp.TlsCert, resp.SshCert, resp.Authorities, key, skey)
}
