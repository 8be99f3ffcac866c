package recorder

import (
	"bytes"
	"compress/gzip"
	"errors"
	"io"
	"math/bits"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
	"unicode/utf8"
)

// spoolBytes builds a spool file as Recording writes it: a header member,
// then members of events, ending at event boundaries.
func spoolBytes(t testing.TB, members [][]Event) ([]byte, string) {
	t.Helper()
	var out bytes.Buffer
	var want strings.Builder
	member := func(b []byte) {
		zw := gzip.NewWriter(&out)
		zw.Write(b)
		zw.Close()
	}
	var hdr bytes.Buffer
	NewWriter(&hdr, Header{Width: 80, Height: 24, Timestamp: 1763700000, Session: &Meta{ID: "f", Start: time.Unix(1763700000, 0).UTC()}})
	member(hdr.Bytes())
	for _, m := range members {
		var b bytes.Buffer
		w := &Writer{w: &b}
		for _, e := range m {
			w.WriteEvent(e)
			if e.Type == EventOutput {
				want.WriteString(e.Data)
			}
		}
		member(b.Bytes())
	}
	return out.Bytes(), want.String()
}

func sampleMembers() [][]Event {
	return [][]Event{
		{{Time: time.Millisecond, Type: "o", Data: "first line\r\n"}},
		{{Time: 2 * time.Millisecond, Type: "r", Data: "90x30"}, {Time: 3 * time.Millisecond, Type: "o", Data: "second é\r\n"}},
		{{Time: 4 * time.Second, Type: "o", Data: strings.Repeat("third ", 100)}},
	}
}

// recovered checks the property of recovery: either nothing to recover, or
// a valid recording whose output is a prefix of the original output and
// which ends with an end marker.
func checkRecovery(t *testing.T, file []byte, original string) (string, error) {
	t.Helper()
	p := filepath.Join(t.TempDir(), "f.cast.gz")
	if err := os.WriteFile(p, file, 0o600); err != nil {
		t.Fatal(err)
	}
	size, err := recoverFile(p)
	if errors.Is(err, errNothingToRecover) {
		return "", err
	}
	if err != nil {
		t.Fatalf("recoverFile: %v", err)
	}
	got, _ := os.ReadFile(p)
	if int64(len(got)) != size {
		t.Fatalf("recoverFile says %d bytes, file has %d", size, len(got))
	}
	rd, err := NewReader(bytes.NewReader(got))
	if err != nil {
		t.Fatalf("recovered file: %v", err)
	}
	var out strings.Builder
	var last Event
	for {
		e, err := rd.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatalf("recovered file: %v", err)
		}
		if e.Type == EventOutput {
			out.WriteString(e.Data)
		}
		last = e
	}
	if !strings.HasPrefix(original, out.String()) {
		t.Fatalf("recovered output %q is not a prefix of %q", out.String(), original)
	}
	if _, _, ok := ParseEndMarker(last.Data); last.Type != EventMarker || !ok {
		t.Fatalf("recovered file ends with %+v, not an end marker", last)
	}
	// Recovering again changes nothing.
	size2, err := recoverFile(p)
	if err != nil || size2 != size {
		t.Fatalf("second recovery: %d, %v; want %d", size2, err, size)
	}
	return out.String(), nil
}

func TestRecoverFile(t *testing.T) {
	full, want := spoolBytes(t, sampleMembers())
	var hdrOnly, _ = spoolBytes(t, nil)
	tests := []struct {
		name    string
		file    []byte
		want    string
		nothing bool
	}{
		{"complete", full, want, false},
		{"cut in the last member", full[:len(full)-5], "first line\r\nsecond é\r\n", false},
		{"garbage after", append(append([]byte{}, full...), "garbage"...), want, false},
		{"header only", hdrOnly, "", false},
		{"cut in the header", hdrOnly[:len(hdrOnly)-1], "", true},
		{"empty", nil, "", true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := checkRecovery(t, tc.file, want)
			if tc.nothing {
				if !errors.Is(err, errNothingToRecover) {
					t.Fatalf("err = %v; want errNothingToRecover", err)
				}
				return
			}
			if got != tc.want {
				t.Errorf("recovered output %q, want %q", got, tc.want)
			}
		})
	}
}

func FuzzRecoverFile(f *testing.F) {
	f.Add(uint16(0), []byte(nil))
	f.Add(uint16(60), []byte("x"))
	f.Add(uint16(300), []byte{0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 0xff})
	f.Add(uint16(65535), []byte{})
	full, want := spoolBytes(f, sampleMembers())
	f.Fuzz(func(t *testing.T, cut uint16, garbage []byte) {
		n := int(cut) % (len(full) + 1)
		file := append(append([]byte{}, full[:n]...), garbage...)
		checkRecovery(t, file, want)
	})
}

func TestSpecial8(t *testing.T) {
	for b := range 256 {
		for pos := range 8 {
			w := []byte("abcdefgh")
			w[pos] = byte(b)
			special := b < 0x20 || b >= 0x7f || b == '"' || b == '\\'
			m := special8(leUint64(w))
			if !special && m != 0 {
				t.Fatalf("special8 flags plain byte %#x at %d: %#x", b, pos, m)
			}
			if special && (m == 0 || bits.TrailingZeros64(m)/8 != pos) {
				t.Fatalf("special8 with byte %#x at %d: lowest flag %d", b, pos, bits.TrailingZeros64(m)/8)
			}
		}
	}
	// Two special bytes: the lowest flag is the first.
	for b1 := range 256 {
		w := []byte("ab\x01defgh")
		w[1] = byte(b1)
		m := special8(leUint64(w))
		want := 2
		if b1 < 0x20 || b1 >= 0x7f || b1 == '"' || b1 == '\\' {
			want = 1
		}
		if bits.TrailingZeros64(m)/8 != want {
			t.Fatalf("bytes %#x, 0x01: lowest flag at %d, want %d", b1, bits.TrailingZeros64(m)/8, want)
		}
	}
}

