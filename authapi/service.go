package authapi

import (
	"bytes"
	"context"
	"crypto"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"regexp"
	"slices"
	"sort"
	"strings"
	"time"

	"golang.org/x/crypto/bcrypt"
	"golang.org/x/crypto/ssh"
	"google.golang.org/grpc/codes"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/sallyport/sallyport/audit"
	authv1 "github.com/sallyport/sallyport/authapi/proto/sallyport/auth/v1"
	"github.com/sallyport/sallyport/authapi/totp"
	"github.com/sallyport/sallyport/backend"
)

// Backend keys (all under these prefixes):
//
//	/authorities/<type>          CA record (JSON, private keys included)
//	/tokens/<sha256 hex>         join token (JSON; the value is never stored)
//	/signup/<sha256 hex>         sign-up token (JSON)
//	/users/<name>                user (JSON, bcrypt hash, TOTP secret)
//	/roles/<name>                role (JSON)
//	/presence/<kind>/<host ID>   heartbeat (protobuf), with Expires
//	/audit/events/<ns>/<id>      audit event (JSON), see package audit
var (
	prefixTokens   = []byte("/tokens/")
	prefixSignup   = []byte("/signup/")
	prefixUsers    = []byte("/users/")
	prefixRoles    = []byte("/roles/")
	prefixPresence = []byte("/presence/")
)

