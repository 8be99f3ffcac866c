package testservice

import (
	"context"
	"os/exec"
	"testing"
	"time"
)

// versitygw root credentials of every server StartVersityGW starts.
const (
	VersityGWAccessKey = "sallyport-vgw"
	VersityGWSecretKey = "sallyport-vgw-secret"
)

// VersityGW is a versitygw S3 gateway over a POSIX directory, with its
// internal IAM service and admin API enabled.
type VersityGW struct {
	*S3
	AdminEndpoint string // "http://127.0.0.1:PORT" of the admin API
}

// StartVersityGW starts versitygw (posix backend, internal IAM) on free
// loopback ports. It is stopped when the test ends.
func StartVersityGW(t testing.TB) *VersityGW {
	t.Helper()
	addr, admin := FreeAddr(t), FreeAddr(t)
	data, iam := t.TempDir(), t.TempDir()
	p := Start(t, "versitygw", []string{
		"--access", VersityGWAccessKey, "--secret", VersityGWSecretKey,
		"--port", addr, "--admin-port", admin, "--iam-dir", iam, "--quiet",
		"posix", data,
	}, nil, addr)
	if err := WaitTCP(admin, 30*time.Second); err != nil {
		t.Fatalf("%v\n%s", err, p.Output())
	}
	return &VersityGW{
		S3:            &S3{Process: p, Addr: addr, Endpoint: "http://" + addr, AccessKey: VersityGWAccessKey, SecretKey: VersityGWSecretKey, Region: "us-east-1", DataDir: data},
		AdminEndpoint: "http://" + admin,
	}
}

// CreateUser adds a gateway user with the given role ("user": may use
// buckets it is given but not create any; "userplus": may also create
// buckets; "admin") through versitygw's admin CLI.
func (g *VersityGW) CreateUser(t testing.TB, access, secret, role string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, g.Path, "admin",
		"--access", g.AccessKey, "--secret", g.SecretKey, "--endpoint-url", g.AdminEndpoint,
		"create-user", "--access", access, "--secret", secret, "--role", role)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("testservice: versitygw admin create-user %s: %v\n%s", access, err, out)
	}
}