func leUint64(b []byte) uint64 {
	var v uint64
	for i := 7; i >= 0; i-- {
		v = v<<8 | uint64(b[i])
	}
	return v
}

func BenchmarkAppendJSONString(b *testing.B) {
	data := bytes.Repeat([]byte("2026-11-21T08:12:13.123456Z level=INFO msg=\"GET /api\" \x1b[01;34mdir\x1b[0m 完了\r\n"), 1000)
	var dst []byte
	b.SetBytes(int64(len(data)))
	for range b.N {
		dst = appendJSONString(dst[:0], data)
	}
}

// A long session with bursts keeps a recording's memory bounded by its
// buffer size.
func TestRecordingMemoryBounded(t *testing.T) {
	const limit = 64 << 10
	sp, err := Open(t.Context(), &Config{Dir: t.TempDir(), BufferSize: limit, DiskBudget: -1})
	if err != nil {
		t.Fatal(err)
	}
	defer sp.Close()
	rec, err := sp.NewSession(t.Context(), Meta{})
	if err != nil {
		t.Fatal(err)
	}
	chunk := bytes.Repeat([]byte("\x1b[0mx\x00"), 10<<10) // escapes grow 2-6x in JSON
	var maxBuf, maxEnc int
	for range 400 { // 24 MiB
		if _, err := rec.Write(chunk); err != nil {
			t.Fatal(err)
		}
		rec.mu.Lock()
		maxBuf = max(maxBuf, cap(rec.buf), cap(rec.spare))
		rec.mu.Unlock()
	}
	if err := rec.Checkpoint(); err != nil {
		t.Fatal(err)
	}
	maxEnc = cap(rec.enc) // the writer is idle after Checkpoint
	if err := rec.Close(); err != nil {
		t.Fatal(err)
	}
	if maxBuf > 2*limit {
		t.Errorf("output buffer grew to %d bytes; limit %d", maxBuf, limit)
	}
	if maxEnc > 6*limit+64<<10 {
		t.Errorf("encoding buffer grew to %d bytes", maxEnc)
	}
}

type failingWriter struct{}

var errDiskFull = errors.New("test: no space left on device")

func (failingWriter) Write([]byte) (int, error) { return 0, errDiskFull }

// When writing the spool file fails, the error is sticky and Close
// finishes the file from its last checkpoint, as crash recovery does.
func TestRecordingWriteFailure(t *testing.T) {
	dir := t.TempDir()
	sp, err := Open(t.Context(), &Config{Dir: dir})
	if err != nil {
		t.Fatal(err)
	}
	defer sp.Close()
	rec, err := sp.NewSession(t.Context(), Meta{ID: "full", Start: time.Date(2026, 2, 3, 0, 0, 0, 0, time.UTC)})
	if err != nil {
		t.Fatal(err)
	}
	rec.Write([]byte("kept\r\n"))
	if err := rec.Checkpoint(); err != nil {
		t.Fatal(err)
	}
	rec.bw.Reset(failingWriter{}) // the writer goroutine is idle: Checkpoint synchronised with it
	rec.Write(bytes.Repeat([]byte("lost "), 20000))
	if err := rec.Checkpoint(); !errors.Is(err, errDiskFull) {
		t.Fatalf("Checkpoint on a full disk: %v", err)
	}
	if _, err := rec.Write([]byte("more")); !errors.Is(err, errDiskFull) {
		t.Errorf("Write after the failure: %v; want the sticky error", err)
	}
	if err := rec.Close(); !errors.Is(err, errDiskFull) {
		t.Errorf("Close: %v; want the failure", err)
	}
	st := sp.Stats()
	if st.Pending != 1 || !strings.Contains(st.LastError, "no space") {
		t.Errorf("stats = %+v", st)
	}
	b, err := os.ReadFile(filepath.Join(dir, "ready", "2026", "02", "03", "full.cast.gz"))
	if err != nil {
		t.Fatal(err)
	}
	info, err := ReadInfo(bytes.NewReader(b))
	if err != nil {
		t.Fatal(err)
	}
	if info.OutputBytes != int64(len("kept\r\n")) || !info.Recovered {
		t.Errorf("finished file: %+v", info)
	}
}

// runeLen accepts exactly the sequences utf8.DecodeRune decodes.
func TestRuneLen(t *testing.T) {
	tails := []byte{0x00, 0x7f, 0x80, 0x8f, 0x90, 0x9f, 0xa0, 0xbf, 0xc0, 0xff}
	for b0 := 0x80; b0 <= 0xff; b0++ {
		for b1 := 0; b1 <= 0xff; b1++ {
			for _, b2 := range tails {
				for _, b3 := range tails {
					full := []byte{byte(b0), byte(b1), b2, b3}
					for n := 1; n <= 4; n++ {
						p := full[:n]
						r, size := utf8.DecodeRune(p)
						want := size
						if r == utf8.RuneError && size == 1 {
							want = 0
						}
						if got := runeLen(p); got != want {
							t.Fatalf("runeLen(% x) = %d, want %d", p, got, want)
						}
					}
				}
			}
		}
	}
}
