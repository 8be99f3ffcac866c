package recorder_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/sallyport/sallyport/recorder"
)

func TestValidateName(t *testing.T) {
	tests := []struct {
		name string
		ok   bool
	}{
		{"2026/11/21/session.cast.gz", true},
		{"a", true},
		{"a.b/c-d_e~f", true},
		{"", false},
		{".", false},
		{"..", false},
		{"/abs", false},
		{"a//b", false},
		{"a/../b", false},
		{"./a", false},
		{"a/", false},
	}
	for _, tc := range tests {
		t.Run(strconv.Quote(tc.name), func(t *testing.T) {
			err := recorder.ValidateName(tc.name)
			if tc.ok != (err == nil) {
				t.Fatalf("ValidateName(%q) = %v; want ok=%v", tc.name, err, tc.ok)
			}
			if err != nil && (!errors.Is(err, recorder.ErrInvalidName) || !errors.Is(err, fs.ErrInvalid)) {
				t.Fatalf("ValidateName(%q) = %v; want ErrInvalidName wrapping fs.ErrInvalid", tc.name, err)
			}
		})
	}
}

func TestPermissionError(t *testing.T) {
	cause := errors.New("403 Forbidden")
	tests := []struct {
		name string
		err  *recorder.PermissionError
		want string
	}{
		{"object", &recorder.PermissionError{Driver: "s3", Op: "PutObject", Permission: "s3:PutObject", Container: "b", Object: "rec/x", Err: cause},
			`s3: PutObject "b/rec/x" denied: missing permission s3:PutObject: 403 Forbidden`},
		{"container", &recorder.PermissionError{Driver: "gcs", Op: "create bucket", Permission: "storage.buckets.create", Container: "b", Err: cause},
			`gcs: create bucket "b" denied: missing permission storage.buckets.create: 403 Forbidden`},
		{"no cause", &recorder.PermissionError{Driver: "azblob", Op: "put blob", Permission: "blobs/write", Container: "c", Object: "o"},
			`azblob: put blob "c/o" denied: missing permission blobs/write`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var err error = fmt.Errorf("wrapped: %w", tc.err)
			if got := tc.err.Error(); got != tc.want {
				t.Errorf("Error() = %q, want %q", got, tc.want)
			}
			if !errors.Is(err, recorder.ErrPermission) || !errors.Is(err, fs.ErrPermission) {
				t.Errorf("%v does not wrap ErrPermission", err)
			}
			if tc.err.Err != nil && !errors.Is(err, cause) {
				t.Errorf("%v does not wrap its cause", err)
			}
			var pe *recorder.PermissionError
			if !errors.As(err, &pe) || pe.Permission != tc.err.Permission {
				t.Errorf("errors.As = %v, %+v", pe != nil, pe)
			}
		})
	}
}

func TestParseSize(t *testing.T) {
	tests := []struct {
		in   string
		want int64
		ok   bool
	}{
		{"5M", 5 << 20, true}, {"5MiB", 5 << 20, true}, {"1G", 1 << 30, true}, {"2GiB", 2 << 30, true},
		{"64K", 64 << 10, true}, {"64KiB", 64 << 10, true}, {"123", 123, true}, {"0", 0, true},
		{"1048576G", 1 << 50, true},
		{"", 0, false}, {"-1", 0, false}, {"x", 0, false}, {"M", 0, false}, {"1.5M", 0, false},
		{"5 M", 0, false}, {"5m", 0, false}, {"99999999999G", 0, false}, {"1048577G", 0, false},
	}
	for _, tc := range tests {
		t.Run(strconv.Quote(tc.in), func(t *testing.T) {
			got, err := recorder.ParseSize(tc.in)
			if (err == nil) != tc.ok || got != tc.want {
				t.Fatalf("ParseSize(%q) = %d, %v; want %d ok=%v", tc.in, got, err, tc.want, tc.ok)
			}
		})
	}
}

