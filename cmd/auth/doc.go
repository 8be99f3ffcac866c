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
//	auth start --config /etc/sallyport.yaml [--pid-file F] [--diag-addr A] [--drain-timeout 10s]
//
// start serves until SIGTERM or SIGINT (then shuts down gracefully). With
// --config (or $SALLYPORT_CONFIG) it runs the file's auth_service section
// (package config): listen_addr, cluster_name, public_addr (certificate
// names), sallyport.data_dir, sallyport.storage.uri and audit_events_uri,
// sallyport.log and sallyport.diag_addr; flags given explicitly win over
// the file. Static tokens (auth_service.tokens) are not supported yet and
// are ignored with a warning. The
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
// SIGTERM or SIGINT: /readyz turns 503; stop accepting, end watch
// streams, wait up to --drain-timeout for running calls, exit 0. SIGHUP
// is logged (the service keeps running). --diag-addr serves /healthz,
// /readyz and /metrics (Prometheus text).
package main
