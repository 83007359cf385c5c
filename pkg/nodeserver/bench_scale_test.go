package nodeserver

import (
	"bufio"
	"bytes"
	"flag"
	"os"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

var scaleVolumes = flag.Int("scale-volumes", 1000, "volumes per model in BenchmarkScale")

// BenchmarkScale publishes -scale-volumes volumes of one image on one node,
// then unpublishes them all, through the real NodeServer, and does the same
// with a bare bind loop (csi-driver-host-path's model: one read-only bind
// of the image per volume, unmount and rmdir to unpublish) in the same
// run, interleaved bare, inline, pv (-count 2 repeats the three).
// Per model it reports per-call latency percentiles (µs), the mount table
// size at the peak (lines of /proc/self/mountinfo) and the memory of this
// process, which hosts the node server: the Go heap after GC at the peak
// against before, and the RSS at the peak. The env's cleanup unmounts
// everything under its root, also when a call fails.
//
//	go test -run '^$' -bench BenchmarkScale -benchtime 1x ./pkg/nodeserver/
func BenchmarkScale(b *testing.B) {
	e := newEnv(b, 64<<20, nil)
	uri, dg := e.addImage("tree1.static.daxfs", "tree1.daxfs")
	// The image mount the bare loop binds: made by one staged volume that
	// stays for the whole run (the PV model's volumes share it too).
	must(b, e.stage("keep", uri, dg, e.path("keep"), nil))
	imageMnt := e.ns.store.ImageMount(dg)
	n := *scaleVolumes
	models := []struct {
		name       string
		setup      func(i int) // untimed, before the publishes
		pub, unpub func(i int) error
		teardown   func(i int) // untimed, after the unpublishes
	}{
		{name: "bare-bind",
			pub: func(i int) error {
				t := e.path("bare", strconv.Itoa(i))
				if err := os.MkdirAll(t, 0o750); err != nil {
					return err
				}
				return bindMount(imageMnt, t, true)
			},
			unpub: func(i int) error {
				t := e.path("bare", strconv.Itoa(i))
				if err := unix.Unmount(t, 0); err != nil {
					return err
				}
				return os.Remove(t)
			}},
		{name: "inline",
			pub: func(i int) error {
				return e.publish("inl-"+strconv.Itoa(i), uri, dg, "", e.path("inline", strconv.Itoa(i)), nil)
			},
			unpub: func(i int) error { return e.unpublish("inl-"+strconv.Itoa(i), e.path("inline", strconv.Itoa(i))) }},
		{name: "pv",
			setup: func(i int) { must(b, e.stage("pv-"+strconv.Itoa(i), uri, dg, e.path("staging", strconv.Itoa(i)), nil)) },
			pub: func(i int) error {
				return e.publish("pv-"+strconv.Itoa(i), uri, dg, e.path("staging", strconv.Itoa(i)), e.path("pv", strconv.Itoa(i)), nil)
			},
			unpub:    func(i int) error { return e.unpublish("pv-"+strconv.Itoa(i), e.path("pv", strconv.Itoa(i))) },
			teardown: func(i int) { must(b, e.unstage("pv-"+strconv.Itoa(i), e.path("staging", strconv.Itoa(i)))) }},
	}
	for _, m := range models {
		b.Run(m.name, func(b *testing.B) {
			var pub, unpub []time.Duration
			var lines, base int
			var heap, rss float64
			for it := 0; it < b.N; it++ {
				b.StopTimer()
				if m.setup != nil {
					for i := 0; i < n; i++ {
						m.setup(i)
					}
				}
				base = mountinfoLines(b)
				heap0 := heapAfterGC()
				b.StartTimer()
				pub = append(pub, timeEach(b, n, m.pub)...)
				b.StopTimer()
				lines = mountinfoLines(b)
				heap, rss = heapAfterGC()-heap0, vmRSS(b)
				b.StartTimer()
				unpub = append(unpub, timeEach(b, n, m.unpub)...)
				b.StopTimer()
				if m.teardown != nil {
					for i := 0; i < n; i++ {
						m.teardown(i)
					}
				}
				b.StartTimer()
			}
			reportPercentiles(b, "pub", pub)
			reportPercentiles(b, "unpub", unpub)
			b.ReportMetric(float64(lines), "mountinfo-lines")
			b.ReportMetric(float64(lines-base), "mounts-added")
			b.ReportMetric(heap/(1<<10), "heap-delta-KiB")
			b.ReportMetric(rss/(1<<20), "rss-MiB")
		})
	}
}

// timeEach calls f(0..n-1) and returns each call's latency; the first
// error fails the benchmark (the env's cleanup still unmounts everything).
func timeEach(b *testing.B, n int, f func(i int) error) []time.Duration {
	d := make([]time.Duration, n)
	for i := 0; i < n; i++ {
		t0 := time.Now()
		err := f(i)
		d[i] = time.Since(t0)
		if err != nil {
			b.Fatalf("call %d: %v", i, err)
		}
	}
	return d
}

func reportPercentiles(b *testing.B, what string, d []time.Duration) {
	slices.Sort(d)
	at := func(p float64) float64 {
		return float64(d[min(len(d)-1, int(p*float64(len(d))))].Nanoseconds()) / 1e3
	}
	b.ReportMetric(at(0.50), what+"-p50-µs")
	b.ReportMetric(at(0.90), what+"-p90-µs")
	b.ReportMetric(at(0.99), what+"-p99-µs")
	b.ReportMetric(float64(d[len(d)-1].Nanoseconds())/1e3, what+"-max-µs")
}

func mountinfoLines(b *testing.B) int {
	data, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		b.Fatal(err)
	}
	return bytes.Count(data, []byte("\n"))
}

func heapAfterGC() float64 {
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return float64(ms.HeapInuse)
}

// vmRSS is this process's resident set in bytes.
func vmRSS(b *testing.B) float64 {
	f, err := os.Open("/proc/self/status")
	if err != nil {
		b.Fatal(err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "VmRSS:"); ok {
			kb, err := strconv.ParseFloat(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 64)
			if err != nil {
				b.Fatal(err)
			}
			return kb * 1024
		}
	}
	b.Fatal("no VmRSS in /proc/self/status")
	return 0
}