// FuzzParseSize: ParseSize never panics, accepts only non-negative counts
// up to 1 PiB, and a count it returns reads back the same as plain digits.
func FuzzParseSize(f *testing.F) {
	for _, s := range []string{"5M", "5MiB", "1G", "64K", "0", "123", "", "-1", "9999999999999G", "M", "1.5M", "08M", "+5K"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		n, err := recorder.ParseSize(s)
		if err != nil {
			return
		}
		if n < 0 || n > 1<<50 {
			t.Fatalf("ParseSize(%q) = %d", s, n)
		}
		back, err := recorder.ParseSize(strconv.FormatInt(n, 10))
		if err != nil || back != n {
			t.Fatalf("ParseSize(%q) = %d, but %d reads back as %d, %v", s, n, n, back, err)
		}
	})
}

var testSpec = recorder.URISpec{
	Driver:      "drv",
	Scheme:      "drv",
	Container:   "bucket",
	Credentials: "the environment",
	Params:      []string{"endpoint", "flag", "size", "n", "name"},
}

func TestParseStoreURI(t *testing.T) {
	tests := []struct {
		name, uri string
		want      string // error substring; "" for success
	}{
		{"plain", "drv://bkt", ""},
		{"prefix and params", "drv://bkt/recordings/?size=8M&flag=true&n=3&endpoint=http://127.0.0.1:9000&name=x", ""},
		{"scheme case", "DRV://bkt", ""},
		{"other scheme", "s3://bkt", `drv: URI scheme "s3" is not "drv"`},
		{"userinfo", "drv://user:secretvalue@bkt", "drv: credentials in the URI are not accepted; use the environment"},
		{"no host", "drv:///path", "drv: URI names no bucket"},
		{"unknown param", "drv://bkt?colour=blue&alpha=1", `drv: unknown URI parameter "alpha"`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			u, err := url.Parse(tc.uri)
			if err != nil {
				t.Fatal(err)
			}
			su, err := recorder.ParseStoreURI(u, testSpec)
			if tc.want != "" {
				if err == nil || !strings.Contains(err.Error(), tc.want) {
					t.Fatalf("ParseStoreURI(%q) = %v; want an error containing %q", tc.uri, err, tc.want)
				}
				if strings.Contains(err.Error(), "secretvalue") {
					t.Fatalf("error leaks the secret: %v", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if su.Container != "bkt" || su.Prefix != strings.TrimPrefix(u.Path, "/") {
				t.Fatalf("Container, Prefix = %q, %q", su.Container, su.Prefix)
			}
		})
	}
}

func TestStoreURIParams(t *testing.T) {
	tests := []struct {
		name  string
		query string
		check func(t *testing.T, su *recorder.StoreURI)
		want  string // error substring; "" for none
	}{
		{"absent", "", func(t *testing.T, su *recorder.StoreURI) {
			if su.Size("size") != 0 || su.Count("n") != 0 || su.Endpoint("endpoint") != nil || !su.Bool("flag", true) || su.Get("name") != "" {
				t.Error("absent parameters do not read as their defaults")
			}
		}, ""},
		{"present", "size=16MiB&n=4&flag=false&endpoint=https://s3.example.com/base&name=x", func(t *testing.T, su *recorder.StoreURI) {
			if got := su.Size("size"); got != 16<<20 {
				t.Errorf("Size = %d", got)
			}
			if got := su.Count("n"); got != 4 {
				t.Errorf("Count = %d", got)
			}
			if su.Bool("flag", true) {
				t.Error("Bool = true")
			}
			if got := su.Endpoint("endpoint"); got == nil || got.String() != "https://s3.example.com/base" {
				t.Errorf("Endpoint = %v", got)
			}
			if got := su.Get("name"); got != "x" {
				t.Errorf("Get = %q", got)
			}
		}, ""},
		{"bad bool", "flag=maybe", func(t *testing.T, su *recorder.StoreURI) { su.Bool("flag", false) }, `drv: bad flag "maybe" (want true or false)`},
		{"bad size", "size=huge", func(t *testing.T, su *recorder.StoreURI) { su.Size("size") }, `drv: bad size "huge"`},
		{"zero size", "size=0", func(t *testing.T, su *recorder.StoreURI) { su.Size("size") }, `drv: bad size "0"`},
		{"bad count", "n=0", func(t *testing.T, su *recorder.StoreURI) { su.Count("n") }, `drv: bad n "0"`},
		{"bad endpoint scheme", "endpoint=ftp://x", func(t *testing.T, su *recorder.StoreURI) { su.Endpoint("endpoint") }, `drv: bad endpoint "ftp://x"`},
		{"endpoint without host", "endpoint=http://", func(t *testing.T, su *recorder.StoreURI) { su.Endpoint("endpoint") }, `drv: bad endpoint`},
		{"endpoint with credentials", "endpoint=" + url.QueryEscape("http://u:secretvalue@h"), func(t *testing.T, su *recorder.StoreURI) { su.Endpoint("endpoint") }, "drv: bad endpoint: credentials in the URI"},
		{"first error kept", "n=x&size=y", func(t *testing.T, su *recorder.StoreURI) {
			su.Count("n")
			su.Size("size")
		}, `drv: bad n "x"`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			su, err := recorder.ParseStoreURI(&url.URL{Scheme: "drv", Host: "bkt", RawQuery: tc.query}, testSpec)
			if err != nil {
				t.Fatal(err)
			}
			tc.check(t, su)
			err = su.Err()
			if tc.want == "" {
				if err != nil {
					t.Fatalf("Err = %v", err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("Err = %v; want one containing %q", err, tc.want)
			}
			if strings.Contains(err.Error(), "secretvalue") {
				t.Fatalf("error leaks the secret: %v", err)
			}
		})
	}
}

// onlyRead hides everything of a reader but Read.
type onlyRead struct{ r io.Reader }

func (o onlyRead) Read(p []byte) (int, error) { return o.r.Read(p) }

var errSource = errors.New("source failed")

func TestReadPart(t *testing.T) {
	tests := []struct {
		name    string
		src     io.Reader
		n       int
		last    bool
		wantErr error
	}{
		{"exact, last", strings.NewReader("abcd"), 4, true, nil},
		{"more, not last", strings.NewReader("abcdef"), 4, false, nil},
		{"more, last", strings.NewReader("abcdef"), 4, true, recorder.ErrSize},
		{"short", strings.NewReader("ab"), 4, false, recorder.ErrSize},
		{"empty buffer, at end", strings.NewReader(""), 0, true, nil},
		{"failing", io.MultiReader(strings.NewReader("ab"), iotestErr{}), 4, false, errSource},
		{"failing after the part", io.MultiReader(strings.NewReader("abcd"), iotestErr{}), 4, true, errSource},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			buf := make([]byte, tc.n)
			err := recorder.ReadPart(tc.src, buf, tc.last)
			if tc.wantErr == nil {
				if err != nil || string(buf) != "abcd"[:tc.n] {
					t.Fatalf("ReadPart = %v, buf %q", err, buf)
				}
				return
			}
			if !errors.Is(err, tc.wantErr) {
				t.Fatalf("ReadPart = %v; want %v", err, tc.wantErr)
			}
		})
	}
}

type iotestErr struct{}

func (iotestErr) Read([]byte) (int, error) { return 0, errSource }

func TestPutSectionAndBody(t *testing.T) {
	data := []byte("skipped0123456789")
	tests := []struct {
		name     string
		src      func() io.Reader
		size     int64
		section  bool // PutSection returns a section
		wantErr  error
		wantBody string
	}{
		{"at an offset", func() io.Reader { r := bytes.NewReader(data); r.Seek(7, io.SeekStart); return r }, 10, true, nil, "0123456789"},
		{"seekable, short", func() io.Reader { return bytes.NewReader(data) }, 18, false, recorder.ErrSize, ""},
		{"seekable, long", func() io.Reader { return bytes.NewReader(data) }, 16, false, recorder.ErrSize, ""},
		{"plain", func() io.Reader { return onlyRead{bytes.NewReader(data[7:])} }, 10, false, nil, "0123456789"},
		{"plain, long", func() io.Reader { return onlyRead{bytes.NewReader(data)} }, 10, false, recorder.ErrSize, ""},
		{"plain, short", func() io.Reader { return onlyRead{bytes.NewReader(data)} }, 20, false, recorder.ErrSize, ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			sr, err := recorder.PutSection(tc.src(), tc.size)
			if (sr != nil) != tc.section {
				t.Errorf("PutSection = %v, %v; want a section: %v", sr, err, tc.section)
			}
			body, err := recorder.PutBody(tc.src(), tc.size)
			if tc.wantErr != nil {
				if !errors.Is(err, tc.wantErr) {
					t.Fatalf("PutBody = %v; want %v", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			for range 2 { // the body can be sent again
				got, err := io.ReadAll(body)
				if err != nil || string(got) != tc.wantBody {
					t.Fatalf("body = %q, %v; want %q", got, err, tc.wantBody)
				}
				body.Seek(0, io.SeekStart)
			}
		})
	}
}

func TestPartSize(t *testing.T) {
	tests := []struct {
		name                     string
		size, partSize, maxParts int64
		wantPartSize             int64
		wantParts                int
	}{
		{"fits", 100 << 20, 8 << 20, 10000, 8 << 20, 13},
		{"exact", 16 << 20, 8 << 20, 2, 8 << 20, 2},
		{"grows to whole MiB", 25 << 20, 8 << 20, 2, 13 << 20, 2},
		{"empty", 0, 8 << 20, 10, 8 << 20, 1},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			ps := recorder.PartSize(tc.size, tc.partSize, tc.maxParts)
			if ps != tc.wantPartSize {
				t.Fatalf("PartSize = %d, want %d", ps, tc.wantPartSize)
			}
			if n := recorder.PartCount(tc.size, ps); n != tc.wantParts || int64(n) > tc.maxParts {
				t.Fatalf("PartCount = %d, want %d", n, tc.wantParts)
			}
		})
	}
}

// partSink collects the parts UploadParts hands out.
type partSink struct {
	mu      sync.Mutex
	parts   map[int][]byte
	active  atomic.Int32
	maxSeen atomic.Int32
}

func (p *partSink) upload(ctx context.Context, part int, body io.ReadSeeker, n int64) error {
	cur := p.active.Add(1)
	defer p.active.Add(-1)
	for {
		m := p.maxSeen.Load()
		if cur <= m || p.maxSeen.CompareAndSwap(m, cur) {
			break
		}
	}
	time.Sleep(time.Millisecond) // let calls overlap
	b, err := io.ReadAll(body)
	if err != nil {
		return err
	}
	if int64(len(b)) != n {
		return fmt.Errorf("part %d: %d bytes, told %d", part, len(b), n)
	}
	p.mu.Lock()
	p.parts[part] = b
	p.mu.Unlock()
	return ctx.Err()
}

func TestUploadParts(t *testing.T) {
	data := make([]byte, 10<<10+123)
	for i := range data {
		data[i] = byte(i * 31)
	}
	tests := []struct {
		name    string
		src     func() io.Reader
		size    int64
		wantErr error
	}{
		{"section", func() io.Reader { return bytes.NewReader(data) }, int64(len(data)), nil},
		{"plain", func() io.Reader { return onlyRead{bytes.NewReader(data)} }, int64(len(data)), nil},
		{"empty", func() io.Reader { return onlyRead{bytes.NewReader(nil)} }, 0, nil},
		{"plain, long", func() io.Reader { return onlyRead{bytes.NewReader(data)} }, int64(len(data)) - 1, recorder.ErrSize},
		{"plain, short", func() io.Reader { return onlyRead{bytes.NewReader(data)} }, int64(len(data)) + 1, recorder.ErrSize},
		{"seekable, short", func() io.Reader { return bytes.NewReader(data) }, int64(len(data)) + 1, recorder.ErrSize},
		{"failing", func() io.Reader { return io.MultiReader(bytes.NewReader(data[:5000]), iotestErr{}) }, int64(len(data)), errSource},
	}
	const partSize, conc = 1 << 10, 3
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			sink := &partSink{parts: map[int][]byte{}}
			err := recorder.UploadParts(context.Background(), tc.src(), tc.size, partSize, conc, sink.upload)
			if tc.wantErr != nil {
				if !errors.Is(err, tc.wantErr) {
					t.Fatalf("UploadParts = %v; want %v", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			n := recorder.PartCount(tc.size, partSize)
			var got []byte
			for i := range n {
				p, ok := sink.parts[i]
				if !ok {
					t.Fatalf("part %d of %d not uploaded", i, n)
				}
				got = append(got, p...)
			}
			if len(sink.parts) != n || !bytes.Equal(got, data[:tc.size]) {
				t.Fatalf("%d parts reassemble to %d bytes, want the %d bytes of the source", len(sink.parts), len(got), tc.size)
			}
			if m := sink.maxSeen.Load(); m > conc {
				t.Fatalf("%d uploads at once, want at most %d", m, conc)
			}
		})
	}
}

// A failing upload call cancels the others and its error is returned.
func TestUploadPartsFailingUpload(t *testing.T) {
	data := make([]byte, 64<<10)
	errUpload := errors.New("upload failed")
	var calls atomic.Int32
	var canceled atomic.Int32
	err := recorder.UploadParts(context.Background(), onlyRead{bytes.NewReader(data)}, int64(len(data)), 1<<10, 4,
		func(ctx context.Context, part int, body io.ReadSeeker, n int64) error {
			calls.Add(1)
			if part == 2 {
				return errUpload
			}
			select {
			case <-ctx.Done():
				canceled.Add(1)
				return ctx.Err()
			case <-time.After(10 * time.Second):
				return nil
			}
		})
	if !errors.Is(err, errUpload) {
		t.Fatalf("UploadParts = %v; want the upload's error", err)
	}
	if c := calls.Load(); c >= 64 {
		t.Errorf("%d of 64 parts uploaded after a failure; want the rest skipped", c)
	}
	if canceled.Load() == 0 {
		t.Error("no running upload saw its context canceled")
	}
}

// A canceled context stops the upload with ctx.Err().
func TestUploadPartsCanceled(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	data := make([]byte, 64<<10)
	err := recorder.UploadParts(ctx, bytes.NewReader(data), int64(len(data)), 1<<10, 2,
		func(ctx context.Context, part int, body io.ReadSeeker, n int64) error {
			if part == 3 {
				cancel()
			}
			return nil
		})
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("UploadParts = %v; want context.Canceled", err)
	}
}

