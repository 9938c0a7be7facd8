package tests

// FUSE passthrough: the kernel reads, writes and maps an open file's store
// file itself. These tests ask for it on every run; MMAPFS_TEST_PASSTHROUGH=1
// runs the whole suite with it.

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// TestPassthroughAttributes: sizes and times follow what the kernel writes
// into the store file, while the file is open and after it is closed;
// mappings, reads and the server's own operations (truncate, punch,
// copy_file_range) see the same bytes.
func TestPassthroughAttributes(t *testing.T) {
	if tmpfsMode {
		t.Skip("mmapfs only")
	}
	needRoot(t)
	t.Parallel()
	mnt, _, _ := mountFS(t, withPassthrough())
	p := filepath.Join(mnt, "f")
	fd := openFd(t, p, unix.O_CREAT|unix.O_RDWR, 0o644) // closed below
	st0 := fstat(t, fd)
	time.Sleep(10 * time.Millisecond)

	data := pattern(3<<20+123, 1)
	pwriteAll(t, fd, data, 0)
	st := lstat(t, p)
	if st.Size != int64(len(data)) || st.Blocks != (int64(len(data))+4095)/4096*8 {
		t.Errorf("after a write: size %d blocks %d, want %d and %d", st.Size, st.Blocks, len(data), (len(data)+4095)/4096*8)
	}
	if !timespecAfter(st.Mtim, st0.Mtim) || st.Ctim != st.Mtim {
		t.Errorf("after a write: mtime %v ctime %v, before %v", st.Mtim, st.Ctim, st0.Mtim)
	}

	// A mapping (in a child process: see Development in the README)
	// stores bytes that read then sees.
	if res := runHelper(t, helperBinary(t), hop("check", "pt-mmap-store", p)); res[0] != "ok" {
		t.Errorf("store through a mapping: %s", res[0])
	}
	got := make([]byte, 19)
	if _, err := unix.Pread(fd, got, 8192); err != nil || string(got) != "through the mapping" {
		t.Errorf("pread after a store through the mapping: %q, %v", got, err)
	}
	copy(data[8192:], "through the mapping")

	// The server truncates and punches the store file.
	noErr(t, unix.Ftruncate(fd, 2<<20), "ftruncate")
	data = data[:2<<20]
	noErr(t, unix.Fallocate(fd, unix.FALLOC_FL_PUNCH_HOLE|unix.FALLOC_FL_KEEP_SIZE, 1<<20, 1<<20), "punch")
	clear(data[1<<20:])
	if off, err := unix.Seek(fd, 1<<20, unix.SEEK_DATA); err == nil {
		t.Errorf("SEEK_DATA in the punched tail = %d, want ENXIO", off)
	}
	st = fstat(t, fd)
	if st.Size != 2<<20 || st.Blocks != 1<<20/512 {
		t.Errorf("after truncate and punch: size %d blocks %d, want %d and %d", st.Size, st.Blocks, 2<<20, 1<<20/512)
	}

	// copy_file_range both ways between a file closed (served from the
	// mappings) and one open (lent).
	q := filepath.Join(mnt, "g")
	other := pattern(1<<20, 2)
	writeFile(t, q, other)
	qfd := openFd(t, q, unix.O_RDWR, 0)
	offIn, offOut := int64(0), int64(2<<20)
	if n, err := unix.CopyFileRange(qfd, &offIn, fd, &offOut, 1<<20, 0); err != nil || n != 1<<20 {
		t.Errorf("copy_file_range into the open file: %d, %v", n, err)
	}
	data = append(data, other...)
	closeFd(qfd)
	closeFd(fd)
	if got := readFile(t, p); !bytes.Equal(got, data) {
		t.Errorf("file after close: %d bytes, differs at %d", len(got), firstDiff(got, data))
	}
	st2 := lstat(t, p)
	if st2.Size != int64(len(data)) || st2.Mtim != lstat(t, p).Mtim {
		t.Errorf("after close: size %d, want %d", st2.Size, len(data))
	}
	// Attributes stay the same across the end of the loan.
	time.Sleep(10 * time.Millisecond)
	if st3 := lstat(t, p); st3.Mtim != st2.Mtim || st3.Size != st2.Size || st3.Blocks != st2.Blocks {
		t.Errorf("attributes changed with nothing done: %+v then %+v", st2, st3)
	}
}

