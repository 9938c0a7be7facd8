package tests

import (
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// TestPersistStoreFull: on a persistent store whose filesystem is full,
// so that the metadata journal cannot grow, every metadata operation either
// succeeds, and then survives a SIGKILL of the server, or fails with
// ENOSPC and leaves the tree exactly as it was: in the live mount, and
// after the kill and a new mount.
func TestPersistStoreFull(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root to mount a small tmpfs for the store")
	}
	pstSetup(t)
	storeFS := pstSmallFS(t, "8m")
	store := filepath.Join(storeFS, "store")
	noErr(t, os.Mkdir(store, 0o700), "mkdir store")
	mnt := binMountpoint(t)
	j := func(rel string) string { return filepath.Join(mnt, rel) }
	p := pstMount(t, store, mnt, false)

	fullTree(t, j)

	// Fill the store's filesystem, then use up what the journal has
	// allocated ahead, with changes of no consequence, until a commit
	// fails.
	filler := pstFillFS(t, storeFS)
	full := false
	for i := 0; i < 200000; i++ {
		err := unix.Chmod(j("keep"), uint32(0o600+i%2))
		if errors.Is(err, unix.ENOSPC) {
			full = true
			break
		}
		noErr(t, err, "chmod to fill the journal")
	}
	if !full {
		t.Fatalf("the journal never filled up")
	}
	want := fullSnap(t, mnt)

	ops := fullOps(j)

	// On the full store, each either fails with ENOSPC and changes
	// nothing, or succeeds.
	failed := 0
	for _, op := range ops {
		err := op.do()
		got := fullSnap(t, mnt)
		switch {
		case err == nil:
			want = got
		case errors.Is(err, unix.ENOSPC):
			failed++
			if d := fullSnapDiff(want, got); d != "" {
				t.Errorf("%s failed with ENOSPC but changed the tree:\n%s", op.name, d)
				want = got
			}
		default:
			t.Errorf("%s: %v, want success or ENOSPC", op.name, err)
			want = got
		}
	}
	t.Logf("on the full store, %d of %d operations failed with ENOSPC", failed, len(ops))
	if failed < len(ops)/2 {
		t.Errorf("only %d of %d operations failed on a full store: the test did not fill it", failed, len(ops))
	}

	// Once there is room again, the same operations succeed; what they
	// did must survive the kill below.
	noErr(t, os.Remove(filler), "remove filler")
	for _, op := range ops {
		if err := op.do(); err != nil && !errors.Is(err, unix.EEXIST) && !errors.Is(err, unix.ENOENT) {
			t.Errorf("%s with room in the store: %v", op.name, err)
		}
	}
	want = fullSnap(t, mnt)

	// Nothing a failed request did, and all that a successful one did,
	// is there after a SIGKILL and a new mount.
	pstKill(t, p, mnt)
	p = pstMount(t, store, mnt, false)
	if d := fullSnapDiff(want, fullSnap(t, mnt)); d != "" {
		t.Errorf("after SIGKILL and a new mount:\n%s", d)
	}
	pstUnmount(t, p, mnt)
	pstRequireFsckClean(t, store)
}

// fullTree makes the tree that fullOps work on, under the mount point of j.
func fullTree(t *testing.T, j func(string) string) {
	t.Helper()
	for _, d := range []string{"d1", "d2", "empty", "empty2", "sub", "sub/inner"} {
		noErr(t, os.Mkdir(j(d), 0o755), "mkdir %s", d)
	}
	for i, f := range []string{"f", "g", "victim", "linked", "a", "b", "sub/x", "long", "punch", "zero", "keep", "trunc", "wr"} {
		pstWriteAt(t, j(f), 0, modelBytes(uint32(i+1), 40<<10))
	}
	noErr(t, os.Symlink("f", j("sym")), "symlink")
	noErr(t, unix.Setxattr(j("f"), "user.old", []byte("value"), 0), "setxattr")
	noErr(t, unix.Setxattr(j("d1"), "user.dir", []byte("v"), 0), "setxattr")

}

