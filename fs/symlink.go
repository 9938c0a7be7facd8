package fs

import (
	"context"
	"syscall"

	gofs "github.com/hanwen/go-fuse/v2/fs"
)

// Symlink is a symbolic link. Its target never changes.
type Symlink struct {
	node
	target []byte // immutable
}

var _ = (gofs.NodeReadlinker)((*Symlink)(nil))

// shortSymlink is the longest target (with its NUL) that tmpfs keeps in
// the inode; a longer one takes a page.
const shortSymlink = 128

func (s *Symlink) sizeBlocks() (uint64, uint64) {
	if len(s.target)+1 > shortSymlink {
		return uint64(len(s.target)), 8
	}
	return uint64(len(s.target)), 0
}

// Readlink implements gofs.NodeReadlinker.
func (s *Symlink) Readlink(ctx context.Context) ([]byte, syscall.Errno) {
	s.touchAtime()
	return s.target, 0
}
