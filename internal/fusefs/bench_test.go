package fusefs

import (
	"fmt"
	"io"
	"io/fs"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"

	"github.com/daxfs-csi/daxfs-csi/pkg/image"
)

// Benchmarks compare the FUSE mount with the same tree copied to tmpfs (and,
// when the tools are installed, kernel erofs on a loop device and
// squashfuse), on a tree of many small files plus a few big ones. As root:
//
//	go test -run '^$' -bench . -benchtime 5x ./internal/fusefs
//
// "warm" means the kernel caches are filled by a first pass outside the
// timer; "cold" remounts (empty kernel caches) for every iteration.

const (
	benchDirs     = 100
	benchPerDir   = 50 // 5000 small files
	benchBigFiles = 4
	benchBigSize  = 32 << 20
)

var benchFixture struct {
	once  sync.Once
	image []byte
	tmpfs string
	err   error
}

func TestMain(m *testing.M) {
	code := m.Run()
	if benchFixture.tmpfs != "" {
		os.RemoveAll(benchFixture.tmpfs)
	}
	os.Exit(code)
}

// benchTree builds the image and its tmpfs copy once per test binary.
func benchTree(b *testing.B) ([]byte, string) {
	f := &benchFixture
	f.once.Do(func() {
		rng := rand.New(rand.NewPCG(1, 2))
		tr := newTestTree()
		dir, err := os.MkdirTemp("/dev/shm", "daxfs-bench-")
		if err != nil {
			f.err = err
			return
		}
		f.tmpfs = dir
		put := func(p string, mode uint32, data []byte) {
			tr.add(p, mode, data)
			full := filepath.Join(dir, p)
			if mode&syscall.S_IFMT == syscall.S_IFDIR {
				f.err = os.Mkdir(full, os.FileMode(mode&0o777))
			} else if f.err == nil {
				f.err = os.WriteFile(full, data, os.FileMode(mode&0o777))
			}
		}
		for d := 0; d < benchDirs && f.err == nil; d++ {
			dp := fmt.Sprintf("/dir%03d", d)
			put(dp, syscall.S_IFDIR|0o755, nil)
			for i := 0; i < benchPerDir; i++ {
				data := make([]byte, 100+rng.IntN(16<<10))
				fillRandom(rng, data)
				put(fmt.Sprintf("%s/file%03d.txt", dp, i), syscall.S_IFREG|0o644, data)
			}
		}
		put("/big", syscall.S_IFDIR|0o755, nil)
		for i := 0; i < benchBigFiles && f.err == nil; i++ {
			data := make([]byte, benchBigSize)
			fillRandom(rng, data)
			put(fmt.Sprintf("/big/blob%d.bin", i), syscall.S_IFREG|0o644, data)
		}
		f.image = tr.bytes()
	})
	if f.err != nil {
		b.Fatal(f.err)
	}
	return f.image, f.tmpfs
}

func fillRandom(rng *rand.Rand, p []byte) {
	for i := 0; i+8 <= len(p); i += 8 {
		v := rng.Uint64()
		for j := 0; j < 8; j++ {
			p[i+j] = byte(v >> (8 * j))
		}
	}
}

// benchTargets mounts the image and returns the directories to measure.
func benchTargets(b *testing.B) map[string]string {
	img, tmpfs := benchTree(b)
	im, err := image.OpenBytes(img)
	if err != nil {
		b.Fatal(err)
	}
	_, mnt := mountTest(b, im, Options{})
	targets := otherTargets(b, tmpfs)
	targets["fuse"], targets["tmpfs"] = mnt, tmpfs
	return targets
}

func walkStat(b *testing.B, dir string) int {
	n := 0
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if _, err := os.Lstat(p); err != nil {
			return err
		}
		n++
		return nil
	})
	if err != nil {
		b.Fatal(err)
	}
	return n
}

func readAll(b *testing.B, dir string) int64 {
	var total int64
	buf := make([]byte, 1<<20)
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || !d.Type().IsRegular() {
			return err
		}
		f, err := os.Open(p)
		if err != nil {
			return err
		}
		defer f.Close()
		n, err := io.CopyBuffer(io.Discard, f, buf)
		total += n
		return err
	})
	if err != nil {
		b.Fatal(err)
	}
	return total
}

