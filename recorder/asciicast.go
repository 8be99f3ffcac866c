package recorder

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"math/bits"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"
)

// Event types of asciicast v2.
const (
	EventOutput = "o" // data written to the terminal
	EventInput  = "i" // data typed by the user (not recorded by Recording)
	EventResize = "r" // data is "COLSxROWS"
	EventMarker = "m" // data is a label
)

// EndMarkerPrefix starts the label of the marker event that ends every
// recording Recording writes: "sallyport:end 2026-11-21T08:30:00.123Z"
// for a session that ended normally and "sallyport:end-recovered ..." for
// one finished by crash recovery (then the time is the last event's).
const EndMarkerPrefix = "sallyport:end"

// ErrFormat: the input is not an asciicast v2 recording (or is damaged).
// Errors from Reader wrap it in a *SyntaxError that names the line.
var ErrFormat = errors.New("recorder: not a valid asciicast v2 recording")

// SyntaxError reports a malformed line of an asciicast recording.
type SyntaxError struct {
	Line int    // 1-based; line 1 is the header
	Msg  string // what is wrong
}

func (e *SyntaxError) Error() string {
	return fmt.Sprintf("recorder: asciicast line %d: %s", e.Line, e.Msg)
}

// Unwrap returns ErrFormat.
func (e *SyntaxError) Unwrap() error { return ErrFormat }

// MaxLineSize bounds one line a Reader accepts. Recording never writes an
// event line longer than about 6 times maxEventData.
const MaxLineSize = 8 << 20

// maxEventData bounds the output bytes of one event Recording writes;
// longer output becomes several events with the same time.
const maxEventData = 256 << 10

// Meta describes the recorded session. It is stored in the asciicast
// header under the "sallyport" key, which players ignore.
type Meta struct {
	// ID names the session. Zero means a random UUID.
	ID string `json:"id"`
	// User is the cluster identity of who ran the session.
	User string `json:"user,omitempty"`
	// Login is the OS login on the node.
	Login string `json:"login,omitempty"`
	// Node is the node's name.
	Node string `json:"node,omitempty"`
	// Remote is the client's address.
	Remote string `json:"remote,omitempty"`
	// Command is the command run; empty for an interactive shell.
	Command string `json:"command,omitempty"`
	// Start is when the session started. Zero means now.
	Start time.Time `json:"start"`
	// Width and Height are the terminal size at the start. Zero means 80x24.
	Width  int `json:"-"`
	Height int `json:"-"`
	// Term is the TERM variable, put in the header's env. Zero leaves it out.
	Term string `json:"-"`
	// Title is the header's title. Zero means "User@Node as Login" (with
	// the parts that are set).
	Title string `json:"-"`
}

func (m *Meta) defaultTitle() string {
	var b strings.Builder
	b.WriteString(m.User)
	if m.Node != "" {
		if b.Len() > 0 {
			b.WriteString("@")
		}
		b.WriteString(m.Node)
	}
	if m.Login != "" {
		if b.Len() > 0 {
			b.WriteString(" as ")
		}
		b.WriteString(m.Login)
	}
	return b.String()
}

// Header is the first line of an asciicast v2 recording.
type Header struct {
	Version   int               `json:"version"`
	Width     int               `json:"width"`
	Height    int               `json:"height"`
	Timestamp int64             `json:"timestamp,omitempty"`
	Title     string            `json:"title,omitempty"`
	Env       map[string]string `json:"env,omitempty"`
	// Session is the sallyport metadata; nil in recordings made elsewhere.
	Session *Meta `json:"sallyport,omitempty"`
}

// Event is one asciicast v2 event.
type Event struct {
	// Time since the start of the recording; written with microsecond
	// precision.
	Time time.Duration
	// Type is EventOutput, EventResize, EventMarker or EventInput (others
	// are passed through by Reader).
	Type string
	// Data is the event's text; always valid UTF-8 when read back.
	Data string
}

