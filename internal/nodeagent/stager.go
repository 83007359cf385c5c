// Package nodeagent is the node plugin's side of the controller: it keeps
// the node's DaxNode current (pools, staged images, heartbeat) and
// pre-stages the images the controller placed on this node's pools, through
// the same stage path volumes use (a Stager the node plugin implements).
package nodeagent

import (
	"context"

	"github.com/daxfs-csi/daxfs-csi/internal/volume"
)

// StagedImage is one image copy a pool holds, as the Stager sees it.
type StagedImage struct {
	PoolID string // daxdev Info().ID of the pool
	Digest string
	Size   int64
	// References counts volume holds only: pre-stage holds, this node's or
	// another's on a shared pool, are not references (else they would pin
	// the copy against eviction).
	References int32
	Prestaged  bool // this node holds it through Prestage (not yet released)
	Staging    bool // being filled
}

// Stager is the node plugin's stage path. Prestage stages the image in the
// pool as volumes would, so a later volume publishes at once; the copy stays
// until ReleasePrestaged, which drops only the pre-stage hold (volumes keep
// theirs). Both are idempotent.
type Stager interface {
	Prestage(ctx context.Context, poolID string, attrs volume.Attributes) error
	ReleasePrestaged(ctx context.Context, poolID, digest string) error
	Staged() []StagedImage
}
