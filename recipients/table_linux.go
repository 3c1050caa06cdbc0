package recipients

import (
	"syscall"
	"unsafe"
)

// adviseHuge asks the kernel for transparent huge pages under a large
// table: every lookup is a random access, and with 4 KB pages each one
// also misses the TLB (and a grow faults in every page). Advisory: an
// error (no THP, madvise mode off) changes nothing.
func adviseHuge(s []slot) {
	const minBytes = 4 << 20
	if n := len(s) * int(unsafe.Sizeof(slot{})); n >= minBytes {
		_ = syscall.Madvise(unsafe.Slice((*byte)(unsafe.Pointer(&s[0])), n), syscall.MADV_HUGEPAGE)
	}
}
