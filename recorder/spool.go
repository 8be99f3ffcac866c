package recorder

import (
	"compress/gzip"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"math/rand/v2"
	"net"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// Errors of the spool and of recordings.
var (
	// ErrClosed: the Spool or Recording is closed. It wraps net.ErrClosed.
	ErrClosed = fmt.Errorf("recorder: closed: %w", net.ErrClosed)
	// ErrBudgetExceeded: the spool holds DiskBudget bytes or more and
	// Config.OnBudgetExceeded is BudgetRefuse, so NewSession refused.
	ErrBudgetExceeded = errors.New("recorder: spool disk budget exceeded")
	// ErrLocked: another Spool (in this or another process) uses the
	// directory.
	ErrLocked = errors.New("recorder: spool directory is in use")
)

// DefaultSpoolDir is the spool directory when Config.Dir is empty.
const DefaultSpoolDir = "/var/spool/sallyport/recordings"

// BudgetPolicy says what NewSession does when the spool's disk budget is
// used up (recordings waiting for a store that is down).
type BudgetPolicy int

const (
	// BudgetRefuse makes NewSession fail with ErrBudgetExceeded: the
	// session must not run unrecorded.
	BudgetRefuse BudgetPolicy = iota
	// BudgetRecordLocal records the session anyway, past the budget; it
	// waits on disk and is uploaded like the others when the store
	// returns.
	BudgetRecordLocal
)

func (p BudgetPolicy) String() string {
	switch p {
	case BudgetRefuse:
		return "refuse"
	case BudgetRecordLocal:
		return "record-local"
	}
	return "BudgetPolicy(" + strconv.Itoa(int(p)) + ")"
}

// Config configures a Spool. The zero value of every field but Dir means
// the documented default.
type Config struct {
	// Dir is the spool directory on local disk. The spool keeps
	// recordings being captured in Dir/active, finished ones waiting for
	// upload in Dir/ready, and unreadable leftovers in Dir/damaged. Zero
	// means DefaultSpoolDir.
	Dir string
	// Store receives finished recordings. Nil keeps them in Dir/ready and
	// uploads nothing (local recording only).
	Store Store
	// DiskBudget bounds the bytes the spool holds (active and waiting
	// recordings). Zero means 1 GiB; negative means no bound.
	DiskBudget int64
	// OnBudgetExceeded says what NewSession does when the budget is used
	// up. Zero means BudgetRefuse.
	OnBudgetExceeded BudgetPolicy
	// CheckpointInterval is how often a recording's file is made valid and
	// fsynced; a crash loses at most this much of a session. Zero means 5s.
	CheckpointInterval time.Duration
	// FlushDelay is the window in which output writes are coalesced into
	// one event. Zero means 5ms.
	FlushDelay time.Duration
	// BufferSize bounds the output a recording buffers in memory before
	// Write blocks. Zero means 1 MiB.
	BufferSize int
	// CompressionLevel is the gzip level. Zero means gzip.BestSpeed.
	CompressionLevel int
	// Uploads is how many recordings upload at once. Zero means 2.
	Uploads int
	// RetryMin and RetryMax bound the exponential backoff between failed
	// uploads of a recording (with jitter). Zero means 1s and 2m.
	RetryMin, RetryMax time.Duration
	// UploadTimeout bounds one upload attempt. Zero means 10m.
	UploadTimeout time.Duration
	// Logger receives the spool's log. Nil discards.
	Logger *slog.Logger
}

func (c *Config) withDefaults() (Config, error) {
	var cfg Config
	if c != nil {
		cfg = *c
	}
	if cfg.Dir == "" {
		cfg.Dir = DefaultSpoolDir
	}
	if cfg.DiskBudget == 0 {
		cfg.DiskBudget = 1 << 30
	}
	if cfg.OnBudgetExceeded != BudgetRefuse && cfg.OnBudgetExceeded != BudgetRecordLocal {
		return cfg, fmt.Errorf("recorder: unknown Config.OnBudgetExceeded %v", cfg.OnBudgetExceeded)
	}
	def := func(d *time.Duration, v time.Duration, name string) error {
		if *d < 0 {
			return fmt.Errorf("recorder: negative Config.%s", name)
		}
		if *d == 0 {
			*d = v
		}
		return nil
	}
	for _, d := range []struct {
		p    *time.Duration
		v    time.Duration
		name string
	}{
		{&cfg.CheckpointInterval, 5 * time.Second, "CheckpointInterval"},
		{&cfg.FlushDelay, 5 * time.Millisecond, "FlushDelay"},
		{&cfg.RetryMin, time.Second, "RetryMin"},
		{&cfg.RetryMax, 2 * time.Minute, "RetryMax"},
		{&cfg.UploadTimeout, 10 * time.Minute, "UploadTimeout"},
	} {
		if err := def(d.p, d.v, d.name); err != nil {
			return cfg, err
		}
	}
	if cfg.RetryMax < cfg.RetryMin {
		cfg.RetryMax = cfg.RetryMin
	}
	if cfg.BufferSize < 0 {
		return cfg, errors.New("recorder: negative Config.BufferSize")
	}
	if cfg.BufferSize == 0 {
		cfg.BufferSize = 1 << 20
	}
	cfg.BufferSize = max(cfg.BufferSize, 4<<10)
	if cfg.CompressionLevel == 0 {
		cfg.CompressionLevel = gzip.BestSpeed
	}
	if cfg.CompressionLevel < gzip.HuffmanOnly || cfg.CompressionLevel > gzip.BestCompression {
		return cfg, fmt.Errorf("recorder: Config.CompressionLevel %d out of range", cfg.CompressionLevel)
	}
	if cfg.Uploads <= 0 {
		cfg.Uploads = 2
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	return cfg, nil
}

// Stats is a snapshot of the spool's state and counters, for metrics
// (publish it with expvar.Func or a metrics library).
type Stats struct {
	Active         int       // recordings being captured
	Pending        int       // finished recordings waiting for upload
	PendingBytes   int64     // their size on disk
	DiskBytes      int64     // all the spool holds (active and pending)
	DiskBudget     int64     // the configured budget; negative: none
	Uploaded       int64     // recordings uploaded since Open
	UploadedBytes  int64     // their bytes
	UploadFailures int64     // failed upload attempts since Open
	LastError      string    // the last upload or recording error
	LastErrorTime  time.Time // when it happened
	Refused        int64     // sessions refused for the budget
	OverBudget     int64     // sessions recorded past the budget
	Recovered      int64     // recordings finished by crash recovery
	Damaged        int64     // spool files with nothing to recover (kept in Dir/damaged; empty ones removed)
	Conflicts      int64     // uploads that met a different object under their name
}

// Spool records sessions to local disk and uploads finished recordings to
// a Store in the background. Create one with Open; it is safe for
// concurrent use.
type Spool struct {
	cfg  Config
	log  *slog.Logger
	lock *os.File

	diskBytes atomic.Int64

	mu       sync.Mutex
	active   map[*Recording]struct{}
	queue    map[string]*upload // by path
	closed   bool
	draining bool
	changed  chan struct{} // closed and replaced when active or queue shrink

	wake   chan struct{}
	cancel context.CancelFunc
	wg     sync.WaitGroup

	uploaded, uploadedBytes, failures atomic.Int64
	refused, overBudget, recovered    atomic.Int64
	damaged, conflicts                atomic.Int64
	errMu                             sync.Mutex
	lastErr                           string
	lastErrTime                       time.Time
}

// errVanished: a queued recording's file is gone.
var errVanished = errors.New("recorder: spool file vanished")

type upload struct {
	name     string // object name
	path     string // file in ready
	size     int64
	attempts int
	next     time.Time
	inflight bool
}

func (s *Spool) activeDir() string  { return filepath.Join(s.cfg.Dir, "active") }
func (s *Spool) readyDir() string   { return filepath.Join(s.cfg.Dir, "ready") }
func (s *Spool) damagedDir() string { return filepath.Join(s.cfg.Dir, "damaged") }

// Open opens the spool directory (creating it), finishes recordings a
// crashed process left in it, queues finished recordings for upload and
// starts the upload goroutines. ctx bounds the recovery work.
func Open(ctx context.Context, cfg *Config) (*Spool, error) {
	c, err := cfg.withDefaults()
	if err != nil {
		return nil, err
	}
	s := &Spool{
		cfg:     c,
		log:     c.Logger,
		active:  map[*Recording]struct{}{},
		queue:   map[string]*upload{},
		changed: make(chan struct{}),
		wake:    make(chan struct{}, 1),
	}
	for _, d := range []string{c.Dir, s.activeDir(), s.readyDir()} {
		if err := os.MkdirAll(d, 0o750); err != nil {
			return nil, fmt.Errorf("recorder: spool: %w", err)
		}
	}
	lock, err := lockDir(filepath.Join(c.Dir, ".lock"))
	if err != nil {
		return nil, err
	}
	s.lock = lock
	if err := s.recoverActive(ctx); err != nil {
		unlockDir(lock)
		return nil, err
	}
	if err := s.scanReady(); err != nil {
		unlockDir(lock)
		return nil, err
	}
	if c.Store != nil {
		uctx, cancel := context.WithCancel(context.Background())
		s.cancel = cancel
		for range c.Uploads {
			s.wg.Add(1)
			go s.uploadWorker(uctx)
		}
		signal(s.wake)
	}
	return s, nil
}

// NewSession starts recording a session. Zero fields of meta get their
// defaults (see Meta). ctx bounds only the setup. It fails with
// ErrBudgetExceeded (see Config.OnBudgetExceeded) and ErrClosed.
func (s *Spool) NewSession(ctx context.Context, meta Meta) (*Recording, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if meta.ID == "" {
		meta.ID = newID()
	}
	if !validID(meta.ID) {
		return nil, fmt.Errorf("recorder: session ID %q: use letters, digits, '.', '-', '_' (at most 128)", meta.ID)
	}
	if meta.Start.IsZero() {
		meta.Start = time.Now()
	}
	meta.Start = meta.Start.UTC()
	if meta.Width <= 0 {
		meta.Width = 80
	}
	if meta.Height <= 0 {
		meta.Height = 24
	}
	if meta.Title == "" {
		meta.Title = meta.defaultTitle()
	}
	s.mu.Lock()
	if s.closed || s.draining {
		s.mu.Unlock()
		return nil, ErrClosed
	}
	s.mu.Unlock()
	if b := s.cfg.DiskBudget; b > 0 {
		if used := s.diskBytes.Load(); used >= b {
			if s.cfg.OnBudgetExceeded == BudgetRefuse {
				s.refused.Add(1)
				s.log.Error("recorder: spool disk budget exceeded; session refused",
					"session", meta.ID, "user", meta.User, "used", used, "budget", b)
				return nil, fmt.Errorf("%w: spool holds %d bytes, budget %d (is the store reachable?)", ErrBudgetExceeded, used, b)
			}
			s.overBudget.Add(1)
			s.log.Warn("recorder: spool disk budget exceeded; recording the session locally past the budget",
				"session", meta.ID, "user", meta.User, "used", used, "budget", b)
		}
	}
	r, err := newRecording(s, meta)
	if err != nil {
		return nil, err
	}
	s.mu.Lock()
	if s.closed || s.draining {
		s.mu.Unlock()
		r.f.Close()
		s.diskBytes.Add(-r.written.Load())
		os.Remove(r.path)
		return nil, ErrClosed
	}
	s.active[r] = struct{}{}
	s.wg.Add(1)
	s.mu.Unlock()
	go r.writeLoop(s.cfg.CheckpointInterval)
	r.log.Info("recorder: recording session", "name", r.name, "user", meta.User, "login", meta.Login, "node", meta.Node)
	return r, nil
}

// recordingClosed drops r from the active set.
func (s *Spool) recordingClosed(r *Recording) {
	s.mu.Lock()
	delete(s.active, r)
	s.notifyLocked()
	s.mu.Unlock()
}

func (s *Spool) notifyLocked() {
	close(s.changed)
	s.changed = make(chan struct{})
}

// finishRecording moves a closed recording's file to ready and queues it.
func (s *Spool) finishRecording(r *Recording) error {
	dst := filepath.Join(s.readyDir(), filepath.FromSlash(r.name))
	if err := moveFile(r.path, dst); err != nil {
		s.noteError(err)
		r.log.Error("recorder: cannot move the finished recording to the upload queue; it stays in the spool and is recovered at the next Open", "err", err)
		return fmt.Errorf("recorder: session %q: %w", r.meta.ID, err)
	}
	s.enqueue(r.name, dst, r.written.Load())
	r.log.Info("recorder: recording finished", "name", r.name, "bytes", r.written.Load())
	return nil
}

// finishFailed finishes a recording whose writes failed the way crash
// recovery does and returns the original failure.
func (s *Spool) finishFailed(r *Recording, cause error) error {
	before := r.written.Load()
	size, err := recoverFile(r.path)
	s.diskBytes.Add(size - before)
	if err == nil {
		dst := filepath.Join(s.readyDir(), filepath.FromSlash(r.name))
		if err = moveFile(r.path, dst); err == nil {
			s.enqueue(r.name, dst, size)
		}
	}
	if err != nil {
		r.log.Error("recorder: cannot finish the failed recording; it stays in the spool and is recovered at the next Open", "err", err)
	}
	return fmt.Errorf("recorder: session %q: %w", r.meta.ID, cause)
}

func moveFile(src, dst string) error {
	for attempt := 0; ; attempt++ {
		if err := os.MkdirAll(filepath.Dir(dst), 0o750); err != nil {
			return err
		}
		err := os.Rename(src, dst)
		if err == nil {
			break
		}
		// An upload worker may prune the emptied directory between
		// MkdirAll and Rename.
		if !errors.Is(err, fs.ErrNotExist) || attempt >= 5 {
			return err
		}
		if _, serr := os.Stat(src); serr != nil {
			return err
		}
	}
	syncDir(filepath.Dir(dst))
	syncDir(filepath.Dir(src))
	return nil
}

func syncDir(dir string) {
	if d, err := os.Open(dir); err == nil {
		_ = d.Sync()
		d.Close()
	}
}

func (s *Spool) enqueue(name, path string, size int64) {
	s.mu.Lock()
	if _, ok := s.queue[path]; !ok {
		s.queue[path] = &upload{name: name, path: path, size: size}
	}
	s.mu.Unlock()
	signal(s.wake)
}

func (s *Spool) noteError(err error) {
	s.errMu.Lock()
	s.lastErr = err.Error()
	s.lastErrTime = time.Now()
	s.errMu.Unlock()
}

// scanReady queues every finished recording in Dir/ready.
func (s *Spool) scanReady() error {
	root := s.readyDir()
	return filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return fmt.Errorf("recorder: spool: %w", err)
		}
		if !d.Type().IsRegular() {
			return nil
		}
		fi, err := d.Info()
		if err != nil {
			return fmt.Errorf("recorder: spool: %w", err)
		}
		rel, _ := filepath.Rel(root, p)
		s.diskBytes.Add(fi.Size())
		s.queue[p] = &upload{name: filepath.ToSlash(rel), path: p, size: fi.Size()}
		return nil
	})
}

