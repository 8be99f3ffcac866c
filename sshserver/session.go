package sshserver

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/pkg/sftp"
	"golang.org/x/crypto/ssh"

	"github.com/sallyport/sallyport/internal/netutil"
	"github.com/sallyport/sallyport/internal/pty"
)

// Bounds on values taken from session requests.
const (
	maxEnvVars    = 64
	maxEnvValue   = 16 << 10
	maxTermLength = 256
	maxWinSize    = 10000
)

// Wire formats of the session requests (RFC 4254 section 6).
type ptyRequest struct {
	Term   string
	Cols   uint32
	Rows   uint32
	Width  uint32
	Height uint32
	Modes  string
}

type windowChange struct {
	Cols   uint32
	Rows   uint32
	Width  uint32
	Height uint32
}

type envRequest struct {
	Name  string
	Value string
}

type commandRequest struct {
	Command string
}

type signalRequest struct {
	Signal string
}

type exitStatus struct {
	Status uint32
}

type exitSignal struct {
	Signal     string
	CoreDumped bool
	Error      string
	Lang       string
}

// parsePTYRequest decodes and bounds a "pty-req" payload.
func parsePTYRequest(p []byte) (ptyRequest, error) {
	var r ptyRequest
	if err := ssh.Unmarshal(p, &r); err != nil {
		return r, err
	}
	if len(r.Term) > maxTermLength || strings.ContainsAny(r.Term, "\x00\n=") {
		return r, errors.New("sshserver: bad TERM")
	}
	r.Cols, r.Rows = clampSize(r.Cols, r.Rows)
	return r, nil
}

// parseWindowChange decodes and bounds a "window-change" payload.
func parseWindowChange(p []byte) (windowChange, error) {
	var r windowChange
	if err := ssh.Unmarshal(p, &r); err != nil {
		return r, err
	}
	r.Cols, r.Rows = clampSize(r.Cols, r.Rows)
	return r, nil
}

func clampSize(cols, rows uint32) (uint32, uint32) {
	if cols == 0 {
		cols = 80
	}
	if rows == 0 {
		rows = 24
	}
	return min(cols, maxWinSize), min(rows, maxWinSize)
}

// parseEnvRequest decodes an "env" payload and checks it against the
// allow-list.
func parseEnvRequest(p []byte, accept []string) (envRequest, error) {
	var r envRequest
	if err := ssh.Unmarshal(p, &r); err != nil {
		return r, err
	}
	if r.Name == "" || len(r.Value) > maxEnvValue || strings.ContainsAny(r.Name, "=\x00") || strings.ContainsRune(r.Value, 0) {
		return r, errors.New("sshserver: bad environment variable")
	}
	if !envAllowed(r.Name, accept) {
		return r, errors.New("sshserver: environment variable not accepted")
	}
	return r, nil
}

var defaultAcceptEnv = []string{"TERM", "LANG", "LC_*", "COLORTERM"}

func envAllowed(name string, extra []string) bool {
	for _, list := range [][]string{defaultAcceptEnv, extra} {
		for _, pat := range list {
			if prefix, ok := strings.CutSuffix(pat, "*"); ok {
				if strings.HasPrefix(name, prefix) {
					return true
				}
			} else if name == pat {
				return true
			}
		}
	}
	return false
}

var signals = map[string]syscall.Signal{
	"ABRT": syscall.SIGABRT, "ALRM": syscall.SIGALRM, "FPE": syscall.SIGFPE,
	"HUP": syscall.SIGHUP, "ILL": syscall.SIGILL, "INT": syscall.SIGINT,
	"KILL": syscall.SIGKILL, "PIPE": syscall.SIGPIPE, "QUIT": syscall.SIGQUIT,
	"SEGV": syscall.SIGSEGV, "TERM": syscall.SIGTERM, "USR1": syscall.SIGUSR1,
	"USR2": syscall.SIGUSR2,
}

func signalName(sig syscall.Signal) string {
	for name, s := range signals {
		if s == sig {
			return name
		}
	}
	return fmt.Sprintf("SIG%d", int(sig))
}

// session is one "session" channel.
type session struct {
	c       *serverConn
	ch      activeChannel
	id      string
	action  Action
	command string // as run (after force-command)
	env     []string
	term    string
	pty     bool
	cols    uint32
	rows    uint32

	mu      sync.Mutex // guards the fields below
	started bool
	ptmx    *os.File
	stdin   io.WriteCloser
	rec     Recording
	proc    *os.Process
	done    chan struct{} // closed when the command has exited and the channel is closed
}

