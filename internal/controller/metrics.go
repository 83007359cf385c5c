package controller

import (
	"github.com/prometheus/client_golang/prometheus"
	ctrlmetrics "sigs.k8s.io/controller-runtime/pkg/metrics"
)

// Placement metrics, served with controller-runtime's on /metrics.
var (
	placementSeconds = prometheus.NewHistogram(prometheus.HistogramOpts{
		Name:    "daxfs_controller_placement_seconds",
		Help:    "Time of one placement.Place call over the whole cluster.",
		Buckets: prometheus.ExponentialBuckets(0.001, 4, 8), // 1 ms .. 16 s
	})
	imagesUnmet = prometheus.NewGauge(prometheus.GaugeOpts{
		Name: "daxfs_controller_images_unmet",
		Help: "DaxImages with some wanted copy that has no pool.",
	})
	liveNodesGauge = prometheus.NewGauge(prometheus.GaugeOpts{
		Name: "daxfs_controller_live_nodes",
		Help: "DaxNodes whose heartbeat is younger than the TTL.",
	})
	evictionsTotal = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "daxfs_controller_evictions_total",
		Help: "Pre-staged copies the placement decided to evict for higher-priority images.",
	})
)

func init() {
	ctrlmetrics.Registry.MustRegister(placementSeconds, imagesUnmet, liveNodesGauge, evictionsTotal)
}
