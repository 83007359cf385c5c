package daxdev

import (
	"testing"
	"time"

	"github.com/daxfs-csi/daxfs-csi/internal/machine"
)

func TestStagerAlive(t *testing.T) {
	id, err := newIdentity(osIdentitySources(""))
	if err != nil {
		t.Fatal(err)
	}
	if !id.procOK {
		machine.Lacks(t, "no /proc")
	}
	now := time.Now()
	rec := func(host uint64, boot [16]byte, pid, start uint64, hb time.Time) []byte {
		r := make([]byte, recordSize)
		put64(r, recHost, host)
		copy(r[recBoot:], boot[:])
		put64(r, recPid, pid)
		put64(r, recPidStart, start)
		put64(r, recHeartbeat, uint64(hb.UnixNano()))
		return r
	}
	other := id.boot
	other[0] ^= 1
	old := now.Add(-time.Hour)
	for _, tc := range []struct {
		name  string
		r     []byte
		alive bool
	}{
		{"this process", rec(id.host, id.boot, id.pid, id.pidStart, old), true},
		{"pid reused", rec(id.host, id.boot, id.pid, id.pidStart+1, now), false},
		{"pid gone", rec(id.host, id.boot, 1<<30, 1, now), false},
		{"other boot, stale heartbeat", rec(id.host, other, id.pid, id.pidStart, old), false},
		{"other boot, fresh heartbeat", rec(id.host, other, 1<<30, 1, now), true},
		{"other host, fresh heartbeat", rec(id.host+1, other, 1<<30, 1, now), true},
		{"other host, stale heartbeat", rec(id.host+1, other, id.pid, id.pidStart, old), false},
	} {
		if got := id.stagerAlive(tc.r, time.Minute, now); got != tc.alive {
			t.Errorf("%s: alive = %v, want %v", tc.name, got, tc.alive)
		}
	}
}
