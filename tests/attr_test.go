package tests

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// Two non-root identities for permission tests.
const (
	uidA, gidA = 4001, 4001
	uidB, gidB = 4002, 4002
)

// TestChmod: mode bits change, ctime moves, mtime does not.
func TestChmod(t *testing.T) {
	t.Parallel()
	mnt, _, _ := mountFS(t)
	p := filepath.Join(mnt, "f")
	writeFile(t, p, []byte("x"))
	noErr(t, os.Chmod(p, 0o644), "chmod")
	before := lstat(t, p)
	time.Sleep(20 * time.Millisecond)
	for _, m := range []uint32{0o600, 0o000, 0o7777, 0o4755, 0o2755, 0o1644, 0o644} {
		noErr(t, unix.Chmod(p, m), "chmod %o", m)
		if st := lstat(t, p); st.Mode != unix.S_IFREG|m {
			t.Errorf("chmod %o: mode %o", m, st.Mode)
		}
	}
	after := lstat(t, p)
	if after.Ctim == before.Ctim {
		t.Errorf("chmod did not change ctime")
	}
	if after.Mtim != before.Mtim {
		t.Errorf("chmod changed mtime")
	}
	// fchmod, and chmod of a directory.
	fd := openFd(t, p, unix.O_RDONLY, 0)
	noErr(t, unix.Fchmod(fd, 0o640), "fchmod")
	closeFd(fd)
	if st := lstat(t, p); st.Mode != unix.S_IFREG|0o640 {
		t.Errorf("fchmod: mode %o", st.Mode)
	}
	d := filepath.Join(mnt, "d")
	noErr(t, os.Mkdir(d, 0o755), "mkdir")
	noErr(t, unix.Chmod(d, 0o3711), "chmod dir")
	if st := lstat(t, d); st.Mode != unix.S_IFDIR|0o3711 {
		t.Errorf("chmod dir: mode %o", st.Mode)
	}
	// The file type bits in the mode argument are ignored.
	noErr(t, unix.Chmod(p, unix.S_IFDIR|0o600), "chmod with type bits")
	if st := lstat(t, p); st.Mode != unix.S_IFREG|0o600 {
		t.Errorf("chmod with type bits: mode %o", st.Mode)
	}
}

// TestChown: root gives files away; set-user-ID (and set-group-ID with
// group execute) bits are cleared by chown of a non-directory.
func TestChown(t *testing.T) {
	needRoot(t)
	t.Parallel()
	mnt, _, _ := mountFS(t)
	p := filepath.Join(mnt, "f")
	writeFile(t, p, []byte("x"))
	before := lstat(t, p)
	time.Sleep(20 * time.Millisecond)
	noErr(t, os.Chown(p, 1234, 5678), "chown")
	st := lstat(t, p)
	if st.Uid != 1234 || st.Gid != 5678 {
		t.Errorf("after chown: %d:%d", st.Uid, st.Gid)
	}
	if st.Ctim == before.Ctim || st.Mtim != before.Mtim {
		t.Errorf("chown: ctime changed %v, mtime changed %v; want true, false", st.Ctim != before.Ctim, st.Mtim != before.Mtim)
	}
	noErr(t, os.Chown(p, -1, 42), "chgrp")
	if st := lstat(t, p); st.Uid != 1234 || st.Gid != 42 {
		t.Errorf("after chgrp: %d:%d", st.Uid, st.Gid)
	}
	noErr(t, os.Chown(p, 7, -1), "chown uid only")
	if st := lstat(t, p); st.Uid != 7 || st.Gid != 42 {
		t.Errorf("after chown uid only: %d:%d", st.Uid, st.Gid)
	}
	// lchown changes the symlink, not its target; chown follows it.
	l := filepath.Join(mnt, "l")
	noErr(t, os.Symlink("f", l), "symlink")
	noErr(t, os.Lchown(l, 99, 98), "lchown")
	if st := lstat(t, l); st.Uid != 99 || st.Gid != 98 {
		t.Errorf("lchown: link %d:%d", st.Uid, st.Gid)
	}
	if st := lstat(t, p); st.Uid != 7 {
		t.Errorf("lchown changed the target: %d", st.Uid)
	}
	noErr(t, os.Chown(l, 11, 12), "chown through symlink")
	if st := lstat(t, p); st.Uid != 11 || st.Gid != 12 {
		t.Errorf("chown through symlink: target %d:%d", st.Uid, st.Gid)
	}
	// Directories, fchown.
	d := filepath.Join(mnt, "d")
	noErr(t, os.Mkdir(d, 0o755), "mkdir")
	fd := openFd(t, d, unix.O_RDONLY|unix.O_DIRECTORY, 0)
	noErr(t, unix.Fchown(fd, 500, 501), "fchown")
	closeFd(fd)
	if st := lstat(t, d); st.Uid != 500 || st.Gid != 501 {
		t.Errorf("fchown dir: %d:%d", st.Uid, st.Gid)
	}

	// Privilege bits.
	for _, c := range []struct {
		mode, uid, gid int
		want           uint32
	}{
		{0o6755, 1, -1, 0o755},  // setuid and setgid+group-exec cleared
		{0o6745, -1, 2, 0o2745}, // setgid without group exec survives
		{0o4700, -1, -1, 0o700}, // even chown(-1, -1) clears setuid
		{0o1755, 3, 3, 0o1755},  // sticky stays
	} {
		noErr(t, unix.Chmod(p, uint32(c.mode)), "chmod")
		noErr(t, os.Chown(p, c.uid, c.gid), "chown")
		if st := lstat(t, p); st.Mode&0o7777 != c.want {
			t.Errorf("mode %o after chown(%d, %d): %o, want %o", c.mode, c.uid, c.gid, st.Mode&0o7777, c.want)
		}
	}
	// A directory keeps its setgid bit.
	noErr(t, unix.Chmod(d, 0o2775), "chmod")
	noErr(t, os.Chown(d, 1, 1), "chown")
	if st := lstat(t, d); st.Mode&0o7777 != 0o2775 {
		t.Errorf("directory after chown: %o, want 2775", st.Mode&0o7777)
	}
}

