package gcs

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/sallyport/sallyport/internal/testservice"
	"github.com/sallyport/sallyport/recorder"
	"github.com/sallyport/sallyport/recorder/recordertest"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m,
		// Started once per process by the Cloud Storage library's
		// dependencies (OpenCensus stats worker).
		goleak.IgnoreTopFunction("go.opencensus.io/stats/view.(*worker).start"),
	)
}

// storeURI names a new bucket on srv; chunk_size=1M makes objects over
// 1 MiB take the resumable path in several chunks.
func storeURI(srv *testservice.FakeGCS, bucket, extra string) string {
	return "gs://" + bucket + "?endpoint=" + url.QueryEscape(srv.Endpoint) + "&chunk_size=1M" + extra
}

func openStore(t testing.TB, srv *testservice.FakeGCS) *Store {
	t.Helper()
	return recordertest.OpenURI(t, storeURI(srv, recordertest.UniqueName("t"), "")).(*Store)
}

const bigSize = 3<<20 + 4321 // four 1 MiB chunks

// The suite's large objects take the resumable path in four chunks, the
// last one short.
func TestConformance(t *testing.T) {
	srv := testservice.StartFakeGCS(t)
	recordertest.RunOptions(t, func(t testing.TB) recorder.Store { return openStore(t, srv) }, recordertest.Options{LargeSize: bigSize})
}

// TestEmulatorHost reaches the server through STORAGE_EMULATOR_HOST instead
// of an endpoint parameter.
func TestEmulatorHost(t *testing.T) {
	srv := testservice.StartFakeGCS(t)
	t.Setenv("STORAGE_EMULATOR_HOST", srv.Addr)
	ctx := context.Background()
	s := recordertest.OpenURI(t, "gs://"+recordertest.UniqueName("env")+"/recordings/").(*Store)
	if err := s.Put(ctx, "a/b", strings.NewReader("hello"), 5); err != nil {
		t.Fatal(err)
	}
	recordertest.WantObject(t, s, "a/b", []byte("hello"))
	// The object lives under the prefix.
	if _, err := s.Client().Bucket(s.Bucket()).Object("recordings/a/b").Attrs(ctx); err != nil {
		t.Fatalf("object not under the prefix: %v", err)
	}
}

// TestResumableInvisible: while a resumable upload has sent some chunks,
// and after it fails, no object is visible under the name.
func TestResumableInvisible(t *testing.T) {
	srv := testservice.StartFakeGCS(t)
	s := openStore(t, srv)
	ctx := context.Background()
	data := recordertest.RandomData(bigSize, 9)
	r := recordertest.NewGatedReader(bytes.NewReader(data), 2<<20+100)
	errc := make(chan error, 1)
	go func() { errc <- s.Put(ctx, "partial", r, int64(len(data))) }()
	<-r.Reached()
	time.Sleep(200 * time.Millisecond) // let the first chunks reach the server
	if _, err := s.Stat(ctx, "partial"); !errors.Is(err, recorder.ErrNotExist) {
		t.Fatalf("Stat mid-upload = %v, want ErrNotExist", err)
	}
	if l, err := s.List(ctx, ""); err != nil || len(l) != 0 {
		t.Fatalf("List mid-upload = %v, %v; want empty", l, err)
	}
	r.Fail(errors.New("source failed"))
	if err := <-errc; err == nil {
		t.Fatal("Put succeeded")
	}
	if _, err := s.Stat(ctx, "partial"); !errors.Is(err, recorder.ErrNotExist) {
		t.Fatalf("Stat after failure = %v, want ErrNotExist", err)
	}
}

func TestOpenBucket(t *testing.T) {
	srv := testservice.StartFakeGCS(t)
	ctx := context.Background()
	t.Run("creates-missing", func(t *testing.T) {
		b := recordertest.UniqueName("create")
		s := recordertest.OpenURI(t, storeURI(srv, b, "")).(*Store)
		if _, err := s.Client().Bucket(b).Attrs(ctx); err != nil {
			t.Fatalf("bucket not created: %v", err)
		}
		// A second open finds it, even when it may not create one.
		recordertest.OpenURI(t, storeURI(srv, b, "&create_bucket=false"))
	})
	t.Run("no-create", func(t *testing.T) {
		_, err := recorder.OpenStore(ctx, storeURI(srv, recordertest.UniqueName("nocreate"), "&create_bucket=false"))
		if !errors.Is(err, recorder.ErrNotExist) {
			t.Fatalf("OpenStore = %v, want ErrNotExist", err)
		}
	})
}

// TestPermissionDenied: a server that answers 403 (fake-gcs-server has no
// IAM) yields a PermissionError naming the missing permission.
func TestPermissionDenied(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusForbidden)
		io.WriteString(w, `{"error":{"code":403,"message":"caller does not have storage.buckets.get access","errors":[{"reason":"forbidden","message":"denied"}]}}`)
	}))
	defer srv.Close()
	_, err := recorder.OpenStore(context.Background(), "gs://bucket?endpoint="+url.QueryEscape(srv.URL))
	var pe *PermissionError
	if !errors.Is(err, recorder.ErrPermission) || !errors.As(err, &pe) || pe.Permission != "storage.buckets.get" {
		t.Fatalf("OpenStore = %v, want a PermissionError naming storage.buckets.get", err)
	}
	srv.CloseClientConnections()
}

func TestOpenURIErrors(t *testing.T) {
	for _, tc := range []struct {
		name, uri, want string
	}{
		{"no-bucket", "gs:///x", "no bucket"},
		{"userinfo", "gs://user:secretvalue@bucket", "credentials in the URI"},
		{"unknown-param", "gs://bucket?colour=blue", `unknown URI parameter "colour"`},
		{"bad-endpoint", "gs://bucket?endpoint=ftp://x", "bad endpoint"},
		{"bad-chunk", "gs://bucket?chunk_size=x", "bad chunk_size"},
		{"bad-create", "gs://bucket?create_bucket=perhaps", "bad create_bucket"},
		{"chunk-not-256k", "gs://bucket?chunk_size=100K&endpoint=http://127.0.0.1:1", "not a positive multiple of 256 KiB"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := recorder.OpenStore(context.Background(), tc.uri)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("OpenStore(%q) = %v, want an error containing %q", tc.uri, err, tc.want)
			}
			if strings.Contains(err.Error(), "secretvalue") {
				t.Fatalf("error leaks the secret: %v", err)
			}
		})
	}
}
