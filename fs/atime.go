package fs

import (
	"syscall"
	"time"
)

// The kernel keeps no atime of a FUSE inode itself (it marks them
// S_NOATIME, so the noatime, relatime and strictatime of the mount do
// nothing in the VFS): the server updates atime on the reads that reach
// it, and the mount's flags say when, as they say it for tmpfs.

// atimeRule says when a read updates atime. A remount may replace it
// (filesystem.setMountFlags).
type atimeRule struct {
	never  bool // noatime, or a read-only mount
	strict bool // strictatime (and not read-only): every read
	noDir  bool // nodiratime: never for a directory
}

// atimeRuleOf reads the rule from mount flags as the kernel reads them
// for a new mount: MS_STRICTATIME wins over MS_NOATIME, which wins over
// relatime, the default (MS_RELATIME changes nothing); MS_NODIRATIME
// holds under each; and nothing changes atime on a read-only mount.
func atimeRuleOf(flags uintptr) atimeRule {
	return atimeRule{
		never:  flags&syscall.MS_RDONLY != 0 || flags&(syscall.MS_NOATIME|syscall.MS_STRICTATIME) == syscall.MS_NOATIME,
		strict: flags&syscall.MS_RDONLY == 0 && flags&syscall.MS_STRICTATIME != 0,
		noDir:  flags&syscall.MS_NODIRATIME != 0,
	}
}

// due reports whether a read at now of a node with the given times
// updates its atime. Under relatime that is when atime is not later than
// mtime or ctime, or more than a day old.
func (r atimeRule) due(dir bool, atime, mtime, ctime, now time.Time) bool {
	switch {
	case r.never, dir && r.noDir:
		return false
	case r.strict:
		return true
	}
	return !atime.After(mtime) || !atime.After(ctime) || now.Sub(atime) > 24*time.Hour
}

// setMountFlags takes the rule of atime and read-only from the mount's
// flags: at mount, and at a remount.
func (fsys *filesystem) setMountFlags(flags uintptr) {
	r := atimeRuleOf(flags)
	fsys.atime.Store(&r)
	fsys.readOnly.Store(flags&syscall.MS_RDONLY != 0)
}
