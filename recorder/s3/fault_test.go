package s3

import (
	"bytes"
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"math/rand/v2"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"
	"github.com/aws/aws-sdk-go-v2/credentials"
	awss3 "github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/sallyport/sallyport/internal/testservice"
	"github.com/sallyport/sallyport/recorder"
	"github.com/sallyport/sallyport/recorder/recordertest"
)

// sessionOutput is the terminal output session i produces in its chunk j:
// deterministic, so that the test can compare what the store holds.
func sessionOutput(i, j int) []byte {
	return fmt.Appendf(nil, "session %03d chunk %04d: %s\r\n", i, j, strings.Repeat(string(rune('a'+(i+j)%26)), 40+(i*7+j)%50))
}

// decodeOutput returns the output events of a stored recording, joined.
func decodeOutput(t testing.TB, s recorder.Store, name string) []byte {
	t.Helper()
	rc, err := s.Get(context.Background(), name)
	if err != nil {
		t.Fatalf("Get(%q): %v", name, err)
	}
	defer rc.Close()
	rd, err := recorder.NewReader(rc)
	if err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	var out bytes.Buffer
	for {
		e, err := rd.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if e.Type == recorder.EventOutput {
			out.WriteString(e.Data)
		}
	}
	return out.Bytes()
}

// readyFiles returns the recordings waiting in a spool directory, by
// object name.
func readyFiles(t testing.TB, dir string) map[string][]byte {
	t.Helper()
	m := map[string][]byte{}
	root := filepath.Join(dir, "ready")
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(root, p)
		m[filepath.ToSlash(rel)] = b
		return nil
	})
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		t.Fatal(err)
	}
	return m
}

func waitUploaded(t testing.TB, sp *recorder.Spool, n int64, timeout time.Duration) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		st := sp.Stats()
		if st.Uploaded >= n && st.Pending == 0 && st.Active == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("after %v: %+v; want %d uploaded and nothing pending", timeout, st, n)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// TestOutage: MinIO stops for 30 seconds while 100 sessions record. Half
// of the sessions end during the outage (their uploads fail and are
// retried), half go on recording through it and end after MinIO returns.
// Afterwards all 100 recordings are in the bucket, byte-identical to the
// spool's files and holding exactly the captured output.
func TestOutage(t *testing.T) {
	if testing.Short() {
		t.Skip("30-second outage; run without -short")
	}
	srv := testservice.StartMinIO(t)
	srv.SetEnv(t)
	store := openStore(t, srv, "")
	ctx := context.Background()
	dir := t.TempDir()
	sp, err := recorder.Open(ctx, &recorder.Config{
		Dir: dir, Store: store,
		RetryMin: 200 * time.Millisecond, RetryMax: 2 * time.Second,
		UploadTimeout: 20 * time.Second, Uploads: 4,
		CheckpointInterval: time.Second,
	})
	if err != nil {
		t.Fatal(err)
	}
	defer sp.Close()

	const sessions = 100
	recs := make([]*recorder.Recording, sessions)
	captured := make([]bytes.Buffer, sessions)
	chunks := make([]int, sessions)
	write := func(i int) {
		p := sessionOutput(i, chunks[i])
		chunks[i]++
		if _, err := recs[i].Write(p); err != nil {
			t.Fatalf("session %d: Write: %v", i, err)
		}
		captured[i].Write(p)
	}
	for i := range recs {
		recs[i], err = sp.NewSession(ctx, recorder.Meta{ID: fmt.Sprintf("outage-%03d", i), User: "alice", Node: "node-1"})
		if err != nil {
			t.Fatal(err)
		}
		for range 20 {
			write(i)
		}
	}

	srv.Stop()
	outageStart := time.Now()
	t.Logf("MinIO stopped")
	// During the outage: every session records; the first half ends.
	for round := 0; time.Since(outageStart) < 25*time.Second; round++ {
		for i := range recs {
			if recs[i] == nil {
				continue
			}
			write(i)
			if i < sessions/2 && round == 10+i/5 {
				if err := recs[i].Close(); err != nil {
					t.Fatalf("session %d: Close: %v", i, err)
				}
				recs[i] = nil
			}
		}
		time.Sleep(100 * time.Millisecond)
	}
	st := sp.Stats()
	if st.Uploaded != 0 || st.Pending != sessions/2 || st.UploadFailures == 0 {
		t.Fatalf("during the outage: %+v; want nothing uploaded, %d pending, failed attempts", st, sessions/2)
	}
	spooled := readyFiles(t, dir)
	if len(spooled) != sessions/2 {
		t.Fatalf("%d recordings wait in the spool, want %d", len(spooled), sessions/2)
	}
	time.Sleep(time.Until(outageStart.Add(30 * time.Second)))

	srv.Restart("")
	srv.WaitReady(t)
	t.Logf("MinIO back after %v; %d failed upload attempts so far", time.Since(outageStart).Round(time.Second), sp.Stats().UploadFailures)
	for i := range recs {
		if recs[i] == nil {
			continue
		}
		for range 5 {
			write(i)
		}
		if err := recs[i].Close(); err != nil {
			t.Fatalf("session %d: Close: %v", i, err)
		}
	}
	waitUploaded(t, sp, sessions, 60*time.Second)

	objs, err := store.List(ctx, "")
	if err != nil {
		t.Fatal(err)
	}
	if len(objs) != sessions {
		t.Fatalf("bucket holds %d objects, want %d", len(objs), sessions)
	}
	for name, want := range spooled {
		rc, err := store.Get(ctx, name)
		if err != nil {
			t.Fatalf("Get(%q): %v", name, err)
		}
		got, err := io.ReadAll(rc)
		rc.Close()
		if err != nil || !bytes.Equal(got, want) {
			t.Fatalf("%s: stored %d bytes (err %v), spooled %d: not byte-identical", name, len(got), err, len(want))
		}
	}
	for i, o := range objs {
		want := fmt.Sprintf("outage-%03d.cast.gz", i)
		if !strings.HasSuffix(o.Name, "/"+want) {
			t.Fatalf("object %d is %q, want .../%s", i, o.Name, want)
		}
		if got := decodeOutput(t, store, o.Name); !bytes.Equal(got, captured[i].Bytes()) {
			t.Fatalf("%s: output differs from what session %d captured (%d vs %d bytes)", o.Name, i, len(got), captured[i].Len())
		}
	}
	if err := sp.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}
}

