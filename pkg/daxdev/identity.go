package daxdev

import (
	"crypto/rand"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"hash/fnv"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/daxfs-csi/daxfs-csi/internal/proc"
)

// identity says who stages an extent (or holds the table lock), so that a
// later opener can tell whether it is still alive: in the same boot of the
// same host and pid namespace by its pid and start time; anywhere else only
// by its heartbeat.
type identity struct {
	token    uint64 // random per Pool; tells our records from others'
	host     uint64 // hash of machine id, hostname, pid namespace, boot id and node id
	boot     [16]byte
	pid      uint64
	pidStart uint64
	procOK   bool // /proc is readable: pids of this host can be checked
}

// identitySources are where an identity comes from; tests inject them to
// play hosts cloned from one image.
type identitySources struct {
	machineID func() string // /etc/machine-id
	hostname  func() string
	pidNS     func() string // /proc/self/ns/pid link, e.g. "pid:[4026531836]"
	bootID    func() [16]byte
	nodeID    func() (string, error) // random id kept in the node's state dir ("" = none)
	pid       func() int
}

func osIdentitySources(hostIDFile string) identitySources {
	return identitySources{
		machineID: func() string { b, _ := os.ReadFile("/etc/machine-id"); return strings.TrimSpace(string(b)) },
		hostname:  func() string { n, _ := os.Hostname(); return n },
		pidNS:     func() string { ns, _ := os.Readlink("/proc/self/ns/pid"); return ns },
		bootID:    bootID,
		nodeID:    func() (string, error) { return persistentHostID(hostIDFile) },
		pid:       os.Getpid,
	}
}

func newIdentity(src identitySources) (identity, error) {
	var id identity
	var tok [8]byte
	for id.token == 0 {
		if _, err := rand.Read(tok[:]); err != nil {
			return id, fmt.Errorf("random stager token: %w", err)
		}
		id.token = binary.LittleEndian.Uint64(tok[:]) & 0xffffffff
	}
	node, err := src.nodeID()
	if err != nil {
		return id, err
	}
	id.boot = src.bootID()
	// Images cloned from one disk share machine-id and hostname, and the
	// initial pid namespace has the same inode on every boot: the boot id
	// (random per kernel boot) and the node's own random id tell them apart.
	h := fnv.New64a()
	for _, part := range []string{src.machineID(), src.hostname(), src.pidNS(), string(id.boot[:]), node} {
		h.Write([]byte(part))
		h.Write([]byte{0})
	}
	id.host = h.Sum64()
	id.pid = uint64(src.pid())
	// Without /proc (a bare initramfs) or a boot id, liveness falls back to
	// heartbeats.
	if start, err := proc.StartTime(src.pid()); err == nil && id.boot != ([16]byte{}) {
		id.pidStart, id.procOK = start, true
	}
	return id, nil
}

// persistentHostID reads the random host id kept in path, creating it on
// first use; "" without a path.
func persistentHostID(path string) (string, error) {
	if path == "" {
		return "", nil
	}
	if b, err := os.ReadFile(path); err == nil && len(strings.TrimSpace(string(b))) > 0 {
		return strings.TrimSpace(string(b)), nil
	} else if err != nil && !errors.Is(err, os.ErrNotExist) {
		return "", fmt.Errorf("read host id %s: %w", path, err)
	}
	var raw [16]byte
	if _, err := rand.Read(raw[:]); err != nil {
		return "", fmt.Errorf("random host id: %w", err)
	}
	id := hex.EncodeToString(raw[:])
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return "", fmt.Errorf("host id dir: %w", err)
	}
	tmp := fmt.Sprintf("%s.%d.tmp", path, os.Getpid())
	if err := os.WriteFile(tmp, []byte(id+"\n"), 0o644); err != nil {
		return "", fmt.Errorf("write host id %s: %w", path, err)
	}
	// Link, not rename: of two processes creating it at once, the first wins
	// and both read its id.
	err := os.Link(tmp, path)
	os.Remove(tmp)
	if err != nil && !errors.Is(err, os.ErrExist) {
		return "", fmt.Errorf("create host id %s: %w", path, err)
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return "", fmt.Errorf("read host id %s: %w", path, err)
	}
	return strings.TrimSpace(string(b)), nil
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

// sameBoot: the process recorded in rec runs in this boot of this host and
// pid namespace, so its pid can be checked here.
func (id identity) sameBoot(rec []byte) bool {
	var boot [16]byte
	copy(boot[:], rec[recBoot:recBoot+16])
	return id.procOK && le64(rec, recHost) == id.host && boot == id.boot
}

// stagerAlive judges the stager recorded in rec: by pid in our own boot,
// else (another host, another boot, or /proc unreadable) by its heartbeat.
func (id identity) stagerAlive(rec []byte, staleAfter time.Duration, now time.Time) bool {
	if id.sameBoot(rec) {
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
	return now.Sub(time.Unix(0, int64(load(rec, recHeartbeat)))) < staleAfter
}
