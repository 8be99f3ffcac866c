package agent_test

import (
	"context"
	"fmt"
	"net"
	"time"

	"github.com/sallyport/sallyport/agent"
	"github.com/sallyport/sallyport/authapi"
)

// An agent joined directly to the Auth Service serving SSH on its own
// port (direct mode); a user's certificate logs in.
func ExampleNew() {
	auth, stop, err := newAuth() // an Auth Service on a memory backend
	if err != nil {
		panic(err)
	}
	defer stop()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	token, _ := auth.token(ctx, authapi.RoleAgent)

	l, _ := net.Listen("tcp", "127.0.0.1:0") // 3022 in production
	a, err := agent.New(ctx, &agent.Config{
		AuthAddrs:      []string{auth.addr},
		JoinToken:      token,
		CAPin:          auth.srv.CAPin(),
		NodeName:       "db01",
		Labels:         map[string]string{"env": "prod"},
		DirectListener: l,
	})
	if err != nil {
		panic(err)
	}
	go a.Serve(ctx)
	defer a.Close()

	user, _ := auth.loginUser(ctx, "root")
	out, err := sshRun(user, l.Addr().String(), "db01", "root", "echo hello from $(whoami)")
	fmt.Print(out, err)
	// Output: hello from root
	// <nil>
}
