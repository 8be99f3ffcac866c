package config

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
)

// Overrides are settings given outside the file, on the command line or
// in the environment. A zero field leaves the file's value alone.
type Overrides struct {
	ConfigPath  string   // the file to read: -config, SALLYPORT_CONFIG
	DataDir     string   // sallyport.data_dir: -data-dir, SALLYPORT_DATA_DIR (relative paths are made absolute)
	NodeName    string   // sallyport.nodename: -nodename, SALLYPORT_NODENAME
	AuthToken   string   // sallyport.join_params.token_name: -token, SALLYPORT_AUTH_TOKEN (inline or /path/to/file)
	CAPins      []string // sallyport.ca_pin: -ca-pin (repeatable), SALLYPORT_CA_PIN (comma-separated)
	AuthServers []string // sallyport.auth_server: -auth-server (repeatable), SALLYPORT_AUTH_SERVER (comma-separated)
	ProxyServer string   // sallyport.proxy_server: -proxy-server, SALLYPORT_PROXY_SERVER
	DiagAddr    string   // sallyport.diag_addr: -diag-addr, SALLYPORT_DIAG_ADDR
	LogSeverity string   // sallyport.log.severity: -log-severity, SALLYPORT_LOG_SEVERITY

	kind string // "flag" or "env": how errors name the source
}

// override describes one overridable setting.
type override struct {
	path, flag, env, usage string
	list                   bool
	get                    func(o *Overrides) []string
	set                    func(o *Overrides, v []string)
	apply                  func(c *Config, v []string)
}

func one(v []string) string {
	if len(v) == 0 {
		return ""
	}
	return v[0]
}

func nonEmpty(s string) []string {
	if s == "" {
		return nil
	}
	return []string{s}
}

var overrides = []override{
	{path: "sallyport.data_dir", flag: "data-dir", env: "SALLYPORT_DATA_DIR", usage: "data directory (sallyport.data_dir)",
		get:   func(o *Overrides) []string { return nonEmpty(o.DataDir) },
		set:   func(o *Overrides, v []string) { o.DataDir = one(v) },
		apply: func(c *Config, v []string) { c.Common.DataDir = absPath(one(v)) }},
	{path: "sallyport.nodename", flag: "nodename", env: "SALLYPORT_NODENAME", usage: "name of this instance (sallyport.nodename)",
		get:   func(o *Overrides) []string { return nonEmpty(o.NodeName) },
		set:   func(o *Overrides, v []string) { o.NodeName = one(v) },
		apply: func(c *Config, v []string) { c.Common.NodeName = one(v) }},
	{path: "sallyport.join_params.token_name", flag: "token", env: "SALLYPORT_AUTH_TOKEN", usage: "join token, or /path/to/file holding it (sallyport.join_params.token_name)",
		get:   func(o *Overrides) []string { return nonEmpty(o.AuthToken) },
		set:   func(o *Overrides, v []string) { o.AuthToken = one(v) },
		apply: func(c *Config, v []string) { c.Common.JoinParams.TokenName = NewSecret(one(v)) }},
	{path: "sallyport.ca_pin", flag: "ca-pin", env: "SALLYPORT_CA_PIN", list: true, usage: "CA pin sha256:<hex> or /path/to/file; repeatable (sallyport.ca_pin)",
		get:   func(o *Overrides) []string { return o.CAPins },
		set:   func(o *Overrides, v []string) { o.CAPins = append(o.CAPins, v...) },
		apply: func(c *Config, v []string) { c.Common.CAPins = append([]string(nil), v...) }},
	{path: "sallyport.auth_server", flag: "auth-server", env: "SALLYPORT_AUTH_SERVER", list: true, usage: "host:port of the auth service to join through; repeatable (sallyport.auth_server)",
		get: func(o *Overrides) []string { return o.AuthServers },
		set: func(o *Overrides, v []string) { o.AuthServers = append(o.AuthServers, v...) },
		apply: func(c *Config, v []string) {
			c.Common.AuthServers = append([]string(nil), v...)
			c.Common.ProxyServer = ""
		}},
	{path: "sallyport.proxy_server", flag: "proxy-server", env: "SALLYPORT_PROXY_SERVER", usage: "host:port of the proxy to join through (sallyport.proxy_server)",
		get: func(o *Overrides) []string { return nonEmpty(o.ProxyServer) },
		set: func(o *Overrides, v []string) { o.ProxyServer = one(v) },
		apply: func(c *Config, v []string) {
			c.Common.ProxyServer = one(v)
			c.Common.AuthServers = nil
		}},
	{path: "sallyport.diag_addr", flag: "diag-addr", env: "SALLYPORT_DIAG_ADDR", usage: "listen address of the diagnostics endpoint (sallyport.diag_addr)",
		get:   func(o *Overrides) []string { return nonEmpty(o.DiagAddr) },
		set:   func(o *Overrides, v []string) { o.DiagAddr = one(v) },
		apply: func(c *Config, v []string) { c.Common.DiagAddr = one(v) }},
	{path: "sallyport.log.severity", flag: "log-severity", env: "SALLYPORT_LOG_SEVERITY", usage: "debug, info, warn or error (sallyport.log.severity)",
		get:   func(o *Overrides) []string { return nonEmpty(o.LogSeverity) },
		set:   func(o *Overrides, v []string) { o.LogSeverity = one(v) },
		apply: func(c *Config, v []string) { c.Common.Log.Severity = one(v) }},
}

func absPath(p string) string {
	if a, err := filepath.Abs(p); err == nil {
		return a
	}
	return p
}

func splitList(s string) []string {
	var out []string
	for p := range strings.SplitSeq(s, ",") {
		if p = strings.TrimSpace(p); p != "" {
			out = append(out, p)
		}
	}
	return out
}

