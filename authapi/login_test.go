package authapi

import (
	"errors"
	"net"
	"net/url"
	"slices"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"
	"google.golang.org/protobuf/types/known/durationpb"

	"github.com/sallyport/sallyport/audit"
	authv1 "github.com/sallyport/sallyport/authapi/proto/sallyport/auth/v1"
	"github.com/sallyport/sallyport/authapi/totp"
)

func TestLogin(t *testing.T) {
	ts := startServer(t, nil, &Config{RateLimit: -1})
	ctx := testCtx(t)
	admin := ts.client(t, ts.Admin).API()
	roles := []*authv1.Role{
		{Name: "dev", Logins: []string{"ubuntu", "dev"}, NodeLabels: map[string]*authv1.LabelValues{"env": {Values: []string{"staging", "dev-*"}}}, Apps: []string{"grafana"}, MaxSessionTtl: durationpb.New(2 * time.Hour)},
		{Name: "dba", DbNames: []string{"orders"}, DbUsers: []string{"reader"}, NodeLabels: map[string]*authv1.LabelValues{"*": {Values: []string{"*"}}}, Logins: []string{"postgres"}},
	}
	for _, r := range roles {
		if _, err := admin.UpsertRole(ctx, &authv1.UpsertRoleRequest{Role: r}); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := admin.UpsertUser(ctx, &authv1.UpsertUserRequest{Name: "alice", Roles: []string{"dev", "dba", "missing"}, Password: "correct horse"}); err != nil {
		t.Fatal(err)
	}
	c := ts.client(t, nil)
	creds, err := c.Login(ctx, LoginRequest{User: "alice", Password: "correct horse"})
	if err != nil {
		t.Fatal(err)
	}
	id := creds.Identity
	if id.Kind != KindUser || id.Name != "alice" || len(id.Rules) != 2 {
		t.Fatalf("identity %+v", id)
	}
	if !slices.Equal(id.Principals, []string{"dev", "postgres", "ubuntu"}) {
		t.Errorf("principals %v", id.Principals)
	}
	// The shortest role TTL wins.
	if ttl := time.Until(creds.Certificate.Leaf.NotAfter); ttl > 2*time.Hour || ttl < time.Hour {
		t.Errorf("certificate lifetime %v, want about 2h", ttl)
	}
	sc := creds.SSHCert
	if sc.CertType != ssh.UserCert || !slices.Equal(sc.ValidPrincipals, id.Principals) {
		t.Errorf("ssh cert %+v", sc)
	}
	if _, ok := sc.Extensions["permit-pty"]; !ok {
		t.Errorf("ssh extensions %v", sc.Extensions)
	}
	checker := ssh.CertChecker{IsUserAuthority: func(k ssh.PublicKey) bool { return string(k.Marshal()) == string(creds.SSHUserCAs[0].Marshal()) }}
	if _, err := checker.Authenticate(connMeta("ubuntu"), sc); err != nil {
		t.Errorf("ssh user cert does not authenticate: %v", err)
	}
	// Authorisation from the certificate alone (what a proxy or agent does).
	parsed, err := ParseIdentity(creds.Certificate.Leaf)
	if err != nil {
		t.Fatal(err)
	}
	decisions := []struct {
		name string
		got  bool
		want bool
	}{
		{"ubuntu on staging", parsed.CanLogin("ubuntu", map[string]string{"env": "staging"}), true},
		{"ubuntu on dev-3 (glob)", parsed.CanLogin("ubuntu", map[string]string{"env": "dev-3"}), true},
		{"ubuntu on prod", parsed.CanLogin("ubuntu", map[string]string{"env": "prod"}), false},
		{"postgres anywhere", parsed.CanLogin("postgres", map[string]string{"env": "prod"}), true},
		{"root nowhere", parsed.CanLogin("root", map[string]string{"env": "staging"}), false},
		{"db orders as reader", parsed.CanDatabase("orders", "reader"), true},
		{"db orders as admin", parsed.CanDatabase("orders", "admin"), false},
		{"app grafana", parsed.CanApp("grafana"), true},
		{"app billing", parsed.CanApp("billing"), false},
	}
	for _, d := range decisions {
		if d.got != d.want {
			t.Errorf("%s: %v, want %v", d.name, d.got, d.want)
		}
	}
	// The user certificate works as a client identity.
	uc := ts.client(t, creds)
	if p, err := uc.API().Ping(ctx, &authv1.PingRequest{}); err != nil || p.CallerKind != "user" {
		t.Fatalf("Ping as user: %v %v", p, err)
	}

	// Failures look the same whatever was wrong.
	for _, tc := range []struct{ name, user, pass string }{
		{"wrong password", "alice", "wrong horse"},
		{"unknown user", "bob", "correct horse"},
		{"malformed user", "../x", "x"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := c.Login(ctx, LoginRequest{User: tc.user, Password: tc.pass})
			if !errors.Is(err, ErrAuthFailed) {
				t.Fatalf("Login = %v, want ErrAuthFailed", err)
			}
		})
	}
	evs, _ := ts.audit.Search(ctx, audit.Query{Types: []string{audit.TypeLoginFailed}})
	if len(evs) != 3 {
		t.Errorf("%d login.failed events, want 3", len(evs))
	}
	evs, _ = ts.audit.Search(ctx, audit.Query{Types: []string{audit.TypeLogin}})
	if len(evs) != 1 || evs[0].Actor != "alice" {
		t.Errorf("login events %+v", evs)
	}
}

