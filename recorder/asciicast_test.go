package recorder_test

import (
	"bytes"
	"compress/gzip"
	"encoding/json"
	"errors"
	"io"
	"math/rand/v2"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/sallyport/sallyport/recorder"
)

// sanitize is the documented representation of invalid UTF-8: each
// invalid byte becomes U+FFFD.
func sanitize(s string) string {
	var b strings.Builder
	for len(s) > 0 {
		r, n := utf8.DecodeRuneInString(s)
		if r == utf8.RuneError && n == 1 {
			b.WriteString("\uFFFD")
		} else {
			b.WriteString(s[:n])
		}
		s = s[n:]
	}
	return b.String()
}

func writeCast(t testing.TB, h recorder.Header, evs []recorder.Event) []byte {
	t.Helper()
	var buf bytes.Buffer
	w, err := recorder.NewWriter(&buf, h)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range evs {
		if err := w.WriteEvent(e); err != nil {
			t.Fatal(err)
		}
	}
	return buf.Bytes()
}

func readCast(t testing.TB, b []byte) (recorder.Header, []recorder.Event, error) {
	t.Helper()
	rd, err := recorder.NewReader(bytes.NewReader(b))
	if err != nil {
		return recorder.Header{}, nil, err
	}
	var evs []recorder.Event
	for {
		e, err := rd.Next()
		if err == io.EOF {
			return rd.Header(), evs, nil
		}
		if err != nil {
			return rd.Header(), evs, err
		}
		evs = append(evs, e)
	}
}

func TestWriterReaderRoundTrip(t *testing.T) {
	tests := []struct {
		name string
		evs  []recorder.Event
	}{
		{"none", nil},
		{"plain", []recorder.Event{{Time: 0, Type: "o", Data: "hello\r\n"}}},
		{"escapes", []recorder.Event{{Time: 1500 * time.Microsecond, Type: "o", Data: "\x1b[31m\"red\"\\\x00\x07\b\f\t\x7f"}}},
		{"unicode", []recorder.Event{{Time: time.Second, Type: "o", Data: "日本語 😀 é \u2028"}}},
		{"resize and marker", []recorder.Event{{Time: 2 * time.Second, Type: "r", Data: "120x40"}, {Time: 3*time.Second + 999999*time.Microsecond, Type: "m", Data: "chapter"}}},
		{"long time", []recorder.Event{{Time: 1000 * time.Hour, Type: "o", Data: "x"}}},
		{"empty data", []recorder.Event{{Time: 0, Type: "o", Data: ""}}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			h := recorder.Header{Width: 80, Height: 24, Timestamp: 1763700000, Title: "t", Env: map[string]string{"TERM": "xterm"}}
			b := writeCast(t, h, tc.evs)
			// Every line is valid JSON for any JSON parser.
			for i, line := range strings.Split(strings.TrimSuffix(string(b), "\n"), "\n") {
				if !json.Valid([]byte(line)) {
					t.Fatalf("line %d is not valid JSON: %q", i+1, line)
				}
			}
			gh, got, err := readCast(t, b)
			if err != nil {
				t.Fatal(err)
			}
			if gh.Version != 2 || gh.Width != 80 || gh.Title != "t" || gh.Env["TERM"] != "xterm" || gh.Timestamp != 1763700000 {
				t.Errorf("header = %+v", gh)
			}
			if len(got) != len(tc.evs) {
				t.Fatalf("read %d events, wrote %d", len(got), len(tc.evs))
			}
			for i := range got {
				if got[i] != tc.evs[i] {
					t.Errorf("event %d = %+v, want %+v", i, got[i], tc.evs[i])
				}
			}
		})
	}
}

func TestInvalidUTF8Representation(t *testing.T) {
	in := "ok\xff\xfe mid\xe6\x97 end\xed\xa0\x80"
	b := writeCast(t, recorder.Header{Width: 1, Height: 1}, []recorder.Event{{Type: "o", Data: in}})
	if !utf8.Valid(b) {
		t.Fatal("output is not valid UTF-8")
	}
	_, evs, err := readCast(t, b)
	if err != nil {
		t.Fatal(err)
	}
	if want := sanitize(in); evs[0].Data != want {
		t.Errorf("data = %q, want %q", evs[0].Data, want)
	}
	if n := strings.Count(evs[0].Data, "\uFFFD"); n != 7 {
		t.Errorf("%d replacement characters, want one per invalid byte (7)", n)
	}
}

