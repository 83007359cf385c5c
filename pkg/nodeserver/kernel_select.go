package nodeserver

import (
	"context"
	"fmt"

	"google.golang.org/grpc/codes"

	"github.com/daxfs-csi/daxfs-csi/internal/grpccode"
	"github.com/daxfs-csi/daxfs-csi/internal/volume"
	"github.com/daxfs-csi/daxfs-csi/pkg/nodeserver/state"
)

// region says how the kernel could reach an extent.
type region struct {
	phys   uint64 // 0: no physical address
	size   int64  // image bytes
	dmabuf bool   // the pool hands out a dma-buf per extent
}

func (r region) reachable() bool { return r.phys != 0 || r.dmabuf }

// backendChoice is an image mount's backend and why: Reason is a CamelCase
// code (a metric label), Message what an operator reads (the log, volume
// health, the image record).
type backendChoice struct {
	Backend string
	Reason  string
	Message string
}

// Reasons of a backend choice.
const (
	reasonKernelDAX        = "KernelDAX"
	reasonFUSERequested    = "FUSERequested"
	reasonNotLoaded        = "KernelModuleNotLoaded"
	reasonNoRegion         = "NoKernelRegion"
	reasonProbeFailed      = "KernelProbeFailed"
	reasonCannotMount      = "KernelCannotMount"
	reasonNoSharedMap      = "KernelNoSharedMap"
	reasonNoPrivateMap     = "KernelNoPrivateMap"
	reasonKernelMountError = "KernelMountFailed"
)

// msgNoPrivateMap is what an exec-needing volume on a module without
// private writable mappings is told (issue 12 names this text exactly).
const msgNoPrivateMap = "kernel daxfs module cannot map files privately (exec)"

// kernelView is what the node knows of the module when it picks a backend.
type kernelView struct {
	listed   bool
	probe    state.KernelProbe // read only when listed, reachable and probeErr is nil
	probeErr error             // the probe could not run (not a fact about the module)
}

// selectBackend picks kernel or FUSE for a mount mode and a volume that
// needs exec or not. mount=auto takes the kernel only where it serves the
// volume; mount=kernel where it cannot is FailedPrecondition (Unavailable
// when the probe could not run), saying why and what to set.
func selectBackend(mode volume.MountMode, needExec bool, k kernelView, r region) (backendChoice, error) {
	if mode == volume.MountFUSE {
		return backendChoice{backendFUSE, reasonFUSERequested, "mount=fuse"}, nil
	}
	unfit, hint := kernelUnfit(needExec, k, r)
	if unfit == nil {
		msg := "kernel daxfs module maps the image directly (DAX)"
		if !needExec {
			msg = "data volume (exec=false): " + msg
		}
		return backendChoice{backendKernel, reasonKernelDAX, msg}, nil
	}
	if mode == volume.MountKernel {
		code := codes.FailedPrecondition
		if unfit.Reason == reasonProbeFailed {
			code = codes.Unavailable
		}
		return backendChoice{}, grpccode.With(code, fmt.Errorf("mount=kernel: %s; %s", unfit.Message, hint))
	}
	return *unfit, nil
}

// kernelUnfit says why the kernel cannot serve the volume (nil when it
// can) and what a mount=kernel volume should change.
func kernelUnfit(needExec bool, k kernelView, r region) (*backendChoice, string) {
	fuse := func(reason, msg string) *backendChoice { return &backendChoice{backendFUSE, reason, msg} }
	const elsewhere = "use mount=auto or fuse"
	switch {
	case !k.listed:
		return fuse(reasonNotLoaded, "kernel daxfs module is not loaded (/proc/filesystems does not list daxfs)"), elsewhere
	case !r.reachable():
		return fuse(reasonNoRegion, "the pool gives the kernel neither a physical address nor a dma-buf for this region"), elsewhere
	case k.probeErr != nil:
		return fuse(reasonProbeFailed, fmt.Sprintf("kernel daxfs module probe could not run: %v", k.probeErr)), "retry, or use mount=auto or fuse"
	case !k.probe.Mount:
		return fuse(reasonCannotMount, fmt.Sprintf("kernel daxfs module cannot mount an image: %s", k.probe.Detail)), elsewhere
	case !k.probe.SharedMap:
		return fuse(reasonNoSharedMap, fmt.Sprintf("kernel daxfs module cannot map files shared read-only (DAX): %s", k.probe.Detail)), elsewhere
	case needExec && !k.probe.PrivateWriteMap:
		return fuse(reasonNoPrivateMap, msgNoPrivateMap),
			`no program can run from it (every ELF loader maps its data segment private and writable); set exec: "false" if the volume holds only data (no programs, no private writable mmaps), or mount: auto to serve it through FUSE`
	}
	return nil, ""
}

// execNeeded reports whether a recorded volume of digest may run programs.
func (s *NodeServer) execNeeded(digest string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, v := range s.volumes {
		if v.Digest != digest {
			continue
		}
		if a, err := volume.Parse(v.Context); err != nil || a.NeedsExec() {
			return true // unreadable: assume the stricter need
		}
	}
	return false
}

func (s *NodeServer) usersOf(digest string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.refsLocked(digest)
}

// execUnserved refuses a volume that needs exec an image mount made by a
// module without private writable mappings (for data volumes only): the
// one image mount cannot be both, and its users keep it.
func (s *NodeServer) execUnserved(ctx context.Context, im *state.Image, r resolved) error {
	if im.Backend != backendKernel || !r.NeedExec {
		return nil
	}
	inst, err := s.kernel.Instance()
	if err != nil || inst == "" {
		return nil // the mount is there; the module cannot be asked
	}
	p, err := s.kernelCaps(ctx, inst)
	if err != nil || p.PrivateWriteMap {
		return nil
	}
	return grpccode.With(codes.FailedPrecondition, fmt.Errorf(
		`image %s is mounted by the kernel for data volumes (exec=false) on this node, and the %s: set exec: "false" if this volume holds only data, or use it once the data volumes are gone`,
		r.Digest, msgNoPrivateMap))
}

// kernelDeclined: the module is loaded but the image is served by FUSE
// because the module cannot serve it (not by choice or configuration).
func kernelDeclined(reason string) bool {
	switch reason {
	case reasonProbeFailed, reasonCannotMount, reasonNoSharedMap, reasonNoPrivateMap, reasonKernelMountError:
		return true
	}
	return false
}