func (c *serverConn) handleSession(ctx context.Context, nch ssh.NewChannel) {
	defer c.wg.Done()
	defer c.channelClosed()
	ch, reqs, err := nch.Accept()
	if err != nil {
		return
	}
	s := &session{c: c, ch: activeChannel{ch, c}, id: newID(), done: make(chan struct{})}
	for req := range reqs {
		ok := s.handleRequest(ctx, req)
		if req.WantReply {
			req.Reply(ok, nil)
		}
	}
	// The channel is gone (closed by the client, or the connection ended).
	s.mu.Lock()
	started, proc := s.started, s.proc
	s.mu.Unlock()
	if !started {
		ch.Close()
		return
	}
	select {
	case <-s.done:
		return
	default:
	}
	if proc != nil {
		killGroup(proc.Pid, syscall.SIGHUP)
	}
	select {
	case <-s.done:
		return
	case <-time.After(c.srv.cfg.KillGrace):
	}
	if proc != nil {
		killGroup(proc.Pid, syscall.SIGKILL)
	}
	<-s.done
}

func killGroup(pid int, sig syscall.Signal) {
	if err := syscall.Kill(-pid, sig); err != nil {
		_ = syscall.Kill(pid, sig)
	}
}

// handleRequest handles one channel request and reports success.
func (s *session) handleRequest(ctx context.Context, req *ssh.Request) bool {
	switch req.Type {
	case "pty-req":
		r, err := parsePTYRequest(req.Payload)
		if err != nil {
			return false
		}
		s.mu.Lock()
		defer s.mu.Unlock()
		if s.started {
			return false
		}
		s.pty, s.term, s.cols, s.rows = true, r.Term, r.Cols, r.Rows
		return true
	case "env":
		r, err := parseEnvRequest(req.Payload, s.c.srv.cfg.AcceptEnv)
		if err != nil {
			s.c.srv.log.Debug("sshserver: env refused", "session", s.id, "name", r.Name, "err", err)
			return false
		}
		s.mu.Lock()
		defer s.mu.Unlock()
		if s.started || len(s.env) >= maxEnvVars {
			return false
		}
		s.env = append(s.env, r.Name+"="+r.Value)
		return true
	case "window-change":
		r, err := parseWindowChange(req.Payload)
		if err != nil {
			return false
		}
		s.mu.Lock()
		defer s.mu.Unlock()
		s.cols, s.rows = r.Cols, r.Rows
		if s.ptmx != nil {
			_ = pty.SetSize(s.ptmx, uint16(r.Cols), uint16(r.Rows))
		}
		if s.rec != nil {
			if err := s.rec.Resize(int(r.Cols), int(r.Rows)); err != nil {
				s.c.srv.log.Warn("sshserver: recording resize", "session", s.id, "err", err)
			}
		}
		return true
	case "signal":
		var r signalRequest
		if ssh.Unmarshal(req.Payload, &r) != nil {
			return false
		}
		sig, ok := signals[r.Signal]
		s.mu.Lock()
		proc := s.proc
		s.mu.Unlock()
		if !ok || proc == nil {
			return false
		}
		killGroup(proc.Pid, sig)
		return true
	case "shell":
		return s.start(ctx, req, ActionShell, "")
	case "exec":
		var r commandRequest
		if ssh.Unmarshal(req.Payload, &r) != nil {
			return false
		}
		return s.start(ctx, req, ActionExec, r.Command)
	case "subsystem":
		var r commandRequest
		if ssh.Unmarshal(req.Payload, &r) != nil {
			return false
		}
		return s.start(ctx, req, ActionSubsystem, r.Command)
	default: // x11-req, auth-agent-req@openssh.com, ...
		return false
	}
}

