package azblob

import (
	"strconv"
	"testing"
)

// FuzzParseSize: parseSize never panics, accepts only non-negative counts,
// and a count it returns reads back the same as plain digits.
func FuzzParseSize(f *testing.F) {
	for _, s := range []string{"5M", "5MiB", "1G", "64K", "0", "123", "", "-1", "9999999999999G", "M", "1.5M", "08M"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		n, err := parseSize(s)
		if err != nil {
			return
		}
		if n < 0 {
			t.Fatalf("parseSize(%q) = %d", s, n)
		}
		back, err := parseSize(strconv.FormatInt(n, 10))
		if err != nil || back != n {
			t.Fatalf("parseSize(%q) = %d, but %d reads back as %d, %v", s, n, n, back, err)
		}
	})
}
