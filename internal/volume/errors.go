package volume

import (
	"strings"

	"google.golang.org/grpc/codes"
)

// AttrError lists everything wrong with a set of volume attributes.
type AttrError struct{ Problems []string }

func (e *AttrError) Error() string {
	return "invalid volume attributes: " + strings.Join(e.Problems, "; ")
}

// GRPCCode makes AttrError an InvalidArgument (grpccode.Coded).
func (e *AttrError) GRPCCode() codes.Code { return codes.InvalidArgument }
