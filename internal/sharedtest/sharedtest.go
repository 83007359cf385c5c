// Package sharedtest locates the project's shared reference material for
// tests: ../shared beside the repository root, where CI clones it, or
// $DAXFS_SHARED.
package sharedtest

import (
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
