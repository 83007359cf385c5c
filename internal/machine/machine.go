// Package machine ends a test that cannot run because this machine lacks
// something it needs (root, a tool, a header, a kernel feature): skipped with
// the reason on a developer's machine, failed in CI (CI=true), whose .ci/run
// installs everything the tests need. CI never passes by skipping.
package machine

import (
	"fmt"
	"os"
	"strconv"
	"testing"
)

// InCI reports whether the environment says this is a CI run (CI=true).
func InCI() bool {
	ci, _ := strconv.ParseBool(os.Getenv("CI"))
	return ci
}

// Lacks ends the test: Skipf outside CI, Fatalf in CI.
func Lacks(t testing.TB, format string, args ...any) {
	t.Helper()
	why := fmt.Sprintf(format, args...)
	if InCI() {
		t.Fatalf("CI lacks what this test needs (install it in .ci/run): %s", why)
	}
	t.Skip(why)
}

// NeedRoot ends the test (see Lacks) unless it runs as root.
func NeedRoot(t testing.TB, why string) {
	t.Helper()
	if os.Geteuid() != 0 {
		Lacks(t, "needs root: %s", why)
	}
}
