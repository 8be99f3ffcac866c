package s3

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"
	"github.com/aws/aws-sdk-go-v2/credentials"
	awss3 "github.com/aws/aws-sdk-go-v2/service/s3"
	"go.uber.org/goleak"

	"github.com/sallyport/sallyport/internal/testservice"
	"github.com/sallyport/sallyport/recorder"
	"github.com/sallyport/sallyport/recorder/recordertest"
)

func TestMain(m *testing.M) {
	if childMain() {
		return
	}
	goleak.VerifyTestMain(m)
}

// storeURI is the URI of a new bucket on srv, with a 5 MiB multipart
// threshold so that 11 MiB objects take the multipart path.
func storeURI(srv *testservice.S3, bucket, extra string) string {
	return "s3://" + bucket + "?endpoint=" + url.QueryEscape(srv.Endpoint) +
		"&region=us-east-1&path_style=true&multipart_threshold=5M&part_size=5M" + extra
}

func openStore(t testing.TB, srv *testservice.S3, extra string) *Store {
	t.Helper()
	return recordertest.OpenURI(t, storeURI(srv, recordertest.UniqueName("t"), extra)).(*Store)
}

// rawClient is an SDK client for srv with its root credentials, closed at
// the end of the test.
func rawClient(t testing.TB, srv *testservice.S3, access, secret string) *awss3.Client {
	tr := awshttp.NewBuildableClient().GetTransport()
	tr.MaxIdleConnsPerHost = 64
	t.Cleanup(tr.CloseIdleConnections)
	return awss3.New(awss3.Options{
		Region:       "us-east-1",
		BaseEndpoint: aws.String(srv.Endpoint),
		UsePathStyle: true,
		Credentials:  credentials.NewStaticCredentialsProvider(access, secret, ""),
		HTTPClient:   &http.Client{Transport: tr},
	})
}

const bigSize = 11<<20 + 12345 // three 5 MiB parts

// The suite's large objects take the multipart path in three parts, the
// last one short.
var suiteOptions = recordertest.Options{LargeSize: bigSize}

func TestConformanceMinIO(t *testing.T) {
	srv := testservice.StartMinIO(t)
	srv.SetEnv(t)
	recordertest.RunOptions(t, func(t testing.TB) recorder.Store { return openStore(t, srv, "") }, suiteOptions)
}

func TestConformanceVersityGW(t *testing.T) {
	srv := testservice.StartVersityGW(t)
	srv.SetEnv(t)
	recordertest.RunOptions(t, func(t testing.TB) recorder.Store { return openStore(t, srv.S3, "") }, suiteOptions)
}

// TestCompleteIsConditional: an object that appears while a multipart Put
// uploads its parts (after the early existence check) wins; the multipart
// Put fails with ErrExists at CompleteMultipartUpload and leaves no upload.
func TestCompleteIsConditional(t *testing.T) {
	for _, tc := range []struct {
		name  string
		start func(t testing.TB) *testservice.S3
	}{
		{"minio", testservice.StartMinIO},
		{"versitygw", func(t testing.TB) *testservice.S3 { return testservice.StartVersityGW(t).S3 }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			srv := tc.start(t)
			srv.SetEnv(t)
			s := openStore(t, srv, "")
			ctx := context.Background()
			data := recordertest.RandomData(bigSize, 1)
			// The reader stops after the first part until the rival object is in.
			r := recordertest.NewGatedReader(bytes.NewReader(data), 6<<20)
			errc := make(chan error, 1)
			go func() { errc <- s.Put(ctx, "rec", r, int64(len(data))) }()
			waitUploads(t, s, "rec", 1)
			rival := []byte("rival")
			if err := s.Put(ctx, "rec", bytes.NewReader(rival), int64(len(rival))); err != nil {
				t.Fatalf("rival Put: %v", err)
			}
			r.Open()
			if err := <-errc; !errors.Is(err, recorder.ErrExists) {
				t.Fatalf("multipart Put = %v, want ErrExists", err)
			}
			recordertest.WantObject(t, s, "rec", rival)
			waitUploads(t, s, "rec", 0)
		})
	}
}

