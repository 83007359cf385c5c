package daxdev

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// TestChildProcess is not a test: it is the body of the child processes the
// cross-process tests start by re-running this test binary.
func TestChildProcess(t *testing.T) {
	mode := os.Getenv("DAXDEV_CHILD")
	if mode == "" {
		t.Skip("only runs as a child of the cross-process tests")
	}
	if err := childMain(mode); err != nil {
		fmt.Println("ERR", err)
		os.Exit(3)
	}
	os.Exit(0)
}

func childMain(mode string) error {
	if mode == "format" {
		return formatChild()
	}
	seed, _ := strconv.Atoi(os.Getenv("DAXDEV_SEED"))
	size, _ := strconv.Atoi(os.Getenv("DAXDEV_SIZE"))
	b, dg := content(byte(seed), size)
	p, err := OpenPool("memfile:"+os.Getenv("DAXDEV_POOL"), PoolOptions{})
	if err != nil {
		return err
	}
	defer p.Close()
	if mode == "lockhang" {
		if _, err := p.lockTable(); err != nil {
			return err
		}
		fmt.Println("FILLING") // holding the table lock
		time.Sleep(time.Hour)  // killed here
	}
	if gate := os.Getenv("DAXDEV_GO"); gate != "" {
		for {
			if _, err := os.Stat(gate); err == nil {
				break
			}
			time.Sleep(time.Millisecond)
		}
	}
	fill := func(dst []byte) error {
		f, err := os.OpenFile(os.Getenv("DAXDEV_FILLS"), os.O_APPEND|os.O_WRONLY|os.O_CREATE, 0o600)
		if err != nil {
			return err
		}
		fmt.Fprintf(f, "%d\n", os.Getpid())
		f.Close()
		if mode == "hang" {
			copy(dst[:len(dst)/2], b)
			fmt.Println("FILLING")
			time.Sleep(time.Hour) // killed here
		}
		time.Sleep(50 * time.Millisecond) // widen the window for the others
		copy(dst, b)
		return nil
	}
	e, err := p.Stage(context.Background(), dg, int64(size), os.Getenv("DAXDEV_OWNER"), fill)
	if err != nil {
		return err
	}
	data, err := p.Data(e)
	if err != nil {
		return err
	}
	if !bytes.Equal(data, b) {
		return errors.New("staged bytes differ from the content")
	}
	fmt.Println("OK", e.Offset, e.State)
	return nil
}

func child(t *testing.T, mode, pool, fills, gate, owner string, seed, size int) *exec.Cmd {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^TestChildProcess$", "-test.count=1")
	cmd.Env = append(os.Environ(), "DAXDEV_CHILD="+mode, "DAXDEV_POOL="+pool, "DAXDEV_FILLS="+fills,
		"DAXDEV_GO="+gate, "DAXDEV_OWNER="+owner, "DAXDEV_SEED="+strconv.Itoa(seed), "DAXDEV_SIZE="+strconv.Itoa(size))
	t.Cleanup(func() {
		if cmd.Process != nil && cmd.ProcessState == nil {
			cmd.Process.Kill()
			cmd.Wait()
		}
	})
	return cmd
}

func lines(t *testing.T, path string) []string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil && !os.IsNotExist(err) {
		t.Fatal(err)
	}
	return strings.Fields(string(b))
}

