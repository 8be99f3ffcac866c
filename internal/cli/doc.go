// Package cli is the sallyport client command line (cmd/sallyport) as a
// package, so that programs such as examples/allinone can run the same
// code path: login through a proxy's /webapi/login, the files and the
// OpenSSH configuration snippet a login leaves, ls, ssh, status and
// logout.
//
//	err := cli.Run(ctx, []string{"login", "--proxy", "127.0.0.1:3080", "--user", "alice",
//		"--password-file", pwFile, "--ca-pin", pin}, os.Stdin, os.Stdout, os.Stderr)
//
// # Files
//
// A login writes $SALLYPORT_HOME/keys/<proxy>/ (default ~/.sallyport):
// id_ed25519 and id_ed25519-cert.pub (the SSH key and user certificate),
// tls.crt and tls.key (the X.509 user certificate), cas.pem (the
// cluster's host CAs), known_hosts ("@cert-authority *.<cluster>,<proxy>"
// lines), ssh_config (the snippet: every "*.<cluster>" host goes through
// the proxy with ProxyJump), identity.json (the same keys in the
// authapi.Credentials format) and profile.json; and $SALLYPORT_HOME/current
// names the current login.
//
// # Network
//
// Every connection is dialed with proxyconnect, so HTTPS_PROXY and
// NO_PROXY apply. The proxy's web certificate is verified against the
// system roots, then against the cluster's host CAs saved by an earlier
// login or pinned with --ca-pin; --insecure skips the check.
//
// # Errors
//
// Errors say what to do next: an expired certificate or a missing login
// asks for "sallyport login", an unreachable proxy points at the address
// and HTTPS_PROXY/NO_PROXY, an untrusted certificate at --ca-pin. ssh
// returns the *exec.ExitError of the OpenSSH client, whose exit code the
// command passes on.
//
// # Cancellation
//
// Run's ctx bounds every network call and the ssh client it starts.
package cli
