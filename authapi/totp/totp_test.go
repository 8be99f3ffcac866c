package totp

import (
	"crypto/sha1"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"
)

// TestRFC6238 checks the test vectors of RFC 6238 Appendix B.
func TestRFC6238(t *testing.T) {
	seed20 := []byte("12345678901234567890")
	seed32 := []byte("12345678901234567890123456789012")
	seed64 := []byte("1234567890123456789012345678901234567890123456789012345678901234")
	vectors := []struct {
		unix       int64
		sha1, s256 string
		s512       string
	}{
		{59, "94287082", "46119246", "90693936"},
		{1111111109, "07081804", "68084774", "25091201"},
		{1111111111, "14050471", "67062674", "99943326"},
		{1234567890, "89005924", "91819424", "93441116"},
		{2000000000, "69279037", "90698825", "38618901"},
		{20000000000, "65353130", "77737706", "47863826"},
	}
	for _, v := range vectors {
		for _, alg := range []struct {
			a    Algorithm
			key  []byte
			want string
		}{{SHA1, seed20, v.sha1}, {SHA256, seed32, v.s256}, {SHA512, seed64, v.s512}} {
			t.Run(fmt.Sprintf("%v/%d", alg.a, v.unix), func(t *testing.T) {
				cfg := Config{Algorithm: alg.a, Digits: 8}
				got, err := cfg.Code(alg.key, time.Unix(v.unix, 0))
				if err != nil {
					t.Fatal(err)
				}
				if got != alg.want {
					t.Fatalf("code = %s, want %s", got, alg.want)
				}
				ctr, ok, err := cfg.Validate(alg.key, alg.want, time.Unix(v.unix, 0), 0)
				if err != nil || !ok || ctr != uint64(v.unix/30) {
					t.Fatalf("Validate = %d, %v, %v", ctr, ok, err)
				}
			})
		}
	}
}

// TestRFC4226 checks the HOTP vectors of RFC 4226 Appendix D.
func TestRFC4226(t *testing.T) {
	want := []string{"755224", "287082", "359152", "969429", "338314", "254676", "287922", "162583", "399871", "520489"}
	for i, w := range want {
		if got := HOTP(sha1.New, []byte("12345678901234567890"), uint64(i), 6); got != w {
			t.Errorf("HOTP(%d) = %s, want %s", i, got, w)
		}
	}
}

func TestValidate(t *testing.T) {
	key := []byte("12345678901234567890")
	now := time.Unix(1111111111, 0)
	var cfg Config
	code := func(at time.Time) string {
		c, err := cfg.Code(key, at)
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	cases := []struct {
		name      string
		code      string
		notBefore uint64
		want      bool
	}{
		{"current", code(now), 0, true},
		{"previous period within skew", code(now.Add(-30 * time.Second)), 0, true},
		{"next period within skew", code(now.Add(30 * time.Second)), 0, true},
		{"two periods old", code(now.Add(-60 * time.Second)), 0, false},
		{"wrong length", "12345", 0, false},
		{"garbage", "abcdef", 0, false},
		{"replay refused", code(now), uint64(now.Unix()/30) + 1, false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, ok, err := cfg.Validate(key, tc.code, now, tc.notBefore)
			if err != nil {
				t.Fatal(err)
			}
			if ok != tc.want {
				t.Fatalf("Validate(%q) = %v, want %v", tc.code, ok, tc.want)
			}
		})
	}
}

func TestSecret(t *testing.T) {
	s := NewSecret()
	k, err := DecodeSecret(strings.ToLower(s))
	if err != nil || len(k) != 20 {
		t.Fatalf("DecodeSecret(NewSecret()) = %d bytes, %v", len(k), err)
	}
	for _, bad := range []string{"", "!!!!", "GEZDGNBV"} {
		if _, err := DecodeSecret(bad); !errors.Is(err, ErrInvalidSecret) {
			t.Errorf("DecodeSecret(%q) = %v, want ErrInvalidSecret", bad, err)
		}
	}
	if _, err := (Config{Digits: 4}).Code(k, time.Now()); !errors.Is(err, ErrInvalidConfig) {
		t.Errorf("Digits 4: %v", err)
	}
	u := Config{}.URL("sallyport", "alice", s)
	if !strings.HasPrefix(u, "otpauth://totp/sallyport:alice?") || !strings.Contains(u, "secret="+s) {
		t.Errorf("URL = %s", u)
	}
}

func FuzzDecodeSecret(f *testing.F) {
	f.Add("GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ")
	f.Add("gezd gnbv gy3t qojq")
	f.Add("====")
	f.Fuzz(func(t *testing.T, s string) {
		k, err := DecodeSecret(s)
		if err != nil {
			return
		}
		// Round trip: the canonical encoding decodes to the same key.
		k2, err := DecodeSecret(b32.EncodeToString(k))
		if err != nil || string(k2) != string(k) {
			t.Fatalf("round trip of %q failed: %v", s, err)
		}
	})
}

func ExampleConfig_Code() {
	key := []byte("12345678901234567890")
	code, _ := Config{Digits: 8}.Code(key, time.Unix(59, 0))
	fmt.Println(code)
	// Output: 94287082
}