func TestConcurrentStagersAcrossProcesses(t *testing.T) {
	const n, size = 6, 3 << 20
	p, pool := testPool(t, 16<<20, PoolOptions{Align: 1 << 20})
	dir := t.TempDir()
	fills, gate := filepath.Join(dir, "fills"), filepath.Join(dir, "go")
	var cmds []*exec.Cmd
	var outs []*bytes.Buffer
	for i := 0; i < n; i++ {
		c := child(t, "stage", pool, fills, gate, fmt.Sprintf("node-%d", i), 42, size)
		out := &bytes.Buffer{}
		c.Stdout, c.Stderr = out, out
		if err := c.Start(); err != nil {
			t.Fatal(err)
		}
		cmds, outs = append(cmds, c), append(outs, out)
	}
	if err := os.WriteFile(gate, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	offsets := map[string]bool{}
	for i, c := range cmds {
		if err := c.Wait(); err != nil {
			t.Fatalf("child %d: %v\n%s", i, err, outs[i])
		}
		f := strings.Fields(outs[i].String()[strings.Index(outs[i].String(), "OK "):])
		if f[2] != "ready" {
			t.Fatalf("child %d saw %s", i, outs[i])
		}
		offsets[f[1]] = true
	}
	if got := lines(t, fills); len(got) != 1 {
		t.Fatalf("%d processes filled the digest (%v), want exactly 1", len(got), got)
	}
	if len(offsets) != 1 {
		t.Fatalf("children saw different offsets %v", offsets)
	}
	_, dg := content(42, size)
	e, ok := p.Lookup(dg)
	if !ok || len(e.Owners) != n {
		t.Fatalf("extent %+v: want ready with %d owners", e, n)
	}
}

func TestConcurrentStagersGoroutines(t *testing.T) {
	p, path := testPool(t, 32<<20, PoolOptions{Align: 1 << 20})
	pools := []*Pool{p}
	for i := 0; i < 3; i++ { // separate opens: separate flock descriptions
		q, err := OpenPool("memfile:"+path, PoolOptions{})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { q.Close() })
		pools = append(pools, q)
	}
	const digests, perDigest = 4, 8
	var fills [digests]atomic.Int32
	var wg sync.WaitGroup
	errs := make(chan error, digests*perDigest)
	for d := 0; d < digests; d++ {
		b, dg := content(byte(d), 1<<20+d)
		for g := 0; g < perDigest; g++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				e, err := pools[g%len(pools)].Stage(context.Background(), dg, int64(len(b)), fmt.Sprintf("g%d", g), func(dst []byte) error {
					fills[d].Add(1)
					time.Sleep(10 * time.Millisecond)
					copy(dst, b)
					return nil
				})
				if err == nil {
					data, derr := pools[g%len(pools)].Data(e)
					if derr != nil || !bytes.Equal(data, b) {
						err = fmt.Errorf("digest %d: bytes differ (%v)", d, derr)
					}
				}
				errs <- err
			}()
		}
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	for d := range fills {
		if n := fills[d].Load(); n != 1 {
			t.Fatalf("digest %d filled %d times, want 1", d, n)
		}
	}
	st := p.Status()
	if len(st.Extents) != digests {
		t.Fatalf("%d extents, want %d", len(st.Extents), digests)
	}
	for _, e := range st.Extents {
		if e.State != StateReady || len(e.Owners) != perDigest {
			t.Fatalf("extent %+v: want ready with %d owners", e, perDigest)
		}
	}
}

// startHanging starts a child that reserves the digest, fills half and hangs.
func startHanging(t *testing.T, pool, fills string, seed, size int) *exec.Cmd {
	return startChild(t, "hang", pool, fills, seed, size)
}

func startChild(t *testing.T, mode, pool, fills string, seed, size int) *exec.Cmd {
	t.Helper()
	c := child(t, mode, pool, fills, "", "crasher", seed, size)
	out, err := c.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	c.Stderr = os.Stderr
	if err := c.Start(); err != nil {
		t.Fatal(err)
	}
	line, err := bufio.NewReader(out).ReadString('\n')
	if err != nil || strings.TrimSpace(line) != "FILLING" {
		t.Fatalf("child: %q %v", line, err)
	}
	return c
}

