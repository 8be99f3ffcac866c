package proxy

import (
	"context"
	"crypto"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/sallyport/sallyport/alpn"
	"github.com/sallyport/sallyport/audit"
	"github.com/sallyport/sallyport/authapi"
)

// Paths of the web API.
const (
	PingPath  = "/webapi/ping"
	LoginPath = "/webapi/login"
	// MaxPingResponse bounds the body Ping reads.
	MaxPingResponse = 1 << 20
)

// MinClientVersion is the oldest client version the proxy serves,
// reported by /webapi/ping.
const MinClientVersion = "0.1.0"

// PingResponse is the JSON of GET /webapi/ping, with the field names of the
// Teleport Networking reference.
type PingResponse struct {
	Auth             AuthSettings     `json:"auth"`
	Proxy            ProxySettings    `json:"proxy"`
	ServerVersion    string           `json:"server_version"`
	MinClientVersion string           `json:"min_client_version"`
	ClusterName      string           `json:"cluster_name"`
	DialTimeout      authapi.Duration `json:"dial_timeout"`
}

// AuthSettings are the auth settings clients need before they log in.
type AuthSettings struct {
	// Type is the authentication type: "local" (user name and password).
	Type string `json:"type"`
	// SecondFactor is "off", "otp" or "optional".
	SecondFactor string `json:"second_factor"`
}

// ProxySettings lists where the proxy listens and is reached.
type ProxySettings struct {
	Kube              KubeSettings `json:"kube"`
	SSH               SSHSettings  `json:"ssh"`
	DB                DBSettings   `json:"db"`
	TLSRoutingEnabled bool         `json:"tls_routing_enabled"`
}

// KubeSettings describe the Kubernetes proxy (not served yet: Enabled is
// false).
type KubeSettings struct {
	Enabled    bool   `json:"enabled"`
	ListenAddr string `json:"listen_addr,omitempty"`
	PublicAddr string `json:"public_addr,omitempty"`
}

// SSHSettings are the proxy's SSH, tunnel and web addresses. In multiplex
// mode every address is the web port's.
type SSHSettings struct {
	ListenAddr       string `json:"listen_addr"`
	TunnelListenAddr string `json:"tunnel_listen_addr"`
	WebListenAddr    string `json:"web_listen_addr"`
	// PublicAddr is the first configured public address (with the web
	// port when it had none).
	PublicAddr string `json:"public_addr"`
	// SSHPublicAddr and TunnelPublicAddr are where clients and agents
	// dial SSH and tunnels: the public host with the SSH and tunnel
	// ports.
	SSHPublicAddr    string `json:"ssh_public_addr"`
	TunnelPublicAddr string `json:"ssh_tunnel_public_addr"`
}

// DBSettings are the database listeners (none yet: empty).
type DBSettings struct {
	PostgresListenAddr string `json:"postgres_listen_addr"`
	MySQLListenAddr    string `json:"mysql_listen_addr"`
}

// Handler returns the web API: GET /webapi/ping, POST /webapi/login and the
// ALPN connection upgrade (alpn.UpgradePath). Mount it in another server
// to serve the API from there.
func (s *Service) Handler() http.Handler {
	m := http.NewServeMux()
	m.HandleFunc("GET "+PingPath, func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusOK, s.ping())
	})
	m.HandleFunc("POST "+LoginPath, s.handleLogin)
	m.Handle(alpn.UpgradePath, s.router.UpgradeHandler())
	return m
}

func (s *Service) ping() *PingResponse {
	s.mu.Lock()
	a := s.addrs
	s.mu.Unlock()
	webPort := portOf(a.web, DefaultWebPort)
	host := hostOnly(a.web)
	public := a.web
	if len(s.cfg.PublicAddrs) > 0 {
		p := s.cfg.PublicAddrs[0]
		host = hostOnly(p)
		if _, port, err := net.SplitHostPort(p); err == nil {
			webPort = port
		}
		public = net.JoinHostPort(host, webPort)
	}
	resp := &PingResponse{
		Auth:             AuthSettings{Type: "local", SecondFactor: s.cfg.SecondFactor},
		ServerVersion:    authapi.Version,
		MinClientVersion: MinClientVersion,
		ClusterName:      s.creds.Cluster,
		DialTimeout:      authapi.Duration(s.cfg.DialTimeout),
	}
	resp.Proxy.TLSRoutingEnabled = s.cfg.Mode == Multiplex
	resp.Proxy.SSH = SSHSettings{
		ListenAddr: a.ssh, TunnelListenAddr: a.tunnel, WebListenAddr: a.web, PublicAddr: public,
		SSHPublicAddr: public, TunnelPublicAddr: public,
	}
	if s.cfg.Mode == Separate {
		resp.Proxy.SSH.SSHPublicAddr = net.JoinHostPort(host, portOf(a.ssh, DefaultSSHPort))
		resp.Proxy.SSH.TunnelPublicAddr = net.JoinHostPort(host, portOf(a.tunnel, DefaultTunnelPort))
	}
	return resp
}