// A fullOp is one metadata operation of a request.
type fullOp struct {
	name string
	do   func() error
}

// fullOps returns one operation of each kind that changes metadata, on
// the tree fullTree makes.
func fullOps(j func(string) string) []fullOp {
	ts := []unix.Timespec{{Sec: 1500000000, Nsec: 1}, {Sec: 1600000000, Nsec: 2}}
	return []fullOp{
		{"mkdir", func() error { return unix.Mkdir(j("newdir"), 0o700) }},
		{"mknod", func() error { return unix.Mknod(j("fifo"), unix.S_IFIFO|0o600, 0) }},
		{"create", func() error {
			fd, err := unix.Open(j("new"), unix.O_CREAT|unix.O_EXCL|unix.O_WRONLY|unix.O_CLOEXEC, 0o644)
			if err == nil {
				unix.Close(fd)
			}
			return err
		}},
		{"symlink", func() error { return unix.Symlink("target", j("newsym")) }},
		{"link", func() error { return unix.Link(j("linked"), j("d1/hard")) }},
		{"unlink", func() error { return unix.Unlink(j("victim")) }},
		{"rmdir", func() error { return unix.Rmdir(j("empty")) }},
		{"rename", func() error { return unix.Rename(j("a"), j("d2/a")) }},
		{"rename over", func() error { return unix.Rename(j("b"), j("g")) }},
		{"rename dir over dir", func() error { return unix.Rename(j("empty2"), j("d2/empty2")) }},
		{"rename noreplace", func() error {
			return unix.Renameat2(unix.AT_FDCWD, j("sub/x"), unix.AT_FDCWD, j("d1/x"), unix.RENAME_NOREPLACE)
		}},
		{"rename exchange", func() error {
			return unix.Renameat2(unix.AT_FDCWD, j("sub"), unix.AT_FDCWD, j("f"), unix.RENAME_EXCHANGE)
		}},
		{"rename whiteout", func() error {
			return unix.Renameat2(unix.AT_FDCWD, j("long"), unix.AT_FDCWD, j("d1/long"), unix.RENAME_WHITEOUT)
		}},
		{"chmod", func() error { return unix.Chmod(j("d1"), 0o700) }},
		{"chown", func() error { return unix.Lchown(j("d2"), 1234, 5678) }},
		{"utimensat", func() error { return unix.UtimesNanoAt(unix.AT_FDCWD, j("d2"), ts, 0) }},
		{"truncate down", func() error { return unix.Truncate(j("trunc"), 10<<10) }},
		{"truncate up", func() error { return unix.Truncate(j("keep"), 1<<20) }},
		{"setxattr", func() error { return unix.Setxattr(j("d1"), "user.new", []byte("x"), 0) }},
		{"replace xattr", func() error { return unix.Setxattr(j("d1"), "user.dir", []byte("w"), unix.XATTR_REPLACE) }},
		{"removexattr", func() error { return unix.Removexattr(j("d1"), "user.dir") }},
		{"fallocate", func() error { return fallocatePath(j("keep"), 0, 0, 8<<10) }},
		{"fallocate keep size", func() error { return fallocatePath(j("keep"), unix.FALLOC_FL_KEEP_SIZE, 0, 4<<10) }},
		{"punch hole", func() error {
			return fallocatePath(j("punch"), unix.FALLOC_FL_PUNCH_HOLE|unix.FALLOC_FL_KEEP_SIZE, 4<<10, 8<<10)
		}},
		{"zero range", func() error { return fallocatePath(j("zero"), unix.FALLOC_FL_ZERO_RANGE, 4<<10, 8<<10) }},
		{"write", func() error { return pwritePath(j("wr"), []byte("overwritten"), 100) }},
		{"write past the end", func() error { return pwritePath(j("wr"), []byte("appended"), 40<<10) }},
		{"copy_file_range", func() error {
			in, err := os.Open(j("punch"))
			if err != nil {
				return err
			}
			defer in.Close()
			out, err := os.OpenFile(j("wr"), os.O_WRONLY, 0)
			if err != nil {
				return err
			}
			defer out.Close()
			off := int64(8 << 10)
			_, err = unix.CopyFileRange(int(in.Fd()), nil, int(out.Fd()), &off, 4096, 0)
			return err
		}},
	}
}

