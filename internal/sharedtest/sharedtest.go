// Package sharedtest locates the project's shared reference material for
// tests: ../shared beside the repository root, where CI clones it, or
// $DAXFS_SHARED.
package sharedtest

import (
	"encoding/json"
	"os"
	"path/filepath"
	"testing"
)

// Dir is the shared folder.
func Dir(t testing.TB) string {
	t.Helper()
	if d := os.Getenv("DAXFS_SHARED"); d != "" {
		return d
	}
	dir, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return filepath.Join(filepath.Dir(dir), "shared")
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			t.Fatal("no go.mod above the test directory; set DAXFS_SHARED")
		}
		dir = parent
	}
}

// Sample is the path of an upstream sample image or manifest
// (testdata/upstream-v5/NAME); the test fails when it is missing.
func Sample(t testing.TB, name string) string {
	t.Helper()
	p := filepath.Join(Dir(t), "testdata", "upstream-v5", name)
	if _, err := os.Stat(p); err != nil {
		t.Fatalf("shared sample missing (clone ../shared beside the repo or set DAXFS_SHARED): %v", err)
	}
	return p
}

// ManifestEntry is one entry of a sample's manifest: what the source tree
// of an upstream image held.
type ManifestEntry struct {
	Path   string `json:"path"`
	Mode   uint32 `json:"mode"` // full st_mode
	UID    uint32 `json:"uid"`
	GID    uint32 `json:"gid"`
	Nlink  uint32 `json:"nlink_in_source"`
	Type   string `json:"type"` // file, dir, symlink, fifo, socket, chardev, blockdev
	Size   *int64 `json:"size"` // regular files
	SHA256 string `json:"sha256"`
	Target string `json:"target"` // symlinks
}

// Manifest reads the manifest NAME (e.g. "tree1.manifest.json").
func Manifest(t testing.TB, name string) []ManifestEntry {
	t.Helper()
	b, err := os.ReadFile(Sample(t, name))
	if err != nil {
		t.Fatal(err)
	}
	var m []ManifestEntry
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	return m
}
