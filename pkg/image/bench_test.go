package image

import (
	"fmt"
	"io"
	"os"
	"path/filepath"
	"syscall"
	"testing"
)

// Benchmarks on a generated tree of 50,000 files and about 1.2 GiB,
// generated once into $DAXFS_BENCH_DIR (default: $TMPDIR/daxfs-bench) and
// reused:
//
//	go test ./pkg/image -run '^$' -bench . -benchtime 3x
const (
	benchDirs        = 500
	benchFilesPerDir = 100
	benchBigEvery    = 1000     // every 1000th file is big
	benchBigSize     = 16 << 20 // 50 files of 16 MiB
	benchTreeVersion = "v1"
)

var benchSmallSizes = []int{0, 100, 1000, 4096, 5000, 12000, 30000}

func benchDir(b *testing.B) string {
	d := os.Getenv("DAXFS_BENCH_DIR")
	if d == "" {
		d = filepath.Join(os.TempDir(), "daxfs-bench")
	}
	if err := os.MkdirAll(d, 0o755); err != nil {
		b.Fatal(err)
	}
	return d
}

// benchTree returns the generated source tree, making it on first use.
func benchTree(b *testing.B) (root string, files int, bytes int64) {
	root = filepath.Join(benchDir(b), "image-tree-"+benchTreeVersion)
	files = benchDirs * benchFilesPerDir
	for i := range files {
		bytes += int64(benchFileSize(i))
	}
	if _, err := os.Stat(filepath.Join(root, ".complete")); err == nil {
		return root, files, bytes
	}
	b.Logf("generating %d files, %d bytes into %s", files, bytes, root)
	os.RemoveAll(root)
	buf := make([]byte, benchBigSize)
	for i := range files {
		dir := filepath.Join(root, fmt.Sprintf("d%03d", i/benchFilesPerDir))
		if i%benchFilesPerDir == 0 {
			if err := os.MkdirAll(dir, 0o755); err != nil {
				b.Fatal(err)
			}
		}
		n := benchFileSize(i)
		x := uint32(i)*2654435761 + 1
		for j := 0; j < n; j += 4 { // cheap xorshift: not compressible, not sparse
			x ^= x << 13
			x ^= x >> 17
			x ^= x << 5
			le.PutUint32(buf[j:], x)
		}
		if err := os.WriteFile(filepath.Join(dir, fmt.Sprintf("f%05d", i)), buf[:n], 0o644); err != nil {
			b.Fatal(err)
		}
	}
	if err := os.WriteFile(filepath.Join(root, ".complete"), nil, 0o644); err != nil {
		b.Fatal(err)
	}
	return root, files, bytes
}

func benchFileSize(i int) int {
	if i%benchBigEvery == benchBigEvery-1 {
		return benchBigSize
	}
	return benchSmallSizes[i%len(benchSmallSizes)]
}

type countWriter struct{ n int64 }

func (w *countWriter) Write(p []byte) (int, error) { w.n += int64(len(p)); return len(p), nil }

// BenchmarkBuild measures AddDir + WriteTo of the tree into a counting
// writer (source files are in the page cache after the first run).
func BenchmarkBuild(b *testing.B) {
	root, files, _ := benchTree(b)
	var size int64
	b.ResetTimer()
	for range b.N {
		bl := NewBuilder(BuildOptions{})
		if err := bl.AddDir(root); err != nil {
			b.Fatal(err)
		}
		var w countWriter
		if _, err := bl.WriteTo(&w); err != nil {
			b.Fatal(err)
		}
		bl.Close()
		size = w.n
	}
	b.SetBytes(size)
	b.ReportMetric(float64(files)*float64(b.N)/b.Elapsed().Seconds(), "files/s")
}

// benchImage builds the tree's image file once and maps it.
func benchImage(b *testing.B) []byte {
	root, _, _ := benchTree(b)
	p := filepath.Join(benchDir(b), "image-"+benchTreeVersion+".daxfs")
	if _, err := os.Stat(p); err != nil {
		bl := NewBuilder(BuildOptions{})
		if err := bl.AddDir(root); err != nil {
			b.Fatal(err)
		}
		f, err := os.Create(p + ".tmp")
		if err != nil {
			b.Fatal(err)
		}
		if _, err := bl.WriteTo(f); err != nil {
			b.Fatal(err)
		}
		if err := f.Close(); err != nil {
			b.Fatal(err)
		}
		if err := os.Rename(p+".tmp", p); err != nil {
			b.Fatal(err)
		}
	}
	f, err := os.Open(p)
	if err != nil {
		b.Fatal(err)
	}
	defer f.Close()
	st, _ := f.Stat()
	m, err := syscall.Mmap(int(f.Fd()), 0, int(st.Size()), syscall.PROT_READ, syscall.MAP_SHARED)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { syscall.Munmap(m) })
	return m
}

// BenchmarkOpenValidateWalk: OpenBytes + Validate + Walk of the mapped
// image (metadata only; Validate also reads every object's tail padding).
func BenchmarkOpenValidateWalk(b *testing.B) {
	m := benchImage(b)
	b.ResetTimer()
	for range b.N {
		im, err := OpenBytes(m)
		if err != nil {
			b.Fatal(err)
		}
		if err := im.Validate(); err != nil {
			b.Fatal(err)
		}
		n := 0
		if err := im.Walk(func(string, Inode) error { n++; return nil }); err != nil {
			b.Fatal(err)
		}
		if n != benchDirs*benchFilesPerDir+benchDirs+2 { // + root and .complete
			b.Fatalf("walked %d entries", n)
		}
	}
	b.ReportMetric(float64(benchDirs*benchFilesPerDir)*float64(b.N)/b.Elapsed().Seconds(), "files/s")
}

// The accessors the FUSE server calls per request.
func BenchmarkHotPaths(b *testing.B) {
	m := benchImage(b)
	im, err := OpenBytes(m)
	if err != nil {
		b.Fatal(err)
	}
	dir, err := im.Lookup(RootIno, "d250")
	if err != nil {
		b.Fatal(err)
	}
	file, err := im.Lookup(dir.Ino, "f25099")
	if err != nil {
		b.Fatal(err)
	}
	b.Run("Inode", func(b *testing.B) {
		b.ReportAllocs()
		for range b.N {
			if _, err := im.Inode(file.Ino); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("Lookup/last-of-100", func(b *testing.B) {
		b.ReportAllocs()
		for range b.N {
			if _, err := im.Lookup(dir.Ino, "f25099"); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("Lookup/miss-in-500", func(b *testing.B) {
		b.ReportAllocs()
		for range b.N {
			if _, err := im.Lookup(RootIno, "nope"); err == nil {
				b.Fatal("found")
			}
		}
	})
	b.Run("ReadDir/100", func(b *testing.B) {
		b.ReportAllocs()
		for range b.N {
			if _, err := im.ReadDir(dir.Ino); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("FileBytes", func(b *testing.B) {
		b.ReportAllocs()
		for range b.N {
			if _, err := im.FileBytes(file.Ino); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("ReadAt/64KiB", func(b *testing.B) {
		big, err := im.LookupPath("/d009/f00999")
		if err != nil {
			b.Fatal(err)
		}
		buf := make([]byte, 64<<10)
		b.SetBytes(int64(len(buf)))
		b.ReportAllocs()
		for i := range b.N {
			if _, err := im.ReadAt(big.Ino, buf, int64(i%200)*int64(len(buf))); err != nil && err != io.EOF {
				b.Fatal(err)
			}
		}
	})
}
