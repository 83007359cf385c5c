package daxdev

// On-device layout of the pool table (docs/pool-format.md). All integers are
// little endian; words changed concurrently are 8-byte aligned so they can be
// updated with atomic compare-and-swap on the mapping.

const (
	poolMagic   = "DAXFSPOL"
	poolVersion = 1

	headerSize = 4096 // the header owns the first page

	// header fields (immutable after init, covered by hdrCRC)
	hdrMagic      = 0   // [8]byte
	hdrVersion    = 8   // u32
	hdrHeaderSize = 12  // u32
	hdrSize       = 16  // u64 pool size in bytes (a multiple of align)
	hdrAlign      = 24  // u64
	hdrRecords    = 32  // u32 number of extent records
	hdrRecordSize = 36  // u32
	hdrTableOff   = 40  // u64
	hdrDataOff    = 48  // u64
	hdrUUID       = 56  // [16]byte
	hdrCreated    = 72  // i64 unix nanoseconds
	hdrCRC        = 120 // u32 crc32c of [0,120)
	hdrCRCEnd     = 120

	// header words changed at run time (atomic)
	hdrGeneration = 128 // u64, +1 on every table change
	hdrLock       = 136 // u64, table lock: holder token<<32 | expiry unix seconds
	// format claim: token<<32 | expiry unix seconds, taken by CAS on a
	// blank device before the header is written; kept by format
	hdrFormat = 144
	// who holds the table lock, laid out like a record's stager fields so
	// the same liveness check applies; its token is stored last
	hdrHolder = 1024

	// extent record
	recordSize    = 1152
	recState      = 0   // u64 atomic: state in the low byte, change counter above
	recOffset     = 8   // u64 from the pool start
	recLength     = 16  // u64 bytes of content
	recReserved   = 24  // u64 bytes reserved (length rounded up to align)
	recDigest     = 32  // [32]byte sha256
	recToken      = 64  // u64 random token of the stager
	recHost       = 72  // u64 stager host identity
	recBoot       = 80  // [16]byte stager boot id
	recPid        = 96  // u64 stager pid
	recPidStart   = 104 // u64 stager process start time (clock ticks since boot)
	recHeartbeat  = 112 // i64 atomic, unix nanoseconds, refreshed while filling
	recCRC        = 120 // u32 crc32c of [8,64), set when the extent turns ready
	recOwners     = 128 // ownerSlots × ownerSlotSize
	ownerSlots    = 16
	ownerSlotSize = 64
	ownerNameMax  = 56 // NUL padded; a full 56-byte name has no NUL
	ownerExpires  = 56 // i64 unix nanoseconds, 0 = until released

	defaultRecords = 1024
)

// record states (low byte of the state word)
const (
	stFree    = 0
	stStaging = 1
	stReady   = 2
)

// State of an extent as reported by Status.
type State string

const (
	StateFree    State = "free"
	StateStaging State = "staging"
	StateReady   State = "ready"
)

func stateName(s uint64) State {
	switch s {
	case stFree:
		return StateFree
	case stStaging:
		return StateStaging
	case stReady:
		return StateReady
	}
	return State("invalid")
}

// tableEnd is where the record table ends for n records.
func tableEnd(n int64) int64 { return headerSize + n*recordSize }

func roundUp(v, a int64) int64 { return (v + a - 1) / a * a }
