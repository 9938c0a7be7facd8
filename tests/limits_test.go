package tests

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// TestStatfs: statfs reports size= and inodes= and follows use.
func TestStatfs(t *testing.T) {
	t.Parallel()
	const size, inodes = 8 << 20, 100
	mnt, _, _ := mountFS(t, withSize(size), withInodes(inodes))
	s := statfs(t, mnt)
	if s.Blocks*uint64(s.Bsize) != size {
		t.Errorf("Blocks*Bsize = %d*%d = %d, want %d", s.Blocks, s.Bsize, s.Blocks*uint64(s.Bsize), size)
	}
	if s.Blocks*uint64(s.Frsize) != size {
		t.Errorf("Blocks*Frsize = %d*%d, want %d", s.Blocks, s.Frsize, size)
	}
	if s.Bfree != s.Blocks || s.Bavail != s.Blocks {
		t.Errorf("empty fs: Bfree %d Bavail %d, want Blocks %d", s.Bfree, s.Bavail, s.Blocks)
	}
	if s.Files != inodes || s.Ffree != inodes-1 {
		t.Errorf("Files %d Ffree %d, want %d and %d (the root uses one)", s.Files, s.Ffree, inodes, inodes-1)
	}
	if s.Namelen != 255 {
		t.Errorf("Namelen %d, want 255", s.Namelen)
	}
	bs := uint64(s.Bsize)

	p := filepath.Join(mnt, "f")
	fd := openFd(t, p, unix.O_CREAT|unix.O_RDWR, 0o644)
	defer func() {
		if fd >= 0 {
			closeFd(fd)
		}
	}()
	if s2 := statfs(t, mnt); s2.Ffree != inodes-2 {
		t.Errorf("after create: Ffree %d, want %d", s2.Ffree, inodes-2)
	}
	pwriteAll(t, fd, pattern(1<<20, 1), 0)
	s2 := statfs(t, mnt)
	if s.Bfree-s2.Bfree != (1<<20)/bs || s2.Bavail != s2.Bfree {
		t.Errorf("after writing 1 MiB: Bfree %d -> %d (Bavail %d), want a drop of %d", s.Bfree, s2.Bfree, s2.Bavail, (1<<20)/bs)
	}
	// A hole costs nothing: truncating far up, even past size=, is allowed.
	noErr(t, unix.Ftruncate(fd, 100<<20), "ftruncate past size=")
	if s3 := statfs(t, mnt); s3.Bfree != s2.Bfree {
		t.Errorf("ftruncate up changed Bfree %d -> %d", s2.Bfree, s3.Bfree)
	}
	pwriteAll(t, fd, []byte("x"), 50<<20)
	if s3 := statfs(t, mnt); s2.Bfree-s3.Bfree != max(page/bs, 1) {
		t.Errorf("one byte in a hole: Bfree %d -> %d, want a drop of one page", s2.Bfree, s3.Bfree)
	}
	noErr(t, os.Mkdir(filepath.Join(mnt, "d"), 0o755), "mkdir")
	noErr(t, os.Symlink("f", filepath.Join(mnt, "l")), "symlink")
	if s3 := statfs(t, mnt); s3.Ffree != inodes-4 {
		t.Errorf("after mkdir and symlink: Ffree %d, want %d", s3.Ffree, inodes-4)
	}
	// Unlink: everything comes back after the close.
	noErr(t, unix.Unlink(p), "unlink")
	closeFd(fd)
	fd = -1
	noErr(t, unix.Rmdir(filepath.Join(mnt, "d")), "rmdir")
	noErr(t, unix.Unlink(filepath.Join(mnt, "l")), "unlink")
	if !eventually(5*time.Second, func() bool {
		s3 := statfs(t, mnt)
		return s3.Bfree == s.Blocks && s3.Ffree == inodes-1
	}) {
		s3 := statfs(t, mnt)
		t.Errorf("after removing everything: Bfree %d Ffree %d, want %d and %d", s3.Bfree, s3.Ffree, s.Blocks, inodes-1)
	}
	// statfs works on any path in the mount, and through fstatfs.
	writeFile(t, filepath.Join(mnt, "g"), nil)
	dfd := openFd(t, mnt, unix.O_RDONLY, 0)
	var fs unix.Statfs_t
	noErr(t, unix.Fstatfs(dfd, &fs), "fstatfs")
	closeFd(dfd)
	if fs.Blocks != s.Blocks || fs.Files != s.Files {
		t.Errorf("fstatfs disagrees with statfs")
	}
}

