package authapi

import (
	"crypto/ed25519"
	"crypto/rand"
	"crypto/x509"
	"syscall"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"
	"google.golang.org/protobuf/types/known/durationpb"

	authv1 "github.com/sallyport/sallyport/authapi/proto/sallyport/auth/v1"
)

func benchKeys(b *testing.B) ([]byte, ssh.PublicKey, string) {
	k := newECKey(b)
	der, err := x509.MarshalPKIXPublicKey(k.Public())
	if err != nil {
		b.Fatal(err)
	}
	pub, _, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		b.Fatal(err)
	}
	spub, err := ssh.NewPublicKey(pub)
	if err != nil {
		b.Fatal(err)
	}
	return der, spub, string(ssh.MarshalAuthorizedKey(spub))
}

// cpuTime returns the process's user+system CPU time.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// measure runs op b.N times and reports ops/s (wall) and the CPU time per
// op of the whole process (client and server, when both run here), which
// other load on the machine disturbs less than wall time.
func measure(b *testing.B, op func()) {
	start := cpuTime()
	for b.Loop() {
		op()
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "ops/s")
	b.ReportMetric(float64((cpuTime()-start).Microseconds())/float64(b.N), "cpu-µs/op")
}

// BenchmarkIssueUser compares user certificate pairs (X.509 + SSH) issued
// over gRPC (SignIdentity for a user with one role, mutual TLS on one
// connection, backend reads of the user and role, audit event) with the
// bare cost of signing the same pair with the same CA keys.
func BenchmarkIssueUser(b *testing.B) {
	ts := startServer(b, nil, &Config{RateLimit: -1})
	ctx := testCtx(b)
	api := ts.client(b, ts.Admin).API()
	if _, err := api.UpsertRole(ctx, &authv1.UpsertRoleRequest{Role: &authv1.Role{Name: "dev", Logins: []string{"ubuntu"}, NodeLabels: map[string]*authv1.LabelValues{"*": {Values: []string{"*"}}}}}); err != nil {
		b.Fatal(err)
	}
	if _, err := api.UpsertUser(ctx, &authv1.UpsertUserRequest{Name: "alice", Roles: []string{"dev"}, Password: "password1"}); err != nil {
		b.Fatal(err)
	}
	tlsPub, spub, spubLine := benchKeys(b)
	b.Run("grpc", func(b *testing.B) {
		req := &authv1.SignIdentityRequest{Kind: "user", Name: "alice", Ttl: durationpb.New(time.Hour), TlsPublicKey: tlsPub, SshPublicKey: spubLine}
		measure(b, func() {
			if _, err := api.SignIdentity(ctx, req); err != nil {
				b.Fatal(err)
			}
		})
	})
	b.Run("bare", func(b *testing.B) {
		pub, _ := x509.ParsePKIXPublicKey(tlsPub)
		roles, _ := ts.resolveRoles(ctx, []string{"dev"})
		id := &Identity{Kind: KindUser, Name: "alice", Cluster: ts.cluster, Roles: []string{"dev"}, Rules: roles, Principals: []string{"ubuntu"}}
		ca := ts.cas[CAUser]
		exts := ts.userSSHExtensions(id.Roles)
		measure(b, func() {
			now := time.Now()
			if _, err := ca.signTLS(certRequest{pub: pub, id: id, notBefore: now, notAfter: now.Add(time.Hour)}); err != nil {
				b.Fatal(err)
			}
			if _, err := ca.signSSH(spub, ssh.UserCert, "alice", id.Principals, now, now.Add(time.Hour), exts); err != nil {
				b.Fatal(err)
			}
		})
	})
}

// BenchmarkJoin compares joins (a new TLS connection without a client
// certificate, pin check, token use with compare-and-swap, host X.509 and
// SSH certificates, audit events) with the bare cost of signing the same
// host certificate pair.
func BenchmarkJoin(b *testing.B) {
	ts := startServer(b, nil, &Config{RateLimit: -1})
	ctx := testCtx(b)
	resp, err := ts.client(b, ts.Admin).API().CreateJoinToken(ctx, &authv1.CreateJoinTokenRequest{Roles: []string{RoleAgent}, Uses: 1_000_000, Ttl: durationpb.New(time.Hour)})
	if err != nil {
		b.Fatal(err)
	}
	tlsPub, spub, spubLine := benchKeys(b)
	b.Run("grpc", func(b *testing.B) {
		req := &authv1.JoinRequest{Token: resp.Token, HostId: "node-1", PublicAddrs: []string{"10.0.0.1:3022"}, TlsPublicKey: tlsPub, SshPublicKey: spubLine}
		measure(b, func() {
			c, err := NewClient(&ClientConfig{Addrs: []string{ts.Addr}, CAPin: ts.CAPin(), MaxRetries: -1})
			if err != nil {
				b.Fatal(err)
			}
			_, err = c.API().Join(ctx, req)
			c.Close()
			if err != nil {
				b.Fatal(err)
			}
		})
	})
	b.Run("bare", func(b *testing.B) {
		pub, _ := x509.ParsePKIXPublicKey(tlsPub)
		ca := ts.cas[CAHost]
		measure(b, func() {
			now := time.Now()
			principals := []string{"node-1", "node-1." + ts.cluster, "10.0.0.1:3022"}
			dns, ips := hostNames(principals...)
			id := &Identity{Kind: KindHost, Name: "node-1", Cluster: ts.cluster, Roles: []string{RoleAgent}, Principals: append(dns, ipStrings(ips)...)}
			if _, err := ca.signTLS(certRequest{pub: pub, id: id, notBefore: now, notAfter: now.Add(time.Hour), dnsNames: dns, ips: ips, server: true}); err != nil {
				b.Fatal(err)
			}
			if _, err := ca.signSSH(spub, ssh.HostCert, "node-1", id.Principals, now, now.Add(time.Hour), nil); err != nil {
				b.Fatal(err)
			}
		})
	})
}
