package config

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/url"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"time"

	"gopkg.in/yaml.v3"
)

// Marshal writes c as a configuration file that Parse reads back to an
// equal Config. Every section is written with its "enabled" key; other
// zero values are left out. Secrets given inline are written inline (the
// result is as sensitive as the input file); secrets read from files are
// written as their paths.
func Marshal(c *Config) ([]byte, error) {
	return encode(c, false)
}

// String returns the configuration as YAML with every secret replaced by
// "[redacted]" and passwords and query strings removed from URIs. It is
// what %v prints.
func (c Config) String() string {
	b, err := encode(&c, true)
	if err != nil {
		return "config: " + err.Error()
	}
	return string(b)
}

func encode(c *Config, redact bool) ([]byte, error) {
	root := encodeStruct(reflect.ValueOf(c).Elem(), redact)
	var buf bytes.Buffer
	enc := yaml.NewEncoder(&buf)
	enc.SetIndent(2)
	if err := enc.Encode(root); err != nil {
		return nil, err
	}
	if err := enc.Close(); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

func str(s string) *yaml.Node {
	return &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!str", Value: s}
}

func encodeStruct(v reflect.Value, redact bool) *yaml.Node {
	m := &yaml.Node{Kind: yaml.MappingNode}
	for _, f := range fieldsOf(v.Type()) {
		fv := v.Field(f.index)
		if fv.IsZero() && !f.present {
			continue
		}
		n := encodeValue(fv, f.check, redact)
		if n == nil {
			continue
		}
		m.Content = append(m.Content, str(f.key), n)
	}
	if len(m.Content) == 0 {
		return nil
	}
	return m
}

func encodeValue(v reflect.Value, check string, redact bool) *yaml.Node {
	t := v.Type()
	switch {
	case t == secretType:
		s := v.Interface().(Secret)
		if redact {
			return str(s.shown())
		}
		return str(s.raw())
	case t == durationType:
		return str(time.Duration(v.Int()).String())
	case t == staticTokenType:
		tok := v.Interface().(StaticToken)
		val := tok.Token.raw()
		if redact {
			val = redacted
		}
		return str(strings.Join(tok.Roles, ",") + ":" + val)
	case t.Kind() == reflect.String:
		s := v.String()
		if redact && strings.HasPrefix(check, "uri=") {
			s = redactURI(s)
		}
		return str(s)
	case t.Kind() == reflect.Bool:
		return &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!bool", Value: strconv.FormatBool(v.Bool())}
	case t.Kind() == reflect.Int:
		return &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!int", Value: strconv.FormatInt(v.Int(), 10)}
	case t.Kind() == reflect.Struct:
		return encodeStruct(v, redact)
	case t.Kind() == reflect.Slice:
		seq := &yaml.Node{Kind: yaml.SequenceNode}
		for i := range v.Len() {
			if n := encodeValue(v.Index(i), check, redact); n != nil {
				seq.Content = append(seq.Content, n)
			}
		}
		return seq
	case t.Kind() == reflect.Map:
		m := &yaml.Node{Kind: yaml.MappingNode}
		keys := make([]string, 0, v.Len())
		for _, k := range v.MapKeys() {
			keys = append(keys, k.String())
		}
		slices.Sort(keys)
		for _, k := range keys {
			m.Content = append(m.Content, str(k), str(v.MapIndex(reflect.ValueOf(k)).String()))
		}
		return m
	}
	return nil
}

// redactURI hides the password and query of a URI, which may hold
// credentials. Unparsable values are hidden entirely.
func redactURI(s string) string {
	if s == "" {
		return ""
	}
	u, err := url.Parse(s)
	if err != nil {
		return "[unparsable URI]"
	}
	if u.RawQuery != "" {
		u.RawQuery = "redacted"
	}
	if _, ok := u.User.Password(); ok {
		u.User = url.UserPassword(u.User.Username(), "redacted")
	}
	return u.String()
}

// String shows the storage settings with passwords and query strings
// removed from the URIs; %v and %+v print it.
func (s Storage) String() string {
	r := s.redacted()
	return fmt.Sprintf("{type:%s uri:%s audit_events_uri:%v audit_sessions_uri:%s}", r.Type, r.URI, r.AuditEventsURI, r.AuditSessionsURI)
}

// GoString is like String; %#v prints it.
func (s Storage) GoString() string { return s.String() }

// MarshalJSON writes the storage settings with redacted URIs.
func (s Storage) MarshalJSON() ([]byte, error) {
	type plain Storage
	return json.Marshal(plain(s.redacted()))
}

func (s Storage) redacted() Storage {
	r := s
	r.URI = redactURI(s.URI)
	r.AuditSessionsURI = redactURI(s.AuditSessionsURI)
	r.AuditEventsURI = nil
	for _, u := range s.AuditEventsURI {
		r.AuditEventsURI = append(r.AuditEventsURI, redactURI(u))
	}
	return r
}
