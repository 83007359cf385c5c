// Package grpccode maps errors to gRPC codes: a status error keeps its code,
// an error that says its own code (Coded, With) is believed, known sentinels
// map, the rest is Internal. The CSI services answer with ToStatus.
package grpccode

import (
	"context"
	"errors"
	"io/fs"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/daxfs-csi/daxfs-csi/internal/source"
)

// Coded is implemented by errors that know their gRPC code; packages that
// must not import gRPC wrap their errors with With instead.
type Coded interface{ GRPCCode() codes.Code }

type codedError struct {
	code codes.Code
	err  error
}

func (e *codedError) Error() string        { return e.err.Error() }
func (e *codedError) Unwrap() error        { return e.err }
func (e *codedError) GRPCCode() codes.Code { return e.code }

// With attaches a gRPC code to err.
func With(code codes.Code, err error) error {
	if err == nil {
		return nil
	}
	return &codedError{code: code, err: err}
}

var sentinelCodes = []struct {
	err  error
	code codes.Code
}{
	{source.ErrDigestMismatch, codes.InvalidArgument},
	{source.ErrUnsupported, codes.InvalidArgument},
	{source.ErrFetch, codes.Unavailable},
	{context.DeadlineExceeded, codes.DeadlineExceeded},
	{context.Canceled, codes.Canceled},
	{fs.ErrNotExist, codes.NotFound},
	{fs.ErrPermission, codes.PermissionDenied},
}

// Of is the gRPC code for err: a status error keeps its code, a Coded
// error (outermost first) says its own, known sentinels map, the rest
// is Internal.
func Of(err error) codes.Code {
	if err == nil {
		return codes.OK
	}
	if s, ok := status.FromError(err); ok {
		return s.Code()
	}
	var c Coded
	if errors.As(err, &c) {
		return c.GRPCCode()
	}
	for _, s := range sentinelCodes {
		if errors.Is(err, s.err) {
			return s.code
		}
	}
	return codes.Internal
}

// ToStatus turns err into a gRPC status error with its code (Of) and
// message; a status error is returned as is.
func ToStatus(err error) error {
	if err == nil {
		return nil
	}
	if _, ok := status.FromError(err); ok {
		return err
	}
	return status.Error(Of(err), err.Error())
}
