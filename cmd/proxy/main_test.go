package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"go.uber.org/goleak"
)

// bins are the binaries built once for the process tests.
var bins struct{ dir, auth, proxy, agent, cli string }

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "sallyport-bins")
	if err != nil {
		panic(err)
	}
	bins.dir = dir
	bins.auth = filepath.Join(dir, "auth")
	bins.proxy = filepath.Join(dir, "proxy")
	bins.agent = filepath.Join(dir, "agent")
	bins.cli = filepath.Join(dir, "sallyport")
	for _, b := range []struct{ out, pkg string }{{bins.auth, "../auth"}, {bins.proxy, "."}, {bins.agent, "../agent"}, {bins.cli, "../sallyport"}} {
		args := []string{"build", "-o", b.out}
		if raceBuild {
			args = append(args, "-race")
		}
		if out, err := exec.Command("go", append(args, b.pkg)...).CombinedOutput(); err != nil {
			os.RemoveAll(dir)
			panic("go build " + b.pkg + ": " + err.Error() + "\n" + string(out))
		}
	}
	code := func() int {
		defer os.RemoveAll(dir)
		return m.Run()
	}()
	if code == 0 {
		if err := goleak.Find(); err != nil {
			os.Stderr.WriteString("goleak: " + err.Error() + "\n")
			code = 1
		}
	}
	os.Exit(code)
}
