package recorder_test

import (
	"bytes"
	"compress/gzip"
	"context"
	"errors"
	"io"
	"math"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/sallyport/sallyport/recorder"
)

func sampleCast(t testing.TB) []byte {
	return writeCast(t, recorder.Header{Width: 80, Height: 24}, []recorder.Event{
		{Time: 0, Type: "o", Data: "one "},
		{Time: 200 * time.Millisecond, Type: "r", Data: "100x50"},
		{Time: 400 * time.Millisecond, Type: "o", Data: "two "},
		{Time: 10 * time.Second, Type: "m", Data: "idle ended"},
		{Time: 10*time.Second + 200*time.Millisecond, Type: "o", Data: "three"},
	})
}

func TestPlay(t *testing.T) {
	cast := sampleCast(t)
	var gz bytes.Buffer
	zw := gzip.NewWriter(&gz)
	zw.Write(cast)
	zw.Close()
	tests := []struct {
		name     string
		in       []byte
		opts     *recorder.PlayOptions
		min, max time.Duration
	}{
		// Gaps: 0.2 + 0.2 + 9.6 (capped) + 0.2 seconds.
		{"fast, idle capped", cast, &recorder.PlayOptions{Speed: 10, MaxIdle: time.Second}, 160 * time.Millisecond, 2 * time.Second},
		{"gzip input", gz.Bytes(), &recorder.PlayOptions{Speed: 10, MaxIdle: time.Second}, 160 * time.Millisecond, 2 * time.Second},
		{"original pace, idle capped", cast, &recorder.PlayOptions{MaxIdle: 300 * time.Millisecond}, 900 * time.Millisecond, 5 * time.Second},
		{"every gap capped", cast, &recorder.PlayOptions{MaxIdle: 50 * time.Millisecond}, 200 * time.Millisecond, 2 * time.Second},
		{"no waiting", cast, &recorder.PlayOptions{Speed: math.Inf(1)}, 0, time.Second},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var out bytes.Buffer
			var sizes []string
			var marks []string
			opts := *tc.opts
			opts.OnResize = func(w, h int) { sizes = append(sizes, strconv.Itoa(w)+"x"+strconv.Itoa(h)) }
			opts.OnMarker = func(_ time.Duration, l string) { marks = append(marks, l) }
			start := time.Now()
			if err := recorder.Play(context.Background(), &out, bytes.NewReader(tc.in), &opts); err != nil {
				t.Fatal(err)
			}
			el := time.Since(start)
			if out.String() != "one two three" {
				t.Errorf("played %q", out.String())
			}
			if strings.Join(sizes, ",") != "100x50" || strings.Join(marks, ",") != "idle ended" {
				t.Errorf("resizes %q, markers %q", sizes, marks)
			}
			if el < tc.min || el > tc.max {
				t.Errorf("played in %v, want between %v and %v", el, tc.min, tc.max)
			}
		})
	}
}

func TestPlayCanceled(t *testing.T) {
	cast := sampleCast(t)
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	var out bytes.Buffer
	start := time.Now()
	err := recorder.Play(ctx, &out, bytes.NewReader(cast), nil)
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Play: %v; want DeadlineExceeded", err)
	}
	if el := time.Since(start); el > 2*time.Second {
		t.Errorf("Play returned %v after its context ended", el)
	}
	if out.String() != "one " {
		t.Errorf("played %q before the deadline, want %q", out.String(), "one ")
	}
}

func TestPlayBadInput(t *testing.T) {
	for _, in := range []string{"", "garbage\n", `{"version":2,"width":1,"height":1}` + "\n[bad]\n"} {
		if err := recorder.Play(context.Background(), io.Discard, strings.NewReader(in), nil); !errors.Is(err, recorder.ErrFormat) {
			t.Errorf("Play(%q): %v; want ErrFormat", in, err)
		}
	}
	if err := recorder.Play(context.Background(), io.Discard, bytes.NewReader(sampleCast(t)), &recorder.PlayOptions{Speed: -1}); err == nil {
		t.Error("negative speed accepted")
	}
}

