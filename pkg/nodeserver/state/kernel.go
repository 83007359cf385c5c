package state

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"time"
)

// KernelProbe is what the loaded kernel daxfs module was found to do, for
// one module instance (docs/kernel-mount.md).
type KernelProbe struct {
	// Instance identifies the module load the probe ran against.
	Instance string `json:"instance"`
	// Mount: it mounted the probe image by the pool's physical address or dma-buf.
	Mount bool `json:"mount"`
	// SharedMap: a shared read-only mmap of a file gave its bytes (DAX).
	SharedMap bool `json:"sharedMap"`
	// PrivateWriteMap: a private PROT_READ|PROT_WRITE mmap worked, which
	// the ELF loader needs for every program's data segment (exec).
	PrivateWriteMap bool `json:"privateWriteMap"`
	// Detail holds the errors the failed steps returned.
	Detail string    `json:"detail,omitempty"`
	At     time.Time `json:"at"`
}

func (s *Store) kernelProbePath() string { return filepath.Join(s.Dir, "kernel-probe.json") }

// SaveKernelProbe records the last probe of the kernel module.
func (s *Store) SaveKernelProbe(p KernelProbe) error { return writeJSON(s.kernelProbePath(), p, true) }

// KernelProbe reads the last recorded probe; ok is false when there is none.
func (s *Store) KernelProbe() (p KernelProbe, ok bool, err error) {
	b, err := os.ReadFile(s.kernelProbePath())
	if errors.Is(err, fs.ErrNotExist) {
		return p, false, nil
	}
	if err != nil {
		return p, false, fmt.Errorf("read kernel probe: %w", err)
	}
	if err := json.Unmarshal(b, &p); err != nil {
		return p, false, fmt.Errorf("read kernel probe %s: %w", s.kernelProbePath(), err)
	}
	return p, true, nil
}