// TestPersistOneFrameEach: every request that changes metadata writes
// exactly one journal frame. With passthrough, an open for writing and its
// close write one each (the loan of the store file, see store/loans.go),
// a write through the kernel none, and a create or an O_TRUNC open carries
// its loan in its own frame.
func TestPersistOneFrameEach(t *testing.T) {
	pstSetup(t)
	for _, pt := range []string{"off", "on"} {
		t.Run("passthrough="+pt, func(t *testing.T) {
			if pt == "on" {
				needPassthrough(t)
			}
			store := pstStoreDir(t)
			mnt := binMountpoint(t)
			j := func(rel string) string { return filepath.Join(mnt, rel) }
			p := pstMount(t, store, mnt, false, "--passthrough="+pt)
			fullTree(t, j)
			ops := append(fullOps(j),
				fullOp{"write", func() error { pstWriteAt(t, j("keep"), 5, []byte("x")); return nil }},
				fullOp{"write growing", func() error { pstWriteAt(t, j("keep"), 2<<20, []byte("x")); return nil }},
				fullOp{"open O_TRUNC", func() error {
					fd, err := unix.Open(j("zero"), unix.O_WRONLY|unix.O_TRUNC|unix.O_CLOEXEC, 0)
					if err == nil {
						unix.Close(fd)
					}
					return err
				}},
			)
			// With passthrough: the frames of ops that open a file for
			// writing, the open's and the close's included. (The kernel
			// follows an O_TRUNC open it passes through with a SETATTR
			// of the size and times, a request of its own.)
			lent := map[string]int{
				"create": 2, "write": 2, "write past the end": 2, "write growing": 2, "open O_TRUNC": 3,
				"fallocate": 3, "fallocate keep size": 3, "punch hole": 3, "zero range": 3, "copy_file_range": 3,
			}
			for _, op := range ops {
				before := journalFrames(t, store)
				noErr(t, op.do(), "%s", op.name)
				want := 1
				if n, ok := lent[op.name]; ok && pt == "on" {
					want = n
				}
				// The kernel sends RELEASE after close returns: the
				// close's frame may come a moment later. (One more than
				// wanted shows here, or in the next op's count.)
				n := journalFrames(t, store) - before
				for deadline := time.Now().Add(5 * time.Second); pt == "on" && n < want && time.Now().Before(deadline); {
					time.Sleep(time.Millisecond)
					n = journalFrames(t, store) - before
				}
				// A write that changes neither the size nor the times
				// (within a clock tick of the file's last change, with
				// no look at it between) has nothing to record.
				if (op.name == "write" || op.name == "copy_file_range") && pt == "off" && n == 0 {
					continue
				}
				if n != want {
					t.Errorf("%s wrote %d journal frames, want %d", op.name, n, want)
				}
			}
			pstUnmount(t, p, mnt)
		})
	}
}

// pstSmallFS mounts a tmpfs of size (as its size= option has it) on a new
// directory for a store, and returns the directory; the tmpfs is detached
// after the mounts of the test are gone.
func pstSmallFS(t *testing.T, size string) string {
	t.Helper()
	dir := t.TempDir()
	noErr(t, unix.Mount("tmpfs", dir, "tmpfs", 0, "size="+size+",mode=0700"), "mount the store's tmpfs")
	t.Cleanup(func() { unix.Unmount(dir, unix.MNT_DETACH) }) // after the mount's cleanup
	return dir
}

// pstFillFS fills the filesystem of dir with a file in it, until ENOSPC,
// and returns the file's path: removing it makes room again.
func pstFillFS(t *testing.T, dir string) string {
	t.Helper()
	name := filepath.Join(dir, "filler")
	fill, err := os.Create(name)
	noErr(t, err, "create filler")
	defer fill.Close()
	chunk := make([]byte, 64<<10)
	for {
		if _, err := fill.Write(chunk); err != nil {
			wantErrno(t, err, unix.ENOSPC, "filling the store's filesystem")
			return name
		}
	}
}

