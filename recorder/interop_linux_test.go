package recorder_test

import (
	"bytes"
	"context"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/sallyport/sallyport/internal/testservice"
	"github.com/sallyport/sallyport/recorder"
)

// The asciinema CLI reads what the recorder writes: `asciinema cat` of an
// exported recording prints the session's output.
func TestAsciinemaCLIPlaysRecording(t *testing.T) {
	bin := testservice.Bin(t, "asciinema")
	store := newFileStore(t)
	sp := openSpool(t, recorder.Config{Store: store, FlushDelay: time.Millisecond})
	rec, err := sp.NewSession(context.Background(), recorder.Meta{User: "alice", Node: "db-1", Login: "root", Term: "xterm-256color"})
	if err != nil {
		t.Fatal(err)
	}
	writes := []string{
		"$ ls --color\r\n",
		"\x1b[01;34mdir\x1b[0m  \"quoted\" back\\slash\ttab\r\n",
		"日本語 caf\xc3", "\xa9 😀\r\n", // a character split across writes
		"bad \xff byte\r\n",
	}
	for i, w := range writes {
		io.WriteString(rec, w)
		if i == 1 {
			rec.Resize(120, 40)
			rec.Mark("listing")
		}
		time.Sleep(3 * time.Millisecond)
	}
	rec.Close()
	shutdown(t, sp)

	cast := filepath.Join(t.TempDir(), "session.cast")
	f, err := os.Create(cast)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := recorder.Export(context.Background(), f, store, rec.Name()); err != nil {
		t.Fatal(err)
	}
	f.Close()
	// asciinema opens /dev/tty: give it a controlling terminal.
	master, slave := openPTY(t)
	defer master.Close()
	defer slave.Close()
	cmd := exec.Command(bin, "cat", cast)
	cmd.Stdin = slave
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true, Setctty: true, Ctty: 0}
	cmd.Env = append(os.Environ(), "HOME="+t.TempDir(), "ASCIINEMA_CONFIG_HOME="+t.TempDir())
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("asciinema cat: %v\n%s", err, stderr.String())
	}
	want := "$ ls --color\r\n\x1b[01;34mdir\x1b[0m  \"quoted\" back\\slash\ttab\r\n日本語 café 😀\r\nbad \uFFFD byte\r\n"
	if string(out) != want {
		t.Errorf("asciinema cat printed %q\nwant %q", out, want)
	}
}
