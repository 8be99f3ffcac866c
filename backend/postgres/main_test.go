package postgres_test

import (
	"fmt"
	"os"
	"strconv"
	"testing"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) {
	// TestTwoProcesses runs this binary again as a writer.
	if url := os.Getenv("SALLYPORT_PG_WRITER"); url != "" {
		n, _ := strconv.Atoi(os.Getenv("SALLYPORT_PG_WRITES"))
		if err := writerProcess(url, n); err != nil {
			fmt.Fprintln(os.Stderr, "writer:", err)
			os.Exit(1)
		}
		os.Exit(0)
	}
	goleak.VerifyTestMain(m,
		// pgxpool starts this goroutine when it destroys a broken or
		// cancelled connection; it sleeps 500ms, pokes the pool's health
		// check (a no-op after Close) and ends. It outlives Pool.Close by
		// design and cannot be waited for.
		goleak.IgnoreAnyFunction("github.com/jackc/pgx/v5/pgxpool.(*Pool).triggerHealthCheck.func1"),
	)
}