// Stats returns a snapshot of the spool's counters.
func (s *Spool) Stats() Stats {
	st := Stats{
		DiskBytes:      s.diskBytes.Load(),
		DiskBudget:     s.cfg.DiskBudget,
		Uploaded:       s.uploaded.Load(),
		UploadedBytes:  s.uploadedBytes.Load(),
		UploadFailures: s.failures.Load(),
		Refused:        s.refused.Load(),
		OverBudget:     s.overBudget.Load(),
		Recovered:      s.recovered.Load(),
		Damaged:        s.damaged.Load(),
		Conflicts:      s.conflicts.Load(),
	}
	s.mu.Lock()
	st.Active = len(s.active)
	st.Pending = len(s.queue)
	for _, u := range s.queue {
		st.PendingBytes += u.size
	}
	s.mu.Unlock()
	s.errMu.Lock()
	st.LastError, st.LastErrorTime = s.lastErr, s.lastErrTime
	s.errMu.Unlock()
	return st
}

// Pending returns the object names of the recordings waiting for upload,
// sorted.
func (s *Spool) Pending() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]string, 0, len(s.queue))
	for _, u := range s.queue {
		out = append(out, u.name)
	}
	sort.Strings(out)
	return out
}

// Shutdown stops new sessions (NewSession fails with ErrClosed), waits
// until the active recordings are closed by their owners and every
// finished recording is uploaded, or until ctx is done, and then closes
// the spool. Recordings still waiting stay on disk for the next Open. It
// returns ctx's error when ctx ended the wait.
func (s *Spool) Shutdown(ctx context.Context) error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return ErrClosed
	}
	s.draining = true
	s.mu.Unlock()
	var werr error
	for {
		s.mu.Lock()
		idle := len(s.active) == 0 && (len(s.queue) == 0 || s.cfg.Store == nil)
		ch := s.changed
		s.mu.Unlock()
		if idle {
			break
		}
		select {
		case <-ch:
			continue
		case <-ctx.Done():
			werr = ctx.Err()
		}
		break
	}
	if err := s.Close(); err != nil && werr == nil && !errors.Is(err, ErrClosed) {
		werr = err
	}
	return werr
}

