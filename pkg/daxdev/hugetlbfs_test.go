package daxdev

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/daxfs-csi/daxfs-csi/internal/machine"
)

// TestMemfileOnHugetlbfs runs a memory-file pool on a private hugetlbfs mount
// with a few 2 MiB pages reserved for the test (root only; restored after).
func TestMemfileOnHugetlbfs(t *testing.T) {
	machine.NeedRoot(t, "reserving huge pages and mounting hugetlbfs")
	const knob = "/proc/sys/vm/nr_hugepages"
	old, err := os.ReadFile(knob)
	if err != nil {
		machine.Lacks(t, "no huge pages: %v", err)
	}
	n, _ := strconv.Atoi(strings.TrimSpace(string(old)))
	if err := os.WriteFile(knob, []byte(strconv.Itoa(n+6)), 0o644); err != nil {
		machine.Lacks(t, "reserve huge pages: %v", err)
	}
	t.Cleanup(func() { os.WriteFile(knob, old, 0o644) })
	mnt := t.TempDir()
	if err := unix.Mount("none", mnt, "hugetlbfs", 0, "pagesize=2M"); err != nil {
		machine.Lacks(t, "mount hugetlbfs: %v", err)
	}
	t.Cleanup(func() { unix.Unmount(mnt, unix.MNT_DETACH) })

	path := filepath.Join(mnt, "pool")
	p, err := OpenPool("memfile:"+path, PoolOptions{Init: true, Size: 8 << 20})
	if err != nil {
		t.Fatal(err)
	}
	b, dg := content(6, 3<<20+5)
	e, err := p.Stage(context.Background(), dg, int64(len(b)), "h", copyFill(b, nil))
	if err != nil {
		p.Close()
		t.Fatal(err)
	}
	p.Close()
	q, err := OpenPool("memfile:"+path, PoolOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer q.Close()
	got, ok := q.Lookup(dg)
	data, _ := q.Data(got)
	if !ok || got.Offset != e.Offset || !bytes.Equal(data, b) {
		t.Fatalf("hugetlbfs pool lost the extent: %+v %v", got, ok)
	}
	t.Cleanup(func() { os.Remove(path) })
}
