// Package config reads the YAML configuration file of the sallyport
// binaries (cmd/auth, cmd/proxy, cmd/agent), applies flag and environment
// overrides and defaults, and validates the result, reporting every
// problem with the file line, the key path and the reason:
//
//	sallyport.yaml:12: proxy_service.proxy_listener_mode: "multipex" is not one of multiplex, separate
//
// The file has the shape of the Teleport configuration reference: a
// common "sallyport:" section and one section per service. One file can
// describe a whole single-machine cluster (each binary runs its own
// section of it), or one instance of a high-availability pool.
//
// # Usage
//
//	fs := flag.NewFlagSet("proxy", flag.ExitOnError)
//	over := config.BindFlags(fs) // -config, -data-dir, -token, ...
//	fs.Parse(os.Args[1:])
//	cfg, err := config.Load("/etc/sallyport.yaml", over)
//	if err != nil {
//		return err // "file:line: key: reason"
//	}
//	if !cfg.Proxy.Enabled {
//		return errors.New("proxy_service is not enabled in the file")
//	}
//	// build library configs from cfg.Common and cfg.Proxy
//
// Parse reads a file from memory without looking at the environment;
// Marshal writes a Config back as YAML that parses to an equal Config;
// Config.String (and %v) shows the configuration with secrets redacted.
//
// # Lifecycle
//
// Load and Parse return a new *Config with every default filled in (so
// the fields can be used as they are) and nothing else to close. A
// Config is plain data: the caller may change it and call Validate
// again. Reload on SIGHUP is calling Load again and comparing.
//
// # Errors
//
// Every problem is an *Error with File, Line, Origin (flag or
// environment variable, when the value did not come from the file), Path
// and Reason; it wraps one of ErrSyntax, ErrUnknownKey, ErrInvalid,
// ErrMissing, ErrConflict or ErrSecretFile. When there are several, they
// are joined with errors.Join (errors.As finds the first). Decoding
// problems (syntax, unknown keys, malformed values) are reported before,
// and instead of, validation problems. A missing file wraps
// fs.ErrNotExist. Secret values never appear in errors.
//
// # Cancellation
//
// Nothing blocks except reading small local files; there is no context
// to cancel. Files are read with a size bound (MaxFileSize for the
// configuration, 64 KiB for a secret file).
//
// # Precedence
//
// Highest first: flags (BindFlags), environment variables, the file,
// defaults. Defaults derived from other settings (the storage URIs from
// data_dir, cluster_name from nodename) are computed after the
// overrides. Setting auth_server by flag or environment clears a
// proxy_server of a lower layer, and the other way round.
//
//	flag            environment              key
//	-config         SALLYPORT_CONFIG         (the file to read; -config wins, then the variable, then Load's path)
//	-data-dir       SALLYPORT_DATA_DIR       sallyport.data_dir (relative paths are made absolute)
//	-nodename       SALLYPORT_NODENAME       sallyport.nodename
//	-token          SALLYPORT_AUTH_TOKEN     sallyport.join_params.token_name (inline or /path/to/file)
//	-ca-pin         SALLYPORT_CA_PIN         sallyport.ca_pin (flag repeatable; comma-separated list)
//	-auth-server    SALLYPORT_AUTH_SERVER    sallyport.auth_server (flag repeatable; comma-separated list)
//	-proxy-server   SALLYPORT_PROXY_SERVER   sallyport.proxy_server
//	-diag-addr      SALLYPORT_DIAG_ADDR      sallyport.diag_addr
//	-log-severity   SALLYPORT_LOG_SEVERITY   sallyport.log.severity
//
// Empty flags and variables are ignored.
//
// # Secrets
//
// The join token (sallyport.join_params.token_name), static tokens
// (auth_service.tokens) and CA pins may be written inline or as an
// absolute path: a value that starts with "/" names a file whose
// content, trimmed of surrounding white space, is the value (a CA pin
// file may hold several pins, one per line). Load reads those files;
// after Parse call Config.ResolveSecrets. Secret values are held in the
// Secret type, which prints as "[redacted]" in every format, in slog and
// in JSON; Config.String also hides passwords and query strings of URIs.
// Marshal writes inline secrets inline and file secrets as their paths.
//
// # Services, enabled and joining
//
// A service section that is present in the file is enabled unless it
// says "enabled: no"; an absent section is disabled. cmd/auth runs
// auth_service (cfg.Auth), cmd/proxy runs proxy_service (cfg.Proxy),
// cmd/agent runs ssh_service (cfg.SSH); each refuses to start when its
// section is disabled.
//
// When auth_service is enabled in the same file, the proxy and SSH
// services reach it at its listen_addr (Config.AuthAddrs) and need no
// join token. Otherwise the instance joins (Config.Joining): it needs
// join_params.token_name and exactly one of auth_server or proxy_server;
// joining through auth_server also needs ca_pin, since the auth service
// presents a certificate of the cluster CA (through proxy_server the
// pin is optional: the proxy's web certificate may be publicly trusted).
//
// # File reference
//
// Keys, their defaults and meaning. Booleans accept true/false, yes/no
// and on/off. Addresses are host:port ("listen" addresses may omit the
// host, ":3080", and use port 0; public addresses may omit the port).
// Durations use Go syntax: 30s, 5m, 1h30m. A key that takes a list
// also takes a single value. Unknown keys are errors.
//
//	version: v3                  # file format; only v3; default v3
//
//	sallyport:                   # common to every service
//	  nodename: host-1           # name of this instance; default: the host name
//	  data_dir: /var/lib/sallyport  # local state (keys, certificates, SQLite); absolute; default /var/lib/sallyport
//	  join_params:               # how an instance without a local auth service joins
//	    token_name: /run/secrets/join-token  # join token, inline or a file path; synonym: token
//	    method: token            # join method; only "token"; default token
//	  ca_pin: sha256:<64 hex>    # CA pin(s), or file path(s) holding pins; list or single value; default none
//	  auth_server: auth.internal:3025  # auth service or its load balancer to join through; list or single value
//	  proxy_server: proxy.example.com:443  # proxy or its public load balancer to join through; exclusive with auth_server
//	  diag_addr: 127.0.0.1:3000  # diagnostics endpoint (health, readiness, metrics); default off
//	  ciphers: [aes128-gcm@openssh.com, aes256-gcm@openssh.com]  # SSH ciphers of the proxy and the node; default AES, GCM preferred
//	  log:
//	    severity: info           # debug | info | warn | error (upper case accepted); default info
//	    format: text             # text | json; default text
//	  storage:
//	    type: sqlite             # sqlite | postgres | etcd | memory; default: the scheme of uri, or sqlite
//	    uri: sqlite:///var/lib/sallyport/state.db  # backend; default sqlite://<data_dir>/state.db
//	                             #   postgres://user@host:5432/db?sslmode=verify-full  (also postgresql://)
//	                             #   etcd://host:2379[,host:2379...]
//	                             #   memory://  (tests only; not shared, not persistent)
//	    audit_events_uri: [file:///var/lib/sallyport/log]  # file:// | stdout:// | sqlite:// | postgres://;
//	                             #   list or single value; default: kept with the cluster state in the backend
//	    audit_sessions_uri: s3://bucket/records  # session recordings: file:// | s3:// | gs:// | azblob://;
//	                             #   default file://<data_dir>/records
//
//	auth_service:                # run by cmd/auth
//	  enabled: yes               # default: yes when the section is present, no when absent
//	  listen_addr: 0.0.0.0:3025  # gRPC API, mutual TLS; default 0.0.0.0:3025
//	  cluster_name: example.com  # fixed when the CAs are first created; default: nodename
//	  public_addr: auth.internal:3025  # names added to the auth certificate; list or single value
//	  tokens:                    # static join tokens "role[,role...]:token"; roles: auth proxy node app db kube
//	    - "proxy,node:/run/secrets/static-token"  # the token may be a file path
//	  authentication:
//	    second_factor: otp       # otp | off; default otp
//	  keep_alive_interval: 5m    # probe idle client connections this often; default 5m
//	  keep_alive_count_max: 3    # missed probes before a connection is closed; default 3
//	  client_idle_timeout: 0s    # close idle client connections after this long; default 0 (never)
//
//	proxy_service:               # run by cmd/proxy
//	  enabled: yes               # default: yes when the section is present, no when absent
//	  web_listen_addr: 0.0.0.0:3080     # web API; in multiplex mode every protocol; default 0.0.0.0:3080
//	  tunnel_listen_addr: 0.0.0.0:3024  # agent reverse tunnels (separate mode); default 0.0.0.0:3024
//	  listen_addr: 0.0.0.0:3023         # SSH clients (separate mode); default 0.0.0.0:3023
//	  peer_listen_addr: 0.0.0.0:3021    # proxy peering; default 0.0.0.0:3021
//	  public_addr: proxy.example.com:443  # what clients and agents dial (the public load balancer); list or single value
//	  ssh_public_addr: proxy.example.com:3023     # public address of the SSH port (separate mode)
//	  tunnel_public_addr: proxy.example.com:3024  # public address of the tunnel port (separate mode)
//	  proxy_listener_mode: multiplex  # multiplex (TLS routing by ALPN on web_listen_addr) | separate; default multiplex
//	  https_keypairs:            # web certificates; default: self-signed unless acme is enabled
//	    - key_file: /etc/sallyport/tls/proxy.key   # both keys required in every entry
//	      cert_file: /etc/sallyport/tls/proxy.crt
//	  acme:                      # automatic certificates for public_addr (TLS-ALPN-01)
//	    enabled: no              # needs public_addr and no https_keypairs; default no
//	    email: admin@example.com # ACME account contact; default none
//	    uri: https://acme-v02.api.letsencrypt.org/directory  # ACME directory; default Let's Encrypt
//	  proxy_protocol: on         # on: PROXY v1/v2 header required | off: rejected | unset: accepted with a warning
//	  proxy_protocol_trusted_networks: [10.0.0.0/8]  # CIDRs or IPs allowed to send PROXY headers; default any
//
//	ssh_service:                 # run by cmd/agent
//	  enabled: yes               # default: yes when the section is present, no when absent
//	  listen_addr: 0.0.0.0:3022  # SSH when reached directly rather than through a tunnel; default 0.0.0.0:3022
//	  labels:                    # static labels; names: letters, digits and - _ . / : *
//	    env: prod
//	  public_addr: node-1.internal:3022  # list or single value
//	  session_recording: node    # node (recorded by this service) | off; default node
//
// Cross-field rules: a joining instance needs a token and a join
// address (and a CA pin with auth_server); auth_server and proxy_server
// are exclusive; storage.type must match the scheme of storage.uri, and
// postgres and etcd need a uri; every https_keypairs entry needs both
// files; acme excludes https_keypairs and needs public_addr; the listen
// addresses of the enabled services (and diag_addr) must differ.
//
// # A single-machine cluster
//
// All three binaries read this file; each runs its section. The proxy
// and the agent reach the auth service at 127.0.0.1:3025.
//
//	version: v3
//	sallyport:
//	  nodename: demo
//	  data_dir: /var/lib/sallyport
//	  log:
//	    severity: info
//	  storage:
//	    uri: sqlite:///var/lib/sallyport/state.db
//	auth_service:
//	  listen_addr: 127.0.0.1:3025
//	  cluster_name: demo.example.com
//	proxy_service:
//	  web_listen_addr: 0.0.0.0:443
//	  public_addr: demo.example.com:443
//	  acme:
//	    enabled: yes
//	    email: admin@example.com
//	ssh_service:
//	  labels:
//	    env: demo
//
// # A high-availability pool
//
// Auth instances behind a private load balancer (auth.internal:3025)
// share a PostgreSQL backend and an S3 bucket; each uses:
//
//	version: v3
//	sallyport:
//	  nodename: auth-1
//	  storage:
//	    uri: postgres://sallyport@db.internal:5432/sallyport?sslmode=verify-full
//	    audit_sessions_uri: s3://sallyport-recordings/records
//	auth_service:
//	  cluster_name: example.com
//	  public_addr: auth.internal:3025
//
// Proxy instances behind the public load balancer (proxy.example.com:443,
// sending PROXY protocol v2 from 10.0.0.0/8) join through the auth load
// balancer; each uses:
//
//	version: v3
//	sallyport:
//	  nodename: proxy-1
//	  join_params:
//	    token_name: /var/lib/sallyport/join-token
//	  ca_pin: sha256:2f3a7c1e4b5d6a7f8e9d0c1b2a3f4e5d6c7b8a9f0e1d2c3b4a5f6e7d8c9b0a1f
//	  auth_server: auth.internal:3025
//	proxy_service:
//	  web_listen_addr: 0.0.0.0:443
//	  public_addr: proxy.example.com:443
//	  https_keypairs:
//	    - key_file: /etc/sallyport/tls/proxy.key
//	      cert_file: /etc/sallyport/tls/proxy.crt
//	  proxy_protocol: on
//	  proxy_protocol_trusted_networks: [10.0.0.0/8]
//
// Agents behind firewalls dial out to the public load balancer:
//
//	version: v3
//	sallyport:
//	  nodename: db-host-7
//	  join_params:
//	    token_name: /var/lib/sallyport/join-token
//	  ca_pin: sha256:2f3a7c1e4b5d6a7f8e9d0c1b2a3f4e5d6c7b8a9f0e1d2c3b4a5f6e7d8c9b0a1f
//	  proxy_server: proxy.example.com:443
//	ssh_service:
//	  labels:
//	    env: prod
//
// These files are in testdata/ and parsed by the tests.
package config
