package daxdev

import (
	"bytes"
	"encoding/hex"
	"fmt"
	"hash/crc32"
	"strings"
	"time"
)

// rec is the bytes of extent record i.
func (p *Pool) rec(i int64) []byte {
	off := headerSize + i*recordSize
	return p.b[off : off+recordSize : off+recordSize]
}

func (p *Pool) recOff(i int64) int64 { return headerSize + i*recordSize }

func recStateOf(r []byte) uint64 { return load(r, recState) & 0xff }

// setState moves record i to state s with a compare-and-swap that also bumps
// the change counter, so a record freed and reused is never mistaken for the
// one seen before.
func (p *Pool) setState(i int64, s uint64) error {
	r := p.rec(i)
	old := load(r, recState)
	if !cas(r, recState, old, (old>>8+1)<<8|s) {
		return fmt.Errorf("%w: record %d changed under the table lock", ErrCorrupt, i)
	}
	store(p.b, hdrGeneration, load(p.b, hdrGeneration)+1)
	return nil
}

// freeRecord frees record i: state first, then the fields, so a crash in
// between leaves a free record with stale fields, which nobody reads.
func (p *Pool) freeRecord(i int64) error {
	if err := p.setState(i, stFree); err != nil {
		return err
	}
	clear(p.rec(i)[recOffset:])
	return p.flushRecord(i)
}

func (p *Pool) flushRecord(i int64) error {
	if err := p.flush(p.recOff(i), recordSize); err != nil {
		return err
	}
	return p.flush(0, headerSize)
}

// extentOf decodes a used record, checking every field against the pool
// bounds so bad bytes on the device give an error, never a panic.
func (p *Pool) extentOf(i int64) (Extent, error) {
	r := p.rec(i)
	st := recStateOf(r)
	off, length, resv := le64(r, recOffset), le64(r, recLength), le64(r, recReserved)
	e := Extent{
		Digest: "sha256:" + hex.EncodeToString(r[recDigest:recDigest+32]),
		Offset: int64(off), Length: int64(length), Reserved: int64(resv), State: stateName(st),
	}
	bad := func(format string, a ...any) (Extent, error) {
		return e, fmt.Errorf("%w: record %d (%s): %s", ErrCorrupt, i, e.Digest, fmt.Sprintf(format, a...))
	}
	switch {
	case st != stStaging && st != stReady:
		return bad("state %d", st)
	case off < uint64(p.dataOff) || off >= uint64(p.size) || off%uint64(p.align) != 0:
		return bad("offset %d outside the data region [%d, %d) or not a multiple of %d", off, p.dataOff, p.size, p.align)
	case resv == 0 || resv%uint64(p.align) != 0 || resv > uint64(p.size)-off:
		return bad("reserved %d bytes at offset %d past the pool end %d or not aligned", resv, off, p.size)
	case length == 0 || length > resv:
		return bad("length %d not in (0, reserved %d]", length, resv)
	case st == stReady && le32(r, recCRC) != crc32.Checksum(r[recOffset:recDigest+32], castagnoli):
		return bad("checksum mismatch")
	}
	for s := int64(0); s < ownerSlots; s++ {
		if name, exp, ok := ownerAt(r, s); ok {
			o := Owner{Name: name}
			if exp != 0 {
				o.Expires = time.Unix(0, exp)
			}
			e.Owners = append(e.Owners, o)
		}
	}
	return e, nil
}

func ownerAt(r []byte, s int64) (name string, expires int64, ok bool) {
	slot := r[recOwners+s*ownerSlotSize : recOwners+(s+1)*ownerSlotSize]
	n := bytes.IndexByte(slot[:ownerNameMax], 0)
	if n < 0 {
		n = ownerNameMax
	}
	if n == 0 {
		return "", 0, false
	}
	return string(slot[:n]), int64(le64(slot, ownerExpires)), true
}

func setOwner(r []byte, s int64, name string, expires int64) {
	slot := r[recOwners+s*ownerSlotSize : recOwners+(s+1)*ownerSlotSize]
	clear(slot)
	copy(slot, name)
	put64(slot, ownerExpires, uint64(expires))
}

// addOwner adds or renews owner name; expired leases give up their slot.
func addOwner(r []byte, name string, expires int64, now time.Time) error {
	free := int64(-1)
	for s := int64(0); s < ownerSlots; s++ {
		n, exp, ok := ownerAt(r, s)
		switch {
		case ok && n == name:
			setOwner(r, s, name, expires)
			return nil
		case free < 0 && (!ok || (exp != 0 && exp < now.UnixNano())):
			free = s
		}
	}
	if free < 0 {
		return fmt.Errorf("%w: %d owners hold live leases", ErrTooManyOwners, ownerSlots)
	}
	setOwner(r, free, name, expires)
	return nil
}

// pruneOwners drops expired leases and reports how many owners remain and
// whether any was dropped.
func pruneOwners(r []byte, now time.Time) (live int, dropped bool) {
	for s := int64(0); s < ownerSlots; s++ {
		_, exp, ok := ownerAt(r, s)
		if !ok {
			continue
		}
		if exp != 0 && exp < now.UnixNano() {
			setOwner(r, s, "", 0)
			dropped = true
			continue
		}
		live++
	}
	return live, dropped
}

// parseDigest accepts "sha256:" and 64 lowercase hex digits.
func parseDigest(d string) ([32]byte, error) {
	var out [32]byte
	h, ok := strings.CutPrefix(d, "sha256:")
	if !ok || len(h) != 64 || strings.ToLower(h) != h {
		return out, fmt.Errorf("%w: digest %q: want sha256: and 64 lowercase hex digits", ErrBadArgument, d)
	}
	if _, err := hex.Decode(out[:], []byte(h)); err != nil {
		return out, fmt.Errorf("%w: digest %q: %v", ErrBadArgument, d, err)
	}
	return out, nil
}

func checkOwner(owner string) error {
	if owner == "" || len(owner) > ownerNameMax || strings.IndexByte(owner, 0) >= 0 {
		return fmt.Errorf("%w: owner %q: want 1 to %d bytes without NUL", ErrBadArgument, owner, ownerNameMax)
	}
	return nil
}