// Close closes the active recordings (finishing their files), stops the
// uploads in flight (no partial object is left in the store; the
// recordings stay on disk for the next Open) and waits for the spool's
// goroutines. A second Close returns ErrClosed.
func (s *Spool) Close() error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return ErrClosed
	}
	s.closed = true
	recs := make([]*Recording, 0, len(s.active))
	for r := range s.active {
		recs = append(recs, r)
	}
	s.mu.Unlock()
	var errs []error
	for _, r := range recs {
		if err := r.Close(); err != nil && !errors.Is(err, ErrClosed) {
			errs = append(errs, err)
		}
	}
	if s.cancel != nil {
		s.cancel()
	}
	s.wg.Wait()
	unlockDir(s.lock)
	return errors.Join(errs...)
}

// nextUpload picks the due upload that waited longest, or says how long
// to wait for one.
func (s *Spool) nextUpload() (*upload, time.Duration) {
	s.mu.Lock()
	defer s.mu.Unlock()
	now := time.Now()
	var best *upload
	wait := time.Duration(-1)
	due := 0
	for _, u := range s.queue {
		if u.inflight {
			continue
		}
		if d := u.next.Sub(now); d > 0 {
			if wait < 0 || d < wait {
				wait = d
			}
			continue
		}
		due++
		if best == nil || u.next.Before(best.next) || u.next.Equal(best.next) && u.path < best.path {
			best = u
		}
	}
	if best != nil {
		best.inflight = true
		if due > 1 {
			signal(s.wake) // another worker can take the next one
		}
	}
	return best, wait
}

