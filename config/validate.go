package config

import (
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"net/url"
	"path/filepath"
	"reflect"
	"strconv"
	"strings"

	"github.com/sallyport/sallyport/internal/sshutil"
)

// validator checks a defaulted Config and attributes each problem to the
// line of the file, or to the flag or environment variable, it came from.
type validator struct {
	file    string
	lines   map[string]int
	origins map[string]string
	errs    []error
}

func (v *validator) fail(path string, sentinel error, format string, args ...any) {
	if len(v.errs) >= maxErrors {
		return
	}
	e := &Error{File: v.file, Path: path, Reason: fmt.Sprintf(format, args...), Err: sentinel}
	if o := v.origin(path); o != "" {
		e.Origin = o
	} else {
		e.Line = v.line(path)
	}
	v.errs = append(v.errs, e)
}

// origin returns the flag or variable that set path (or a list containing it).
func (v *validator) origin(path string) string {
	for p := path; p != ""; p = trimLast(p) {
		if o, ok := v.origins[p]; ok {
			return o
		}
	}
	return ""
}

// line returns the line of path, or of its nearest ancestor in the file.
func (v *validator) line(path string) int {
	for p := path; p != ""; p = trimLast(p) {
		if l, ok := v.lines[p]; ok {
			return l
		}
	}
	return 0
}

func trimLast(p string) string {
	i := strings.LastIndexAny(p, ".[")
	if i < 0 {
		return ""
	}
	return p[:i]
}

func validate(c *Config, file string, lines map[string]int, origins map[string]string) error {
	v := &validator{file: file, lines: lines, origins: origins}
	v.walk(reflect.ValueOf(c).Elem(), "")
	v.cross(c)
	return errors.Join(v.errs...)
}

// walk applies the check tags of every field.
func (v *validator) walk(s reflect.Value, path string) {
	for _, f := range fieldsOf(s.Type()) {
		fv := s.Field(f.index)
		fp := join(path, f.key)
		switch {
		case fv.Kind() == reflect.Struct && fv.Type() != secretType && fv.Type() != staticTokenType:
			v.walk(fv, fp)
		case fv.Kind() == reflect.Slice && fv.Type().Elem().Kind() == reflect.Struct && fv.Type().Elem() != staticTokenType:
			for i := range fv.Len() {
				v.walk(fv.Index(i), fmt.Sprintf("%s[%d]", fp, i))
			}
		case fv.Kind() == reflect.String:
			v.check(fp, f.check, fv.String())
		case fv.Kind() == reflect.Slice && fv.Type().Elem().Kind() == reflect.String:
			for i := range fv.Len() {
				v.check(fmt.Sprintf("%s[%d]", fp, i), f.check, fv.Index(i).String())
			}
		case fv.Kind() == reflect.Map && f.check == "labels":
			for _, k := range fv.MapKeys() {
				if r := checkLabel(k.String()); r != "" {
					v.fail(fp+"."+k.String(), ErrInvalid, "%s", r)
				} else if r := checkText(fv.MapIndex(k).String()); r != "" {
					v.fail(fp+"."+k.String(), ErrInvalid, "%s", r)
				}
			}
		}
	}
}

func (v *validator) check(path, rule, val string) {
	if val == "" {
		return
	}
	if r := checkText(val); r != "" {
		v.fail(path, ErrInvalid, "%s", r)
		return
	}
	name, arg, _ := strings.Cut(rule, "=")
	var reason string
	switch name {
	case "enum":
		if !oneOf(val, strings.Split(arg, ",")) {
			reason = fmt.Sprintf("%s is not one of %s", quote(val), strings.ReplaceAll(arg, ",", ", "))
		}
	case "listen":
		reason = checkAddr(val, false, false)
	case "dial":
		reason = checkAddr(val, true, false)
	case "public":
		reason = checkAddr(val, true, true)
	case "uri":
		reason = checkURI(val, strings.Split(arg, ","))
	case "abspath":
		if !filepath.IsAbs(val) {
			reason = fmt.Sprintf("%s is not an absolute path", quote(val))
		}
	case "capin":
		if !strings.HasPrefix(val, "/") {
			reason = checkPin(val)
		}
	case "cidr":
		if _, err := netip.ParsePrefix(val); err != nil {
			if _, err := netip.ParseAddr(val); err != nil {
				reason = fmt.Sprintf("%s is not a CIDR such as 10.0.0.0/8 or an IP address", quote(val))
			}
		}
	case "email":
		local, domain, ok := strings.Cut(val, "@")
		if !ok || local == "" || domain == "" || strings.ContainsAny(val, " \t<>") || strings.Contains(domain, "@") {
			reason = fmt.Sprintf("%s is not an email address", quote(val))
		}
	case "name":
		reason = checkName(val)
	case "sshcipher":
		if err := sshutil.CheckCipher(val); err != nil {
			reason = err.Error()
		}
	}
	if reason != "" {
		v.fail(path, ErrInvalid, "%s", reason)
	}
}

