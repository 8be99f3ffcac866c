// Package pty opens pseudo-terminals whose master stays under Go's
// poller.
//
// github.com/creack/pty calls Fd on the master, which puts it in blocking
// mode for good: every reader then holds a thread, Close cannot interrupt
// a read, and a read cannot be tried without waiting. On Linux this
// package opens the terminal and sets its size through SyscallConn
// instead; elsewhere it uses creack/pty.
package pty
