// Package metrics holds the Prometheus collectors of daxfs-csi: device memory,
// staged images and sharing (read from the pool and the node at scrape time),
// stage durations and CSI operations (pushed as they happen).
package metrics

import (
	"net/http"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

const namespace = "daxfs"

// Image is one staged image as the node plugin sees it at scrape time.
type Image struct {
	Digest      string
	Size        int64  // image bytes
	RegionBytes int64  // device bytes the extent holds (size rounded to the pool align)
	References  int    // volumes (publications) using it
	Backend     string // kernel | fuse
	Reason      string // why that backend (CamelCase, e.g. KernelNoPrivateMap)
	Healthy     bool
}

// KernelModule is what the node's probe found the kernel daxfs module able
// to do (docs/kernel-mount.md).
type KernelModule struct {
	Mount           bool // mounts a region
	SharedMap       bool // shared read-only mmap (DAX)
	PrivateWriteMap bool // private read-write mmap (what exec needs)
}

// PoolStats is the pool's space at scrape time.
type PoolStats struct {
	Pool  string // pool identity, a label
	Total int64
	Used  int64
}

// NodeSnapshot lists the staged images; PoolSnapshot reads the pool. Either
// may be nil (a controller-only server has no node images). ok=false from
// PoolSnapshot means the pool is not open: its gauges are left out.
type (
	NodeSnapshot func() []Image
	PoolSnapshot func() (s PoolStats, ok bool)
	// KernelSnapshot: ok=false until the module was probed.
	KernelSnapshot func() (k KernelModule, ok bool)
)

// Set is one registry with the daxfs collectors on it. The process uses
// Default; tests make their own with New so they do not share counters.
type Set struct {
	Registry *prometheus.Registry

	stageDuration *prometheus.HistogramVec
	operations    *prometheus.CounterVec

	mu     sync.RWMutex
	node   NodeSnapshot
	pool   PoolSnapshot
	kernel KernelSnapshot
	state  *stateCollector
	ociM   ociMetrics
}

// New returns a Set with every collector registered, plus the Go and process
// collectors.
func New() *Set {
	s := &Set{Registry: prometheus.NewRegistry()}
	s.stageDuration = prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Namespace: namespace,
		Name:      "stage_duration_seconds",
		Help:      "Time to stage an image (copy into device memory and mount it), by mount backend.",
		// Staging copies up to GiBs into memory: 1 ms .. ~65 s.
		Buckets: prometheus.ExponentialBuckets(0.001, 4, 9),
	}, []string{"backend"})
	s.operations = prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: namespace,
		Name:      "csi_operations_total",
		Help:      "CSI calls served, by gRPC method and status code.",
	}, []string{"method", "code"})
	// Naming the descs here also orders their init before Default's.
	s.state = &stateCollector{set: s, descs: []*prometheus.Desc{
		descDeviceTotal, descDeviceUsed, descStaged, descSaved, descRefs, descRegion, descBackend, descHealthy, descKernelCap}}
	s.Registry.MustRegister(
		s.stageDuration,
		s.operations,
		s.state,
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
	)
	return s
}

// Default is the process-wide Set served by `daxfs-csi serve`.
var Default = New()

// Registry is Default's registry.
var Registry = Default.Registry

// ObserveStage records one stage on Default (the node's OnStage hook).
func ObserveStage(backend string, d time.Duration) { Default.ObserveStage(backend, d) }

// ObserveStage records how long staging an image took.
func (s *Set) ObserveStage(backend string, d time.Duration) {
	if backend == "" {
		backend = "unknown"
	}
	s.stageDuration.WithLabelValues(backend).Observe(d.Seconds())
}

// ObserveOperation counts one CSI call; code is the gRPC code name ("OK").
func (s *Set) ObserveOperation(method, code string) {
	s.operations.WithLabelValues(method, code).Inc()
}

// SetSources installs what the scrape-time gauges read.
func (s *Set) SetSources(pool PoolSnapshot, node NodeSnapshot) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.pool, s.node = pool, node
}

// SetKernelSource installs what the kernel module gauge reads.
func (s *Set) SetKernelSource(k KernelSnapshot) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.kernel = k
}

