package config

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"reflect"
	"strconv"
	"strings"
	"sync"
	"time"
	"unicode"
	"unicode/utf8"

	"gopkg.in/yaml.v3"
)

var (
	secretType      = reflect.TypeFor[Secret]()
	durationType    = reflect.TypeFor[time.Duration]()
	staticTokenType = reflect.TypeFor[StaticToken]()
)

// field describes one key of a section, taken from the struct tags.
type field struct {
	index   int
	key     string // yaml key
	alias   string // accepted synonym
	present bool   // default:"present": true when the section is in the file
	check   string // validation rule
}

var fieldCache sync.Map // reflect.Type -> []field

func fieldsOf(t reflect.Type) []field {
	if f, ok := fieldCache.Load(t); ok {
		return f.([]field)
	}
	var fs []field
	for i := range t.NumField() {
		sf := t.Field(i)
		key := sf.Tag.Get("yaml")
		if key == "" || !sf.IsExported() {
			continue
		}
		fs = append(fs, field{
			index:   i,
			key:     key,
			alias:   sf.Tag.Get("alias"),
			present: sf.Tag.Get("default") == "present",
			check:   sf.Tag.Get("check"),
		})
	}
	fieldCache.Store(t, fs)
	return fs
}

// decoder turns a yaml.Node tree into a Config, recording the line of
// every key path it sets.
type decoder struct {
	file  string
	lines map[string]int
	errs  []error
}

const maxErrors = 20

func (d *decoder) fail(line int, path string, sentinel error, format string, args ...any) {
	if len(d.errs) >= maxErrors {
		return
	}
	d.errs = append(d.errs, &Error{File: d.file, Line: line, Path: path, Reason: fmt.Sprintf(format, args...), Err: sentinel})
}

// parseFile decodes data without applying defaults or validating.
func parseFile(name string, data []byte) (*Config, map[string]int, error) {
	d := &decoder{file: name, lines: map[string]int{}}
	cfg := new(Config)
	if len(data) > MaxFileSize {
		return nil, nil, &Error{File: name, Reason: fmt.Sprintf("file is larger than %d bytes", MaxFileSize), Err: ErrSyntax}
	}
	dec := yaml.NewDecoder(bytes.NewReader(data))
	var doc yaml.Node
	if err := dec.Decode(&doc); err != nil {
		if errors.Is(err, io.EOF) {
			return cfg, d.lines, nil // empty file: all defaults
		}
		return nil, nil, yamlError(name, err)
	}
	var extra yaml.Node
	if err := dec.Decode(&extra); !errors.Is(err, io.EOF) {
		line := extra.Line
		if err != nil {
			return nil, nil, yamlError(name, err)
		}
		return nil, nil, &Error{File: name, Line: line, Reason: "more than one YAML document", Err: ErrSyntax}
	}
	root := &doc
	if root.Kind == yaml.DocumentNode {
		if len(root.Content) == 0 {
			return cfg, d.lines, nil
		}
		root = root.Content[0]
	}
	root = d.deref(root, "")
	if root != nil && !isNull(root) {
		if root.Kind != yaml.MappingNode {
			d.fail(root.Line, "", ErrSyntax, "the file must be a mapping of keys to values")
		} else {
			d.structure(root, reflect.ValueOf(cfg).Elem(), "")
		}
	}
	if len(d.errs) > 0 {
		return nil, nil, errors.Join(d.errs...)
	}
	return cfg, d.lines, nil
}

// yamlError turns a yaml.v3 parse error ("yaml: line 3: ...") into an *Error.
func yamlError(name string, err error) error {
	msg := err.Error()
	msg = strings.TrimPrefix(msg, "yaml: ")
	line := 0
	if rest, ok := strings.CutPrefix(msg, "line "); ok {
		if i := strings.IndexByte(rest, ':'); i > 0 {
			if n, err := strconv.Atoi(rest[:i]); err == nil {
				line = n
				msg = strings.TrimSpace(rest[i+1:])
			}
		}
	}
	return &Error{File: name, Line: line, Reason: msg, Err: ErrSyntax}
}

func isNull(n *yaml.Node) bool {
	return n.Kind == yaml.ScalarNode && n.Tag == "!!null"
}

func join(path, key string) string {
	if path == "" {
		return key
	}
	return path + "." + key
}

// deref follows aliases.
func (d *decoder) deref(n *yaml.Node, path string) *yaml.Node {
	for i := 0; n != nil && n.Kind == yaml.AliasNode; i++ {
		if i > 8 || n.Alias == nil {
			d.fail(n.Line, path, ErrSyntax, "alias nested too deeply")
			return nil
		}
		n = n.Alias
	}
	return n
}

