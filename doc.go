// Package sallyport is the root of an SDK for building an identity-aware
// access cluster: a pool of Auth Service instances holding the cluster's
// certificate authorities and state, a pool of stateless Proxy Service
// instances behind Layer-4 load balancers, and agents that sit behind
// firewalls, dial out through reverse tunnels (through corporate HTTP
// CONNECT proxies when needed) and serve SSH, databases and internal web
// applications.
//
// The root package holds no code. The SDK is a set of flat packages, each
// useful on its own:
//
//   - [github.com/sallyport/sallyport/proxyconnect]: a dialer that honours
//     HTTPS_PROXY, HTTP_PROXY and NO_PROXY and speaks HTTP CONNECT and SOCKS5.
//   - [github.com/sallyport/sallyport/mux]: splits one listener into
//     per-protocol listeners by sniffing the first bytes, with PROXY
//     protocol v1/v2 support.
//   - [github.com/sallyport/sallyport/alpn]: a TLS router that routes on
//     SNI and ALPN, with passthrough and terminating routes.
//   - [github.com/sallyport/sallyport/backend]: the cluster-state key-value
//     interface, its drivers and its conformance suite.
//   - [github.com/sallyport/sallyport/recorder]: session recording capture,
//     a crash-safe spool, object-storage drivers and playback.
//
// The example programs under examples/ show how the packages compose, and
// cmd/ holds thin binaries that turn configuration into library configs.
package sallyport
