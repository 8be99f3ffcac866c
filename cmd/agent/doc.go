// Command agent runs a sallyport node (package agent): it joins the
// cluster with a token, serves SSH with its host certificate through
// reverse tunnels to the proxies (or on a direct port), records sessions
// and announces its labels.
//
//	agent -config /etc/sallyport.yaml [-pid-file F] [-drain-timeout 30s] [-join-timeout 2m]
//	      [-data-dir D] [-nodename N] [-token T] [-ca-pin P] [-proxy-server A] [-auth-server A] [-diag-addr A] [-log-severity S]
//
// # Configuration
//
// It runs the ssh_service section of the file (package config; the file
// is -config, else $SALLYPORT_CONFIG, else /etc/sallyport.yaml when it
// exists). Flags and SALLYPORT_* variables override the file. The mapping
// to agent.Config:
//
//	sallyport.proxy_server (or the proxy_service of the same file) ProxyAddr: reverse-tunnel mode
//	sallyport.auth_server without a proxy                          AuthAddrs, DirectAddr = ssh_service.listen_addr
//	sallyport.join_params.token_name, sallyport.ca_pin             JoinToken, CAPin (first pin)
//	sallyport.nodename, ssh_service.labels                         NodeName, Labels
//	ssh_service.public_addr (direct mode)                          PublicAddrs
//	ssh_service.session_recording node (default) / off             SSH.Recorder: a spool in <data_dir>/spool
//	sallyport.storage.audit_sessions_uri                           where recordings go (file:// is built in)
//
// Every connection to the proxy honours HTTPS_PROXY, HTTP_PROXY and
// NO_PROXY (package proxyconnect): set them in
// /etc/default/sallyport-agent for an agent behind a corporate proxy.
//
// # Joining
//
// The first start joins with the token (through the proxy's TLS
// passthrough to auth, or directly with auth_server) after checking the
// cluster CA against the pin, and saves the host identity to
// <data_dir>/agent/identity.json for later starts. The agent's
// certificates name it "<nodename>.<cluster>" as well, the name users type
// with ssh. A file that also enables auth_service may leave the token out
// (see cmd/proxy).
//
// # Signals
//
// SIGTERM or SIGINT drains: /readyz turns 503, the agent stops taking new
// SSH connections, lets running sessions finish for up to -drain-timeout,
// flushes recordings and exits 0. SIGHUP is logged (the agent has no
// keypair files to reload).
//
// # Diagnostics
//
// sallyport.diag_addr (or -diag-addr) serves /healthz, /readyz (ready once
// a tunnel is up) and /metrics (sallyport_agent_tunnels and process
// metrics).
package main
