package postgres_test

import (
	"errors"
	"net/url"
	"testing"

	"github.com/sallyport/sallyport/backend"
	"github.com/sallyport/sallyport/backend/postgres"
)

// FuzzParseURI: ParseURI never panics, fails only with ErrInvalid, and
// never passes the driver's own parameters on to pgx.
func FuzzParseURI(f *testing.F) {
	for _, s := range []string{
		"postgres://u:p@h:5432/db?sslmode=disable",
		"postgresql://h/db?schema=s&gap_timeout=2s&sweep_batch=7",
		"postgres://h/db?poll_interval=-1s",
		"postgres://h/db?event_retention=xyz&schema=%00",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		u, err := url.Parse(s)
		if err != nil {
			return
		}
		cfg, err := postgres.ParseURI(u)
		if err != nil {
			if !errors.Is(err, backend.ErrInvalid) {
				t.Fatalf("ParseURI(%q): error %v does not wrap ErrInvalid", s, err)
			}
			return
		}
		cu, err := url.Parse(cfg.ConnString)
		if err != nil {
			t.Fatalf("ParseURI(%q): connection string %q does not parse: %v", s, cfg.ConnString, err)
		}
		for _, p := range []string{"schema", "poll_interval", "gap_timeout", "sweep_interval", "sweep_batch", "event_retention"} {
			if cu.Query().Has(p) {
				t.Fatalf("ParseURI(%q): %s left in %q", s, p, cfg.ConnString)
			}
		}
		if cfg.PollInterval < 0 || cfg.GapTimeout < 0 || cfg.SweepBatch < 0 {
			t.Fatalf("ParseURI(%q): %+v", s, cfg)
		}
	})
}
