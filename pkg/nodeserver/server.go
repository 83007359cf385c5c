package nodeserver

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"sync"
	"time"

	"github.com/container-storage-interface/spec/lib/go/csi"
	"k8s.io/klog/v2"

	"github.com/daxfs-csi/daxfs-csi/internal/fusehost"
	"github.com/daxfs-csi/daxfs-csi/internal/source"
	"github.com/daxfs-csi/daxfs-csi/internal/volume"
	"github.com/daxfs-csi/daxfs-csi/pkg/daxdev"
	"github.com/daxfs-csi/daxfs-csi/pkg/nodeserver/state"
)

// Pool is what the node needs of the device pool; *daxdev.Pool satisfies it.
type Pool interface {
	Stage(ctx context.Context, digest string, length int64, owner string, fill func(dst []byte) error) (daxdev.Extent, error)
	Lookup(digest string) (daxdev.Extent, bool)
	Release(digest, owner string) (freed bool, err error)
	Data(e daxdev.Extent) ([]byte, error)
	PhysAddr(e daxdev.Extent) (uint64, bool)
	Status() daxdev.Status
	Info() daxdev.Info
}

var _ Pool = (*daxdev.Pool)(nil)

// DMABufExporter is implemented by pools that can hand out a dma-buf
// holding exactly one extent; the kernel daxfs module maps a whole dma-buf,
// so a dma-heap pool's own buffer (table included) cannot be mounted.
type DMABufExporter interface {
	ExtentDMABuf(e daxdev.Extent) (*os.File, error)
}

// Options configure a NodeServer.
type Options struct {
	NodeID string
	// Pool is open; the driver owns Open/Close.
	Pool Pool
	// PoolSpec is handed to fuse-serve so it opens the same pool.
	PoolSpec string
	// StateDir keeps image and volume records across restarts.
	StateDir     string
	AllowSources volume.AllowList
	// MountMode applies when a volume says auto (or nothing); "" = auto.
	MountMode  volume.MountMode
	KeepUnused bool // keep unreferenced images mounted as cache (LRU-evicted)
	MaxVolumes int64
	// MaxImageSize is the largest image a volume may stage on this node
	// (--max-image-size); larger ones are refused before anything is
	// written to the pool. 0: no limit but the pool.
	MaxImageSize int64
	// FuseServeCommand is the argv prefix running `daxfs-csi`; the node
	// appends "fuse-serve --pool ... --digest ... --mountpoint ...".
	// Default: this executable.
	FuseServeCommand []string
	// FuseHostSocket, when set, has the fuse-host sidecar serve FUSE image
	// mounts in its own process (they outlive plugin container restarts).
	// A fuse-host without the serve op launches fuse-serve instead: the pod
	// must then share one pid namespace and FuseServeCommand be exactly the
	// binary fuse-host allows. Empty: fuse-serve as our own children.
	FuseHostSocket string
	// OnStage is called after each image mount is made (metrics).
	OnStage func(digest, backend string, d time.Duration)
	// ProcFilesystems is read to detect the daxfs module (default /proc/filesystems).
	ProcFilesystems string
	// kernel replaces the real module in tests (kernel_fake_test.go).
	kernel kernelModule
	// Fetcher opens image sources (default source.Default).
	Fetcher *source.Fetcher
	// HealthInterval: how often image mounts are checked and dead ones
	// repaired with their volumes; 0 = 30s, negative = never.
	HealthInterval time.Duration
}

// NodeServer is the CSI Node service.
type NodeServer struct {
	csi.UnimplementedNodeServer

	opts  Options
	pool  Pool
	owner string // pool owner name of this node's references
	store *state.Store
	fuse  fuseServe

	kernel kernelModule
	prober kernelProber

	digests digestCache // file:// sources without a digest attribute

	// Lock order: volLocks → pathLocks → imgLocks → mu. Take a later lock
	// only while holding earlier ones, never the other way; the two places
	// that go against it only TryLock and skip what is busy (repairOthers
	// takes volLocks under an imgLock; evictOne takes another digest's
	// imgLock under one). mu guards images, volumes and idx and is held for map
	// work only, never across I/O or another lock. A name ending in Locked
	// means the caller holds mu.
	volLocks  *keyedMutex // per volume id
	pathLocks *keyedMutex // per staging or target path, taken after volLocks
	imgLocks  *keyedMutex // per digest, taken after volLocks and pathLocks

	mu      sync.Mutex
	images  map[string]*state.Image  // by digest
	volumes map[string]*state.Volume // by state.Volume.Key(); changed only by putVolumeLocked and deleteVolumeLocked
	idx     volIndex                 // digest refs and recorded paths of volumes

	stop      chan struct{}
	watchDone chan struct{}
	stopOnce  sync.Once
}