// TestUtimens: explicit times with nanoseconds, UTIME_NOW, UTIME_OMIT.
func TestUtimens(t *testing.T) {
	t.Parallel()
	mnt, _, _ := mountFS(t)
	p := filepath.Join(mnt, "f")
	writeFile(t, p, []byte("x"))
	set := func(a, m unix.Timespec, flags int) error {
		return unix.UtimesNanoAt(unix.AT_FDCWD, p, []unix.Timespec{a, m}, flags)
	}
	ts := func(s, ns int64) unix.Timespec { return unix.Timespec{Sec: s, Nsec: ns} }

	noErr(t, set(ts(1234567890, 123456789), ts(1111111111, 987654321), 0), "utimensat")
	st := lstat(t, p)
	if st.Atim != ts(1234567890, 123456789) || st.Mtim != ts(1111111111, 987654321) {
		t.Errorf("times: atime %v mtime %v", st.Atim, st.Mtim)
	}
	c0 := st.Ctim
	time.Sleep(20 * time.Millisecond)

	// UTIME_OMIT leaves one alone.
	noErr(t, set(ts(0, unix.UTIME_OMIT), ts(2000000000, 1), 0), "utimensat omit atime")
	st = lstat(t, p)
	if st.Atim != ts(1234567890, 123456789) || st.Mtim != ts(2000000000, 1) {
		t.Errorf("omit atime: atime %v mtime %v", st.Atim, st.Mtim)
	}
	if st.Ctim == c0 {
		t.Errorf("utimensat did not change ctime")
	}
	noErr(t, set(ts(5, 5), ts(0, unix.UTIME_OMIT), 0), "utimensat omit mtime")
	st = lstat(t, p)
	if st.Atim != ts(5, 5) || st.Mtim != ts(2000000000, 1) {
		t.Errorf("omit mtime: atime %v mtime %v", st.Atim, st.Mtim)
	}
	// Both omitted: nothing changes, not even ctime.
	c1 := st.Ctim
	time.Sleep(20 * time.Millisecond)
	noErr(t, set(ts(0, unix.UTIME_OMIT), ts(0, unix.UTIME_OMIT), 0), "utimensat omit both")
	if st := lstat(t, p); st.Ctim != c1 || st.Atim != ts(5, 5) {
		t.Errorf("omit both: ctime changed %v, atime %v", st.Ctim != c1, st.Atim)
	}

	// UTIME_NOW: the current time, for one or both.
	lo := time.Now().Add(-time.Second)
	noErr(t, set(ts(0, unix.UTIME_NOW), ts(0, unix.UTIME_OMIT), 0), "utimensat now atime")
	hi := time.Now().Add(time.Second)
	st = lstat(t, p)
	if a := time.Unix(st.Atim.Unix()); a.Before(lo) || a.After(hi) {
		t.Errorf("UTIME_NOW atime %v not now", a)
	}
	if st.Mtim != ts(2000000000, 1) {
		t.Errorf("UTIME_NOW for atime changed mtime: %v", st.Mtim)
	}
	noErr(t, set(ts(0, unix.UTIME_NOW), ts(0, unix.UTIME_NOW), 0), "utimensat now both")
	st = lstat(t, p)
	if m := time.Unix(st.Mtim.Unix()); m.Before(lo) || m.After(time.Now().Add(time.Second)) {
		t.Errorf("UTIME_NOW mtime %v not now", m)
	}
	if st.Atim != st.Mtim || st.Ctim != st.Mtim {
		t.Errorf("UTIME_NOW both: atime %v mtime %v ctime %v, want all equal", st.Atim, st.Mtim, st.Ctim)
	}
	// nil times = now.
	noErr(t, unix.UtimesNanoAt(unix.AT_FDCWD, p, nil, 0), "utimensat NULL")

	// Times before 1970 and far in the future.
	for _, c := range [][2]unix.Timespec{
		{ts(-1, 0), ts(-1000000000, 999999999)},
		{ts(0, 0), ts(0, 1)},
		{ts(10413792000, 5), ts(1<<33, 7)}, // year 2300, year 2242
	} {
		noErr(t, set(c[0], c[1], 0), "utimensat %v", c)
		if st := lstat(t, p); st.Atim != c[0] || st.Mtim != c[1] {
			t.Errorf("set %v: got atime %v mtime %v", c, st.Atim, st.Mtim)
		}
	}
	// Out-of-range nanoseconds.
	wantErrno(t, set(ts(1, 1000000000), ts(1, 0), 0), unix.EINVAL, "utimensat nsec 1e9")
	wantErrno(t, set(ts(1, -1), ts(1, 0), 0), unix.EINVAL, "utimensat nsec -1")

	// On a directory and (AT_SYMLINK_NOFOLLOW) on a symlink itself.
	d := filepath.Join(mnt, "d")
	noErr(t, os.Mkdir(d, 0o755), "mkdir")
	noErr(t, unix.UtimesNanoAt(unix.AT_FDCWD, d, []unix.Timespec{ts(100, 1), ts(200, 2)}, 0), "utimensat dir")
	if st := lstat(t, d); st.Atim != ts(100, 1) || st.Mtim != ts(200, 2) {
		t.Errorf("dir times: %v %v", st.Atim, st.Mtim)
	}
	l := filepath.Join(mnt, "l")
	noErr(t, os.Symlink("f", l), "symlink")
	noErr(t, unix.UtimesNanoAt(unix.AT_FDCWD, l, []unix.Timespec{ts(300, 3), ts(400, 4)}, unix.AT_SYMLINK_NOFOLLOW), "utimensat symlink")
	if st := lstat(t, l); st.Atim != ts(300, 3) || st.Mtim != ts(400, 4) {
		t.Errorf("symlink times: %v %v", st.Atim, st.Mtim)
	}
	if st := lstat(t, p); st.Mtim == ts(400, 4) {
		t.Errorf("AT_SYMLINK_NOFOLLOW changed the target")
	}
}

