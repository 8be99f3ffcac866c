package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
)

const usage = `usage: sallyport COMMAND [flags]

  login  --proxy HOST:PORT --user NAME [--password-file F] [--otp CODE] [--ca-pin PIN | --insecure]
  ls                      nodes of the cluster
  ssh    [LOGIN@]NODE [COMMAND...]
  status                  the current login
  logout [--proxy HOST:PORT | --all]

sallyport COMMAND -h shows the flags of a command. Files live in
$SALLYPORT_HOME (default ~/.sallyport).`

// Run runs the command line args (without the program name).
func Run(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		fmt.Fprintln(stderr, usage)
		return errors.New("missing command")
	}
	cmd, rest := args[0], args[1:]
	switch cmd {
	case "login":
		return login(ctx, rest, stdin, stdout, stderr)
	case "ls":
		return ls(ctx, rest, stdout, stderr)
	case "ssh":
		return sshCmd(ctx, rest, stdin, stdout, stderr)
	case "status":
		return statusCmd(rest, stdout, stderr)
	case "logout":
		return logout(rest, stdout, stderr)
	case "-h", "--help", "help":
		fmt.Fprintln(stdout, usage)
		return nil
	}
	return fmt.Errorf("unknown command %q\n%s", cmd, usage)
}