// Writer writes an uncompressed asciicast v2 stream. Recording uses the
// same encoding; Writer is for converting and for tests. It is not safe
// for concurrent use.
type Writer struct {
	w   io.Writer
	buf []byte
}

// NewWriter writes the header line to w.
func NewWriter(w io.Writer, h Header) (*Writer, error) {
	if h.Version == 0 {
		h.Version = 2
	}
	if h.Version != 2 || h.Width <= 0 || h.Height <= 0 {
		return nil, fmt.Errorf("recorder: header needs version 2 and a positive width and height, have %d, %dx%d", h.Version, h.Width, h.Height)
	}
	line, err := json.Marshal(h)
	if err != nil {
		return nil, fmt.Errorf("recorder: header: %w", err)
	}
	if _, err := w.Write(append(line, '\n')); err != nil {
		return nil, err
	}
	return &Writer{w: w}, nil
}

// WriteEvent writes one event line. Invalid UTF-8 in Data is written as
// U+FFFD, one per invalid byte.
func (w *Writer) WriteEvent(e Event) error {
	if e.Type == "" {
		return errors.New("recorder: event without a type")
	}
	if e.Time < 0 {
		return errors.New("recorder: event with a negative time")
	}
	w.buf = appendEventStr(w.buf[:0], e.Time, e.Type, e.Data)
	_, err := w.w.Write(w.buf)
	return err
}

// appendTime writes t in seconds with six decimals.
func appendTime(dst []byte, t time.Duration) []byte {
	us := t.Microseconds()
	dst = strconv.AppendInt(dst, us/1e6, 10)
	frac := us % 1e6
	dst = append(dst, '.')
	for d := int64(100000); d > 0; d /= 10 {
		dst = append(dst, byte('0'+frac/d%10))
	}
	return dst
}

func appendEventStr(dst []byte, t time.Duration, typ, data string) []byte {
	return appendEvent(dst, t, typ, []byte(data))
}

func appendEvent(dst []byte, t time.Duration, typ string, data []byte) []byte {
	dst = append(dst, '[')
	dst = appendTime(dst, t)
	dst = append(dst, ", "...)
	dst = appendJSONString(dst, []byte(typ))
	dst = append(dst, ", "...)
	dst = appendJSONString(dst, data)
	return append(dst, "]\n"...)
}

const hexDigits = "0123456789abcdef"

// escapes[b] is how a JSON string writes ASCII byte b, packed
// little-endian with its length (1 when b is written as is), so that
// appendJSONString writes any of them with one 8-byte store.
var escapes = func() (t [utf8.RuneSelf]struct {
	v uint64
	n int
}) {
	set := func(b int, e string) {
		var buf [8]byte
		copy(buf[:], e)
		t[b].v, t[b].n = binary.LittleEndian.Uint64(buf[:]), len(e)
	}
	for i := range utf8.RuneSelf {
		set(i, string(rune(i)))
	}
	for i := range 0x20 {
		set(i, `\u00`+hexDigits[i>>4:i>>4+1]+hexDigits[i&0xf:i&0xf+1])
	}
	set('\n', `\n`)
	set('\r', `\r`)
	set('\t', `\t`)
	set('\b', `\b`)
	set('\f', `\f`)
	set('"', `\"`)
	set('\\', `\\`)
	set(0x7f, `\u007f`)
	return
}()

