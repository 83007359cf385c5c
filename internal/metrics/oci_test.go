package metrics

import (
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
)

// In-flight conversions are read at scrape time; finished ones are counted
// and timed by result.
func TestConversionMetrics(t *testing.T) {
	s := New()
	active := []Conversion{{Source: "oci://r.example/a@sha256:1", Layers: 2, Bytes: 4096}}
	s.SetConversions(func() []Conversion { return active })
	s.ObserveConversion("ok", 2*time.Second)
	s.ObserveConversion("error", time.Second)
	s.ObserveConversion("ok", time.Second)

	want := `
# HELP daxfs_oci_conversion_bytes_read Uncompressed layer bytes read so far by a conversion under way.
# TYPE daxfs_oci_conversion_bytes_read gauge
daxfs_oci_conversion_bytes_read{source="oci://r.example/a@sha256:1"} 4096
# HELP daxfs_oci_conversion_layers_done Layers stacked so far by a conversion under way.
# TYPE daxfs_oci_conversion_layers_done gauge
daxfs_oci_conversion_layers_done{source="oci://r.example/a@sha256:1"} 2
# HELP daxfs_oci_conversions_active oci:// conversions under way.
# TYPE daxfs_oci_conversions_active gauge
daxfs_oci_conversions_active 1
# HELP daxfs_oci_conversions_total Container image conversions attempted, by result (ok|error).
# TYPE daxfs_oci_conversions_total counter
daxfs_oci_conversions_total{result="error"} 1
daxfs_oci_conversions_total{result="ok"} 2
`
	if err := testutil.GatherAndCompare(s.Registry, strings.NewReader(want),
		"daxfs_oci_conversion_bytes_read", "daxfs_oci_conversion_layers_done", "daxfs_oci_conversions_active", "daxfs_oci_conversions_total"); err != nil {
		t.Error(err)
	}
	if n := testutil.CollectAndCount(s.Registry, "daxfs_oci_conversion_duration_seconds"); n != 2 {
		t.Errorf("duration histogram series = %d, want 2 (ok, error)", n)
	}
	active = nil
	if err := testutil.GatherAndCompare(s.Registry, strings.NewReader(`
# HELP daxfs_oci_conversions_active oci:// conversions under way.
# TYPE daxfs_oci_conversions_active gauge
daxfs_oci_conversions_active 0
`), "daxfs_oci_conversions_active", "daxfs_oci_conversion_bytes_read"); err != nil {
		t.Errorf("after the conversion ended: %v", err)
	}
}