var nameRe = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._@-]{0,127}$`)

type service struct {
	authv1.UnimplementedAuthServiceServer
	s *Server
}

func hashToken(tok string) string {
	sum := sha256.Sum256([]byte(tok))
	return hex.EncodeToString(sum[:])
}

func newSecretToken() string {
	var b [16]byte
	rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

func (s *Server) authorities() []*authv1.CertAuthority {
	out := make([]*authv1.CertAuthority, 0, len(caTypes))
	for _, t := range caTypes {
		ca := s.cas[t]
		out = append(out, &authv1.CertAuthority{Type: t, ClusterName: s.cluster, TlsCert: ca.cert.Raw, SshPublicKey: ca.sshPub})
	}
	return out
}

func internalErr(s *Server, what string, err error) error {
	s.log.Error("internal error", "op", what, "err", err)
	return statusErr(codes.Internal, "authapi: %s failed", what)
}

func (x *service) Ping(ctx context.Context, _ *authv1.PingRequest) (*authv1.PingResponse, error) {
	id := callerFrom(ctx)
	r := &authv1.PingResponse{ClusterName: x.s.cluster, ServerVersion: Version, ServerHostId: x.s.hostID, CallerKind: ClassNone}
	if id != nil {
		r.CallerKind = strings.Join(id.Classes(), ",")
		r.CallerName = id.Name
	}
	return r, nil
}

func (x *service) GetCertAuthorities(context.Context, *authv1.GetCertAuthoritiesRequest) (*authv1.GetCertAuthoritiesResponse, error) {
	return &authv1.GetCertAuthoritiesResponse{Authorities: x.s.authorities()}, nil
}

// --- join tokens ---

type tokenRecord struct {
	Roles    []string  `json:"roles"`
	Expires  time.Time `json:"expires"`
	UsesLeft int       `json:"uses_left"`
	Created  time.Time `json:"created"`
}

func (r *tokenRecord) proto(id string) *authv1.JoinToken {
	return &authv1.JoinToken{Id: id, Roles: r.Roles, Expires: timestamppb.New(r.Expires), UsesLeft: int32(r.UsesLeft), Created: timestamppb.New(r.Created)}
}

func validHostRoles(roles []string) bool {
	if len(roles) == 0 {
		return false
	}
	for _, r := range roles {
		if r != RoleAgent && r != RoleProxy && r != RoleAuth {
			return false
		}
	}
	return true
}

func (x *service) CreateJoinToken(ctx context.Context, req *authv1.CreateJoinTokenRequest) (*authv1.CreateJoinTokenResponse, error) {
	s := x.s
	if !validHostRoles(req.Roles) {
		return nil, statusErr(codes.InvalidArgument, "authapi: token roles must be among agent, proxy, auth")
	}
	ttl := req.Ttl.AsDuration()
	if ttl == 0 {
		ttl = 30 * time.Minute
	}
	if ttl < 0 || ttl > 365*24*time.Hour {
		return nil, statusErr(codes.InvalidArgument, "authapi: token ttl out of range")
	}
	uses := int(req.Uses)
	if uses == 0 {
		uses = 1
	}
	if uses < 0 || uses > 1_000_000 {
		return nil, statusErr(codes.InvalidArgument, "authapi: token uses out of range")
	}
	now := s.now()
	rec := tokenRecord{Roles: slices.Compact(slices.Sorted(slices.Values(req.Roles))), Expires: now.Add(ttl).UTC(), UsesLeft: uses, Created: now.UTC()}
	tok := newSecretToken()
	id := hashToken(tok)
	data, _ := json.Marshal(rec)
	if _, err := s.cfg.Backend.Create(ctx, backend.Item{Key: append(bytes.Clone(prefixTokens), id...), Value: data, Expires: rec.Expires}); err != nil {
		return nil, internalErr(s, "store token", err)
	}
	s.emit(ctx, audit.Event{Type: audit.TypeAdminChange, Actor: callerFrom(ctx).Name, Success: true, Fields: map[string]string{"op": "token.create", "token_id": id, "roles": strings.Join(rec.Roles, ",")}})
	return &authv1.CreateJoinTokenResponse{Token: tok, Info: rec.proto(id)}, nil
}

func (x *service) ListJoinTokens(ctx context.Context, _ *authv1.ListJoinTokensRequest) (*authv1.ListJoinTokensResponse, error) {
	items, err := rangeAll(ctx, x.s.cfg.Backend, prefixTokens)
	if err != nil {
		return nil, internalErr(x.s, "list tokens", err)
	}
	out := &authv1.ListJoinTokensResponse{}
	for _, it := range items {
		var r tokenRecord
		if json.Unmarshal(it.Value, &r) == nil {
			out.Tokens = append(out.Tokens, r.proto(string(it.Key[len(prefixTokens):])))
		}
	}
	return out, nil
}

func (x *service) DeleteJoinToken(ctx context.Context, req *authv1.DeleteJoinTokenRequest) (*authv1.DeleteJoinTokenResponse, error) {
	if len(req.Id) != 64 {
		return nil, statusErr(codes.InvalidArgument, "authapi: token id must be 64 hex digits")
	}
	err := x.s.cfg.Backend.Delete(ctx, append(bytes.Clone(prefixTokens), req.Id...))
	if errors.Is(err, backend.ErrNotFound) {
		return nil, statusErr(codes.NotFound, "authapi: no such token")
	}
	if err != nil {
		return nil, internalErr(x.s, "delete token", err)
	}
	x.s.emit(ctx, audit.Event{Type: audit.TypeAdminChange, Actor: callerFrom(ctx).Name, Success: true, Fields: map[string]string{"op": "token.delete", "token_id": req.Id}})
	return &authv1.DeleteJoinTokenResponse{}, nil
}

func rangeAll(ctx context.Context, b backend.Backend, prefix []byte) ([]backend.Item, error) {
	var out []backend.Item
	start, end := prefix, backend.RangeEnd(prefix)
	for start != nil {
		res, err := b.GetRange(ctx, start, end, 0)
		if err != nil {
			return nil, err
		}
		out = append(out, res.Items...)
		start = res.Next
	}
	return out, nil
}

// consumeToken uses one use of a join token; it returns the record, or a
// reason (for the audit log only) when the token is not valid.
func (s *Server) consumeToken(ctx context.Context, tok string) (*tokenRecord, string, error) {
	if tok == "" || len(tok) > 256 {
		return nil, "malformed", nil
	}
	key := append(bytes.Clone(prefixTokens), hashToken(tok)...)
	for range 10 {
		item, err := s.cfg.Backend.Get(ctx, key)
		if errors.Is(err, backend.ErrNotFound) {
			return nil, "unknown or expired", nil
		}
		if err != nil {
			return nil, "", err
		}
		var rec tokenRecord
		if err := json.Unmarshal(item.Value, &rec); err != nil {
			return nil, "", err
		}
		if !s.now().Before(rec.Expires) {
			return nil, "expired", nil
		}
		if rec.UsesLeft <= 0 {
			return nil, "used up", nil
		}
		rec.UsesLeft--
		if rec.UsesLeft == 0 {
			_, err = s.cfg.Backend.AtomicWrite(ctx, []backend.ConditionalAction{{
				Key: key, Condition: backend.Condition{Kind: backend.Revision, Revision: item.Revision}, Action: backend.ActionDelete,
			}})
		} else {
			data, _ := json.Marshal(rec)
			_, err = s.cfg.Backend.CompareAndSwap(ctx, backend.Item{Key: key, Revision: item.Revision}, backend.Item{Key: key, Value: data, Expires: item.Expires})
		}
		if errors.Is(err, backend.ErrCompareFailed) {
			continue // another join used it at the same moment: re-read
		}
		if err != nil {
			return nil, "", err
		}
		return &rec, "", nil
	}
	return nil, "", errors.New("token update contended")
}

// --- host identities ---

func (s *Server) issueHost(hostID, nodeName string, roles, addrs []string, tlsPub []byte, sshPub string) (*authv1.HostIdentityResponse, error) {
	pub, err := parseTLSPublicKey(tlsPub)
	if err != nil {
		return nil, statusErr(codes.InvalidArgument, "%v", err)
	}
	spub, err := parseSSHPublicKey(sshPub)
	if err != nil {
		return nil, statusErr(codes.InvalidArgument, "%v", err)
	}
	if len(addrs) > 64 || len(nodeName) > 256 {
		return nil, statusErr(codes.InvalidArgument, "authapi: too many addresses")
	}
	now := s.now()
	notAfter := now.Add(s.cfg.HostCertTTL)
	principals := []string{hostID, hostID + "." + s.cluster}
	if nodeName != "" {
		principals = append(principals, nodeName)
	}
	principals = append(principals, addrs...)
	dns, ips := hostNames(principals...)
	id := &Identity{Kind: KindHost, Name: hostID, Cluster: s.cluster, Roles: roles, Principals: append(dns, ipStrings(ips)...)}
	der, err := s.cas[CAHost].signTLS(certRequest{pub: pub, id: id, notBefore: now.Add(-time.Minute), notAfter: notAfter, dnsNames: dns, ips: ips, server: true})
	if err != nil {
		return nil, internalErr(s, "sign host certificate", err)
	}
	resp := &authv1.HostIdentityResponse{HostId: hostID, Roles: roles, TlsCert: der, Authorities: s.authorities(), Expires: timestamppb.New(notAfter)}
	if spub != nil {
		exts := map[string]string{"sallyport-cluster@sallyport": s.cluster, "sallyport-roles@sallyport": strings.Join(roles, ",")}
		resp.SshCert, err = s.cas[CAHost].signSSH(spub, ssh.HostCert, hostID, id.Principals, now.Add(-time.Minute), notAfter, exts)
		if err != nil {
			return nil, internalErr(s, "sign ssh host certificate", err)
		}
	}
	return resp, nil
}

func ipStrings(ips []net.IP) []string {
	out := make([]string, len(ips))
	for i, ip := range ips {
		out[i] = ip.String()
	}
	return out
}

func (x *service) Join(ctx context.Context, req *authv1.JoinRequest) (*authv1.HostIdentityResponse, error) {
	s := x.s
	src := sourceOf(ctx)
	fail := func(reason string) error {
		s.emit(ctx, audit.Event{Type: audit.TypeJoinFailed, Actor: req.HostId, Fields: map[string]string{"reason": reason, "token_id": hashToken(req.Token)}})
		s.log.Info("join refused", "source", src, "reason", reason)
		return statusErr(codes.Unauthenticated, "authapi: join refused: invalid token")
	}
	if !s.limiter.allow(src) {
		s.emit(ctx, audit.Event{Type: audit.TypeJoinFailed, Actor: req.HostId, Fields: map[string]string{"reason": "rate limited"}})
		return nil, statusErr(codes.ResourceExhausted, "authapi: too many attempts; retry later")
	}
	hostID := req.HostId
	if hostID == "" {
		hostID = newID()
	}
	if !hostIDRe.MatchString(hostID) {
		return nil, statusErr(codes.InvalidArgument, "authapi: invalid host ID")
	}
	// Check the keys before using up a token use.
	if _, err := parseTLSPublicKey(req.TlsPublicKey); err != nil {
		return nil, statusErr(codes.InvalidArgument, "%v", err)
	}
	if _, err := parseSSHPublicKey(req.SshPublicKey); err != nil {
		return nil, statusErr(codes.InvalidArgument, "%v", err)
	}
	rec, reason, err := s.consumeToken(ctx, req.Token)
	if err != nil {
		return nil, internalErr(s, "check token", err)
	}
	if rec == nil {
		return nil, fail(reason)
	}
	resp, err := s.issueHost(hostID, req.NodeName, rec.Roles, req.PublicAddrs, req.TlsPublicKey, req.SshPublicKey)
	if err != nil {
		return nil, err
	}
	s.emit(ctx, audit.Event{Type: audit.TypeJoin, Actor: hostID, Success: true, Fields: map[string]string{"roles": strings.Join(rec.Roles, ","), "token_id": hashToken(req.Token)}})
	s.emit(ctx, audit.Event{Type: audit.TypeCertIssued, Actor: hostID, Success: true, Fields: map[string]string{"kind": "host", "roles": strings.Join(rec.Roles, ","), "expires": resp.Expires.AsTime().Format(time.RFC3339)}})
	s.log.Info("host joined", "host_id", hostID, "roles", rec.Roles, "source", src)
	return resp, nil
}

func (x *service) RenewHostIdentity(ctx context.Context, req *authv1.RenewHostIdentityRequest) (*authv1.HostIdentityResponse, error) {
	s := x.s
	id := callerFrom(ctx)
	resp, err := s.issueHost(id.Name, "", id.Roles, req.PublicAddrs, req.TlsPublicKey, req.SshPublicKey)
	if err != nil {
		return nil, err
	}
	s.emit(ctx, audit.Event{Type: audit.TypeRenew, Actor: id.Name, Success: true, Fields: map[string]string{"roles": strings.Join(id.Roles, ",")}})
	s.emit(ctx, audit.Event{Type: audit.TypeCertIssued, Actor: id.Name, Success: true, Fields: map[string]string{"kind": "host", "expires": resp.Expires.AsTime().Format(time.RFC3339)}})
	return resp, nil
}

// --- users and roles ---

type userRecord struct {
	Name         string    `json:"name"`
	Roles        []string  `json:"roles"`
	PasswordHash []byte    `json:"password_hash,omitempty"`
	TOTPSecret   string    `json:"totp_secret,omitempty"`
	TOTPLast     uint64    `json:"totp_last,omitempty"`
	Created      time.Time `json:"created"`
}

func (u *userRecord) proto() *authv1.User {
	return &authv1.User{Name: u.Name, Roles: u.Roles, HasPassword: len(u.PasswordHash) > 0, HasTotp: u.TOTPSecret != "", Created: timestamppb.New(u.Created)}
}

func userKey(name string) []byte { return append(bytes.Clone(prefixUsers), name...) }
func roleKey(name string) []byte { return append(bytes.Clone(prefixRoles), name...) }

func (s *Server) getUser(ctx context.Context, name string) (*userRecord, backend.Item, error) {
	item, err := s.cfg.Backend.Get(ctx, userKey(name))
	if err != nil {
		return nil, item, err
	}
	var u userRecord
	if err := json.Unmarshal(item.Value, &u); err != nil {
		return nil, item, err
	}
	return &u, item, nil
}

// updateUser applies f to the user record under compare-and-swap.
func (s *Server) updateUser(ctx context.Context, name string, f func(*userRecord) error) (*userRecord, error) {
	for range 10 {
		u, item, err := s.getUser(ctx, name)
		if err != nil {
			return nil, err
		}
		if err := f(u); err != nil {
			return nil, err
		}
		data, _ := json.Marshal(u)
		_, err = s.cfg.Backend.CompareAndSwap(ctx, backend.Item{Key: item.Key, Revision: item.Revision}, backend.Item{Key: item.Key, Value: data})
		if errors.Is(err, backend.ErrCompareFailed) {
			continue
		}
		return u, err
	}
	return nil, errors.New("user update contended")
}

func checkPassword(p string) error {
	if len(p) < 8 || len(p) > 72 {
		return statusErr(codes.InvalidArgument, "authapi: password must be 8 to 72 bytes")
	}
	return nil
}

func (x *service) UpsertUser(ctx context.Context, req *authv1.UpsertUserRequest) (*authv1.UpsertUserResponse, error) {
	s := x.s
	if !nameRe.MatchString(req.Name) {
		return nil, statusErr(codes.InvalidArgument, "authapi: invalid user name")
	}
	for _, r := range req.Roles {
		if !nameRe.MatchString(r) {
			return nil, statusErr(codes.InvalidArgument, "authapi: invalid role name %q", r)
		}
	}
	var hash []byte
	if req.Password != "" {
		if err := checkPassword(req.Password); err != nil {
			return nil, err
		}
		var err error
		if hash, err = bcrypt.GenerateFromPassword([]byte(req.Password), s.cfg.BcryptCost); err != nil {
			return nil, internalErr(s, "hash password", err)
		}
	}
	resp := &authv1.UpsertUserResponse{}
	var secret string
	if req.EnableTotp {
		secret = totp.NewSecret()
		resp.TotpUrl = totp.Config{}.URL(s.cluster, req.Name, secret)
	}
	apply := func(u *userRecord) error {
		u.Roles = req.Roles
		if hash != nil {
			u.PasswordHash = hash
		}
		if secret != "" {
			u.TOTPSecret, u.TOTPLast = secret, 0
		}
		return nil
	}
	u, err := s.updateUser(ctx, req.Name, apply)
	if errors.Is(err, backend.ErrNotFound) {
		u = &userRecord{Name: req.Name, Created: s.now().UTC()}
		apply(u)
		data, _ := json.Marshal(u)
		_, err = s.cfg.Backend.Create(ctx, backend.Item{Key: userKey(req.Name), Value: data})
		if errors.Is(err, backend.ErrAlreadyExists) {
			u, err = s.updateUser(ctx, req.Name, apply)
		}
	}
	if err != nil {
		return nil, internalErr(s, "store user", err)
	}
	if len(u.PasswordHash) == 0 {
		tok := newSecretToken()
		exp := s.now().Add(s.cfg.SignupTTL)
		data, _ := json.Marshal(signupRecord{User: u.Name, Expires: exp.UTC()})
		if _, err := s.cfg.Backend.Create(ctx, backend.Item{Key: append(bytes.Clone(prefixSignup), hashToken(tok)...), Value: data, Expires: exp}); err != nil {
			return nil, internalErr(s, "store sign-up token", err)
		}
		resp.SignupToken, resp.SignupExpires = tok, timestamppb.New(exp)
	}
	resp.User = u.proto()
	s.emit(ctx, audit.Event{Type: audit.TypeAdminChange, Actor: callerFrom(ctx).Name, Success: true, Fields: map[string]string{"op": "user.upsert", "user": u.Name, "roles": strings.Join(u.Roles, ",")}})
	return resp, nil
}

type signupRecord struct {
	User    string    `json:"user"`
	Expires time.Time `json:"expires"`
}

func (x *service) CompleteSignup(ctx context.Context, req *authv1.CompleteSignupRequest) (*authv1.CompleteSignupResponse, error) {
	s := x.s
	if !s.limiter.allow(sourceOf(ctx)) {
		return nil, statusErr(codes.ResourceExhausted, "authapi: too many attempts; retry later")
	}
	if err := checkPassword(req.Password); err != nil {
		return nil, err
	}
	refused := func(reason string) error {
		s.emit(ctx, audit.Event{Type: audit.TypeSignup, Fields: map[string]string{"reason": reason}})
		return statusErr(codes.Unauthenticated, "authapi: sign-up refused: invalid token")
	}
	if req.Token == "" || len(req.Token) > 256 {
		return nil, refused("malformed")
	}
	key := append(bytes.Clone(prefixSignup), hashToken(req.Token)...)
	item, err := s.cfg.Backend.Get(ctx, key)
	if errors.Is(err, backend.ErrNotFound) {
		return nil, refused("unknown or expired")
	}
	if err != nil {
		return nil, internalErr(s, "read sign-up token", err)
	}
	var rec signupRecord
	if json.Unmarshal(item.Value, &rec) != nil || !s.now().Before(rec.Expires) {
		return nil, refused("expired")
	}
	if _, err := s.cfg.Backend.AtomicWrite(ctx, []backend.ConditionalAction{{Key: key, Condition: backend.Condition{Kind: backend.Revision, Revision: item.Revision}, Action: backend.ActionDelete}}); err != nil {
		return nil, refused("already used")
	}
	hash, err := bcrypt.GenerateFromPassword([]byte(req.Password), s.cfg.BcryptCost)
	if err != nil {
		return nil, internalErr(s, "hash password", err)
	}
	if _, err := s.updateUser(ctx, rec.User, func(u *userRecord) error { u.PasswordHash = hash; return nil }); err != nil {
		return nil, refused("user gone")
	}
	s.emit(ctx, audit.Event{Type: audit.TypeSignup, Actor: rec.User, Success: true})
	return &authv1.CompleteSignupResponse{User: rec.User}, nil
}

func (x *service) ListUsers(ctx context.Context, _ *authv1.ListUsersRequest) (*authv1.ListUsersResponse, error) {
	items, err := rangeAll(ctx, x.s.cfg.Backend, prefixUsers)
	if err != nil {
		return nil, internalErr(x.s, "list users", err)
	}
	out := &authv1.ListUsersResponse{}
	for _, it := range items {
		var u userRecord
		if json.Unmarshal(it.Value, &u) == nil {
			out.Users = append(out.Users, u.proto())
		}
	}
	return out, nil
}

func (x *service) DeleteUser(ctx context.Context, req *authv1.DeleteUserRequest) (*authv1.DeleteUserResponse, error) {
	if err := x.s.deleteNamed(ctx, userKey(req.Name), req.Name, "user"); err != nil {
		return nil, err
	}
	return &authv1.DeleteUserResponse{}, nil
}

func (s *Server) deleteNamed(ctx context.Context, key []byte, name, what string) error {
	if !nameRe.MatchString(name) {
		return statusErr(codes.InvalidArgument, "authapi: invalid %s name", what)
	}
	err := s.cfg.Backend.Delete(ctx, key)
	if errors.Is(err, backend.ErrNotFound) {
		return statusErr(codes.NotFound, "authapi: no %s %q", what, name)
	}
	if err != nil {
		return internalErr(s, "delete "+what, err)
	}
	s.emit(ctx, audit.Event{Type: audit.TypeAdminChange, Actor: callerFrom(ctx).Name, Success: true, Fields: map[string]string{"op": what + ".delete", what: name}})
	return nil
}

// RoleFromProto converts a wire role.
func RoleFromProto(r *authv1.Role) Role {
	out := Role{Name: r.GetName(), Logins: r.GetLogins(), DBNames: r.GetDbNames(), DBUsers: r.GetDbUsers(), Apps: r.GetApps(), MaxSessionTTL: Duration(r.GetMaxSessionTtl().AsDuration())}
	if len(r.GetNodeLabels()) > 0 {
		out.NodeLabels = map[string][]string{}
		for k, v := range r.GetNodeLabels() {
			out.NodeLabels[k] = v.GetValues()
		}
	}
	return out
}

// Proto converts a role to its wire form.
func (r *Role) Proto() *authv1.Role {
	out := &authv1.Role{Name: r.Name, Logins: r.Logins, DbNames: r.DBNames, DbUsers: r.DBUsers, Apps: r.Apps}
	if r.MaxSessionTTL != 0 {
		out.MaxSessionTtl = durationpb.New(time.Duration(r.MaxSessionTTL))
	}
	if len(r.NodeLabels) > 0 {
		out.NodeLabels = map[string]*authv1.LabelValues{}
		for k, v := range r.NodeLabels {
			out.NodeLabels[k] = &authv1.LabelValues{Values: v}
		}
	}
	return out
}

func (x *service) UpsertRole(ctx context.Context, req *authv1.UpsertRoleRequest) (*authv1.UpsertRoleResponse, error) {
	r := RoleFromProto(req.Role)
	if !nameRe.MatchString(r.Name) {
		return nil, statusErr(codes.InvalidArgument, "authapi: invalid role name")
	}
	if r.MaxSessionTTL < 0 {
		return nil, statusErr(codes.InvalidArgument, "authapi: negative max_session_ttl")
	}
	data, _ := json.Marshal(r)
	if len(data) > 32<<10 {
		return nil, statusErr(codes.InvalidArgument, "authapi: role too large")
	}
	if _, err := x.s.cfg.Backend.Put(ctx, backend.Item{Key: roleKey(r.Name), Value: data}); err != nil {
		return nil, internalErr(x.s, "store role", err)
	}
	x.s.emit(ctx, audit.Event{Type: audit.TypeAdminChange, Actor: callerFrom(ctx).Name, Success: true, Fields: map[string]string{"op": "role.upsert", "role": r.Name}})
	return &authv1.UpsertRoleResponse{}, nil
}

func (x *service) ListRoles(ctx context.Context, _ *authv1.ListRolesRequest) (*authv1.ListRolesResponse, error) {
	items, err := rangeAll(ctx, x.s.cfg.Backend, prefixRoles)
	if err != nil {
		return nil, internalErr(x.s, "list roles", err)
	}
	out := &authv1.ListRolesResponse{}
	for _, it := range items {
		var r Role
		if json.Unmarshal(it.Value, &r) == nil {
			out.Roles = append(out.Roles, r.Proto())
		}
	}
	return out, nil
}

func (x *service) DeleteRole(ctx context.Context, req *authv1.DeleteRoleRequest) (*authv1.DeleteRoleResponse, error) {
	if err := x.s.deleteNamed(ctx, roleKey(req.Name), req.Name, "role"); err != nil {
		return nil, err
	}
	return &authv1.DeleteRoleResponse{}, nil
}

// resolveRoles reads the named roles; missing roles are skipped.
func (s *Server) resolveRoles(ctx context.Context, names []string) ([]Role, error) {
	var out []Role
	for _, n := range names {
		item, err := s.cfg.Backend.Get(ctx, roleKey(n))
		if errors.Is(err, backend.ErrNotFound) {
			continue
		}
		if err != nil {
			return nil, err
		}
		var r Role
		if err := json.Unmarshal(item.Value, &r); err != nil {
			return nil, err
		}
		out = append(out, r)
	}
	return out, nil
}

// dummyHash is compared against when the user does not exist, so that an
// unknown user costs as much time as a wrong password.
var dummyHash, _ = bcrypt.GenerateFromPassword([]byte("sallyport-not-a-password"), bcrypt.MinCost)

func (x *service) Login(ctx context.Context, req *authv1.LoginRequest) (*authv1.UserCertsResponse, error) {
	s := x.s
	if !s.limiter.allow(sourceOf(ctx)) {
		s.emit(ctx, audit.Event{Type: audit.TypeLoginFailed, Actor: req.User, Fields: map[string]string{"reason": "rate limited"}})
		return nil, statusErr(codes.ResourceExhausted, "authapi: too many attempts; retry later")
	}
	fail := func(reason string) error {
		s.emit(ctx, audit.Event{Type: audit.TypeLoginFailed, Actor: req.User, Fields: map[string]string{"reason": reason}})
		return statusErr(codes.Unauthenticated, "authapi: login failed")
	}
	var pub crypto.PublicKey
	var err error
	switch {
	case len(req.Csr) > 0 && len(req.TlsPublicKey) > 0:
		return nil, statusErr(codes.InvalidArgument, "authapi: send tls_public_key or csr, not both")
	case len(req.Csr) > 0:
		pub, err = ParseCSR(req.Csr)
	default:
		pub, err = parseTLSPublicKey(req.TlsPublicKey)
	}
	if err != nil {
		return nil, statusErr(codes.InvalidArgument, "%v", err)
	}
	spub, err := parseSSHPublicKey(req.SshPublicKey)
	if err != nil {
		return nil, statusErr(codes.InvalidArgument, "%v", err)
	}
	if !nameRe.MatchString(req.User) || len(req.Password) > 72 {
		bcrypt.CompareHashAndPassword(dummyHash, []byte(req.Password))
		return nil, fail("malformed")
	}
	u, _, err := s.getUser(ctx, req.User)
	if errors.Is(err, backend.ErrNotFound) {
		bcrypt.CompareHashAndPassword(dummyHash, []byte(req.Password))
		return nil, fail("unknown user")
	}
	if err != nil {
		return nil, internalErr(s, "read user", err)
	}
	if len(u.PasswordHash) == 0 || bcrypt.CompareHashAndPassword(u.PasswordHash, []byte(req.Password)) != nil {
		return nil, fail("bad password")
	}
	if u.TOTPSecret != "" {
		key, err := totp.DecodeSecret(u.TOTPSecret)
		if err != nil {
			return nil, internalErr(s, "decode totp secret", err)
		}
		ctr, ok, _ := totp.Config{}.Validate(key, req.TotpCode, s.now(), u.TOTPLast+1)
		if !ok {
			return nil, fail("bad totp code")
		}
		// Record the counter so the same code cannot be replayed.
		_, err = s.updateUser(ctx, u.Name, func(r *userRecord) error {
			if r.TOTPLast >= ctr {
				return errTOTPReplay
			}
			r.TOTPLast = ctr
			return nil
		})
		if errors.Is(err, errTOTPReplay) {
			return nil, fail("totp code replayed")
		}
		if err != nil {
			return nil, internalErr(s, "update user", err)
		}
	}
	roles, err := s.resolveRoles(ctx, u.Roles)
	if err != nil {
		return nil, internalErr(s, "read roles", err)
	}
	ttl := s.cfg.MaxUserCertTTL
	var logins []string
	for _, r := range roles {
		if r.MaxSessionTTL > 0 && time.Duration(r.MaxSessionTTL) < ttl {
			ttl = time.Duration(r.MaxSessionTTL)
		}
		logins = append(logins, r.Logins...)
	}
	sort.Strings(logins)
	logins = slices.Compact(logins)
	if want := req.Ttl.AsDuration(); want > 0 && want < ttl {
		ttl = want
	}
	now := s.now()
	notAfter := now.Add(ttl)
	id := &Identity{Kind: KindUser, Name: u.Name, Cluster: s.cluster, Roles: u.Roles, Rules: roles, Principals: logins}
	der, err := s.cas[CAUser].signTLS(certRequest{pub: pub, id: id, notBefore: now.Add(-time.Minute), notAfter: notAfter})
	if err != nil {
		return nil, internalErr(s, "sign user certificate", err)
	}
	resp := &authv1.UserCertsResponse{TlsCert: der, Expires: timestamppb.New(notAfter), Authorities: s.authorities()}
	if spub != nil {
		exts, err := s.userSSHExtensionsWithRules(u.Roles, roles)
		if err != nil {
			return nil, statusErr(codes.InvalidArgument, "%v", err)
		}
		if resp.SshCert, err = s.cas[CAUser].signSSH(spub, ssh.UserCert, u.Name, logins, now.Add(-time.Minute), notAfter, exts); err != nil {
			return nil, internalErr(s, "sign ssh user certificate", err)
		}
	}
	s.emit(ctx, audit.Event{Type: audit.TypeLogin, Actor: u.Name, Success: true, Fields: map[string]string{"mfa": fmt.Sprint(u.TOTPSecret != "")}})
	s.emit(ctx, audit.Event{Type: audit.TypeCertIssued, Actor: u.Name, Success: true, Fields: map[string]string{"kind": "user", "logins": strings.Join(logins, ","), "expires": notAfter.UTC().Format(time.RFC3339)}})
	return resp, nil
}

var errTOTPReplay = errors.New("totp replay")

func (s *Server) userSSHExtensions(roles []string) map[string]string {
	return map[string]string{
		"permit-pty":              "",
		"permit-port-forwarding":  "",
		"permit-agent-forwarding": "",
		"permit-X11-forwarding":   "",
		"permit-user-rc":          "",
		ExtCluster:                s.cluster,
		ExtRoles:                  strings.Join(roles, ","),
	}
}

// userSSHExtensionsWithRules adds the ExtRules extension (the SSH rules of
// the resolved roles) to userSSHExtensions.
func (s *Server) userSSHExtensionsWithRules(names []string, roles []Role) (map[string]string, error) {
	exts := s.userSSHExtensions(names)
	rules, err := SSHRules(roles)
	if err != nil {
		return nil, err
	}
	exts[ExtRules] = rules
	return exts, nil
}

func (x *service) SignIdentity(ctx context.Context, req *authv1.SignIdentityRequest) (*authv1.SignIdentityResponse, error) {
	s := x.s
	if !nameRe.MatchString(req.Name) {
		return nil, statusErr(codes.InvalidArgument, "authapi: invalid name")
	}
	pub, err := parseTLSPublicKey(req.TlsPublicKey)
	if err != nil {
		return nil, statusErr(codes.InvalidArgument, "%v", err)
	}
	spub, err := parseSSHPublicKey(req.SshPublicKey)
	if err != nil {
		return nil, statusErr(codes.InvalidArgument, "%v", err)
	}
	ttl := req.Ttl.AsDuration()
	if ttl == 0 {
		ttl = 30 * 24 * time.Hour
	}
	if ttl < time.Minute || ttl > 366*24*time.Hour {
		return nil, statusErr(codes.InvalidArgument, "authapi: ttl must be between a minute and a year")
	}
	now := s.now()
	notAfter := now.Add(ttl)
	var (
		id       *Identity
		ca       = s.cas[CAUser]
		certType = uint32(ssh.UserCert)
		exts     map[string]string
	)
	switch req.Kind {
	case string(KindAdmin):
		id = &Identity{Kind: KindAdmin, Name: req.Name, Cluster: s.cluster}
		exts = s.userSSHExtensions(nil)
	case string(KindUser):
		u, _, err := s.getUser(ctx, req.Name)
		if errors.Is(err, backend.ErrNotFound) {
			return nil, statusErr(codes.NotFound, "authapi: no user %q", req.Name)
		} else if err != nil {
			return nil, internalErr(s, "read user", err)
		}
		roles, err := s.resolveRoles(ctx, u.Roles)
		if err != nil {
			return nil, internalErr(s, "read roles", err)
		}
		var logins []string
		for _, r := range roles {
			logins = append(logins, r.Logins...)
		}
		sort.Strings(logins)
		id = &Identity{Kind: KindUser, Name: u.Name, Cluster: s.cluster, Roles: u.Roles, Rules: roles, Principals: slices.Compact(logins)}
		if exts, err = s.userSSHExtensionsWithRules(u.Roles, roles); err != nil {
			return nil, statusErr(codes.InvalidArgument, "%v", err)
		}
	case RoleAgent, RoleProxy, RoleAuth:
		if !hostIDRe.MatchString(req.Name) {
			return nil, statusErr(codes.InvalidArgument, "authapi: invalid host ID")
		}
		id = &Identity{Kind: KindHost, Name: req.Name, Cluster: s.cluster, Roles: []string{req.Kind}, Principals: []string{req.Name, req.Name + "." + s.cluster}}
		ca, certType = s.cas[CAHost], ssh.HostCert
	default:
		return nil, statusErr(codes.InvalidArgument, "authapi: kind must be admin, user, agent, proxy or auth")
	}
	dns, ips := []string(nil), []net.IP(nil)
	if id.Kind == KindHost {
		dns, ips = hostNames(id.Principals...)
	}
	der, err := ca.signTLS(certRequest{pub: pub, id: id, notBefore: now.Add(-time.Minute), notAfter: notAfter, dnsNames: dns, ips: ips, server: id.Kind == KindHost})
	if err != nil {
		return nil, internalErr(s, "sign certificate", err)
	}
	resp := &authv1.SignIdentityResponse{TlsCert: der, Expires: timestamppb.New(notAfter), Authorities: s.authorities()}
	if spub != nil {
		if resp.SshCert, err = ca.signSSH(spub, certType, id.Name, id.Principals, now.Add(-time.Minute), notAfter, exts); err != nil {
			return nil, internalErr(s, "sign ssh certificate", err)
		}
	}
	s.emit(ctx, audit.Event{Type: audit.TypeCertIssued, Actor: callerFrom(ctx).Name, Success: true, Fields: map[string]string{"kind": req.Kind, "name": req.Name, "expires": notAfter.UTC().Format(time.RFC3339)}})
	return resp, nil
}

// --- presence ---

func presenceKey(kind, name string) []byte {
	return backend.Key("presence", kind, name)
}

func (x *service) Heartbeat(ctx context.Context, req *authv1.HeartbeatRequest) (*authv1.HeartbeatResponse, error) {
	s := x.s
	id := callerFrom(ctx)
	srv := req.GetServer()
	if srv == nil {
		return nil, statusErr(codes.InvalidArgument, "authapi: heartbeat without server")
	}
	if srv.Kind != RoleAgent && srv.Kind != RoleProxy {
		return nil, statusErr(codes.InvalidArgument, "authapi: server kind must be agent or proxy")
	}
	if !id.HasRole(srv.Kind) {
		return nil, statusErr(codes.PermissionDenied, "authapi: host has no %s role", srv.Kind)
	}
	if srv.Name == "" {
		srv.Name = id.Name
	}
	if srv.Name != id.Name {
		return nil, statusErr(codes.PermissionDenied, "authapi: a host may only announce itself")
	}
	ttl := req.Ttl.AsDuration()
	if ttl == 0 {
		ttl = time.Minute
	}
	if ttl < time.Second || ttl > time.Hour {
		return nil, statusErr(codes.InvalidArgument, "authapi: heartbeat ttl must be between 1s and 1h")
	}
	srv.Expires = nil
	data, err := proto.Marshal(srv)
	if err != nil || len(data) > 256<<10 {
		return nil, statusErr(codes.InvalidArgument, "authapi: server announcement too large")
	}
	key := presenceKey(srv.Kind, srv.Name)
	expires := s.now().Add(ttl)
	// An unchanged announcement only extends its lifetime.
	cur, err := s.cfg.Backend.Get(ctx, key)
	if err == nil && bytes.Equal(cur.Value, data) {
		_, err = s.cfg.Backend.KeepAlive(ctx, key, expires)
		if errors.Is(err, backend.ErrNotFound) {
			_, err = s.cfg.Backend.Put(ctx, backend.Item{Key: key, Value: data, Expires: expires})
		}
	} else {
		_, err = s.cfg.Backend.Put(ctx, backend.Item{Key: key, Value: data, Expires: expires})
	}
	if err != nil {
		return nil, internalErr(s, "store heartbeat", err)
	}
	return &authv1.HeartbeatResponse{Expires: timestamppb.New(expires)}, nil
}

func presencePrefix(kind string) ([]byte, error) {
	switch kind {
	case "":
		return bytes.Clone(prefixPresence), nil
	case RoleAgent, RoleProxy:
		return append(backend.Key("presence", kind), '/'), nil
	}
	return nil, statusErr(codes.InvalidArgument, "authapi: kind must be agent, proxy or empty")
}

func decodeServer(it backend.Item) (*authv1.Server, bool) {
	var srv authv1.Server
	if proto.Unmarshal(it.Value, &srv) != nil {
		return nil, false
	}
	if !it.Expires.IsZero() {
		srv.Expires = timestamppb.New(it.Expires)
	}
	return &srv, true
}

func (s *Server) listServers(ctx context.Context, prefix []byte) ([]*authv1.Server, error) {
	items, err := rangeAll(ctx, s.cfg.Backend, prefix)
	if err != nil {
		return nil, err
	}
	now := s.now()
	var out []*authv1.Server
	for _, it := range items {
		if !it.Expires.IsZero() && !now.Before(it.Expires) {
			continue
		}
		if srv, ok := decodeServer(it); ok {
			out = append(out, srv)
		}
	}
	return out, nil
}

func (x *service) ListServers(ctx context.Context, req *authv1.ListServersRequest) (*authv1.ListServersResponse, error) {
	prefix, err := presencePrefix(req.Kind)
	if err != nil {
		return nil, err
	}
	srvs, err := x.s.listServers(ctx, prefix)
	if err != nil {
		return nil, internalErr(x.s, "list servers", err)
	}
	if id := callerFrom(ctx); id != nil && id.Kind == KindUser {
		// A user sees the proxies and only the agents one of its roles
		// lets it reach.
		srvs = slices.DeleteFunc(srvs, func(srv *authv1.Server) bool {
			return srv.GetKind() == RoleAgent && !id.CanReachNode(srv.GetLabels())
		})
	}
	return &authv1.ListServersResponse{Servers: srvs}, nil
}

// WatchServers follows the presence keys with a backend watcher. After the
// watcher's init event it sends the full current set (INIT), then every
// change. When the watcher stops (it fell behind, or the store's change
// stream broke) it opens a new one and sends a fresh INIT.
func (x *service) WatchServers(req *authv1.WatchServersRequest, stream authv1.AuthService_WatchServersServer) error {
	s := x.s
	prefix, err := presencePrefix(req.Kind)
	if err != nil {
		return err
	}
	ctx := stream.Context()
	for {
		resync, err := s.watchOnce(ctx, prefix, stream)
		if !resync {
			return err
		}
		s.log.Info("watch re-sync", "err", err)
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-s.quit:
			return statusErr(codes.Unavailable, "authapi: server shutting down")
		case <-time.After(50 * time.Millisecond):
		}
	}
}

func (s *Server) watchOnce(ctx context.Context, prefix []byte, stream authv1.AuthService_WatchServersServer) (resync bool, err error) {
	w, err := s.cfg.Backend.NewWatcher(ctx, backend.Watch{Prefixes: [][]byte{prefix}, QueueSize: s.cfg.WatchQueueSize})
	if err != nil {
		return false, internalErr(s, "watch", err)
	}
	defer w.Close()
	for {
		select {
		case <-ctx.Done():
			return false, ctx.Err()
		case <-s.quit:
			return false, statusErr(codes.Unavailable, "authapi: server shutting down")
		case ev, ok := <-w.Events():
			if !ok {
				werr := w.Err()
				if errors.Is(werr, backend.ErrWatcherFellBehind) || errors.Is(werr, backend.ErrWatchBroken) {
					return true, werr
				}
				if ctx.Err() != nil {
					return false, ctx.Err()
				}
				return false, internalErr(s, "watch", werr)
			}
			var msg *authv1.ServerEvent
			switch ev.Type {
			case backend.OpInit:
				srvs, err := s.listServers(ctx, prefix)
				if err != nil {
					return false, internalErr(s, "list servers", err)
				}
				msg = &authv1.ServerEvent{Type: authv1.ServerEvent_TYPE_INIT, Servers: srvs}
			case backend.OpPut:
				srv, ok := decodeServer(ev.Item)
				if !ok {
					continue
				}
				msg = &authv1.ServerEvent{Type: authv1.ServerEvent_TYPE_PUT, Server: srv}
			case backend.OpDelete:
				rest := strings.TrimPrefix(string(ev.Item.Key), string(prefixPresence))
				kind, name, _ := strings.Cut(rest, "/")
				msg = &authv1.ServerEvent{Type: authv1.ServerEvent_TYPE_DELETE, Server: &authv1.Server{Kind: kind, Name: name}}
			default:
				continue
			}
			if err := stream.Send(msg); err != nil {
				return false, err
			}
		}
	}
}

// --- audit ---

func eventFromProto(e *authv1.AuditEvent) audit.Event {
	return audit.Event{ID: e.GetId(), Time: e.GetTime().AsTime(), Type: e.GetType(), Cluster: e.GetCluster(), Actor: e.GetActor(), Source: e.GetSource(), Success: e.GetSuccess(), Fields: e.GetFields()}
}

// EventProto converts an audit event to its wire form.
func EventProto(e audit.Event) *authv1.AuditEvent {
	return &authv1.AuditEvent{Id: e.ID, Time: timestamppb.New(e.Time), Type: e.Type, Cluster: e.Cluster, Actor: e.Actor, Source: e.Source, Success: e.Success, Fields: e.Fields}
}

func (x *service) EmitAuditEvent(ctx context.Context, req *authv1.EmitAuditEventRequest) (*authv1.EmitAuditEventResponse, error) {
	if req.Event == nil || req.Event.Type == "" || len(req.Event.Type) > 128 {
		return nil, statusErr(codes.InvalidArgument, "authapi: event needs a type")
	}
	e := eventFromProto(req.Event)
	if req.Event.Time == nil {
		e.Time = time.Time{}
	}
	e.ID = "" // assigned by the log
	e.Cluster = x.s.cluster
	if e.Fields == nil {
		e.Fields = map[string]string{}
	}
	e.Fields["reported_by"] = callerFrom(ctx).Name
	if e.Source == "" {
		e.Source = sourceOf(ctx)
	}
	if err := x.s.audit.Emit(ctx, e); err != nil {
		if errors.Is(err, audit.ErrInvalidEvent) {
			return nil, statusErr(codes.InvalidArgument, "%v", err)
		}
		return nil, internalErr(x.s, "store event", err)
	}
	return &authv1.EmitAuditEventResponse{}, nil
}

func (x *service) SearchAuditEvents(ctx context.Context, req *authv1.SearchAuditEventsRequest) (*authv1.SearchAuditEventsResponse, error) {
	q := audit.Query{Types: req.Types, Limit: int(req.Limit)}
	if req.From != nil {
		q.From = req.From.AsTime()
	}
	if req.To != nil {
		q.To = req.To.AsTime()
	}
	if q.Limit > 10000 {
		q.Limit = 10000
	}
	evs, err := x.s.audit.Search(ctx, q)
	if err != nil {
		return nil, internalErr(x.s, "search events", err)
	}
	out := &authv1.SearchAuditEventsResponse{}
	for _, e := range evs {
		out.Events = append(out.Events, EventProto(e))
	}
	return out, nil
}