// tarSize runs `tar -cf - . | wc -c` in dir (tar writing to a pipe reads
// every file; to /dev/null GNU tar would skip the data).
func tarSize(b *testing.B, dir string) int64 {
	cmd := exec.Command("sh", "-c", "tar -cf - . | wc -c")
	cmd.Dir = dir
	out, err := cmd.Output()
	if err != nil {
		b.Fatalf("tar in %s: %v", dir, err)
	}
	n, err := strconv.ParseInt(strings.TrimSpace(string(out)), 10, 64)
	if err != nil {
		b.Fatal(err)
	}
	return n
}

func benchWarm(b *testing.B, run func(*testing.B, string) int64) {
	targets := benchTargets(b)
	for _, name := range []string{"fuse", "tmpfs", "erofs", "squashfuse"} {
		dir, ok := targets[name]
		if !ok {
			continue
		}
		b.Run(name, func(b *testing.B) {
			run(b, dir) // fill the caches
			b.ResetTimer()
			for b.Loop() {
				run(b, dir)
			}
		})
	}
}

func BenchmarkWarmWalkStat(b *testing.B) {
	benchWarm(b, func(b *testing.B, d string) int64 { return int64(walkStat(b, d)) })
}

func BenchmarkWarmReadAll(b *testing.B) { benchWarm(b, readAll) }

func BenchmarkWarmTar(b *testing.B) { benchWarm(b, tarSize) }

// BenchmarkWarmTarOpenEachFile is the warm tar with OPEN/RELEASE sent for
// every file (FOPEN_KEEP_CACHE) instead of the kernel's no-open mode.
func BenchmarkWarmTarOpenEachFile(b *testing.B) {
	noOpen = false
	defer func() { noOpen = true }()
	img, _ := benchTree(b)
	im, err := image.OpenBytes(img)
	if err != nil {
		b.Fatal(err)
	}
	_, mnt := mountTest(b, im, Options{})
	tarSize(b, mnt)
	b.ResetTimer()
	for b.Loop() {
		tarSize(b, mnt)
	}
}

// BenchmarkWarmWalkStatOpendir is the warm walk with OPENDIR and
// RELEASEDIR answered for every directory (the peer of noOpendir).
func BenchmarkWarmWalkStatOpendir(b *testing.B) {
	noOpendirSupport = false
	defer func() { noOpendirSupport = true }()
	BenchmarkWarmWalkStat(b)
}

// BenchmarkColdFUSE remounts for every iteration, so every lookup, getattr,
// readdir and page goes through the server (the image bytes stay mapped).
func BenchmarkColdFUSE(b *testing.B) {
	img, _ := benchTree(b)
	im, err := image.OpenBytes(img)
	if err != nil {
		b.Fatal(err)
	}
	for _, w := range []struct {
		name string
		run  func(*testing.B, string) int64
	}{
		{"walkstat", func(b *testing.B, d string) int64 { return int64(walkStat(b, d)) }},
		{"readall", readAll},
		{"tar", tarSize},
	} {
		// push-off: without PushSiblingsKB's stores every small file is a READ.
		for _, push := range []int{0, -1} {
			name := w.name
			if push < 0 {
				name += "/push-off"
			}
			b.Run(name, func(b *testing.B) {
				for b.Loop() {
					b.StopTimer()
					s, mnt := mountTest(b, im, Options{PushSiblingsKB: push})
					b.StartTimer()
					w.run(b, mnt)
					b.StopTimer()
					unmountTest(b, s)
					b.StartTimer()
				}
			})
		}
	}
}

// BenchmarkColdBigFiles reads the big files on a fresh mount, with the
// kernel's 128 KiB readahead and with the 1 MiB window Mount sets.
func BenchmarkColdBigFiles(b *testing.B) {
	img, _ := benchTree(b)
	im, err := image.OpenBytes(img)
	if err != nil {
		b.Fatal(err)
	}
	for _, ra := range []int{-1, 1024} {
		name := "readahead-default"
		if ra > 0 {
			name = fmt.Sprintf("readahead-%dk", ra)
		}
		b.Run(name, func(b *testing.B) {
			b.SetBytes(benchBigFiles * benchBigSize)
			for b.Loop() {
				b.StopTimer()
				s, mnt := mountTest(b, im, Options{ReadAheadKB: ra})
				b.StartTimer()
				if n := readAll(b, filepath.Join(mnt, "big")); n != benchBigFiles*benchBigSize {
					b.Fatalf("read %d bytes", n)
				}
				b.StopTimer()
				unmountTest(b, s)
				b.StartTimer()
			}
		})
	}
}
