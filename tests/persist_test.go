package tests

// Persistence (`mmapfs mount --store DIR`): what a mount wrote is there at
// the next mount of the same DIR, after a clean unmount and after the
// server was killed (SIGKILL), and `mmapfs fsck` finds the store clean.
// These tests run the program (binary_test.go's helpers): every server
// they start is stopped, and every mount detached, also when they fail.
//
// The tree of a mount is compared as snapshots (pstSnapshot): one entry per
// path with everything stat, readlink, read, lseek and the xattr calls show.

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// ---------------------------------------------------------------- servers

// pstSetup builds the program, and makes the programs the test starts (a
// -race build of mmapfs) exit without the race detector's 1 s pause.
func pstSetup(t *testing.T) {
	t.Helper()
	binBuild(t)
	gorace := "atexit_sleep_ms=0"
	if v := os.Getenv("GORACE"); v != "" {
		gorace = v + " " + gorace
	}
	t.Setenv("GORACE", gorace)
}

// pstStoreDir returns a new, empty store directory (0700) of the test.
func pstStoreDir(t *testing.T) string {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "store")
	if err := os.Mkdir(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	return dir
}

// pstMount starts `mmapfs mount --store STORE MNT` (with -o store=STORE if
// useO) and waits until it is mounted.
func pstMount(t *testing.T, store, mnt string, useO bool, extra ...string) *binProc {
	t.Helper()
	args := []string{"mount"}
	if useO {
		args = append(args, "-o", "store="+store)
	} else {
		args = append(args, "--store", store)
	}
	args = append(args, extra...)
	args = append(args, mnt)
	p := binStart(t, nil, args...)
	binWaitMounted(t, p, mnt)
	return p
}

// pstUnmount unmounts cleanly with fusermount3 -u and requires the server
// to exit 0.
func pstUnmount(t *testing.T, p *binProc, mnt string) {
	t.Helper()
	if err := binUnmount(t, mnt); err != nil {
		t.Fatalf("clean unmount: %v; server output:\n%s", err, p.output)
	}
	if code := p.binWait(); code != 0 {
		t.Fatalf("server exit status %d after a clean unmount, want 0; output:\n%s", code, p.output)
	}
	binWaitUnmounted(t, mnt)
}

// pstKill kills the server with SIGKILL, waits for it to die and detaches
// the dead mount.
func pstKill(t *testing.T, p *binProc, mnt string) {
	t.Helper()
	_ = p.cmd.Process.Kill()
	p.binWait()
	binForceUnmount(t, mnt)
	binWaitUnmounted(t, mnt)
}

// pstFsck runs `mmapfs fsck --store STORE ARGS...` and returns its exit
// status and output.
func pstFsck(t *testing.T, store string, args ...string) (int, string) {
	t.Helper()
	bin := binBuild(t)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, append([]string{"fsck", "--store", store}, args...)...)
	cmd.WaitDelay = 5 * time.Second
	out, err := cmd.CombinedOutput()
	var ee *exec.ExitError
	switch {
	case err == nil:
		return 0, string(out)
	case errors.As(err, &ee) && ee.ExitCode() >= 0:
		return ee.ExitCode(), string(out)
	default:
		t.Fatalf("mmapfs fsck --store %s: %v\n%s", store, err, out)
		return -1, ""
	}
}

// pstRequireFsckClean requires `mmapfs fsck --store STORE` to exit 0.
func pstRequireFsckClean(t *testing.T, store string) {
	t.Helper()
	if code, out := pstFsck(t, store); code != 0 {
		t.Errorf("mmapfs fsck --store %s: exit status %d, want 0 (clean); output:\n%s", store, code, out)
	}
}

// pstDu is the space the files under dir take (st_blocks), as du counts.
func pstDu(t *testing.T, dir string) int64 {
	t.Helper()
	var total int64
	err := filepath.Walk(dir, func(p string, fi os.FileInfo, err error) error {
		if err != nil {
			return err
		}
		if st, ok := fi.Sys().(*syscall.Stat_t); ok {
			total += st.Blocks * 512
		}
		return nil
	})
	if err != nil {
		t.Fatalf("du %s: %v", dir, err)
	}
	return total
}

// pstUsed is the space statfs reports used on a mount.
func pstUsed(t *testing.T, mnt string) int64 {
	t.Helper()
	st := statfs(t, mnt)
	return int64(st.Blocks-st.Bfree) * int64(st.Bsize)
}

// ---------------------------------------------------------------- snapshots

// pstEntry is what a mount shows of one path.
type pstEntry struct {
	Path   string
	Mode   uint32 // st_mode: type and permission bits
	Uid    uint32
	Gid    uint32
	Size   int64
	Nlink  uint64
	Rdev   uint64
	Ino    uint64 // only compared as LinkGroup: inode numbers may change between mounts
	Blocks int64  // not compared
	// LinkGroup is the first path (in walk order) with the same st_ino.
	LinkGroup string

	// Times as the first lstat of the walk saw them, before anything
	// was read. Ctime is also taken at the end (CtimeEnd), after the
	// snapshot put the times back (see pstSnapshot).
	Atime, Mtime, Ctime, CtimeEnd unix.Timespec
	Btime                         *unix.StatxTimestamp // nil if statx gives none

	Target  string            // symlinks
	Data    []byte            // regular files
	Extents [][2]int64        // regular files: SEEK_DATA/SEEK_HOLE ranges
	Xattrs  map[string][]byte // every name listxattr gives
}