// uploadWorker uploads queued recordings until ctx ends.
func (s *Spool) uploadWorker(ctx context.Context) {
	defer s.wg.Done()
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	for {
		if ctx.Err() != nil {
			return
		}
		u, wait := s.nextUpload()
		if u == nil {
			if wait < 0 {
				wait = time.Hour
			}
			timer.Reset(wait)
			select {
			case <-s.wake:
				timer.Stop()
			case <-timer.C:
			case <-ctx.Done():
				return
			}
			continue
		}
		err := s.upload(ctx, u)
		if errors.Is(err, errVanished) {
			s.mu.Lock()
			delete(s.queue, u.path)
			s.notifyLocked()
			s.mu.Unlock()
			s.diskBytes.Add(-u.size)
			s.noteError(err)
			s.log.Error("recorder: a recording waiting for upload was removed from the spool by something else; it is lost", "name", u.name, "file", u.path)
			continue
		}
		s.uploadDone(ctx, u, err)
	}
}

// conflictName is the name a recording is uploaded under when a different
// object holds its name: "<dir>/<id>.conflict-N.cast.gz".
func conflictName(name string, n int) string {
	base, ext := name, ""
	if b, ok := strings.CutSuffix(name, ".cast.gz"); ok {
		base, ext = b, ".cast.gz"
	}
	return base + ".conflict-" + strconv.Itoa(n) + ext
}

