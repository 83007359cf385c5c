#include "textflag.h"

// func cacheWriteback(addr, n uintptr)
// CLFLUSH every 64-byte line of [addr, addr+n), then SFENCE so the
// write-backs are ordered before later stores (the ready flip).
TEXT ·cacheWriteback(SB), NOSPLIT, $0-16
	MOVQ addr+0(FP), AX
	MOVQ n+8(FP), CX
	ADDQ AX, CX
	ANDQ $~63, AX
loop:
	CMPQ AX, CX
	JAE  done
	CLFLUSH (AX)
	ADDQ $64, AX
	JMP  loop
done:
	SFENCE
	RET

// func cacheInvalidate(addr, n uintptr)
// CLFLUSH every 64-byte line of [addr, addr+n) (writes back a dirty line and
// drops it), then MFENCE so later loads miss and read memory.
TEXT ·cacheInvalidate(SB), NOSPLIT, $0-16
	MOVQ addr+0(FP), AX
	MOVQ n+8(FP), CX
	ADDQ AX, CX
	ANDQ $~63, AX
	MFENCE
iloop:
	CMPQ AX, CX
	JAE  idone
	CLFLUSH (AX)
	ADDQ $64, AX
	JMP  iloop
idone:
	MFENCE
	RET