// appendJSONString appends s as a JSON string. Invalid UTF-8 bytes become
// U+FFFD, each on its own.
//
// Terminal output is dense with bytes to escape (ESC, CR, LF) and often
// has non-ASCII text, so it writes into the spare capacity of dst by
// index rather than appending run by run: plain bytes move eight at a
// time, each escape is one store from a table, and UTF-8 sequences are
// checked in line and moved with one store.
func appendJSONString(dst []byte, s []byte) []byte {
	dst = append(dst, '"')
	// Room for the plain case; it grows when escapes need more.
	dst = slices.Grow(dst, len(s)+16)
	out := dst[:cap(dst)]
	j := len(dst)
	for i := 0; i < len(s); {
		// One pass of the loop writes at most 7 plain bytes and an
		// escape of 6, or 8 plain bytes.
		if len(out)-j < 16 {
			out = slices.Grow(out[:j], len(s)-i+16)
			out = out[:cap(out)]
		}
		if i+8 <= len(s) {
			x := binary.LittleEndian.Uint64(s[i:])
			m := special8(x)
			if m == 0 {
				binary.LittleEndian.PutUint64(out[j:], x)
				i += 8
				j += 8
				continue
			}
			// The plain bytes before the first special one.
			k := bits.TrailingZeros64(m) / 8
			binary.LittleEndian.PutUint64(out[j:], x)
			i += k
			j += k
		}
		b := s[i]
		if b < utf8.RuneSelf {
			e := &escapes[b]
			binary.LittleEndian.PutUint64(out[j:], e.v)
			j += e.n
			i++
			continue
		}
		n := runeLen(s[i:])
		if n == 0 {
			j += copy(out[j:], "\uFFFD")
			i++
			continue
		}
		if i+4 <= len(s) {
			binary.LittleEndian.PutUint32(out[j:], binary.LittleEndian.Uint32(s[i:]))
		} else {
			copy(out[j:], s[i:i+n])
		}
		j += n
		i += n
	}
	return append(out[:j], '"')
}

// runeLen returns the length of the valid UTF-8 sequence p starts with
// (p[0] is not ASCII), or 0 when it is not one: what utf8.DecodeRune
// accepts, without decoding.
func runeLen(p []byte) int {
	b0 := p[0]
	switch {
	case b0 < 0xC2:
		return 0
	case b0 < 0xE0:
		if len(p) >= 2 && p[1]&0xC0 == 0x80 {
			return 2
		}
	case b0 < 0xF0:
		if len(p) >= 3 && p[2]&0xC0 == 0x80 {
			lo, hi := byte(0x80), byte(0xBF)
			if b0 == 0xE0 {
				lo = 0xA0 // no overlong forms
			} else if b0 == 0xED {
				hi = 0x9F // no surrogates
			}
			if p[1] >= lo && p[1] <= hi {
				return 3
			}
		}
	case b0 < 0xF5:
		if len(p) >= 4 && p[2]&0xC0 == 0x80 && p[3]&0xC0 == 0x80 {
			lo, hi := byte(0x80), byte(0xBF)
			if b0 == 0xF0 {
				lo = 0x90 // no overlong forms
			} else if b0 == 0xF4 {
				hi = 0x8F // nothing above U+10FFFF
			}
			if p[1] >= lo && p[1] <= hi {
				return 4
			}
		}
	}
	return 0
}

// special8 flags (in the high bit of each byte) the bytes packed
// little-endian in x that JSON strings cannot take as is: controls, '"',
// '\\', DEL and non-ASCII. The lowest flagged byte is always special;
// bytes above it may be flagged spuriously.
func special8(x uint64) uint64 {
	const lo, hi = 0x0101010101010101, 0x8080808080808080
	zero := func(v uint64) uint64 { return (v - lo) & ^v & hi }
	ctrl := (x - lo*0x20) & ^x & hi
	return x&hi | ctrl | zero(x^(lo*'"')) | zero(x^(lo*'\\')) | zero(x^(lo*0x7f))
}

// incompleteTail returns how many bytes at the end of p begin a UTF-8
// sequence that the next write may complete.
func incompleteTail(p []byte) int {
	for i := 1; i <= 3 && i <= len(p); i++ {
		b := p[len(p)-i]
		if b&0xC0 == 0x80 {
			continue // continuation byte: look further back
		}
		if b < utf8.RuneSelf || utf8.FullRune(p[len(p)-i:]) {
			return 0
		}
		return i
	}
	return 0
}

// Reader reads an asciicast v2 recording, plain or gzip-compressed (a
// sequence of gzip members is one stream).
type Reader struct {
	br   *bufio.Reader
	hdr  Header
	line int
	end  time.Time
}

