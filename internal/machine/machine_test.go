package machine

import (
	"os"
	"os/exec"
	"strings"
	"testing"
)

// The helper is run in a child test process, so that its skip or failure
// is the child's outcome, seen here as go test prints it.
func TestLacks(t *testing.T) {
	if os.Getenv("MACHINE_CHILD") == "1" {
		Lacks(t, "no %s", "widget")
		return
	}
	for _, tc := range []struct{ ci, want string }{
		{"", "--- SKIP: TestLacks"},
		{"false", "--- SKIP: TestLacks"},
		{"true", "--- FAIL: TestLacks"},
		{"1", "--- FAIL: TestLacks"},
	} {
		cmd := exec.Command(os.Args[0], "-test.run=^TestLacks$", "-test.v")
		cmd.Env = append(os.Environ(), "MACHINE_CHILD=1", "CI="+tc.ci)
		out, _ := cmd.CombinedOutput()
		if !strings.Contains(string(out), tc.want) || !strings.Contains(string(out), "no widget") {
			t.Errorf("CI=%q: want %q and the reason in:\n%s", tc.ci, tc.want, out)
		}
	}
}
