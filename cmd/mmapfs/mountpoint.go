package main

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"

	"mmapfs/internal/mountinfo"
)

// findMount returns the topmost mount on path, if path is a mount point.
func findMount(path string) (mountinfo.Entry, bool, error) {
	entries, err := mountinfo.Read("/proc/self/mountinfo")
	if err != nil {
		return mountinfo.Entry{}, false, err
	}
	for i := len(entries) - 1; i >= 0; i-- {
		if entries[i].Mountpoint == path {
			return entries[i], true, nil
		}
	}
	return mountinfo.Entry{}, false, nil
}

// isFuseFdPath reports whether mnt is the /dev/fd/N form mount.fuse3 uses
// with drop_privileges: the mount is already done and N is its FUSE
// descriptor.
func isFuseFdPath(mnt string) bool {
	n, ok := strings.CutPrefix(mnt, "/dev/fd/")
	if !ok {
		return false
	}
	_, err := strconv.Atoi(n)
	return err == nil
}

// errnoText is the text of an errno as strerror has it, without Go's
// wrapping: "no such file or directory".
func errnoText(err error) string {
	var en unix.Errno
	if errors.As(err, &en) {
		return en.Error()
	}
	return err.Error()
}

// checkMountpoint says, in one line, why mnt cannot be mounted on, before
// anything is created.
func checkMountpoint(mnt string) error {
	if isFuseFdPath(mnt) {
		return nil
	}
	fi, err := os.Stat(mnt)
	if err != nil {
		if errors.Is(err, unix.ENOTCONN) {
			return fmt.Errorf("mount point %s: %s (a FUSE filesystem whose server is gone; unmount it with fusermount3 -u -z %s)", mnt, errnoText(err), mnt)
		}
		return fmt.Errorf("mount point %s: %s", mnt, errnoText(err))
	}
	if !fi.IsDir() {
		return fmt.Errorf("mount point %s: not a directory", mnt)
	}
	abs, err := filepath.Abs(mnt)
	if err != nil {
		return fmt.Errorf("mount point %s: %v", mnt, err)
	}
	if real, err := filepath.EvalSymlinks(abs); err == nil {
		abs = real
	}
	e, ok, err := findMount(abs)
	if err != nil {
		return nil // not knowing is no reason to refuse; mount(2) decides
	}
	if ok && (e.FsType == "fuse" || strings.HasPrefix(e.FsType, "fuse.")) {
		return fmt.Errorf("mount point %s: already mounted (%s %s); unmount it first with fusermount3 -u %s", mnt, e.FsType, e.Source, mnt)
	}
	return nil
}
