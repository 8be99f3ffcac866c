package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"

	"github.com/sallyport/sallyport/internal/cli"
)

func main() {
	err := cli.Run(context.Background(), os.Args[1:], os.Stdin, os.Stdout, os.Stderr)
	var exit *exec.ExitError
	switch {
	case err == nil:
	case errors.As(err, &exit):
		// The ssh client's own exit status, its message already shown.
		os.Exit(exit.ExitCode())
	default:
		fmt.Fprintln(os.Stderr, "sallyport:", err)
		os.Exit(1)
	}
}
