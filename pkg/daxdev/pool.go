package daxdev

import (
	"bytes"
	"crypto/rand"
	"errors"
	"fmt"
	"hash/crc32"
	"sync"
	"time"

	"k8s.io/klog/v2"
)

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// Pool is an allocation table at the start of a device plus the extents it
// hands out. It is safe for concurrent use by goroutines, processes and hosts
// sharing the device.
type Pool struct {
	mu   sync.Mutex // serialises goroutines; the table lock serialises the rest
	be   backend
	b    []byte
	id   identity
	opts PoolOptions
	// coherence of the memory between hosts; cache flushes and invalidates
	// lines on non-coherent memory (coherence.go)
	coherence Coherence
	cache     cacheOps
	closed    bool // unmapped
	closing   bool // Close called: no new Stage or Data
	// inflight counts Stage calls, which write the mapping outside the
	// lock; Close waits for them before unmapping.
	inflight sync.WaitGroup

	size, align, dataOff, nrec int64
	uuid                       [16]byte
}

// OpenPool opens the pool on the device named by spec (see ParseSpec).
func OpenPool(spec string, opts PoolOptions) (*Pool, error) {
	s, err := ParseSpec(spec)
	if err != nil {
		return nil, err
	}
	if s.Scheme == "dmaheap" {
		opts.Init = true // a fresh buffer every time
	}
	be, err := openBackend(s, opts)
	if err != nil {
		return nil, err
	}
	p, err := openOn(be, opts)
	if err != nil {
		be.close()
		return nil, err
	}
	return p, nil
}

func openOn(be backend, opts PoolOptions) (*Pool, error) {
	b := be.bytes()
	if !wordAligned(b) {
		return nil, fmt.Errorf("%s: mapping is not 8-byte aligned", be.path())
	}
	if err := opts.check(); err != nil {
		return nil, err
	}
	src := osIdentitySources(opts.HostIDFile)
	if opts.ids != nil {
		src = *opts.ids
	}
	id, err := newIdentity(src)
	if err != nil {
		return nil, err
	}
	p := &Pool{be: be, b: b, id: id, opts: opts}
	if err := p.setCoherence(); err != nil {
		return nil, err
	}
	if err := p.openOrFormat(); err != nil {
		return nil, err
	}
	if err := p.reclaim(); err != nil {
		return nil, err
	}
	return p, nil
}

// openOrFormat reads the header, or formats a blank device. Every host may
// run this at the same moment on the same blank device: the format claim
// word (CAS) picks one formatter; the others wait for its magic, as does a
// host that sees a header being written.
func (p *Pool) openOrFormat() error {
	opts, b := p.opts, p.b
	wait := time.Millisecond
	for {
		p.fresh(0, headerSize)
		now := time.Now()
		claim := load(b, hdrFormat)
		isPool := string(b[hdrMagic:hdrMagic+8]) == poolMagic
		// A live claim expires within one lease (plus clock skew) from now,
		// and its formatter keeps the magic zero until the end: foreign
		// bytes are no claim.
		exp := int64(claim & 0xffffffff)
		plausible := claim != 0 && p.plausibleExpiry(exp, now)
		formatting := plausible && exp >= now.Unix() && claim>>32 != p.id.token &&
			(isPool || allZero(b[hdrMagic:hdrMagic+8]))
		blank := allZero(b[:hdrFormat]) && allZero(b[hdrFormat+8:headerSize])
		// a format whose formatter died (claim expired, no magic yet)
		halfFormatted := plausible && !isPool && le32(b, hdrVersion) == poolVersion && le32(b, hdrHeaderSize) == headerSize
		switch {
		case opts.Init && opts.Force:
			klog.InfoS("initialising pool, overwriting the device", "path", p.be.path(), "wasPool", isPool)
			return p.formatClaimed(p.formatClaim(now))
		case isPool:
			err := p.readHeader()
			if err == nil || !formatting {
				return err
			}
		case (blank || halfFormatted) && opts.Init && !formatting:
			mine := p.formatClaim(now)
			if !cas(b, hdrFormat, claim, mine) {
				continue // another host claimed it first
			}
			klog.InfoS("initialising pool on a blank device", "path", p.be.path())
			err := p.formatClaimed(mine)
			if errors.Is(err, errFormatLost) {
				continue
			}
			return err
		case formatting:
			// another host is formatting: wait for its magic
		case blank:
			return fmt.Errorf("%w: %s is blank (all zero), initialise it with Init", ErrNotAPool, p.be.path())
		default:
			return fmt.Errorf("%w: %s starts with % x; only Init with Force overwrites it", ErrNotAPool, p.be.path(), b[:16])
		}
		klog.V(2).InfoS("waiting for another host to finish formatting the pool", "path", p.be.path(), "claim", claim>>32)
		time.Sleep(wait)
		wait = min(wait*2, 50*time.Millisecond)
	}
}