// TestENOSPCData: writing past size= fails with ENOSPC (possibly after a
// short write); nothing acknowledged is lost; overwriting allocated data still
// works; freeing space makes writes work again.
func TestENOSPCData(t *testing.T) {
	t.Parallel()
	const size = 4 << 20
	mnt, _, st := mountFS(t, withSize(size))
	a := filepath.Join(mnt, "a")
	aData := pattern(1<<20, 2)
	writeFile(t, a, aData)

	b := filepath.Join(mnt, "b")
	fd := openFd(t, b, unix.O_CREAT|unix.O_WRONLY, 0o644)
	defer closeFd(fd)
	chunk := pattern(192<<10, 3) // does not divide the free space
	var acked []byte
	var lastErr error
	for i := 0; i < 100; i++ {
		n, err := unix.Write(fd, chunk)
		if n > 0 {
			acked = append(acked, chunk[:n]...)
		}
		if err != nil {
			lastErr = err
			break
		}
		if n < len(chunk) {
			// A short write: the next one must fail with ENOSPC.
			_, err := unix.Write(fd, chunk)
			lastErr = err
			if err == nil {
				t.Errorf("write after a short write succeeded")
			}
			break
		}
	}
	wantErrno(t, lastErr, unix.ENOSPC, "writing past size=")
	if len(acked) > size-len(aData) {
		t.Errorf("%d bytes acknowledged, more than the %d free", len(acked), size-len(aData))
	}
	if len(acked) < size-len(aData)-(256<<10) {
		t.Errorf("only %d bytes acknowledged of %d free", len(acked), size-len(aData))
	}
	if s := statfs(t, mnt); s.Bfree*uint64(s.Bsize) >= uint64(len(chunk)) {
		t.Errorf("statfs Bfree %d blocks after ENOSPC", s.Bfree)
	}
	if st != nil && !passthroughMode { // passthrough: the store's tmpfs has the limit
		if s := st.Stats(); s.Used > s.Limit || s.Limit != size {
			t.Errorf("store stats %+v: Used beyond Limit, or Limit not size=", s)
		}
	}
	// Other writes fail too; creating files (no data) works.
	c := filepath.Join(mnt, "c")
	writeFile(t, c, nil)
	err := os.WriteFile(c, chunk, 0o644)
	wantErrno(t, unwrapErrno(err), unix.ENOSPC, "writing a new file when full")
	cfd := openFd(t, c, unix.O_RDWR, 0)
	wantErrno(t, unix.Fallocate(cfd, 0, 0, 1<<20), unix.ENOSPC, "fallocate when full")
	if s := fstat(t, cfd); s.Size > int64(len(chunk)) {
		t.Errorf("failed fallocate left size %d", s.Size)
	}
	closeFd(cfd)
	// copy_file_range into new space fails the same way (possibly after a
	// short copy).
	src := openFd(t, a, unix.O_RDONLY, 0)
	dst := openFd(t, c, unix.O_WRONLY, 0)
	roff, woff := int64(0), int64(0)
	n, err := unix.CopyFileRange(src, &roff, dst, &woff, 1<<20, 0)
	if err == nil && n > 0 {
		n2, err2 := unix.CopyFileRange(src, &roff, dst, &woff, 1<<20-n, 0)
		if err2 == nil {
			t.Errorf("copy_file_range when full: %d then %d bytes, no error", n, n2)
		}
		err = err2
	}
	wantErrno(t, err, unix.ENOSPC, "copy_file_range when full")
	closeFd(src)
	closeFd(dst)
	noErr(t, unix.Truncate(c, 0), "truncate")
	// A byte in a hole needs a page: ENOSPC too.
	sp := openFd(t, filepath.Join(mnt, "sparse"), unix.O_CREAT|unix.O_RDWR, 0o644)
	noErr(t, unix.Ftruncate(sp, 1<<20), "ftruncate a sparse file when full")
	_, err = unix.Pwrite(sp, []byte("x"), 512<<10)
	wantErrno(t, err, unix.ENOSPC, "one byte into a hole when full")
	closeFd(sp)
	noErr(t, unix.Unlink(filepath.Join(mnt, "sparse")), "unlink")
	// Overwriting allocated pages needs no space.
	over := bytes.Repeat([]byte{0x5a}, 8192)
	pwriteAll(t, fd, over, 4096)
	copy(acked[4096:], over)
	// Nothing acknowledged was lost.
	if got := readFile(t, a); !bytes.Equal(got, aData) {
		t.Errorf("file a changed, differs at %d", firstDiff(got, aData))
	}
	got := readFile(t, b)
	if !bytes.Equal(got, acked) {
		t.Errorf("file b: %d bytes, %d acknowledged, differs at %d", len(got), len(acked), firstDiff(got, acked))
	}
	// Free space and write again.
	noErr(t, unix.Unlink(a), "unlink a")
	if !eventually(5*time.Second, func() bool { return statfs(t, mnt).Bfree*uint64(statfs(t, mnt).Bsize) >= 1<<20 }) {
		t.Fatalf("space not freed by unlink: Bfree %d", statfs(t, mnt).Bfree)
	}
	more := pattern(512<<10, 4)
	n, err = unix.Write(fd, more)
	if err != nil || n != len(more) {
		t.Errorf("write after freeing space: %d, %v", n, errString(err))
	}
	acked = append(acked, more[:max(n, 0)]...)
	if got := readFile(t, b); !bytes.Equal(got, acked) {
		t.Errorf("file b after more writes: differs at %d", firstDiff(got, acked))
	}
	// Truncating b frees its space as well.
	noErr(t, unix.Ftruncate(fd, 0), "ftruncate")
	if !eventually(5*time.Second, func() bool { s := statfs(t, mnt); return s.Bfree == s.Blocks }) {
		t.Errorf("space not freed by truncate: Bfree %d of %d", statfs(t, mnt).Bfree, statfs(t, mnt).Blocks)
	}
	writeFile(t, filepath.Join(mnt, "d"), pattern(3<<20, 5))
	if st != nil {
		if s := st.Stats(); s.Used != 3<<20 {
			t.Errorf("store Used %d with one 3 MiB file, want %d", s.Used, 3<<20)
		}
	}
}