// timesOf is the (atime, mtime, ctime) triple of a path.
type timesOf struct{ a, m, c unix.Timespec }

func getTimes(t testing.TB, p string) timesOf {
	t.Helper()
	st := lstat(t, p)
	return timesOf{st.Atim, st.Mtim, st.Ctim}
}

// changed says which of a, m, c differ, as a string like "mc" or "-".
func (x timesOf) changed(y timesOf) string {
	s := ""
	if x.a != y.a {
		s += "a"
	}
	if x.m != y.m {
		s += "m"
	}
	if x.c != y.c {
		s += "c"
	}
	if s == "" {
		s = "-"
	}
	return s
}

// TestTimestampUpdates: which of atime, mtime and ctime each operation
// changes on which inode, as tmpfs does it (mounted relatime).
func TestTimestampUpdates(t *testing.T) {
	t.Parallel()
	mnt, _, _ := mountFS(t)
	old := []unix.Timespec{{Sec: 1000000000}, {Sec: 1000000000}}

	type check struct {
		path string // relative to the case's directory; "after<before" if the inode moves
		want string // which of a, m, c change: e.g. "mc", "c", "-"
	}
	cases := []struct {
		name  string
		setup func(d string)
		op    func(d string) error
		check []check
	}{
		{"write", func(d string) { writeFile(t, d+"/f", []byte("x")) },
			func(d string) error { return os.WriteFile(d+"/f", []byte("y"), 0) },
			[]check{{"f", "mc"}, {".", "-"}}},
		{"read", func(d string) { writeFile(t, d+"/f", []byte("x")) },
			func(d string) error { _, err := os.ReadFile(d + "/f"); return err },
			[]check{{"f", "a"}, {".", "-"}}},
		{"open-close", func(d string) { writeFile(t, d+"/f", []byte("x")) },
			func(d string) error { f, err := os.Open(d + "/f"); f.Close(); return err },
			[]check{{"f", "-"}}},
		{"stat", func(d string) { writeFile(t, d+"/f", []byte("x")) },
			func(d string) error { _, err := os.Stat(d + "/f"); return err },
			[]check{{"f", "-"}, {".", "-"}}},
		{"truncate", func(d string) { writeFile(t, d+"/f", []byte("xyz")) },
			func(d string) error { return os.Truncate(d+"/f", 1) },
			[]check{{"f", "mc"}}},
		{"truncate-same-size", func(d string) { writeFile(t, d+"/f", []byte("xyz")) },
			func(d string) error { return os.Truncate(d+"/f", 3) },
			[]check{{"f", "mc"}}},
		{"open-O_TRUNC", func(d string) { writeFile(t, d+"/f", []byte("xyz")) },
			func(d string) error {
				f, err := os.OpenFile(d+"/f", os.O_WRONLY|os.O_TRUNC, 0)
				f.Close()
				return err
			},
			[]check{{"f", "mc"}}},
		{"chmod", func(d string) { writeFile(t, d+"/f", nil) },
			func(d string) error { return os.Chmod(d+"/f", 0o600) },
			[]check{{"f", "c"}, {".", "-"}}},
		{"create", nil,
			func(d string) error { return os.WriteFile(d+"/new", nil, 0o644) },
			[]check{{".", "mc"}}},
		{"mkdir", nil,
			func(d string) error { return os.Mkdir(d+"/new", 0o755) },
			[]check{{".", "mc"}}},
		{"rmdir", func(d string) { noErr(t, os.Mkdir(d+"/sub", 0o755), "mkdir") },
			func(d string) error { return unix.Rmdir(d + "/sub") },
			[]check{{".", "mc"}}},
		{"symlink", nil,
			func(d string) error { return os.Symlink("t", d+"/new") },
			[]check{{".", "mc"}}},
		{"mknod-fifo", nil,
			func(d string) error { return unix.Mkfifo(d+"/new", 0o644) },
			[]check{{".", "mc"}}},
		{"link", func(d string) { writeFile(t, d+"/f", nil); noErr(t, os.Mkdir(d+"/o", 0o755), "mkdir") },
			func(d string) error { return os.Link(d+"/f", d+"/o/l") },
			[]check{{"f", "c"}, {"o", "mc"}, {".", "-"}}},
		{"unlink", func(d string) {
			writeFile(t, d+"/f", nil)
			noErr(t, os.Mkdir(d+"/o", 0o755), "mkdir")
			noErr(t, os.Link(d+"/f", d+"/o/l"), "link")
		},
			func(d string) error { return unix.Unlink(d + "/o/l") },
			[]check{{"f", "c"}, {"o", "mc"}, {".", "-"}}},
		{"rename-same-dir", func(d string) { writeFile(t, d+"/f", nil); noErr(t, os.Link(d+"/f", d+"/keep"), "link") },
			func(d string) error { return unix.Rename(d+"/f", d+"/g") },
			[]check{{"keep", "c"}, {".", "mc"}}},
		{"rename-across-dirs", func(d string) {
			noErr(t, os.Mkdir(d+"/s", 0o755), "mkdir")
			noErr(t, os.Mkdir(d+"/t", 0o755), "mkdir")
			writeFile(t, d+"/s/f", nil)
			noErr(t, os.Link(d+"/s/f", d+"/keep"), "link")
		},
			func(d string) error { return unix.Rename(d+"/s/f", d+"/t/f") },
			[]check{{"keep", "c"}, {"s", "mc"}, {"t", "mc"}, {".", "-"}}},
		{"rename-dir-across-dirs", func(d string) {
			noErr(t, os.MkdirAll(d+"/s/sub", 0o755), "mkdir")
			noErr(t, os.Mkdir(d+"/t", 0o755), "mkdir")
		},
			func(d string) error { return unix.Rename(d+"/s/sub", d+"/t/sub") },
			[]check{{"t/sub<s/sub", "c"}, {"s", "mc"}, {"t", "mc"}, {".", "-"}}},
		{"rename-over-existing", func(d string) {
			writeFile(t, d+"/f", nil)
			writeFile(t, d+"/g", nil)
			noErr(t, os.Mkdir(d+"/o", 0o755), "mkdir")
			noErr(t, os.Link(d+"/g", d+"/o/victim"), "link")
		},
			func(d string) error { return unix.Rename(d+"/f", d+"/g") },
			[]check{{"g<f", "c"}, {"o/victim", "c"}, {".", "mc"}}},
		{"rename-exchange", func(d string) {
			noErr(t, os.Mkdir(d+"/s", 0o755), "mkdir")
			writeFile(t, d+"/s/f", nil)
			writeFile(t, d+"/g", nil)
		},
			func(d string) error {
				return unix.Renameat2(unix.AT_FDCWD, d+"/s/f", unix.AT_FDCWD, d+"/g", unix.RENAME_EXCHANGE)
			},
			[]check{{"g<s/f", "c"}, {"s/f<g", "c"}, {"s", "mc"}, {".", "mc"}}},
		{"setxattr", func(d string) { writeFile(t, d+"/f", nil) },
			func(d string) error { return unix.Setxattr(d+"/f", "user.x", []byte("v"), 0) },
			[]check{{"f", "c"}}},
		{"removexattr", func(d string) {
			writeFile(t, d+"/f", nil)
			noErr(t, unix.Setxattr(d+"/f", "user.x", []byte("v"), 0), "setxattr")
		},
			func(d string) error { return unix.Removexattr(d+"/f", "user.x") },
			[]check{{"f", "c"}}},
		{"getxattr-listxattr", func(d string) {
			writeFile(t, d+"/f", nil)
			noErr(t, unix.Setxattr(d+"/f", "user.x", []byte("v"), 0), "setxattr")
		},
			func(d string) error {
				_, err := unix.Getxattr(d+"/f", "user.x", make([]byte, 10))
				unix.Listxattr(d+"/f", make([]byte, 100))
				return err
			},
			[]check{{"f", "-"}}},
		{"fallocate-keep-size", func(d string) { writeFile(t, d+"/f", []byte("x")) },
			func(d string) error {
				fd, err := unix.Open(d+"/f", unix.O_WRONLY, 0)
				if err != nil {
					return err
				}
				defer closeFd(fd)
				return unix.Fallocate(fd, unix.FALLOC_FL_KEEP_SIZE, 0, 8192)
			},
			[]check{{"f", "mc"}}},
		{"punch-hole", func(d string) { writeFile(t, d+"/f", make([]byte, 8192)) },
			func(d string) error {
				fd, err := unix.Open(d+"/f", unix.O_WRONLY, 0)
				if err != nil {
					return err
				}
				defer closeFd(fd)
				return unix.Fallocate(fd, unix.FALLOC_FL_KEEP_SIZE|unix.FALLOC_FL_PUNCH_HOLE, 0, 4096)
			},
			[]check{{"f", "mc"}}},
		{"copy_file_range", func(d string) { writeFile(t, d+"/src", []byte("data")); writeFile(t, d+"/dst", nil) },
			func(d string) error {
				in, err := unix.Open(d+"/src", unix.O_RDONLY, 0)
				if err != nil {
					return err
				}
				defer closeFd(in)
				out, err := unix.Open(d+"/dst", unix.O_WRONLY, 0)
				if err != nil {
					return err
				}
				defer closeFd(out)
				_, err = unix.CopyFileRange(in, nil, out, nil, 4, 0)
				return err
			},
			[]check{{"src", "a"}, {"dst", "mc"}}},
		{"readdir", func(d string) { writeFile(t, d+"/f", nil) },
			func(d string) error { _, err := os.ReadDir(d); return err },
			[]check{{".", "a"}, {"f", "-"}}},
		{"readlink", func(d string) { noErr(t, os.Symlink("target", d+"/l"), "symlink") },
			func(d string) error { _, err := os.Readlink(d + "/l"); return err },
			[]check{{"l", "a"}}},
		{"write-0-bytes", func(d string) { writeFile(t, d+"/f", []byte("x")) },
			func(d string) error {
				fd, err := unix.Open(d+"/f", unix.O_WRONLY, 0)
				if err != nil {
					return err
				}
				defer closeFd(fd)
				_, err = unix.Write(fd, nil)
				return err
			},
			[]check{{"f", "-"}}},
	}
	for _, c := range cases {
		d := filepath.Join(mnt, c.name)
		noErr(t, os.Mkdir(d, 0o755), "mkdir")
		if c.setup != nil {
			c.setup(d)
		}
	}
	// Age every involved inode, wait a moment so that a new ctime differs,
	// then run each operation and see what changed.
	before := map[string]timesOf{} // by the path after the operation
	split := func(path string) (after, pre string) {
		after, pre, ok := strings.Cut(path, "<")
		if !ok {
			pre = after
		}
		return after, pre
	}
	for _, c := range cases {
		for _, ch := range c.check {
			_, pre := split(ch.path)
			p := filepath.Join(mnt, c.name, pre)
			noErr(t, unix.UtimesNanoAt(unix.AT_FDCWD, p, old, unix.AT_SYMLINK_NOFOLLOW), "age %s", p)
		}
	}
	for _, c := range cases {
		for _, ch := range c.check {
			after, pre := split(ch.path)
			before[filepath.Join(mnt, c.name, after)] = getTimes(t, filepath.Join(mnt, c.name, pre))
		}
	}
	time.Sleep(50 * time.Millisecond)
	for _, c := range cases {
		d := filepath.Join(mnt, c.name)
		if err := c.op(d); err != nil {
			t.Errorf("%s: %v", c.name, err)
			continue
		}
		var got, want []string
		for _, ch := range c.check {
			after, _ := split(ch.path)
			p := filepath.Join(d, after)
			got = append(got, ch.path+":"+before[p].changed(getTimes(t, p)))
			want = append(want, ch.path+":"+ch.want)
		}
		if g, w := strings.Join(got, " "), strings.Join(want, " "); g != w {
			t.Errorf("%s changed %s; want %s", c.name, g, w)
		}
	}
}