// Environment of the child process TestKillMidMultipart starts.
const (
	childEnv       = "SALLYPORT_S3_TEST_CHILD"
	childEndpoint  = "SALLYPORT_S3_TEST_ENDPOINT"
	childBucket    = "SALLYPORT_S3_TEST_BUCKET"
	childSpool     = "SALLYPORT_S3_TEST_SPOOL"
	killSessionID  = "killed-mid-upload"
	killOutputSize = 14 << 20
)

// killOutput is the output the killed session captured: random printable
// text, so that the compressed recording needs several parts.
func killOutput() []byte {
	raw := make([]byte, killOutputSize/4*3)
	rand.NewChaCha8([32]byte{11, 12}).Read(raw)
	return []byte(base64.StdEncoding.EncodeToString(raw))
}

// childMain runs the child side of TestKillMidMultipart when the test
// binary is started as that child: it records one large session into a
// spool whose store uploads slowly (a throttled transport, 4 MiB/s),
// so that the parent can kill it in the middle of the multipart upload.
// It reports whether it ran.
func childMain() bool {
	if os.Getenv(childEnv) != "record" {
		return false
	}
	fail := func(err error) {
		fmt.Fprintln(os.Stderr, "child:", err)
		os.Exit(2)
	}
	ctx := context.Background()
	tr := awshttp.NewBuildableClient().GetTransport()
	client := awss3.New(awss3.Options{
		Region:       "us-east-1",
		BaseEndpoint: aws.String(os.Getenv(childEndpoint)),
		UsePathStyle: true,
		Credentials:  credentials.NewStaticCredentialsProvider(os.Getenv("AWS_ACCESS_KEY_ID"), os.Getenv("AWS_SECRET_ACCESS_KEY"), ""),
		HTTPClient:   &http.Client{Transport: throttled{tr, 4 << 20}},
	})
	store, err := Open(ctx, &Config{Client: client, Bucket: os.Getenv(childBucket), PartSize: 5 << 20, MultipartThreshold: 5 << 20, Concurrency: 1})
	if err != nil {
		fail(err)
	}
	sp, err := recorder.Open(ctx, &recorder.Config{Dir: os.Getenv(childSpool), Store: store, CompressionLevel: 1})
	if err != nil {
		fail(err)
	}
	rec, err := sp.NewSession(ctx, recorder.Meta{ID: killSessionID, User: "bob"})
	if err != nil {
		fail(err)
	}
	out := killOutput()
	for len(out) > 0 {
		n := min(len(out), 64<<10)
		if _, err := rec.Write(out[:n]); err != nil {
			fail(err)
		}
		out = out[n:]
	}
	if err := rec.Close(); err != nil {
		fail(err)
	}
	fmt.Println("recorded")
	select {} // upload in the background until killed
}

// throttled limits the upload rate of request bodies.
type throttled struct {
	rt   http.RoundTripper
	rate int // bytes per second
}

