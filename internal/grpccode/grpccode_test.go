package grpccode

import (
	"errors"
	"fmt"
	"io/fs"
	"strings"
	"testing"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/daxfs-csi/daxfs-csi/internal/source"
)

func TestOf(t *testing.T) {
	tests := []struct {
		err  error
		want codes.Code
	}{
		{nil, codes.OK},
		{fmt.Errorf("stage: %w", source.ErrDigestMismatch), codes.InvalidArgument},
		{fmt.Errorf("stage: %w", source.ErrFetch), codes.Unavailable},
		{fmt.Errorf("stage: %w", fs.ErrNotExist), codes.NotFound},
		{With(codes.FailedPrecondition, errors.New("no kernel module")), codes.FailedPrecondition},
		{fmt.Errorf("wrapped: %w", With(codes.Aborted, errors.New("x"))), codes.Aborted},
		{status.Error(codes.NotFound, "gone"), codes.NotFound},
		{errors.New("surprise"), codes.Internal},
	}
	for _, tt := range tests {
		if got := Of(tt.err); got != tt.want {
			t.Errorf("Of(%v) = %v, want %v", tt.err, got, tt.want)
		}
	}
	if s, _ := status.FromError(ToStatus(fmt.Errorf("x: %w", fs.ErrNotExist))); s.Code() != codes.NotFound || !strings.Contains(s.Message(), "x: file does not exist") {
		t.Errorf("ToStatus = %v", s)
	}
}