func TestLoginTOTP(t *testing.T) {
	clock := &fakeClock{t: time.Now()}
	ts := startServer(t, nil, &Config{RateLimit: -1, Clock: clock.Now})
	ctx := testCtx(t)
	resp, err := ts.client(t, ts.Admin).API().UpsertUser(ctx, &authv1.UpsertUserRequest{Name: "carol", Password: "long enough", EnableTotp: true})
	if err != nil {
		t.Fatal(err)
	}
	u, err := url.Parse(resp.TotpUrl)
	if err != nil {
		t.Fatal(err)
	}
	key, err := totp.DecodeSecret(u.Query().Get("secret"))
	if err != nil {
		t.Fatal(err)
	}
	code, _ := totp.Config{}.Code(key, clock.Now())
	c := ts.client(t, nil)
	cases := []struct {
		name string
		code string
		ok   bool
	}{
		{"no code", "", false},
		{"wrong code", "000000", false},
		{"right code", code, true},
		{"replayed code", code, false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if tc.code == "000000" && code == "000000" {
				tc.code = "111111"
			}
			_, err := c.Login(ctx, LoginRequest{User: "carol", Password: "long enough", TOTP: tc.code})
			if tc.ok && err != nil {
				t.Fatalf("Login: %v", err)
			}
			if !tc.ok && !errors.Is(err, ErrAuthFailed) {
				t.Fatalf("Login = %v, want ErrAuthFailed", err)
			}
		})
	}
	clock.Add(30 * time.Second)
	next, _ := totp.Config{}.Code(key, clock.Now())
	if _, err := c.Login(ctx, LoginRequest{User: "carol", Password: "long enough", TOTP: next}); err != nil {
		t.Fatalf("next period's code: %v", err)
	}
}

func TestSignup(t *testing.T) {
	ts := startServer(t, nil, &Config{RateLimit: -1})
	ctx := testCtx(t)
	admin := ts.client(t, ts.Admin).API()
	resp, err := admin.UpsertUser(ctx, &authv1.UpsertUserRequest{Name: "dave"})
	if err != nil {
		t.Fatal(err)
	}
	if resp.SignupToken == "" || resp.User.HasPassword {
		t.Fatalf("UpsertUser without password: %v", resp)
	}
	c := ts.client(t, nil)
	if _, err := c.Login(ctx, LoginRequest{User: "dave", Password: ""}); !errors.Is(err, ErrAuthFailed) {
		t.Fatalf("login before sign-up: %v", err)
	}
	if _, err := c.API().CompleteSignup(ctx, &authv1.CompleteSignupRequest{Token: resp.SignupToken, Password: "short"}); !errors.Is(err, ErrInvalidArgument) {
		t.Fatalf("short password: %v", err)
	}
	if _, err := c.API().CompleteSignup(ctx, &authv1.CompleteSignupRequest{Token: resp.SignupToken, Password: "a fine password"}); err != nil {
		t.Fatal(err)
	}
	if _, err := c.API().CompleteSignup(ctx, &authv1.CompleteSignupRequest{Token: resp.SignupToken, Password: "another password"}); !errors.Is(err, ErrAuthFailed) {
		t.Fatalf("second use of the sign-up token: %v", err)
	}
	if _, err := c.Login(ctx, LoginRequest{User: "dave", Password: "a fine password"}); err != nil {
		t.Fatal(err)
	}
	users, err := admin.ListUsers(ctx, &authv1.ListUsersRequest{})
	if err != nil || len(users.Users) != 1 || !users.Users[0].HasPassword {
		t.Fatalf("ListUsers = %v, %v", users, err)
	}
	if _, err := admin.DeleteUser(ctx, &authv1.DeleteUserRequest{Name: "dave"}); err != nil {
		t.Fatal(err)
	}
	if _, err := admin.DeleteUser(ctx, &authv1.DeleteUserRequest{Name: "dave"}); !errors.Is(err, ErrNotFound) {
		t.Fatalf("second delete: %v", err)
	}
}

type connMeta string

func (c connMeta) User() string          { return string(c) }
func (c connMeta) SessionID() []byte     { return nil }
func (c connMeta) ClientVersion() []byte { return nil }
func (c connMeta) ServerVersion() []byte { return nil }
func (c connMeta) RemoteAddr() net.Addr  { return &net.TCPAddr{} }
func (c connMeta) LocalAddr() net.Addr   { return &net.TCPAddr{} }
