package auditsend_test

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"google.golang.org/grpc"

	"github.com/sallyport/sallyport/audit"
	authv1 "github.com/sallyport/sallyport/authapi/proto/sallyport/auth/v1"
	"github.com/sallyport/sallyport/internal/auditsend"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// fakeAuth answers EmitAuditEvent with emit; every other method is absent.
type fakeAuth struct {
	authv1.AuthServiceClient
	emit func(ctx context.Context, ev *authv1.AuditEvent) error
}

func (f *fakeAuth) EmitAuditEvent(ctx context.Context, req *authv1.EmitAuditEventRequest, _ ...grpc.CallOption) (*authv1.EmitAuditEventResponse, error) {
	if err := f.emit(ctx, req.GetEvent()); err != nil {
		return nil, err
	}
	return &authv1.EmitAuditEventResponse{}, nil
}

// blockUntilDone is an auth service that never answers.
func blockUntilDone(ctx context.Context, _ *authv1.AuditEvent) error {
	<-ctx.Done()
	return ctx.Err()
}

func TestSend(t *testing.T) {
	errRefused := errors.New("refused")
	cancelled, cancel := context.WithCancel(context.Background())
	cancel()
	closedStop := make(chan struct{})
	close(closedStop)
	tests := []struct {
		name    string
		ctx     context.Context
		stop    chan struct{}
		emit    func(context.Context, *authv1.AuditEvent) error
		wantErr error
	}{
		{"delivered", context.Background(), nil, func(context.Context, *authv1.AuditEvent) error { return nil }, nil},
		{"refused", context.Background(), nil, func(context.Context, *authv1.AuditEvent) error { return errRefused }, errRefused},
		{"stop closed", context.Background(), closedStop, blockUntilDone, context.Canceled},
		{"context cancelled", cancelled, make(chan struct{}), blockUntilDone, context.Canceled},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var got *authv1.AuditEvent
			api := &fakeAuth{emit: func(ctx context.Context, ev *authv1.AuditEvent) error {
				got = ev
				if _, ok := ctx.Deadline(); !ok {
					t.Error("send without a deadline")
				}
				return tt.emit(ctx, ev)
			}}
			ev := audit.Event{Type: audit.TypeSession, Cluster: "c1", Actor: "alice", Success: true, Fields: map[string]string{"node": "n1"}}
			start := time.Now()
			err := auditsend.Send(tt.ctx, tt.stop, api, ev)
			if !errors.Is(err, tt.wantErr) {
				t.Fatalf("Send = %v, want %v", err, tt.wantErr)
			}
			if d := time.Since(start); d > auditsend.Timeout/2 {
				t.Fatalf("Send took %v", d)
			}
			if got.GetActor() != "alice" || got.GetCluster() != "c1" || got.GetFields()["node"] != "n1" {
				t.Fatalf("auth got %v", got)
			}
		})
	}
}

// A stop channel that closes while a send is pending ends the send.
func TestSendStopWhilePending(t *testing.T) {
	stop := make(chan struct{})
	started := make(chan struct{})
	api := &fakeAuth{emit: func(ctx context.Context, ev *authv1.AuditEvent) error {
		close(started)
		return blockUntilDone(ctx, ev)
	}}
	errc := make(chan error, 1)
	go func() { errc <- auditsend.Send(context.Background(), stop, api, audit.Event{Type: audit.TypeSession}) }()
	<-started
	close(stop)
	select {
	case err := <-errc:
		if !errors.Is(err, context.Canceled) {
			t.Fatalf("Send = %v, want context.Canceled", err)
		}
	case <-time.After(auditsend.Timeout / 2):
		t.Fatal("Send did not give up when stop closed")
	}
}

func ExampleSend() {
	api := &fakeAuth{emit: func(_ context.Context, ev *authv1.AuditEvent) error {
		fmt.Println("auth got", ev.GetType(), "by", ev.GetActor())
		return nil
	}}
	err := auditsend.Send(context.Background(), nil, api, audit.Event{Type: audit.TypeSession, Actor: "alice", Success: true})
	fmt.Println("err:", err)
	// Output:
	// auth got session by alice
	// err: <nil>
}
