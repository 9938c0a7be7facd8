package tests

// The kernel's cache of directory listings (FOPEN_CACHE_DIR): a listing is
// right at once after every change, for every process, and a listing of a
// directory that has not changed is served from the cache where the atime
// rules allow it.

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"golang.org/x/sys/unix"

	"mmapfs/fs"
)

func init() { mmapChecks["dircache-list"] = dircacheListCheck }

// dircacheListCheck lists dir in a child process. Its one "problem" is
// the listing (listing), so that the helper returns it.
func dircacheListCheck(dir string) []string {
	ents, err := listNames(dir)
	if err != nil {
		return []string{err.Error()}
	}
	return []string{"list:" + ents}
}

// listNames reads dir to its end with getdents64 and returns its entries
// as "name/ino" sorted and joined by spaces.
func listNames(dir string) (string, error) {
	fd, err := unix.Open(dir, unix.O_RDONLY|unix.O_DIRECTORY, 0)
	if err != nil {
		return "", fmt.Errorf("open %s: %w", dir, err)
	}
	defer unix.Close(fd)
	var names []string
	buf := make([]byte, 8192)
	for {
		n, err := unix.Getdents(fd, buf)
		if err != nil {
			return "", fmt.Errorf("getdents %s: %w", dir, err)
		}
		if n == 0 {
			break
		}
		for _, e := range parseDirents(buf[:n]) {
			names = append(names, fmt.Sprintf("%s/%d", e.name, e.ino))
		}
	}
	slices.Sort(names)
	return strings.Join(names, " "), nil
}

// wantListing is the listing listNames gives of dir holding names (and
// "." and ".."), with the inode numbers lstat gives.
func wantListing(t *testing.T, dir string, names []string) string {
	t.Helper()
	var out []string
	out = append(out, fmt.Sprintf("./%d", lstat(t, dir).Ino), fmt.Sprintf("../%d", lstat(t, filepath.Dir(dir)).Ino))
	for _, n := range names {
		out = append(out, fmt.Sprintf("%s/%d", n, lstat(t, filepath.Join(dir, n)).Ino))
	}
	slices.Sort(out)
	return strings.Join(out, " ")
}

// readdirCount is the number of READDIR and READDIRPLUS requests the
// mount served (-1 without counts: tmpfs mode).
func readdirCount(m *fs.Mounted) int64 {
	if m == nil {
		return -1
	}
	ops := m.Stats().Ops
	if ops == nil {
		return -1
	}
	return int64(ops["READDIR"].Count + ops["READDIRPLUS"].Count)
}

// TestDirCacheChanges: each change of a directory listed (and cached)
// just before is in the next listing of every process: create, unlink,
// rename within and across directories, mkdir, rmdir, link, symlink,
// mknod, RENAME_WHITEOUT, RENAME_EXCHANGE, and the ".." of a directory
// moved to another parent. Under relatime a change makes the next
// listing due to update atime, and the kernel drops its cache at the next
// open for that alone; under noatime it keeps it unless it knows better.
func TestDirCacheChanges(t *testing.T) {
	t.Parallel()
	needRoot(t) // mknod of a whiteout
	for _, c := range []struct {
		name  string
		flags uintptr
	}{{"relatime", 0}, {"noatime", unix.MS_NOATIME}} {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			testDirCacheChanges(t, c.flags)
		})
	}
}

