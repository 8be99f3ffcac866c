package sqlite_test

import (
	"bufio"
	"context"
	"database/sql"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/sallyport/sallyport/backend"
	"github.com/sallyport/sallyport/backend/sqlite"
)

// crashEnv names the database a re-executed test binary writes to until
// it is killed.
const crashEnv = "SALLYPORT_SQLITE_CRASH_CHILD"

// crashChild runs the child side of TestDurableAfterKill when the
// environment asks for it: it writes items and prints the key of each
// write that returned, until it is killed. It reports whether it ran.
func crashChild() bool {
	path := os.Getenv(crashEnv)
	if path == "" {
		return false
	}
	ctx := context.Background()
	b, err := sqlite.Open(ctx, sqlite.Config{Path: path})
	if err != nil {
		fmt.Fprintln(os.Stderr, "child:", err)
		os.Exit(2)
	}
	value := strings.Repeat("v", 300)
	for i := 0; ; i++ {
		key := fmt.Appendf(nil, "/crash/%08d", i)
		if i%3 == 2 {
			// Every third write is an atomic write of two keys.
			_, err = b.AtomicWrite(ctx, []backend.ConditionalAction{
				{Key: key, Condition: backend.Condition{Kind: backend.NotExists}, Action: backend.ActionPut, Item: backend.Item{Value: []byte(value)}},
				{Key: append(key, "/pair"...), Action: backend.ActionPut, Item: backend.Item{Value: []byte(value)}},
			})
		} else {
			_, err = b.Put(ctx, backend.Item{Key: key, Value: []byte(value)})
		}
		if err != nil {
			fmt.Fprintln(os.Stderr, "child:", err)
			os.Exit(2)
		}
		// os.Stdout is unbuffered: the line leaves the process now.
		fmt.Printf("%s\n", key)
	}
}

// TestDurableAfterKill kills a writing process with SIGKILL and checks
// that every write it acknowledged is in the file afterwards. Meanwhile
// this process watches the file, and must see every acknowledged write.
func TestDurableAfterKill(t *testing.T) {
	path := filepath.Join(t.TempDir(), "state.db")
	watching := open(t, testConfig(path))
	defer watching.Close()
	w, err := watching.NewWatcher(context.Background(), backend.Watch{Prefixes: [][]byte{[]byte("/crash/")}, QueueSize: 100000})
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	if ev := <-w.Events(); ev.Type != backend.OpInit {
		t.Fatalf("first event %v", ev.Type)
	}
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), crashEnv+"="+path)
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	var acked []string
	sc := bufio.NewScanner(out)
	killed := false
	timer := time.AfterFunc(20*time.Second, func() { cmd.Process.Kill() })
	defer timer.Stop()
	for sc.Scan() {
		acked = append(acked, sc.Text())
		if len(acked) == 400 && !killed {
			// Kill in the middle of the stream of writes.
			if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
				t.Fatal(err)
			}
			killed = true
		}
	}
	err = cmd.Wait()
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.Sys().(syscall.WaitStatus).Signal() != syscall.SIGKILL {
		t.Fatalf("child did not die by SIGKILL: %v\nstderr: %s", err, stderr.String())
	}
	if len(acked) < 400 {
		t.Fatalf("child acknowledged only %d writes\nstderr: %s", len(acked), stderr.String())
	}

	// The other process's writes reached this process's watcher, in order.
	seen := map[string]bool{}
	deadline := time.After(10 * time.Second)
	var lastRev int64
	for _, key := range acked {
		for !seen[key] {
			select {
			case ev, ok := <-w.Events():
				if !ok {
					t.Fatalf("watcher stopped: %v", w.Err())
				}
				if ev.Item.Revision < lastRev {
					t.Fatalf("revision %d after %d", ev.Item.Revision, lastRev)
				}
				lastRev = ev.Item.Revision
				seen[string(ev.Item.Key)] = true
			case <-deadline:
				t.Fatalf("the watcher of another process did not see acknowledged write %s", key)
			}
		}
	}

	b := open(t, sqlite.Config{Path: path})
	defer b.Close()
	ctx := context.Background()
	for i, key := range acked {
		it, err := b.Get(ctx, []byte(key))
		if err != nil {
			t.Fatalf("acknowledged write %d (%s) lost after SIGKILL: %v", i, key, err)
		}
		if len(it.Value) != 300 {
			t.Fatalf("%s: value of %d bytes", key, len(it.Value))
		}
		if i%3 == 2 {
			if _, err := b.Get(ctx, []byte(key+"/pair")); err != nil {
				t.Fatalf("second half of acknowledged atomic write %s lost: %v", key, err)
			}
		}
	}
	// Nothing beyond the acknowledged writes is half-applied: every
	// atomic write is there with both keys or not at all.
	res, err := b.GetRange(ctx, []byte("/crash/"), nil, 100000)
	if err != nil {
		t.Fatal(err)
	}
	keys := map[string]bool{}
	for _, it := range res.Items {
		keys[string(it.Key)] = true
	}
	for k := range keys {
		if pair, ok := strings.CutSuffix(k, "/pair"); ok && !keys[pair] {
			t.Fatalf("half an atomic write survived: %s without %s", k, pair)
		}
	}
	// The revision counter moved past every surviving item: a new write
	// gets a revision above all of them.
	var maxRev int64
	for _, it := range res.Items {
		maxRev = max(maxRev, it.Revision)
	}
	rev, err := b.Put(ctx, backend.Item{Key: []byte("/after"), Value: []byte("x")})
	if err != nil {
		t.Fatal(err)
	}
	if rev <= maxRev {
		t.Fatalf("revision after restart %d, not above %d", rev, maxRev)
	}
	db, err := sql.Open("sqlite", path)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var check string
	if err := db.QueryRow(`PRAGMA integrity_check`).Scan(&check); err != nil || check != "ok" {
		t.Fatalf("integrity check: %q %v", check, err)
	}
	t.Logf("child acknowledged %d writes before SIGKILL; all %d present and watched from this process, %d items in the file", len(acked), len(acked), len(res.Items))
}