func portOf(addr string, def int) string {
	if _, p, err := net.SplitHostPort(addr); err == nil && p != "" {
		return p
	}
	return strconv.Itoa(def)
}

// Ping fetches and decodes /webapi/ping from the proxy at addr
// ("host:port") with client (nil means http.DefaultClient). It reads at
// most MaxPingResponse bytes.
func Ping(ctx context.Context, client *http.Client, addr string) (*PingResponse, error) {
	if client == nil {
		client = http.DefaultClient
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "https://"+addr+PingPath, nil)
	if err != nil {
		return nil, fmt.Errorf("proxy: ping: %w", err)
	}
	resp, err := client.Do(req)
	if err != nil {
		return nil, fmt.Errorf("proxy: ping: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("proxy: ping: %s", resp.Status)
	}
	body, err := io.ReadAll(io.LimitReader(resp.Body, MaxPingResponse+1))
	if err != nil {
		return nil, fmt.Errorf("proxy: ping: %w", err)
	}
	return ParsePing(body)
}

// ParsePing decodes the JSON of /webapi/ping.
func ParsePing(body []byte) (*PingResponse, error) {
	if len(body) > MaxPingResponse {
		return nil, fmt.Errorf("proxy: ping response larger than %d bytes", MaxPingResponse)
	}
	var p PingResponse
	if err := json.Unmarshal(body, &p); err != nil {
		return nil, fmt.Errorf("proxy: ping response: %w", err)
	}
	if p.ClusterName == "" {
		return nil, errors.New("proxy: ping response without cluster_name")
	}
	return &p, nil
}

// LoginRequest is the JSON body of POST /webapi/login.
type LoginRequest struct {
	User     string `json:"user"`
	Password string `json:"password"`
	// TOTP is the current code of the user's authenticator, if enrolled.
	TOTP string `json:"totp,omitempty"`
	// TTL is the certificate lifetime wanted ("8h"); zero means the
	// longest the user's roles allow.
	TTL authapi.Duration `json:"ttl,omitempty"`
	// SSHPublicKey, when set, is the client's own SSH public key in
	// authorized_keys format (ssh-ed25519, ecdsa-sha2-nistp256/384,
	// ssh-rsa of 2048 to 8192 bits): the SSH certificate is issued for it
	// and no SSH private key is returned.
	SSHPublicKey string `json:"ssh_public_key,omitempty"`
	// TLSPublicKey (PEM "PUBLIC KEY", PKIX) or CSR (PEM "CERTIFICATE
	// REQUEST", PKCS#10), when set, is the client's own X.509 key (Ed25519,
	// ECDSA P-256/P-384, RSA of 2048 to 8192 bits): the X.509 certificate
	// is issued for it and no TLS private key is returned. At most one of
	// the two.
	TLSPublicKey string `json:"tls_public_key,omitempty"`
	CSR          string `json:"csr,omitempty"`

	sshPub ssh.PublicKey    // parsed SSHPublicKey
	tlsPub crypto.PublicKey // parsed TLSPublicKey
	csr    []byte           // DER of CSR
}

// LoginResponse is the JSON answer of a successful POST /webapi/login:
// short-lived certificates, in the file formats OpenSSH and TLS clients
// read, for the client's own public keys (LoginRequest.SSHPublicKey,
// TLSPublicKey, CSR) or for new keys made by the proxy, which are then
// returned too.
type LoginResponse struct {
	ClusterName string `json:"cluster_name"`
	User        string `json:"user"`
	// Logins are the SSH logins (principals) of the certificate.
	Logins []string `json:"logins"`
	// SSHPrivateKey is the OpenSSH private key (PEM, "id_ed25519"); empty
	// when the request carried an SSH public key.
	SSHPrivateKey string `json:"ssh_private_key,omitempty"`
	// SSHCert is the SSH user certificate ("id_ed25519-cert.pub").
	SSHCert string `json:"ssh_cert"`
	// TLSCert and TLSKey are the X.509 user certificate and its PKCS#8
	// key (PEM); TLSKey is empty when the request carried a TLS public
	// key or CSR.
	TLSCert string `json:"tls_cert"`
	TLSKey  string `json:"tls_key,omitempty"`
	// HostCAs are the cluster's host CA certificates (PEM), to verify
	// proxies and agents over TLS.
	HostCAs string `json:"host_cas"`
	// KnownHosts holds "@cert-authority * <key>" lines for the cluster's
	// SSH host CAs, ready for a known_hosts file.
	KnownHosts string    `json:"known_hosts"`
	Expires    time.Time `json:"expires"`
}

// ErrorResponse is the JSON body of every error answer of the web API.
type ErrorResponse struct {
	Error string `json:"error"`
}

// ParseLoginRequest decodes the JSON body of POST /webapi/login.
func ParseLoginRequest(body []byte) (*LoginRequest, error) {
	if len(body) > MaxLoginRequest {
		return nil, fmt.Errorf("proxy: login request larger than %d bytes", MaxLoginRequest)
	}
	var req LoginRequest
	if err := json.Unmarshal(body, &req); err != nil {
		return nil, fmt.Errorf("proxy: login request: %w", err)
	}
	if req.User == "" {
		return nil, errors.New("proxy: login request without user")
	}
	if req.TTL < 0 {
		return nil, errors.New("proxy: login request with a negative ttl")
	}
	if req.SSHPublicKey != "" {
		k, err := authapi.ParseSSHPublicKey([]byte(req.SSHPublicKey))
		if err != nil {
			return nil, fmt.Errorf("proxy: login request: %w", err)
		}
		req.sshPub = k
	}
	if req.TLSPublicKey != "" && req.CSR != "" {
		return nil, errors.New("proxy: login request with both tls_public_key and csr")
	}
	if req.TLSPublicKey != "" {
		der, err := pemBlock(req.TLSPublicKey, "PUBLIC KEY")
		if err != nil {
			return nil, err
		}
		if req.tlsPub, err = authapi.ParseTLSPublicKey(der); err != nil {
			return nil, fmt.Errorf("proxy: login request: %w", err)
		}
	}
	if req.CSR != "" {
		der, err := pemBlock(req.CSR, "CERTIFICATE REQUEST")
		if err != nil {
			return nil, err
		}
		if _, err := authapi.ParseCSR(der); err != nil {
			return nil, fmt.Errorf("proxy: login request: %w", err)
		}
		req.csr = der
	}
	return &req, nil
}

// pemBlock returns the bytes of the single PEM block of type typ in s.
func pemBlock(s, typ string) ([]byte, error) {
	b, rest := pem.Decode([]byte(s))
	if b == nil || b.Type != typ {
		return nil, fmt.Errorf("proxy: login request: want a PEM %q block", typ)
	}
	if len(strings.TrimSpace(string(rest))) != 0 {
		return nil, fmt.Errorf("proxy: login request: data after the PEM %q block", typ)
	}
	return b.Bytes, nil
}

func (s *Service) handleLogin(w http.ResponseWriter, r *http.Request) {
	client := r.RemoteAddr
	ip := hostOnly(client)
	if !s.limit.allow(ip) {
		s.emit(audit.Event{Type: audit.TypeLoginFailed, Source: client, Fields: map[string]string{"reason": "rate limited by the proxy"}})
		writeJSON(w, http.StatusTooManyRequests, ErrorResponse{"too many failed logins from this address; try again later"})
		return
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, MaxLoginRequest))
	if err != nil {
		writeJSON(w, http.StatusRequestEntityTooLarge, ErrorResponse{"login request too large"})
		return
	}
	req, err := ParseLoginRequest(body)
	if err != nil {
		writeJSON(w, http.StatusBadRequest, ErrorResponse{err.Error()})
		return
	}
	creds, err := s.auth.Login(r.Context(), authapi.LoginRequest{
		User: req.User, Password: req.Password, TOTP: req.TOTP, TTL: time.Duration(req.TTL),
		SSHPublicKey: req.sshPub, TLSPublicKey: req.tlsPub, CSR: req.csr,
	})
	if err != nil {
		status, msg := http.StatusServiceUnavailable, "auth service unavailable"
		switch {
		case errors.Is(err, authapi.ErrAuthFailed):
			s.limit.fail(ip)
			status, msg = http.StatusUnauthorized, "login failed: wrong user name, password or code"
		case errors.Is(err, authapi.ErrRateLimited):
			status, msg = http.StatusTooManyRequests, "too many attempts; try again later"
		case errors.Is(err, authapi.ErrInvalidArgument):
			status, msg = http.StatusBadRequest, "invalid login request"
		}
		s.log.Info("proxy: login failed", "user", req.User, "client", client, "err", err)
		s.emit(audit.Event{Type: audit.TypeLoginFailed, Actor: req.User, Source: client, Fields: map[string]string{"reason": msg}})
		writeJSON(w, status, ErrorResponse{msg})
		return
	}
	resp, err := loginResponse(creds)
	if err != nil {
		s.log.Error("proxy: encoding credentials", "err", err)
		writeJSON(w, http.StatusInternalServerError, ErrorResponse{"internal error"})
		return
	}
	s.emit(audit.Event{Type: audit.TypeLogin, Actor: req.User, Source: client, Success: true})
	writeJSON(w, http.StatusOK, resp)
}

