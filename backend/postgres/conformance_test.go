package postgres_test

import (
	"testing"
	"time"

	"github.com/sallyport/sallyport/backend"
	"github.com/sallyport/sallyport/backend/backendtest"
	"github.com/sallyport/sallyport/backend/postgres"
	"github.com/sallyport/sallyport/internal/testservice"
)

// randomName returns a fresh identifier for a schema.
func randomName(prefix string) string { return backendtest.RandomName(prefix) }

// testConfig returns a Config with short intervals for tests.
func testConfig(url, schema string) *postgres.Config {
	return &postgres.Config{
		ConnString:    url,
		Schema:        schema,
		SweepInterval: 200 * time.Millisecond,
		PollInterval:  500 * time.Millisecond,
	}
}

func open(t testing.TB, cfg *postgres.Config) *postgres.Backend {
	t.Helper()
	return backendtest.Open(t, postgres.Open, cfg)
}

func TestConformance(t *testing.T) {
	url := testservice.PostgresDB(t)
	backendtest.Run(t, func(t testing.TB) backend.Backend {
		return open(t, testConfig(url, randomName("s_")))
	}, backendtest.Capabilities{
		Reopen: func(t testing.TB, b backend.Backend) backend.Backend {
			cfg := testConfig(url, "")
			// The second instance has its own pool over the same schema.
			cfg.Schema = b.(*postgres.Backend).Schema()
			return open(t, cfg)
		},
		ExpiryEventDelay: 3 * time.Second,
	})
}
