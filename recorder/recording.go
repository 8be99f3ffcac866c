package recorder

import (
	"bufio"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"github.com/klauspost/compress/gzip"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"sync/atomic"
	"time"
	"unicode/utf8"
)

// fastThreshold is the batch size from which output is written with
// burstLevel.
const fastThreshold = 64 << 10

// burstLevel is the gzip level of heavy output: stored, not compressed.
// Huffman coding alone costs as much CPU per byte as the rest of the
// session's path and saves only about a third of the size; storing costs
// a copy and a CRC.
const burstLevel = gzip.NoCompression

// maxSegments bounds the events waiting to be encoded.
const maxSegments = 4096

// segment is one pending event: output bytes buf[off:end] or a control
// event with its data.
type segment struct {
	typ      string
	t        time.Duration
	off, end int
	data     string
}

// Recording captures one terminal session into the spool. Write records
// output (it implements io.Writer, so a session can tee its PTY output
// into it with io.MultiWriter); Resize and Mark record the other events;
// Close ends the recording and queues it for upload. All methods are safe
// for concurrent use.
//
// Write copies p into a bounded buffer and returns; a goroutine per
// recording encodes, compresses and writes to the spool file. Write blocks
// only while that buffer is full, that is when the disk cannot keep up.
type Recording struct {
	sp    *Spool
	meta  Meta
	name  string
	path  string // file in the spool's active directory
	start time.Time
	log   *slog.Logger

	flushDelay time.Duration
	limit      int

	mu     sync.Mutex
	space  sync.Cond // signalled when the writer drained the buffer
	buf    []byte
	segs   []segment
	spare  []byte
	spSegs []segment
	closed bool
	err    error // sticky write failure

	wake    chan struct{} // pending data appeared
	urgent  chan struct{} // buffer half full
	ckReq   chan chan error
	closeCh chan struct{}
	done    chan struct{}
	result  error // Close's result, set before done is closed

	// Owned by the writer goroutine.
	f       *os.File
	cw      countingWriter
	bw      *bufio.Writer
	zw      *gzip.Writer // the current member's writer: zNormal or zFast
	zNormal *gzip.Writer // Config.CompressionLevel
	zFast   *gzip.Writer // burstLevel, while the output is heavy
	enc     []byte
	carry   []byte
	joined  []byte
	dirty   bool
	lastT   time.Duration
	written atomic.Int64 // bytes in the spool file
}

// countingWriter counts bytes written to the spool file and charges them
// to the spool's disk use.
type countingWriter struct {
	w    io.Writer
	n    *atomic.Int64
	disk *atomic.Int64
}

func (c countingWriter) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	c.n.Add(int64(n))
	c.disk.Add(int64(n))
	return n, err
}

// ID returns the session ID.
func (r *Recording) ID() string { return r.meta.ID }

// Name returns the object name the recording is uploaded under (unless a
// conflicting object forces a suffixed name; see the package doc).
func (r *Recording) Name() string { return r.name }

// Meta returns the session metadata as recorded in the header.
func (r *Recording) Meta() Meta { return r.meta }

// Write records p as terminal output. It returns len(p) and nil unless the
// recording is closed (ErrClosed) or has failed (the error is sticky).
func (r *Recording) Write(p []byte) (int, error) {
	n := len(p)
	r.mu.Lock()
	defer r.mu.Unlock()
	for len(p) > 0 {
		if r.closed {
			return n - len(p), ErrClosed
		}
		if r.err != nil {
			return n - len(p), r.err
		}
		free := r.limit - len(r.buf)
		if free <= 0 || len(r.segs) >= maxSegments {
			signal(r.urgent)
			r.space.Wait()
			continue
		}
		chunk := p[:min(len(p), free)]
		t := time.Since(r.start)
		if k := len(r.segs) - 1; k >= 0 && r.segs[k].typ == EventOutput && t-r.segs[k].t < r.flushDelay {
			r.segs[k].end += len(chunk)
		} else {
			if len(r.segs) == 0 {
				signal(r.wake)
			}
			r.segs = append(r.segs, segment{typ: EventOutput, t: t, off: len(r.buf), end: len(r.buf) + len(chunk)})
		}
		r.buf = append(r.buf, chunk...)
		p = p[len(chunk):]
		if len(r.buf) >= r.limit/2 {
			signal(r.urgent)
		}
	}
	return n, nil
}

