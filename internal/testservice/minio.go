package testservice

import (
	"context"
	"encoding/base64"
	"net/http"
	"testing"
	"time"
)

// S3 is an S3-compatible server (MinIO or versitygw) started for a test.
type S3 struct {
	*Process
	Addr      string // "127.0.0.1:PORT"
	Endpoint  string // "http://127.0.0.1:PORT"
	AccessKey string // root access key
	SecretKey string // root secret key
	Region    string // "us-east-1"
	DataDir   string // where the server keeps its objects
}

// MinIO credentials of every server StartMinIO starts.
const (
	MinIOAccessKey = "sallyport-minio"
	MinIOSecretKey = "sallyport-minio-secret"
)

// StartMinIO starts a MinIO server on a free loopback port with an empty
// data directory and waits until it reports itself ready. It is stopped
// when the test ends.
func StartMinIO(t testing.TB) *S3 {
	t.Helper()
	addr, console := FreeAddr(t), FreeAddr(t)
	dir := t.TempDir()
	p := Start(t, "minio", []string{"server", dir, "--quiet", "--address", addr, "--console-address", console},
		[]string{
			"MINIO_ROOT_USER=" + MinIOAccessKey,
			"MINIO_ROOT_PASSWORD=" + MinIOSecretKey,
			"MINIO_UPDATE=off",
			"MINIO_BROWSER=off",
			"MINIO_CI_CD=1",
			// A built-in KMS key, so that SSE-S3 (sse=AES256) works.
			"MINIO_KMS_SECRET_KEY=sallyport-test-key:" + base64.StdEncoding.EncodeToString([]byte("sallyport-minio-test-kms-key-32b")),
		}, addr)
	s := &S3{Process: p, Addr: addr, Endpoint: "http://" + addr, AccessKey: MinIOAccessKey, SecretKey: MinIOSecretKey, Region: "us-east-1", DataDir: dir}
	s.WaitReady(t)
	return s
}

// WaitReady waits until MinIO answers its readiness probe (up to 30 s);
// use it after Restart.
func (s *S3) WaitReady(t testing.TB) {
	t.Helper()
	if err := WaitTCP(s.Addr, 30*time.Second); err != nil {
		t.Fatalf("%v\n%s output:\n%s", err, s.Name, s.Output())
	}
	if s.Name != "minio" {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for {
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, s.Endpoint+"/minio/health/ready", nil)
		resp, err := http.DefaultClient.Do(req)
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return
			}
		}
		select {
		case <-ctx.Done():
			t.Fatalf("testservice: minio at %s not ready within 30 s (last error %v)\n%s", s.Addr, err, s.Output())
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// Env returns the AWS SDK environment variables that reach the server with
// its root credentials.
func (s *S3) Env() map[string]string {
	return map[string]string{
		"AWS_ACCESS_KEY_ID":     s.AccessKey,
		"AWS_SECRET_ACCESS_KEY": s.SecretKey,
		"AWS_REGION":            s.Region,
	}
}

// SetEnv sets the AWS SDK environment (credentials, region, and no shared
// config files) for the rest of the test with t.Setenv.
func (s *S3) SetEnv(t testing.TB) {
	t.Helper()
	for k, v := range s.Env() {
		t.Setenv(k, v)
	}
	t.Setenv("AWS_SESSION_TOKEN", "")
	t.Setenv("AWS_PROFILE", "")
	t.Setenv("AWS_CONFIG_FILE", "/dev/null")
	t.Setenv("AWS_SHARED_CREDENTIALS_FILE", "/dev/null")
	t.Setenv("AWS_EC2_METADATA_DISABLED", "true")
}