var _ csi.NodeServer = (*NodeServer)(nil)

// New opens the state dir and recovers every image mount and volume recorded
// there: mounts that still answer are left alone, dead ones are remounted.
func New(opts Options) (*NodeServer, error) {
	if opts.NodeID == "" {
		return nil, errors.New("nodeserver: NodeID is required")
	}
	if opts.Pool == nil {
		return nil, errors.New("nodeserver: Pool is required")
	}
	if opts.StateDir == "" {
		return nil, errors.New("nodeserver: StateDir is required")
	}
	if opts.MountMode == "" {
		opts.MountMode = volume.MountAuto
	}
	if opts.ProcFilesystems == "" {
		opts.ProcFilesystems = "/proc/filesystems"
	}
	if opts.kernel == nil {
		opts.kernel = newRealModule(opts.ProcFilesystems)
	}
	if opts.Fetcher == nil {
		opts.Fetcher = source.Default
	}
	if opts.Fetcher.CheckFile == nil {
		// Every file:// open is checked against the allow-list where it
		// landed, not only as the URI reads.
		f := *opts.Fetcher
		f.CheckFile = opts.AllowSources.CheckFile
		opts.Fetcher = &f
	}
	if len(opts.FuseServeCommand) == 0 {
		exe, err := os.Executable()
		if err != nil {
			return nil, fmt.Errorf("nodeserver: locate fuse-serve executable: %w", err)
		}
		opts.FuseServeCommand = []string{exe}
	}
	st, err := state.Open(opts.StateDir)
	if err != nil {
		return nil, fmt.Errorf("nodeserver: %w", err)
	}
	s := &NodeServer{
		opts:      opts,
		pool:      opts.Pool,
		owner:     ownerName(opts.NodeID),
		store:     st,
		fuse:      fuseServe{argv: opts.FuseServeCommand, poolSpec: opts.PoolSpec, launcher: localLauncher{}},
		kernel:    opts.kernel,
		volLocks:  newKeyedMutex(),
		pathLocks: newKeyedMutex(),
		imgLocks:  newKeyedMutex(),
		images:    map[string]*state.Image{},
		volumes:   map[string]*state.Volume{},
		idx:       newVolIndex(),
	}
	if opts.FuseHostSocket != "" {
		host := fusehost.Client{Socket: opts.FuseHostSocket}
		s.fuse.launcher, s.fuse.host = hostLauncher{client: host}, &host
	}
	if err := s.recover(context.Background()); err != nil {
		return nil, fmt.Errorf("nodeserver: recover state: %w", err)
	}
	s.stop, s.watchDone = make(chan struct{}), make(chan struct{})
	switch {
	case opts.HealthInterval == 0:
		go s.watch(defaultHealthInterval)
	case opts.HealthInterval > 0:
		go s.watch(opts.HealthInterval)
	default:
		close(s.watchDone)
	}
	return s, nil
}

// Shutdown stops the health watch and leaves every mount and fuse-serve
// process in place: pods keep their volumes while the plugin restarts.
func (s *NodeServer) Shutdown() {
	s.stopOnce.Do(func() { close(s.stop) })
	<-s.watchDone
	klog.InfoS("Node server stopped; image mounts and volumes stay mounted")
}

// ownerName is the pool owner of this node's references; the pool keeps at
// most 56 bytes, and node names go up to 253.
func ownerName(nodeID string) string {
	if len(nodeID) <= 56 {
		return nodeID
	}
	h := sha256.Sum256([]byte(nodeID))
	return nodeID[:39] + "~" + hex.EncodeToString(h[:8])
}
