package azblob

import (
	"bytes"
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/blockblob"
	"go.uber.org/goleak"

	"github.com/sallyport/sallyport/internal/testservice"
	"github.com/sallyport/sallyport/recorder"
	"github.com/sallyport/sallyport/recorder/recordertest"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// storeURI names a new container on srv; 1 MiB blocks and a 2 MiB
// threshold make objects over 2 MiB take the staged-block path.
func storeURI(srv *testservice.Azurite, ctr, extra string) string {
	return "azblob://" + ctr + "?account=" + srv.Account + "&endpoint=" + url.QueryEscape(srv.Endpoint) +
		"&block_size=1M&single_upload_threshold=2M" + extra
}

func openStore(t testing.TB, srv *testservice.Azurite) *Store {
	t.Helper()
	return recordertest.OpenURI(t, storeURI(srv, recordertest.UniqueName("t"), "")).(*Store)
}

const bigSize = 3<<20 + 4321 // four 1 MiB blocks

// The suite's large objects take the staged-block path in four blocks,
// the last one short.
func TestConformance(t *testing.T) {
	srv := testservice.StartAzurite(t)
	t.Setenv("AZURE_STORAGE_KEY", srv.Key)
	recordertest.RunOptions(t, func(t testing.TB) recorder.Store { return openStore(t, srv) }, recordertest.Options{LargeSize: bigSize})
}

// TestStagedBlocksInvisible: blocks staged by a Put that has not committed
// are invisible; an object committed meanwhile wins and the staged Put
// fails with ErrExists at its conditional commit.
func TestStagedBlocksInvisible(t *testing.T) {
	srv := testservice.StartAzurite(t)
	t.Setenv("AZURE_STORAGE_KEY", srv.Key)
	s := openStore(t, srv)
	ctx := context.Background()
	data := recordertest.RandomData(bigSize, 4)
	r := recordertest.NewGatedReader(bytes.NewReader(data), 2<<20)
	errc := make(chan error, 1)
	go func() { errc <- s.Put(ctx, "rec", r, int64(len(data))) }()
	// Wait until blocks are staged on the server.
	bc := s.Client().NewBlockBlobClient(s.Key("rec"))
	deadline := time.Now().Add(20 * time.Second)
	for {
		bl, err := bc.GetBlockList(ctx, blockblob.BlockListTypeUncommitted, nil)
		if err == nil && len(bl.UncommittedBlocks) >= 2 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no staged blocks appeared (last error %v)", err)
		}
		time.Sleep(20 * time.Millisecond)
	}
	if _, err := s.Stat(ctx, "rec"); !errors.Is(err, recorder.ErrNotExist) {
		t.Fatalf("Stat with staged blocks = %v, want ErrNotExist", err)
	}
	if l, err := s.List(ctx, ""); err != nil || len(l) != 0 {
		t.Fatalf("List with staged blocks = %v, %v; want empty", l, err)
	}
	rival := []byte("rival")
	if err := s.Put(ctx, "rec", bytes.NewReader(rival), int64(len(rival))); err != nil {
		t.Fatalf("rival Put: %v", err)
	}
	r.Open()
	if err := <-errc; !errors.Is(err, recorder.ErrExists) {
		t.Fatalf("staged Put = %v, want ErrExists", err)
	}
	recordertest.WantObject(t, s, "rec", rival)
}