// FromEnvironment reads the SALLYPORT_* variables: SALLYPORT_CONFIG,
// SALLYPORT_DATA_DIR, SALLYPORT_NODENAME, SALLYPORT_AUTH_TOKEN,
// SALLYPORT_CA_PIN, SALLYPORT_AUTH_SERVER, SALLYPORT_PROXY_SERVER,
// SALLYPORT_DIAG_ADDR and SALLYPORT_LOG_SEVERITY. Empty variables are
// ignored. Load calls it; it is exported for programs that want to show
// or merge the values themselves.
func FromEnvironment() *Overrides {
	o := &Overrides{kind: "env", ConfigPath: os.Getenv("SALLYPORT_CONFIG")}
	for _, ov := range overrides {
		s := os.Getenv(ov.env)
		if s == "" {
			continue
		}
		if ov.list {
			ov.set(o, splitList(s))
		} else {
			ov.set(o, []string{s})
		}
	}
	return o
}

// BindFlags defines the flags -config, -data-dir, -nodename, -token,
// -ca-pin, -auth-server, -proxy-server, -diag-addr and -log-severity on
// fs and returns the Overrides they fill when fs is parsed. Pass it to
// Load. -ca-pin and -auth-server may be repeated or take a
// comma-separated list.
func BindFlags(fs *flag.FlagSet) *Overrides {
	o := &Overrides{kind: "flag"}
	fs.StringVar(&o.ConfigPath, "config", "", "configuration file (default $SALLYPORT_CONFIG)")
	for _, ov := range overrides {
		usage := ov.usage + " (default $" + ov.env + ")"
		fs.Func(ov.flag, usage, func(s string) error {
			if ov.list {
				ov.set(o, splitList(s))
			} else {
				ov.set(o, []string{s})
			}
			return nil
		})
	}
	return o
}

// apply copies the set fields of o into c and records where they came from.
func (o *Overrides) apply(c *Config, origins map[string]string) {
	if o == nil {
		return
	}
	for _, ov := range overrides {
		v := ov.get(o)
		if len(v) == 0 {
			continue
		}
		ov.apply(c, v)
		switch o.kind {
		case "flag":
			origins[ov.path] = "flag -" + ov.flag
		case "env":
			origins[ov.path] = "environment " + ov.env
		default:
			origins[ov.path] = "override " + ov.path
		}
		switch ov.path {
		case "sallyport.auth_server":
			delete(origins, "sallyport.proxy_server")
		case "sallyport.proxy_server":
			delete(origins, "sallyport.auth_server")
		}
	}
}

// Parse reads a configuration file from data, applies defaults and
// validates it. name is used in error messages. Parse does not read the
// environment or secret files; see Load and Config.ResolveSecrets.
func Parse(name string, data []byte) (*Config, error) {
	cfg, lines, err := parseFile(name, data)
	if err != nil {
		return nil, err
	}
	cfg.applyDefaults()
	if err := validate(cfg, name, lines, nil); err != nil {
		return nil, err
	}
	return cfg, nil
}

// Load builds the configuration of a binary. Settings are taken, highest
// precedence first, from flags (the Overrides returned by BindFlags; nil
// means none), the SALLYPORT_* environment variables, the file, and the
// defaults. The file is flags.ConfigPath, else $SALLYPORT_CONFIG, else
// path; when all three are empty no file is read. Load then validates
// the result and reads secrets given as file paths (ResolveSecrets).
//
// Errors point at the file line, flag or variable of the bad value;
// every one wraps an *Error, several are joined with errors.Join. A
// missing file wraps fs.ErrNotExist.
func Load(path string, flags *Overrides) (*Config, error) {
	env := FromEnvironment()
	if env.ConfigPath != "" {
		path = env.ConfigPath
	}
	if flags != nil && flags.ConfigPath != "" {
		path = flags.ConfigPath
	}
	cfg, lines := new(Config), map[string]int{}
	if path != "" {
		data, err := readFile(path)
		if err != nil {
			return nil, err
		}
		cfg, lines, err = parseFile(path, data)
		if err != nil {
			return nil, err
		}
	}
	origins := map[string]string{}
	env.apply(cfg, origins)
	flags.apply(cfg, origins)
	cfg.applyDefaults()
	if err := validate(cfg, path, lines, origins); err != nil {
		return nil, err
	}
	if err := cfg.ResolveSecrets(); err != nil {
		var e *Error
		if errors.As(err, &e) {
			e.File = path
			e.Origin = (&validator{origins: origins}).origin(e.Path)
			if e.Origin == "" {
				e.Line = (&validator{lines: lines}).line(e.Path)
			}
		}
		return nil, err
	}
	return cfg, nil
}

func readFile(path string) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("config: %w", err)
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, MaxFileSize+1))
	if err != nil {
		return nil, fmt.Errorf("config: %w", err)
	}
	return data, nil
}

// Validate checks a Config built or changed in code, after filling its
// zero fields with defaults. Errors carry key paths but no line numbers.
func (c *Config) Validate() error {
	c.applyDefaults()
	return validate(c, "", nil, nil)
}

// Format prints the overrides with the token redacted, for every verb.
func (o Overrides) Format(f fmt.State, _ rune) {
	tok := ""
	if o.AuthToken != "" {
		tok = redacted
	}
	fmt.Fprintf(f, "{ConfigPath:%s DataDir:%s NodeName:%s AuthToken:%s CAPins:%v AuthServers:%v ProxyServer:%s DiagAddr:%s LogSeverity:%s}",
		o.ConfigPath, o.DataDir, o.NodeName, tok, o.CAPins, o.AuthServers, o.ProxyServer, o.DiagAddr, o.LogSeverity)
}
