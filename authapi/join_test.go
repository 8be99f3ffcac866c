package authapi

import (
	"crypto/x509"
	"errors"
	"net"
	"slices"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"
	"google.golang.org/grpc/codes"
	"google.golang.org/protobuf/types/known/durationpb"

	"github.com/sallyport/sallyport/audit"
	authv1 "github.com/sallyport/sallyport/authapi/proto/sallyport/auth/v1"
)

func createToken(t testing.TB, ts *testServer, roles []string, ttl time.Duration, uses int) string {
	t.Helper()
	resp, err := ts.client(t, ts.Admin).API().CreateJoinToken(testCtx(t), &authv1.CreateJoinTokenRequest{Roles: roles, Ttl: durationpb.New(ttl), Uses: int32(uses)})
	if err != nil {
		t.Fatal(err)
	}
	return resp.Token
}

func TestJoin(t *testing.T) {
	ts := startServer(t, nil, &Config{ClusterName: "east"})
	ctx := testCtx(t)
	tok := createToken(t, ts, []string{RoleAgent}, time.Hour, 2)

	creds, err := Join(ctx, JoinConfig{Addrs: []string{ts.Addr}, Token: tok, CAPin: ts.CAPin(), HostID: "node-1", NodeName: "db01", PublicAddrs: []string{"db01.example.com:3022", "10.0.0.5:3022"}})
	if err != nil {
		t.Fatal(err)
	}
	id := creds.Identity
	if id.Kind != KindHost || id.Name != "node-1" || id.Cluster != "east" || !slices.Equal(id.Roles, []string{RoleAgent}) {
		t.Fatalf("identity = %+v", id)
	}
	leaf := creds.Certificate.Leaf
	if leaf.Subject.CommonName != "node-1" || !slices.Contains(leaf.DNSNames, "db01.example.com") || !slices.Contains(leaf.DNSNames, "node-1.east") {
		t.Errorf("certificate subject %v, DNS names %v", leaf.Subject, leaf.DNSNames)
	}
	if len(leaf.IPAddresses) != 1 || !leaf.IPAddresses[0].Equal(net.ParseIP("10.0.0.5")) {
		t.Errorf("IP SANs %v", leaf.IPAddresses)
	}
	if _, err := leaf.Verify(verifyOpts(creds.HostCAs)); err != nil {
		t.Errorf("certificate does not chain to the host CA: %v", err)
	}
	// The SSH host certificate names the host and its addresses, and is
	// signed by the host CA's SSH key.
	sc := creds.SSHCert
	if sc == nil || sc.CertType != ssh.HostCert || sc.KeyId != "node-1" {
		t.Fatalf("ssh cert = %+v", sc)
	}
	for _, p := range []string{"node-1", "node-1.east", "db01", "db01.example.com", "10.0.0.5"} {
		if !slices.Contains(sc.ValidPrincipals, p) {
			t.Errorf("ssh principals %v lack %q", sc.ValidPrincipals, p)
		}
	}
	checker := ssh.CertChecker{IsHostAuthority: func(k ssh.PublicKey, _ string) bool {
		return string(k.Marshal()) == string(creds.SSHHostCAs[0].Marshal())
	}}
	if err := checker.CheckCert("db01.example.com", sc); err != nil {
		t.Errorf("ssh host cert does not check: %v", err)
	}
	if creds.CAPin() != ts.CAPin() {
		t.Error("credentials pin differs from the server's")
	}

	// The joined host can call host RPCs and renew its identity.
	hc := ts.client(t, creds)
	ping, err := hc.API().Ping(ctx, &authv1.PingRequest{})
	if err != nil || ping.CallerKind != "agent" || ping.CallerName != "node-1" || ping.ClusterName != "east" {
		t.Fatalf("Ping as host = %v, %v", ping, err)
	}
	renewed, err := hc.RenewHostIdentity(ctx, []string{"db01.example.com:3022"})
	if err != nil {
		t.Fatal(err)
	}
	if renewed.Identity.Name != "node-1" || !slices.Equal(renewed.Identity.Roles, []string{RoleAgent}) || renewed.Certificate.Leaf.SerialNumber.Cmp(leaf.SerialNumber) == 0 {
		t.Errorf("renewed identity %+v", renewed.Identity)
	}
	// Saved and loaded credentials still work.
	path := t.TempDir() + "/id.json"
	if err := renewed.Save(path); err != nil {
		t.Fatal(err)
	}
	loaded, err := LoadCredentials(path)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := ts.client(t, loaded).API().Ping(ctx, &authv1.PingRequest{}); err != nil {
		t.Fatalf("Ping with loaded credentials: %v", err)
	}
}

