package daxdev

import (
	"crypto/rand"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"hash/fnv"
	"os"
	"strings"
	"time"

	"github.com/daxfs-csi/daxfs-csi/internal/proc"
)

// identity says who stages an extent, so that a later opener can tell
// whether the stager is still alive: on the same host (same machine and pid
// namespace) by its pid and start time or a changed boot id; on another host
// only by its heartbeat.
type identity struct {
	token    uint64 // random per Pool; tells our records from others'
	host     uint64 // hash of machine id (or hostname) and pid namespace
	boot     [16]byte
	pid      uint64
	pidStart uint64
	procOK   bool // /proc is readable: pids of this host can be checked
}

func newIdentity() (identity, error) {
	var id identity
	var tok [8]byte
	for id.token == 0 {
		if _, err := rand.Read(tok[:]); err != nil {
			return id, fmt.Errorf("random stager token: %w", err)
		}
		id.token = binary.LittleEndian.Uint64(tok[:]) & 0xffffffff
	}
	id.host = hostIdentity()
	id.boot = bootID()
	id.pid = uint64(os.Getpid())
	// Without /proc (a bare initramfs), liveness falls back to heartbeats.
	if start, err := proc.StartTime(os.Getpid()); err == nil {
		id.pidStart, id.procOK = start, true
	}
	return id, nil
}

func hostIdentity() uint64 {
	h := fnv.New64a()
	if b, err := os.ReadFile("/etc/machine-id"); err == nil && len(strings.TrimSpace(string(b))) > 0 {
		h.Write([]byte(strings.TrimSpace(string(b))))
	} else if name, err := os.Hostname(); err == nil {
		h.Write([]byte(name))
	}
	// Processes in other pid namespaces cannot be checked by pid.
	if ns, err := os.Readlink("/proc/self/ns/pid"); err == nil {
		h.Write([]byte(ns))
	}
	return h.Sum64()
}

func bootID() [16]byte {
	var id [16]byte
	b, err := os.ReadFile("/proc/sys/kernel/random/boot_id")
	if err != nil {
		return id
	}
	raw, err := hex.DecodeString(strings.ReplaceAll(strings.TrimSpace(string(b)), "-", ""))
	if err == nil && len(raw) == 16 {
		copy(id[:], raw)
	}
	return id
}

// stagerAlive judges the stager recorded in rec.
func (id identity) stagerAlive(rec []byte, staleAfter time.Duration, now time.Time) bool {
	if le64(rec, recHost) == id.host && id.procOK {
		var boot [16]byte
		copy(boot[:], rec[recBoot:recBoot+16])
		if boot != id.boot {
			return false // same host, rebooted since
		}
		pid := le64(rec, recPid)
		if pid == 0 || pid > 1<<31 {
			return false
		}
		start, err := proc.StartTime(int(pid))
		if errors.Is(err, os.ErrNotExist) {
			return false
		}
		if err == nil {
			return start == le64(rec, recPidStart)
		}
		// Unreadable /proc: fall back to the heartbeat.
	}
	hb := int64(load(rec, recHeartbeat))
	return now.Sub(time.Unix(0, hb)) < staleAfter
}