func testDirCacheChanges(t *testing.T, flags uintptr) {
	mnt, _, _ := mountFS(t, withMountFlags(flags))
	bin := helperBinary(t)
	a, b := filepath.Join(mnt, "a"), filepath.Join(mnt, "b")
	noErr(t, os.Mkdir(a, 0o755), "mkdir")
	noErr(t, os.Mkdir(b, 0o755), "mkdir")
	noErr(t, os.Mkdir(filepath.Join(a, "sub"), 0o755), "mkdir")
	writeFile(t, filepath.Join(a, "x"), nil)
	sub := filepath.Join(a, "sub")
	model := map[string][]string{a: {"sub", "x"}, b: nil, sub: nil}
	set := func(dir string, add []string, remove ...string) {
		names := slices.DeleteFunc(slices.Clone(model[dir]), func(n string) bool { return slices.Contains(remove, n) })
		model[dir] = append(names, add...)
	}
	// cache lists every directory twice, here: the first listing after a
	// change comes from the server, the second may come from the cache.
	cache := func() {
		for dir := range model {
			for i := 0; i < 2; i++ {
				if _, err := listNames(dir); err != nil {
					t.Fatal(err)
				}
			}
		}
	}
	check := func(what string) {
		t.Helper()
		for dir, names := range model {
			want := wantListing(t, dir, names)
			res := runHelper(t, bin, hop("check", "dircache-list", dir))
			if got := strings.TrimPrefix(res[0], "list:"); got != want {
				t.Errorf("after %s, another process lists %s as\n  %s\nwant\n  %s", what, dir, got, want)
			}
			got, err := listNames(dir)
			noErr(t, err, "list")
			if got != want {
				t.Errorf("after %s, the test lists %s as\n  %s\nwant\n  %s", what, dir, got, want)
			}
		}
	}
	steps := []struct {
		what string
		do   func() error
		fix  func()
	}{
		{"create", func() error {
			fd, err := unix.Open(filepath.Join(a, "f"), unix.O_CREAT|unix.O_EXCL|unix.O_WRONLY, 0o644)
			if err == nil {
				unix.Close(fd)
			}
			return err
		}, func() { set(a, []string{"f"}) }},
		{"unlink", func() error { return unix.Unlink(filepath.Join(a, "f")) }, func() { set(a, nil, "f") }},
		{"rename within", func() error { return unix.Rename(filepath.Join(a, "x"), filepath.Join(a, "y")) },
			func() { set(a, []string{"y"}, "x") }},
		{"rename across", func() error { return unix.Rename(filepath.Join(a, "y"), filepath.Join(b, "y")) },
			func() { set(a, nil, "y"); set(b, []string{"y"}) }},
		{"rename over", func() error {
			writeFile(t, filepath.Join(a, "o"), nil)
			cache()
			return unix.Rename(filepath.Join(a, "o"), filepath.Join(b, "y"))
		}, func() {}},
		{"mkdir", func() error { return unix.Mkdir(filepath.Join(a, "d"), 0o755) }, func() { set(a, []string{"d"}) }},
		{"rmdir", func() error { return unix.Rmdir(filepath.Join(a, "d")) }, func() { set(a, nil, "d") }},
		{"link", func() error { return unix.Link(filepath.Join(b, "y"), filepath.Join(a, "l")) }, func() { set(a, []string{"l"}) }},
		{"symlink", func() error { return unix.Symlink("y", filepath.Join(a, "s")) }, func() { set(a, []string{"s"}) }},
		{"mknod", func() error { return unix.Mknod(filepath.Join(a, "p"), unix.S_IFIFO|0o644, 0) }, func() { set(a, []string{"p"}) }},
		{"rename whiteout", func() error {
			return unix.Renameat2(unix.AT_FDCWD, filepath.Join(a, "p"), unix.AT_FDCWD, filepath.Join(b, "p"), unix.RENAME_WHITEOUT)
		}, func() { set(b, []string{"p"}) }}, // a keeps "p": the whiteout
		{"rename exchange", func() error {
			return unix.Renameat2(unix.AT_FDCWD, filepath.Join(a, "s"), unix.AT_FDCWD, filepath.Join(b, "p"), unix.RENAME_EXCHANGE)
		}, func() {}}, // the same names, other inodes
		{"move a directory", func() error { return unix.Rename(sub, filepath.Join(b, "sub")) }, func() {
			set(a, nil, "sub")
			set(b, []string{"sub"})
			delete(model, sub)
			sub = filepath.Join(b, "sub")
			model[sub] = nil
		}},
		{"exchange a directory", func() error {
			return unix.Renameat2(unix.AT_FDCWD, sub, unix.AT_FDCWD, filepath.Join(a, "l"), unix.RENAME_EXCHANGE)
		}, func() {
			// The names stay; the directory is a/l now.
			delete(model, sub)
			sub = filepath.Join(a, "l")
			model[sub] = nil
		}},
		{"create in a moved directory", func() error {
			writeFile(t, filepath.Join(sub, "in"), nil)
			return nil
		}, func() { set(sub, []string{"in"}) }},
	}
	check("setup")
	for _, s := range steps {
		cache()
		noErr(t, s.do(), "%s", s.what)
		s.fix()
		check(s.what)
	}
	var st unix.Stat_t
	noErr(t, unix.Lstat(filepath.Join(a, "p"), &st), "lstat whiteout")
	if st.Mode&unix.S_IFMT != unix.S_IFCHR || st.Rdev != 0 {
		t.Errorf("whiteout: mode %#o rdev %d, want a character device 0:0", st.Mode, st.Rdev)
	}
}