// journalFrames counts the frames of the journal being appended to in
// store (the newest meta/journal-*).
func journalFrames(t *testing.T, store string) int {
	t.Helper()
	names, err := filepath.Glob(filepath.Join(store, "meta", "journal-*"))
	noErr(t, err, "glob")
	sort.Strings(names)
	if len(names) == 0 {
		t.Fatalf("no journal in %s", store)
	}
	data, err := os.ReadFile(names[len(names)-1])
	noErr(t, err, "read the journal")
	frames := 0
	for off := 24; off+16 <= len(data); frames++ {
		n := 16 + int(binary.LittleEndian.Uint32(data[off:]))
		if off+n > len(data) || binary.LittleEndian.Uint64(data[off+8:]) == 0 {
			break
		}
		off += n
	}
	return frames
}

// pwritePath writes b at off of the file at path.
func pwritePath(path string, b []byte, off int64) error {
	fd, err := unix.Open(path, unix.O_WRONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		return err
	}
	defer unix.Close(fd)
	_, err = unix.Pwrite(fd, b, off)
	return err
}

// fallocatePath calls fallocate on the file at path.
func fallocatePath(path string, mode uint32, off, n int64) error {
	fd, err := unix.Open(path, unix.O_WRONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		return err
	}
	defer unix.Close(fd)
	return unix.Fallocate(fd, mode, off, n)
}

// fullSnap describes the tree under root by what a request may change:
// names, inode numbers, types and modes, owners, sizes, link counts,
// mtimes and ctimes, contents, symlink targets and xattrs. It changes
// nothing in the tree (atimes are left out: reading changes them).
func fullSnap(t *testing.T, root string) map[string]string {
	t.Helper()
	out := map[string]string{}
	err := filepath.Walk(root, func(p string, _ os.FileInfo, err error) error {
		if err != nil {
			return err
		}
		var st unix.Stat_t
		if err := unix.Lstat(p, &st); err != nil {
			return err
		}
		s := fmt.Sprintf("ino=%d mode=%o uid=%d gid=%d size=%d nlink=%d rdev=%d mtime=%d.%09d ctime=%d.%09d",
			st.Ino, st.Mode, st.Uid, st.Gid, st.Size, st.Nlink, st.Rdev, st.Mtim.Sec, st.Mtim.Nsec, st.Ctim.Sec, st.Ctim.Nsec)
		switch st.Mode & unix.S_IFMT {
		case unix.S_IFREG:
			b, err := os.ReadFile(p)
			if err != nil {
				return err
			}
			s += fmt.Sprintf(" data=%x", sha256.Sum256(b))
		case unix.S_IFLNK:
			tg, err := os.Readlink(p)
			if err != nil {
				return err
			}
			s += " target=" + tg
		}
		x, err := pstXattrs(p)
		if err != nil {
			return err
		}
		keys := make([]string, 0, len(x))
		for k := range x {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		for _, k := range keys {
			s += fmt.Sprintf(" %s=%q", k, x[k])
		}
		rel, _ := filepath.Rel(root, p)
		out[rel] = s
		return nil
	})
	noErr(t, err, "walk %s", root)
	return out
}

// fullSnapDiff describes how b differs from a, or returns "".
func fullSnapDiff(a, b map[string]string) string {
	var d []string
	for k, v := range a {
		switch w, ok := b[k]; {
		case !ok:
			d = append(d, fmt.Sprintf("  %s: gone (was %s)", k, v))
		case v != w:
			d = append(d, fmt.Sprintf("  %s:\n    was %s\n    now %s", k, v, w))
		}
	}
	for k, w := range b {
		if _, ok := a[k]; !ok {
			d = append(d, fmt.Sprintf("  %s: appeared (%s)", k, w))
		}
	}
	sort.Strings(d)
	return strings.Join(d, "\n")
}
