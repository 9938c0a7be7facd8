package tests

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"mmapfs/store"
)

// The atime mount flags and ro, as tmpfs has them. The kernel keeps no
// atime of a FUSE inode (it marks them S_NOATIME); mmapfs applies the
// flags itself, and these tests check what a program sees: stat after a
// read, an exec, a read through a mapping, a readdir, a readlink and a
// path walk through a symlink. Exec and mappings run in a helper process:
// the test process serves the mount.

func init() {
	mmapChecks["atime-exec"] = atimeExecCheck
	mmapChecks["atime-mmap"] = atimeMmapCheck
}

// atimeExecCheck runs the program at path.
func atimeExecCheck(path string) []string {
	if out, err := exec.Command(path).CombinedOutput(); err != nil {
		return []string{fmt.Sprintf("exec %s: %v: %s", path, err, out)}
	}
	return nil
}

// atimeMmapCheck maps the file at path and reads its first byte through
// the mapping.
func atimeMmapCheck(path string) []string {
	fd, err := unix.Open(path, unix.O_RDONLY, 0)
	if err != nil {
		return []string{fmt.Sprintf("open %s: %v", path, err)}
	}
	defer unix.Close(fd)
	m, err := unix.Mmap(fd, 0, 4096, unix.PROT_READ, unix.MAP_SHARED)
	if err != nil {
		return []string{fmt.Sprintf("mmap %s: %v", path, err)}
	}
	defer unix.Munmap(m)
	if m[0] != 0x7f {
		return []string{fmt.Sprintf("read %#x through the mapping, want 0x7f", m[0])}
	}
	return nil
}

// atimeObj is one object of the atime tests and the operation that reads
// it.
type atimeObj struct {
	name string // under the mount; also names the operation
	kind uint32 // S_IFREG, S_IFDIR or S_IFLNK
	read func(t *testing.T, path string)
}

// atimeObjs builds the objects on mnt: a program, files, a directory with
// an entry, and symlinks. bin is the helper binary.
func atimeObjs(t *testing.T, mnt, bin string) []atimeObj {
	prog, err := os.ReadFile("/bin/true")
	noErr(t, err, "read /bin/true")
	for _, name := range []string{"read", "exec", "mmap", "target"} {
		writeFile(t, filepath.Join(mnt, name), prog)
	}
	noErr(t, os.Chmod(filepath.Join(mnt, "exec"), 0o755), "chmod")
	noErr(t, os.Mkdir(filepath.Join(mnt, "readdir"), 0o755), "mkdir")
	writeFile(t, filepath.Join(mnt, "readdir", "entry"), []byte("x"))
	noErr(t, os.Symlink("target", filepath.Join(mnt, "readlink")), "symlink")
	noErr(t, os.Symlink("target", filepath.Join(mnt, "follow")), "symlink")
	helper := func(check string) func(t *testing.T, path string) {
		return func(t *testing.T, path string) {
			if res := runHelper(t, bin, hop("check", check, path)); res[0] != "ok" {
				t.Errorf("%s: %s", check, res[0])
			}
		}
	}
	return []atimeObj{
		{"read", unix.S_IFREG, func(t *testing.T, path string) { readFile(t, path) }},
		{"exec", unix.S_IFREG, helper("atime-exec")},
		{"mmap", unix.S_IFREG, helper("atime-mmap")},
		{"readdir", unix.S_IFDIR, func(t *testing.T, path string) {
			ents, err := os.ReadDir(path)
			noErr(t, err, "readdir")
			if len(ents) != 1 {
				t.Errorf("readdir %s: %d entries, want 1", path, len(ents))
			}
		}},
		{"readlink", unix.S_IFLNK, func(t *testing.T, path string) {
			_, err := os.Readlink(path)
			noErr(t, err, "readlink")
		}},
		{"follow", unix.S_IFLNK, func(t *testing.T, path string) {
			var st unix.Stat_t
			noErr(t, unix.Stat(path, &st), "stat through the symlink")
		}},
	}
}