// pstSnap maps a path relative to the mount ("" is the root) to its entry.
type pstSnap map[string]*pstEntry

func (s pstSnap) paths() []string {
	ps := make([]string, 0, len(s))
	for p := range s {
		ps = append(ps, p)
	}
	sort.Strings(ps)
	return ps
}

// pstSnapshot walks the mount at root and collects a pstEntry per path.
//
// Reading changes atimes (the server updates them when a read, readdir or
// readlink reaches it), so the walk first lstats every path (a directory
// before it is listed), then reads contents, targets, extents and xattrs,
// and at the end sets every atime and mtime back to what the first lstat
// saw (utimensat; which changes only ctimes, recorded again as CtimeEnd).
// A snapshot taken at the next mount therefore sees, in its first lstat,
// the times of this one, and the ctime of its CtimeEnd.
func pstSnapshot(t *testing.T, root string) pstSnap {
	t.Helper()
	snap := pstSnap{}
	var order []string
	var walk func(rel string)
	walk = func(rel string) {
		p := filepath.Join(root, rel)
		var st unix.Stat_t
		noErr(t, unix.Lstat(p, &st), "lstat %s", p)
		e := &pstEntry{
			Path: rel, Mode: st.Mode, Uid: st.Uid, Gid: st.Gid, Size: st.Size,
			Nlink: uint64(st.Nlink), Rdev: uint64(st.Rdev), Ino: st.Ino, Blocks: st.Blocks,
			Atime: st.Atim, Mtime: st.Mtim, Ctime: st.Ctim,
		}
		var stx unix.Statx_t
		if err := unix.Statx(unix.AT_FDCWD, p, unix.AT_SYMLINK_NOFOLLOW, unix.STATX_BTIME, &stx); err == nil && stx.Mask&unix.STATX_BTIME != 0 {
			bt := stx.Btime
			e.Btime = &bt
		}
		snap[rel] = e
		order = append(order, rel)
		if st.Mode&unix.S_IFMT != unix.S_IFDIR {
			return
		}
		ents, err := os.ReadDir(p)
		noErr(t, err, "readdir %s", p)
		for _, de := range ents {
			walk(pstJoin(rel, de.Name()))
		}
	}
	walk("")

	first := map[uint64]string{}
	for _, rel := range order {
		e := snap[rel]
		if g, ok := first[e.Ino]; ok {
			e.LinkGroup = g
		} else {
			first[e.Ino] = rel
			e.LinkGroup = rel
		}
		p := filepath.Join(root, rel)
		switch e.Mode & unix.S_IFMT {
		case unix.S_IFREG:
			b, err := os.ReadFile(p)
			noErr(t, err, "read %s", p)
			e.Data = b
			e.Extents = pstExtents(t, p, e.Size)
		case unix.S_IFLNK:
			tg, err := os.Readlink(p)
			noErr(t, err, "readlink %s", p)
			e.Target = tg
		}
		x, err := pstXattrs(p)
		noErr(t, err, "xattrs of %s", p)
		e.Xattrs = x
	}

	// Put the times back, children before their directories.
	for i := len(order) - 1; i >= 0; i-- {
		e := snap[order[i]]
		p := filepath.Join(root, e.Path)
		ts := []unix.Timespec{e.Atime, e.Mtime}
		noErr(t, unix.UtimesNanoAt(unix.AT_FDCWD, p, ts, unix.AT_SYMLINK_NOFOLLOW), "utimensat %s (restoring times)", p)
	}
	for _, rel := range order {
		e := snap[rel]
		var st unix.Stat_t
		noErr(t, unix.Lstat(filepath.Join(root, rel), &st), "lstat %s", rel)
		e.CtimeEnd = st.Ctim
		if st.Atim != e.Atime || st.Mtim != e.Mtime {
			t.Errorf("%s: times not restored: atime %v mtime %v, want %v %v",
				pstPathName(rel), pstTs(st.Atim), pstTs(st.Mtim), pstTs(e.Atime), pstTs(e.Mtime))
		}
	}
	return snap
}

func pstJoin(dir, name string) string {
	if dir == "" {
		return name
	}
	return dir + "/" + name
}

func pstPathName(rel string) string {
	if rel == "" {
		return "/ (root)"
	}
	return rel
}

func pstTs(ts unix.Timespec) string { return fmt.Sprintf("%d.%09d", ts.Sec, ts.Nsec) }

