// Package sshserver is the SSH service of a sallyport node (agent): an SSH
// server built on golang.org/x/crypto/ssh that presents the node's host
// certificate, accepts only user certificates issued by the cluster's user
// CA, asks a hook before every action, runs shells, commands and SFTP as
// the login user, forwards TCP when allowed, and reports every session as
// audit events and, for terminals, to a session recorder.
//
// It takes everything as plain values (keys, certificates, CA keys,
// labels, hooks), so it depends on neither the Auth Service client nor
// the reverse tunnel: an agent serves tunnel streams with ServeConn, or a
// listener (port 3022 when joined directly) with Serve.
//
//	srv, err := sshserver.New(&sshserver.Config{
//		HostKey:     hostKey,                 // ssh.Signer
//		HostCert:    hostCert,                // *ssh.Certificate signed by the host CA
//		UserCAs:     []ssh.PublicKey{userCA}, // trusted user CAs
//		ClusterName: "example.com",
//		NodeName:    "db-1",
//		Labels:      map[string]string{"env": "prod"},
//		Logger:      logger,
//		Authorize:   checkRoles,              // func(ctx, sshserver.AccessRequest) error
//		Audit:       emit,                    // func(ctx, sshserver.Event)
//		Recorder: func(ctx context.Context, s sshserver.SessionInfo) (sshserver.Recording, error) {
//			return spool.NewSession(ctx, recorder.Meta{ID: s.ID, User: s.User, Login: s.Login,
//				Node: s.Node, Remote: s.RemoteAddr, Command: s.Command, Start: s.Start,
//				Width: s.Width, Height: s.Height, Term: s.Term})
//		},
//	})
//	go srv.Serve(listener)                  // or: go srv.ServeConn(ctx, tunnelStream)
//	...
//	srv.Shutdown(ctx)
//
// # Host identity
//
// The server offers HostCert (through ssh.NewCertSigner) and the plain
// HostKey. OpenSSH clients that trust the host CA with a known_hosts line
// "@cert-authority *.example.com ssh-ed25519 AAAA..." verify the node
// without per-host entries; the certificate's principals must include the
// name the client connects to.
//
// # Certificate checks
//
// Only public-key authentication is offered, and only certificates are
// accepted. The ciphers offered are AES-GCM and AES-CTR
// (Config.Ciphers): x/crypto's chacha20-poly1305, which OpenSSH clients
// would pick first, has no assembly on amd64. A client whose KEXINIT
// offers AES-GCM is offered AES-GCM only, since OpenSSH lists AES-CTR
// first and CTR with its HMAC costs more per byte.
//
// A user certificate is accepted for login L when all hold:
//
//   - it is a user certificate (not a host certificate),
//   - it is signed by one of Config.UserCAs (with a valid signature),
//   - it is within its validity window (ValidAfter..ValidBefore),
//   - L is one of its principals (a certificate without principals is
//     refused, unlike OpenSSH's "any login" reading),
//   - its critical options are all supported: force-command (replaces
//     every command; the client's command is in SSH_ORIGINAL_COMMAND) and
//     source-address (the client's address must match),
//   - its ExtCluster extension, when present and Config.ClusterName is
//     set, names this cluster,
//   - L exists on the node (when the server runs as root).
//
// A refusal reaches the client as "Permission denied (publickey)"; the
// reason (ErrLoginNotAllowed, ErrCertExpired, ErrUnknownAuthority, ...)
// goes to the log (with the certificate's key ID, serial and the CA's
// fingerprint, never key material) and to an EventAuthFailure audit event.
// ServeConn returns it as an *AuthError.
//
// # Authorization
//
// After authentication every action (ActionShell, ActionExec,
// ActionSubsystem, ActionPortForward) is first checked against the
// certificate's own permissions (CheckCertificatePermissions: permit-pty
// for a terminal, permit-port-forwarding for direct-tcpip, as OpenSSH
// does), then passed to Config.Authorize as an AccessRequest: who (key
// ID, principals, roles from the ExtRoles extension
// "sallyport-roles@sallyport", all extensions and critical options), the
// login, the node and its labels, and the action with its command or
// target. The hook can only refuse what the certificate permits. A refused
// action fails on the client ("administratively prohibited" for port
// forwarding, a failed request for sessions) and is an EventAccessDenied
// audit event whose Reason carries the hook's error.
//
// # Sessions
//
// Shells and commands run with the login's shell from /etc/passwd
// (Config.Shell overrides it) in the login's home directory, in a new
// session (setsid), with HOME, USER, LOGNAME, SHELL, PATH, SSH_CLIENT,
// SSH_CONNECTION, SSH_TTY and TERM set, plus the "env" requests whose
// names are allowed: TERM, LANG, LC_*, COLORTERM and Config.AcceptEnv.
// "pty-req" gives the session a pseudo-terminal owned by the login (on
// Linux its master stays under Go's poller, so an idle session holds no
// thread, and bulk output goes out in packets of several terminal reads;
// elsewhere github.com/creack/pty); "window-change" resizes it; "signal" is delivered
// to the process group. When the program exits the client gets
// "exit-status", or "exit-signal" when a signal killed it.
//
// When the server runs as root, programs run as the login user (uid, gid
// and supplementary groups, through syscall.Credential). Otherwise they
// run as the server's own user whatever the login (the certificate must
// still grant the login): an unprivileged agent can only offer its own
// account.
//
// The "sftp" subsystem (used by sftp and by scp since OpenSSH 9) runs
// Config.SFTPServer, by default /usr/lib/openssh/sftp-server, as the login
// user; InternalSFTP serves it in process with github.com/pkg/sftp when
// the session runs as the server's own user.
//
// "direct-tcpip" channels (ssh -L, ssh -W, ProxyJump through the node)
// are dialled with Config.PortForwardDialer after authorization. Remote
// forwarding (tcpip-forward), agent and X11 forwarding are refused.
//
// # Audit events
//
// Config.Audit receives, with the certificate's key ID, the login, the
// client's address (the conn's RemoteAddr, which for tunnel streams is the
// original client), the node and the session ID:
//
//	auth.failure    a refused login, with Reason
//	session.start   a shell, command or subsystem started
//	exec            the command of an exec session
//	session.end     with ExitCode (-1 when a signal ended it) and ExitSignal
//	port-forward    a direct-tcpip channel to Target
//	access.denied   an action refused by the certificate or Authorize
//
// # Recording
//
// For every session with a terminal, Config.Recorder is called with the
// session's SessionInfo; the terminal output is copied into the returned
// Recording after it is sent to the client, window changes are passed to
// Resize, and Close is called after the last output. *recorder.Recording
// fits the Recording interface. If the hook fails the session is refused;
// if a Write fails later the session goes on unrecorded and the failure is
// logged.
//
// # Lifecycle
//
// New validates the Config. Serve accepts until the listener fails or the
// server stops; ServeConn serves one connection and returns when it ends.
// Both may be called many times and concurrently. Shutdown stops
// accepting, refuses new connections and sessions, closes connections
// without open channels, and waits for running sessions to end; when its
// ctx ends first it closes what is left. Close closes everything at once:
// programs of closed sessions get SIGHUP and, after Config.KillGrace,
// SIGKILL. Close waits for every goroutine the server started; a second
// Close returns an error wrapping net.ErrClosed.
//
// Keepalive requests (Config.KeepAliveInterval, KeepAliveCountMax) close
// connections whose client stopped answering; Config.IdleTimeout closes
// connections whose channels carried no data for that long.
// Config.HandshakeTimeout bounds the handshake and authentication.
//
// # Errors
//
// Errors are the package's sentinels: ErrConfig from New; ErrServerClosed
// from Serve and ServeConn after Shutdown or Close; the authentication
// sentinels inside *AuthError; ErrAccessDenied wrapping refusals of
// actions. Use errors.Is and errors.As.
//
// # Cancellation
//
// Canceling the ctx given to ServeConn closes that connection (ending its
// sessions as Close does). The ctx given to the hooks is derived from it
// and is canceled when the connection ends. Shutdown's ctx bounds only the
// wait for sessions.
package sshserver