func signal(c chan struct{}) {
	select {
	case c <- struct{}{}:
	default:
	}
}

// Resize records a terminal size change to width columns and height rows.
func (r *Recording) Resize(width, height int) error {
	if width <= 0 || height <= 0 {
		return fmt.Errorf("recorder: resize to %dx%d", width, height)
	}
	return r.control(EventResize, strconv.Itoa(width)+"x"+strconv.Itoa(height))
}

// Mark records a marker event with label (players show markers as
// chapters). Labels starting with EndMarkerPrefix are reserved.
func (r *Recording) Mark(label string) error {
	if len(label) >= len(EndMarkerPrefix) && label[:len(EndMarkerPrefix)] == EndMarkerPrefix {
		return fmt.Errorf("recorder: marker label %q is reserved", EndMarkerPrefix)
	}
	return r.control(EventMarker, label)
}

func (r *Recording) control(typ, data string) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	for {
		if r.closed {
			return ErrClosed
		}
		if r.err != nil {
			return r.err
		}
		if len(r.segs) < maxSegments && len(r.buf)+len(data) <= r.limit {
			break
		}
		signal(r.urgent)
		r.space.Wait()
	}
	if len(r.segs) == 0 {
		signal(r.wake)
	}
	r.segs = append(r.segs, segment{typ: typ, t: time.Since(r.start), data: data})
	return nil
}

// Checkpoint writes everything recorded so far to the spool file and
// fsyncs it, as the checkpoint interval does. After it returns nil, a
// crash loses nothing recorded before the call.
func (r *Recording) Checkpoint() error {
	ch := make(chan error, 1)
	select {
	case r.ckReq <- ch:
		return <-ch
	case <-r.done:
		return ErrClosed
	}
}

// Close ends the recording: it writes the pending output and the end
// marker, fsyncs the file and queues it for upload. It waits for the
// writer goroutine. A second Close returns ErrClosed.
func (r *Recording) Close() error {
	r.mu.Lock()
	if r.closed {
		r.mu.Unlock()
		return ErrClosed
	}
	r.closed = true
	r.space.Broadcast()
	r.mu.Unlock()
	close(r.closeCh)
	<-r.done
	return r.result
}

// newRecording creates the spool file, writes and syncs the header and
// starts the writer goroutine.
func newRecording(sp *Spool, meta Meta) (*Recording, error) {
	r := &Recording{
		sp:         sp,
		meta:       meta,
		name:       objectName(meta),
		start:      time.Now(),
		log:        sp.log.With("session", meta.ID),
		flushDelay: sp.cfg.FlushDelay,
		limit:      sp.cfg.BufferSize,
		wake:       make(chan struct{}, 1),
		urgent:     make(chan struct{}, 1),
		ckReq:      make(chan chan error),
		closeCh:    make(chan struct{}),
		done:       make(chan struct{}),
	}
	r.space.L = &r.mu
	r.path = filepath.Join(sp.activeDir(), filepath.FromSlash(r.name))
	if _, err := os.Lstat(filepath.Join(sp.readyDir(), filepath.FromSlash(r.name))); err == nil {
		return nil, fmt.Errorf("recorder: session %q was recorded already and waits for upload: %w", meta.ID, ErrExists)
	}
	if err := os.MkdirAll(filepath.Dir(r.path), 0o750); err != nil {
		return nil, fmt.Errorf("recorder: spool: %w", err)
	}
	f, err := os.OpenFile(r.path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o640)
	if err != nil {
		if errors.Is(err, os.ErrExist) {
			return nil, fmt.Errorf("recorder: session %q is already being recorded: %w", meta.ID, ErrExists)
		}
		return nil, fmt.Errorf("recorder: spool: %w", err)
	}
	r.f = f
	r.cw = countingWriter{w: f, n: &r.written, disk: &sp.diskBytes}
	r.bw = bufio.NewWriterSize(r.cw, 64<<10)
	zw, err := gzip.NewWriterLevel(r.bw, sp.cfg.CompressionLevel)
	if err != nil {
		f.Close()
		os.Remove(r.path)
		return nil, fmt.Errorf("recorder: %w", err)
	}
	r.zw, r.zNormal = zw, zw
	hdr := Header{
		Version:   2,
		Width:     meta.Width,
		Height:    meta.Height,
		Timestamp: meta.Start.Unix(),
		Title:     meta.Title,
		Session:   &r.meta,
	}
	if meta.Term != "" {
		hdr.Env = map[string]string{"TERM": meta.Term}
	}
	line, err := json.Marshal(hdr)
	if err == nil {
		_, err = r.zw.Write(append(line, '\n'))
	}
	if err == nil {
		r.dirty = true
		err = r.checkpoint()
	}
	if err != nil {
		f.Close()
		sp.diskBytes.Add(-r.written.Load())
		os.Remove(r.path)
		return nil, fmt.Errorf("recorder: writing the header of session %q: %w", meta.ID, err)
	}
	return r, nil
}