// pstExtents lists the data ranges of a file with SEEK_DATA and SEEK_HOLE.
func pstExtents(t *testing.T, p string, size int64) [][2]int64 {
	t.Helper()
	fd, err := unix.Open(p, unix.O_RDONLY|unix.O_CLOEXEC, 0)
	noErr(t, err, "open %s", p)
	defer unix.Close(fd)
	var ext [][2]int64
	for off := int64(0); off < size; {
		d, err := unix.Seek(fd, off, unix.SEEK_DATA)
		if errors.Is(err, unix.ENXIO) {
			break
		}
		noErr(t, err, "lseek %s SEEK_DATA %d", p, off)
		h, err := unix.Seek(fd, d, unix.SEEK_HOLE)
		noErr(t, err, "lseek %s SEEK_HOLE %d", p, d)
		if h <= d {
			t.Fatalf("%s: SEEK_HOLE from %d gave %d", p, d, h)
		}
		ext = append(ext, [2]int64{d, h})
		off = h
	}
	return ext
}

// pstXattrs returns every extended attribute of p (not following a
// symlink) with its value.
func pstXattrs(p string) (map[string][]byte, error) {
	var names []byte
	for {
		n, err := unix.Llistxattr(p, nil)
		if err != nil {
			return nil, fmt.Errorf("listxattr: %w", err)
		}
		names = make([]byte, n)
		n, err = unix.Llistxattr(p, names)
		if errors.Is(err, unix.ERANGE) {
			continue // it grew
		}
		if err != nil {
			return nil, fmt.Errorf("listxattr: %w", err)
		}
		names = names[:n]
		break
	}
	x := map[string][]byte{}
	for _, name := range strings.Split(string(names), "\x00") {
		if name == "" {
			continue
		}
		for {
			n, err := unix.Lgetxattr(p, name, nil)
			if err != nil {
				return nil, fmt.Errorf("getxattr %s: %w", name, err)
			}
			v := make([]byte, n)
			n, err = unix.Lgetxattr(p, name, v)
			if errors.Is(err, unix.ERANGE) {
				continue
			}
			if err != nil {
				return nil, fmt.Errorf("getxattr %s: %w", name, err)
			}
			x[name] = v[:n]
			break
		}
	}
	return x, nil
}

// pstCompare lists how snapshot b (at a later mount) differs from a. If
// times, the times must match too (see pstSnapshot for which).
func pstCompare(a, b pstSnap, times bool) []string {
	var d []string
	add := func(format string, args ...any) { d = append(d, fmt.Sprintf(format, args...)) }
	for _, p := range a.paths() {
		if b[p] == nil {
			add("%s: missing (was %s)", pstPathName(p), pstDescribe(a[p]))
		}
	}
	for _, p := range b.paths() {
		if a[p] == nil {
			add("%s: appeared (%s)", pstPathName(p), pstDescribe(b[p]))
		}
	}
	for _, p := range a.paths() {
		x, y := a[p], b[p]
		if y == nil {
			continue
		}
		name := pstPathName(p)
		if x.Mode != y.Mode {
			add("%s: mode %07o, was %07o", name, y.Mode, x.Mode)
		}
		if x.Uid != y.Uid || x.Gid != y.Gid {
			add("%s: owner %d:%d, was %d:%d", name, y.Uid, y.Gid, x.Uid, x.Gid)
		}
		if x.Size != y.Size {
			add("%s: size %d, was %d", name, y.Size, x.Size)
		}
		if x.Nlink != y.Nlink {
			add("%s: nlink %d, was %d", name, y.Nlink, x.Nlink)
		}
		if x.Rdev != y.Rdev {
			add("%s: rdev %d:%d, was %d:%d", name, unix.Major(y.Rdev), unix.Minor(y.Rdev), unix.Major(x.Rdev), unix.Minor(x.Rdev))
		}
		if x.LinkGroup != y.LinkGroup {
			add("%s: same inode as %s, was the same as %s", name, pstPathName(y.LinkGroup), pstPathName(x.LinkGroup))
		}
		if x.Target != y.Target {
			add("%s: symlink target %q, was %q", name, y.Target, x.Target)
		}
		if !bytes.Equal(x.Data, y.Data) {
			add("%s: content differs: %s", name, pstDataDiff(x.Data, y.Data))
		}
		if fmt.Sprint(x.Extents) != fmt.Sprint(y.Extents) {
			add("%s: SEEK_DATA/SEEK_HOLE extents %v, were %v", name, y.Extents, x.Extents)
		}
		if s := pstXattrDiff(x.Xattrs, y.Xattrs); s != "" {
			add("%s: xattrs: %s", name, s)
		}
		if !times {
			continue
		}
		if x.Atime != y.Atime {
			add("%s: atime %s, was %s", name, pstTs(y.Atime), pstTs(x.Atime))
		}
		if x.Mtime != y.Mtime {
			add("%s: mtime %s, was %s", name, pstTs(y.Mtime), pstTs(x.Mtime))
		}
		if x.CtimeEnd != y.Ctime {
			add("%s: ctime %s, was %s", name, pstTs(y.Ctime), pstTs(x.CtimeEnd))
		}
		if x.Btime != nil && y.Btime != nil && *x.Btime != *y.Btime {
			add("%s: birth time %d.%09d, was %d.%09d", name, y.Btime.Sec, y.Btime.Nsec, x.Btime.Sec, x.Btime.Nsec)
		}
		if x.Btime != nil && y.Btime == nil {
			add("%s: statx gives no birth time any more", name)
		}
	}
	return d
}

