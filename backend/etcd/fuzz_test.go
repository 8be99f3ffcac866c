package etcd

import (
	"bytes"
	"errors"
	"net/url"
	"testing"
	"time"

	"github.com/sallyport/sallyport/backend"
)

// FuzzValueEncoding: decode never panics on any stored bytes, and
// decode(encode(v, t)) gives v and t back.
func FuzzValueEncoding(f *testing.F) {
	f.Add([]byte("value"), int64(0))
	f.Add([]byte{}, int64(1700000000123456789))
	f.Add([]byte{1, 2, 3}, int64(-5))
	f.Fuzz(func(t *testing.T, v []byte, nanos int64) {
		decode(v) // arbitrary stored bytes
		var exp time.Time
		if nanos != 0 {
			exp = time.Unix(0, nanos)
		}
		got, gotExp := decode([]byte(encode(v, exp)))
		if !bytes.Equal(got, v) || !gotExp.Equal(exp) {
			t.Fatalf("round trip of %q, %v: %q, %v", v, exp, got, gotExp)
		}
	})
}

// FuzzParseURI: ParseURI never panics and fails only with ErrInvalid or a
// file error (ca, cert and key name files).
func FuzzParseURI(f *testing.F) {
	for _, s := range []string{
		"etcd://127.0.0.1:2379/p",
		"etcd://a:1,b:2/p?endpoints=c:3,https://d:4&tls=true",
		"etcd://u:pw@h:1/?dial_timeout=2s&request_timeout=x",
		"etcd:///p?cert=/nonexistent",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		u, err := url.Parse(s)
		if err != nil {
			return
		}
		q := u.Query()
		files := q.Get("ca") != "" || q.Get("cert") != "" || q.Get("key") != ""
		cfg, err := ParseURI(u)
		if err != nil {
			if !files && !errors.Is(err, backend.ErrInvalid) {
				t.Fatalf("ParseURI(%q): error %v does not wrap ErrInvalid", s, err)
			}
			return
		}
		if len(cfg.Endpoints) == 0 {
			t.Fatalf("ParseURI(%q): no endpoints and no error", s)
		}
	})
}
