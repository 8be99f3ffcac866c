// Package testpki makes throwaway certificate authorities and leaf
// certificates for tests.
//
// Every certificate is ECDSA P-256, valid from an hour ago for a day, and
// lives only in memory unless written out with [WriteFiles]. Helpers take a
// [testing.TB] and fail the test on any error, so callers need no error
// handling:
//
//	ca := testpki.NewCA(t, "router test CA")
//	srv := &tls.Config{Certificates: []tls.Certificate{ca.Leaf(t, "localhost", "127.0.0.1")}}
//	cli := &tls.Config{RootCAs: ca.Pool}
//
// # Lifecycle
//
// A [CA] needs no closing; it is garbage once the test drops it. Files
// written by [WriteFiles] go into the directory the caller names
// (usually t.TempDir(), removed at cleanup).
//
// # Errors
//
// There are none to handle: a failure to generate a key or sign a
// certificate calls t.Fatal.
//
// # Cancellation
//
// Nothing blocks; there is nothing to cancel.
package testpki
