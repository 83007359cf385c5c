// Package driver wires the CSI services of daxfs-csi onto one gRPC server:
// Identity and Controller here, Node from pkg/nodeserver, plus the metrics
// endpoint. Style follows kubernetes-csi/csi-driver-host-path: one file per
// CSI service.
package driver

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/container-storage-interface/spec/lib/go/csi"

	"github.com/daxfs-csi/daxfs-csi/internal/buildinfo"
	"github.com/daxfs-csi/daxfs-csi/internal/metrics"
	"github.com/daxfs-csi/daxfs-csi/internal/source"
)

// Mode selects which CSI services the server offers.
type Mode string

const (
	ModeNode       Mode = "node"
	ModeController Mode = "controller"
	ModeAll        Mode = "all"
)

// ParseMode accepts node, controller or all.
func ParseMode(s string) (Mode, error) {
	switch m := Mode(s); m {
	case ModeNode, ModeController, ModeAll:
		return m, nil
	}
	return "", fmt.Errorf("mode %q: want node, controller or all", s)
}

func (m Mode) controller() bool { return m == ModeController || m == ModeAll }

// Controller reports whether the mode serves the controller service.
func (m Mode) Controller() bool { return m.controller() }
func (m Mode) node() bool       { return m == ModeNode || m == ModeAll }

// PoolSpace is the device pool as the controller and metrics see it.
type PoolSpace struct {
	ID    string // stable pool identity (topology value)
	Size  int64  // bytes of device memory
	Free  int64  // bytes not held by any extent
	Align int64  // extent alignment; capacities are rounded up to it
}

// Pool is what the driver reads from the device pool. PoolOf adapts a
// *daxdev.Pool; the interface keeps this package testable against the
// memfile pool without reaching into its internals.
type Pool interface {
	// Space fails when the pool is closed or unreadable (Probe reports it).
	Space() (PoolSpace, error)
	// Staged returns the device bytes of a ready extent of digest.
	Staged(digest string) (int64, bool)
}

// Cluster is the cluster view a cluster-mode controller answers from
// (cmd/daxfs-csi adapts controller.ClusterReader over a cached client).
type Cluster interface {
	// Capacity: the largest image of digest one pool matching segment can
	// still take (a staged copy of digest counts as free); digest may be "".
	Capacity(ctx context.Context, segment map[string]string, digest string) (int64, error)
	// Topology lists the {node, pool} segments that can serve digest.
	Topology(ctx context.Context, digest string) ([]map[string]string, error)
	// Align is the extent alignment volumes are rounded up to (the largest
	// of the live pools'); 0 when no pool is known.
	Align(ctx context.Context) (int64, error)
	// Healthy fails when the API server cannot be reached.
	Healthy(ctx context.Context) error
}

// Resolver names an image by content: digest (computed when empty) and size.
type Resolver func(ctx context.Context, uri, digest string) (source.Resolved, error)

// Options configure a Driver. Zero values take the documented defaults.
type Options struct {
	DriverName string // required, e.g. daxfs.csi.io
	Version    string // default: internal/buildinfo
	NodeID     string // required
	Mode       Mode   // default all
	Endpoint   string // unix:///path.sock, required

	// Pool is required in every mode but a cluster-mode controller: the
	// per-node controller sizes and places volumes on it, Probe checks it.
	Pool Pool
	// Cluster, when set, makes the controller service speak for the whole
	// cluster from the DaxNode reports (docs/controller.md, cluster mode):
	// topology, capacity and align come from it, Probe checks it.
	Cluster Cluster
	// Node is the CSI Node service (pkg/nodeserver); required when Mode
	// serves the node.
	Node csi.NodeServer
	// Images lists the node's staged images for the metrics gauges.
	Images metrics.NodeSnapshot

	// StateDir holds the controller's journal (controller-volumes.json).
	StateDir string
	// AllowSources are the image URI prefixes CreateVolume accepts.
	AllowSources []string
	// Resolve defaults to source.Resolve.
	Resolve Resolver

	// ProbePaths must be readable directories for Probe to report ready
	// (the state dir, the kubelet's plugin dir); a hung mount fails Probe.
	ProbePaths []string

	// RegistrationDir, when set with the node service, serves the kubelet
	// plugin registration socket <dir>/<driver>-reg.sock in it (the
	// kubelet's plugins_registry), in place of node-driver-registrar.
	RegistrationDir string
	// KubeletRegistrationPath is the CSI socket as the kubelet sees it
	// (default: the endpoint's path).
	KubeletRegistrationPath string

	// MetricsAddress serves /metrics and /healthz when not empty (":9808").
	MetricsAddress string
	Metrics        *metrics.Set // default metrics.Default

	// ShutdownTimeout bounds GracefulStop before in-flight calls are cut.
	ShutdownTimeout time.Duration // default 30s
}

func (o *Options) complete() error {
	if o.DriverName == "" {
		return errors.New("driver name is required")
	}
	if o.NodeID == "" {
		return errors.New("node id is required")
	}
	if o.Endpoint == "" {
		return errors.New("endpoint is required")
	}
	if o.Mode == "" {
		o.Mode = ModeAll
	}
	if _, err := ParseMode(string(o.Mode)); err != nil {
		return err
	}
	if o.Pool == nil && (o.Cluster == nil || o.Mode != ModeController) {
		return errors.New("a pool is required (only a cluster-mode controller runs without one)")
	}
	if o.Mode.node() && o.Node == nil {
		return fmt.Errorf("mode %s needs a node service", o.Mode)
	}
	if o.Mode.controller() && o.StateDir == "" {
		return fmt.Errorf("mode %s needs a state dir for the controller journal", o.Mode)
	}
	if o.Version == "" {
		o.Version = buildinfo.Version()
	}
	if o.Resolve == nil {
		o.Resolve = source.Resolve
	}
	if o.Metrics == nil {
		o.Metrics = metrics.Default
	}
	if o.ShutdownTimeout <= 0 {
		o.ShutdownTimeout = 30 * time.Second
	}
	return nil
}