func pstDescribe(e *pstEntry) string {
	return fmt.Sprintf("mode %07o, size %d", e.Mode, e.Size)
}

// pstDataDiff describes how got differs from want.
func pstDataDiff(want, got []byte) string {
	n := min(len(want), len(got))
	first, count := -1, 0
	for i := 0; i < n; i++ {
		if want[i] != got[i] {
			if first < 0 {
				first = i
			}
			count++
		}
	}
	s := fmt.Sprintf("%d bytes, was %d", len(got), len(want))
	if first >= 0 {
		s += fmt.Sprintf("; %d of the common bytes differ, the first at offset %d (got %#02x, was %#02x)", count, first, got[first], want[first])
	}
	return s
}

func pstXattrDiff(a, b map[string][]byte) string {
	var d []string
	names := map[string]bool{}
	for k := range a {
		names[k] = true
	}
	for k := range b {
		names[k] = true
	}
	var sorted []string
	for k := range names {
		sorted = append(sorted, k)
	}
	sort.Strings(sorted)
	for _, k := range sorted {
		va, ina := a[k]
		vb, inb := b[k]
		switch {
		case !inb:
			d = append(d, fmt.Sprintf("%s missing", k))
		case !ina:
			d = append(d, fmt.Sprintf("%s appeared (%q)", k, pstShort(vb)))
		case !bytes.Equal(va, vb):
			d = append(d, fmt.Sprintf("%s is %q, was %q", k, pstShort(vb), pstShort(va)))
		}
	}
	return strings.Join(d, "; ")
}

func pstShort(b []byte) string {
	if len(b) > 40 {
		return string(b[:40]) + "…"
	}
	return string(b)
}

// pstRequireSame fails t unless b shows what a showed.
func pstRequireSame(t *testing.T, what string, a, b pstSnap, times bool) {
	t.Helper()
	d := pstCompare(a, b, times)
	if len(d) == 0 {
		return
	}
	if len(d) > 60 {
		d = append(d[:60], fmt.Sprintf("… and %d more", len(d)-60))
	}
	t.Fatalf("%s: %d differences:\n  %s", what, len(d), strings.Join(d, "\n  "))
}

// ---------------------------------------------------------------- building a tree

func pstWriteAt(t *testing.T, p string, off int64, b []byte) {
	t.Helper()
	fd, err := unix.Open(p, unix.O_WRONLY|unix.O_CREAT|unix.O_CLOEXEC, 0o644)
	noErr(t, err, "open %s", p)
	defer unix.Close(fd)
	for len(b) > 0 {
		n, err := unix.Pwrite(fd, b, off)
		noErr(t, err, "pwrite %s at %d", p, off)
		b, off = b[n:], off+int64(n)
	}
}

// Fixed past times, to the nanosecond.
var (
	pstAtime = unix.Timespec{Sec: 1000000001, Nsec: 123456789}
	pstMtime = unix.Timespec{Sec: 1234567890, Nsec: 987654321}
)

