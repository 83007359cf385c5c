package daxdev

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// formatChild is a host running "open the pool, creating it if the device
// is blank" at the same moment as every other.
func formatChild() error {
	gate := os.Getenv("DAXDEV_GO")
	for {
		if _, err := os.Stat(gate); err == nil {
			break
		}
		time.Sleep(100 * time.Microsecond)
	}
	p, err := OpenPool("memfile:"+os.Getenv("DAXDEV_POOL"), PoolOptions{Init: true, Size: 16 << 20, Align: 1 << 20, Records: 64})
	if err != nil {
		return err
	}
	defer p.Close()
	fmt.Println("POOL", p.Info().ID)
	return nil
}

func TestFormatRaceAcrossProcesses(t *testing.T) {
	for round := 0; round < 3; round++ {
		dir := t.TempDir()
		file, gate := filepath.Join(dir, "pool"), filepath.Join(dir, "go")
		if round == 1 { // also the case of a file that exists, blank, at the final size
			if err := os.WriteFile(file, make([]byte, 16<<20), 0o600); err != nil {
				t.Fatal(err)
			}
		}
		const n = 8
		var cmds []*exec.Cmd
		var outs []*bytes.Buffer
		for i := 0; i < n; i++ {
			c := child(t, "format", file, "", gate, "", 0, 0)
			out := &bytes.Buffer{}
			c.Stdout, c.Stderr = out, out
			if err := c.Start(); err != nil {
				t.Fatal(err)
			}
			cmds, outs = append(cmds, c), append(outs, out)
		}
		time.Sleep(200 * time.Millisecond) // all polling the gate
		if err := os.WriteFile(gate, nil, 0o600); err != nil {
			t.Fatal(err)
		}
		ids := map[string]bool{}
		for i, c := range cmds {
			if err := c.Wait(); err != nil {
				t.Fatalf("round %d, host %d: %v\n%s", round, i, err, outs[i])
			}
			k := strings.Index(outs[i].String(), "POOL ")
			if k < 0 {
				t.Fatalf("round %d, host %d: no pool id in %q", round, i, outs[i])
			}
			ids[strings.Fields(outs[i].String()[k:])[1]] = true
		}
		p, err := OpenPool("memfile:"+file, PoolOptions{})
		if err != nil {
			t.Fatalf("round %d: the pool after the race: %v", round, err)
		}
		final := p.Info().ID
		p.Close()
		if len(ids) != 1 || !ids[final] {
			t.Fatalf("round %d: hosts saw pools %v, the device holds %s: want one pool for all", round, ids, final)
		}
	}
}