// TestRelatime: a read updates atime only while atime is not newer than
// mtime or ctime (relatime), and a write after that makes the next read
// update it again.
func TestRelatime(t *testing.T) {
	t.Parallel()
	mnt, _, _ := mountFS(t)
	p := filepath.Join(mnt, "f")
	writeFile(t, p, []byte("data"))
	// atime == mtime == ctime now: the first read updates atime.
	time.Sleep(20 * time.Millisecond)
	readFile(t, p)
	a1 := lstat(t, p).Atim
	st := lstat(t, p)
	if !timespecAfter(a1, st.Mtim) {
		t.Fatalf("first read did not move atime past mtime: atime %v mtime %v", a1, st.Mtim)
	}
	time.Sleep(20 * time.Millisecond)
	readFile(t, p)
	if a2 := lstat(t, p).Atim; a2 != a1 {
		t.Errorf("second read changed atime (relatime should not): %v -> %v", a1, a2)
	}
	time.Sleep(20 * time.Millisecond)
	f, err := os.OpenFile(p, os.O_WRONLY, 0)
	noErr(t, err, "open")
	f.WriteAt([]byte("D"), 0)
	f.Close()
	time.Sleep(20 * time.Millisecond)
	readFile(t, p)
	if a3 := lstat(t, p).Atim; a3 == a1 {
		t.Errorf("read after a write did not update atime")
	}
}