// upload puts one recording, create-only. It returns nil when the store
// holds the whole recording.
func (s *Spool) upload(ctx context.Context, u *upload) error {
	f, err := os.Open(u.path)
	if errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("%w: %s", errVanished, u.path)
	}
	if err != nil {
		return err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return err
	}
	size := fi.Size()
	ctx, cancel := context.WithTimeout(ctx, s.cfg.UploadTimeout)
	defer cancel()
	name := u.name
	for n := 1; ; n++ {
		err := s.cfg.Store.Put(ctx, name, io.NewSectionReader(f, 0, size), size)
		if err == nil {
			return nil
		}
		if !errors.Is(err, ErrExists) {
			return err
		}
		info, serr := s.cfg.Store.Stat(ctx, name)
		if serr != nil {
			return fmt.Errorf("recorder: %s exists but cannot be checked: %w", name, serr)
		}
		if info.Size == size {
			s.log.Info("recorder: the store already holds the recording (same size); dropping the local copy", "name", name, "bytes", size)
			return nil
		}
		if n > 100 {
			return fmt.Errorf("recorder: %s: too many conflicting objects", u.name)
		}
		s.conflicts.Add(1)
		next := conflictName(u.name, n)
		s.log.Error("recorder: CONFLICT: the store holds a different object under the recording's name; keeping it and uploading the recording under another name",
			"name", name, "stored_bytes", info.Size, "local_bytes", size, "upload_as", next)
		name = next
	}
}