// checkAddr checks host:port. needHost requires a host; portOptional
// accepts a bare host.
func checkAddr(s string, needHost, portOptional bool) string {
	bad := fmt.Sprintf("%s is not a host:port address", quote(s))
	host, port, err := net.SplitHostPort(s)
	switch {
	case err == nil && port == "":
		return bad
	case err != nil && !portOptional:
		return bad
	case err != nil:
		// A bare host: name, IPv4, IPv6 or [IPv6].
		host = s
		if strings.HasPrefix(host, "[") && strings.HasSuffix(host, "]") {
			host = host[1 : len(host)-1]
			if _, err := netip.ParseAddr(host); err != nil {
				return bad
			}
		} else if strings.ContainsAny(host, ":[]") {
			if _, err := netip.ParseAddr(host); err != nil {
				return bad
			}
		}
	default:
		p, err := strconv.Atoi(port)
		min := 0
		if needHost {
			min = 1
		}
		if err != nil || p < min || p > 65535 || strings.HasPrefix(port, "+") || strings.HasPrefix(port, "-") {
			return fmt.Sprintf("%s: port %s is not a number between %d and 65535", quote(s), quote(port), min)
		}
	}
	if host == "" {
		if needHost {
			return fmt.Sprintf("%s has no host", quote(s))
		}
		return ""
	}
	if _, err := netip.ParseAddr(host); err == nil {
		return ""
	}
	if r := checkHostname(host); r != "" {
		return fmt.Sprintf("%s: %s", quote(s), r)
	}
	return ""
}

func checkHostname(h string) string {
	if len(h) > 253 {
		return "host name is longer than 253 characters"
	}
	for label := range strings.SplitSeq(h, ".") {
		if label == "" || len(label) > 63 {
			return fmt.Sprintf("host %s is not a valid host name or IP address", quote(h))
		}
		for _, r := range label {
			if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-' || r == '_' || r == '*') {
				return fmt.Sprintf("host %s is not a valid host name or IP address", quote(h))
			}
		}
	}
	return ""
}

// checkName checks node and cluster names.
func checkName(s string) string {
	if len(s) > 253 {
		return "name is longer than 253 characters"
	}
	for _, r := range s {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-' || r == '_' || r == '.') {
			return fmt.Sprintf("%s may contain only letters, digits, '.', '-' and '_'", quote(s))
		}
	}
	return ""
}

func checkLabel(k string) string {
	if k == "" || len(k) > 253 {
		return "label names must have 1 to 253 characters"
	}
	for _, r := range k {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || strings.ContainsRune("-_./:*", r)) {
			return fmt.Sprintf("label name %s may contain only letters, digits and - _ . / : *", quote(k))
		}
	}
	return ""
}

// checkPin checks "sha256:<64 hex digits>".
func checkPin(s string) string {
	h, ok := strings.CutPrefix(s, "sha256:")
	if !ok || len(h) != 64 {
		return fmt.Sprintf("%s is not a CA pin of the form sha256:<64 hex digits> or an absolute file path", quote(s))
	}
	if _, err := hex.DecodeString(h); err != nil {
		return fmt.Sprintf("%s is not a CA pin of the form sha256:<64 hex digits> or an absolute file path", quote(s))
	}
	return ""
}

// checkURI checks a URI against the allowed schemes and their shape. The
// URI is shown only in redacted form.
func checkURI(s string, schemes []string) string {
	if rest, ok := strings.CutPrefix(s, "etcd://"); ok && oneOf("etcd", schemes) {
		hosts, _, _ := strings.Cut(rest, "/")
		if hosts == "" {
			return "expected etcd://host:port[,host:port...]"
		}
		for h := range strings.SplitSeq(hosts, ",") {
			if r := checkAddr(h, true, false); r != "" {
				return fmt.Sprintf("endpoint %s is not host:port", quote(h))
			}
		}
		return ""
	}
	u, err := url.Parse(s)
	if err != nil {
		return "not a valid URI"
	}
	shown := quote(redactURI(s))
	scheme := strings.ToLower(u.Scheme)
	if !oneOf(scheme, schemes) {
		return fmt.Sprintf("%s: scheme %s is not one of %s", shown, quote(u.Scheme), strings.Join(schemes, ", "))
	}
	switch scheme {
	case "sqlite", "file":
		if u.Host != "" || u.Opaque != "" || !strings.HasPrefix(u.Path, "/") {
			return fmt.Sprintf("%s: expected %s:///absolute/path", shown, scheme)
		}
	case "postgres", "postgresql", "http", "https":
		if u.Host == "" || u.Opaque != "" {
			return fmt.Sprintf("%s: has no host", shown)
		}
		if u.Port() != "" {
			if r := checkAddr(u.Host, true, false); r != "" {
				return fmt.Sprintf("%s: bad host or port", shown)
			}
		}
	case "s3", "gs", "azblob":
		if u.Host == "" || u.Opaque != "" {
			return fmt.Sprintf("%s: expected %s://bucket[/prefix]", shown, scheme)
		}
	case "memory", "stdout":
		if u.Host != "" || (u.Path != "" && u.Path != "/") || u.Opaque != "" {
			return fmt.Sprintf("%s: expected %s://", shown, scheme)
		}
	}
	return ""
}