func TestOpenContainer(t *testing.T) {
	srv := testservice.StartAzurite(t)
	t.Setenv("AZURE_STORAGE_KEY", srv.Key)
	ctx := context.Background()
	t.Run("creates-missing", func(t *testing.T) {
		name := recordertest.UniqueName("create")
		s := recordertest.OpenURI(t, storeURI(srv, name, "")).(*Store)
		if _, err := s.Client().GetProperties(ctx, nil); err != nil {
			t.Fatalf("container not created: %v", err)
		}
		recordertest.OpenURI(t, storeURI(srv, name, "&create_container=false"))
	})
	t.Run("no-create", func(t *testing.T) {
		_, err := recorder.OpenStore(ctx, storeURI(srv, recordertest.UniqueName("nocreate"), "&create_container=false"))
		if !errors.Is(err, recorder.ErrNotExist) {
			t.Fatalf("OpenStore = %v, want ErrNotExist", err)
		}
	})
	t.Run("wrong-key", func(t *testing.T) {
		t.Setenv("AZURE_STORAGE_KEY", "d3Jvbmcta2V5LXdyb25nLWtleS13cm9uZy1rZXktd3Jvbmcta2V5LXdyb25nLWtleQ==")
		_, err := recorder.OpenStore(ctx, storeURI(srv, recordertest.UniqueName("wrongkey"), ""))
		if !errors.Is(err, recorder.ErrPermission) {
			t.Fatalf("OpenStore with a wrong key = %v, want ErrPermission", err)
		}
		if strings.Contains(err.Error(), "d3Jvbmcta2V5") {
			t.Fatalf("error leaks the key: %v", err)
		}
	})
	t.Run("prefix", func(t *testing.T) {
		s := recordertest.OpenURI(t, "azblob://"+recordertest.UniqueName("prefix")+"/recordings/?account="+srv.Account+"&endpoint="+url.QueryEscape(srv.Endpoint)).(*Store)
		if err := s.Put(ctx, "x/y", strings.NewReader("hi"), 2); err != nil {
			t.Fatal(err)
		}
		if _, err := s.Client().NewBlobClient("recordings/x/y").GetProperties(ctx, nil); err != nil {
			t.Fatalf("blob not under the prefix: %v", err)
		}
	})
}

// TestPermissionDenied: a 403 AuthorizationPermissionMismatch (what a
// principal without the blob write data action gets) becomes a
// PermissionError naming the data action. Azurite has no RBAC, so a small
// server plays the service for this error path.
func TestPermissionDenied(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodGet || r.Method == http.MethodHead { // container properties
			w.WriteHeader(http.StatusOK)
			return
		}
		w.Header().Set("x-ms-error-code", "AuthorizationPermissionMismatch")
		w.WriteHeader(http.StatusForbidden)
	}))
	defer srv.Close()
	t.Setenv("AZURE_STORAGE_KEY", testservice.AzuriteKey)
	st, err := recorder.OpenStore(context.Background(), "azblob://ctr?account=acct&endpoint="+url.QueryEscape(srv.URL+"/acct"))
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	err = st.Put(context.Background(), "x", strings.NewReader("x"), 1)
	var pe *PermissionError
	if !errors.Is(err, recorder.ErrPermission) || !errors.As(err, &pe) || !strings.HasSuffix(pe.Permission, "/blobs/write") {
		t.Fatalf("Put = %v, want a PermissionError naming the blob write action", err)
	}
	srv.CloseClientConnections()
}

func TestOpenURIErrors(t *testing.T) {
	t.Setenv("AZURE_STORAGE_ACCOUNT", "")
	for _, tc := range []struct {
		name, uri, key, want string
	}{
		{"no-container", "azblob://?account=a", "k", "no container"},
		{"userinfo", "azblob://a:secretvalue@ctr?account=a", "k", "credentials in the URI"},
		{"unknown-param", "azblob://ctr?account=a&colour=blue", "k", `unknown URI parameter "colour"`},
		{"no-account", "azblob://ctr", "k", "no account"},
		{"no-key", "azblob://ctr?account=a", "", "no credentials"},
		{"bad-key", "azblob://ctr?account=a", "secretvalue!!", "not a valid account key"},
		{"bad-endpoint", "azblob://ctr?account=a&endpoint=ftp://x", "k", "bad endpoint"},
		{"bad-block", "azblob://ctr?account=a&block_size=x", "k", "bad block_size"},
		{"bad-concurrency", "azblob://ctr?account=a&concurrency=-1", "k", "bad concurrency"},
		{"bad-create", "azblob://ctr?account=a&create_container=perhaps", "k", "bad create_container"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Setenv("AZURE_STORAGE_KEY", tc.key)
			t.Setenv("AZURE_STORAGE_SAS_TOKEN", "")
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
