package oci

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"golang.org/x/sys/unix"
	"k8s.io/klog/v2"
)

// Entry is one converted image in the cache.
type Entry struct {
	Source         string    `json:"source"`         // as first asked for (redacted)
	OCIDigest      string    `json:"ociDigest"`      // the digest the source names (manifest or index)
	ManifestDigest string    `json:"manifestDigest"` // the platform's image manifest (docker-archive: config digest)
	Platform       string    `json:"platform"`       // "linux/amd64"
	Digest         string    `json:"digest"`         // sha256 of the DAXFS image
	Size           int64     `json:"size"`
	Converted      time.Time `json:"converted"`
	Path           string    `json:"-"` // the DAXFS file
}

// cache is the on-disk layout under Dir: <key>.daxfs beside <key>.json
// (written last, so a JSON file means a complete image), locks/<key>.lock,
// tags/<hash of source> for resolved tags. LRU order is the JSON file's
// mtime, touched on every use.
type cache struct {
	dir string
	max int64 // bytes of .daxfs files kept; 0: no cap
}

func (c *cache) image(key string) string { return filepath.Join(c.dir, key+".daxfs") }
func (c *cache) meta(key string) string  { return filepath.Join(c.dir, key+".json") }

func (c *cache) init() error {
	for _, d := range []string{c.dir, filepath.Join(c.dir, "locks"), filepath.Join(c.dir, "tags")} {
		if err := os.MkdirAll(d, 0o700); err != nil {
			return fmt.Errorf("oci cache: %w", err)
		}
	}
	return nil
}

// lookup returns the complete entry for key, touching it for LRU.
func (c *cache) lookup(key string) (Entry, bool) {
	b, err := os.ReadFile(c.meta(key))
	if err != nil {
		return Entry{}, false
	}
	var e Entry
	if json.Unmarshal(b, &e) != nil {
		return Entry{}, false
	}
	e.Path = c.image(key)
	st, err := os.Stat(e.Path)
	if err != nil || st.Size() != e.Size {
		return Entry{}, false
	}
	now := time.Now()
	os.Chtimes(c.meta(key), now, now)
	return e, true
}

// commit records e (its image already renamed into place) atomically.
func (c *cache) commit(key string, e Entry) error {
	b, err := json.MarshalIndent(e, "", "  ")
	if err != nil {
		return err
	}
	return writeAtomic(c.meta(key), b)
}

// clean removes what a crashed conversion of key left; the caller holds
// key's lock.
func (c *cache) clean(key string) {
	tmps, _ := filepath.Glob(filepath.Join(c.dir, "."+key+".*"))
	for _, t := range tmps {
		os.RemoveAll(t)
	}
	if _, err := os.Stat(c.meta(key)); errors.Is(err, fs.ErrNotExist) {
		os.Remove(c.image(key))
	}
}

// evict drops least recently used entries until the cache fits its cap,
// never keep (just converted) and never an entry another conversion holds
// locked. Open files stay readable after the unlink.
func (c *cache) evict(keep string) {
	if c.max <= 0 {
		return
	}
	type ent struct {
		key  string
		used time.Time
		size int64
	}
	metas, _ := filepath.Glob(filepath.Join(c.dir, "*.json"))
	var all []ent
	var total int64
	for _, m := range metas {
		key := strings.TrimSuffix(filepath.Base(m), ".json")
		mst, err1 := os.Stat(m)
		ist, err2 := os.Stat(c.image(key))
		if err1 != nil || err2 != nil {
			continue
		}
		all = append(all, ent{key, mst.ModTime(), ist.Size()})
		total += ist.Size()
	}
	sort.Slice(all, func(i, j int) bool { return all[i].used.Before(all[j].used) })
	for _, e := range all {
		if total <= c.max {
			return
		}
		if e.key == keep {
			continue
		}
		unlock, ok := c.tryLock(e.key)
		if !ok {
			continue
		}
		os.Remove(c.meta(e.key))
		os.Remove(c.image(e.key))
		unlock()
		total -= e.size
		klog.InfoS("Evicted converted OCI image", "key", e.key, "size", e.size)
	}
}

// tryLock takes key's cross-process lock without waiting.
func (c *cache) tryLock(key string) (func(), bool) {
	f, err := os.OpenFile(filepath.Join(c.dir, "locks", key+".lock"), os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		return nil, false
	}
	if err := unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB); err != nil {
		f.Close()
		return nil, false
	}
	return func() { unix.Flock(int(f.Fd()), unix.LOCK_UN); f.Close() }, true
}

// tagFile records the digest a tag-only source resolved to.
func (c *cache) tagFile(source string) string {
	h := sha256.Sum256([]byte(source))
	return filepath.Join(c.dir, "tags", hex.EncodeToString(h[:16]))
}

func writeAtomic(path string, b []byte) error {
	f, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".tmp-*")
	if err != nil {
		return err
	}
	_, err = f.Write(b)
	if err == nil {
		err = f.Sync()
	}
	err = errors.Join(err, f.Close())
	if err == nil {
		err = os.Rename(f.Name(), path)
	}
	if err != nil {
		os.Remove(f.Name())
	}
	return err
}