func timespecAfter(a, b unix.Timespec) bool {
	return a.Sec > b.Sec || (a.Sec == b.Sec && a.Nsec > b.Nsec)
}

// TestStatx: statx reports the basic fields and a birth time that stays put.
func TestStatx(t *testing.T) {
	t.Parallel()
	mnt, _, _ := mountFS(t)
	p := filepath.Join(mnt, "f")
	lo := time.Now().Add(-time.Second)
	writeFile(t, p, []byte("hello"))
	var sx unix.Statx_t
	noErr(t, unix.Statx(unix.AT_FDCWD, p, unix.AT_STATX_SYNC_AS_STAT, unix.STATX_ALL, &sx), "statx")
	if sx.Mask&unix.STATX_BASIC_STATS != unix.STATX_BASIC_STATS {
		t.Errorf("statx mask %#x lacks basic stats", sx.Mask)
	}
	st := lstat(t, p)
	if sx.Size != 5 || uint64(sx.Ino) != st.Ino || uint32(sx.Mode) != st.Mode || sx.Nlink != uint32(st.Nlink) || sx.Blksize != uint32(st.Blksize) {
		t.Errorf("statx disagrees with stat: size %d ino %d mode %o nlink %d blksize %d", sx.Size, sx.Ino, sx.Mode, sx.Nlink, sx.Blksize)
	}
	if sx.Mask&unix.STATX_BTIME == 0 {
		t.Errorf("statx has no birth time (tmpfs has one)")
		return
	}
	bt := time.Unix(sx.Btime.Sec, int64(sx.Btime.Nsec))
	if bt.Before(lo) || bt.After(time.Now().Add(time.Second)) {
		t.Errorf("birth time %v is not the creation time", bt)
	}
	time.Sleep(20 * time.Millisecond)
	writeFile(t, p, []byte("changed"))
	noErr(t, os.Chmod(p, 0o600), "chmod")
	var sx2 unix.Statx_t
	noErr(t, unix.Statx(unix.AT_FDCWD, p, 0, unix.STATX_BTIME, &sx2), "statx")
	if sx2.Btime != sx.Btime {
		t.Errorf("birth time changed by write/chmod: %v -> %v", sx.Btime, sx2.Btime)
	}
	if sx2.Mtime == sx.Mtime {
		t.Errorf("statx mtime did not change with a write")
	}
	// st_blksize as tmpfs: one page.
	if st.Blksize != page {
		t.Errorf("st_blksize %d, want %d", st.Blksize, page)
	}
}