// structure decodes a mapping node into the struct v.
func (d *decoder) structure(n *yaml.Node, v reflect.Value, path string) {
	fs := fieldsOf(v.Type())
	for _, f := range fs {
		if f.present {
			v.Field(f.index).SetBool(true)
		}
	}
	if isNull(n) {
		return
	}
	if n.Kind != yaml.MappingNode {
		d.fail(n.Line, path, ErrSyntax, "expected a mapping of keys to values, found %s", kindName(n))
		return
	}
	seen := map[string]int{}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, val := n.Content[i], n.Content[i+1]
		if k.Kind != yaml.ScalarNode {
			d.fail(k.Line, path, ErrSyntax, "keys must be plain words, found %s", kindName(k))
			continue
		}
		var f *field
		for j := range fs {
			if fs[j].key == k.Value || (fs[j].alias != "" && fs[j].alias == k.Value) {
				f = &fs[j]
				break
			}
		}
		kp := join(path, k.Value)
		if f == nil {
			if h, ok := hints[kp]; ok {
				d.fail(k.Line, kp, ErrUnknownKey, "unknown key; %s", h)
			} else {
				d.fail(k.Line, kp, ErrUnknownKey, "unknown key%s", suggest(k.Value, fs))
			}
			continue
		}
		fp := join(path, f.key)
		if prev, dup := seen[f.key]; dup {
			d.fail(k.Line, kp, ErrConflict, "already set on line %d", prev)
			continue
		}
		seen[f.key] = k.Line
		d.lines[fp] = k.Line
		val = d.deref(val, fp)
		if val == nil {
			continue
		}
		d.value(val, v.Field(f.index), fp)
	}
}

// hints answer keys that belong elsewhere or are spelled differently
// in this format.
var hints = map[string]string{
	"teleport":                       `the common section is called "sallyport"`,
	"cluster_name":                   "cluster_name belongs under auth_service",
	"nodename":                       "nodename belongs under sallyport",
	"data_dir":                       "data_dir belongs under sallyport",
	"storage":                        "storage belongs under sallyport",
	"sallyport.auth_token":           "use join_params.token_name",
	"sallyport.auth_servers":         "use auth_server (it takes a list)",
	"sallyport.cluster_name":         "cluster_name belongs under auth_service",
	"sallyport.token":                "use join_params.token_name",
	"auth_service.storage":           "storage belongs under sallyport",
	"proxy_service.https_cert_file":  "use https_keypairs: [{key_file: ..., cert_file: ...}]",
	"proxy_service.https_key_file":   "use https_keypairs: [{key_file: ..., cert_file: ...}]",
	"auth_service.session_recording": "session_recording belongs under ssh_service",
}

// suggest names the allowed keys of a section.
func suggest(key string, fs []field) string {
	var keys []string
	for _, f := range fs {
		keys = append(keys, f.key)
	}
	return " (allowed: " + strings.Join(keys, ", ") + ")"
}

func kindName(n *yaml.Node) string {
	switch n.Kind {
	case yaml.MappingNode:
		return "a mapping"
	case yaml.SequenceNode:
		return "a list"
	case yaml.ScalarNode:
		return "a single value"
	default:
		return "something else"
	}
}

// scalar returns the text of a scalar node, or false after reporting why not.
func (d *decoder) scalar(n *yaml.Node, path string) (string, bool) {
	if n.Kind != yaml.ScalarNode {
		d.fail(n.Line, path, ErrSyntax, "expected a single value, found %s", kindName(n))
		return "", false
	}
	if n.Tag != "" && !strings.HasPrefix(n.Tag, "!!") {
		d.fail(n.Line, path, ErrInvalid, "custom tag %q is not allowed", n.Tag)
		return "", false
	}
	if isNull(n) {
		return "", true
	}
	if r := checkText(n.Value); r != "" {
		d.fail(n.Line, path, ErrInvalid, "%s", r)
		return "", false
	}
	return n.Value, true
}

// checkText rejects values no setting can use; it never quotes the value.
func checkText(s string) string {
	if !utf8.ValidString(s) {
		return "value is not valid UTF-8"
	}
	for _, r := range s {
		if !unicode.IsPrint(r) {
			return fmt.Sprintf("value contains the non-printable character %U", r)
		}
	}
	if len(s) > 4096 {
		return "value is longer than 4096 bytes"
	}
	return ""
}

func quote(s string) string {
	if len(s) > 80 {
		s = s[:80] + "..."
	}
	return strconv.Quote(s)
}

