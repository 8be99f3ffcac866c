package authapi

import (
	"errors"
	"fmt"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// Errors of the package. Server handlers answer with the gRPC code in
// brackets; the Client turns a code back into an *RPCError that wraps the
// sentinel, so errors.Is works on both sides.
var (
	// ErrInvalidArgument: a request or a Config is malformed. [InvalidArgument]
	ErrInvalidArgument = errors.New("authapi: invalid argument")
	// ErrInvalidIdentity: a certificate carries no valid sallyport identity.
	ErrInvalidIdentity = errors.New("authapi: invalid identity")
	// ErrAccessDenied: the caller's identity may not call the RPC. [PermissionDenied]
	ErrAccessDenied = errors.New("authapi: access denied")
	// ErrAuthFailed: a token, password or TOTP code was refused; the
	// error never says which part was wrong. [Unauthenticated]
	ErrAuthFailed = errors.New("authapi: authentication failed")
	// ErrRateLimited: too many attempts from one source. [ResourceExhausted]
	ErrRateLimited = errors.New("authapi: too many attempts")
	// ErrNotFound: the named token, user or role does not exist. [NotFound]
	ErrNotFound = errors.New("authapi: not found")
	// ErrUnavailable: no auth server could be reached. [Unavailable]
	ErrUnavailable = errors.New("authapi: unavailable")
	// ErrPinMismatch: the server's CA does not match the pin given to Join;
	// nothing was sent to it.
	ErrPinMismatch = errors.New("authapi: CA pin mismatch")
	// ErrServerClosed: Serve was called after Shutdown or Close, or
	// returned because of them.
	ErrServerClosed = errors.New("authapi: server closed")
)

var codeErrs = map[codes.Code]error{
	codes.InvalidArgument:   ErrInvalidArgument,
	codes.PermissionDenied:  ErrAccessDenied,
	codes.Unauthenticated:   ErrAuthFailed,
	codes.ResourceExhausted: ErrRateLimited,
	codes.NotFound:          ErrNotFound,
	codes.Unavailable:       ErrUnavailable,
}

// RPCError is an error returned by a Client call: the method, the gRPC
// status code and message. It unwraps to the package sentinel of the code
// (ErrAccessDenied for PermissionDenied, ...) and, when the transport
// failed, to the underlying cause.
type RPCError struct {
	Method string
	Code   codes.Code
	Msg    string
	cause  error
}

func (e *RPCError) Error() string {
	return fmt.Sprintf("authapi: %s: %s: %s", e.Method, e.Code, e.Msg)
}

// Unwrap returns the sentinel of the code and the cause, if any.
func (e *RPCError) Unwrap() []error {
	var errs []error
	if s, ok := codeErrs[e.Code]; ok {
		errs = append(errs, s)
	}
	if e.cause != nil {
		errs = append(errs, e.cause)
	}
	return errs
}

// GRPCStatus lets status.Code and status.FromError read the code.
func (e *RPCError) GRPCStatus() *status.Status { return status.New(e.Code, e.Msg) }

func rpcError(method string, err error) error {
	if err == nil {
		return nil
	}
	s, ok := status.FromError(err)
	if !ok {
		return err
	}
	return &RPCError{Method: method, Code: s.Code(), Msg: s.Message(), cause: errors.Unwrap(err)}
}

// statusErr builds a gRPC status error from a sentinel and a message.
func statusErr(c codes.Code, format string, args ...any) error {
	return status.Errorf(c, format, args...)
}
