package proc

import (
	"errors"
	"os"
	"os/exec"
	"testing"
	"time"
)

func TestAliveAndStartTime(t *testing.T) {
	if !Alive(os.Getpid()) {
		t.Fatal("this process is not alive")
	}
	if st, err := StartTime(os.Getpid()); err != nil || st == 0 {
		t.Fatalf("StartTime(self) = %d, %v", st, err)
	}
	// A child that exited but is not reaped is a zombie: gone.
	cmd := exec.Command("true")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	pid := cmd.Process.Pid
	defer cmd.Wait()
	for deadline := time.Now().Add(5 * time.Second); Alive(pid) && time.Now().Before(deadline); {
		time.Sleep(time.Millisecond)
	}
	if Alive(pid) {
		t.Fatalf("exited child %d still alive", pid)
	}
	if _, err := StartTime(pid); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("StartTime(zombie) = %v, want ErrNotExist", err)
	}
	cmd.Wait()
	if Alive(pid) {
		t.Errorf("reaped child %d alive", pid)
	}
}
