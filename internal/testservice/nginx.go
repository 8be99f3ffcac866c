package testservice

import (
	"os"
	"strings"
	"testing"
)

// Nginx is a running nginx.
type Nginx struct {
	*Process
	Dir string // the instance's prefix directory (config, logs, temp files)
}

// NginxStreamModule is the load_module line that the `stream` block needs
// (Debian's libnginx-mod-stream).
const NginxStreamModule = "load_module /usr/lib/nginx/modules/ngx_stream_module.so;"

// NginxConfig starts nginx in the foreground with config as the main
// context of its configuration file (for example `events {} http { ... }`
// or NginxStreamModule plus `events {} stream { ... }`), and waits until
// readyAddr accepts connections. The pid file, error log and, inside an
// `http {` block, the temp paths are set to the instance's directory;
// "{{dir}}" in config is replaced by that directory. Workers run as root
// when the test does, so they can read files in test temp directories.
func NginxConfig(t testing.TB, readyAddr, config string) *Nginx {
	t.Helper()
	dir := t.TempDir()
	config = strings.ReplaceAll(config, "{{dir}}", dir)
	temps := "http {\n" +
		"    client_body_temp_path " + dir + "/body;\n" +
		"    proxy_temp_path " + dir + "/proxy;\n" +
		"    fastcgi_temp_path " + dir + "/fastcgi;\n" +
		"    uwsgi_temp_path " + dir + "/uwsgi;\n" +
		"    scgi_temp_path " + dir + "/scgi;\n" +
		"    access_log off;\n"
	config = strings.Replace(config, "http {", temps, 1)
	head := "pid " + dir + "/nginx.pid;\nerror_log " + dir + "/error.log warn;\n"
	if os.Geteuid() == 0 {
		head += "user root;\n"
	}
	// load_module lines must come first.
	var mods, rest []string
	for _, line := range strings.Split(config, "\n") {
		if strings.HasPrefix(strings.TrimSpace(line), "load_module ") {
			mods = append(mods, line)
		} else {
			rest = append(rest, line)
		}
	}
	full := strings.Join(mods, "\n") + "\n" + head + strings.Join(rest, "\n") + "\n"
	cfg := WriteFile(t, dir, "nginx.conf", full)
	p := Start(t, "nginx", []string{"-p", dir, "-c", cfg, "-e", dir + "/error.log", "-g", "daemon off;"}, nil, readyAddr)
	t.Cleanup(func() {
		if t.Failed() {
			if b, err := os.ReadFile(dir + "/error.log"); err == nil {
				t.Logf("testservice: nginx error.log:\n%s", b)
			}
		}
	})
	return &Nginx{Process: p, Dir: dir}
}