// objectName is "YYYY/MM/DD/<id>.cast.gz" by the session's start (UTC).
func objectName(m Meta) string {
	return m.Start.UTC().Format("2006/01/02") + "/" + m.ID + ".cast.gz"
}

func newID() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	h := hex.EncodeToString(b[:])
	return h[:8] + "-" + h[8:12] + "-" + h[12:16] + "-" + h[16:20] + "-" + h[20:]
}

// validID reports whether id is usable in a file and object name.
func validID(id string) bool {
	if id == "" || len(id) > 128 || id[0] == '.' || id[0] == '-' {
		return false
	}
	for i := 0; i < len(id); i++ {
		c := id[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_' || c == '.') {
			return false
		}
	}
	return true
}

// writeLoop is the recording's writer goroutine.
func (r *Recording) writeLoop(checkpointEvery time.Duration) {
	defer r.sp.wg.Done()
	defer close(r.done)
	tick := time.NewTicker(checkpointEvery)
	defer tick.Stop()
	delay := time.NewTimer(time.Hour)
	delay.Stop()
	for {
		select {
		case <-r.wake:
			// Coalesce: let more output arrive unless the buffer fills.
			delay.Reset(r.flushDelay)
			select {
			case <-delay.C:
			case <-r.urgent:
				delay.Stop()
			case <-r.closeCh:
				delay.Stop()
			}
			r.drain()
		case <-r.urgent:
			r.drain()
		case <-tick.C:
			r.drain()
			r.fail(r.checkpoint())
		case ch := <-r.ckReq:
			r.drain()
			err := r.checkpoint()
			r.fail(err)
			if err == nil {
				err = r.failure()
			}
			ch <- err
		case <-r.closeCh:
			r.drain()
			r.result = r.finish()
			return
		}
	}
}

// failure returns the sticky error.
func (r *Recording) failure() error {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.err
}

// fail makes err sticky (the first one wins) and wakes blocked writers.
func (r *Recording) fail(err error) {
	if err == nil {
		return
	}
	r.mu.Lock()
	first := r.err == nil
	if first {
		r.err = fmt.Errorf("recorder: session %q: recording failed: %w", r.meta.ID, err)
	}
	r.space.Broadcast()
	r.mu.Unlock()
	if first {
		r.log.Error("recorder: recording failed; output is no longer recorded", "err", err)
		r.sp.noteError(err)
	}
}

