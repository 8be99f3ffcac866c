// Package daemon is the process plumbing shared by the sallyport binaries
// (cmd/auth, cmd/proxy, cmd/agent) and the all-in-one example: signals,
// pid files, TLS keypairs that reload in place, and the diagnostics
// endpoint with health, readiness and Prometheus metrics.
//
//	kp, err := daemon.LoadKeyPairs([]daemon.KeyPairFiles{{CertFile: crt, KeyFile: key}})
//	tlsConf := &tls.Config{GetCertificate: kp.GetCertificate}
//	remove, err := daemon.WritePIDFile(pidPath)
//	defer remove()
//	diag := daemon.NewDiag(daemon.DiagConfig{Ready: svc.ready})
//	go diag.Serve(diagListener)
//	sig, err := daemon.Wait(ctx, daemon.WaitConfig{Reload: kp.Reload, Errc: serveErrc})
//	// sig is SIGTERM or SIGINT: drain with a deadline, then exit 0.
//
// # Lifecycle
//
// Wait blocks until SIGTERM or SIGINT arrives, ctx ends, or the served
// component fails; on SIGHUP it calls the reload hook and keeps waiting.
// The caller then drains (Shutdown with a deadline) and closes. A Diag
// server follows net/http: Serve, Shutdown(ctx), Close.
//
// # Reloading keypairs
//
// A KeyPairs value holds the certificates behind an atomic pointer. Reload
// reads every file again and swaps the whole set only when all of them
// parse, so a half-written file never replaces a good certificate; running
// connections keep the certificate they were handshaken with, and the next
// handshake gets the new one.
//
// # Errors
//
// WritePIDFile fails with ErrRunning when the file names a live process.
// Reload returns the first file error and leaves the previous set in use.
// Wait returns the component's error, or ctx's error when ctx ended.
//
// # Cancellation
//
// Wait returns when ctx is done. Diag.Shutdown's ctx bounds the wait for
// running requests.
package daemon