func (d *decoder) value(n *yaml.Node, v reflect.Value, path string) {
	t := v.Type()
	switch {
	case t == secretType:
		s, ok := d.scalar(n, path)
		if ok {
			v.Set(reflect.ValueOf(NewSecret(s)))
		}
	case t == durationType:
		s, ok := d.scalar(n, path)
		if !ok || s == "" {
			return
		}
		dur, err := time.ParseDuration(s)
		if err != nil || dur < 0 {
			d.fail(n.Line, path, ErrInvalid, "%s is not a duration such as 30s, 5m or 1h30m", quote(s))
			return
		}
		v.SetInt(int64(dur))
	case t == staticTokenType:
		s, ok := d.scalar(n, path)
		if !ok || s == "" {
			return
		}
		tok, reason := parseStaticToken(s)
		if reason != "" {
			d.fail(n.Line, path, ErrInvalid, "%s", reason)
			return
		}
		v.Set(reflect.ValueOf(tok))
	case t.Kind() == reflect.String:
		s, ok := d.scalar(n, path)
		if ok {
			v.SetString(s)
		}
	case t.Kind() == reflect.Bool:
		s, ok := d.scalar(n, path)
		if !ok || s == "" {
			return
		}
		b, ok := parseBool(s)
		if !ok {
			d.fail(n.Line, path, ErrInvalid, "%s is not one of true, false, yes, no, on, off", quote(s))
			return
		}
		v.SetBool(b)
	case t.Kind() == reflect.Int:
		s, ok := d.scalar(n, path)
		if !ok || s == "" {
			return
		}
		i, err := strconv.Atoi(s)
		if err != nil || i < 0 || i > 1<<20 {
			d.fail(n.Line, path, ErrInvalid, "%s is not a whole number between 0 and %d", quote(s), 1<<20)
			return
		}
		v.SetInt(int64(i))
	case t.Kind() == reflect.Struct:
		d.structure(n, v, path)
	case t.Kind() == reflect.Slice:
		var items []*yaml.Node
		switch {
		case isNull(n):
			return
		case n.Kind == yaml.SequenceNode:
			items = n.Content
		case n.Kind == yaml.ScalarNode && t.Elem().Kind() != reflect.Struct:
			items = []*yaml.Node{n} // a single value stands for a list of one
		case n.Kind == yaml.ScalarNode && t.Elem() == staticTokenType:
			items = []*yaml.Node{n}
		default:
			d.fail(n.Line, path, ErrSyntax, "expected a list, found %s", kindName(n))
			return
		}
		if len(items) > 1000 {
			d.fail(n.Line, path, ErrInvalid, "more than 1000 entries")
			return
		}
		out := reflect.MakeSlice(t, 0, len(items))
		for i, it := range items {
			ip := fmt.Sprintf("%s[%d]", path, i)
			it = d.deref(it, ip)
			if it == nil {
				continue
			}
			d.lines[ip] = it.Line
			if isNull(it) {
				d.fail(it.Line, ip, ErrInvalid, "empty list entry")
				continue
			}
			e := reflect.New(t.Elem()).Elem()
			d.value(it, e, ip)
			out = reflect.Append(out, e)
		}
		if out.Len() > 0 {
			v.Set(out)
		}
	case t.Kind() == reflect.Map:
		if isNull(n) {
			return
		}
		if n.Kind != yaml.MappingNode {
			d.fail(n.Line, path, ErrSyntax, "expected a mapping, found %s", kindName(n))
			return
		}
		m := reflect.MakeMap(t)
		seen := map[string]int{}
		for i := 0; i+1 < len(n.Content); i += 2 {
			kn := d.deref(n.Content[i], path)
			vn := d.deref(n.Content[i+1], path)
			if kn == nil || vn == nil {
				continue
			}
			k, ok := d.scalar(kn, path)
			if !ok {
				continue
			}
			kp := path + "." + k
			if prev, dup := seen[k]; dup {
				d.fail(kn.Line, kp, ErrConflict, "already set on line %d", prev)
				continue
			}
			seen[k] = kn.Line
			d.lines[kp] = kn.Line
			val, ok := d.scalar(vn, kp)
			if !ok {
				continue
			}
			m.SetMapIndex(reflect.ValueOf(k), reflect.ValueOf(val))
		}
		if m.Len() > 0 {
			v.Set(m)
		}
	default:
		d.fail(n.Line, path, ErrSyntax, "unsupported setting")
	}
}

func parseBool(s string) (bool, bool) {
	switch strings.ToLower(s) {
	case "true", "yes", "on", "y":
		return true, true
	case "false", "no", "off", "n":
		return false, true
	}
	return false, false
}

// parseStaticToken parses "role[,role...]:token". The reason never
// contains the token.
func parseStaticToken(s string) (StaticToken, string) {
	roles, tok, ok := strings.Cut(s, ":")
	if !ok || strings.TrimSpace(tok) == "" {
		return StaticToken{}, `expected "role[,role...]:token"`
	}
	var rs []string
	for r := range strings.SplitSeq(roles, ",") {
		r = strings.ToLower(strings.TrimSpace(r))
		if !oneOf(r, tokenRoles) {
			return StaticToken{}, fmt.Sprintf("role %s is not one of %s", quote(r), strings.Join(tokenRoles, ", "))
		}
		rs = append(rs, r)
	}
	return StaticToken{Roles: rs, Token: NewSecret(strings.TrimSpace(tok))}, ""
}

func oneOf(s string, list []string) bool {
	for _, x := range list {
		if s == x {
			return true
		}
	}
	return false
}
