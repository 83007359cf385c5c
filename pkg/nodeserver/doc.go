// Package nodeserver is the CSI Node service of daxfs-csi: it stages each
// image once per digest into the device pool, mounts it once read-only (kernel
// daxfs or a detached fuse-serve process), and publishes it to any number of
// volumes: a read-only overlay of the image mount at each PV's staging path
// (a mount of its own, so the kubelet can unstage it), bind mounts at the
// targets, an overlay with an upper layer for writable views. Its state lives
// in a state directory so a restarted plugin recovers every mount.
//
// Each image mount has a generation; volumes record the one their mounts
// were made at. When a FUSE server dies, the next RPC on any volume of the
// image, the health watch, or a restart mounts the image again and rebinds
// every volume still at an older generation (their old mounts are dead).
//
// Error codes: bad attributes, a digest mismatch and a corrupt image are
// InvalidArgument (the request names content that can never stage; retrying
// the same request cannot succeed); an image that does not fit in the pool
// is ResourceExhausted; a source outside --allow-source is PermissionDenied;
// mount=kernel where the kernel daxfs module cannot serve the volume (not
// loaded, no region it can reach, or exec needed from a module that cannot
// map files privately: docs/kernel-mount.md), unstage with live publishes,
// publish of an unstaged volume and multi-node writer modes are
// FailedPrecondition. Single-node writer modes are accepted (the kubelet
// always asks SINGLE_NODE_WRITER for inline volumes): the view is read-only
// unless writable=true.
package nodeserver

import "github.com/daxfs-csi/daxfs-csi/pkg/nodeserver/state"

const (
	backendKernel = state.BackendKernel
	backendFUSE   = state.BackendFUSE
)