func loginResponse(c *authapi.Credentials) (*LoginResponse, error) {
	if c.SSHCert == nil {
		return nil, errors.New("proxy: login issued no SSH certificate")
	}
	resp := &LoginResponse{
		ClusterName: c.Cluster,
		User:        c.Identity.Name,
		Logins:      c.SSHCert.ValidPrincipals,
		SSHCert:     string(ssh.MarshalAuthorizedKey(c.SSHCert)),
		Expires:     c.Identity.Expires,
	}
	// Private keys are returned only when the proxy made them (the client
	// sent no public key of its own).
	if c.SSHKey != nil {
		pk, err := ssh.MarshalPrivateKey(c.SSHKey, c.Identity.Name)
		if err != nil {
			return nil, err
		}
		resp.SSHPrivateKey = string(pem.EncodeToMemory(pk))
	}
	if c.Certificate.PrivateKey != nil {
		tk, err := x509.MarshalPKCS8PrivateKey(c.Certificate.PrivateKey)
		if err != nil {
			return nil, err
		}
		resp.TLSKey = string(pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: tk}))
	}
	var b strings.Builder
	for _, der := range c.Certificate.Certificate[:1] {
		b.Write(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}))
	}
	resp.TLSCert = b.String()
	b.Reset()
	for _, ca := range c.HostCAs {
		b.Write(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: ca.Raw}))
	}
	resp.HostCAs = b.String()
	b.Reset()
	for _, k := range c.SSHHostCAs {
		b.WriteString("@cert-authority * " + string(ssh.MarshalAuthorizedKey(k)))
	}
	resp.KnownHosts = b.String()
	return resp, nil
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(v)
}