// errFormatLost: our format claim was taken over (we looked dead) while we
// formatted; the winner's header counts.
var errFormatLost = errors.New("format claim taken over")

func (p *Pool) formatClaim(now time.Time) uint64 {
	return p.id.token<<32 | uint64(now.Add(p.opts.lockLease()).Unix())&0xffffffff
}

// formatClaimed formats under format claim mine, then checks the claim is
// still ours (a formatter judged dead by an expired claim lost the device).
func (p *Pool) formatClaimed(mine uint64) error {
	store(p.b, hdrFormat, mine)
	if err := p.flush(hdrFormat, 8); err != nil {
		return err
	}
	if err := p.format(); err != nil {
		return err
	}
	p.fresh(hdrFormat, 8)
	if load(p.b, hdrFormat) != mine {
		return errFormatLost
	}
	return nil
}

func allZero(b []byte) bool {
	var z [512]byte
	for len(b) > 0 {
		n := min(len(b), len(z))
		if !bytes.Equal(b[:n], z[:n]) {
			return false
		}
		b = b[n:]
	}
	return true
}

// format writes a fresh header and an empty table. The magic goes last, after
// everything else is flushed, so a crash mid-format leaves no half pool.
func (p *Pool) format() error {
	align := p.opts.Align
	devAlign := p.be.align()
	if align == 0 {
		align = devAlign
		if p.be.kind() == KindMemfile {
			align = DefaultMemfileAlign
		}
	}
	if align <= 0 || align&(align-1) != 0 || align%devAlign != 0 || align%pageSize != 0 {
		return fmt.Errorf("%w: align %d must be a power of two and a multiple of the device align %d and the page size %d", ErrBadArgument, align, devAlign, pageSize)
	}
	nrec := int64(p.opts.Records)
	if nrec == 0 {
		nrec = defaultRecords
	}
	if nrec < 1 || nrec > 1<<20 {
		return fmt.Errorf("%w: records %d out of range [1, %d]", ErrBadArgument, nrec, 1<<20)
	}
	size := int64(len(p.b))
	if p.opts.Size > 0 && p.opts.Size < size {
		size = p.opts.Size
	}
	size = size / align * align
	dataOff := roundUp(tableEnd(nrec), align)
	if dataOff+align > size {
		return fmt.Errorf("%w: %s has %d bytes; a table of %d records plus one %d-byte extent needs %d", ErrTooSmall, p.be.path(), len(p.b), nrec, align, dataOff+align)
	}
	// Everything but the format claim, which says who formats.
	clear(p.b[:hdrFormat])
	clear(p.b[hdrFormat+8 : tableEnd(nrec)])
	if err := p.flush(0, tableEnd(nrec)); err != nil {
		return err
	}
	h := p.b[:headerSize]
	put32(h, hdrVersion, poolVersion)
	put32(h, hdrHeaderSize, headerSize)
	put64(h, hdrSize, uint64(size))
	put64(h, hdrAlign, uint64(align))
	put32(h, hdrRecords, uint32(nrec))
	put32(h, hdrRecordSize, recordSize)
	put64(h, hdrTableOff, headerSize)
	put64(h, hdrDataOff, uint64(dataOff))
	if _, err := rand.Read(h[hdrUUID : hdrUUID+16]); err != nil {
		return fmt.Errorf("pool uuid: %w", err)
	}
	put64(h, hdrCreated, uint64(time.Now().UnixNano()))
	copy(h[hdrMagic:], poolMagic)
	put32(h, hdrCRC, crc32.Checksum(h[:hdrCRCEnd], castagnoli))
	// Flush the body with a zero magic first, then the magic.
	copy(h[hdrMagic:], make([]byte, 8))
	if err := p.flush(0, headerSize); err != nil {
		return err
	}
	copy(h[hdrMagic:], poolMagic)
	if err := p.flush(0, headerSize); err != nil {
		return err
	}
	return p.readHeader()
}

