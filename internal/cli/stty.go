package cli

import (
	"os"
	"os/exec"
)

// stty changes the terminal mode of f (to hide the password as it is typed).
func stty(f *os.File, mode string) error {
	cmd := exec.Command("stty", mode)
	cmd.Stdin = f
	return cmd.Run()
}
