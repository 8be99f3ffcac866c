package recorder

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"time"
)

// errNothingToRecover: a spool file has no complete header member.
var errNothingToRecover = errors.New("recorder: no complete checkpoint in the file")

// recoverActive finishes the recordings a dead process left in Dir/active
// and moves them to Dir/ready.
func (s *Spool) recoverActive(ctx context.Context) error {
	root := s.activeDir()
	var files []string
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.Type().IsRegular() {
			files = append(files, p)
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("recorder: spool: %w", err)
	}
	for _, p := range files {
		if err := ctx.Err(); err != nil {
			return err
		}
		rel, _ := filepath.Rel(root, p)
		size, err := recoverFile(p)
		switch {
		case errors.Is(err, errNothingToRecover):
			s.damaged.Add(1)
			if fi, serr := os.Stat(p); serr == nil && fi.Size() == 0 {
				s.log.Warn("recorder: removing an empty recording left by a crash", "file", p)
				os.Remove(p)
				continue
			}
			dst := filepath.Join(s.damagedDir(), rel)
			s.log.Error("recorder: a recording left by a crash has no complete checkpoint; kept for inspection, not uploaded", "file", dst)
			s.noteError(fmt.Errorf("recorder: damaged recording %s", dst))
			if err := moveFile(p, dst); err != nil {
				return fmt.Errorf("recorder: spool: %w", err)
			}
		case err != nil:
			s.noteError(err)
			s.log.Error("recorder: cannot recover a recording left by a crash; it stays in the spool", "file", p, "err", err)
		default:
			dst := filepath.Join(s.readyDir(), rel)
			if err := moveFile(p, dst); err != nil {
				return fmt.Errorf("recorder: spool: %w", err)
			}
			s.recovered.Add(1)
			s.log.Warn("recorder: recovered a recording left by a crash (output after its last checkpoint is lost)", "name", filepath.ToSlash(rel), "bytes", size)
		}
	}
	return nil
}

// countingReader counts the bytes gzip consumed. It implements
// io.ByteReader, so gzip reads no further than the end of a member.
type countingReader struct {
	br *bufio.Reader
	n  int64
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.br.Read(p)
	c.n += int64(n)
	return n, err
}

func (c *countingReader) ReadByte() (byte, error) {
	b, err := c.br.ReadByte()
	if err == nil {
		c.n++
	}
	return b, err
}

// lineTracker follows the asciicast lines of one gzip member at a time
// and keeps what the last complete member established.
type lineTracker struct {
	partial []byte
	failed  bool

	// pending: this member; committed: up to the last complete member.
	pHeader, header *Header
	pLastT, lastT   time.Duration
	pEnded, ended   bool
}

func (t *lineTracker) Write(p []byte) (int, error) {
	n := len(p)
	for len(p) > 0 {
		i := bytes.IndexByte(p, '\n')
		if i < 0 {
			t.partial = append(t.partial, p...)
			if len(t.partial) > MaxLineSize {
				t.failed = true
				return 0, errors.New("recorder: line too long")
			}
			break
		}
		line := p[:i]
		if len(t.partial) > 0 {
			line = append(t.partial, line...)
			t.partial = t.partial[:0]
		}
		p = p[i+1:]
		if err := t.line(line); err != nil {
			t.failed = true
			return 0, err
		}
	}
	return n, nil
}

func (t *lineTracker) line(line []byte) error {
	if len(bytes.TrimSpace(line)) == 0 {
		return nil
	}
	if t.header == nil && t.pHeader == nil {
		var h Header
		if err := json.Unmarshal(line, &h); err != nil || h.Version != 2 {
			return errors.New("recorder: bad header")
		}
		t.pHeader = &h
		return nil
	}
	e, msg := parseEventLine(line)
	if msg != "" {
		return errors.New("recorder: " + msg)
	}
	t.pLastT = max(t.pLastT, e.Time)
	_, _, isEnd := ParseEndMarker(e.Data)
	t.pEnded = e.Type == EventMarker && isEnd
	return nil
}

func (t *lineTracker) begin() {
	t.partial = t.partial[:0]
	t.pHeader, t.pLastT, t.pEnded = t.header, t.lastT, t.ended
}

func (t *lineTracker) commit() {
	t.header, t.lastT, t.ended = t.pHeader, t.pLastT, t.pEnded
}

// recoverFile cuts a spool file after its last complete gzip member (each
// checkpoint ends one, at an event boundary) and appends an end marker
// unless the recording already has one. It returns the file's new size.
func recoverFile(path string) (int64, error) {
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		return 0, err
	}
	defer f.Close()
	cr := &countingReader{br: bufio.NewReaderSize(f, 64<<10)}
	var zr gzip.Reader
	tr := &lineTracker{}
	var good int64
	for {
		if err := zr.Reset(cr); err != nil {
			break
		}
		zr.Multistream(false)
		tr.begin()
		if _, err := io.Copy(tr, &zr); err != nil || len(tr.partial) > 0 || tr.pHeader == nil {
			break
		}
		tr.commit()
		good = cr.n
	}
	if tr.header == nil {
		return 0, errNothingToRecover
	}
	if err := f.Truncate(good); err != nil {
		return 0, err
	}
	size := good
	if !tr.ended {
		start := time.Unix(tr.header.Timestamp, 0)
		if tr.header.Session != nil && !tr.header.Session.Start.IsZero() {
			start = tr.header.Session.Start
		}
		if _, err := f.Seek(good, io.SeekStart); err != nil {
			return 0, err
		}
		var buf bytes.Buffer
		zw, _ := gzip.NewWriterLevel(&buf, gzip.BestSpeed)
		zw.Write(appendEvent(nil, tr.lastT, EventMarker, []byte(endMarker(start.Add(tr.lastT), true))))
		zw.Close()
		if _, err := f.Write(buf.Bytes()); err != nil {
			return 0, err
		}
		size += int64(buf.Len())
	}
	if err := f.Sync(); err != nil {
		return 0, err
	}
	return size, nil
}
