// Pipeline step 2: stage (fill and verify) an image into the pool.

package nodeserver

import (
	"context"
	"errors"
	"fmt"
	"io"
	"time"

	"google.golang.org/grpc/codes"

	"github.com/daxfs-csi/daxfs-csi/internal/grpccode"
	"github.com/daxfs-csi/daxfs-csi/internal/source"
	"github.com/daxfs-csi/daxfs-csi/pkg/daxdev"
	"github.com/daxfs-csi/daxfs-csi/pkg/image"
)

// stageTimeout bounds one fetch+fill. Staging runs detached from the
// request: a kubelet retry after its own timeout finds the work done
// instead of starting over.
const stageTimeout = 30 * time.Minute

// stageWithEviction stages r, evicting unused cached images (KeepUnused)
// while the pool has no room.
func (s *NodeServer) stageWithEviction(ctx context.Context, r resolved) (daxdev.Extent, error) {
	for {
		e, err := s.pool.Stage(ctx, r.Digest, r.Size, s.owner, s.fill(ctx, r))
		if err == nil {
			return e, nil
		}
		if errors.Is(err, daxdev.ErrNoSpace) {
			if s.opts.KeepUnused && s.evictOne(r.Digest) {
				continue
			}
			st := s.pool.Status()
			return e, grpccode.With(codes.ResourceExhausted,
				fmt.Errorf("stage %s (%d bytes): %w (pool has %d of %d bytes free)", r.Digest, r.Size, err, st.Free, st.DataSize))
		}
		return e, poolError(fmt.Errorf("stage %s: %w", r.Digest, err))
	}
}

// poolError gives pool failures their gRPC code.
func poolError(err error) error {
	var c grpccode.Coded
	switch {
	case errors.As(err, &c):
		return err // a fill error keeps its own code
	case errors.Is(err, daxdev.ErrTableFull), errors.Is(err, daxdev.ErrTooManyOwners):
		return grpccode.With(codes.ResourceExhausted, err)
	case errors.Is(err, daxdev.ErrLengthMismatch), errors.Is(err, daxdev.ErrBadArgument):
		return grpccode.With(codes.InvalidArgument, err)
	case errors.Is(err, daxdev.ErrClosed), errors.Is(err, daxdev.ErrReclaimed), errors.Is(err, daxdev.ErrBusy):
		return grpccode.With(codes.Unavailable, err)
	}
	return err
}

// fill streams the source into the extent while hashing it, then validates
// the image: a returned error frees the extent, so nothing half-staged or
// corrupt ever becomes ready.
func (s *NodeServer) fill(ctx context.Context, r resolved) func(dst []byte) error {
	return func(dst []byte) error {
		if int64(len(dst)) != r.Size {
			return fmt.Errorf("fill %s: extent holds %d bytes, image has %d", r.Digest, len(dst), r.Size)
		}
		rc, size, err := s.opts.Fetcher.Open(source.WithPullSecret(ctx, r.PullSecret), r.URI)
		if err != nil {
			return fmt.Errorf("fill %s: %w", r.Digest, err)
		}
		defer rc.Close()
		if size >= 0 && size != r.Size {
			return fmt.Errorf("fill %s: %w: source now has %d bytes, resolved %d", r.Digest, source.ErrFetch, size, r.Size)
		}
		v, err := source.NewVerifier(ctx, rc, r.Digest)
		if err != nil {
			return grpccode.With(codes.InvalidArgument, err)
		}
		if _, err := io.ReadFull(v, dst); err != nil {
			if errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, io.EOF) {
				return fmt.Errorf("fill %s: %w: source ended after %d of %d bytes", r.Digest, source.ErrFetch, v.N(), r.Size)
			}
			return fmt.Errorf("fill %s: %w", r.Digest, err)
		}
		// One more byte would be content the digest did not cover.
		if n, _ := io.Copy(io.Discard, io.LimitReader(v, 1)); n > 0 {
			return fmt.Errorf("fill %s: %w: source is longer than %d bytes", r.Digest, source.ErrDigestMismatch, r.Size)
		}
		if err := v.Check(); err != nil {
			return fmt.Errorf("image %s: %w", r.URI, err)
		}
		im, err := image.OpenBytes(dst)
		if err == nil {
			err = im.Validate()
		}
		if err != nil {
			return grpccode.With(codes.InvalidArgument,
				fmt.Errorf("image %s (%s) is not a valid daxfs image: %w", r.URI, r.Digest, err))
		}
		return nil
	}
}
