// Command auth runs the sallyport Auth Service, and administers it.
//
//	auth start [--listen 127.0.0.1:3025] [--data-dir DIR] [--backend URI] [--cluster-name NAME]
//	auth tokens add --roles agent[,proxy] [--ttl 30m] [--uses 1]
//	auth tokens ls | auth tokens rm ID
//	auth users add NAME --roles a,b [--password-file F | --password-stdin] [--totp]
//	auth users ls | auth users rm NAME
//	auth roles add FILE.yaml|FILE.json | auth roles ls | auth roles rm NAME
//	auth sign --kind admin|user|agent|proxy|auth --name NAME [--ttl 720h] --out FILE
//	auth events [--since 24h] [--type TYPE]
//
// start serves until SIGTERM or SIGINT (then shuts down gracefully). The
// backend defaults to SQLite in the data directory. On start it writes the
// data directory's admin identity (admin.json, mode 0600) when it is
// missing or close to expiry, and the cluster's CA pin (ca-pin); the admin
// subcommands use that identity (--identity) to reach --auth-server.
//
// # Identity files
//
// admin.json (and the files `auth sign` writes) hold JSON with the PEM
// certificate and key, the SSH certificate and key, and the cluster's CA
// certificates (see authapi.Credentials). Keep them private: they are
// credentials.
//
// # Audit
//
// --audit auto writes audit events to a table of their own
// (sallyport_audit_events) in the SQLite file or PostgreSQL database of
// --backend; other backends keep them as backend keys. --audit
// file:///path.jsonl writes JSON lines instead.
//
// # Lifecycle
//
// SIGTERM or SIGINT: stop accepting, end watch streams, wait up to 10 s
// for running calls, exit 0.
package main
