package main

import (
	"flag"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/promhttp"
	"k8s.io/klog/v2"
	ctrlmetrics "sigs.k8s.io/controller-runtime/pkg/metrics"

	"github.com/daxfs-csi/daxfs-csi/internal/metrics"
)

func readDoc(t *testing.T, name string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("..", "..", "docs", name))
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// docs/controller.md documents every flag `serve -h` prints (klog's aside).
func TestDocsListEveryServeFlag(t *testing.T) {
	klogFlags := flag.NewFlagSet("klog", flag.ContinueOnError)
	klog.InitFlags(klogFlags)
	_, usage, code := runImageCLI(t, nil, "serve", "-h")
	if code != 0 {
		t.Fatalf("serve -h: exit %d", code)
	}
	doc := readDoc(t, "controller.md")
	names := regexp.MustCompile(`(?m)^  -([a-z0-9_-]+)`).FindAllStringSubmatch(usage, -1)
	if len(names) < 20 {
		t.Fatalf("serve -h lists %d flags; the usage format changed?\n%s", len(names), usage)
	}
	for _, m := range names {
		if klogFlags.Lookup(m[1]) != nil {
			continue
		}
		if !strings.Contains(doc, "| `--"+m[1]+"` |") {
			t.Errorf("docs/controller.md has no table row for serve --%s", m[1])
		}
	}
}

// docs/metrics.md names every daxfs_ metric serve and the controller export.
func TestDocsListEveryMetric(t *testing.T) {
	set := metrics.New()
	set.SetSources(
		func() (metrics.PoolStats, bool) { return metrics.PoolStats{Pool: "p", Total: 1, Used: 1}, true },
		func() []metrics.Image {
			return []metrics.Image{{Digest: "sha256:x", References: 2, RegionBytes: 1, Backend: "fuse", Healthy: true}}
		})
	set.ObserveStage("fuse", time.Second)
	set.ObserveOperation("/csi.v1.Node/NodePublishVolume", "OK")
	set.ObserveConversion("ok", time.Second)
	set.SetConversions(func() []metrics.Conversion { return []metrics.Conversion{{Source: "oci://r/x", Layers: 1, Bytes: 1}} })

	doc := readDoc(t, "metrics.md")
	seen := 0
	for _, families := range [][]string{scrapeNames(t, set.Handler(nil)), scrapeNames(t, promhttp.HandlerFor(ctrlmetrics.Registry, promhttp.HandlerOpts{}))} {
		for _, name := range families {
			if !strings.HasPrefix(name, "daxfs_") {
				continue
			}
			seen++
			if !strings.Contains(doc, "| `"+name+"` |") {
				t.Errorf("docs/metrics.md has no table row for %s", name)
			}
		}
	}
	if seen < 19 {
		t.Errorf("gathered %d daxfs_ metrics, want the 15 of serve and the 4 of the controller", seen)
	}
}

// scrapeNames reads /metrics from h and returns the metric family names.
func scrapeNames(t *testing.T, h http.Handler) []string {
	t.Helper()
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest("GET", "/metrics", nil))
	if rec.Code != http.StatusOK {
		t.Fatalf("/metrics: HTTP %d", rec.Code)
	}
	var names []string
	for _, m := range regexp.MustCompile(`(?m)^# TYPE (\S+) `).FindAllStringSubmatch(rec.Body.String(), -1) {
		names = append(names, m[1])
	}
	return names
}
