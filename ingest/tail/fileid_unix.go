//go:build unix

package tail

import (
	"os"
	"syscall"
)

// fileID is the file's device and inode: what tells a rotated log from
// the new one at its path.
func fileID(fi os.FileInfo) (dev, ino uint64) {
	if st, ok := fi.Sys().(*syscall.Stat_t); ok {
		return uint64(st.Dev), uint64(st.Ino)
	}
	return 0, 0
}
