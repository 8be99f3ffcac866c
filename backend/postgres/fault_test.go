package postgres_test

import (
	"testing"
	"time"

	"github.com/sallyport/sallyport/backend/backendtest"
	"github.com/sallyport/sallyport/backend/postgres"
	"github.com/sallyport/sallyport/internal/testservice"
)

// TestServerRestart takes the database away under running writers and a
// watcher, by a fast shutdown and by killing the server: operations fail
// while it is down, the watcher is broken with ErrWatchBroken, everything
// resumes by itself when it is back, and no acknowledged write is lost.
func TestServerRestart(t *testing.T) {
	tests := []struct {
		name string
		down func(pg *testservice.Postgres)
	}{
		{"fast shutdown", (*testservice.Postgres).Stop},
		{"kill", (*testservice.Postgres).Kill},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			pg := testservice.StartPostgres(t, nil)
			b := open(t, &postgres.Config{ConnString: pg.URL("postgres"), PollInterval: 200 * time.Millisecond})
			backendtest.FaultRun(t, backendtest.FaultConfig{Backend: b, Down: func() { tt.down(pg) }, Up: pg.Start})
		})
	}
}