// recordOne records a session into store through a spool and returns its
// object name.
func recordOne(t testing.TB, store recorder.Store, out string) string {
	t.Helper()
	sp := openSpool(t, recorder.Config{Store: store})
	rec, err := sp.NewSession(context.Background(), recorder.Meta{ID: "web", Start: time.Date(2026, 11, 21, 0, 0, 0, 0, time.UTC)})
	if err != nil {
		t.Fatal(err)
	}
	io.WriteString(rec, out)
	rec.Close()
	shutdown(t, sp)
	return rec.Name()
}

func TestExport(t *testing.T) {
	store := newFileStore(t)
	name := recordOne(t, store, "exported\r\n")
	var buf bytes.Buffer
	n, err := recorder.Export(context.Background(), &buf, store, name)
	if err != nil || n != int64(buf.Len()) {
		t.Fatalf("Export = %d, %v", n, err)
	}
	_, evs, err := readCast(t, buf.Bytes())
	if err != nil {
		t.Fatal(err)
	}
	if output(evs) != "exported\r\n" {
		t.Errorf("exported output %q", output(evs))
	}
	if _, err := recorder.Export(context.Background(), &buf, store, "2026/01/01/none.cast.gz"); !errors.Is(err, recorder.ErrNotExist) {
		t.Errorf("Export of a missing recording: %v", err)
	}
}

func TestHandler(t *testing.T) {
	store := newFileStore(t)
	name := recordOne(t, store, "served over http\r\n")
	srv := httptest.NewServer(http.StripPrefix("/recordings", recorder.Handler(store)))
	defer srv.Close()
	base := srv.URL + "/recordings/"
	castPath := strings.TrimSuffix(name, ".gz")

	t.Run("cast", func(t *testing.T) {
		resp, err := http.Get(base + castPath)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		if resp.StatusCode != 200 || resp.Header.Get("Content-Type") != recorder.ContentType {
			t.Fatalf("status %d, type %q", resp.StatusCode, resp.Header.Get("Content-Type"))
		}
		_, evs, err := readCast(t, body)
		if err != nil || output(evs) != "served over http\r\n" {
			t.Fatalf("body: %v, output %q", err, output(evs))
		}
		// Conditional request.
		req, _ := http.NewRequest("GET", base+castPath, nil)
		req.Header.Set("If-None-Match", resp.Header.Get("ETag"))
		resp2, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp2.Body.Close()
		if resp2.StatusCode != http.StatusNotModified {
			t.Errorf("If-None-Match: status %d, want 304", resp2.StatusCode)
		}
	})
	t.Run("raw with range", func(t *testing.T) {
		req, _ := http.NewRequest("GET", base+name, nil)
		req.Header.Set("Range", "bytes=0-1")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		if resp.StatusCode != http.StatusPartialContent || !bytes.Equal(body, []byte{0x1f, 0x8b}) {
			t.Errorf("range: status %d, body %x", resp.StatusCode, body)
		}
	})
	tests := []struct {
		name   string
		method string
		path   string
		status int
		header string
		value  string
	}{
		{"head", "HEAD", castPath, 200, "Content-Type", recorder.ContentType},
		{"download", "GET", castPath + "?download=1", 200, "Content-Disposition", `attachment; filename="web.cast"`},
		{"missing", "GET", "2026/01/01/none.cast", 404, "", ""},
		{"not a recording", "GET", "2026/11/21/web.txt", 404, "", ""},
		{"post", "POST", castPath, 405, "Allow", "GET, HEAD"},
		{"traversal", "GET", "a/../../etc/passwd.cast", 400, "", ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			req, _ := http.NewRequest(tc.method, base+tc.path, nil)
			req.URL.Path = "/recordings/" + strings.Split(tc.path, "?")[0] // keep dot segments
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if resp.StatusCode != tc.status {
				t.Errorf("status %d, want %d", resp.StatusCode, tc.status)
			}
			if tc.header != "" && resp.Header.Get(tc.header) != tc.value {
				t.Errorf("%s = %q, want %q", tc.header, resp.Header.Get(tc.header), tc.value)
			}
		})
	}
	t.Run("store down", func(t *testing.T) {
		down := &flakyStore{Store: store}
		down.down.Store(true)
		rec := httptest.NewRecorder()
		recorder.Handler(down).ServeHTTP(rec, httptest.NewRequest("GET", "/"+castPath, nil))
		if rec.Code != http.StatusBadGateway {
			t.Errorf("status %d, want 502", rec.Code)
		}
	})
}
