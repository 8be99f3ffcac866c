package auditsend

import (
	"context"
	"time"

	"github.com/sallyport/sallyport/audit"
	"github.com/sallyport/sallyport/authapi"
	authv1 "github.com/sallyport/sallyport/authapi/proto/sallyport/auth/v1"
)

// Timeout bounds one send.
const Timeout = 5 * time.Second

// Send sends ev to the auth service through api. It gives up after
// Timeout, when ctx is done or when stop is closed (a nil stop is never
// closed).
func Send(ctx context.Context, stop <-chan struct{}, api authv1.AuthServiceClient, ev audit.Event) error {
	ctx, cancel := context.WithTimeout(ctx, Timeout)
	defer cancel()
	watched := make(chan struct{})
	go func() {
		defer close(watched)
		select {
		case <-stop:
			cancel()
		case <-ctx.Done():
		}
	}()
	_, err := api.EmitAuditEvent(ctx, &authv1.EmitAuditEventRequest{Event: authapi.EventProto(ev)})
	cancel()
	<-watched
	return err
}
