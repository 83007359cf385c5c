package metrics

import (
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Conversion is one oci:// conversion under way, read at scrape time.
type Conversion struct {
	Source string // redacted source, a label (bounded by conversions in flight)
	Layers int    // layers fully stacked so far
	Bytes  int64  // uncompressed layer bytes read so far
}

// ConversionSnapshot lists the conversions under way (internal/oci Active).
type ConversionSnapshot func() []Conversion

var (
	descConvActive = prometheus.NewDesc(namespace+"_oci_conversions_active",
		"oci:// conversions under way.", nil, nil)
	descConvLayers = prometheus.NewDesc(namespace+"_oci_conversion_layers_done",
		"Layers stacked so far by a conversion under way.", []string{"source"}, nil)
	descConvBytes = prometheus.NewDesc(namespace+"_oci_conversion_bytes_read",
		"Uncompressed layer bytes read so far by a conversion under way.", []string{"source"}, nil)
)

// ociMetrics are the converter's series; lazily made so New stays as is
// for sets that never convert.
type ociMetrics struct {
	once     sync.Once
	duration *prometheus.HistogramVec
	total    *prometheus.CounterVec

	mu     sync.RWMutex
	active ConversionSnapshot
}

func (s *Set) oci() *ociMetrics {
	s.ociM.once.Do(func() {
		m := &s.ociM
		m.duration = prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Namespace: namespace,
			Name:      "oci_conversion_duration_seconds",
			Help:      "Time to pull and convert a container image into a DAXFS image, by result (ok|error).",
			// Pulls of MiBs to GiBs: 0.1 s .. ~27 min.
			Buckets: prometheus.ExponentialBuckets(0.1, 3, 10),
		}, []string{"result"})
		m.total = prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: namespace,
			Name:      "oci_conversions_total",
			Help:      "Container image conversions attempted, by result (ok|error).",
		}, []string{"result"})
		s.Registry.MustRegister(m.duration, m.total, activeCollector{m})
	})
	return &s.ociM
}

// ObserveConversion records one finished conversion (internal/oci OnConversion).
func (s *Set) ObserveConversion(result string, d time.Duration) {
	m := s.oci()
	m.duration.WithLabelValues(result).Observe(d.Seconds())
	m.total.WithLabelValues(result).Inc()
}

// SetConversions installs what the in-flight conversion gauges read.
func (s *Set) SetConversions(f ConversionSnapshot) {
	m := s.oci()
	m.mu.Lock()
	defer m.mu.Unlock()
	m.active = f
}

type activeCollector struct{ m *ociMetrics }

func (c activeCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- descConvActive
	ch <- descConvLayers
	ch <- descConvBytes
}

func (c activeCollector) Collect(ch chan<- prometheus.Metric) {
	c.m.mu.RLock()
	f := c.m.active
	c.m.mu.RUnlock()
	if f == nil {
		return
	}
	act := f()
	ch <- prometheus.MustNewConstMetric(descConvActive, prometheus.GaugeValue, float64(len(act)))
	seen := map[string]bool{}
	for _, a := range act {
		if seen[a.Source] { // two platforms of one source: report the first
			continue
		}
		seen[a.Source] = true
		ch <- prometheus.MustNewConstMetric(descConvLayers, prometheus.GaugeValue, float64(a.Layers), a.Source)
		ch <- prometheus.MustNewConstMetric(descConvBytes, prometheus.GaugeValue, float64(a.Bytes), a.Source)
	}
}
