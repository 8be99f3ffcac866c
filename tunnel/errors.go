package tunnel

import (
	"errors"
	"fmt"
)

var (
	// ErrAgentNotFound means the agent has no tunnel to this proxy.
	ErrAgentNotFound = errors.New("tunnel: agent not connected to this proxy")
	// ErrNoService means the agent does not offer the service.
	ErrNoService = errors.New("tunnel: agent does not offer the service")
	// ErrRefused means the agent refused the stream (stream limit reached,
	// its local service unreachable, or the agent draining). Errors of
	// this kind are *RefusedError.
	ErrRefused = errors.New("tunnel: refused by the agent")
	// ErrServerClosed is returned by Serve, ServeConn and Dial after
	// Shutdown or Close.
	ErrServerClosed = errors.New("tunnel: server closed")
	// ErrAgentClosed is returned by Run and Start after Close.
	ErrAgentClosed = errors.New("tunnel: agent closed")
	// ErrProtocol is wrapped by errors about malformed control messages
	// and stream headers.
	ErrProtocol = errors.New("tunnel: protocol error")
	// ErrUnauthenticated means the peer presented no verified certificate
	// or its identity was rejected.
	ErrUnauthenticated = errors.New("tunnel: unauthenticated peer")
	// ErrInvalidConfig is wrapped by configuration errors of NewServer and
	// NewAgent, and of Register.
	ErrInvalidConfig = errors.New("tunnel: invalid configuration")
	// errDuplicate ends a tunnel the agent does not need (it already has
	// one to that proxy).
	errDuplicate = errors.New("tunnel: duplicate tunnel to the same proxy")
)

// RefusedError is returned by Server.Dial when the agent refused the stream.
// It unwraps to ErrRefused.
type RefusedError struct {
	AgentID string
	Service string
	Reason  string // as the agent put it, e.g. "stream limit reached"
}

func (e *RefusedError) Error() string {
	return fmt.Sprintf("tunnel: agent %q refused a stream to %q: %s", e.AgentID, e.Service, e.Reason)
}

// Unwrap returns ErrRefused.
func (e *RefusedError) Unwrap() error { return ErrRefused }
