package authapi

import (
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"encoding/json"
	"fmt"
	"path"
	"slices"
	"time"
)

// Kind is the kind of an identity.
type Kind string

// Identity kinds.
const (
	// KindHost: an instance (agent, proxy, auth), signed by the host CA.
	KindHost Kind = "host"
	// KindUser: a person, signed by the user CA after Login.
	KindUser Kind = "user"
	// KindAdmin: an administrator of the cluster (the admin identity written
	// by cmd/auth, or one made by SignIdentity), signed by the user CA.
	KindAdmin Kind = "admin"
)

// System roles of host identities (what a join token grants).
const (
	RoleAgent = "agent"
	RoleProxy = "proxy"
	RoleAuth  = "auth"
)

// Caller classes of the authorization table (see doc.go): what a caller is,
// derived from its verified client certificate.
const (
	ClassNone  = "none"
	ClassUser  = "user"
	ClassAdmin = "admin"
	ClassAgent = RoleAgent
	ClassProxy = RoleProxy
	ClassAuth  = RoleAuth
)

// IdentityOID is the X.509 extension that carries an Identity as JSON
// (see the "Identity encoding" section of the package documentation).
var IdentityOID = asn1.ObjectIdentifier{1, 3, 6, 1, 4, 1, 64729, 1, 1}

// maxIdentityExt bounds the extension we are willing to parse.
const maxIdentityExt = 64 << 10

// Identity is who a certificate names. It is carried in every certificate
// the Auth Service issues, so that proxies and agents can authorise a
// request without calling back.
type Identity struct {
	// Kind is host, user or admin.
	Kind Kind `json:"kind"`
	// Name is the host ID (hosts) or the user name.
	Name string `json:"name"`
	// Cluster is the name of the issuing cluster.
	Cluster string `json:"cluster"`
	// Roles are the system roles of a host (agent, proxy, auth) or the role
	// names of a user.
	Roles []string `json:"roles,omitempty"`
	// Rules are the user's roles as they were when the certificate was
	// issued; empty for hosts and admins.
	Rules []Role `json:"rules,omitempty"`
	// Principals are the SSH logins (users) or the host names and
	// addresses (hosts) the certificate covers.
	Principals []string `json:"principals,omitempty"`
	// Expires is the certificate's NotAfter (not encoded in the extension).
	Expires time.Time `json:"-"`
}

// Role is what a user may reach. A user holds several roles; a request is
// allowed when one of them allows it.
type Role struct {
	Name string `json:"name"`
	// Logins are the SSH logins (principals) the role grants.
	Logins []string `json:"logins,omitempty"`
	// NodeLabels selects nodes: a node matches when, for every key, its
	// label's value is one of the listed values ("*" is any value); the
	// key "*" with value "*" matches every node. Empty matches none.
	NodeLabels map[string][]string `json:"node_labels,omitempty"`
	// DBNames and DBUsers are the database names and database users
	// granted ("*" is any).
	DBNames []string `json:"db_names,omitempty"`
	DBUsers []string `json:"db_users,omitempty"`
	// Apps are the application names granted ("*" is any).
	Apps []string `json:"apps,omitempty"`
	// MaxSessionTTL caps the lifetime of the user certificates; zero means
	// the server's default (Config.MaxUserCertTTL).
	MaxSessionTTL Duration `json:"max_session_ttl,omitempty"`
}

// Duration is a time.Duration that reads and writes as a string ("8h").
type Duration time.Duration

// MarshalJSON implements json.Marshaler.
func (d Duration) MarshalJSON() ([]byte, error) { return json.Marshal(time.Duration(d).String()) }

// UnmarshalJSON implements json.Unmarshaler; it takes "8h30m" or a number
// of nanoseconds.
func (d *Duration) UnmarshalJSON(b []byte) error {
	var s string
	if err := json.Unmarshal(b, &s); err != nil {
		var n int64
		if err2 := json.Unmarshal(b, &n); err2 != nil {
			return fmt.Errorf("authapi: duration: %w", err)
		}
		*d = Duration(n)
		return nil
	}
	v, err := time.ParseDuration(s)
	if err != nil {
		return fmt.Errorf("authapi: duration: %w", err)
	}
	*d = Duration(v)
	return nil
}

// Classes returns the caller classes of the identity for the authorization
// table: "user", "admin", or each system role of a host.
func (id *Identity) Classes() []string {
	if id == nil {
		return []string{ClassNone}
	}
	switch id.Kind {
	case KindUser:
		return []string{ClassUser}
	case KindAdmin:
		return []string{ClassAdmin}
	case KindHost:
		var c []string
		for _, r := range id.Roles {
			if r == RoleAgent || r == RoleProxy || r == RoleAuth {
				c = append(c, r)
			}
		}
		return c
	}
	return nil
}

// HasRole reports whether the identity lists role.
func (id *Identity) HasRole(role string) bool { return id != nil && slices.Contains(id.Roles, role) }

// match reports whether value is in patterns, where a pattern is an exact
// string, "*", or a path.Match glob.
func match(patterns []string, value string) bool {
	for _, p := range patterns {
		if p == "*" || p == value {
			return true
		}
		if ok, _ := path.Match(p, value); ok {
			return true
		}
	}
	return false
}