// limiter counts failed logins per client address in token buckets of
// per tokens refilled over a minute.
type limiter struct {
	mu  sync.Mutex
	per float64
	m   map[string]*bucket
	now func() time.Time
}

type bucket struct {
	tokens float64
	last   time.Time
}

// maxBuckets bounds the limiter's memory; beyond it full buckets are
// dropped.
const maxBuckets = 65536

func newLimiter(per int, now func() time.Time) *limiter {
	return &limiter{per: float64(per), m: map[string]*bucket{}, now: now}
}

func (l *limiter) refill(b *bucket, now time.Time) {
	b.tokens = min(l.per, b.tokens+now.Sub(b.last).Minutes()*l.per)
	b.last = now
}

// allow reports whether ip may try to log in now.
func (l *limiter) allow(ip string) bool {
	if l.per < 0 {
		return true
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	b, ok := l.m[ip]
	if !ok {
		return true
	}
	l.refill(b, l.now())
	return b.tokens >= 1
}

// fail records a failed login from ip.
func (l *limiter) fail(ip string) {
	if l.per < 0 {
		return
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	now := l.now()
	b, ok := l.m[ip]
	if !ok {
		if len(l.m) >= maxBuckets {
			for k, ob := range l.m {
				if l.refill(ob, now); ob.tokens >= l.per {
					delete(l.m, k)
				}
			}
		}
		b = &bucket{tokens: l.per, last: now}
		l.m[ip] = b
	}
	l.refill(b, now)
	b.tokens--
}
