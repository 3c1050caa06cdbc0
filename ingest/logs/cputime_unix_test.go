//go:build unix

package logs

import (
	"syscall"
	"time"
)

// cpuTime is the process's user+system CPU time: with -cpu 1 the
// benchmark's lines per CPU second stay honest on a machine that other
// work also loads (where wall-clock lines/s measure the neighbours too).
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if syscall.Getrusage(syscall.RUSAGE_SELF, &ru) != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
