// Command proxy runs the sallyport Proxy Service (package proxy): the web
// API, the SSH jump host for stock OpenSSH clients, the reverse-tunnel
// server for agents and the TLS passthrough to the Auth Service.
//
//	proxy -config /etc/sallyport.yaml [-pid-file F] [-drain-timeout 30s] [-join-timeout 2m]
//	      [-data-dir D] [-nodename N] [-token T] [-ca-pin P] [-auth-server A] [-diag-addr A] [-log-severity S]
//
// # Configuration
//
// It runs the proxy_service section of the file (package config; the file
// is -config, else $SALLYPORT_CONFIG, else /etc/sallyport.yaml when it
// exists). Flags and SALLYPORT_* variables override the file; errors name
// the file and line. The mapping to proxy.Config:
//
//	sallyport.auth_server (or the auth_service of the same file)  AuthAddrs
//	sallyport.join_params.token_name, sallyport.ca_pin            JoinToken, CAPin (first pin)
//	sallyport.nodename                                             NodeName
//	proxy_service.proxy_listener_mode                              Mode (multiplex, separate)
//	proxy_service.web_listen_addr, listen_addr, tunnel_listen_addr WebListenAddr, SSHListenAddr, TunnelListenAddr
//	proxy_service.public_addr                                      PublicAddrs
//	proxy_service.proxy_protocol on/off/unset                      ProxyProtocol required/off/accept
//	proxy_service.proxy_protocol_trusted_networks                  TrustedNetworks (unset: any source)
//	proxy_service.https_keypairs                                   TLSConfig (reloaded on SIGHUP)
//	auth_service.authentication.second_factor (same file)         SecondFactor
//
// Without https_keypairs the web port serves the proxy's host certificate,
// signed by the cluster's CA (clients pin it: sallyport login --ca-pin).
// proxy_service.acme is refused (not built in yet); peer_listen_addr,
// ssh_public_addr and tunnel_public_addr are accepted and not used yet.
//
// # Joining
//
// The first start joins the cluster with the token and saves the host
// identity to <data_dir>/proxy/identity.json; later starts reuse it while
// it is valid for more than an hour, so one-use tokens work. When the same
// file enables auth_service (a single-machine cluster) and gives no token,
// the proxy makes a one-use token with the admin identity the auth service
// writes to <data_dir>/admin.json.
//
// # Signals
//
// SIGHUP reads https_keypairs again; the next TLS handshake uses the new
// certificate and open connections are untouched (a file that does not
// parse leaves the old certificate in place). SIGTERM or SIGINT drains:
// /readyz turns 503, the proxy stops accepting, lets web requests and SSH
// sessions finish for up to -drain-timeout, closes the rest and exits 0.
//
// # Diagnostics
//
// sallyport.diag_addr (or -diag-addr) serves /healthz, /readyz and
// /metrics (Prometheus text): sallyport_proxy_tunnels,
// sallyport_proxy_nodes, sallyport_tls_reloads_total,
// sallyport_tls_reload_errors_total and process metrics.
package main
