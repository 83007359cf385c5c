package fusefs

import (
	"errors"
	iofs "io/fs"
	"sync"
	"sync/atomic"
	"syscall"

	"k8s.io/klog/v2"
)

// maxLoggedInodes bounds the "log once per inode" set: a thoroughly
// corrupt image must not grow memory or flood the log.
const maxLoggedInodes = 1024

// errLog remembers which inodes already had their corruption logged.
type errLog struct {
	seen   sync.Map // uint32 -> struct{}
	count  atomic.Int64
	fsName string
}

// errno turns an image error into what the kernel sees. Misses are ENOENT;
// everything else means the image is corrupt: EIO, logged once per inode.
func (l *errLog) errno(op string, ino uint32, err error) syscall.Errno {
	if errors.Is(err, iofs.ErrNotExist) {
		return syscall.ENOENT
	}
	if _, dup := l.seen.Load(ino); dup {
		return syscall.EIO
	}
	if l.count.Add(1) > maxLoggedInodes {
		return syscall.EIO
	}
	if _, dup := l.seen.LoadOrStore(ino, struct{}{}); !dup {
		klog.ErrorS(err, "Corrupt image entry; answering EIO", "fs", l.fsName, "op", op, "ino", ino)
	}
	return syscall.EIO
}