// A driver's OpenURI reads its URI with ParseStoreURI and the StoreURI
// methods, and checks the parameters once.
func ExampleParseStoreURI() {
	spec := recorder.URISpec{
		Driver: "s3", Scheme: "s3", Container: "bucket",
		Credentials: "the environment",
		Params:      []string{"endpoint", "part_size", "path_style"},
	}
	for _, uri := range []string{
		"s3://recordings/cluster-a/?part_size=16M&path_style=true&endpoint=http://127.0.0.1:9000",
		"s3://recordings?part_size=lots",
		"s3://recordings?region=eu",
	} {
		u, _ := url.Parse(uri)
		su, err := recorder.ParseStoreURI(u, spec)
		if err != nil {
			fmt.Println(err)
			continue
		}
		partSize := su.Size("part_size")
		pathStyle := su.Bool("path_style", false)
		endpoint := su.Endpoint("endpoint")
		if err := su.Err(); err != nil {
			fmt.Println(err)
			continue
		}
		fmt.Println(su.Container, su.Prefix, partSize, pathStyle, endpoint)
	}
	// Output:
	// recordings cluster-a/ 16777216 true http://127.0.0.1:9000
	// s3: bad part_size "lots" (want a positive byte count such as 8M)
	// s3: unknown URI parameter "region"
}