// pstBuildTree makes every kind of file under root (the mount's root),
// with modes, owners, xattrs and times (pstCheckTree checks a snapshot of
// it). Device nodes, owners and trusted.* xattrs only as root.
func pstBuildTree(t *testing.T, root string) {
	t.Helper()
	asRoot := os.Geteuid() == 0
	j := func(rel string) string { return filepath.Join(root, rel) }

	for _, d := range []string{"dir", "dir/sub", "dir/sub/deeper", "dir/sub/deeper/deepest", "sgid", "sticky", "private"} {
		noErr(t, unix.Mkdir(j(d), 0o755), "mkdir %s", d)
	}
	// Regular files: small, empty, large (over 4 MiB, crossing the 2 MiB
	// store windows), sparse (holes between and after data).
	pstWriteAt(t, j("small"), 0, []byte("hello, persistent world\n"))
	pstWriteAt(t, j("empty"), 0, nil)
	pstWriteAt(t, j("dir/sub/deeper/deepest/leaf"), 0, []byte("leaf\n"))
	big := modelBytes(7, 5<<20+4097)
	for off := 0; off < len(big); off += 1 << 20 {
		pstWriteAt(t, j("dir/large"), int64(off), big[off:min(off+1<<20, len(big))])
	}
	pstWriteAt(t, j("sparse"), 0, modelBytes(8, 4096))
	pstWriteAt(t, j("sparse"), 3<<20+8192, modelBytes(9, 65536))
	noErr(t, unix.Truncate(j("sparse"), 8<<20), "truncate sparse")
	// Binary content with every byte value and a file with one byte.
	all := make([]byte, 256*16)
	for i := range all {
		all[i] = byte(i)
	}
	pstWriteAt(t, j("dir/bytes"), 0, all)
	pstWriteAt(t, j("dir/sub/one"), 0, []byte{0})
	pstWriteAt(t, j("setuid"), 0, []byte("#!/bin/sh\n"))

	// Symlinks: relative, absolute, dangling, long.
	noErr(t, unix.Symlink("small", j("link")), "symlink")
	noErr(t, unix.Symlink("../../small", j("dir/sub/uplink")), "symlink")
	noErr(t, unix.Symlink("/nonexistent/absolute/target", j("dangling")), "symlink")
	noErr(t, unix.Symlink(strings.Repeat("long/", 800)+"end", j("longlink")), "symlink")

	// Hard links: nlink 2 and 3, across directories.
	pstWriteAt(t, j("h1"), 0, []byte("two names\n"))
	noErr(t, unix.Link(j("h1"), j("dir/h2")), "link")
	pstWriteAt(t, j("t1"), 0, []byte("three names\n"))
	noErr(t, unix.Link(j("t1"), j("dir/t2")), "link")
	noErr(t, unix.Link(j("t1"), j("dir/sub/t3")), "link")

	// Special files.
	noErr(t, unix.Mknod(j("fifo"), unix.S_IFIFO|0o640, 0), "mknod fifo")
	noErr(t, unix.Mknod(j("dir/sock"), unix.S_IFSOCK|0o755, 0), "mknod socket")
	if asRoot {
		noErr(t, unix.Mknod(j("null"), unix.S_IFCHR|0o666, int(unix.Mkdev(1, 3))), "mknod char device")
		noErr(t, unix.Mknod(j("dir/blk"), unix.S_IFBLK|0o600, int(unix.Mkdev(7, 200))), "mknod block device")
	}

	// Owners (before the modes: chown of a file clears set-user-ID).
	if asRoot {
		for _, c := range []struct {
			rel      string
			uid, gid int
		}{
			{"small", 1234, 5678}, {"dir", 1000, 1000}, {"dir/large", 65534, 65534}, {"link", 4321, 8765},
			{"fifo", 42, 43}, {"null", 0, 5}, {"t1", 777, 888}, {"sgid", 0, 4242}, {"dir/sock", 99, 100},
			{"setuid", 2000, 2000},
		} {
			noErr(t, unix.Lchown(j(c.rel), c.uid, c.gid), "chown %s", c.rel)
		}
	}
	for _, c := range []struct {
		rel  string
		mode uint32
	}{
		{"small", 0o640}, {"empty", 0o000}, {"setuid", 0o4755}, {"dir/bytes", 0o2755}, {"sparse", 0o600},
		{"sgid", 0o2775}, {"sticky", 0o1777}, {"private", 0o700}, {"dir/sub", 0o751}, {"dir/sub/deeper", 0o3770},
		{"fifo", 0o622}, {"dir/sock", 0o777},
	} {
		noErr(t, unix.Chmod(j(c.rel), c.mode), "chmod %s", c.rel)
	}
	if asRoot {
		noErr(t, unix.Chmod(j("null"), 0o666), "chmod null") // past the umask
	}
	// A file made in a set-group-ID directory gets its group; a directory
	// made there inherits the bit.
	pstWriteAt(t, j("sgid/inherits"), 0, []byte("group from the directory\n"))
	noErr(t, unix.Mkdir(j("sgid/subdir"), 0o755), "mkdir in sgid")
	pstWriteAt(t, j("sticky/file"), 0, []byte("in a sticky directory\n"))

	// Extended attributes: several per file, binary values, an empty
	// value, a large one; on directories; trusted.* on a symlink (user.*
	// are not allowed there).
	binVal := []byte{0, 1, 2, 0xff, 0xfe, 0, '\n', 0x80}
	for _, x := range []struct {
		rel, name string
		val       []byte
	}{
		{"small", "user.one", []byte("1")},
		{"small", "user.binary", binVal},
		{"small", "user.empty", nil},
		{"small", "user.large", modelBytes(11, 4000)},
		{"dir/large", "user.mime_type", []byte("application/octet-stream")},
		{"dir", "user.dirattr", []byte("on a directory")},
		{"sgid/subdir", "user.x", binVal},
		{"t1", "user.shared", []byte("seen through every link")},
		{"empty", "user.a", []byte("a")},
		{"empty", "user.b", []byte("b")},
		{"empty", "user.c", []byte("c")},
	} {
		noErr(t, unix.Lsetxattr(j(x.rel), x.name, x.val, 0), "setxattr %s %s", x.rel, x.name)
	}
	if asRoot {
		noErr(t, unix.Lsetxattr(j("link"), "trusted.onlink", []byte("trusted on a symlink"), 0), "setxattr trusted.* on a symlink")
		noErr(t, unix.Lsetxattr(j("small"), "trusted.t", binVal, 0), "setxattr trusted.*")
	}
	// Replaced and removed ones must stay so.
	noErr(t, unix.Lsetxattr(j("small"), "user.one", []byte("one, replaced"), unix.XATTR_REPLACE), "setxattr replace")
	noErr(t, unix.Lsetxattr(j("small"), "user.gone", []byte("removed"), 0), "setxattr")
	noErr(t, unix.Lremovexattr(j("small"), "user.gone"), "removexattr")

	// Renamed and removed entries.
	pstWriteAt(t, j("before-rename"), 0, []byte("renamed\n"))
	noErr(t, unix.Rename(j("before-rename"), j("dir/sub/after-rename")), "rename")
	pstWriteAt(t, j("removed"), 0, []byte("gone\n"))
	noErr(t, unix.Unlink(j("removed")), "unlink")
	noErr(t, unix.Mkdir(j("removed-dir"), 0o755), "mkdir")
	noErr(t, unix.Rmdir(j("removed-dir")), "rmdir")

	// Times last, children before directories: fixed, in the past.
	var paths []string
	noErr(t, filepath.Walk(root, func(p string, _ os.FileInfo, err error) error {
		paths = append(paths, p)
		return err
	}), "walk")
	for i := len(paths) - 1; i >= 0; i-- {
		at, mt := pstAtime, pstMtime
		at.Nsec += int64(i) // a different time per path
		mt.Sec -= int64(i) * 1000
		noErr(t, unix.UtimesNanoAt(unix.AT_FDCWD, paths[i], []unix.Timespec{at, mt}, unix.AT_SYMLINK_NOFOLLOW), "utimensat %s", paths[i])
	}
}