// NewReader reads and checks the header. Lines longer than MaxLineSize
// fail with a *SyntaxError.
func NewReader(r io.Reader) (*Reader, error) {
	br := bufio.NewReaderSize(r, 64<<10)
	if magic, err := br.Peek(2); err == nil && magic[0] == 0x1f && magic[1] == 0x8b {
		zr, err := gzip.NewReader(br)
		if err != nil {
			return nil, fmt.Errorf("recorder: gzip: %w", err)
		}
		br = bufio.NewReaderSize(zr, 64<<10)
	}
	rd := &Reader{br: br}
	line, err := rd.readLine()
	if err != nil {
		if err == io.EOF {
			return nil, &SyntaxError{Line: 1, Msg: "empty input, no header"}
		}
		return nil, err
	}
	dec := json.NewDecoder(bytes.NewReader(line))
	if err := dec.Decode(&rd.hdr); err != nil {
		return nil, &SyntaxError{Line: 1, Msg: "header: " + err.Error()}
	}
	if rd.hdr.Version != 2 {
		return nil, &SyntaxError{Line: 1, Msg: fmt.Sprintf("header: version %d, want 2", rd.hdr.Version)}
	}
	if rd.hdr.Width <= 0 || rd.hdr.Height <= 0 {
		return nil, &SyntaxError{Line: 1, Msg: fmt.Sprintf("header: size %dx%d", rd.hdr.Width, rd.hdr.Height)}
	}
	return rd, nil
}

// Header returns the recording's header.
func (r *Reader) Header() Header { return r.hdr }

// End returns the session's end time once Next has read the end marker;
// zero before or when the recording has none.
func (r *Reader) End() time.Time { return r.end }

// readLine returns the next non-empty line without its newline; io.EOF at
// the end.
func (r *Reader) readLine() ([]byte, error) {
	var long []byte
	for {
		frag, err := r.br.ReadSlice('\n')
		if err == bufio.ErrBufferFull {
			long = append(long, frag...)
			if len(long) > MaxLineSize {
				return nil, &SyntaxError{Line: r.line + 1, Msg: fmt.Sprintf("line longer than %d bytes", MaxLineSize)}
			}
			continue
		}
		if err != nil && err != io.EOF {
			return nil, fmt.Errorf("recorder: reading line %d: %w", r.line+1, err)
		}
		line := frag
		if long != nil {
			line = append(long, frag...)
			long = nil
		}
		if len(line) > MaxLineSize {
			return nil, &SyntaxError{Line: r.line + 1, Msg: fmt.Sprintf("line longer than %d bytes", MaxLineSize)}
		}
		if len(line) > 0 {
			r.line++
		}
		line = bytes.TrimRight(line, "\r\n")
		if len(bytes.TrimSpace(line)) > 0 {
			return line, nil
		}
		if err == io.EOF {
			return nil, io.EOF
		}
	}
}

// Next returns the next event, or io.EOF after the last.
func (r *Reader) Next() (Event, error) {
	line, err := r.readLine()
	if err != nil {
		return Event{}, err
	}
	e, msg := parseEventLine(line)
	if msg != "" {
		return Event{}, &SyntaxError{Line: r.line, Msg: msg}
	}
	if e.Type == EventMarker {
		if end, _, ok := ParseEndMarker(e.Data); ok {
			r.end = end
		}
	}
	return e, nil
}

// parseEventLine parses one event line; msg says what is wrong.
func parseEventLine(line []byte) (e Event, msg string) {
	var parts []json.RawMessage
	if err := json.Unmarshal(line, &parts); err != nil {
		return Event{}, "event: " + err.Error()
	}
	if len(parts) != 3 {
		return Event{}, fmt.Sprintf("event has %d elements, want 3", len(parts))
	}
	t, err := parseTime(parts[0])
	if err != nil {
		return Event{}, "event time: " + err.Error()
	}
	e.Time = t
	if err := json.Unmarshal(parts[1], &e.Type); err != nil || e.Type == "" {
		return Event{}, "event type is not a non-empty string"
	}
	if err := json.Unmarshal(parts[2], &e.Data); err != nil {
		return Event{}, "event data is not a string"
	}
	return e, ""
}

