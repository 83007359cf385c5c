package fusefs

import (
	"encoding/binary"
	"path"
	"syscall"

	"github.com/daxfs-csi/daxfs-csi/pkg/image"
)

// testTree builds small static DAXFS v5 images for tests and benchmarks
// (big directories, many files) without depending on a builder.
type testTree struct {
	nodes map[string]*testNode // by clean path; "/" is the root
}

type testNode struct {
	mode, uid, gid uint32
	data           []byte // file content or symlink target
	children       []string
	ino            uint32
	off            uint64
}

func newTestTree() *testTree {
	return &testTree{nodes: map[string]*testNode{"/": {mode: syscall.S_IFDIR | 0o755}}}
}

// add creates p (parents must exist) with mode and data; children are
// kept in the order added, which is the stored order.
func (t *testTree) add(p string, mode uint32, data []byte) {
	dir := path.Dir(p)
	parent := t.nodes[dir]
	if parent == nil {
		panic("testTree: no parent for " + p)
	}
	parent.children = append(parent.children, path.Base(p))
	t.nodes[p] = &testNode{mode: mode, data: data}
}

func (t *testTree) bytes() []byte {
	// Inode numbers in depth-first order, root first.
	var order []*testNode
	var number func(p string)
	number = func(p string) {
		n := t.nodes[p]
		order = append(order, n)
		n.ino = uint32(len(order))
		for _, c := range n.children {
			number(path.Join(p, c))
		}
	}
	number("/")
	count := uint64(len(order))
	align := func(v uint64) uint64 { return (v + 4095) &^ 4095 }
	dataOff := align(4096 + 64*count)
	end := dataOff
	for _, n := range order {
		var need uint64
		switch n.mode & syscall.S_IFMT {
		case syscall.S_IFDIR:
			need = uint64(len(n.children)) * image.DirentStride
		case syscall.S_IFREG:
			need = uint64(len(n.data))
		case syscall.S_IFLNK:
			need = uint64(len(n.data)) + 1
		}
		if need > 0 {
			n.off = end
			end += align(need)
		}
	}
	b := make([]byte, 4096+end)
	le := binary.LittleEndian
	le.PutUint32(b[0:], image.Magic)
	le.PutUint32(b[4:], image.Version)
	le.PutUint32(b[12:], 4096)
	le.PutUint64(b[16:], uint64(len(b)))
	le.PutUint64(b[24:], 4096)
	le.PutUint64(b[32:], end)
	le.PutUint64(b[64:], count+1)
	base := b[4096:]
	le.PutUint32(base[0:], image.BaseMagic)
	le.PutUint32(base[4:], image.Version)
	le.PutUint32(base[12:], 4096)
	le.PutUint64(base[16:], end)
	le.PutUint64(base[24:], 4096)
	le.PutUint32(base[32:], uint32(count))
	le.PutUint32(base[36:], 1)
	le.PutUint64(base[40:], dataOff)
	for p, n := range t.nodes {
		in := base[4096+64*uint64(n.ino-1):]
		le.PutUint32(in[0:], n.ino)
		le.PutUint32(in[4:], n.mode)
		le.PutUint32(in[8:], n.uid)
		le.PutUint32(in[12:], n.gid)
		le.PutUint64(in[24:], n.off)
		nlink := uint32(1)
		switch n.mode & syscall.S_IFMT {
		case syscall.S_IFDIR:
			le.PutUint64(in[16:], uint64(len(n.children))*image.DirentSize)
			nlink = 2
			for j, c := range n.children {
				cn := t.nodes[path.Join(p, c)]
				if cn.mode&syscall.S_IFMT == syscall.S_IFDIR {
					nlink++
				}
				e := base[n.off+uint64(j)*image.DirentStride:]
				le.PutUint32(e[0:], cn.ino)
				le.PutUint32(e[4:], cn.mode)
				le.PutUint16(e[8:], uint16(len(c)))
				copy(e[16:], c)
			}
		default:
			le.PutUint64(in[16:], uint64(len(n.data)))
			copy(base[n.off:], n.data)
		}
		le.PutUint32(in[32:], nlink)
	}
	return b
}