// uploadDone deletes an uploaded recording or schedules a retry.
func (s *Spool) uploadDone(ctx context.Context, u *upload, err error) {
	if err == nil {
		if rerr := os.Remove(u.path); rerr != nil && !errors.Is(rerr, fs.ErrNotExist) {
			s.log.Error("recorder: uploaded, but cannot remove the local copy", "name", u.name, "err", rerr)
		}
		s.pruneDirs(filepath.Dir(u.path), s.readyDir())
		s.diskBytes.Add(-u.size)
		s.uploaded.Add(1)
		s.uploadedBytes.Add(u.size)
		s.mu.Lock()
		delete(s.queue, u.path)
		// The store works again: retry the others now.
		now := time.Now()
		for _, o := range s.queue {
			if o.next.After(now) {
				o.next = now
			}
		}
		s.notifyLocked()
		s.mu.Unlock()
		signal(s.wake)
		s.log.Info("recorder: recording uploaded", "name", u.name, "bytes", u.size, "attempts", u.attempts+1)
		return
	}
	s.mu.Lock()
	u.inflight = false
	if ctx.Err() != nil {
		// Closing: not a failure of the store.
		s.mu.Unlock()
		return
	}
	u.attempts++
	backoff := s.cfg.RetryMin << min(u.attempts-1, 30)
	if backoff > s.cfg.RetryMax || backoff <= 0 {
		backoff = s.cfg.RetryMax
	}
	// Full jitter in [backoff/2, backoff].
	backoff = backoff/2 + rand.N(backoff/2+1)
	u.next = time.Now().Add(backoff)
	attempts := u.attempts
	s.mu.Unlock()
	s.failures.Add(1)
	s.noteError(err)
	s.log.Warn("recorder: upload failed; will retry", "name", u.name, "attempt", attempts, "retry_in", backoff.Round(time.Millisecond), "err", err)
}

// pruneDirs removes empty directories from dir up to (not including) root.
func (s *Spool) pruneDirs(dir, root string) {
	for d := dir; d != root && strings.HasPrefix(d, root); d = filepath.Dir(d) {
		if os.Remove(d) != nil {
			return
		}
	}
}
