package sshserver

import (
	"bufio"
	"fmt"
	"io"
	"os"
	"os/user"
	"strconv"
	"strings"
	"syscall"
)

// osUser is the account a session runs as.
type osUser struct {
	name   string
	uid    uint32
	gid    uint32
	groups []uint32
	home   string
	shell  string
}

// maxPasswdLine bounds a line of /etc/passwd.
const maxPasswdLine = 64 << 10

// lookupLogin returns the account sessions of login run as. When the
// server runs as root that is the login's own account (an error wrapping
// ErrUnknownLogin when there is none); otherwise it is the server's own
// account, whatever the login.
func (s *Server) lookupLogin(login string) (*osUser, error) {
	if s.uid != 0 {
		u, err := user.Current()
		if err != nil {
			return nil, fmt.Errorf("%w: %v", ErrUnknownLogin, err)
		}
		return toOSUser(u)
	}
	u, err := user.Lookup(login)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrUnknownLogin, err)
	}
	return toOSUser(u)
}

func toOSUser(u *user.User) (*osUser, error) {
	uid, err1 := strconv.ParseUint(u.Uid, 10, 32)
	gid, err2 := strconv.ParseUint(u.Gid, 10, 32)
	if err1 != nil || err2 != nil {
		return nil, fmt.Errorf("%w: %q has a non-numeric uid or gid", ErrUnknownLogin, u.Username)
	}
	ou := &osUser{name: u.Username, uid: uint32(uid), gid: uint32(gid), home: u.HomeDir}
	if ids, err := u.GroupIds(); err == nil {
		for _, g := range ids {
			if n, err := strconv.ParseUint(g, 10, 32); err == nil {
				ou.groups = append(ou.groups, uint32(n))
			}
		}
	}
	if f, err := os.Open("/etc/passwd"); err == nil {
		ou.shell, _ = passwdShell(f, u.Username)
		f.Close()
	}
	return ou, nil
}

// passwdShell returns the shell field of name's entry in a passwd file.
func passwdShell(r io.Reader, name string) (string, bool) {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 4096), maxPasswdLine)
	for sc.Scan() {
		line := sc.Text()
		if line == "" || line[0] == '#' {
			continue
		}
		f := strings.Split(line, ":")
		if len(f) != 7 || f[0] != name {
			continue
		}
		return f[6], true
	}
	return "", false
}

// credential returns the credential to run commands with: nil when no
// switch is needed (the server runs as this user, or is not root).
func (s *Server) credential(u *osUser) *syscall.Credential {
	if s.uid != 0 || u.uid == uint32(s.uid) {
		return nil
	}
	return &syscall.Credential{Uid: u.uid, Gid: u.gid, Groups: u.groups}
}