// start authorizes and starts the session's program. It reports whether
// the program started. On success it answers req itself, before any
// output or the exit status can reach the client.
func (s *session) start(ctx context.Context, req0 *ssh.Request, action Action, command string) bool {
	reply := func() {
		if req0.WantReply {
			req0.Reply(true, nil)
			req0.WantReply = false
		}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.started {
		return false
	}
	c := s.c
	srv := c.srv
	forced, hasForced := c.cert.CriticalOptions[OptForceCommand]
	req := AccessRequest{Action: action, PTY: s.pty, Command: command, SessionID: s.id}
	if hasForced {
		req.Command = forced
	}
	if err := c.authorize(ctx, req); err != nil {
		return false
	}
	if c.user == nil {
		srv.log.Warn("sshserver: login has no account", "login", c.login)
		return false
	}
	s.action, s.command = action, req.Command
	ev := Event{User: c.cert.KeyId, Login: c.login, RemoteAddr: c.remote, SessionID: s.id, Action: action, Command: req.Command, PTY: s.pty}

	var cmd *exec.Cmd
	var inProcessSFTP bool
	switch {
	case hasForced:
		cmd = s.shellCommand(forced)
		s.env = append(s.env, "SSH_ORIGINAL_COMMAND="+command)
	case action == ActionShell:
		cmd = s.shellCommand("")
	case action == ActionExec:
		cmd = s.shellCommand(command)
	case action == ActionSubsystem && command == "sftp":
		prog := srv.cfg.SFTPServer
		if prog == "" {
			prog = DefaultSFTPServer
			if _, err := os.Stat(prog); err != nil {
				prog = InternalSFTP
			}
		}
		if prog == InternalSFTP {
			if srv.credential(c.user) != nil {
				srv.log.Warn("sshserver: in-process sftp cannot run as another user", "login", c.login)
				return false
			}
			inProcessSFTP = true
		} else {
			cmd = exec.Command(prog)
		}
	default:
		srv.log.Info("sshserver: unknown subsystem", "session", s.id, "subsystem", command)
		return false
	}

	info := SessionInfo{ID: s.id, User: c.cert.KeyId, Login: c.login, Node: srv.node, RemoteAddr: c.remote,
		Command: req.Command, Start: time.Now(), Width: int(s.cols), Height: int(s.rows), Term: s.term}
	if s.pty && srv.cfg.Recorder != nil && !inProcessSFTP {
		rec, err := srv.cfg.Recorder(ctx, info)
		if err != nil {
			srv.log.Error("sshserver: cannot start recording, session refused", "session", s.id, "err", err)
			return false
		}
		s.rec = rec
	}

	if inProcessSFTP {
		s.started = true
		ev.Type = EventSessionStart
		srv.audit(ctx, ev)
		reply()
		c.wg.Add(1)
		go s.serveSFTP(ctx, ev)
		return true
	}

	cmd.Env = s.environ(cmd.Env)
	cmd.Dir = c.user.home
	if fi, err := os.Stat(cmd.Dir); err != nil || !fi.IsDir() {
		cmd.Dir = "/"
	}
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true, Credential: srv.credential(c.user)}
	var err error
	if s.pty {
		err = s.startPTY(cmd)
	} else {
		err = s.startPipes(cmd)
	}
	if err != nil {
		srv.log.Warn("sshserver: cannot start command", "session", s.id, "login", c.login, "err", err)
		if s.rec != nil {
			s.rec.Close()
			s.rec = nil
		}
		return false
	}
	s.started = true
	s.proc = cmd.Process
	ev.Type = EventSessionStart
	srv.audit(ctx, ev)
	if action == ActionExec {
		ev.Type = EventExec
		srv.audit(ctx, ev)
	}
	srv.log.Info("sshserver: session started", "session", s.id, "user", ev.User, "login", ev.Login, "remote", ev.RemoteAddr, "action", action, "pty", s.pty)
	reply()
	c.wg.Add(1)
	if s.pty {
		go s.runPTY(cmd, s.ptmx)
	} else {
		go s.runPipes(cmd, s.stdin)
	}
	return true
}

// shellCommand runs command with the login's shell, or the shell itself
// as a login shell when command is empty.
func (s *session) shellCommand(command string) *exec.Cmd {
	shell := s.c.srv.cfg.Shell
	if shell == "" {
		shell = s.c.user.shell
	}
	if shell == "" {
		shell = "/bin/sh"
	}
	if command == "" {
		cmd := exec.Command(shell)
		cmd.Args = []string{"-" + filepath.Base(shell)}
		return cmd
	}
	return exec.Command(shell, "-c", command)
}