// parseTime reads a JSON number of seconds exactly to the microsecond.
func parseTime(raw json.RawMessage) (time.Duration, error) {
	s := string(bytes.TrimSpace(raw))
	if s == "" || s[0] == '-' {
		return 0, errors.New("not a non-negative number")
	}
	if ip, fp, ok := strings.Cut(s, "."); ok && len(ip) > 0 && len(ip) <= 12 && len(fp) > 0 && len(fp) <= 6 && allDigits(ip) && allDigits(fp) {
		sec, _ := strconv.ParseInt(ip, 10, 64)
		us, _ := strconv.ParseInt(fp+strings.Repeat("0", 6-len(fp)), 10, 64)
		return time.Duration(sec)*time.Second + time.Duration(us)*time.Microsecond, nil
	}
	f, err := strconv.ParseFloat(s, 64)
	if err != nil || math.IsNaN(f) || math.IsInf(f, 0) || f < 0 || f > float64(math.MaxInt64/int64(time.Second)) {
		return 0, errors.New("not a non-negative number of seconds")
	}
	return time.Duration(math.Round(f*1e6)) * time.Microsecond, nil
}

func allDigits(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}

// ParseEndMarker reads the label of an end marker: the end time and
// whether the recording was finished by crash recovery.
func ParseEndMarker(label string) (end time.Time, recovered bool, ok bool) {
	rest, ok := strings.CutPrefix(label, EndMarkerPrefix)
	if !ok {
		return time.Time{}, false, false
	}
	if r, ok2 := strings.CutPrefix(rest, "-recovered"); ok2 {
		recovered, rest = true, r
	}
	rest, ok = strings.CutPrefix(rest, " ")
	if !ok {
		return time.Time{}, false, false
	}
	t, err := time.Parse(time.RFC3339Nano, rest)
	if err != nil {
		return time.Time{}, false, false
	}
	return t, recovered, true
}

func endMarker(end time.Time, recovered bool) string {
	p := EndMarkerPrefix
	if recovered {
		p += "-recovered"
	}
	return p + " " + end.UTC().Format(time.RFC3339Nano)
}

// ParseResize reads the data of a resize event, "COLSxROWS".
func ParseResize(data string) (width, height int, ok bool) {
	ws, hs, found := strings.Cut(data, "x")
	if !found {
		return 0, 0, false
	}
	w, err1 := strconv.Atoi(ws)
	h, err2 := strconv.Atoi(hs)
	if err1 != nil || err2 != nil || w <= 0 || h <= 0 {
		return 0, 0, false
	}
	return w, h, true
}

// Info summarises a whole recording.
type Info struct {
	Header Header
	// Duration is the time of the last event.
	Duration time.Duration
	// End is the time in the end marker; zero when there is none.
	End time.Time
	// Recovered: the recording was finished by crash recovery.
	Recovered bool
	// Events counts events; OutputBytes counts the output events' data.
	Events      int
	OutputBytes int64
}

// ReadInfo reads a whole recording (plain or gzip) and summarises it.
func ReadInfo(r io.Reader) (Info, error) {
	rd, err := NewReader(r)
	if err != nil {
		return Info{}, err
	}
	info := Info{Header: rd.Header()}
	for {
		e, err := rd.Next()
		if err == io.EOF {
			return info, nil
		}
		if err != nil {
			return info, err
		}
		info.Events++
		info.Duration = max(info.Duration, e.Time)
		switch e.Type {
		case EventOutput:
			info.OutputBytes += int64(len(e.Data))
		case EventMarker:
			if end, rec, ok := ParseEndMarker(e.Data); ok {
				info.End, info.Recovered = end, rec
			}
		}
	}
}