// secret checks the shape of a secret without showing it.
func (v *validator) secret(path string, s Secret) {
	raw := s.raw()
	switch {
	case raw == "":
	case strings.TrimSpace(raw) != raw:
		v.fail(path, ErrInvalid, "the value has leading or trailing white space")
	case checkText(raw) != "":
		v.fail(path, ErrInvalid, "%s", checkText(raw))
	}
}

// cross checks the rules that relate several settings.
func (v *validator) cross(c *Config) {
	cm := &c.Common
	v.secret("sallyport.join_params.token_name", cm.JoinParams.TokenName)
	for i, tok := range c.Auth.Tokens {
		p := fmt.Sprintf("auth_service.tokens[%d]", i)
		if tok.Token.IsZero() {
			v.fail(p, ErrMissing, "the token is empty")
		}
		v.secret(p, tok.Token)
		if len(tok.Roles) == 0 {
			v.fail(p, ErrMissing, "at least one role is required")
		}
		for _, r := range tok.Roles {
			if !oneOf(r, tokenRoles) {
				v.fail(p, ErrInvalid, "role %s is not one of %s", quote(r), strings.Join(tokenRoles, ", "))
			}
		}
	}
	if len(cm.AuthServers) > 0 && cm.ProxyServer != "" {
		v.fail("sallyport.proxy_server", ErrConflict, "set either auth_server or proxy_server, not both")
	}
	if c.Joining() {
		if cm.JoinParams.TokenName.IsZero() {
			v.fail("sallyport.join_params.token_name", ErrMissing, "a join token is required: proxy_service or ssh_service is enabled without auth_service, so this instance joins the cluster")
		}
		if len(cm.AuthServers) == 0 && cm.ProxyServer == "" {
			v.fail("sallyport", ErrMissing, "auth_server or proxy_server is required: proxy_service or ssh_service is enabled without auth_service, so this instance joins the cluster")
		}
		if len(cm.AuthServers) > 0 && len(cm.CAPins) == 0 {
			v.fail("sallyport.auth_server", ErrMissing, "ca_pin is required when joining through auth_server (the auth service presents a certificate of the cluster CA)")
		}
	}

	st := &cm.Storage
	if s := uriScheme(st.URI); s != "" {
		if s == "postgresql" {
			s = "postgres"
		}
		if st.Type != "" && s != st.Type {
			v.fail("sallyport.storage.type", ErrConflict, "type %s does not match the scheme of uri (%s)", quote(st.Type), s)
		}
	} else if st.URI == "" {
		v.fail("sallyport.storage.uri", ErrMissing, "a uri is required for storage type %s", quote(st.Type))
	}

	for i, kp := range c.Proxy.HTTPSKeyPairs {
		p := fmt.Sprintf("proxy_service.https_keypairs[%d]", i)
		if kp.KeyFile == "" || kp.CertFile == "" {
			v.fail(p, ErrMissing, "key_file and cert_file must be given together")
		}
	}
	if c.Proxy.ACME.Enabled {
		if len(c.Proxy.HTTPSKeyPairs) > 0 {
			v.fail("proxy_service.acme.enabled", ErrConflict, "acme cannot be enabled together with https_keypairs")
		}
		if len(c.Proxy.PublicAddrs) == 0 {
			v.fail("proxy_service.acme.enabled", ErrMissing, "acme needs proxy_service.public_addr: the DNS name to obtain a certificate for")
		}
	}

	// Listen addresses of the enabled services must differ.
	type use struct{ path, addr string }
	var uses []use
	add := func(path, addr string) {
		if addr != "" {
			uses = append(uses, use{path, addr})
		}
	}
	if c.Auth.Enabled {
		add("auth_service.listen_addr", c.Auth.ListenAddr)
	}
	if c.Proxy.Enabled {
		add("proxy_service.web_listen_addr", c.Proxy.WebListenAddr)
		add("proxy_service.peer_listen_addr", c.Proxy.PeerListenAddr)
		if c.Proxy.ListenerMode == "separate" {
			add("proxy_service.tunnel_listen_addr", c.Proxy.TunnelListenAddr)
			add("proxy_service.listen_addr", c.Proxy.ListenAddr)
		}
	}
	if c.SSH.Enabled {
		add("ssh_service.listen_addr", c.SSH.ListenAddr)
	}
	add("sallyport.diag_addr", cm.DiagAddr)
	for i := range uses {
		_, port, err := net.SplitHostPort(uses[i].addr)
		if err != nil || port == "0" {
			continue
		}
		for j := range i {
			if uses[j].addr == uses[i].addr {
				v.fail(uses[i].path, ErrConflict, "%s is also used by %s", quote(uses[i].addr), uses[j].path)
			}
		}
	}
}