func TestReaderErrors(t *testing.T) {
	hdr := `{"version":2,"width":80,"height":24}` + "\n"
	tests := []struct {
		name string
		in   string
		line int // 0: NewReader fails
	}{
		{"empty", "", 1},
		{"not json", "hello\n", 1},
		{"version 1", `{"version":1,"width":80,"height":24}` + "\n", 1},
		{"version 3", `{"version":3,"term":{"cols":80,"rows":24}}` + "\n", 1},
		{"no size", `{"version":2}` + "\n", 1},
		{"event not array", hdr + `{"a":1}` + "\n", 2},
		{"two elements", hdr + `[1.0, "o"]` + "\n", 2},
		{"negative time", hdr + `[-1, "o", "x"]` + "\n", 2},
		{"string time", hdr + `["1", "o", "x"]` + "\n", 2},
		{"number data", hdr + `[1, "o", 5]` + "\n", 2},
		{"empty type", hdr + `[1, "", "x"]` + "\n", 2},
		{"truncated", hdr + `[1, "o", "x` + "\n", 2},
		{"long line", hdr + `[1, "o", "` + strings.Repeat("x", recorder.MaxLineSize) + `"]` + "\n", 2},
		{"error after good", hdr + "[0.5, \"o\", \"a\"]\n\n[x]\n", 4},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, _, err := readCast(t, []byte(tc.in))
			var se *recorder.SyntaxError
			if !errors.As(err, &se) || !errors.Is(err, recorder.ErrFormat) {
				t.Fatalf("error = %v; want a *SyntaxError wrapping ErrFormat", err)
			}
			if se.Line != tc.line {
				t.Errorf("error on line %d, want %d (%v)", se.Line, tc.line, err)
			}
		})
	}
}

func TestReaderAcceptsVariants(t *testing.T) {
	tests := []struct {
		name string
		in   string
		want []recorder.Event
	}{
		{"integer and exponent times", `{"version":2,"width":2,"height":2}` + "\n[1, \"o\", \"a\"]\n[2.5e0, \"o\", \"b\"]\n", []recorder.Event{{time.Second, "o", "a"}, {2500 * time.Millisecond, "o", "b"}}},
		{"crlf and blank lines, no final newline", "{\"version\":2,\"width\":2,\"height\":2}\r\n\r\n[0.1, \"o\", \"a\"]", []recorder.Event{{100 * time.Millisecond, "o", "a"}}},
		{"unknown type passes", `{"version":2,"width":2,"height":2,"idle_time_limit":2}` + "\n[0, \"x\", \"?\"]\n", []recorder.Event{{0, "x", "?"}}},
		{"unicode escapes", `{"version":2,"width":2,"height":2}` + "\n[0, \"o\", \"\\u001b[0m\\u00e9\"]\n", []recorder.Event{{0, "o", "\x1b[0mé"}}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, got, err := readCast(t, []byte(tc.in))
			if err != nil {
				t.Fatal(err)
			}
			if len(got) != len(tc.want) {
				t.Fatalf("events = %+v, want %+v", got, tc.want)
			}
			for i := range got {
				if got[i] != tc.want[i] {
					t.Errorf("event %d = %+v, want %+v", i, got[i], tc.want[i])
				}
			}
		})
	}
}

func TestReaderGzipMembers(t *testing.T) {
	var buf bytes.Buffer
	parts := []string{
		`{"version":2,"width":80,"height":24}` + "\n",
		"[0.1, \"o\", \"one\"]\n",
		"[0.2, \"o\", \"two\"]\n",
	}
	for _, p := range parts {
		zw := gzip.NewWriter(&buf)
		io.WriteString(zw, p)
		zw.Close()
	}
	_, evs, err := readCast(t, buf.Bytes())
	if err != nil {
		t.Fatal(err)
	}
	if len(evs) != 2 || evs[0].Data != "one" || evs[1].Data != "two" {
		t.Fatalf("events across gzip members = %+v", evs)
	}
}

func TestParseHelpers(t *testing.T) {
	tests := []struct {
		name      string
		data      string
		w, h      int
		resizeOK  bool
		endOK     bool
		recovered bool
	}{
		{"resize", "120x40", 120, 40, true, false, false},
		{"resize zero", "0x40", 0, 0, false, false, false},
		{"resize junk", "big", 0, 0, false, false, false},
		{"end", "sallyport:end 2026-11-21T08:30:00.5Z", 0, 0, false, true, false},
		{"end recovered", "sallyport:end-recovered 2026-11-21T08:30:00Z", 0, 0, false, true, true},
		{"end bad time", "sallyport:end yesterday", 0, 0, false, false, false},
		{"other marker", "chapter 1", 0, 0, false, false, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			w, h, ok := recorder.ParseResize(tc.data)
			if ok != tc.resizeOK || w != tc.w || h != tc.h {
				t.Errorf("ParseResize = %d, %d, %v", w, h, ok)
			}
			_, rec, ok := recorder.ParseEndMarker(tc.data)
			if ok != tc.endOK || rec != tc.recovered {
				t.Errorf("ParseEndMarker = %v, %v", rec, ok)
			}
		})
	}
}