func TestCrashMidFillIsReclaimed(t *testing.T) {
	p, pool := testPool(t, 16<<20, PoolOptions{Align: 1 << 20})
	ready, readyDigest := content(7, 2<<20+123)
	if _, err := p.Stage(context.Background(), readyDigest, int64(len(ready)), "keeper", copyFill(ready, nil)); err != nil {
		t.Fatal(err)
	}
	fills := filepath.Join(t.TempDir(), "fills")
	c := startHanging(t, pool, fills, 8, 3<<20)
	if st := p.Status(); len(st.Extents) != 2 || st.Extents[1].State != StateStaging {
		t.Fatalf("while the child fills: %+v, want the ready extent and one staging", st.Extents)
	}
	if err := c.Process.Kill(); err != nil { // SIGKILL
		t.Fatal(err)
	}
	c.Wait()
	p.Close()

	q, err := OpenPool("memfile:"+pool, PoolOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer q.Close()
	st := q.Status()
	if len(st.Extents) != 1 || st.Extents[0].Digest != readyDigest || st.Extents[0].State != StateReady {
		t.Fatalf("after the crash: %+v, want only the ready extent", st.Extents)
	}
	data, err := q.Data(st.Extents[0])
	if err != nil || !bytes.Equal(data, ready) {
		t.Fatal("ready extent changed across the crash")
	}
	// The crashed digest stages again, from scratch.
	b, dg := content(8, 3<<20)
	calls := 0
	if _, err := q.Stage(context.Background(), dg, int64(len(b)), "n", copyFill(b, &calls)); err != nil || calls != 1 {
		t.Fatalf("restage after crash: %v, %d fills", err, calls)
	}
}

func TestWaiterTakesOverFromKilledStager(t *testing.T) {
	p, pool := testPool(t, 16<<20, PoolOptions{Align: 1 << 20})
	fills := filepath.Join(t.TempDir(), "fills")
	c := startHanging(t, pool, fills, 9, 1<<20)
	b, dg := content(9, 1<<20)

	// While the stager lives, a waiter only waits.
	ctx, cancel := context.WithTimeout(context.Background(), 150*time.Millisecond)
	defer cancel()
	if _, err := p.Stage(ctx, dg, int64(len(b)), "w", copyFill(b, nil)); !errors.Is(err, ErrBusy) {
		t.Fatalf("Stage while another lives and fills: %v, want ErrBusy", err)
	}
	done := make(chan error, 1)
	calls := 0
	go func() {
		_, err := p.Stage(context.Background(), dg, int64(len(b)), "w", copyFill(b, &calls))
		done <- err
	}()
	time.Sleep(50 * time.Millisecond)
	c.Process.Kill()
	c.Wait()
	select {
	case err := <-done:
		if err != nil || calls != 1 {
			t.Fatalf("waiter after the stager died: %v, %d fills", err, calls)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("waiter never took over")
	}
	e, ok := p.Lookup(dg)
	if !ok || e.OwnerNames()[0] != "w" {
		t.Fatalf("extent after takeover: %+v", e)
	}
}

func TestOtherHostStagerJudgedByHeartbeat(t *testing.T) {
	const stale = 1500 * time.Millisecond // well above scheduling stalls of a loaded CI machine
	p, path := testPool(t, 8<<20, PoolOptions{Align: 1 << 20, StaleAfter: stale})
	other, err := OpenPool("memfile:"+path, PoolOptions{StaleAfter: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	defer other.Close()
	other.id.host ^= 0xdead // another host: its pid means nothing here
	b, dg := content(3, 4096)
	release := make(chan struct{})
	otherErr := make(chan error, 1)
	go func() {
		_, err := other.Stage(context.Background(), dg, 4096, "far", func(dst []byte) error {
			<-release
			return nil
		})
		otherErr <- err
	}()
	for p.Status().Extents == nil {
		time.Sleep(time.Millisecond)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	if _, err := p.Stage(ctx, dg, 4096, "near", copyFill(b, nil)); !errors.Is(err, ErrBusy) {
		t.Fatalf("fresh heartbeat: %v, want to keep waiting", err)
	}
	time.Sleep(stale + 100*time.Millisecond) // the far stager's heartbeat goes stale
	if _, err := p.Stage(context.Background(), dg, 4096, "near", copyFill(b, nil)); err != nil {
		t.Fatalf("stale heartbeat: %v, want a takeover", err)
	}
	close(release)
	if err := <-otherErr; !errors.Is(err, ErrReclaimed) {
		t.Fatalf("far stager finishing after the takeover: %v, want ErrReclaimed", err)
	}
	if e, ok := p.Lookup(dg); !ok || len(e.Owners) != 1 || e.Owners[0].Name != "near" {
		t.Fatalf("extent %+v", e)
	}
}

func TestKilledTableLockHolderIsOverridden(t *testing.T) {
	p, pool := testPool(t, 8<<20, PoolOptions{Align: 1 << 20})
	c := startChild(t, "lockhang", pool, filepath.Join(t.TempDir(), "fills"), 1, 1)
	if load(p.b, hdrLock) == 0 {
		t.Fatal("child reports holding the lock but the lock word is clear")
	}
	c.Process.Kill()
	c.Wait()
	// The dead holder's lock would block for the 10 s lease; on the same
	// host its death is seen at once.
	done := make(chan Status, 1)
	go func() { done <- p.Status() }()
	select {
	case st := <-done:
		if st.Size == 0 {
			t.Fatal("empty status")
		}
	case <-time.After(tableLockLease / 2):
		t.Fatal("table lock of a killed holder was not taken over before its lease expired")
	}
}
