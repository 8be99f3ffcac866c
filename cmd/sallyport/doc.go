// Command sallyport is the client of a sallyport cluster.
//
//	sallyport login --proxy proxy.example.com:443 --user alice [--password-file F] [--otp 123456] [--ca-pin sha256:...]
//	sallyport ls
//	sallyport ssh [LOGIN@]NODE [COMMAND...]
//	sallyport status
//	sallyport logout [--all]
//
// login asks the proxy's /webapi/login for short-lived certificates and
// writes them, with an OpenSSH configuration snippet, to
// ~/.sallyport/keys/<proxy>/; it prints the Include line to add to
// ~/.ssh/config, after which the stock client works: "ssh node.cluster".
// The password comes from --password-file, or a prompt (a line of standard
// input when it is not a terminal). ls lists the cluster's nodes; ssh runs
// the OpenSSH client with the snippet. HTTPS_PROXY and NO_PROXY apply to
// every connection. See package internal/cli for the files and errors.
package main