// TestPassthroughSetID: a file with a set-id bit is not lent, so that a
// write by another user still drops the bit (the server sees the write).
func TestPassthroughSetID(t *testing.T) {
	if tmpfsMode {
		t.Skip("mmapfs only")
	}
	needRoot(t)
	t.Parallel()
	mnt, _, _ := mountFS(t, withPassthrough(), withAllowOther())
	p := filepath.Join(mnt, "suid")
	writeFile(t, p, []byte("x"))
	noErr(t, os.Chmod(p, 0o4777), "chmod")
	if res := runAs(t, helperBinary(t), 65534, 65534, hop("write", p, "y")); res[0] != "ok" {
		t.Fatalf("write as another user: %s", res[0])
	}
	if st := lstat(t, p); st.Mode&unix.S_ISUID != 0 {
		t.Errorf("mode %o after a write by another user: S_ISUID kept", st.Mode)
	}

	// A file open with passthrough gets a set-id bit, and is opened
	// again: go-fuse passes the new open through as well, and the data
	// stays right when the first one closes before it (the store is
	// checked at unmount).
	q := filepath.Join(mnt, "later")
	fd1 := openFd(t, q, unix.O_CREAT|unix.O_RDWR, 0o755)
	pwriteAll(t, fd1, []byte("first"), 0)
	noErr(t, os.Chmod(q, 0o4755), "chmod")
	fd2 := openFd(t, q, unix.O_RDWR, 0)
	pwriteAll(t, fd2, []byte("second"), 4096)
	closeFd(fd1)
	time.Sleep(20 * time.Millisecond) // the RELEASE of fd1 is asynchronous
	pwriteAll(t, fd2, []byte("third"), 8192)
	closeFd(fd2)
	want := append(append(append([]byte("first"), make([]byte, 4091)...), append([]byte("second"), make([]byte, 4090)...)...), "third"...)
	if got := readFile(t, q); !bytes.Equal(got, want) {
		t.Errorf("file written through two opens: %d bytes, differs at %d", len(got), firstDiff(got, want))
	}
	if st := lstat(t, q); st.Blocks != 3*8 {
		t.Errorf("blocks %d, want 24", st.Blocks)
	}
}

// TestPassthroughBinary: `mmapfs mount` uses passthrough by default where
// the kernel has it. With size=, the memory store is a tmpfs of its own,
// which keeps the limit for the kernel's writes; statfs reports it; the
// tmpfs goes at unmount, and a killed server's tmpfs goes when the next
// server starts on the same memdir.
func TestPassthroughBinary(t *testing.T) {
	needRoot(t)
	t.Parallel()
	p, mnt, memdir := binMount(t, "--size", "8M")
	binWaitOutput(t, p, "mounted ")
	if !strings.Contains(p.output.String(), "passthrough on") {
		t.Fatalf("no passthrough by default:\n%s", p.output)
	}
	if n := binTmpfsUnder(t, memdir); n != 1 {
		t.Errorf("%d tmpfs mounted under the memdir, want 1", n)
	}
	var sfs unix.Statfs_t
	noErr(t, unix.Statfs(mnt, &sfs), "statfs")
	if sfs.Blocks*uint64(sfs.Bsize) != 8<<20 {
		t.Errorf("statfs: %d blocks of %d, want 8 MiB", sfs.Blocks, sfs.Bsize)
	}
	f, err := os.Create(filepath.Join(mnt, "big"))
	noErr(t, err, "create")
	chunk := make([]byte, 1<<20)
	var werr error
	written := 0
	for i := 0; i < 12 && werr == nil; i++ {
		var n int
		n, werr = f.Write(chunk)
		written += n
	}
	f.Close()
	if !errors.Is(werr, unix.ENOSPC) || written < 7<<20 || written > 8<<20 {
		t.Errorf("writing 12 MiB onto size=8M: %d bytes, then %v; want ENOSPC near 8 MiB", written, werr)
	}
	noErr(t, os.Remove(filepath.Join(mnt, "big")), "remove")
	binReadWrite(t, mnt)

	// Killed, the server leaves its tmpfs; the next one removes it.
	noErr(t, p.cmd.Process.Kill(), "SIGKILL")
	<-p.done
	noErr(t, binRun(t, "fusermount3", "-u", "-z", mnt), "fusermount3 -u -z")
	if n := binTmpfsUnder(t, memdir); n != 1 {
		t.Errorf("%d tmpfs under the memdir after SIGKILL, want the 1 left behind", n)
	}
	p2 := binStart(t, nil, "mount", "--memdir", memdir, "--size", "8M", mnt)
	binWaitMounted(t, p2, mnt)
	binWaitOutput(t, p2, "mounted ")
	if !strings.Contains(p2.output.String(), "removed the memory store of a server that is gone") {
		t.Errorf("the abandoned store was not removed:\n%s", p2.output)
	}
	if n := binTmpfsUnder(t, memdir); n != 1 {
		t.Errorf("%d tmpfs under the memdir with one server, want 1", n)
	}
	p2.binSignal(syscall.SIGTERM)
	if code := p2.binWait(); code != 0 {
		t.Fatalf("exit status %d; output:\n%s", code, p2.output)
	}
	binCheckGone(t, mnt, memdir)
	if n := binTmpfsUnder(t, memdir); n != 0 {
		t.Errorf("%d tmpfs left under the memdir after unmount", n)
	}
}

