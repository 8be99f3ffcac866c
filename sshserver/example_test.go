package sshserver_test

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"errors"
	"fmt"
	"net"
	"os/user"
	"slices"
	"strings"
	"sync"

	"golang.org/x/crypto/ssh"

	"github.com/sallyport/sallyport/sshserver"
)

func newKey() ssh.Signer {
	_, priv, _ := ed25519.GenerateKey(rand.Reader)
	s, _ := ssh.NewSignerFromKey(priv)
	return s
}

// Example serves SSH on loopback with a host certificate, accepts a user
// certificate, lets a role check refuse one command, and prints the audit
// trail.
func Example() {
	hostCA, userCA, nodeKey, userKey := newKey(), newKey(), newKey(), newKey()
	me, _ := user.Current()

	// Certificates, as the Auth Service would issue them.
	hostCert := &ssh.Certificate{Key: nodeKey.PublicKey(), CertType: ssh.HostCert, KeyId: "node-1",
		ValidPrincipals: []string{"node-1"}, ValidBefore: ssh.CertTimeInfinity}
	_ = hostCert.SignCert(rand.Reader, hostCA)
	userCert := &ssh.Certificate{Key: userKey.PublicKey(), CertType: ssh.UserCert, KeyId: "alice",
		ValidPrincipals: []string{me.Username}, ValidBefore: ssh.CertTimeInfinity,
		Permissions: ssh.Permissions{Extensions: map[string]string{sshserver.ExtRoles: "dev"}}}
	_ = userCert.SignCert(rand.Reader, userCA)

	var mu sync.Mutex
	var trail []string
	srv, err := sshserver.New(&sshserver.Config{
		HostKey:  nodeKey,
		HostCert: hostCert,
		UserCAs:  []ssh.PublicKey{userCA.PublicKey()},
		NodeName: "node-1",
		Authorize: func(ctx context.Context, req sshserver.AccessRequest) error {
			if strings.HasPrefix(req.Command, "sudo") && !slices.Contains(req.Roles, "admin") {
				return errors.New("sudo needs role admin")
			}
			return nil
		},
		Audit: func(ctx context.Context, ev sshserver.Event) {
			mu.Lock()
			defer mu.Unlock()
			trail = append(trail, fmt.Sprintf("%s user=%s command=%q", ev.Type, ev.User, ev.Command))
		},
	})
	if err != nil {
		fmt.Println(err)
		return
	}
	l, _ := net.Listen("tcp", "127.0.0.1:0")
	go srv.Serve(l)

	// A client that verifies the host certificate through the host CA.
	certSigner, _ := ssh.NewCertSigner(userCert, userKey)
	hostCheck := &ssh.CertChecker{IsHostAuthority: func(auth ssh.PublicKey, _ string) bool {
		return string(auth.Marshal()) == string(hostCA.PublicKey().Marshal())
	}}
	// The host name checked against the host certificate is "node-1".
	nc, err := net.Dial("tcp", l.Addr().String())
	if err != nil {
		fmt.Println(err)
		return
	}
	conn, chans, reqs, err := ssh.NewClientConn(nc, "node-1:22", &ssh.ClientConfig{
		User:              me.Username,
		Auth:              []ssh.AuthMethod{ssh.PublicKeys(certSigner)},
		HostKeyCallback:   hostCheck.CheckHostKey,
		HostKeyAlgorithms: []string{ssh.CertAlgoED25519v01},
	})
	if err != nil {
		fmt.Println(err)
		return
	}
	client := ssh.NewClient(conn, chans, reqs)
	for _, cmd := range []string{"echo hello from the node", "sudo true"} {
		sess, _ := client.NewSession()
		out, err := sess.Output(cmd)
		fmt.Printf("%q: %q, error: %v\n", cmd, out, err != nil)
	}
	client.Close()
	srv.Close() // waits for the sessions' goroutines: the trail is complete

	for _, line := range trail {
		fmt.Println(line)
	}
	// Output:
	// "echo hello from the node": "hello from the node\n", error: false
	// "sudo true": "", error: true
	// session.start user=alice command="echo hello from the node"
	// exec user=alice command="echo hello from the node"
	// session.end user=alice command="echo hello from the node"
	// access.denied user=alice command="sudo true"
}