// TestDirCacheLarge: a directory of 5000 entries lists the same twice,
// the second time from the kernel's cache, and a change shows at once.
func TestDirCacheLarge(t *testing.T) {
	t.Parallel()
	mnt, m, _ := mountFS(t)
	dir := filepath.Join(mnt, "big")
	noErr(t, os.Mkdir(dir, 0o755), "mkdir")
	const n = 5000
	var names []string
	for i := 0; i < n; i++ {
		nm := fmt.Sprintf("entry-%05d-%s", i, strings.Repeat("n", i%50))
		names = append(names, nm)
		fd := openFd(t, filepath.Join(dir, nm), unix.O_CREAT|unix.O_EXCL|unix.O_WRONLY, 0o644)
		closeFd(fd)
	}
	want := wantListing(t, dir, names)
	first, err := listNames(dir)
	noErr(t, err, "list")
	c0 := readdirCount(m)
	second, err := listNames(dir)
	noErr(t, err, "list")
	if first != want || second != want {
		t.Fatalf("listings of %d entries differ from what was made (first ok: %v, second ok: %v)", n, first == want, second == want)
	}
	if c0 >= 0 {
		if c1 := readdirCount(m); c1 != c0 {
			t.Errorf("the second listing of an unchanged directory sent %d READDIR(PLUS) requests, want 0 (from the cache)", c1-c0)
		}
	}
	noErr(t, unix.Unlink(filepath.Join(dir, names[n/2])), "unlink")
	names = slices.Delete(names, n/2, n/2+1)
	if got, err := listNames(dir); err != nil || got != wantListing(t, dir, names) {
		t.Errorf("after an unlink the listing is not right (%v)", err)
	}
}

// TestDirCacheServed: a listing of a directory that has not changed is
// served from the kernel's cache when the next readdir would not update
// atime: under relatime once atime is later than mtime and ctime, always
// under noatime and nodiratime; never under strictatime.
func TestDirCacheServed(t *testing.T) {
	if tmpfsMode {
		t.Skip("counts FUSE requests")
	}
	t.Parallel()
	for _, c := range []struct {
		name   string
		flags  uintptr
		cached bool
	}{
		{"relatime", 0, true},
		{"noatime", unix.MS_NOATIME, true},
		{"nodiratime", unix.MS_NODIRATIME, true},
		{"strictatime", unix.MS_STRICTATIME, false},
		{"strictatime,nodiratime", unix.MS_STRICTATIME | unix.MS_NODIRATIME, true},
	} {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			opts := []mountOption{withMountFlags(c.flags)}
			if c.flags&unix.MS_STRICTATIME != 0 {
				// No passthrough under strictatime (fs.Mount).
				opts = append(opts, func(c *mountConfig) { c.passthrough = false })
			}
			mnt, m, _ := mountFS(t, opts...)
			dir := filepath.Join(mnt, "d")
			noErr(t, os.Mkdir(dir, 0o755), "mkdir")
			writeFile(t, filepath.Join(dir, "f"), nil)
			_, err := listNames(dir)
			noErr(t, err, "list")
			for i := 0; i < 3; i++ {
				c0 := readdirCount(m)
				_, err := listNames(dir)
				noErr(t, err, "list")
				sent := readdirCount(m) - c0
				if c.cached && sent != 0 || !c.cached && sent == 0 {
					t.Errorf("listing %d of an unchanged directory sent %d READDIR(PLUS) requests; cached: %v", i+2, sent, c.cached)
				}
			}
			// atime set back (a SETATTR, which the kernel does not
			// count as a change of the listing): under relatime the
			// next listing is due to update atime, so the open drops
			// the cache, and the listing reaches the server.
			if c.flags == 0 {
				ts := []unix.Timespec{{Sec: 1000}, {Nsec: unix.UTIME_OMIT}}
				noErr(t, unix.UtimesNanoAt(unix.AT_FDCWD, dir, ts, 0), "utimensat")
				c0 := readdirCount(m)
				_, err := listNames(dir)
				noErr(t, err, "list")
				if readdirCount(m) == c0 {
					t.Errorf("the listing after atime was set back sent no READDIR(PLUS)")
				}
				if at := lstat(t, dir).Atim; at.Sec == 1000 {
					t.Errorf("atime not updated by the listing after it was set back")
				}
			}
			// A change: the next listing reaches the server, and it
			// is right.
			writeFile(t, filepath.Join(dir, "g"), nil)
			c0 := readdirCount(m)
			got, err := listNames(dir)
			noErr(t, err, "list")
			if readdirCount(m) == c0 {
				t.Errorf("the listing after a create sent no READDIR(PLUS)")
			}
			if want := wantListing(t, dir, []string{"f", "g"}); got != want {
				t.Errorf("listing after a create: %s, want %s", got, want)
			}
		})
	}
}