// setAtime sets the atime of path (not following a symlink), keeping
// mtime. For a file it then rewrites its first byte, so that its mtime is
// later than the atime set: a relatime read is due both by the file's
// times and, with passthrough, by the times of its store file, whose atime
// the kernel keeps by the rule of the store's own mount.
func setAtime(t *testing.T, path string, kind uint32, at unix.Timespec) {
	ts := []unix.Timespec{at, {Nsec: unix.UTIME_OMIT}}
	noErr(t, unix.UtimesNanoAt(unix.AT_FDCWD, path, ts, unix.AT_SYMLINK_NOFOLLOW), "utimensat %s", path)
	if kind == unix.S_IFREG {
		fd := openFd(t, path, unix.O_WRONLY, 0)
		pwriteAll(t, fd, []byte{0x7f}, 0)
		noErr(t, closeFd(fd), "close")
	}
}

// readAtime does read on path and returns the atime stat shows then. When
// the read is to change atime (change), it is tried again until it does,
// for up to 10 s: the kernel sends the RELEASE of a close after close has
// returned, and an open that reaches mmapfs before it keeps the file's
// page cache (mmapfs drops it only at an open with no other open of the
// file), so its reads may not reach mmapfs.
func readAtime(t *testing.T, read func(t *testing.T, path string), path string, was unix.Timespec, change bool) unix.Timespec {
	t.Helper()
	var at unix.Timespec
	eventually(10*time.Second, func() bool {
		read(t, path)
		at = lstat(t, path).Atim
		return !change || at != was
	})
	return at
}

// mountOpts returns the options of the mount on dir in /proc/mounts.
func mountOpts(t *testing.T, dir string) string {
	f, err := os.Open("/proc/self/mounts")
	noErr(t, err, "open /proc/self/mounts")
	defer f.Close()
	opts := ""
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if fields := strings.Fields(sc.Text()); len(fields) >= 4 && fields[1] == dir {
			opts = fields[3]
		}
	}
	return opts
}

// TestAtimeFlags: under each combination of the atime flags, each kind of
// read changes atime or leaves it as tmpfs does: relatime updates an atime
// not later than mtime or ctime (or a day old), strictatime every one,
// noatime none (strictatime wins over it), nodiratime no directory's.
// Each object's atime is set once in the past (a relatime read is due) and
// once in the future (it is not). /proc/mounts shows the flags as for
// tmpfs.
func TestAtimeFlags(t *testing.T) {
	needRoot(t)
	bin := helperBinary(t)
	for _, c := range []struct {
		name   string
		flags  uintptr
		strict bool // every read updates atime
		never  bool // no read does
		noDir  bool // no directory's
		shown  string
	}{
		{name: "relatime", flags: 0, shown: "relatime"},
		{name: "noatime", flags: unix.MS_NOATIME, never: true, shown: "noatime"},
		{name: "strictatime", flags: unix.MS_STRICTATIME, strict: true, shown: "rw"},
		{name: "nodiratime", flags: unix.MS_NODIRATIME, noDir: true, shown: "nodiratime"},
		{name: "strictatime,nodiratime", flags: unix.MS_STRICTATIME | unix.MS_NODIRATIME, strict: true, noDir: true, shown: "nodiratime"},
		{name: "noatime,strictatime", flags: unix.MS_NOATIME | unix.MS_STRICTATIME, strict: true, shown: "rw"},
	} {
		t.Run(c.name, func(t *testing.T) {
			opts := []mountOption{withMountFlags(c.flags)}
			if c.strict {
				// Passthrough stays off under strictatime
				// (fs.Mount says why); asking for it would fail
				// the mount in passthrough mode.
				opts = append(opts, func(c *mountConfig) { c.passthrough = false })
			}
			tm := mountTest(t, opts...)
			if got := mountOpts(t, tm.dir); !strings.Contains(","+got+",", ","+c.shown+",") ||
				(c.strict && (strings.Contains(got, "relatime") || strings.Contains(got, "noatime"))) {
				t.Errorf("/proc/mounts options %q, want %s among them", got, c.shown)
			}
			objs := atimeObjs(t, tm.dir, bin)
			now := time.Now()
			for _, when := range []struct {
				name string
				at   unix.Timespec
				due  bool // a relatime read updates it
			}{
				{"past", unix.Timespec{Sec: 1577836800, Nsec: 123456789}, true},
				{"future", unix.NsecToTimespec(now.Add(time.Hour).UnixNano()), false},
			} {
				for _, o := range objs {
					setAtime(t, filepath.Join(tm.dir, o.name), o.kind, when.at)
				}
				for _, o := range objs {
					path := filepath.Join(tm.dir, o.name)
					want := !c.never && (c.strict || when.due)
					if o.kind == unix.S_IFDIR && c.noDir {
						want = false
					}
					at := readAtime(t, o.read, path, when.at, want)
					if changed := at != when.at; changed != want {
						t.Errorf("%s of an object with atime in the %s: atime %d.%09d (was %d.%09d), want changed %v",
							o.name, when.name, at.Sec, at.Nsec, when.at.Sec, when.at.Nsec, want)
					}
				}
			}
		})
	}
}

