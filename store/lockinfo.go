package store

import (
	"fmt"
	"os"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"

	"mmapfs/internal/mountinfo"
)

// What the lock file of a persistent store says of its holder, one item a
// line:
//
//	PID                                  the holder's pid
//	mount ID MAJOR:MINOR MOUNTPOINT      the mount that serves the store
//
// The second line is there once the filesystem is mounted
// (Store.Serving), with the mount's ID, device and mount point as
// /proc/PID/mountinfo has them (the mount point escaped as there). With
// it, a process that finds the store in use can tell whether the holder's
// mount is still there. A read-only holder (fsck without --repair) writes
// nothing: the file then tells of an earlier holder.

// lockInfoMax is the most of a lock file that is read.
const lockInfoMax = 8192

// lockInfo is what a lock file says of its holder.
type lockInfo struct {
	pid   string     // "" = none
	mount *lockMount // nil = none recorded
}

// lockMount is a mount as /proc/PID/mountinfo has it: its ID, device and
// mount point (unescaped; the lock file has it escaped as mountinfo does).
type lockMount struct {
	id, dev, point string
}

// who names the holder: "process N", or "another process".
func (li lockInfo) who() string {
	if li.pid != "" {
		return "process " + li.pid
	}
	return "another process"
}

// format returns the contents of a lock file saying li.
func (li lockInfo) format() []byte {
	s := li.pid + "\n"
	if m := li.mount; m != nil {
		s += "mount " + m.id + " " + m.dev + " " + mountinfo.Escape(m.point) + "\n"
	}
	return []byte(s)
}

// parseLockInfo reads what a lock file says; anything it does not know
// is left out.
func parseLockInfo(data []byte) lockInfo {
	var li lockInfo
	lines := strings.Split(string(data), "\n")
	if p := strings.TrimSpace(lines[0]); p != "" {
		li.pid = p
	}
	for _, l := range lines[1:] {
		f := strings.Fields(l)
		if len(f) == 4 && f[0] == "mount" {
			li.mount = &lockMount{id: f[1], dev: f[2], point: mountinfo.Unescape(f[3])}
		}
	}
	return li
}

// readLockInfo reads what lock file f says.
func readLockInfo(f *os.File) lockInfo {
	buf := make([]byte, lockInfoMax)
	n, _ := f.ReadAt(buf, 0)
	return parseLockInfo(buf[:n])
}

// writeLockInfo makes lock file f say li. The new contents are written
// over the old before the file is cut to their length, so that a reader
// never finds it empty.
func writeLockInfo(f *os.File, li lockInfo) error {
	b := li.format()
	if _, err := f.WriteAt(b, 0); err != nil {
		return err
	}
	return f.Truncate(int64(len(b)))
}

// ownMount returns the FUSE mount of this process on mountpoint, as its
// mountinfo has it.
func ownMount(mountpoint string) (*lockMount, error) {
	var sfs unix.Statfs_t
	if err := unix.Statfs(mountpoint, &sfs); err != nil {
		return nil, err
	}
	if sfs.Type != unix.FUSE_SUPER_MAGIC {
		return nil, fmt.Errorf("%s is not a FUSE mount", mountpoint)
	}
	return mountOfDir(mountpoint)
}

// mountOfDir returns the mount that dir, a mount point, is the root of,
// as this process's mountinfo has it: the topmost mount of dir's device.
func mountOfDir(dir string) (*lockMount, error) {
	var st unix.Stat_t
	if err := unix.Stat(dir, &st); err != nil {
		return nil, err
	}
	e, ok, err := mountinfo.OfDev(st.Dev)
	if err != nil {
		return nil, err
	}
	if !ok {
		return nil, fmt.Errorf("no mount of device %s in /proc/self/mountinfo", mountinfo.DevString(st.Dev))
	}
	return &lockMount{id: e.ID, dev: e.Dev, point: e.Mountpoint}, nil
}

// present reports whether mount m is still there, as process pid sees the
// mounts (as this process does if it cannot read pid's). Mounts that
// cannot be read at all are taken to be there.
func (m *lockMount) present(pid string) bool {
	names := []string{"/proc/self/mountinfo"}
	if _, err := strconv.Atoi(pid); err == nil && pid != strconv.Itoa(os.Getpid()) {
		names = []string{"/proc/" + pid + "/mountinfo", "/proc/self/mountinfo"}
	}
	for _, name := range names {
		entries, err := mountinfo.Read(name)
		if err != nil {
			continue
		}
		for _, e := range entries {
			if (lockMount{id: e.ID, dev: e.Dev, point: e.Mountpoint}) == *m {
				return true
			}
		}
		return false
	}
	return true
}