// TestPassthroughBinaryModes: --passthrough=off serves through the server
// with no tmpfs of its own; --store uses passthrough by default, except
// with size=.
func TestPassthroughBinaryModes(t *testing.T) {
	needRoot(t)
	t.Parallel()
	p, mnt, memdir := binMount(t, "--size", "8M", "--passthrough=off")
	binWaitOutput(t, p, "mounted ")
	if strings.Contains(p.output.String(), "passthrough") {
		t.Errorf("--passthrough=off logs about passthrough:\n%s", p.output)
	}
	if n := binTmpfsUnder(t, memdir); n != 0 {
		t.Errorf("--passthrough=off: %d tmpfs under the memdir, want 0", n)
	}
	binReadWrite(t, mnt)
	p.binSignal(syscall.SIGTERM)
	p.binWait()

	store := filepath.Join(t.TempDir(), "store")
	p2 := binStart(t, nil, "mount", "--store", store, "--size", "64M", mnt)
	binWaitMounted(t, p2, mnt)
	binWaitOutput(t, p2, "mounted ")
	if !strings.Contains(p2.output.String(), "passthrough off: with --store and size=") {
		t.Errorf("--store --size: no word on passthrough being off:\n%s", p2.output)
	}
	p2.binSignal(syscall.SIGTERM)
	p2.binWait()

	p3 := binStart(t, nil, "mount", "--store", store, mnt)
	binWaitMounted(t, p3, mnt)
	binWaitOutput(t, p3, "mounted ")
	if !strings.Contains(p3.output.String(), "passthrough on") {
		t.Errorf("--store: passthrough not on by default:\n%s", p3.output)
	}
	binReadWrite(t, mnt) // the file of the first mount is rewritten, through the kernel
	p3.binSignal(syscall.SIGTERM)
	if code := p3.binWait(); code != 0 {
		t.Fatalf("exit status %d; output:\n%s", code, p3.output)
	}
	p4 := binStart(t, nil, "mount", "--store", store, "--passthrough=off", mnt)
	binWaitMounted(t, p4, mnt)
	binReadWrite(t, mnt)
	p4.binSignal(syscall.SIGTERM)
	p4.binWait()

	err := binRun(t, binBuild(t), "mount", "--store", store, "--passthrough=on", "--size", "1M", mnt)
	if err == nil || !strings.Contains(err.Error(), "exclude each other") {
		t.Errorf("--store --passthrough=on --size: %v", err)
	}
}

// binTmpfsUnder counts the tmpfs mounts under dir.
func binTmpfsUnder(t *testing.T, dir string) int {
	t.Helper()
	b, err := os.ReadFile("/proc/self/mounts")
	noErr(t, err, "read /proc/self/mounts")
	n := 0
	for _, line := range strings.Split(string(b), "\n") {
		f := strings.Fields(line)
		if len(f) > 2 && f[2] == "tmpfs" && strings.HasPrefix(f[1], dir+"/") {
			n++
		}
	}
	return n
}

func init() { mmapChecks["pt-mmap-store"] = ptMmapStoreCheck }

// ptMmapStoreCheck maps the file path (at least 12 KiB) shared and stores
// "through the mapping" at 8192.
func ptMmapStoreCheck(path string) []string {
	fd, err := unix.Open(path, unix.O_RDWR|unix.O_CLOEXEC, 0)
	if err != nil {
		return []string{"open: " + err.Error()}
	}
	defer unix.Close(fd)
	m, err := unix.Mmap(fd, 0, 3*page, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_SHARED)
	if err != nil {
		return []string{"mmap: " + err.Error()}
	}
	var p problems
	p.guard("store", func() { copy(m[2*page:], "through the mapping") })
	if err := unix.Munmap(m); err != nil {
		p.add("munmap: %v", err)
	}
	return p
}