// environ is the environment of the session's program.
func (s *session) environ(base []string) []string {
	u := s.c.user
	path := "/usr/local/bin:/usr/bin:/bin:/usr/games"
	if u.uid == 0 {
		path = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
	}
	shell := s.c.srv.cfg.Shell
	if shell == "" {
		shell = u.shell
	}
	env := append(base, "HOME="+u.home, "USER="+u.name, "LOGNAME="+u.name, "PATH="+path)
	if shell != "" {
		env = append(env, "SHELL="+shell)
	}
	rh, rp, _ := net.SplitHostPort(s.c.remote)
	lh, lp, _ := net.SplitHostPort(addrString(s.c.netConn.LocalAddr()))
	if rh != "" {
		env = append(env, "SSH_CLIENT="+rh+" "+rp+" "+lp, "SSH_CONNECTION="+rh+" "+rp+" "+lh+" "+lp)
	}
	if s.pty && s.term != "" {
		env = append(env, "TERM="+s.term)
	}
	return append(env, s.env...)
}

func (s *session) startPTY(cmd *exec.Cmd) error {
	ptmx, tty, err := pty.Open()
	if err != nil {
		return err
	}
	defer tty.Close()
	if err := pty.SetSize(ptmx, uint16(s.cols), uint16(s.rows)); err != nil {
		ptmx.Close()
		return err
	}
	if cred := cmd.SysProcAttr.Credential; cred != nil {
		if err := os.Chown(tty.Name(), int(cred.Uid), int(cred.Gid)); err != nil {
			ptmx.Close()
			return err
		}
	}
	cmd.Env = append(cmd.Env, "SSH_TTY="+tty.Name())
	cmd.Stdin, cmd.Stdout, cmd.Stderr = tty, tty, tty
	cmd.SysProcAttr.Setctty = true
	cmd.SysProcAttr.Ctty = 0
	if err := cmd.Start(); err != nil {
		ptmx.Close()
		return err
	}
	s.ptmx = ptmx
	return nil
}

// runPTY copies between the channel and the terminal until the program
// exits, then reports its exit status and closes the channel.
func (s *session) runPTY(cmd *exec.Cmd, ptmx *os.File) {
	defer s.c.wg.Done()
	out := io.Writer(s.ch)
	if s.rec != nil {
		out = &teeRecording{w: s.ch, rec: s.rec, s: s}
	}
	outDone := make(chan struct{})
	go func() {
		defer close(outDone)
		buf := make([]byte, 32<<10)
		_, _ = io.CopyBuffer(out, onlyReader{newTerminalReader(ptmx)}, buf)
	}()
	inDone := make(chan struct{})
	go func() {
		defer close(inDone)
		_, _ = io.Copy(ptmx, s.ch)
	}()
	err := cmd.Wait()
	select {
	case <-outDone:
	case <-time.After(time.Second): // a background process holds the terminal
	}
	s.finish(err)
	s.mu.Lock()
	s.ptmx = nil
	rec := s.rec
	s.rec = nil
	s.mu.Unlock()
	ptmx.Close()
	<-outDone
	<-inDone
	if rec != nil {
		if err := rec.Close(); err != nil {
			s.c.srv.log.Warn("sshserver: close recording", "session", s.id, "err", err)
		}
	}
	close(s.done)
}

func (s *session) startPipes(cmd *exec.Cmd) error {
	stdin, err := cmd.StdinPipe()
	if err != nil {
		return err
	}
	cmd.Stdout = s.ch
	cmd.Stderr = s.ch.Stderr()
	if err := cmd.Start(); err != nil {
		return err
	}
	s.stdin = stdin
	return nil
}

func (s *session) runPipes(cmd *exec.Cmd, stdin io.WriteCloser) {
	defer s.c.wg.Done()
	inDone := make(chan struct{})
	go func() {
		defer close(inDone)
		_, _ = netutil.Copy(stdin, s.ch)
		stdin.Close()
	}()
	err := cmd.Wait()
	s.finish(err)
	<-inDone
	close(s.done)
}

// serveSFTP serves the sftp subsystem in process.
func (s *session) serveSFTP(ctx context.Context, ev Event) {
	defer s.c.wg.Done()
	code := 0
	srv, err := sftp.NewServer(s.ch, sftp.WithServerWorkingDirectory(s.c.user.home))
	if err == nil {
		err = srv.Serve()
		srv.Close()
	}
	if err != nil && !errors.Is(err, io.EOF) {
		code = 1
	}
	ev.Type = EventSessionEnd
	ev.ExitCode = code
	s.c.srv.audit(ctx, ev)
	_, _ = s.ch.SendRequest("exit-status", false, ssh.Marshal(exitStatus{uint32(code)}))
	s.ch.Close()
	close(s.done)
}

