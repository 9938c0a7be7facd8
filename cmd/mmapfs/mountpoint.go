package main

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

// mountEntry is one line of /proc/self/mountinfo.
type mountEntry struct {
	Dev        string // major:minor
	Mountpoint string
	Options    string // per-mount options
	FsType     string
	Source     string
}

// parseMountinfo reads the format of proc(5) /proc/PID/mountinfo.
func parseMountinfo(r io.Reader) ([]mountEntry, error) {
	var out []mountEntry
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		// id parent major:minor root mountpoint options [optional...] - fstype source superoptions
		sep := -1
		for i := 6; i < len(f); i++ {
			if f[i] == "-" {
				sep = i
				break
			}
		}
		if len(f) < 6 || sep < 0 || sep+2 >= len(f) {
			return nil, fmt.Errorf("mountinfo: malformed line %q", sc.Text())
		}
		out = append(out, mountEntry{
			Dev:        f[2],
			Mountpoint: unescapeMountinfo(f[4]),
			Options:    f[5],
			FsType:     f[sep+1],
			Source:     unescapeMountinfo(f[sep+2]),
		})
	}
	return out, sc.Err()
}

// unescapeMountinfo undoes the octal escapes (\040 for a space, ...) the
// kernel writes into mountinfo.
func unescapeMountinfo(s string) string {
	if !strings.Contains(s, `\`) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+4 <= len(s) {
			if n, err := strconv.ParseUint(s[i+1:i+4], 8, 8); err == nil {
				b.WriteByte(byte(n))
				i += 3
				continue
			}
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

// findMount returns the topmost mount on path, if path is a mount point.
func findMount(path string) (mountEntry, bool, error) {
	f, err := os.Open("/proc/self/mountinfo")
	if err != nil {
		return mountEntry{}, false, err
	}
	defer f.Close()
	entries, err := parseMountinfo(f)
	if err != nil {
		return mountEntry{}, false, err
	}
	for i := len(entries) - 1; i >= 0; i-- {
		if entries[i].Mountpoint == path {
			return entries[i], true, nil
		}
	}
	return mountEntry{}, false, nil
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