// waitUploads waits until the bucket holds n multipart uploads for name.
func waitUploads(t testing.TB, s *Store, name string, n int) {
	t.Helper()
	key := s.Key(name)
	deadline := time.Now().Add(20 * time.Second)
	for {
		out, err := s.Client().ListMultipartUploads(context.Background(), &awss3.ListMultipartUploadsInput{Bucket: aws.String(s.Bucket()), Prefix: &key})
		if err != nil {
			t.Fatalf("ListMultipartUploads: %v", err)
		}
		if len(out.Uploads) == n {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d multipart uploads for %q, want %d", len(out.Uploads), key, n)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func TestOpenBucket(t *testing.T) {
	srv := testservice.StartMinIO(t)
	srv.SetEnv(t)
	ctx := context.Background()
	raw := rawClient(t, srv, srv.AccessKey, srv.SecretKey)
	t.Run("creates-missing", func(t *testing.T) {
		b := recordertest.UniqueName("create")
		s, err := Open(ctx, &Config{Client: raw, Bucket: b})
		if err != nil {
			t.Fatal(err)
		}
		defer s.Close()
		if _, err := raw.HeadBucket(ctx, &awss3.HeadBucketInput{Bucket: &b}); err != nil {
			t.Fatalf("bucket not created: %v", err)
		}
		// Opening again finds it.
		s2, err := Open(ctx, &Config{Client: raw, Bucket: b, NoCreateBucket: true})
		if err != nil {
			t.Fatal(err)
		}
		s2.Close()
	})
	t.Run("no-create", func(t *testing.T) {
		_, err := Open(ctx, &Config{Client: raw, Bucket: recordertest.UniqueName("nocreate"), NoCreateBucket: true})
		if !errors.Is(err, recorder.ErrNotExist) {
			t.Fatalf("Open = %v, want ErrNotExist", err)
		}
	})
	t.Run("prefix", func(t *testing.T) {
		st, err := recorder.OpenStore(ctx, "s3://"+recordertest.UniqueName("prefix")+"/recordings/?endpoint="+url.QueryEscape(srv.Endpoint)+"&path_style=true")
		if err != nil {
			t.Fatal(err)
		}
		defer st.Close()
		s := st.(*Store)
		if err := s.Put(ctx, "x/y", strings.NewReader("hi"), 2); err != nil {
			t.Fatal(err)
		}
		if _, err := raw.HeadObject(ctx, &awss3.HeadObjectInput{Bucket: aws.String(s.Bucket()), Key: aws.String("recordings/x/y")}); err != nil {
			t.Fatalf("object not under the prefix: %v", err)
		}
		l, err := s.List(ctx, "")
		if err != nil || len(l) != 1 || l[0].Name != "x/y" {
			t.Fatalf("List = %v, %v", l, err)
		}
	})
}

// TestSSE stores objects with server-side encryption (MinIO with its
// built-in KMS key) and checks that the server reports them encrypted.
func TestSSE(t *testing.T) {
	srv := testservice.StartMinIO(t)
	srv.SetEnv(t)
	ctx := context.Background()
	s := openStore(t, srv, "&sse=AES256")
	for _, tc := range []struct {
		name string
		size int
	}{{"single", 1000}, {"multipart", bigSize}} {
		t.Run(tc.name, func(t *testing.T) {
			data := recordertest.RandomData(tc.size, 5)
			if err := s.Put(ctx, tc.name, bytes.NewReader(data), int64(len(data))); err != nil {
				t.Fatal(err)
			}
			out, err := s.Client().HeadObject(ctx, &awss3.HeadObjectInput{Bucket: aws.String(s.Bucket()), Key: aws.String(s.Key(tc.name))})
			if err != nil {
				t.Fatal(err)
			}
			if out.ServerSideEncryption != "AES256" {
				t.Fatalf("ServerSideEncryption = %q, want AES256", out.ServerSideEncryption)
			}
			recordertest.WantObject(t, s, tc.name, data)
		})
	}
}

// TestPermissionDenied uses versitygw's IAM: a "user" account may not
// create buckets, nor write into a bucket another account owns.
func TestPermissionDenied(t *testing.T) {
	gw := testservice.StartVersityGW(t)
	gw.SetEnv(t)
	ctx := context.Background()
	gw.CreateUser(t, "plainuser", "plainuser-secret", "user")
	t.Setenv("AWS_ACCESS_KEY_ID", "plainuser")
	t.Setenv("AWS_SECRET_ACCESS_KEY", "plainuser-secret")

	_, err := recorder.OpenStore(ctx, storeURI(gw.S3, recordertest.UniqueName("denied"), ""))
	var pe *PermissionError
	if !errors.Is(err, recorder.ErrPermission) || !errors.As(err, &pe) {
		t.Fatalf("Open as user = %v, want a PermissionError", err)
	}
	if pe.Permission != "s3:CreateBucket" || !strings.Contains(err.Error(), "s3:CreateBucket") {
		t.Fatalf("error %q does not name s3:CreateBucket", err)
	}
	if strings.Contains(err.Error(), "plainuser-secret") {
		t.Fatalf("error leaks the secret: %q", err)
	}

	// A bucket of the root account: the user may not write into it.
	root := rawClient(t, gw.S3, gw.AccessKey, gw.SecretKey)
	b := recordertest.UniqueName("rootowned")
	if _, err := root.CreateBucket(ctx, &awss3.CreateBucketInput{Bucket: &b}); err != nil {
		t.Fatal(err)
	}
	user := rawClient(t, gw.S3, "plainuser", "plainuser-secret")
	s := &Store{c: user, bucket: b, threshold: DefaultMultipartThreshold, partSize: DefaultPartSize, conc: 1, staleAge: -1, log: discardLogger()}
	err = s.Put(ctx, "x", strings.NewReader("x"), 1)
	if !errors.Is(err, recorder.ErrPermission) || !errors.As(err, &pe) || pe.Permission != "s3:PutObject" {
		t.Fatalf("Put as user into a root bucket = %v, want a PermissionError naming s3:PutObject", err)
	}
}

func discardLogger() *slog.Logger { return slog.New(slog.DiscardHandler) }

func TestOpenURIErrors(t *testing.T) {
	ctx := context.Background()
	for _, tc := range []struct {
		name, uri, want string
	}{
		{"no-bucket", "s3://?region=us-east-1", "no bucket"},
		{"userinfo", "s3://AKIA:secretvalue@bucket", "credentials in the URI"},
		{"unknown-param", "s3://bucket?colour=blue", `unknown URI parameter "colour"`},
		{"bad-path-style", "s3://bucket?path_style=maybe", "bad path_style"},
		{"bad-endpoint", "s3://bucket?endpoint=ftp://x", "bad endpoint"},
		{"bad-sse", "s3://bucket?sse=rot13&endpoint=http://127.0.0.1:1", "unknown SSE"},
		{"kms-key-without-kms", "s3://bucket?sse_kms_key_id=k&endpoint=http://127.0.0.1:1", "needs SSE aws:kms"},
		{"small-part", "s3://bucket?part_size=1M&endpoint=http://127.0.0.1:1", "below the S3 minimum"},
		{"bad-concurrency", "s3://bucket?concurrency=0", "bad concurrency"},
		{"bad-part-size", "s3://bucket?part_size=lots", `bad part_size "lots"`},
		{"bad-create-bucket", "s3://bucket?create_bucket=perhaps", "bad create_bucket"},
		{"endpoint-credentials", "s3://bucket?endpoint=" + url.QueryEscape("http://AKIA:secretvalue@127.0.0.1:1"), "bad endpoint: credentials"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := recorder.OpenStore(ctx, tc.uri)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("OpenStore(%q) = %v, want an error containing %q", tc.uri, err, tc.want)
			}
			if strings.Contains(err.Error(), "secretvalue") {
				t.Fatalf("error leaks the secret: %v", err)
			}
		})
	}
}