// Handler serves /metrics from the Set and /healthz from healthy (nil: always ok).
func (s *Set) Handler(healthy func() error) http.Handler {
	mux := http.NewServeMux()
	mux.Handle("/metrics", promhttp.HandlerFor(s.Registry, promhttp.HandlerOpts{}))
	mux.HandleFunc("/healthz", func(w http.ResponseWriter, r *http.Request) {
		if healthy != nil {
			if err := healthy(); err != nil {
				http.Error(w, err.Error(), http.StatusServiceUnavailable)
				return
			}
		}
		_, _ = w.Write([]byte("ok\n"))
	})
	return mux
}

var (
	descDeviceTotal = prometheus.NewDesc(namespace+"_device_bytes_total",
		"Bytes of device memory the pool can hold images in (its data region).", []string{"pool"}, nil)
	descDeviceUsed = prometheus.NewDesc(namespace+"_device_bytes_used",
		"Bytes of the data region held by extents.", []string{"pool"}, nil)
	descStaged = prometheus.NewDesc(namespace+"_staged_images",
		"Images staged on this node.", nil, nil)
	descSaved = prometheus.NewDesc(namespace+"_shared_bytes_saved",
		"Device bytes saved by sharing: sum over images of region bytes x (references - 1).", nil, nil)
	descRefs = prometheus.NewDesc(namespace+"_image_references",
		"Volumes using a staged image.", []string{"digest"}, nil)
	descRegion = prometheus.NewDesc(namespace+"_image_region_bytes",
		"Device bytes held by a staged image.", []string{"digest"}, nil)
	descBackend = prometheus.NewDesc(namespace+"_image_mount_backend",
		"Mount backend of a staged image (1 for the backend in use) and why it was chosen.", []string{"digest", "backend", "reason"}, nil)
	descHealthy = prometheus.NewDesc(namespace+"_image_healthy",
		"1 when the image mount answers, else 0.", []string{"digest"}, nil)
	descKernelCap = prometheus.NewDesc(namespace+"_kernel_module_capability",
		"What the probe found the loaded kernel daxfs module able to do: mount, shared_map (DAX), private_write_map (exec); 1 yes, 0 no.",
		[]string{"capability"}, nil)
)

// stateCollector reads the pool and the node when scraped, so the gauges
// can never drift from the truth.
type stateCollector struct {
	set   *Set
	descs []*prometheus.Desc
}

func (c *stateCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range c.descs {
		ch <- d
	}
}

func (c *stateCollector) Collect(ch chan<- prometheus.Metric) {
	c.set.mu.RLock()
	pool, node, kernel := c.set.pool, c.set.node, c.set.kernel
	c.set.mu.RUnlock()

	if kernel != nil {
		if k, ok := kernel(); ok {
			for _, cp := range []struct {
				name string
				ok   bool
			}{{"mount", k.Mount}, {"shared_map", k.SharedMap}, {"private_write_map", k.PrivateWriteMap}} {
				ch <- prometheus.MustNewConstMetric(descKernelCap, prometheus.GaugeValue, b2f(cp.ok), cp.name)
			}
		}
	}

	if pool != nil {
		if st, ok := pool(); ok {
			ch <- prometheus.MustNewConstMetric(descDeviceTotal, prometheus.GaugeValue, float64(st.Total), st.Pool)
			ch <- prometheus.MustNewConstMetric(descDeviceUsed, prometheus.GaugeValue, float64(st.Used), st.Pool)
		}
	}
	if node == nil {
		return
	}
	images := node()
	var saved int64
	for _, im := range images {
		if im.References > 1 {
			saved += im.RegionBytes * int64(im.References-1)
		}
		ch <- prometheus.MustNewConstMetric(descRefs, prometheus.GaugeValue, float64(im.References), im.Digest)
		ch <- prometheus.MustNewConstMetric(descRegion, prometheus.GaugeValue, float64(im.RegionBytes), im.Digest)
		backend := im.Backend
		if backend == "" {
			backend = "unknown"
		}
		reason := im.Reason
		if reason == "" {
			reason = "unknown"
		}
		ch <- prometheus.MustNewConstMetric(descBackend, prometheus.GaugeValue, 1, im.Digest, backend, reason)
		ch <- prometheus.MustNewConstMetric(descHealthy, prometheus.GaugeValue, b2f(im.Healthy), im.Digest)
	}
	ch <- prometheus.MustNewConstMetric(descStaged, prometheus.GaugeValue, float64(len(images)))
	ch <- prometheus.MustNewConstMetric(descSaved, prometheus.GaugeValue, float64(saved))
}

func b2f(b bool) float64 {
	if b {
		return 1
	}
	return 0
}