// drain encodes and writes what Write, Resize and Mark queued.
func (r *Recording) drain() {
	r.mu.Lock()
	buf, segs := r.buf, r.segs
	r.buf, r.segs = r.spare[:0], r.spSegs[:0]
	failed := r.err != nil
	r.space.Broadcast()
	r.mu.Unlock()
	defer func() {
		r.mu.Lock()
		r.spare, r.spSegs = buf, segs
		r.mu.Unlock()
	}()
	if len(segs) == 0 || failed {
		return
	}
	enc := r.enc[:0]
	for _, s := range segs {
		if s.typ != EventOutput {
			enc = appendEvent(enc, s.t, s.typ, []byte(s.data))
			r.lastT = s.t
			continue
		}
		data := buf[s.off:s.end]
		if len(r.carry) > 0 {
			r.joined = append(append(r.joined[:0], r.carry...), data...)
			data = r.joined
			r.carry = r.carry[:0]
		}
		if k := incompleteTail(data); k > 0 {
			r.carry = append(r.carry[:0], data[len(data)-k:]...)
			data = data[:len(data)-k]
		}
		for len(data) > 0 {
			n := min(len(data), maxEventData)
			for n < len(data) && n > maxEventData-utf8.UTFMax && !utf8.RuneStart(data[n]) {
				n--
			}
			enc = appendEvent(enc, s.t, EventOutput, data[:n])
			data = data[n:]
		}
		r.lastT = s.t
	}
	r.enc = enc
	// Heavy output (a batch of 64 KiB or half the buffer, that is more
	// than about 10 MB/s with the default FlushDelay, or the writer falling
	// behind): store it without compression, many times cheaper,
	// until the output calms down, so that recording does not slow the
	// session. Each switch ends a gzip member at an event boundary.
	behind := len(buf) >= min(r.limit/2, fastThreshold)
	if err := r.useWriter(behind); err != nil {
		r.fail(err)
		return
	}
	if _, err := r.zw.Write(enc); err != nil {
		r.fail(err)
		return
	}
	r.dirty = true
	// Do not keep a huge encoding buffer after a burst.
	if cap(r.enc) > 4*r.limit+64<<10 {
		r.enc = nil
	}
}

// useWriter switches between the normal and the fast compressor.
func (r *Recording) useWriter(fast bool) error {
	want := r.zNormal
	if fast && r.sp.cfg.CompressionLevel != burstLevel {
		if r.zFast == nil {
			zf, err := gzip.NewWriterLevel(r.bw, burstLevel)
			if err != nil {
				return err
			}
			r.zFast = zf
			r.log.Debug("recorder: output burst; storing it uncompressed until it calms down")
		}
		want = r.zFast
	}
	if want == r.zw {
		return nil
	}
	if err := r.zw.Close(); err != nil {
		return err
	}
	want.Reset(r.bw)
	r.zw = want
	return nil
}

// checkpoint ends the current gzip member and fsyncs the file, so the
// file is a valid gzip stream up to here.
func (r *Recording) checkpoint() error {
	if !r.dirty {
		return nil
	}
	if err := r.zw.Close(); err != nil {
		return err
	}
	if err := r.bw.Flush(); err != nil {
		return err
	}
	if err := r.f.Sync(); err != nil {
		return err
	}
	r.zw.Reset(r.bw)
	r.dirty = false
	return nil
}

// finish writes the end marker, closes the file and hands it to the spool.
func (r *Recording) finish() error {
	defer r.sp.recordingClosed(r)
	if err := r.failure(); err != nil {
		// The file holds valid members up to the last checkpoint at least;
		// finish it as crash recovery would.
		r.f.Close()
		return r.sp.finishFailed(r, err)
	}
	enc := r.enc[:0]
	if len(r.carry) > 0 {
		enc = appendEvent(enc, r.lastT, EventOutput, r.carry)
		r.carry = nil
	}
	end := time.Now()
	enc = appendEvent(enc, max(r.lastT, end.Sub(r.start)), EventMarker, []byte(endMarker(end, false)))
	_, err := r.zw.Write(enc)
	r.enc = nil
	if err == nil {
		r.dirty = true
		err = r.checkpoint()
	}
	if cerr := r.f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		r.fail(err)
		return r.sp.finishFailed(r, err)
	}
	return r.sp.finishRecording(r)
}
