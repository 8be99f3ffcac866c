package file_test

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"go.uber.org/goleak"

	"github.com/sallyport/sallyport/recorder"
	"github.com/sallyport/sallyport/recorder/file"
	"github.com/sallyport/sallyport/recorder/recordertest"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func TestConformance(t *testing.T) {
	recordertest.Run(t, func(t testing.TB) recorder.Store {
		s, err := file.Open(filepath.Join(t.TempDir(), "store"))
		if err != nil {
			t.Fatal(err)
		}
		return s
	})
}

// Stores of one shared directory behave like one store (two processes).
func TestConformanceSharedDir(t *testing.T) {
	dir := t.TempDir()
	recordertest.RunOptions(t, func(t testing.TB) recorder.Store {
		s, err := file.Open(dir)
		if err != nil {
			t.Fatal(err)
		}
		return s
	}, recordertest.Options{LargeSize: 3 << 20, Concurrency: 16})
}

func TestOpenStoreURI(t *testing.T) {
	dir := t.TempDir()
	tests := []struct {
		name    string
		uri     string
		wantDir string
		wantErr string
	}{
		{"absolute", "file://" + dir + "/a", dir + "/a", ""},
		{"localhost", "file://localhost" + dir + "/b", dir + "/b", ""},
		{"remote host", "file://example.com/x", "", "host"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s, err := recorder.OpenStore(context.Background(), tc.uri)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("OpenStore(%q) error = %v; want one mentioning %q", tc.uri, err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			defer s.Close()
			if got := s.(*file.Store).Dir(); got != tc.wantDir {
				t.Errorf("Dir = %q, want %q", got, tc.wantDir)
			}
			if fi, err := os.Stat(tc.wantDir); err != nil || !fi.IsDir() {
				t.Errorf("directory not created: %v", err)
			}
		})
	}
}

func TestInvalidNames(t *testing.T) {
	s, err := file.Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	for _, name := range []string{"", ".", "..", "../x", "a/../../x", "/abs", "a//b", "a/./b", `a\b`, "a/.tmp-put-123"} {
		err := s.Put(context.Background(), name, bytes.NewReader([]byte("x")), 1)
		if !errors.Is(err, file.ErrInvalidName) {
			t.Errorf("Put(%q) error = %v; want ErrInvalidName", name, err)
		}
	}
}

func TestPermissionErrorNamesPermission(t *testing.T) {
	dir := t.TempDir()
	ro := filepath.Join(dir, "ro")
	if err := os.Mkdir(ro, 0o555); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.Chmod(ro, 0o700) })
	s, err := file.Open(ro)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	var putErr, openErr error
	asUnprivileged(t, func() {
		putErr = s.Put(context.Background(), "x/y", bytes.NewReader([]byte("x")), 1)
		_, openErr = file.Open(filepath.Join(ro, "sub"))
	})
	if !errors.Is(putErr, recorder.ErrPermission) || !strings.Contains(putErr.Error(), "write and search (w+x)") {
		t.Errorf("Put into a read-only directory: %v; want ErrPermission naming w+x", putErr)
	}
	if !errors.Is(openErr, recorder.ErrPermission) || !strings.Contains(openErr.Error(), "permission needed") {
		t.Errorf("Open below a read-only directory: %v; want ErrPermission naming the permission", openErr)
	}
}

func TestNoTempFilesLeft(t *testing.T) {
	dir := t.TempDir()
	s, err := file.Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	ctx := context.Background()
	if err := s.Put(ctx, "a/obj", bytes.NewReader([]byte("abc")), 3); err != nil {
		t.Fatal(err)
	}
	_ = s.Put(ctx, "a/obj", bytes.NewReader([]byte("abcd")), 4)
	_ = s.Put(ctx, "a/short", bytes.NewReader([]byte("ab")), 4)
	ents, err := os.ReadDir(filepath.Join(dir, "a"))
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range ents {
		names = append(names, e.Name())
	}
	if strings.Join(names, ",") != "obj" {
		t.Fatalf("directory holds %q; want only obj", names)
	}
}
