package driver

import (
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"k8s.io/klog/v2"
)

// journalFile is the controller's one record, in the state dir.
const journalFile = "controller-volumes.json"

// journalEntry is one created volume. The id is derived (volume.VolumeID),
// but CSI needs name → id, the capacity granted and a list for ListVolumes:
// that is all this keeps.
type journalEntry struct {
	Name      string            `json:"name"`
	ID        string            `json:"id"`
	Params    map[string]string `json:"params"`  // canonical attributes as requested
	Context   map[string]string `json:"context"` // volume context handed to the node (with digest)
	Digest    string            `json:"digest"`
	ImageSize int64             `json:"imageSize"`
	Capacity  int64             `json:"capacity"`
	Created   time.Time         `json:"created"`
	// Topology the volume was given in cluster mode; empty: this node's pool.
	Topology []map[string]string `json:"topology,omitempty"`
}

type journalDoc struct {
	Version int             `json:"version"`
	Volumes []*journalEntry `json:"volumes"`
}

// journal is safe for concurrent use; every change is written through
// (temp file + fsync + rename) before the call returns.
type journal struct {
	path   string
	mu     sync.Mutex
	byName map[string]*journalEntry
}

func openJournal(dir string) (*journal, error) {
	if err := os.MkdirAll(dir, 0o750); err != nil {
		return nil, fmt.Errorf("controller journal dir: %w", err)
	}
	j := &journal{path: filepath.Join(dir, journalFile), byName: map[string]*journalEntry{}}
	b, err := os.ReadFile(j.path)
	if errors.Is(err, os.ErrNotExist) {
		return j, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read controller journal: %w", err)
	}
	if err := j.load(b); err != nil {
		// Volume ids are derived and the node never reads this file, so a
		// damaged journal costs only idempotence and listing of older
		// volumes: keep it for inspection and start empty rather than take
		// the node service down with it.
		aside := fmt.Sprintf("%s.corrupt-%d", j.path, time.Now().Unix())
		if rerr := os.Rename(j.path, aside); rerr != nil {
			return nil, fmt.Errorf("%w (and moving it aside failed: %v)", err, rerr)
		}
		klog.ErrorS(err, "Controller journal unreadable; moved aside, starting empty", "movedTo", aside)
		j.byName = map[string]*journalEntry{}
	}
	return j, nil
}

func (j *journal) load(b []byte) error {
	var doc journalDoc
	if err := json.Unmarshal(b, &doc); err != nil {
		return fmt.Errorf("controller journal %s is corrupt: %w", j.path, err)
	}
	if doc.Version != 1 {
		return fmt.Errorf("controller journal %s: unknown version %d", j.path, doc.Version)
	}
	for _, e := range doc.Volumes {
		if e == nil || e.Name == "" || e.ID == "" {
			return fmt.Errorf("controller journal %s: entry without name or id", j.path)
		}
		j.byName[e.Name] = e
	}
	return nil
}

func (j *journal) get(name string) (*journalEntry, bool) {
	j.mu.Lock()
	defer j.mu.Unlock()
	e, ok := j.byName[name]
	return e, ok
}

func (j *journal) byID(id string) (*journalEntry, bool) {
	j.mu.Lock()
	defer j.mu.Unlock()
	for _, e := range j.byName {
		if e.ID == id {
			return e, true
		}
	}
	return nil, false
}

// findDigest returns the digest some volume resolved image to.
func (j *journal) findDigest(image string) (string, bool) {
	j.mu.Lock()
	defer j.mu.Unlock()
	for _, e := range j.byName {
		if e.Params["image"] == image && e.Digest != "" {
			return e.Digest, true
		}
	}
	return "", false
}

// add records e unless its name is taken; then it returns the entry that
// holds the name (a concurrent create won).
func (j *journal) add(e *journalEntry) (*journalEntry, error) {
	j.mu.Lock()
	defer j.mu.Unlock()
	if old, ok := j.byName[e.Name]; ok {
		return old, nil
	}
	j.byName[e.Name] = e
	if err := j.saveLocked(); err != nil {
		delete(j.byName, e.Name)
		return nil, err
	}
	return e, nil
}

// remove deletes the volume with id; absent is not an error.
func (j *journal) remove(id string) error {
	j.mu.Lock()
	defer j.mu.Unlock()
	for name, e := range j.byName {
		if e.ID == id {
			delete(j.byName, name)
			if err := j.saveLocked(); err != nil {
				j.byName[name] = e
				return err
			}
			return nil
		}
	}
	return nil
}

// list returns the entries sorted by id (the ListVolumes order).
func (j *journal) list() []*journalEntry {
	j.mu.Lock()
	defer j.mu.Unlock()
	out := slices.Collect(maps.Values(j.byName))
	slices.SortFunc(out, func(a, b *journalEntry) int { return strings.Compare(a.ID, b.ID) })
	return out
}

func (j *journal) saveLocked() error {
	doc := journalDoc{Version: 1, Volumes: slices.Collect(maps.Values(j.byName))}
	slices.SortFunc(doc.Volumes, func(a, b *journalEntry) int { return strings.Compare(a.Name, b.Name) })
	b, err := json.MarshalIndent(doc, "", "  ")
	if err != nil {
		return fmt.Errorf("encode controller journal: %w", err)
	}
	tmp, err := os.CreateTemp(filepath.Dir(j.path), journalFile+".tmp-*")
	if err != nil {
		return fmt.Errorf("write controller journal: %w", err)
	}
	defer os.Remove(tmp.Name())
	if _, err := tmp.Write(b); err != nil {
		tmp.Close()
		return fmt.Errorf("write controller journal: %w", err)
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return fmt.Errorf("sync controller journal: %w", err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("write controller journal: %w", err)
	}
	if err := os.Rename(tmp.Name(), j.path); err != nil {
		return fmt.Errorf("replace controller journal: %w", err)
	}
	return nil
}