// binWaitOutput waits until the server has written s.
func binWaitOutput(t *testing.T, p *binProc, s string) {
	t.Helper()
	deadline := time.Now().Add(binExitTimeout)
	for !strings.Contains(p.output.String(), s) {
		if time.Now().After(deadline) {
			t.Fatalf("the server did not write %q in %v:\n%s", s, binExitTimeout, p.output)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// TestPassthroughEarlyOpen: files opened the moment the mount appears,
// while the server is still finding out whether the kernel takes its store
// files as backing files, are served as every later open of them is. (An
// early open served without passthrough, then a passthrough open of the
// same file while it is still open, fails with EIO in the kernel.)
func TestPassthroughEarlyOpen(t *testing.T) {
	needRoot(t)
	t.Parallel()
	for round := 0; round < 5; round++ {
		mnt := binMountpoint(t)
		memdir := binMemDir(t)
		p := binStart(t, nil, "mount", "--memdir", memdir, mnt)
		deadline := time.Now().Add(binMountTimeout)
		for {
			var sfs unix.Statfs_t
			if err := unix.Statfs(mnt, &sfs); err == nil && sfs.Type == unix.FUSE_SUPER_MAGIC {
				break
			}
			if !p.binRunning() || time.Now().After(deadline) {
				t.Fatalf("round %d: not mounted; output:\n%s", round, p.output)
			}
			runtime.Gosched()
		}
		path := filepath.Join(mnt, "f")
		first := openFd(t, path, unix.O_CREAT|unix.O_RDWR, 0o644) // closed below
		pwriteAll(t, first, []byte("early"), 0)
		for i := 0; i < 3; i++ {
			fd, err := unix.Open(path, unix.O_RDONLY, 0)
			if err != nil {
				closeFd(first)
				t.Fatalf("round %d: open %d while the first is open: %v; output:\n%s", round, i, err, p.output)
			}
			buf := make([]byte, 16)
			n, err := unix.Pread(fd, buf, 0)
			closeFd(fd)
			if err != nil || string(buf[:n]) != "early" {
				t.Errorf("round %d: read %q, %v", round, buf[:n], err)
			}
		}
		closeFd(first)
		if !strings.Contains(p.output.String(), "passthrough on") {
			binWaitOutput(t, p, "passthrough on")
		}
		noErr(t, binUnmount(t, mnt), "unmount")
		if code := p.binWait(); code != 0 {
			t.Fatalf("exit status %d; output:\n%s", code, p.output)
		}
	}
}

// TestPassthroughCacheAfterLend: a file the kernel caches (a set-id file
// is not passed through) sees what was written through passthrough while
// its cache sat idle: the kernel's page cache of the earlier open is not
// kept.
func TestPassthroughCacheAfterLend(t *testing.T) {
	if tmpfsMode {
		t.Skip("mmapfs only")
	}
	needRoot(t)
	t.Parallel()
	mnt, _, _ := mountFS(t, withPassthrough())
	p := filepath.Join(mnt, "f")
	writeFile(t, p, bytes.Repeat([]byte("a"), 8192))
	for round, c := range []byte("bcd") {
		// Cached: read it all, so that the kernel holds its pages.
		noErr(t, os.Chmod(p, 0o4755), "chmod u+s")
		if got := readFile(t, p); len(got) != 8192 || got[0] != c-1 || got[8191] != c-1 {
			t.Fatalf("round %d: cached open reads %q...", round, got[:min(len(got), 8)])
		}
		// Passed through: rewrite it.
		noErr(t, os.Chmod(p, 0o755), "chmod u-s")
		fd := openFd(t, p, unix.O_RDWR, 0)
		pwriteAll(t, fd, bytes.Repeat([]byte{c}, 8192), 0)
		closeFd(fd)
		time.Sleep(20 * time.Millisecond) // the RELEASE is asynchronous
	}
	noErr(t, os.Chmod(p, 0o4755), "chmod u+s")
	if got := readFile(t, p); got[0] != 'd' || got[8191] != 'd' {
		t.Errorf("cached open after a passthrough write reads %q...", got[:8])
	}
}

// needPassthrough skips a test that needs FUSE passthrough where the
// kernel cannot give it: it needs root and Linux 6.9 or later.
func needPassthrough(t testing.TB) {
	t.Helper()
	needRoot(t)
	var u unix.Utsname
	noErr(t, unix.Uname(&u), "uname")
	var major, minor int
	fmt.Sscanf(unix.ByteSliceToString(u.Release[:]), "%d.%d", &major, &minor)
	if major < 6 || major == 6 && minor < 9 {
		t.Skipf("FUSE passthrough needs Linux 6.9 or later (this is %d.%d)", major, minor)
	}
}