func (t throttled) RoundTrip(req *http.Request) (*http.Response, error) {
	if req.Body != nil && req.Body != http.NoBody {
		req.Body = &slowBody{ReadCloser: req.Body, rate: t.rate}
	}
	return t.rt.RoundTrip(req)
}

type slowBody struct {
	io.ReadCloser
	rate int
}

func (s *slowBody) Read(p []byte) (int, error) {
	if len(p) > 64<<10 {
		p = p[:64<<10]
	}
	n, err := s.ReadCloser.Read(p)
	time.Sleep(time.Duration(n) * time.Second / time.Duration(s.rate))
	return n, err
}

// TestKillMidMultipart: the process uploading a recording is killed
// (SIGKILL) in the middle of its multipart upload. No partial object is
// visible; after a restart on the same spool directory the recording is
// uploaded once, complete, and the abandoned upload is cleaned up.
func TestKillMidMultipart(t *testing.T) {
	srv := testservice.StartMinIO(t)
	srv.SetEnv(t)
	ctx := context.Background()
	store := openStore(t, srv, "&part_size=5M&multipart_threshold=5M")
	dir := t.TempDir()

	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), childEnv+"=record", childEndpoint+"="+srv.Endpoint, childBucket+"="+store.Bucket(), childSpool+"="+dir)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	started := time.Now()
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	var once sync.Once
	kill := func() { once.Do(func() { syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL); cmd.Wait() }) }
	t.Cleanup(kill)

	// Wait until the multipart upload has a part on the server (and two more
	// to go at the throttled rate), then
	// kill the child.
	var name string
	deadline := time.Now().Add(60 * time.Second)
	for name == "" {
		if time.Now().After(deadline) {
			kill()
			t.Fatalf("no multipart upload with a part appeared; child stderr:\n%s", stderr.String())
		}
		time.Sleep(20 * time.Millisecond)
		ups, err := store.Client().ListMultipartUploads(ctx, &awss3.ListMultipartUploadsInput{Bucket: aws.String(store.Bucket())})
		if err != nil {
			t.Fatal(err)
		}
		for _, u := range ups.Uploads {
			parts, err := store.Client().ListParts(ctx, &awss3.ListPartsInput{Bucket: aws.String(store.Bucket()), Key: u.Key, UploadId: u.UploadId})
			if err == nil && len(parts.Parts) >= 1 {
				name = aws.ToString(u.Key)
			}
		}
	}
	kill()
	t.Logf("killed the uploader during the multipart upload of %s (%v after its start)", name, time.Since(started).Round(time.Millisecond))

	if _, err := store.Stat(ctx, name); !errors.Is(err, recorder.ErrNotExist) {
		t.Fatalf("after the kill, Stat = %v; want ErrNotExist (no partial object)", err)
	}
	if l, err := store.List(ctx, ""); err != nil || len(l) != 0 {
		t.Fatalf("after the kill, List = %v, %v; want empty", l, err)
	}
	waitUploads(t, store, name, 1)
	spooled := readyFiles(t, dir)
	if len(spooled) != 1 || spooled[name] == nil {
		t.Fatalf("spool holds %v; want %s waiting", keys(spooled), name)
	}

	// Restart: a new uploader on the same spool directory. Its store
	// aborts the abandoned upload of the name before its own.
	restarted, err := Open(ctx, &Config{Client: store.Client(), Bucket: store.Bucket(), PartSize: 5 << 20, MultipartThreshold: 5 << 20, StaleUploadAge: time.Nanosecond})
	if err != nil {
		t.Fatal(err)
	}
	sp, err := recorder.Open(ctx, &recorder.Config{Dir: dir, Store: restarted, RetryMin: 100 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	defer sp.Close()
	waitUploaded(t, sp, 1, 60*time.Second)
	t.Logf("restarted uploader done %v after the child's start", time.Since(started).Round(time.Millisecond))

	objs, err := store.List(ctx, "")
	if err != nil {
		t.Fatal(err)
	}
	if len(objs) != 1 || objs[0].Name != name || objs[0].Size != int64(len(spooled[name])) {
		t.Fatalf("bucket holds %+v; want exactly %s of %d bytes", objs, name, len(spooled[name]))
	}
	recordertest.WantObject(t, store, name, spooled[name])
	if got := decodeOutput(t, store, name); !bytes.Equal(got, killOutput()) {
		t.Fatalf("stored recording holds %d bytes of output, want the %d captured", len(got), killOutputSize)
	}
	waitUploads(t, store, name, 0)
	if st := sp.Stats(); st.Conflicts != 0 || st.Uploaded != 1 {
		t.Fatalf("spool stats %+v; want one upload, no conflicts", st)
	}
}

func keys(m map[string][]byte) []string {
	var k []string
	for n := range m {
		k = append(k, n)
	}
	return k
}