// TestENOSPCInodes: past inodes=, create, mkdir, symlink, mknod and O_TMPFILE
// fail with ENOSPC; rename still works; unlink makes room.
func TestENOSPCInodes(t *testing.T) {
	t.Parallel()
	const inodes = 10
	mnt, _, _ := mountFS(t, withInodes(inodes))
	j := func(s string) string { return filepath.Join(mnt, s) }
	created := 0
	var err error
	for i := 0; i < 2*inodes; i++ {
		var fd int
		fd, err = unix.Open(j(fmt.Sprintf("f%d", i)), unix.O_CREAT|unix.O_EXCL|unix.O_WRONLY|unix.O_CLOEXEC, 0o644)
		if err != nil {
			break
		}
		closeFd(fd)
		created++
	}
	wantErrno(t, err, unix.ENOSPC, "create past inodes=")
	if created != inodes-1 {
		t.Errorf("created %d files with inodes=%d, want %d (the root is one)", created, inodes, inodes-1)
	}
	if s := statfs(t, mnt); s.Ffree != 0 {
		t.Errorf("statfs Ffree %d when full", s.Ffree)
	}
	wantErrno(t, unix.Mkdir(j("d"), 0o755), unix.ENOSPC, "mkdir when full")
	wantErrno(t, unix.Symlink("x", j("s")), unix.ENOSPC, "symlink when full")
	wantErrno(t, unix.Mkfifo(j("p"), 0o644), unix.ENOSPC, "mkfifo when full")
	wantErrno(t, unix.Mknod(j("n"), unix.S_IFREG|0o644, 0), unix.ENOSPC, "mknod when full")
	_, err = unix.Open(mnt, unix.O_TMPFILE|unix.O_RDWR, 0o600)
	wantErrno(t, err, unix.ENOSPC, "O_TMPFILE when full")
	for _, n := range []string{"d", "s", "p", "n"} {
		if _, err := os.Lstat(j(n)); !os.IsNotExist(err) {
			t.Errorf("%s exists after ENOSPC: %v", n, err)
		}
	}
	// Data still fits, renames need no inode.
	writeFile(t, j("f0"), []byte("data"))
	noErr(t, unix.Rename(j("f0"), j("renamed")), "rename when full")
	noErr(t, unix.Rename(j("renamed"), j("f1")), "rename over when full")
	// Now there is one free: mkdir works, then nothing again.
	if !eventually(5*time.Second, func() bool { return statfs(t, mnt).Ffree == 1 }) {
		t.Errorf("Ffree %d after a file was replaced, want 1", statfs(t, mnt).Ffree)
	}
	noErr(t, unix.Mkdir(j("d"), 0o755), "mkdir after freeing an inode")
	wantErrno(t, unix.Symlink("x", j("s")), unix.ENOSPC, "symlink when full again")
	noErr(t, unix.Unlink(j("f2")), "unlink")
	if !eventually(5*time.Second, func() bool { return statfs(t, mnt).Ffree == 1 }) {
		t.Errorf("Ffree %d after unlink, want 1", statfs(t, mnt).Ffree)
	}
	noErr(t, unix.Symlink("x", j("s")), "symlink after unlink")
}

// TestInodeLimitCountsLinks: tmpfs charges every hard link against inodes=
// as if it were an inode (it bounds the memory of names), so link fails
// with ENOSPC when the inodes are used up.
func TestInodeLimitCountsLinks(t *testing.T) {
	t.Parallel()
	const inodes = 5
	mnt, _, _ := mountFS(t, withInodes(inodes))
	j := func(s string) string { return filepath.Join(mnt, s) }
	writeFile(t, j("f"), nil)
	if s := statfs(t, mnt); s.Ffree != inodes-2 {
		t.Fatalf("Ffree %d, want %d", s.Ffree, inodes-2)
	}
	noErr(t, os.Link(j("f"), j("l1")), "link")
	if s := statfs(t, mnt); s.Ffree != inodes-3 {
		t.Errorf("after link: Ffree %d, want %d (tmpfs counts links)", s.Ffree, inodes-3)
	}
	noErr(t, os.Link(j("f"), j("l2")), "link")
	noErr(t, os.Link(j("f"), j("l3")), "link")
	wantErrno(t, os.Link(j("f"), j("l4")), unix.ENOSPC, "link when inodes= is used up")
	noErr(t, unix.Unlink(j("l1")), "unlink")
	if s := statfs(t, mnt); s.Ffree != 1 {
		t.Errorf("after unlinking a link: Ffree %d, want 1", s.Ffree)
	}
}
