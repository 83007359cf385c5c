package nodeserver

import (
	"fmt"
	"os"
	"testing"
)

// Image sizes for the publish benchmark: the tree1 sample padded with zeros
// (the reader accepts trailing bytes), so the region grows while the tree
// stays the same. Publish must not depend on it.
var benchSizes = []int64{4 << 20, 64 << 20, 256 << 20}

// BenchmarkPublish compares NodePublishVolume of an already staged image
// (PV: bind from the staging path; inline: resolve + reference + bind)
// with a bare bind mount + ro remount of the same image mount. Unpublish
// runs with the timer stopped.
//
//	go test -run '^$' -bench BenchmarkPublish -benchtime 200x ./pkg/nodeserver/
func BenchmarkPublish(b *testing.B) {
	for _, size := range benchSizes {
		b.Run(fmt.Sprintf("size=%dMiB", size>>20), func(b *testing.B) {
			e := newEnv(b, size+64<<20, nil)
			img := readFile(b, samplePath(b, "tree1.static.daxfs"))
			img = append(img, make([]byte, size-int64(len(img)))...)
			uri, dg := e.writeImage("bench.daxfs", img)
			staging := e.path("staging")
			must(b, e.stage("pv", uri, dg, staging, nil))
			imageMnt := e.ns.store.ImageMount(dg)

			b.Run("bare-bind", func(b *testing.B) {
				for i := 0; i < b.N; i++ {
					t := e.path("bare", fmt.Sprint(i))
					must(b, os.MkdirAll(t, 0o750))
					must(b, bindMount(imageMnt, t, true))
					b.StopTimer()
					must(b, cleanupTarget(t))
					b.StartTimer()
				}
			})
			b.Run("publish-pv", func(b *testing.B) {
				for i := 0; i < b.N; i++ {
					t := e.path("pv", fmt.Sprint(i))
					must(b, e.publish("pv", uri, dg, staging, t, nil))
					b.StopTimer()
					must(b, e.unpublish("pv", t))
					b.StartTimer()
				}
			})
			b.Run("publish-inline", func(b *testing.B) {
				for i := 0; i < b.N; i++ {
					t := e.path("inline", fmt.Sprint(i))
					must(b, e.publish(fmt.Sprint("inline-", i), uri, dg, "", t, nil))
					b.StopTimer()
					must(b, e.unpublish(fmt.Sprint("inline-", i), t))
					b.StartTimer()
				}
			})
			b.Run("publish-inline-nodigest", func(b *testing.B) {
				for i := 0; i < b.N; i++ {
					t := e.path("nodigest", fmt.Sprint(i))
					must(b, e.publish(fmt.Sprint("nd-", i), uri, "", "", t, nil))
					b.StopTimer()
					must(b, e.unpublish(fmt.Sprint("nd-", i), t))
					b.StartTimer()
				}
			})
			if f := e.pool.fills.Load(); f != 1 {
				b.Fatalf("image filled %d times", f)
			}
		})
	}
}

// BenchmarkPoolBytes reports the pool bytes used by N inline publishes of
// one image: it must not grow with N.
//
//	go test -run '^$' -bench BenchmarkPoolBytes -benchtime 1x ./pkg/nodeserver/
func BenchmarkPoolBytes(b *testing.B) {
	for _, n := range []int{1, 10, 100} {
		b.Run(fmt.Sprintf("N=%d", n), func(b *testing.B) {
			for it := 0; it < b.N; it++ {
				e := newEnv(b, 64<<20, nil)
				uri, dg := e.addImage("tree1.static.daxfs", "tree1.daxfs")
				size, _ := os.Stat(e.images + "/tree1.daxfs")
				free0 := e.pool.Status().Free
				for i := 0; i < n; i++ {
					must(b, e.publish(fmt.Sprint("v", i), uri, dg, "", e.path("pods", fmt.Sprint(i)), nil))
				}
				used := free0 - e.pool.Status().Free
				b.ReportMetric(float64(used), "pool-bytes")
				b.ReportMetric(float64(size.Size()), "image-bytes")
				for i := 0; i < n; i++ {
					must(b, e.unpublish(fmt.Sprint("v", i), e.path("pods", fmt.Sprint(i))))
				}
			}
		})
	}
}