// TestSetuidClearedOnWrite: a write or truncate by a process without
// CAP_FSETID clears set-user-ID, and set-group-ID when group execute is set;
// security.capability goes too. Root's writes keep them.
func TestSetuidClearedOnWrite(t *testing.T) {
	needRoot(t)
	t.Parallel()
	mnt, _, _ := mountFS(t, withAllowOther())
	bin := helperBinary(t)
	j := func(s string) string { return filepath.Join(mnt, s) }
	mk := func(name string, mode uint32, uid, gid int) string {
		p := j(name)
		writeFile(t, p, []byte("0123456789"))
		noErr(t, os.Chown(p, uid, gid), "chown")
		noErr(t, unix.Chmod(p, mode), "chmod")
		return p
	}
	cases := []struct {
		name     string
		mode     uint32
		uid, gid int
		op       helperOp
		want     uint32
	}{
		{"write-suid-sgid", 0o6777, 0, 0, nil, 0o777},
		{"write-sgid-gx", 0o2777, 0, 0, nil, 0o777},
		{"write-sgid-no-gx", 0o2767, 0, 0, nil, 0o767},              // writer not in the group
		{"write-sgid-no-gx-in-group", 0o2767, 0, gidA, nil, 0o2767}, // writer in the group
		{"write-suid-owner", 0o4777, uidA, gidA, nil, 0o777},
		{"write-sgid-owner-group", 0o2777, uidA, gidA, nil, 0o777},
		{"truncate", 0o6777, 0, 0, hop("truncate", "PATH", 3), 0o777},
		{"ftruncate", 0o4777, 0, 0, hop("ftruncate", "PATH", 20), 0o777},
		{"open-trunc", 0o4777, 0, 0, hop("open", "PATH", unix.O_WRONLY|unix.O_TRUNC), 0o777},
		{"append", 0o6777, 0, 0, hop("append", "PATH", "more"), 0o777},
		{"sticky-stays", 0o1777, 0, 0, nil, 0o1777},
	}
	var ops []helperOp
	for _, c := range cases {
		p := mk(c.name, c.mode, c.uid, c.gid)
		o := c.op
		if o == nil {
			o = hop("write", "PATH", "abc")
		}
		o = append(helperOp{}, o...)
		o[1] = p
		ops = append(ops, o)
	}
	res := runAs(t, bin, uidA, gidA, ops...)
	for i, c := range cases {
		if res[i] != "ok" {
			t.Errorf("%s: %v by uid %d: %s", c.name, ops[i], uidA, res[i])
			continue
		}
		if st := lstat(t, j(c.name)); st.Mode&0o7777 != c.want {
			t.Errorf("%s: mode %o after the unprivileged %s, want %o", c.name, st.Mode&0o7777, ops[i][0], c.want)
		}
	}
	// Root's write keeps the bits.
	p := mk("root-write", 0o6777, 0, 0)
	noErr(t, os.WriteFile(p, []byte("root"), 0), "write as root")
	if st := lstat(t, p); st.Mode&0o7777 != 0o6777 {
		t.Errorf("write by root (CAP_FSETID) changed mode to %o", st.Mode&0o7777)
	}

	// security.capability is removed by an unprivileged write.
	p = mk("capfile", 0o777, 0, 0)
	// VFS_CAP_REVISION_2, no effective bit, permitted = CAP_NET_RAW.
	capv := []byte{0, 0, 0, 2, 0, 0x20, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0}
	if err := unix.Setxattr(p, "security.capability", capv, 0); err != nil {
		t.Errorf("set security.capability: %v", errString(err))
	} else {
		res := runAs(t, bin, uidA, gidA, hop("write", p, "x"))
		if res[0] != "ok" {
			t.Errorf("write: %s", res[0])
		}
		_, err := unix.Getxattr(p, "security.capability", make([]byte, 64))
		wantErrno(t, err, unix.ENODATA, "security.capability after an unprivileged write")
	}

	// chmod g+s by an owner not in the file's group: the bit is dropped.
	p = mk("chmod-sgid", 0o755, uidA, 0)
	res = runAs(t, bin, uidA, gidA, hop("chmod", p, 0o2755))
	if res[0] != "ok" {
		t.Errorf("chmod by owner: %s", res[0])
	} else if st := lstat(t, p); st.Mode&0o7777 != 0o755 {
		t.Errorf("chmod 2755 by an owner outside the group: mode %o, want 755", st.Mode&0o7777)
	}
}