// TestDirCacheSmallReads: getdents with small buffers and seekdir while
// the directory changes and other opens list it from the start (which
// refills the kernel's cache from the server's new listing): entries
// present throughout are returned exactly once, and a seek back to a
// saved offset resumes after the same entry.
func TestDirCacheSmallReads(t *testing.T) {
	t.Parallel()
	mnt, _, _ := mountFS(t)
	dir := filepath.Join(mnt, "d")
	noErr(t, os.Mkdir(dir, 0o755), "mkdir")
	const n = 200
	name := func(i int) string { return fmt.Sprintf("old-%03d-%s", i, strings.Repeat("o", i%30)) }
	for i := 0; i < n; i++ {
		writeFile(t, filepath.Join(dir, name(i)), nil)
	}
	// Twice: the first fills the cache, the second is served by it.
	for i := 0; i < 2; i++ {
		_, err := listNames(dir)
		noErr(t, err, "list")
	}
	fd := openFd(t, dir, unix.O_RDONLY|unix.O_DIRECTORY, 0)
	defer closeFd(fd)
	seen := map[string]int{}
	removed := map[string]bool{}
	var mark int64 = -1
	var afterMark []string
	for batch := 0; ; batch++ {
		ents := getdents(t, fd, 400)
		if len(ents) == 0 {
			break
		}
		for _, e := range ents {
			seen[e.name]++
			if mark >= 0 {
				afterMark = append(afterMark, e.name)
			}
		}
		if batch == 2 {
			cur, err := unix.Seek(fd, 0, 1)
			noErr(t, err, "telldir")
			mark = cur
		}
		// A change, then a listing from the start by another open.
		writeFile(t, filepath.Join(dir, fmt.Sprintf("new-%03d", batch)), nil)
		victim := name((batch*53 + 7) % n)
		if !removed[victim] {
			noErr(t, unix.Unlink(filepath.Join(dir, victim)), "unlink")
			removed[victim] = true
		}
		_, err := listNames(dir)
		noErr(t, err, "list")
	}
	for nm, c := range seen {
		if c > 1 {
			t.Errorf("entry %q returned %d times", nm, c)
		}
	}
	for i := 0; i < n; i++ {
		if nm := name(i); !removed[nm] && seen[nm] != 1 {
			t.Errorf("entry %q, present throughout, returned %d times", nm, seen[nm])
		}
	}
	if mark < 0 {
		t.Fatalf("directory too short for the test")
	}
	if off, err := unix.Seek(fd, mark, 0); err != nil || off != mark {
		t.Fatalf("seekdir(%d) = %d, %v", mark, off, err)
	}
	again := map[string]bool{}
	for {
		ents := getdents(t, fd, 400)
		if len(ents) == 0 {
			break
		}
		for _, e := range ents {
			again[e.name] = true
		}
	}
	for _, nm := range afterMark {
		if !removed[nm] && !strings.HasPrefix(nm, "new-") && !again[nm] {
			t.Errorf("after seekdir back to the mark, %q (listed after it before) is missing", nm)
		}
	}
}
