package recorder

import (
	"bufio"
	"compress/gzip"
	"context"
	"fmt"
	"io"
	"time"
)

// PlayOptions tunes Play. A nil *PlayOptions plays at the original pace.
type PlayOptions struct {
	// Speed multiplies the pace: 2 plays twice as fast. Zero means 1;
	// math.Inf(1) writes everything without waiting.
	Speed float64
	// MaxIdle caps the pause between two events (before Speed applies).
	// Zero means no cap.
	MaxIdle time.Duration
	// OnResize, if set, is called for each resize event.
	OnResize func(width, height int)
	// OnMarker, if set, is called for each marker event (the end marker
	// included).
	OnMarker func(t time.Duration, label string)
}

// Play writes a recording's output to w at its original pace (scaled by
// opts). r is the recording, gzip-compressed as stored or plain asciicast.
// It returns nil at the end of the recording, ctx's error when ctx ends
// first, and the first error of w or of the recording's format.
func Play(ctx context.Context, w io.Writer, r io.Reader, opts *PlayOptions) error {
	var o PlayOptions
	if opts != nil {
		o = *opts
	}
	if o.Speed == 0 {
		o.Speed = 1
	}
	if o.Speed < 0 || o.Speed != o.Speed {
		return fmt.Errorf("recorder: play speed %v", o.Speed)
	}
	rd, err := NewReader(r)
	if err != nil {
		return err
	}
	timer := time.NewTimer(time.Hour)
	timer.Stop()
	defer timer.Stop()
	start := time.Now()
	var prev, at time.Duration // recording time of the last event; play time
	for {
		if err := ctx.Err(); err != nil {
			return err
		}
		e, err := rd.Next()
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return err
		}
		gap := max(e.Time-prev, 0)
		prev = max(prev, e.Time)
		if o.MaxIdle > 0 {
			gap = min(gap, o.MaxIdle)
		}
		at += time.Duration(float64(gap) / o.Speed)
		if d := time.Until(start.Add(at)); d > 0 {
			timer.Reset(d)
			select {
			case <-timer.C:
			case <-ctx.Done():
				return ctx.Err()
			}
		}
		switch e.Type {
		case EventOutput:
			if _, err := io.WriteString(w, e.Data); err != nil {
				return err
			}
		case EventResize:
			if wd, ht, ok := ParseResize(e.Data); ok && o.OnResize != nil {
				o.OnResize(wd, ht)
			}
		case EventMarker:
			if o.OnMarker != nil {
				o.OnMarker(e.Time, e.Data)
			}
		}
	}
}

// Decompress returns the asciicast text of a recording (what a ".cast"
// file holds). r may be compressed as stored or already plain.
func Decompress(r io.Reader) (io.Reader, error) {
	br := bufio.NewReader(r)
	magic, err := br.Peek(2)
	if err != nil && err != io.EOF {
		return nil, err
	}
	if len(magic) == 2 && magic[0] == 0x1f && magic[1] == 0x8b {
		zr, err := gzip.NewReader(br)
		if err != nil {
			return nil, fmt.Errorf("recorder: gzip: %w", err)
		}
		return zr, nil
	}
	return br, nil
}

// Export writes the recording stored under name as a ".cast" file
// (decompressed asciicast v2) to w and returns the bytes written.
func Export(ctx context.Context, w io.Writer, s Store, name string) (int64, error) {
	rc, err := s.Get(ctx, name)
	if err != nil {
		return 0, err
	}
	defer rc.Close()
	plain, err := Decompress(rc)
	if err != nil {
		return 0, err
	}
	return io.Copy(w, ctxReader{ctx, plain})
}

// ctxReader stops a copy when ctx ends.
type ctxReader struct {
	ctx context.Context
	r   io.Reader
}

func (c ctxReader) Read(p []byte) (int, error) {
	if err := c.ctx.Err(); err != nil {
		return 0, err
	}
	return c.r.Read(p)
}
