// Package auditsend sends the audit events that proxies and agents record
// to the auth service.
//
// A service hands each event to [Send] in a goroutine of its own, so that
// a slow or unreachable auth service never holds up the connection the
// event is about:
//
//	go func() {
//		if err := auditsend.Send(context.Background(), stop, authClient.API(), ev); err != nil {
//			log.Warn("proxy: audit event lost", "type", ev.Type, "err", err)
//		}
//	}()
//
// # Lifecycle
//
// Send starts one helper goroutine and waits for it before returning, so
// nothing it starts outlives the call.
//
// # Errors
//
// Send returns the RPC's error unchanged; an event whose send fails is
// lost, and the caller logs it.
//
// # Cancellation
//
// A send gives up after [Timeout], when ctx is done, or when the stop
// channel is closed (a service closes it when it shuts down, so that
// pending sends do not delay Close).
package auditsend