// pstCheckTree checks, on a snapshot, what pstBuildTree made (so that a
// round trip compares something worth comparing).
func pstCheckTree(t *testing.T, s pstSnap) {
	t.Helper()
	get := func(rel string) *pstEntry {
		e := s[rel]
		if e == nil {
			t.Fatalf("%s missing from the tree", rel)
		}
		return e
	}
	if e := get("dir/large"); e.Size != 5<<20+4097 {
		t.Errorf("dir/large: size %d", e.Size)
	}
	if e := get("sparse"); e.Size != 8<<20 || len(e.Extents) < 2 || e.Extents[0][0] != 0 || e.Extents[len(e.Extents)-1][1] >= 8<<20 {
		t.Errorf("sparse: size %d extents %v: want data at 0 and near 3 MiB, and a hole at the end", e.Size, e.Extents)
	}
	if e := get("dir/h2"); e.Nlink != 2 || e.LinkGroup != "dir/h2" && e.LinkGroup != "h1" {
		t.Errorf("dir/h2: nlink %d, link group %q", e.Nlink, e.LinkGroup)
	}
	if get("dir/h2").LinkGroup != get("h1").LinkGroup {
		t.Errorf("h1 and dir/h2 are not the same inode")
	}
	if e := get("t1"); e.Nlink != 3 || get("dir/sub/t3").LinkGroup != e.LinkGroup || get("dir/t2").LinkGroup != e.LinkGroup {
		t.Errorf("t1, dir/t2, dir/sub/t3: nlink %d, not one inode", e.Nlink)
	}
	for rel, typ := range map[string]uint32{"fifo": unix.S_IFIFO, "dir/sock": unix.S_IFSOCK, "link": unix.S_IFLNK, "dir": unix.S_IFDIR} {
		if e := get(rel); e.Mode&unix.S_IFMT != typ {
			t.Errorf("%s: mode %07o, want type %07o", rel, e.Mode, typ)
		}
	}
	if e := get("sgid"); e.Mode != unix.S_IFDIR|0o2775 {
		t.Errorf("sgid: mode %07o", e.Mode)
	}
	if e := get("sticky"); e.Mode != unix.S_IFDIR|0o1777 {
		t.Errorf("sticky: mode %07o", e.Mode)
	}
	if e := get("setuid"); e.Mode != unix.S_IFREG|0o4755 {
		t.Errorf("setuid: mode %07o", e.Mode)
	}
	if e := get("longlink"); len(e.Target) != 4003 {
		t.Errorf("longlink: target of %d bytes", len(e.Target))
	}
	if e := get("small"); len(e.Xattrs) < 4 || string(e.Xattrs["user.one"]) != "one, replaced" {
		t.Errorf("small: xattrs %q", e.Xattrs)
	}
	if os.Geteuid() == 0 {
		if e := get("null"); e.Mode != unix.S_IFCHR|0o666 || e.Rdev != unix.Mkdev(1, 3) {
			t.Errorf("null: mode %07o rdev %#x", e.Mode, e.Rdev)
		}
		if e := get("sgid/inherits"); e.Gid != 4242 {
			t.Errorf("sgid/inherits: gid %d, want the directory's 4242", e.Gid)
		}
		if e := get("sgid/subdir"); e.Gid != 4242 || e.Mode&unix.S_ISGID == 0 {
			t.Errorf("sgid/subdir: gid %d mode %07o, want 4242 and set-group-ID", e.Gid, e.Mode)
		}
		if e := get("small"); e.Uid != 1234 || e.Gid != 5678 {
			t.Errorf("small: owner %d:%d", e.Uid, e.Gid)
		}
	}
	if e := get("small"); e.Atime.Sec != pstAtime.Sec || e.Mtime.Nsec != pstMtime.Nsec {
		t.Errorf("small: atime %s mtime %s: not the times set", pstTs(e.Atime), pstTs(e.Mtime))
	}
	for _, gone := range []string{"removed", "removed-dir", "before-rename"} {
		if s[gone] != nil {
			t.Errorf("%s exists", gone)
		}
	}
}

