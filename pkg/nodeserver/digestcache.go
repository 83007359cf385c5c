package nodeserver

import (
	"net/url"
	"sync"

	"golang.org/x/sys/unix"
)

// digestCache remembers the digest computed for a file:// source without a
// digest attribute, keyed by the file's identity and change time, so each
// publish does not hash the whole image again. Any write to the file
// changes its ctime (which user space cannot set), and a changed key means
// hashing again; staging still verifies every byte it copies.
type digestCache struct {
	mu sync.Mutex
	m  map[fileKey]string
}

type fileKey struct {
	path             string
	dev, ino         uint64
	size             int64
	mtimeNs, ctimeNs int64
}

const digestCacheMax = 4096

// key stats a file:// URI; ok is false for other schemes or on error.
func fileKeyOf(uri string) (fileKey, bool) {
	u, err := url.Parse(uri)
	if err != nil || u.Scheme != "file" {
		return fileKey{}, false
	}
	var st unix.Stat_t
	if err := unix.Stat(u.Path, &st); err != nil {
		return fileKey{}, false
	}
	return fileKey{path: u.Path, dev: st.Dev, ino: st.Ino, size: st.Size,
		mtimeNs: st.Mtim.Nano(), ctimeNs: st.Ctim.Nano()}, true
}

func (c *digestCache) get(k fileKey) string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.m[k]
}

func (c *digestCache) put(k fileKey, digest string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.m == nil || len(c.m) >= digestCacheMax {
		c.m = map[fileKey]string{} // crude bound; entries are cheap to recompute
	}
	c.m[k] = digest
}
