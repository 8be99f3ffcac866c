package testservice

import (
	"fmt"
	"path/filepath"
	"strings"
	"testing"
)

// Tinyproxy is a running tinyproxy.
type Tinyproxy struct {
	*Process
	Addr string // "127.0.0.1:PORT"
	Dir  string // configuration and log directory
	Log  string // path of the log file (LogLevel Connect)
}

// StartTinyproxy starts tinyproxy as user nobody on loopback, with Basic
// authentication when user is not empty, and waits until it accepts
// connections. Tinyproxy resolves target names with the system resolver.
func StartTinyproxy(t testing.TB, user, password string) *Tinyproxy {
	t.Helper()
	bin := Bin(t, "tinyproxy")
	dir := NobodyDir(t)
	tp := &Tinyproxy{Addr: FreeAddr(t), Dir: dir, Log: filepath.Join(dir, "tinyproxy.log")}
	_, port, _ := strings.Cut(tp.Addr, ":")
	var b strings.Builder
	fmt.Fprintf(&b, `Port %s
Listen 127.0.0.1
Timeout 60
MaxClients 100
LogLevel Connect
LogFile "%s"
PidFile "%s/tinyproxy.pid"
DisableViaHeader Yes
`, port, tp.Log, dir)
	if user != "" {
		fmt.Fprintf(&b, "BasicAuth %s %s\n", user, password)
	}
	conf := WriteFile(t, dir, "tinyproxy.conf", b.String())
	tp.Process = Start(t, "setpriv", []string{"--reuid=nobody", "--regid=nogroup", "--clear-groups", "--", bin, "-d", "-c", conf}, nil, tp.Addr)
	return tp
}