// readHeader checks and loads the header; every value read from the device is
// bounds checked before use.
func (p *Pool) readHeader() error {
	h := p.b[:headerSize]
	bad := func(format string, a ...any) error {
		return fmt.Errorf("%w: %s: header: %s", ErrCorrupt, p.be.path(), fmt.Sprintf(format, a...))
	}
	if v := le32(h, hdrVersion); v != poolVersion {
		return bad("version %d, this build reads version %d", v, poolVersion)
	}
	if got, want := le32(h, hdrCRC), crc32.Checksum(h[:hdrCRCEnd], castagnoli); got != want {
		return bad("checksum %08x, computed %08x", got, want)
	}
	if hs, rs, to := le32(h, hdrHeaderSize), le32(h, hdrRecordSize), le64(h, hdrTableOff); hs != headerSize || rs != recordSize || to != headerSize {
		return bad("header size %d, record size %d, table offset %d; want %d, %d, %d", hs, rs, to, headerSize, recordSize, headerSize)
	}
	size, align := le64(h, hdrSize), le64(h, hdrAlign)
	nrec, dataOff := uint64(le32(h, hdrRecords)), le64(h, hdrDataOff)
	switch {
	case size > uint64(len(p.b)):
		return bad("pool size %d exceeds the %d bytes mapped from the device", size, len(p.b))
	case align == 0 || align&(align-1) != 0 || align%uint64(pageSize) != 0 || align%uint64(p.be.align()) != 0:
		return bad("align %d is not a power of two multiple of the page size and device align %d", align, p.be.align())
	case size%align != 0:
		return bad("size %d is not a multiple of align %d", size, align)
	case nrec == 0 || nrec > 1<<20:
		return bad("%d extent records", nrec)
	case dataOff != uint64(roundUp(tableEnd(int64(nrec)), int64(align))) || dataOff > size:
		return bad("data offset %d does not follow a table of %d records aligned to %d within %d bytes", dataOff, nrec, align, size)
	}
	p.size, p.align, p.nrec, p.dataOff = int64(size), int64(align), int64(nrec), int64(dataOff)
	copy(p.uuid[:], h[hdrUUID:hdrUUID+16])
	return nil
}

// Info describes the device the pool lives on.
func (p *Pool) Info() Info {
	phys, _ := p.be.physAddr()
	u := p.uuid
	id := fmt.Sprintf("%x-%x-%x-%x-%x", u[0:4], u[4:6], u[6:8], u[8:10], u[10:16])
	return Info{
		ID: id, Kind: p.be.kind(), Path: p.be.path(), Size: p.size, Align: p.align,
		NUMANode: p.be.numaNode(), SharedID: id, PhysAddr: phys, DMABufFD: p.be.dmaBufFD(),
		Coherence: p.coherence,
	}
}

// Close waits for running Stage calls and unmaps the device. Extents stay in
// the pool; Data slices become invalid.
func (p *Pool) Close() error {
	p.mu.Lock()
	if p.closing {
		p.mu.Unlock()
		return nil
	}
	p.closing = true
	p.mu.Unlock()
	p.inflight.Wait()
	p.mu.Lock()
	defer p.mu.Unlock()
	p.closed = true
	return p.be.close()
}