// MatchLabels reports whether labels satisfy selector: for every key of
// the selector the label's value matches one of its values ("*" is any
// value; the key "*" with value "*" matches any node). An empty selector
// matches nothing.
func MatchLabels(selector map[string][]string, labels map[string]string) bool {
	if len(selector) == 0 {
		return false
	}
	for k, vals := range selector {
		if k == "*" {
			if !slices.Contains(vals, "*") {
				return false
			}
			continue
		}
		v, ok := labels[k]
		if !ok || !match(vals, v) {
			return false
		}
	}
	return true
}

// CanLogin reports whether a role grants SSH login on a node with the
// given labels.
func (r *Role) CanLogin(login string, nodeLabels map[string]string) bool {
	return slices.Contains(r.Logins, login) && MatchLabels(r.NodeLabels, nodeLabels)
}

// CanDatabase reports whether a role grants database name as database user.
func (r *Role) CanDatabase(name, user string) bool {
	return match(r.DBNames, name) && match(r.DBUsers, user)
}

// CanApp reports whether a role grants the application.
func (r *Role) CanApp(name string) bool { return match(r.Apps, name) }

// CanLogin reports whether one of the identity's roles grants SSH login as
// login on a node with nodeLabels. Admins and hosts are never granted.
func (id *Identity) CanLogin(login string, nodeLabels map[string]string) bool {
	return id.anyRule(func(r *Role) bool { return r.CanLogin(login, nodeLabels) })
}

// CanReachNode reports whether one of the identity's roles selects a node
// with nodeLabels, whatever the login: the nodes a user may list.
func (id *Identity) CanReachNode(nodeLabels map[string]string) bool {
	return id.anyRule(func(r *Role) bool { return MatchLabels(r.NodeLabels, nodeLabels) })
}

// CanDatabase reports whether one of the identity's roles grants access to
// database name as database user.
func (id *Identity) CanDatabase(name, user string) bool {
	return id.anyRule(func(r *Role) bool { return r.CanDatabase(name, user) })
}

// CanApp reports whether one of the identity's roles grants the app.
func (id *Identity) CanApp(name string) bool {
	return id.anyRule(func(r *Role) bool { return r.CanApp(name) })
}

func (id *Identity) anyRule(f func(*Role) bool) bool {
	if id == nil || id.Kind != KindUser {
		return false
	}
	for i := range id.Rules {
		if f(&id.Rules[i]) {
			return true
		}
	}
	return false
}

// identityExt is the JSON of the identity extension, versioned.
type identityExt struct {
	V int `json:"v"`
	Identity
}

// extension encodes the identity as the certificate extension.
func (id *Identity) extension() (pkix.Extension, error) {
	b, err := json.Marshal(identityExt{V: 1, Identity: *id})
	if err != nil {
		return pkix.Extension{}, err
	}
	if len(b) > maxIdentityExt {
		return pkix.Extension{}, fmt.Errorf("%w: identity of %d bytes exceeds %d", ErrInvalidArgument, len(b), maxIdentityExt)
	}
	return pkix.Extension{Id: IdentityOID, Value: b}, nil
}

// subject is the X.509 subject of an identity: CN is the name, O the
// roles, OU the kind. It is informative; the extension is authoritative.
func (id *Identity) subject() pkix.Name {
	return pkix.Name{CommonName: id.Name, Organization: id.Roles, OrganizationalUnit: []string{string(id.Kind)}}
}

// ParseIdentity reads the identity of a certificate issued by a sallyport
// Auth Service. It does not verify the certificate: call it on a verified
// chain's leaf (tls.ConnectionState.VerifiedChains[0][0]), or use
// IdentityFromState.
func ParseIdentity(cert *x509.Certificate) (*Identity, error) {
	for _, e := range cert.Extensions {
		if !e.Id.Equal(IdentityOID) {
			continue
		}
		return parseIdentityExt(e.Value, cert.NotAfter)
	}
	return nil, fmt.Errorf("%w: certificate has no sallyport identity", ErrInvalidIdentity)
}

func parseIdentityExt(b []byte, notAfter time.Time) (*Identity, error) {
	if len(b) > maxIdentityExt {
		return nil, fmt.Errorf("%w: identity extension too large", ErrInvalidIdentity)
	}
	var ext identityExt
	if err := json.Unmarshal(b, &ext); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrInvalidIdentity, err)
	}
	if ext.V != 1 {
		return nil, fmt.Errorf("%w: unknown identity version %d", ErrInvalidIdentity, ext.V)
	}
	id := ext.Identity
	switch id.Kind {
	case KindHost, KindUser, KindAdmin:
	default:
		return nil, fmt.Errorf("%w: unknown kind %q", ErrInvalidIdentity, id.Kind)
	}
	if id.Name == "" || id.Cluster == "" {
		return nil, fmt.Errorf("%w: empty name or cluster", ErrInvalidIdentity)
	}
	id.Expires = notAfter
	return &id, nil
}