func FuzzReader(f *testing.F) {
	f.Add([]byte(`{"version":2,"width":80,"height":24}` + "\n[0.1, \"o\", \"a\"]\n"))
	f.Add([]byte(`{"version":2,"width":80,"height":24,"sallyport":{"id":"x","start":"2026-01-01T00:00:00Z"}}` + "\n[1e3, \"m\", \"sallyport:end 2026-01-01T00:00:00Z\"]\n"))
	f.Add([]byte("{\"version\":2,\"width\":1,\"height\":1}\n[99999999999999999999, \"o\", \"\\ud800\"]\n[0.0000001,\"r\",\"1x1\"]"))
	f.Add([]byte{0x1f, 0x8b, 8, 0})
	f.Fuzz(func(t *testing.T, b []byte) {
		rd, err := recorder.NewReader(bytes.NewReader(b))
		if err != nil {
			return
		}
		for range 10000 {
			e, err := rd.Next()
			if err != nil {
				return
			}
			if e.Time < 0 {
				t.Fatalf("negative time %v", e.Time)
			}
			if !utf8.ValidString(e.Data) {
				t.Fatalf("invalid UTF-8 in event data %q", e.Data)
			}
			if w, h, ok := recorder.ParseResize(e.Data); ok && (w <= 0 || h <= 0) {
				t.Fatalf("ParseResize(%q) = %d, %d, true", e.Data, w, h)
			}
			if end, _, ok := recorder.ParseEndMarker(e.Data); ok && end.IsZero() && !strings.Contains(e.Data, "0001-01-01") {
				t.Fatalf("ParseEndMarker(%q) ok with a zero time", e.Data)
			}
		}
	})
}

func FuzzRoundTrip(f *testing.F) {
	f.Add(uint32(0), "o", "hello\r\n", uint32(1500), "r", "80x24")
	f.Add(uint32(123456789), "m", "\xff\xfe\x00\"\\", uint32(0), "o", "日本\xe6\x97")
	f.Fuzz(func(t *testing.T, t1 uint32, typ1, d1 string, t2 uint32, typ2, d2 string) {
		if typ1 == "" || typ2 == "" {
			return
		}
		evs := []recorder.Event{
			{Time: time.Duration(t1) * time.Microsecond, Type: typ1, Data: d1},
			{Time: time.Duration(t2) * time.Millisecond, Type: typ2, Data: d2},
		}
		b := writeCast(t, recorder.Header{Width: 80, Height: 24}, evs)
		_, got, err := readCast(t, b)
		if err != nil {
			t.Fatalf("reading back: %v\n%s", err, b)
		}
		if len(got) != 2 {
			t.Fatalf("read %d events", len(got))
		}
		for i, e := range evs {
			want := recorder.Event{Time: e.Time, Type: sanitize(e.Type), Data: sanitize(e.Data)}
			if got[i] != want {
				t.Fatalf("event %d = %+v, want %+v", i, got[i], want)
			}
		}
	})
}

// appendJSONString writes what encoding/json reads back as the input
// (invalid bytes as U+FFFD), whatever room dst has: escapes near the end
// of its capacity once lost bytes.
func TestAppendJSONStringCapacity(t *testing.T) {
	alphabet := []byte("a0\"\\\x1b\x11\x00\r\n\x7f\xe5\xae\x8c\xe4\xba\x86\xff\xc3\xbc")
	rng := rand.New(rand.NewPCG(7, 7))
	for range 20000 {
		s := make([]byte, rng.IntN(40))
		for i := range s {
			s[i] = alphabet[rng.IntN(len(alphabet))]
		}
		prefix := bytes.Repeat([]byte{'x'}, rng.IntN(20))
		dst := append(make([]byte, 0, len(prefix)+rng.IntN(40)), prefix...)
		enc := recorder.AppendJSONString(dst, s)
		if !bytes.HasPrefix(enc, prefix) {
			t.Fatalf("prefix lost: %q", enc)
		}
		var got string
		if err := json.Unmarshal(enc[len(prefix):], &got); err != nil {
			t.Fatalf("%q: %v", enc, err)
		}
		if want := sanitize(string(s)); got != want {
			t.Fatalf("%q encoded as %s: read back %q, want %q", s, enc[len(prefix):], got, want)
		}
	}
}
