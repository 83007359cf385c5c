package volume

import (
	"context"
	"errors"
	"io/fs"
	"strings"

	"google.golang.org/grpc/codes"

	"github.com/daxfs-csi/daxfs-csi/pkg/source"
	"google.golang.org/grpc/status"
)

// AttrError lists everything wrong with a set of volume attributes.
type AttrError struct{ Problems []string }

func (e *AttrError) Error() string {
	return "invalid volume attributes: " + strings.Join(e.Problems, "; ")
}

// GRPCCode makes AttrError an InvalidArgument.
func (e *AttrError) GRPCCode() codes.Code { return codes.InvalidArgument }

// Coded is implemented by errors that know their gRPC code; packages that
// must not import gRPC wrap their errors with WithCode instead.
type Coded interface{ GRPCCode() codes.Code }

type codedError struct {
	code codes.Code
	err  error
}

func (e *codedError) Error() string        { return e.err.Error() }
func (e *codedError) Unwrap() error        { return e.err }
func (e *codedError) GRPCCode() codes.Code { return e.code }

// WithCode attaches a gRPC code to err.
func WithCode(code codes.Code, err error) error {
	if err == nil {
		return nil
	}
	return &codedError{code: code, err: err}
}

var sentinelCodes = []struct {
	err  error
	code codes.Code
}{
	{ErrSourceNotAllowed, codes.PermissionDenied},
	{source.ErrDigestMismatch, codes.InvalidArgument},
	{source.ErrUnsupported, codes.InvalidArgument},
	{source.ErrFetch, codes.Unavailable},
	{context.DeadlineExceeded, codes.DeadlineExceeded},
	{context.Canceled, codes.Canceled},
	{fs.ErrNotExist, codes.NotFound},
	{fs.ErrPermission, codes.PermissionDenied},
}

// RegisterCode maps a sentinel error (matched with errors.Is) to a code; the
// node and controller register the pool's and the image reader's errors.
// Call it from init: Code reads the table without locking.
func RegisterCode(err error, code codes.Code) {
	sentinelCodes = append(sentinelCodes, struct {
		err  error
		code codes.Code
	}{err, code})
}

// Code is the gRPC code for err: a status error keeps its code, a Coded
// error (outermost first) says its own, registered sentinels map, the rest
// is Internal.
func Code(err error) codes.Code {
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

// Status turns err into a gRPC status error with its code and message.
func Status(err error) error {
	if err == nil {
		return nil
	}
	if _, ok := status.FromError(err); ok {
		return err
	}
	return status.Error(Code(err), err.Error())
}