// ---------------------------------------------------------------- tests

// Every kind of file, attribute and xattr is there after a clean unmount
// and a new mount of the same store (the second time with -o store=).
func TestPersistRoundTrip(t *testing.T) {
	pstSetup(t)
	store := pstStoreDir(t)
	mnt := binMountpoint(t)

	p := pstMount(t, store, mnt, false)
	pstBuildTree(t, mnt)
	before := pstSnapshot(t, mnt)
	pstCheckTree(t, before)
	pstUnmount(t, p, mnt)

	p = pstMount(t, store, mnt, true)
	after := pstSnapshot(t, mnt)
	pstRequireSame(t, "after a clean unmount and a new mount", before, after, true)
	if e := after["sparse"]; e != nil && e.Blocks*512 >= 1<<20 {
		t.Errorf("sparse: %d bytes allocated after the new mount: the holes take space", e.Blocks*512)
	}

	// The remounted tree is alive: change it, and it persists again.
	pstWriteAt(t, filepath.Join(mnt, "small"), 5, []byte("CHANGED"))
	noErr(t, unix.Rename(filepath.Join(mnt, "dir/h2"), filepath.Join(mnt, "h2-moved")), "rename")
	noErr(t, unix.Unlink(filepath.Join(mnt, "t1")), "unlink")
	noErr(t, unix.Truncate(filepath.Join(mnt, "dir/large"), 3<<20), "truncate")
	changed := pstSnapshot(t, mnt)
	pstUnmount(t, p, mnt)

	p = pstMount(t, store, mnt, false)
	again := pstSnapshot(t, mnt)
	pstRequireSame(t, "after changes and a second remount", changed, again, true)
	if e := again["dir/t2"]; e == nil || e.Nlink != 2 {
		t.Errorf("dir/t2 after one of its three links was removed: %+v", e)
	}
	pstUnmount(t, p, mnt)
	pstRequireFsckClean(t, store)
}

// A store is used by one server at a time: a second mount of it fails
// with "in use", and the first goes on serving.
func TestPersistLocked(t *testing.T) {
	pstSetup(t)
	store := pstStoreDir(t)
	mnt := binMountpoint(t)
	p := pstMount(t, store, mnt, false)
	binReadWrite(t, mnt)

	for _, useO := range []bool{false, true} {
		other := binMountpoint(t)
		args := []string{"mount", "--store", store, other}
		if useO {
			args = []string{"mount", "-o", "store=" + store, other}
		}
		second := binStart(t, nil, args...)
		code := second.binWait()
		if code == 0 {
			t.Errorf("mmapfs %q on a store in use: exit status 0, want non-zero; output:\n%s", args, second.output)
		}
		if !strings.Contains(second.output.String(), "in use") {
			t.Errorf("mmapfs %q on a store in use: output lacks \"in use\":\n%s", args, second.output)
		}
		if m := binFindMount(other); m != nil {
			t.Errorf("the second server left a mount on %s: %+v", other, *m)
		}
		if !p.binRunning() {
			t.Fatalf("the first server exited; output:\n%s", p.output)
		}
		binReadWrite(t, mnt)
	}
	if err := os.WriteFile(filepath.Join(mnt, "still"), []byte("still works"), 0o644); err != nil {
		t.Fatal(err)
	}
	pstUnmount(t, p, mnt)

	// Once the first has gone, the store can be mounted again.
	p = pstMount(t, store, mnt, false)
	if b, err := os.ReadFile(filepath.Join(mnt, "still")); err != nil || string(b) != "still works" {
		t.Errorf("after the remount: %q, %v", b, err)
	}
	pstUnmount(t, p, mnt)
}