// TestNewFileOwnership: new files belong to the creating process's uid and
// gid, or to the directory's group in a set-group-ID directory, where new
// directories inherit the bit.
func TestNewFileOwnership(t *testing.T) {
	needRoot(t)
	t.Parallel()
	mnt, _, _ := mountFS(t, withAllowOther())
	bin := helperBinary(t)
	j := func(s ...string) string { return filepath.Join(append([]string{mnt}, s...)...) }
	noErr(t, os.Mkdir(j("sgid"), 0o777), "mkdir")
	noErr(t, os.Chown(j("sgid"), 0, 5000), "chown")
	noErr(t, unix.Chmod(j("sgid"), 0o2777), "chmod")
	res := runAs(t, bin, uidA, gidA,
		hop("create", j("plain"), 0o644),
		hop("mkdir", j("plaindir"), 0o755),
		hop("create", j("sgid", "f"), 0o644),
		hop("mkdir", j("sgid", "d"), 0o755),
	)
	for i, r := range res {
		if r != "ok" {
			t.Fatalf("op %d: %s", i, r)
		}
	}
	for _, c := range []struct {
		path     string
		uid, gid uint32
		mode     uint32
	}{
		{j("plain"), uidA, gidA, unix.S_IFREG | 0o644},
		{j("plaindir"), uidA, gidA, unix.S_IFDIR | 0o755},
		{j("sgid", "f"), uidA, 5000, unix.S_IFREG | 0o644},
		{j("sgid", "d"), uidA, 5000, unix.S_IFDIR | 0o2755},
	} {
		st := lstat(t, c.path)
		if st.Uid != c.uid || st.Gid != c.gid || st.Mode != c.mode {
			t.Errorf("%s: %d:%d mode %o, want %d:%d mode %o", c.path, st.Uid, st.Gid, st.Mode, c.uid, c.gid, c.mode)
		}
	}
}

