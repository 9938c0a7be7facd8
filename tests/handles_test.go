package tests

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"testing"

	"golang.org/x/sys/unix"
)

// File handles: name_to_handle_at gives a handle that open_by_handle_at
// opens for as long as the file exists, also once the kernel has dropped
// its inode cache, and gives ESTALE once the file is gone (as on tmpfs).

// dropInodeCache makes the kernel drop its dentry and inode caches (all of
// them, machine-wide), as `echo 2 > /proc/sys/vm/drop_caches` does.
func dropInodeCache(t *testing.T) {
	t.Helper()
	noErr(t, os.WriteFile("/proc/sys/vm/drop_caches", []byte("2"), 0), "drop_caches")
}

// handleOf returns the file handle of p.
func handleOf(t *testing.T, p string) unix.FileHandle {
	t.Helper()
	h, _, err := unix.NameToHandleAt(unix.AT_FDCWD, p, 0)
	noErr(t, err, "name_to_handle_at %s", p)
	return h
}

// openHandle opens h on the mount whose root mfd is open.
func openHandle(mfd int, h unix.FileHandle, flags int) (int, error) {
	return unix.OpenByHandleAt(mfd, h, flags|unix.O_CLOEXEC)
}

// checkHandles opens, on the mount at mnt, the handle hf of a file, which
// must read data, and the handle hd of the directory at dir, which must be
// that directory; when says when, for messages.
func checkHandles(t *testing.T, mnt string, hf unix.FileHandle, data []byte, hd unix.FileHandle, dir, when string) {
	t.Helper()
	mfd, err := unix.Open(mnt, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	noErr(t, err, "open the mount")
	defer unix.Close(mfd)
	fd, err := openHandle(mfd, hf, unix.O_RDONLY)
	noErr(t, err, "open_by_handle_at of a file %s", when)
	got := make([]byte, len(data)+1)
	n, _ := unix.Pread(fd, got, 0)
	unix.Close(fd)
	if !bytes.Equal(got[:max(n, 0)], data) {
		t.Errorf("the file opened by its handle %s reads %d bytes, not its data", when, n)
	}
	fd, err = openHandle(mfd, hd, unix.O_RDONLY|unix.O_DIRECTORY)
	noErr(t, err, "open_by_handle_at of a directory %s", when)
	var st, want unix.Stat_t
	noErr(t, unix.Fstat(fd, &st), "fstat")
	unix.Close(fd)
	noErr(t, unix.Stat(dir, &want), "stat")
	if st.Ino != want.Ino {
		t.Errorf("the directory opened by its handle %s is inode %d, want %d", when, st.Ino, want.Ino)
	}
}

func TestFileHandles(t *testing.T) {
	needRoot(t) // open_by_handle_at needs CAP_DAC_READ_SEARCH
	mnt, _, _ := mountFS(t)
	j := func(rel string) string { return filepath.Join(mnt, rel) }
	noErr(t, os.Mkdir(j("d"), 0o755), "mkdir")
	data := modelBytes(1, 10000)
	noErr(t, os.WriteFile(j("d/f"), data, 0o644), "write")
	noErr(t, os.WriteFile(j("gone"), []byte("x"), 0o644), "write")
	noErr(t, os.Link(j("d/f"), j("link")), "link")
	hf, hd, hg := handleOf(t, j("d/f")), handleOf(t, j("d")), handleOf(t, j("gone"))
	if hl := handleOf(t, j("link")); !bytes.Equal(hl.Bytes(), hf.Bytes()) {
		t.Errorf("two links of one file give different handles")
	}
	mfd, err := unix.Open(mnt, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	noErr(t, err, "open the mount")
	defer unix.Close(mfd)

	checkHandles(t, mnt, hf, data, hd, j("d"), "while cached")
	dropInodeCache(t)
	checkHandles(t, mnt, hf, data, hd, j("d"), "after the inode cache was dropped")

	noErr(t, os.Remove(j("gone")), "unlink")
	dropInodeCache(t)
	if fd, err := openHandle(mfd, hg, unix.O_RDONLY); err == nil {
		unix.Close(fd)
		t.Errorf("open_by_handle_at of a removed file succeeded")
	} else if !errors.Is(err, unix.ESTALE) {
		t.Errorf("open_by_handle_at of a removed file: %v, want ESTALE", err)
	}
	// A file renamed keeps its handle; one written through a handle
	// shows the write under its name.
	noErr(t, os.Rename(j("d/f"), j("moved")), "rename")
	dropInodeCache(t)
	fd, err := openHandle(mfd, hf, unix.O_WRONLY)
	noErr(t, err, "open_by_handle_at of a renamed file")
	_, err = unix.Pwrite(fd, []byte("through the handle"), 0)
	noErr(t, err, "write")
	unix.Close(fd)
	if got := readFile(t, j("moved")); !bytes.HasPrefix(got, []byte("through the handle")) {
		t.Errorf("a write through a handle does not show under the file's name")
	}
}

// TestPersistFileHandles: a handle of a file on a persistent store opens it
// again after a remount, as on ext4, and after a SIGKILL of the server.
func TestPersistFileHandles(t *testing.T) {
	pstSetup(t)
	store := pstStoreDir(t)
	mnt := binMountpoint(t)
	j := func(rel string) string { return filepath.Join(mnt, rel) }
	p := pstMount(t, store, mnt, false)
	noErr(t, os.MkdirAll(j("a/b"), 0o755), "mkdir")
	data := modelBytes(2, 5000)
	noErr(t, os.WriteFile(j("a/b/f"), data, 0o644), "write")
	hf, hd := handleOf(t, j("a/b/f")), handleOf(t, j("a/b"))
	pstUnmount(t, p, mnt)
	p = pstMount(t, store, mnt, false)
	checkHandles(t, mnt, hf, data, hd, j("a/b"), "after a remount")
	pstKill(t, p, mnt)
	p = pstMount(t, store, mnt, false)
	checkHandles(t, mnt, hf, data, hd, j("a/b"), "after a SIGKILL and a mount")
	pstUnmount(t, p, mnt)
}