// After SIGKILL of the server, everything acknowledged is there at the
// next mount; a file unlinked while open is gone and its space reclaimed;
// fsck finds the store clean once it has been mounted and unmounted again.
func TestPersistSIGKILLSimple(t *testing.T) {
	pstSetup(t)
	store := pstStoreDir(t)
	mnt := binMountpoint(t)
	j := func(rel string) string { return filepath.Join(mnt, rel) }

	// A size limit, so that statfs reports what is used (without one,
	// as on tmpfs, it reports nothing).
	sizeOpt := []string{"--size", "1G"}
	p := pstMount(t, store, mnt, false, sizeOpt...)
	noErr(t, unix.Mkdir(j("d"), 0o750), "mkdir")
	noErr(t, unix.Mkdir(j("d/e"), 0o700), "mkdir")
	pstWriteAt(t, j("a"), 0, []byte("acknowledged\n"))
	pstWriteAt(t, j("d/b"), 0, modelBytes(1, 256<<10))
	pstWriteAt(t, j("d/b"), 100<<10, []byte("overwritten in the middle"))
	pstWriteAt(t, j("d/e/sparse"), 1<<20, modelBytes(2, 5000))
	pstWriteAt(t, j("appended"), 0, []byte("line 1\n"))
	fd, err := unix.Open(j("appended"), unix.O_WRONLY|unix.O_APPEND|unix.O_CLOEXEC, 0)
	noErr(t, err, "open O_APPEND")
	_, err = unix.Write(fd, []byte("line 2\n"))
	noErr(t, err, "append")
	unix.Close(fd)
	pstWriteAt(t, j("tmp"), 0, []byte("renamed over c\n"))
	pstWriteAt(t, j("c"), 0, []byte("replaced\n"))
	noErr(t, unix.Rename(j("tmp"), j("c")), "rename over")
	noErr(t, unix.Link(j("a"), j("d/a-link")), "link")
	noErr(t, unix.Symlink("d/b", j("sym")), "symlink")
	noErr(t, unix.Mknod(j("d/fifo"), unix.S_IFIFO|0o600, 0), "mkfifo")
	noErr(t, unix.Chmod(j("a"), 0o604), "chmod")
	if os.Geteuid() == 0 {
		noErr(t, unix.Lchown(j("d/b"), 3000, 3001), "chown")
	}
	noErr(t, unix.Setxattr(j("a"), "user.k", []byte{1, 2, 3, 0, 4}, 0), "setxattr")
	noErr(t, unix.Truncate(j("d/b"), 200<<10), "truncate")
	ts := []unix.Timespec{{Sec: 1500000000, Nsec: 1}, {Sec: 1600000000, Nsec: 999999999}}
	noErr(t, unix.UtimesNanoAt(unix.AT_FDCWD, j("c"), ts, 0), "utimensat")
	pstWriteAt(t, j("unlinked"), 0, nil)
	noErr(t, unix.Unlink(j("unlinked")), "unlink")

	// A file unlinked while open, with data: held open at the kill.
	const ghostSize = 16 << 20
	ghost, err := unix.Open(j("ghost"), unix.O_RDWR|unix.O_CREAT|unix.O_EXCL|unix.O_CLOEXEC, 0o644)
	noErr(t, err, "create ghost")
	ghostOpen := true
	defer func() {
		if ghostOpen {
			unix.Close(ghost)
		}
	}()
	chunk := modelBytes(3, 1<<20)
	for off := int64(0); off < ghostSize; off += int64(len(chunk)) {
		_, err := unix.Pwrite(ghost, chunk, off)
		noErr(t, err, "write ghost")
	}
	noErr(t, unix.Unlink(j("ghost")), "unlink ghost")
	if _, err := unix.Pwrite(ghost, []byte("still writable"), 0); err != nil {
		t.Fatalf("write to the unlinked open file: %v", err)
	}

	before := pstSnapshot(t, mnt)
	if _, ok := before["ghost"]; ok {
		t.Fatalf("ghost still listed after unlink")
	}
	duBefore := pstDu(t, store)
	usedBefore := pstUsed(t, mnt)
	t.Logf("before the kill: store %d bytes (du), mount %d bytes used", duBefore, usedBefore)
	// Preconditions of the reclaim check below: the file takes space.
	checkDu, checkUsed := duBefore >= ghostSize, usedBefore >= ghostSize
	if !checkDu {
		t.Errorf("the unlinked open file's %d bytes are not in the store before the kill: %d bytes (du)", ghostSize, duBefore)
	}
	if !checkUsed {
		t.Errorf("statfs does not count the unlinked open file's %d bytes before the kill: %d bytes used", ghostSize, usedBefore)
	}

	pstKill(t, p, mnt)
	unix.Close(ghost) // on the dead connection: an error, or nothing
	ghostOpen = false

	p = pstMount(t, store, mnt, false, sizeOpt...)
	after := pstSnapshot(t, mnt)
	pstRequireSame(t, "after SIGKILL and a new mount", before, after, true)

	// The unlinked file's space is reclaimed at the mount (allow it a
	// moment in case it happens in the background): the store shrinks by
	// about its size, and so does what statfs reports used. (Compared
	// with before the kill, so a journal or other metadata of the store
	// does not count.)
	const reclaim = ghostSize / 2
	deadline := time.Now().Add(5 * time.Second)
	for {
		du, used := pstDu(t, store), pstUsed(t, mnt)
		if (!checkDu || du <= duBefore-reclaim) && (!checkUsed || used <= usedBefore-reclaim) {
			t.Logf("after the new mount: store %d bytes (du), mount %d bytes used", du, used)
			break
		}
		if time.Now().After(deadline) {
			t.Errorf("the %d bytes of a file unlinked while open at the kill are not reclaimed: store %d bytes (du; %d before the kill), mount %d bytes used (statfs; %d before the kill)",
				ghostSize, du, duBefore, used, usedBefore)
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	pstUnmount(t, p, mnt)
	if du := pstDu(t, store); checkDu && du > duBefore-reclaim {
		t.Errorf("store takes %d bytes after the clean unmount (%d before the kill): the unlinked file's data is still there", du, duBefore)
	}
	pstRequireFsckClean(t, store)

	// And once more, cleanly: the same tree.
	p = pstMount(t, store, mnt, false, sizeOpt...)
	third := pstSnapshot(t, mnt)
	pstRequireSame(t, "after fsck and a third mount", after, third, true)
	pstUnmount(t, p, mnt)
}