// TestPermissions: the kernel's permission checks hold for an unprivileged
// uid.
func TestPermissions(t *testing.T) {
	needRoot(t)
	t.Parallel()
	mnt, _, _ := mountFS(t, withAllowOther())
	bin := helperBinary(t)
	j := func(s ...string) string { return filepath.Join(append([]string{mnt}, s...)...) }
	writeFile(t, j("secret"), []byte("secret"))
	noErr(t, os.Chmod(j("secret"), 0o600), "chmod")
	writeFile(t, j("readable"), []byte("public"))
	noErr(t, os.Chmod(j("readable"), 0o644), "chmod")
	writeFile(t, j("shared"), []byte("shared"))
	noErr(t, os.Chmod(j("shared"), 0o666), "chmod")
	noErr(t, os.Mkdir(j("private"), 0o700), "mkdir")
	writeFile(t, j("private", "f"), []byte("x"))
	noErr(t, os.Mkdir(j("ro"), 0o755), "mkdir")
	writeFile(t, j("ro", "f"), []byte("x"))
	noErr(t, os.Mkdir(j("sticky"), 0o1777), "mkdir")
	noErr(t, unix.Chmod(j("sticky"), 0o1777), "chmod")
	noErr(t, os.Mkdir(j("group"), 0o770), "mkdir")
	noErr(t, os.Chown(j("group"), 0, gidA), "chown")
	noErr(t, unix.Chmod(j("group"), 0o770), "chmod")

	type c struct {
		uid  uint32
		op   helperOp
		want string
	}
	steps := []c{
		{uidA, hop("read", j("secret")), "EACCES"},
		{uidA, hop("open", j("secret"), unix.O_WRONLY), "EACCES"},
		{uidA, hop("read", j("readable")), "ok:public"},
		{uidA, hop("open", j("readable"), unix.O_WRONLY), "EACCES"},
		{uidA, hop("truncate", j("readable"), 0), "EACCES"},
		{uidA, hop("write", j("shared"), "A"), "ok"},
		{uidA, hop("stat", j("private", "f")), "EACCES"},
		{uidA, hop("create", j("private", "g"), 0o644), "EACCES"},
		{uidA, hop("create", j("ro", "g"), 0o644), "EACCES"},
		{uidA, hop("unlink", j("ro", "f")), "EACCES"},
		{uidA, hop("rename", j("ro", "f"), j("ro", "g")), "EACCES"},
		{uidA, hop("mkdir", j("ro", "d"), 0o755), "EACCES"},
		{uidA, hop("chmod", j("readable"), 0o666), "EPERM"},
		{uidA, hop("chown", j("shared"), uidA, gidA), "EPERM"},
		{uidA, hop("utimes-now", j("shared")), "ok"},    // write access suffices for "now"
		{uidA, hop("utimes-set", j("shared")), "EPERM"}, // explicit times need ownership
		{uidA, hop("utimes-now", j("readable")), "EACCES"},
		{uidA, hop("setxattr", j("shared"), "user.a", "v"), "ok"},
		{uidA, hop("setxattr", j("readable"), "user.a", "v"), "EACCES"},
		{uidA, hop("setxattr", j("shared"), "trusted.a", "v"), "EPERM"},
		{uidA, hop("create", j("group", "viagroup"), 0o644), "ok"},
		{uidB, hop("create", j("group", "other"), 0o644), "EACCES"},
		// Sticky directory: only the owner (or the dir's owner) may remove.
		{uidA, hop("create", j("sticky", "mine"), 0o666), "ok"},
		{uidB, hop("unlink", j("sticky", "mine")), "EPERM"},
		{uidB, hop("rename", j("sticky", "mine"), j("sticky", "stolen")), "EPERM"},
		{uidB, hop("write", j("sticky", "mine"), "B"), "ok"},
		{uidA, hop("rename", j("sticky", "mine"), j("sticky", "mine2")), "ok"},
		{uidA, hop("unlink", j("sticky", "mine2")), "ok"},
		// chown of one's own file: to another uid no, to another group
		// one is not in, no.
		{uidA, hop("create", j("own"), 0o644), "ok"},
		{uidA, hop("chown", j("own"), uidB, -1), "EPERM"},
		{uidA, hop("chown", j("own"), -1, gidB), "EPERM"},
		{uidA, hop("chown", j("own"), -1, gidA), "ok"},
		{uidA, hop("chmod", j("own"), 0o600), "ok"},
		{uidA, hop("utimes-set", j("own")), "ok"},
	}
	// Consecutive steps of one uid run in one helper process.
	for i := 0; i < len(steps); {
		k := i
		var ops []helperOp
		for ; k < len(steps) && steps[k].uid == steps[i].uid; k++ {
			ops = append(ops, steps[k].op)
		}
		gid := uint32(gidA)
		if steps[i].uid == uidB {
			gid = gidB
		}
		res := runAs(t, bin, steps[i].uid, gid, ops...)
		for n, r := range res {
			if s := steps[i+n]; r != s.want {
				t.Errorf("step %d: uid %d %v: %s, want %s", i+n, s.uid, s.op, r, s.want)
			}
		}
		i = k
	}
	// Root reads everything (CAP_DAC_OVERRIDE).
	if got := string(readFile(t, j("private", "f"))); got != "x" {
		t.Errorf("root read %q", got)
	}
	// trusted.* is invisible to the unprivileged.
	noErr(t, unix.Setxattr(j("shared"), "trusted.t", []byte("v"), 0), "setxattr trusted")
	res := runAs(t, bin, uidA, gidA, hop("getxattr", j("shared"), "trusted.t"), hop("getxattr", j("shared"), "user.a"))
	if res[0] != "ENODATA" || res[1] != "ok:v" {
		t.Errorf("unprivileged getxattr trusted.t, user.a: %v, want [ENODATA ok:v]", res)
	}
}

// TestCapabilityKilled: security.capability goes away on write, truncate,
// fallocate and chown, even by root, but not on chmod; a malformed value is
// refused.
func TestCapabilityKilled(t *testing.T) {
	needRoot(t)
	t.Parallel()
	mnt, _, _ := mountFS(t)
	p := filepath.Join(mnt, "f")
	writeFile(t, p, []byte("x"))
	// VFS_CAP_REVISION_2, permitted = CAP_NET_RAW.
	capv := []byte{0, 0, 0, 2, 0, 0x20, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0}
	for _, c := range []struct {
		name string
		op   func() error
		kept bool
	}{
		{"write", func() error { return os.WriteFile(p, []byte("y"), 0) }, false},
		{"truncate", func() error { return unix.Truncate(p, 0) }, false},
		{"fallocate", func() error {
			fd := openFd(t, p, unix.O_WRONLY, 0)
			defer closeFd(fd)
			return unix.Fallocate(fd, 0, 0, 8192)
		}, false},
		{"chown", func() error { return unix.Chown(p, 5, 5) }, false},
		{"chmod", func() error { return unix.Chmod(p, 0o700) }, true},
		{"utimensat", func() error { return unix.UtimesNanoAt(unix.AT_FDCWD, p, nil, 0) }, true},
	} {
		noErr(t, unix.Setxattr(p, "security.capability", capv, 0), "set security.capability")
		noErr(t, c.op(), "%s", c.name)
		_, err := unix.Getxattr(p, "security.capability", make([]byte, 64))
		if c.kept && err != nil {
			t.Errorf("security.capability after root's %s: %v, want kept", c.name, errString(err))
		}
		if !c.kept {
			wantErrno(t, err, unix.ENODATA, "security.capability after root's %s", c.name)
		}
	}
	wantErrno(t, unix.Setxattr(p, "security.capability", []byte("junk"), 0), unix.EINVAL, "a malformed security.capability")
}
