package daxdev

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"golang.org/x/sys/unix"
	"k8s.io/klog/v2"

	"github.com/daxfs-csi/daxfs-csi/internal/machine"
)

// benchPool opens a pool for benchmarks: a memory file on /dev/shm (tmpfs,
// as in production) or the device-dax backend on the /dev/zero stand-in,
// whose flush is a CPU cache write-back.
func benchPool(b *testing.B, kind string, size int64) *Pool {
	b.Helper()
	klog.LogToStderr(false) // keep log lines out of the benchmark table
	klog.SetOutput(io.Discard)
	var p *Pool
	var err error
	switch kind {
	case "memfile":
		dir := "/dev/shm"
		if _, err := os.Stat(dir); err != nil {
			dir = b.TempDir()
		}
		path := filepath.Join(dir, fmt.Sprintf("daxdev-bench-%d", os.Getpid()))
		b.Cleanup(func() { os.Remove(path) })
		p, err = OpenPool("memfile:"+path, PoolOptions{Init: true, Force: true, Size: size})
	case "devdax":
		var st unix.Stat_t
		if err := unix.Stat("/dev/zero", &st); err != nil {
			machine.Lacks(b, "%v", err)
		}
		sys := b.TempDir()
		dir := filepath.Join(sys, "dev", "char", strconv.Itoa(int(unix.Major(st.Rdev)))+":"+strconv.Itoa(int(unix.Minor(st.Rdev))))
		os.MkdirAll(dir, 0o755)
		os.WriteFile(filepath.Join(dir, "size"), []byte(strconv.FormatInt(size, 10)), 0o600)
		os.WriteFile(filepath.Join(dir, "align"), []byte("2097152"), 0o600)
		p, err = OpenPool("devdax:/dev/zero", PoolOptions{SysRoot: sys, Init: true})
	}
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { p.Close() })
	return p
}

// BenchmarkStage measures stage throughput (reserve, copy, flush, flip to
// ready, then release) and, in the same run, a plain copy of the same bytes
// into ordinary memory; stage/copy is the ratio of the two times.
func BenchmarkStage(b *testing.B) {
	const n = 64 << 20
	for _, kind := range []string{"memfile", "devdax"} {
		b.Run(kind+"-64MiB", func(b *testing.B) {
			p := benchPool(b, kind, n+8<<20)
			src, dg := content(1, n)
			plain := make([]byte, n)
			copy(plain, src) // fault the pages in, as the pool's are after round one
			fill := func(dst []byte) error { copy(dst, src); return nil }
			if _, err := p.Stage(context.Background(), dg, n, "o", fill); err != nil {
				b.Fatal(err)
			}
			p.Release(dg, "o")
			var plainTime time.Duration
			b.SetBytes(n)
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				if _, err := p.Stage(context.Background(), dg, n, "o", fill); err != nil {
					b.Fatal(err)
				}
				if _, err := p.Release(dg, "o"); err != nil {
					b.Fatal(err)
				}
				b.StopTimer()
				t0 := time.Now()
				copy(plain, src)
				plainTime += time.Since(t0)
				b.StartTimer()
			}
			b.StopTimer()
			b.ReportMetric(float64(b.Elapsed())/float64(plainTime), "stage/copy")
		})
	}
}

func BenchmarkPoolOps(b *testing.B) {
	p := benchPool(b, "memfile", 64<<20)
	src, dg := content(2, 1<<20)
	ctx := context.Background()
	if _, err := p.Stage(ctx, dg, int64(len(src)), "keeper", copyFill(src, nil)); err != nil {
		b.Fatal(err)
	}
	b.Run("stage-existing", func(b *testing.B) {
		for i := 0; i < b.N; i++ {
			if _, err := p.Stage(ctx, dg, int64(len(src)), "again", copyFill(src, nil)); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("lookup", func(b *testing.B) {
		for i := 0; i < b.N; i++ {
			if _, ok := p.Lookup(dg); !ok {
				b.Fatal("not found")
			}
		}
	})
	b.Run("release", func(b *testing.B) {
		for i := 0; i < b.N; i++ {
			b.StopTimer()
			if _, err := p.Stage(ctx, dg, int64(len(src)), "temp", copyFill(src, nil)); err != nil {
				b.Fatal(err)
			}
			b.StartTimer()
			if _, err := p.Release(dg, "temp"); err != nil {
				b.Fatal(err)
			}
		}
	})
}