// TestAtimeStrictEveryOpen: under strictatime a read of a file in a new
// open (with no other open of it) updates atime, however recent it is:
// the page cache, which answers reads without the server, is dropped at
// such an open.
func TestAtimeStrictEveryOpen(t *testing.T) {
	tm := mountTest(t, withMountFlags(unix.MS_STRICTATIME), func(c *mountConfig) { c.passthrough = false })
	path := filepath.Join(tm.dir, "f")
	writeFile(t, path, pattern(64<<10, 1))
	for i := 0; i < 5; i++ {
		at := unix.NsecToTimespec(time.Now().Add(time.Hour).UnixNano() + int64(i))
		noErr(t, unix.UtimesNanoAt(unix.AT_FDCWD, path, []unix.Timespec{at, {Nsec: unix.UTIME_OMIT}}, 0), "utimensat")
		if readAtime(t, func(t *testing.T, p string) { readFile(t, p) }, path, at, true) == at {
			t.Fatalf("read %d: atime stayed %d.%09d", i, at.Sec, at.Nsec)
		}
	}
}

// storeFiles describes every file of a store directory but its lock: name,
// inode, size and a hash of the contents, so that any frame, snapshot or
// data written shows. Times are left out: opening and closing the journal
// cuts it to its length, which touches its mtime without writing. So are
// the zeros at the end of a store file, and with them its size: the store
// grows a store file it takes up to whole windows (mapstore), which adds
// nothing to the file's data.
func storeFiles(t *testing.T, dir string) []string {
	var out []string
	err := filepath.Walk(dir, func(p string, fi os.FileInfo, err error) error {
		if err != nil || fi.IsDir() || fi.Name() == "lock" {
			return err
		}
		var st unix.Stat_t
		if err := unix.Lstat(p, &st); err != nil {
			return err
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(dir, p)
		size := fmt.Sprint(fi.Size())
		if strings.HasPrefix(rel, store.BlobsDir+"/") {
			b = bytes.TrimRight(b, "\x00")
			size = "(store file)"
		}
		out = append(out, fmt.Sprintf("%s ino %d size %s sha256 %x", rel, st.Ino, size, sha256.Sum256(b)))
		return nil
	})
	noErr(t, err, "walk %s", dir)
	sort.Strings(out)
	return out
}

// TestReadOnlyMount: on a ro mount every kind of change fails with EROFS
// (the kernel refuses them before they reach the server), reads of every
// kind change no atime, and with a store nothing is written to it: no
// journal frame, no snapshot at unmount. With mmapfs the tree is made on
// a persistent store mounted read-write first; on tmpfs, the tmpfs is
// remounted read-only.
func TestReadOnlyMount(t *testing.T) {
	needRoot(t)
	bin := helperBinary(t)
	past := unix.Timespec{Sec: 1577836800, Nsec: 5}
	var objs []atimeObj
	populate := func(t *testing.T, mnt string) {
		objs = atimeObjs(t, mnt, bin)
		for _, o := range objs {
			setAtime(t, filepath.Join(mnt, o.name), o.kind, past)
		}
		noErr(t, unix.Setxattr(filepath.Join(mnt, "read"), "user.k", []byte("v"), 0), "setxattr")
		noErr(t, os.Mkdir(filepath.Join(mnt, "empty"), 0o755), "mkdir")
		// The xattr and the new entries changed ctimes: set the atimes
		// again (ctime stays later, so a relatime read would be due).
		for _, name := range []string{"read", "readdir"} {
			ts := []unix.Timespec{past, {Nsec: unix.UTIME_OMIT}}
			noErr(t, unix.UtimesNanoAt(unix.AT_FDCWD, filepath.Join(mnt, name), ts, 0), "utimensat")
		}
	}
	if tmpfsMode {
		tm := mountTest(t)
		populate(t, tm.dir)
		if !tm.tmpfs {
			t.Skip("no tmpfs of its own to remount read-only")
		}
		noErr(t, unix.Mount("none", tm.dir, "", unix.MS_REMOUNT|unix.MS_RDONLY, ""), "remount ro")
		checkReadOnly(t, tm.dir, objs, past)
		return
	}
	parent, err := os.MkdirTemp("/dev/shm", "mmapfs-test-ro-")
	noErr(t, err, "MkdirTemp")
	t.Cleanup(func() { os.RemoveAll(parent) })
	// Each mount in a subtest, whose end unmounts it.
	t.Run("populate", func(t *testing.T) {
		tm := mountTest(t, withStoreIn(parent), withPersistentStore(256<<10))
		populate(t, tm.dir)
	})
	if t.Failed() {
		return
	}
	metaDir := filepath.Join(parent, "pstore")
	before := storeFiles(t, metaDir)
	t.Run("ro", func(t *testing.T) {
		tm := mountTest(t, withStoreIn(parent), withPersistentStore(256<<10), withMountFlags(unix.MS_RDONLY))
		checkReadOnly(t, tm.dir, objs, past)
	})
	if after := storeFiles(t, metaDir); strings.Join(before, "\n") != strings.Join(after, "\n") {
		t.Errorf("the ro mount wrote to its store:\nbefore:\n%s\nafter:\n%s",
			strings.Join(before, "\n"), strings.Join(after, "\n"))
	}
}

// checkReadOnly checks the ro mount on mnt, which holds objs (atimeObjs)
// with atime past and the xattr user.k=v on "read", and an empty directory
// "empty".
func checkReadOnly(t *testing.T, mnt string, objs []atimeObj, past unix.Timespec) {
	if got := mountOpts(t, mnt); !strings.HasPrefix(got, "ro,") {
		t.Errorf("/proc/mounts options %q, want ro", got)
	}
	if sfs := statfs(t, mnt); sfs.Flags&unix.ST_RDONLY == 0 {
		t.Errorf("statfs flags %#x: no ST_RDONLY", sfs.Flags)
	}
	p := func(name string) string { return filepath.Join(mnt, name) }
	openErr := func(path string, flags int) error {
		fd, err := unix.Open(path, flags, 0o644)
		if err == nil {
			unix.Close(fd)
		}
		return err
	}
	ts := []unix.Timespec{{Sec: 1000}, {Sec: 1000}}
	for _, c := range []struct {
		what string
		err  error
	}{
		{"create", openErr(p("new"), unix.O_CREAT|unix.O_WRONLY)},
		{"create O_RDONLY", openErr(p("new"), unix.O_CREAT|unix.O_RDONLY)},
		{"open O_WRONLY", openErr(p("read"), unix.O_WRONLY)},
		{"open O_RDWR", openErr(p("read"), unix.O_RDWR)},
		{"open O_TRUNC", openErr(p("read"), unix.O_RDONLY|unix.O_TRUNC)},
		{"O_TMPFILE", openErr(mnt, unix.O_TMPFILE|unix.O_WRONLY)},
		{"mkdir", unix.Mkdir(p("newdir"), 0o755)},
		{"mknod", unix.Mknod(p("fifo"), unix.S_IFIFO|0o644, 0)},
		{"symlink", unix.Symlink("x", p("newlink"))},
		{"link", unix.Link(p("read"), p("newhard"))},
		{"unlink", unix.Unlink(p("read"))},
		{"rmdir", unix.Rmdir(p("empty"))},
		{"rename", unix.Rename(p("read"), p("renamed"))},
		{"rename over", unix.Rename(p("read"), p("mmap"))},
		{"rename exchange", unix.Renameat2(unix.AT_FDCWD, p("read"), unix.AT_FDCWD, p("mmap"), unix.RENAME_EXCHANGE)},
		{"truncate", unix.Truncate(p("read"), 0)},
		{"chmod", unix.Chmod(p("read"), 0o600)},
		{"chmod root", unix.Chmod(mnt, 0o700)},
		{"chown", unix.Lchown(p("read"), 1, 1)},
		{"chown symlink", unix.Lchown(p("readlink"), 1, 1)},
		{"setxattr", unix.Setxattr(p("read"), "user.n", []byte("v"), 0)},
		{"replace xattr", unix.Setxattr(p("read"), "user.k", []byte("w"), 0)},
		{"removexattr", unix.Removexattr(p("read"), "user.k")},
		{"utimensat now", unix.UtimesNanoAt(unix.AT_FDCWD, p("read"), nil, 0)},
		{"utimensat", unix.UtimesNanoAt(unix.AT_FDCWD, p("read"), ts, 0)},
		{"utimensat dir", unix.UtimesNanoAt(unix.AT_FDCWD, p("readdir"), ts, 0)},
		{"utimensat symlink", unix.UtimesNanoAt(unix.AT_FDCWD, p("readlink"), ts, unix.AT_SYMLINK_NOFOLLOW)},
	} {
		wantErrno(t, c.err, unix.EROFS, "%s on a ro mount", c.what)
	}
	for _, o := range objs {
		path := p(o.name)
		o.read(t, path)
		if st := lstat(t, path); st.Atim != past {
			t.Errorf("%s on a ro mount: atime %d.%09d, want %d.%09d as it was", o.name, st.Atim.Sec, st.Atim.Nsec, past.Sec, past.Nsec)
		}
	}
	if got := readFile(t, p("read")); len(got) == 0 || got[0] != 0x7f {
		t.Errorf("read on a ro mount: %d bytes, want the program", len(got))
	}
	b := make([]byte, 16)
	if n, err := unix.Getxattr(p("read"), "user.k", b); err != nil || string(b[:n]) != "v" {
		t.Errorf("getxattr on a ro mount: %q, %v", b[:n], err)
	}
}

// TestAtimeBinaryFlags: `mmapfs mount -o` takes the atime flags and ro as
// mount(8) passes them, and the kernel shows them in /proc/mounts as for
// tmpfs: strictatime keeps passthrough off (auto) or is refused with
// --passthrough=on; ro makes a create fail with EROFS.
func TestAtimeBinaryFlags(t *testing.T) {
	needRootBin(t)
	t.Parallel()
	p, mnt, _ := binMount(t, "-o", "strictatime,relatime,nodiratime")
	binWaitOutput(t, p, "mounted ")
	m := binFindMount(mnt)
	if opts := "," + m.options + ","; !strings.Contains(opts, ",nodiratime,") || strings.Contains(opts, "relatime") || strings.Contains(opts, "noatime") {
		t.Errorf("-o strictatime,relatime,nodiratime: mount options %q, want nodiratime and neither relatime nor noatime", m.options)
	}
	if strings.Contains(p.output.String(), "passthrough on") {
		t.Errorf("passthrough on under strictatime:\n%s", p.output)
	}
	file := filepath.Join(mnt, "f")
	writeFile(t, file, []byte("x"))
	at := unix.NsecToTimespec(time.Now().Add(time.Hour).UnixNano())
	noErr(t, unix.UtimesNanoAt(unix.AT_FDCWD, file, []unix.Timespec{at, {Nsec: unix.UTIME_OMIT}}, 0), "utimensat")
	if readAtime(t, func(t *testing.T, p string) { readFile(t, p) }, file, at, true) == at {
		t.Errorf("read under strictatime left atime as it was")
	}
	noErr(t, binUnmount(t, mnt), "unmount")
	if code := p.binWait(); code != 0 {
		t.Errorf("exit status %d; output:\n%s", code, p.output)
	}

	p = binStart(t, nil, "mount", "--passthrough=on", "-o", "strictatime", binMountpoint(t))
	if code := p.binWait(); code != 2 || !strings.Contains(p.output.String(), "strictatime") {
		t.Errorf("--passthrough=on -o strictatime: exit status %d, want 2; output:\n%s", code, p.output)
	}

	p, mnt, _ = binMount(t, "-o", "ro,noatime")
	binWaitOutput(t, p, "mounted ")
	if opts := "," + binFindMount(mnt).options + ","; !strings.HasPrefix(opts, ",ro,") || !strings.Contains(opts, ",noatime,") {
		t.Errorf("-o ro,noatime: mount options %q", opts)
	}
	wantErrno(t, unix.Mkdir(filepath.Join(mnt, "d"), 0o755), unix.EROFS, "mkdir on -o ro")
	noErr(t, binUnmount(t, mnt), "unmount")
	if code := p.binWait(); code != 0 {
		t.Errorf("exit status %d; output:\n%s", code, p.output)
	}
}
