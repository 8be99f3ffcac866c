package gcs

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync/atomic"
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

var bucketSeq atomic.Int64

func newBucketName(tag string) string {
	return fmt.Sprintf("sp-%s-%d-%d", tag, time.Now().UnixNano()%1e9, bucketSeq.Add(1))
}

// storeURI names a new bucket on srv; chunk_size=1M makes objects over
// 1 MiB take the resumable path in several chunks.
func storeURI(srv *testservice.FakeGCS, bucket, extra string) string {
	return "gs://" + bucket + "?endpoint=" + url.QueryEscape(srv.Endpoint) + "&chunk_size=1M" + extra
}

func openStore(t testing.TB, srv *testservice.FakeGCS) *Store {
	t.Helper()
	st, err := recorder.OpenStore(context.Background(), storeURI(srv, newBucketName("t"), ""))
	if err != nil {
		t.Fatalf("OpenStore: %v", err)
	}
	t.Cleanup(func() { st.Close() })
	return st.(*Store)
}

const bigSize = 3<<20 + 4321 // four 1 MiB chunks

func TestConformance(t *testing.T) {
	srv := testservice.StartFakeGCS(t)
	recordertest.Run(t, func(t testing.TB) recorder.Store { return openStore(t, srv) })
}

func TestContract(t *testing.T) {
	srv := testservice.StartFakeGCS(t)
	testContract(t, func(t *testing.T) recorder.Store { return openStore(t, srv) }, bigSize)
}

// TestEmulatorHost reaches the server through STORAGE_EMULATOR_HOST instead
// of an endpoint parameter.
func TestEmulatorHost(t *testing.T) {
	srv := testservice.StartFakeGCS(t)
	t.Setenv("STORAGE_EMULATOR_HOST", srv.Addr)
	ctx := context.Background()
	st, err := recorder.OpenStore(ctx, "gs://"+newBucketName("env")+"/recordings/")
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	s := st.(*Store)
	if err := s.Put(ctx, "a/b", strings.NewReader("hello"), 5); err != nil {
		t.Fatal(err)
	}
	mustGet(t, s, "a/b", []byte("hello"))
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
	data := randBytes(bigSize, 9)
	gate := make(chan struct{})
	var sent atomic.Int64
	r := io.MultiReader(countingReader{bytes.NewReader(data[:2<<20+100]), &sent}, failAfterGate{gate})
	errc := make(chan error, 1)
	go func() { errc <- s.Put(ctx, "partial", r, int64(len(data))) }()
	for sent.Load() < 2<<20+100 {
		time.Sleep(10 * time.Millisecond)
	}
	time.Sleep(200 * time.Millisecond) // let the first chunks reach the server
	if _, err := s.Stat(ctx, "partial"); !errors.Is(err, recorder.ErrNotExist) {
		t.Fatalf("Stat mid-upload = %v, want ErrNotExist", err)
	}
	if l, err := s.List(ctx, ""); err != nil || len(l) != 0 {
		t.Fatalf("List mid-upload = %v, %v; want empty", l, err)
	}
	close(gate)
	if err := <-errc; err == nil {
		t.Fatal("Put succeeded")
	}
	if _, err := s.Stat(ctx, "partial"); !errors.Is(err, recorder.ErrNotExist) {
		t.Fatalf("Stat after failure = %v, want ErrNotExist", err)
	}
}

type countingReader struct {
	r io.Reader
	n *atomic.Int64
}

func (c countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n.Add(int64(n))
	return n, err
}

type failAfterGate struct{ gate <-chan struct{} }

func (f failAfterGate) Read([]byte) (int, error) {
	<-f.gate
	return 0, errors.New("source failed")
}

func TestOpenBucket(t *testing.T) {
	srv := testservice.StartFakeGCS(t)
	ctx := context.Background()
	t.Run("creates-missing", func(t *testing.T) {
		b := newBucketName("create")
		s := openStoreURI(t, storeURI(srv, b, ""))
		if _, err := s.Client().Bucket(b).Attrs(ctx); err != nil {
			t.Fatalf("bucket not created: %v", err)
		}
		// A second open finds it, even when it may not create one.
		openStoreURI(t, storeURI(srv, b, "&create_bucket=false"))
	})
	t.Run("no-create", func(t *testing.T) {
		_, err := recorder.OpenStore(ctx, storeURI(srv, newBucketName("nocreate"), "&create_bucket=false"))
		if !errors.Is(err, recorder.ErrNotExist) {
			t.Fatalf("OpenStore = %v, want ErrNotExist", err)
		}
	})
}

func openStoreURI(t testing.TB, uri string) *Store {
	t.Helper()
	st, err := recorder.OpenStore(context.Background(), uri)
	if err != nil {
		t.Fatalf("OpenStore(%s): %v", uri, err)
	}
	t.Cleanup(func() { st.Close() })
	return st.(*Store)
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