// TestJoinRefusals: wrong, expired and used-up tokens fail the same way,
// and are audited without the token value.
func TestJoinRefusals(t *testing.T) {
	now := time.Now()
	clock := &fakeClock{t: now}
	ts := startServer(t, nil, &Config{Clock: clock.Now, RateLimit: -1})
	ctx := testCtx(t)
	used := createToken(t, ts, []string{RoleProxy}, time.Hour, 1)
	if _, err := Join(ctx, JoinConfig{Addrs: []string{ts.Addr}, Token: used, CAPin: ts.CAPin()}); err != nil {
		t.Fatal(err)
	}
	expiring := createToken(t, ts, []string{RoleProxy}, time.Minute, 5)
	clock.Add(2 * time.Minute)

	var msgs []string
	for _, tc := range []struct{ name, token string }{
		{"wrong", "0123456789abcdef0123456789abcdef"},
		{"expired", expiring},
		{"used up", used},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Join(ctx, JoinConfig{Addrs: []string{ts.Addr}, Token: tc.token, CAPin: ts.CAPin()})
			var re *RPCError
			if !errors.Is(err, ErrAuthFailed) || !errors.As(err, &re) || re.Code != codes.Unauthenticated {
				t.Fatalf("Join = %v, want ErrAuthFailed", err)
			}
			msgs = append(msgs, re.Msg)
		})
	}
	if len(msgs) != 3 || msgs[0] != msgs[1] || msgs[1] != msgs[2] {
		t.Errorf("refusals differ: %q", msgs)
	}
	evs, err := ts.audit.Search(ctx, audit.Query{Types: []string{audit.TypeJoinFailed}})
	if err != nil {
		t.Fatal(err)
	}
	if len(evs) != 3 {
		t.Fatalf("%d join.failed events, want 3: %+v", len(evs), evs)
	}
	for _, e := range evs {
		for _, v := range e.Fields {
			if strings.Contains(v, used) || strings.Contains(v, expiring) {
				t.Errorf("audit event holds a token value: %+v", e)
			}
		}
	}
	joins, _ := ts.audit.Search(ctx, audit.Query{Types: []string{audit.TypeJoin, audit.TypeCertIssued}})
	if len(joins) < 2 {
		t.Errorf("join and cert.issued events: %+v", joins)
	}
}

// TestJoinPinMismatch: with the wrong pin the client aborts the handshake,
// so the token never reaches the server (its use count is untouched).
func TestJoinPinMismatch(t *testing.T) {
	ts := startServer(t, nil, nil)
	other := startServer(t, nil, &Config{ClusterName: "other"})
	ctx := testCtx(t)
	tok := createToken(t, ts, []string{RoleAgent}, time.Hour, 1)
	_, err := Join(ctx, JoinConfig{Addrs: []string{ts.Addr}, Token: tok, CAPin: other.CAPin()})
	if !errors.Is(err, ErrPinMismatch) {
		t.Fatalf("Join with a foreign pin = %v, want ErrPinMismatch", err)
	}
	list, err := ts.client(t, ts.Admin).API().ListJoinTokens(ctx, &authv1.ListJoinTokensRequest{})
	if err != nil || len(list.Tokens) != 1 || list.Tokens[0].UsesLeft != 1 {
		t.Fatalf("tokens after pin mismatch: %v, %v", list, err)
	}
	evs, _ := ts.audit.Search(ctx, audit.Query{Types: []string{audit.TypeJoinFailed, audit.TypeJoin}})
	if len(evs) != 0 {
		t.Errorf("the server saw a join: %+v", evs)
	}
	// Anyone can read the public CA set over a pinned, certificate-less
	// connection.
	cas, err := ts.client(t, nil).API().GetCertAuthorities(ctx, &authv1.GetCertAuthoritiesRequest{})
	if err != nil || len(cas.Authorities) != 3 {
		t.Fatalf("GetCertAuthorities = %v, %v", cas, err)
	}
	hostCA, err := x509.ParseCertificate(cas.Authorities[0].TlsCert)
	if err != nil || cas.Authorities[0].Type != CAHost || CAPin(hostCA) != ts.CAPin() || cas.Authorities[0].SshPublicKey == "" {
		t.Fatalf("host CA %v: %v", cas.Authorities[0], err)
	}
	// The right pin works with the same token.
	if _, err := Join(ctx, JoinConfig{Addrs: []string{ts.Addr}, Token: tok, CAPin: ts.CAPin()}); err != nil {
		t.Fatal(err)
	}
}

func TestJoinRateLimit(t *testing.T) {
	ts := startServer(t, nil, &Config{RateLimit: 3})
	ctx := testCtx(t)
	var codesSeen []codes.Code
	for range 5 {
		_, err := Join(ctx, JoinConfig{Addrs: []string{ts.Addr}, Token: "nope", CAPin: ts.CAPin()})
		var re *RPCError
		if !errors.As(err, &re) {
			t.Fatalf("Join = %v", err)
		}
		codesSeen = append(codesSeen, re.Code)
	}
	want := []codes.Code{codes.Unauthenticated, codes.Unauthenticated, codes.Unauthenticated, codes.ResourceExhausted, codes.ResourceExhausted}
	if !slices.Equal(codesSeen, want) {
		t.Fatalf("codes = %v, want %v", codesSeen, want)
	}
}
