package recorder_test

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/sallyport/sallyport/recorder"
)

const crashChildEnv = "RECORDER_TEST_CRASH_CHILD_DIR"

var crashStart = time.Date(2026, 11, 21, 9, 0, 0, 0, time.UTC)

// crashChild records a session into the spool in dir until it is killed.
func crashChild(dir string) {
	fail := func(err error) {
		fmt.Println("ERROR", err)
		os.Exit(3)
	}
	ctx := context.Background()
	sp, err := recorder.Open(ctx, &recorder.Config{Dir: dir, CheckpointInterval: 20 * time.Millisecond})
	if err != nil {
		fail(err)
	}
	rec, err := sp.NewSession(ctx, recorder.Meta{ID: "crashed", User: "alice", Start: crashStart})
	if err != nil {
		fail(err)
	}
	i := 0
	for ; i < 100; i++ {
		fmt.Fprintf(rec, "line %d\r\n", i)
	}
	if err := rec.Resize(90, 30); err != nil {
		fail(err)
	}
	if err := rec.Checkpoint(); err != nil {
		fail(err)
	}
	fmt.Println("CHECKPOINTED", i)
	for ; ; i++ {
		fmt.Fprintf(rec, "line %d\r\n", i)
		time.Sleep(200 * time.Microsecond)
	}
}

func TestCrashRecovery(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "spool")
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), crashChildEnv+"="+dir)
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	line, err := bufio.NewReader(out).ReadString('\n')
	if err != nil || !strings.HasPrefix(line, "CHECKPOINTED ") {
		t.Fatalf("child said %q, %v", line, err)
	}
	// Let interval checkpoints happen, then kill mid-write.
	time.Sleep(300 * time.Millisecond)
	if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	cmd.Wait()

	active := filepath.Join(dir, "active", "2026", "11", "21", "crashed.cast.gz")
	fi, err := os.Stat(active)
	if err != nil {
		t.Fatalf("the killed child left no spool file: %v", err)
	}
	// Simulate a torn write after the last checkpoint as well.
	f, err := os.OpenFile(active, os.O_WRONLY|os.O_APPEND, 0)
	if err != nil {
		t.Fatal(err)
	}
	f.Write([]byte{0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 0xff, 0x12, 0x34, 0x56})
	f.Close()

	store := newFileStore(t)
	sp := openSpool(t, recorder.Config{Dir: dir, Store: store})
	if st := sp.Stats(); st.Recovered != 1 {
		t.Errorf("Recovered = %d, want 1", st.Recovered)
	}
	shutdown(t, sp)

	name := "2026/11/21/crashed.cast.gz"
	hdr, evs := readEvents(t, store, name)
	if hdr.Session == nil || hdr.Session.ID != "crashed" || hdr.Session.User != "alice" {
		t.Errorf("header session = %+v", hdr.Session)
	}
	// The output is an unbroken prefix of what the child wrote.
	got := output(evs)
	n := 0
	for ; strings.HasPrefix(got, fmt.Sprintf("line %d\r\n", n)); n++ {
		got = got[len(fmt.Sprintf("line %d\r\n", n)):]
	}
	if got != "" {
		t.Fatalf("recovered output has a gap or garbage after line %d: %.60q", n-1, got)
	}
	if n < 100 {
		t.Fatalf("recovered %d lines; the explicit checkpoint covered 100", n)
	}
	if n == 100 {
		// TestCheckpointMakesFileValid covers interval checkpoints; here the
		// child may not have run in 300ms on a loaded machine.
		t.Logf("recovered exactly the explicit checkpoint; no interval checkpoint ran before the kill")
	}
	last := evs[len(evs)-1]
	end, recovered, ok := recorder.ParseEndMarker(last.Data)
	if last.Type != recorder.EventMarker || !ok || !recovered || !end.Equal(crashStart.Add(evs[len(evs)-2].Time)) {
		t.Errorf("last event %+v is not a recovered end marker at the last event's time", last)
	}
	var resized bool
	for _, e := range evs {
		resized = resized || e.Type == recorder.EventResize && e.Data == "90x30"
	}
	if !resized {
		t.Error("resize event lost")
	}
	t.Logf("child killed after %d bytes on disk; recovered %d lines", fi.Size(), n)
}

func TestRecoverNothingToRecover(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "spool")
	day := filepath.Join(dir, "active", "2026", "01", "01")
	if err := os.MkdirAll(day, 0o750); err != nil {
		t.Fatal(err)
	}
	os.WriteFile(filepath.Join(day, "empty.cast.gz"), nil, 0o640)
	os.WriteFile(filepath.Join(day, "garbage.cast.gz"), []byte("not gzip at all"), 0o640)
	store := newFileStore(t)
	sp := openSpool(t, recorder.Config{Dir: dir, Store: store})
	st := sp.Stats()
	if st.Damaged != 2 || st.Recovered != 0 || st.Pending != 0 {
		t.Errorf("stats = %+v", st)
	}
	if _, err := os.Stat(filepath.Join(dir, "damaged", "2026", "01", "01", "garbage.cast.gz")); err != nil {
		t.Errorf("damaged file not kept: %v", err)
	}
	if _, err := os.Stat(filepath.Join(day, "empty.cast.gz")); !os.IsNotExist(err) {
		t.Errorf("empty file not removed: %v", err)
	}
}