// finish audits the end of the session, then sends exit-status or
// exit-signal and closes the channel.
func (s *session) finish(waitErr error) {
	code, sigName := 0, ""
	var ee *exec.ExitError
	switch {
	case waitErr == nil:
	case errors.As(waitErr, &ee):
		ws, _ := ee.Sys().(syscall.WaitStatus)
		if ws.Signaled() {
			code, sigName = -1, signalName(ws.Signal())
		} else {
			code = ee.ExitCode()
		}
	default:
		code = -1
	}
	// The end is audited before the client learns of it, so a client that
	// has seen its session end finds it in the audit log.
	c := s.c
	c.srv.audit(context.Background(), Event{Type: EventSessionEnd, User: c.cert.KeyId, Login: c.login, RemoteAddr: c.remote,
		SessionID: s.id, Action: s.action, Command: s.command, PTY: s.pty, ExitCode: code, ExitSignal: sigName})
	if sigName != "" {
		_, _ = s.ch.SendRequest("exit-signal", false, ssh.Marshal(exitSignal{Signal: sigName, Error: "killed by signal " + sigName}))
	} else if code >= 0 {
		_, _ = s.ch.SendRequest("exit-status", false, ssh.Marshal(exitStatus{uint32(code)}))
	}
	_ = s.ch.CloseWrite()
	s.ch.Close()
	c.srv.log.Info("sshserver: session ended", "session", s.id, "user", c.cert.KeyId, "login", c.login, "exit", code, "signal", sigName)
}

// teeRecording writes terminal output to the client and then to the
// recording. A recording failure is logged once and stops the copy to the
// recording, not the session.
type teeRecording struct {
	w      io.Writer
	rec    Recording
	s      *session
	failed bool
}

func (t *teeRecording) Write(p []byte) (int, error) {
	n, err := t.w.Write(p)
	if n > 0 && !t.failed {
		if _, rerr := t.rec.Write(p[:n]); rerr != nil {
			t.failed = true
			t.s.c.srv.log.Error("sshserver: recording write failed, output no longer recorded", "session", t.s.id, "err", rerr)
		}
	}
	return n, err
}

// onlyReader hides everything but Read, so io.CopyBuffer uses its buffer.
type onlyReader struct{ io.Reader }

// terminalReader reads a terminal's output in larger pieces than the
// terminal hands out: the kernel passes at most about 4 KiB per read,
// and every read becomes an SSH packet and a system call on the client's
// connection. After a read that returned a full piece it takes whatever
// else is ready at once, without waiting, so bulk output goes out in
// fewer, larger packets while interactive output is not delayed.
type terminalReader struct {
	f  *os.File
	rc syscall.RawConn // nil when f has none; then reads are plain
}

// ttyChunk is the size of a read that suggests more output is waiting.
const ttyChunk = 4 << 10

func newTerminalReader(f *os.File) *terminalReader {
	r := &terminalReader{f: f}
	rc, err := f.SyscallConn()
	if err != nil {
		return r
	}
	// Only a non-blocking descriptor (one under Go's poller) can be
	// tried without waiting.
	nonblocking := false
	rc.Control(func(fd uintptr) {
		flags, _, errno := syscall.Syscall(syscall.SYS_FCNTL, fd, syscall.F_GETFL, 0)
		nonblocking = errno == 0 && flags&syscall.O_NONBLOCK != 0
	})
	if nonblocking {
		r.rc = rc
	}
	return r
}

func (r *terminalReader) Read(p []byte) (int, error) {
	n, err := r.f.Read(p)
	for err == nil && r.rc != nil && n >= ttyChunk-1 && len(p)-n >= ttyChunk {
		m, rerr := 0, error(nil)
		// Returning true makes this one non-blocking attempt (the
		// terminal is in non-blocking mode under Go's poller).
		if cerr := r.rc.Read(func(fd uintptr) bool {
			m, rerr = syscall.Read(int(fd), p[n:])
			return true
		}); cerr != nil || rerr != nil || m <= 0 {
			break
		}
		n += m
		if m < ttyChunk-1 {
			break
		}
	}
	return n, err
}
