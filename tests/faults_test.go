package tests

// Faults: the store damaged or exhausted behind the server's back, the
// server short of descriptors or of mappings, the server killed. Each must
// give programs an error (ENOSPC, EIO, ENOTCONN) and the log a line, never
// crash or hang the server, and lose nothing that was acknowledged.
//
// A mount point made busy at unmount is TestBinaryBusyUnmount (and
// TestBinarySecondSignalForces) in binary_test.go.

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"mmapfs/mapstore"
)

func init() {
	mmapChecks["flt-mmap-fill"] = fltMmapFillCheck
}

// fltMounted is an mmapfs mount on a store directory the test chooses.
type fltMounted struct {
	mnt, storeDir string
	st            *mapstore.Store
	log           *testLogSink
}

// fltMount mounts mmapfs with its store in storeParent/store and the
// window and descriptor limits of opts (the shared mount helper does the
// rest, cleanup included).
func fltMount(t *testing.T, storeParent string, opts mapstore.Options) *fltMounted {
	t.Helper()
	if tmpfsMode {
		t.Skip("damages the store of mmapfs; skipped in tmpfs mode")
	}
	tm := mountTest(t, withStoreIn(storeParent),
		withSmallCaches(opts.WindowSize, opts.MaxWindows, opts.MaxFDs))
	return &fltMounted{mnt: tm.dir, storeDir: tm.storeDir, st: tm.st, log: tm.log}
}

// fltStoreFiles returns the store files (16 hex digits) of dir and their
// sizes.
func fltStoreFiles(t testing.TB, dir string) map[string]int64 {
	t.Helper()
	ents, err := os.ReadDir(dir)
	noErr(t, err, "read the store directory")
	re := regexp.MustCompile(`^[0-9a-f]{16}$`)
	files := map[string]int64{}
	for _, e := range ents {
		if !re.MatchString(e.Name()) {
			continue
		}
		fi, err := e.Info()
		if err != nil {
			continue
		}
		files[e.Name()] = fi.Size()
	}
	return files
}

// fltNewStoreFile runs write (which makes one new file on the mount) and
// returns the path of the one store file it added.
func fltNewStoreFile(t testing.TB, dir string, write func()) string {
	t.Helper()
	before := fltStoreFiles(t, dir)
	write()
	var added []string
	for n := range fltStoreFiles(t, dir) {
		if _, ok := before[n]; !ok {
			added = append(added, n)
		}
	}
	if len(added) != 1 {
		t.Fatalf("store files added: %q, want one", added)
	}
	return filepath.Join(dir, added[0])
}

// fltDropCache drops the kernel's cached pages of path on the mount, so
// that reads reach the server.
func fltDropCache(t testing.TB, path string) {
	t.Helper()
	fd, err := unix.Open(path, unix.O_RDONLY|unix.O_CLOEXEC, 0)
	noErr(t, err, "open %s", path)
	defer unix.Close(fd)
	noErr(t, unix.Fadvise(fd, 0, 0, unix.FADV_DONTNEED), "fadvise DONTNEED")
}

// fltPread reads len(b) bytes at off with a fresh descriptor, after
// dropping the cached pages.
func fltPread(t testing.TB, path string, b []byte, off int64) (int, error) {
	t.Helper()
	fd, err := unix.Open(path, unix.O_RDONLY|unix.O_CLOEXEC, 0)
	noErr(t, err, "open %s", path)
	defer unix.Close(fd)
	noErr(t, unix.Fadvise(fd, 0, 0, unix.FADV_DONTNEED), "fadvise DONTNEED")
	got := 0
	for got < len(b) {
		n, err := unix.Pread(fd, b[got:], off+int64(got))
		if err != nil {
			return got, err
		}
		if n == 0 {
			break
		}
		got += n
	}
	return got, nil
}

// fltMmapFillCheck (in the helper process): map a file of dir shared and
// writable, store into 16 MiB of it, msync, munmap, close. It reports what
// happened as "fault=BOOL msync=ERR munmap=ERR close=ERR stored=N".
func fltMmapFillCheck(dir string) []string {
	const size = 16 << 20
	path := filepath.Join(dir, "mapped")
	fd, err := unix.Open(path, unix.O_RDWR|unix.O_CREAT, 0o644)
	if err != nil {
		return []string{"open: " + err.Error()}
	}
	if err := unix.Ftruncate(fd, size); err != nil {
		return []string{"ftruncate: " + err.Error()}
	}
	m, err := unix.Mmap(fd, 0, size, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_SHARED)
	if err != nil {
		return []string{"mmap: " + err.Error()}
	}
	var p problems
	stored := 0
	p.guard("store", func() {
		for off := 0; off < size; off += page {
			copy(m[off:off+page], bytes.Repeat([]byte{0x5a}, page))
			stored = off + page
		}
	})
	res := fmt.Sprintf("fault=%v msync=%s", len(p) > 0, errResult(unix.Msync(m, unix.MS_SYNC)))
	res += " msync2=" + errResult(unix.Msync(m, unix.MS_SYNC))
	res += " munmap=" + errResult(unix.Munmap(m))
	res += " fsync=" + errResult(unix.Fsync(fd))
	res += " close=" + errResult(unix.Close(fd))
	res += fmt.Sprintf(" stored=%d", stored)
	return []string{res}
}

// TestFaultMmapStoreFull: a program stores through a shared writable
// mapping of a file on the mount until the tmpfs under the store is full.
// The stores land in the kernel's page cache of the FUSE file; writeback
// fails with ENOSPC, which msync reports. No SIGBUS in the program, the
// server survives, other files are intact, and freeing space makes room.
func TestFaultMmapStoreFull(t *testing.T) {
	if tmpfsMode {
		t.Skip("tests the store under mmapfs")
	}
	needRoot(t)
	t.Parallel()
	storeFS := t.TempDir()
	noErr(t, unix.Mount("tmpfs", storeFS, "tmpfs", 0, "size=4m"), "mount the store's tmpfs")
	t.Cleanup(func() { unix.Unmount(storeFS, unix.MNT_DETACH) })
	fm := fltMount(t, storeFS, mapstore.Options{})
	keep := pattern(256<<10, 3)
	writeFile(t, filepath.Join(fm.mnt, "keep"), keep)

	res := runHelper(t, helperBinary(t), hop("check", "flt-mmap-fill", fm.mnt))[0]
	t.Logf("helper storing 16 MiB through a mapping onto a 4 MiB store: %s", res)
	if passthroughMode {
		// The program maps the store file itself, and gets what a
		// program storing into a full tmpfs gets: SIGBUS.
		if !strings.Contains(res, "fault=true") {
			t.Errorf("no SIGBUS storing through a passthrough mapping onto a full store: %s", res)
		}
	} else if strings.Contains(res, "fault=true") {
		t.Errorf("the program got SIGBUS storing to its mapping: %s", res)
	}
	ms := regexp.MustCompile(`msync=(\S+)`).FindStringSubmatch(res)
	if !passthroughMode && (ms == nil || (ms[1] != "ENOSPC" && ms[1] != "EIO")) {
		t.Errorf("msync after the store filled up: %s, want ENOSPC or EIO", res)
	}
	// The store's filesystem running full is a fault of the host, unlike
	// size=: the administrator needs to hear of it (a warning: nothing is
	// broken, and the program was told). With passthrough the server
	// never sees the stores.
	if !passthroughMode && !fm.log.hasWarning("full") {
		t.Errorf("no warning logged when the store's filesystem ran full (%d lines logged)", fm.log.count())
	}

	// The server is up and the first file intact, also read from the store.
	got := make([]byte, len(keep))
	if n, err := fltPread(t, filepath.Join(fm.mnt, "keep"), got, 0); err != nil || n != len(keep) || !bytes.Equal(got, keep) {
		t.Errorf("first file after the store filled: %d bytes, %v, differs at %d", n, errString(err), firstDiff(got[:n], keep))
	}
	// What the mapped file holds is zeros or the stored bytes, nothing else.
	data, err := os.ReadFile(filepath.Join(fm.mnt, "mapped"))
	if err != nil {
		t.Errorf("read the mapped file: %v", errString(unwrapErrno(err)))
	}
	for i, c := range data {
		if c != 0 && c != 0x5a {
			t.Errorf("mapped file has byte %#x at %d", c, i)
			break
		}
	}
	noErr(t, os.Remove(filepath.Join(fm.mnt, "mapped")), "remove the mapped file")
	writeFile(t, filepath.Join(fm.mnt, "again"), pattern(1<<20, 9))
	if b := readFile(t, filepath.Join(fm.mnt, "again")); !bytes.Equal(b, pattern(1<<20, 9)) {
		t.Errorf("write after freeing space: read back differs")
	}
}

// TestFaultStoreTruncated: a store file cut short behind the server's back.
// Reads of the lost range are EIO with a log line, the range still there
// reads right, other files keep working, and the server lives on.
func TestFaultStoreTruncated(t *testing.T) {
	if passthroughMode {
		t.Skip("with passthrough the kernel reads the store file itself: a cut file reads short, as the file it is")
	}
	t.Parallel()
	fm := fltMount(t, fltShm(t), mapstore.Options{})
	victim := filepath.Join(fm.mnt, "victim")
	data := pattern(3<<20, 1)
	blob := fltNewStoreFile(t, fm.storeDir, func() { writeFile(t, victim, data) })
	other := pattern(1<<20, 2)
	writeFile(t, filepath.Join(fm.mnt, "other"), other)

	noErr(t, os.Truncate(blob, 1<<20), "truncate the store file")

	b := make([]byte, 64<<10)
	n, err := fltPread(t, victim, b, 0)
	if err != nil || !bytes.Equal(b[:n], data[:len(b)]) {
		t.Errorf("read of the range the store file still has: %d bytes, %v", n, errString(err))
	}
	_, err = fltPread(t, victim, b, 2<<20)
	wantErrno(t, err, unix.EIO, "read of the range cut from the store file")
	// The reply fails as go-fuse writes it from the mapping, which may
	// log the failure just after the kernel has woken the reader.
	for deadline := time.Now().Add(2 * time.Second); !fm.log.has() && time.Now().Before(deadline); {
		time.Sleep(10 * time.Millisecond)
	}
	if !fm.log.has() {
		t.Errorf("no error logged for the read of a truncated store file")
	}
	// A write into the cut range: an error, or it works and reads back.
	fd, err := unix.Open(victim, unix.O_WRONLY|unix.O_CLOEXEC, 0)
	noErr(t, err, "open victim")
	_, werr := unix.Pwrite(fd, []byte("rewritten"), 2<<20)
	unix.Close(fd)
	t.Logf("pwrite into the cut range: %s", errString(werr))
	if werr == nil {
		rb := make([]byte, 9)
		if n, err := fltPread(t, victim, rb, 2<<20); err != nil || string(rb[:n]) != "rewritten" {
			t.Errorf("a write into the cut range was acknowledged, but reads back %q, %v", rb[:n], errString(err))
		}
	} else if !errors.Is(werr, unix.EIO) && !errors.Is(werr, unix.ENOSPC) {
		t.Errorf("pwrite into the cut range: %v, want success, EIO or ENOSPC", errString(werr))
	}

	// Other files, old and new, and the namespace still work.
	got := make([]byte, len(other))
	if n, err := fltPread(t, filepath.Join(fm.mnt, "other"), got, 0); err != nil || n != len(other) || !bytes.Equal(got, other) {
		t.Errorf("other file after the damage: %d bytes, %v", n, errString(err))
	}
	writeFile(t, filepath.Join(fm.mnt, "new"), pattern(3<<20, 4))
	if n, err := fltPread(t, filepath.Join(fm.mnt, "new"), make([]byte, 3<<20), 0); err != nil || n != 3<<20 {
		t.Errorf("new file after the damage: %d bytes, %v", n, errString(err))
	}
	var st unix.Stat_t
	noErr(t, unix.Stat(victim, &st), "stat victim")
	if st.Size != int64(len(data)) {
		t.Errorf("victim size %d, want %d", st.Size, len(data))
	}
	noErr(t, os.Remove(victim), "remove the damaged file")
}

// TestFaultStoreDeleted: a store file unlinked behind the server's back.
// While the store still holds its descriptor or mapping, the data is still
// there (the inode lives on); once both were evicted, reopening fails and
// reads are EIO with a log line. Other files keep working.
func TestFaultStoreDeleted(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		name  string
		opts  mapstore.Options
		churn bool
	}{
		{"cached", mapstore.Options{}, false},
		{"evicted", mapstore.Options{WindowSize: 64 << 10, MaxWindows: 2, MaxFDs: 2}, true},
	} {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			fm := fltMount(t, fltShm(t), c.opts)
			victim := filepath.Join(fm.mnt, "victim")
			data := pattern(1<<20, 5)
			blob := fltNewStoreFile(t, fm.storeDir, func() { writeFile(t, victim, data) })
			noErr(t, os.Remove(blob), "unlink the store file")
			if c.churn {
				for i := 0; i < 8; i++ {
					p := filepath.Join(fm.mnt, fmt.Sprintf("churn%d", i))
					writeFile(t, p, pattern(256<<10, byte(i)))
					if n, err := fltPread(t, p, make([]byte, 256<<10), 0); err != nil || n != 256<<10 {
						t.Fatalf("churn file %d: %d bytes, %v", i, n, errString(err))
					}
				}
				// A read's windows stay pinned until go-fuse has
				// written the reply from them, which may be just after
				// the kernel woke the reader: the bound holds once
				// those replies are done.
				s := fm.st.Stats()
				for deadline := time.Now().Add(5 * time.Second); (s.FDs > 2 || s.Windows > 2) && time.Now().Before(deadline); s = fm.st.Stats() {
					time.Sleep(5 * time.Millisecond)
				}
				if s.FDs > 2 || s.Windows > 2 {
					t.Errorf("caches beyond bounds: %+v", s)
				}
			}
			got := make([]byte, len(data))
			n, err := fltPread(t, victim, got, 0)
			t.Logf("read of a file whose store file was unlinked (%s): %d bytes, %s", c.name, n, errString(err))
			if c.churn {
				wantErrno(t, err, unix.EIO, "read after the store file was unlinked and its descriptor and windows evicted")
				if !fm.log.has() {
					t.Errorf("no error logged for a store file that cannot be reopened")
				}
			} else if err != nil || n != len(data) || !bytes.Equal(got, data) {
				// The descriptor and windows are still there: the
				// unlinked inode still has the data.
				t.Errorf("read with the store file's descriptor still open: %d bytes, %v, differs at %d",
					n, errString(err), firstDiff(got[:n], data))
			}
			// Writing the damaged file: an error or success, never a crash.
			fd, err := unix.Open(victim, unix.O_WRONLY|unix.O_CLOEXEC, 0)
			noErr(t, err, "open victim")
			_, werr := unix.Pwrite(fd, []byte("x"), 0)
			unix.Close(fd)
			t.Logf("pwrite: %s", errString(werr))
			if werr != nil && !errors.Is(werr, unix.EIO) {
				t.Errorf("pwrite to a file whose store file is gone: %v, want success or EIO", errString(werr))
			}
			// Other files and the namespace still work.
			writeFile(t, filepath.Join(fm.mnt, "new"), pattern(300<<10, 6))
			if n, err := fltPread(t, filepath.Join(fm.mnt, "new"), make([]byte, 300<<10), 0); err != nil || n != 300<<10 {
				t.Errorf("new file after the damage: %d bytes, %v", n, errString(err))
			}
			if err := os.Remove(victim); err != nil {
				t.Logf("unlink of the damaged file: %v", err)
			}
			if _, err := os.Stat(victim); !os.IsNotExist(err) {
				t.Errorf("damaged file still there after unlink: %v", err)
			}
		})
	}
}

// fltShm returns a new directory on /dev/shm (or the test's temp dir),
// removed at the end.
func fltShm(t *testing.T) string {
	t.Helper()
	d, err := os.MkdirTemp("/dev/shm", "mmapfs-flt-")
	if err != nil {
		return t.TempDir()
	}
	t.Cleanup(func() { os.RemoveAll(d) })
	return d
}

// fltStart starts the program name with args as binStart starts mmapfs.
func fltStart(t *testing.T, name string, args ...string) *binProc {
	t.Helper()
	p := &binProc{t: t, output: &binBuffer{}, done: make(chan struct{})}
	p.cmd = exec.Command(name, args...)
	p.cmd.Stdout = p.output
	p.cmd.Stderr = p.output
	p.cmd.WaitDelay = 5 * time.Second
	noErr(t, p.cmd.Start(), "start %s", name)
	go func() {
		p.err = p.cmd.Wait()
		close(p.done)
	}()
	kill := time.AfterFunc(binRunTimeout, func() { p.cmd.Process.Kill() })
	t.Cleanup(func() {
		kill.Stop()
		select {
		case <-p.done:
			return
		default:
		}
		p.cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-p.done:
			return
		case <-time.After(3 * time.Second):
		}
		p.cmd.Process.Kill()
		select {
		case <-p.done:
		case <-time.After(binExitTimeout):
			t.Errorf("%s (pid %d) did not die", name, p.cmd.Process.Pid)
		}
	})
	return p
}

// TestFaultLowNofile: the server started with RLIMIT_NOFILE 64 (hard and
// soft, as `ulimit -n 64` sets it) serves 2000 files written and read back:
// the store bounds its descriptors.
func TestFaultLowNofile(t *testing.T) {
	bin := binBuild(t)
	t.Parallel()
	mnt := binMountpoint(t)
	memdir := binMemDir(t)
	p := fltStart(t, "/bin/sh", "-c", `ulimit -n 64 && exec "$0" "$@"`, bin, "mount", "--memdir", memdir, "--size", "256M", mnt)
	binWaitMounted(t, p, mnt)
	lim, err := os.ReadFile(fmt.Sprintf("/proc/%d/limits", p.cmd.Process.Pid))
	noErr(t, err, "read the server's limits")
	if !regexp.MustCompile(`Max open files\s+64\s+64`).Match(lim) {
		t.Fatalf("server's limits:\n%s", lim)
	}
	const files = 2000
	start := time.Now()
	defer func() { t.Logf("2000 files written and read in %v", time.Since(start)) }()
	dir := filepath.Join(mnt, "d")
	noErr(t, os.Mkdir(dir, 0o755), "mkdir")
	content := func(i int) []byte {
		return append(bytes.Repeat([]byte{byte(i)}, 1000+i%5000), strconv.Itoa(i)...)
	}
	// Hold some files open, too: each is a descriptor of the kernel's, and
	// of the server's store file if it kept one per open file.
	var held []int
	for i := 0; i < files; i++ {
		p := filepath.Join(dir, fmt.Sprintf("f%04d", i))
		if err := os.WriteFile(p, content(i), 0o644); err != nil {
			t.Fatalf("write file %d with the server at 64 descriptors: %v", i, err)
		}
		if i%20 == 0 {
			held = append(held, openFd(t, p, unix.O_RDWR, 0))
		}
	}
	if len(held) != files/20 {
		t.Fatalf("held %d", len(held))
	}
	for i := 0; i < files; i++ {
		want := content(i)
		got := make([]byte, len(want)+1)
		if n, err := fltPread(t, filepath.Join(dir, fmt.Sprintf("f%04d", i)), got, 0); err != nil || !bytes.Equal(got[:n], want) {
			t.Fatalf("read back file %d: %d bytes, %v; server output:\n%s", i, n, errString(err), p.output)
		}
	}
	for k, fd := range held {
		if _, err := unix.Pwrite(fd, []byte("held"), 0); err != nil {
			t.Errorf("write to held file %d: %v; server output:\n%s", k, err, p.output)
		}
		closeFd(fd)
	}
	fds, _ := os.ReadDir(fmt.Sprintf("/proc/%d/fd", p.cmd.Process.Pid))
	t.Logf("server has %d descriptors open at the end", len(fds))
	p.binSignal(syscall.SIGTERM)
	if code := p.binWait(); code != 0 {
		t.Fatalf("exit status %d; output:\n%s", code, p.output)
	}
	if strings.Contains(p.output.String(), "too many open files") {
		t.Errorf("server ran out of descriptors:\n%s", p.output)
	}
	binCheckGone(t, mnt, memdir)
}

// TestFaultServerKilled: the server is SIGKILLed while a program holds
// files and a directory open. Every operation after that returns at once;
// those that must reach the server fail with ENOTCONN (the kernel may still
// answer a read or a stat from its caches, with the right data). Nothing
// hangs, and fusermount3 -u -z cleans up.
func TestFaultServerKilled(t *testing.T) {
	p, mnt, _ := binMount(t, "--size", "64M")
	data := pattern(256<<10, 8)
	file := filepath.Join(mnt, "held")
	writeFile(t, file, data)
	noErr(t, os.Mkdir(filepath.Join(mnt, "dir"), 0o755), "mkdir")
	fd := openFd(t, file, unix.O_RDWR, 0)
	dfd := openFd(t, filepath.Join(mnt, "dir"), unix.O_RDONLY|unix.O_DIRECTORY, 0)
	nocache := openFd(t, file, unix.O_RDONLY, 0)
	noErr(t, unix.Fadvise(nocache, 0, 0, unix.FADV_DONTNEED), "fadvise")

	noErr(t, p.cmd.Process.Kill(), "SIGKILL the server")
	<-p.done

	gone := func(err error) bool {
		return errors.Is(err, unix.ENOTCONN) || errors.Is(err, unix.ECONNABORTED)
	}
	// op runs f with a deadline; hangs fail the test (the mount is then
	// detached by binMountpoint's cleanup, which ends the hang).
	op := func(name string, mustFail bool, f func() error) {
		t.Helper()
		done := make(chan error, 1)
		go func() { done <- f() }()
		select {
		case err := <-done:
			t.Logf("%s after the server was killed: %s", name, errString(err))
			if mustFail && !gone(err) {
				t.Errorf("%s after the server was killed: %s, want ENOTCONN", name, errString(err))
			} else if err != nil && !gone(err) {
				t.Errorf("%s after the server was killed: %s, want success from the cache or ENOTCONN", name, errString(err))
			}
		case <-time.After(10 * time.Second):
			t.Errorf("%s hung after the server was killed", name)
		}
	}
	b := make([]byte, len(data))
	op("pread (cached)", false, func() error {
		n, err := unix.Pread(fd, b, 0)
		if err == nil && !bytes.Equal(b[:n], data[:n]) {
			return fmt.Errorf("wrong data")
		}
		return err
	})
	// With passthrough the kernel reads and writes the files open already
	// in their store files itself, server or no server.
	pt := strings.Contains(p.output.String(), "passthrough on")
	op("pread (not cached)", !pt, func() error { _, err := unix.Pread(nocache, b, 0); return err })
	op("pwrite", !pt, func() error { _, err := unix.Pwrite(fd, []byte("x"), 0); return err })
	op("fsync", false, func() error { return unix.Fsync(fd) })
	op("fstat", false, func() error { var st unix.Stat_t; return unix.Fstat(fd, &st) })
	op("ftruncate", true, func() error { return unix.Ftruncate(fd, 0) })
	op("stat", false, func() error { var st unix.Stat_t; return unix.Stat(file, &st) })
	op("stat of the root", false, func() error { var st unix.Stat_t; return unix.Stat(mnt, &st) })
	op("statfs", true, func() error { var st unix.Statfs_t; return unix.Statfs(mnt, &st) })
	op("create", true, func() error {
		fd, err := unix.Open(filepath.Join(mnt, "new"), unix.O_CREAT|unix.O_WRONLY|unix.O_CLOEXEC, 0o644)
		if err == nil {
			unix.Close(fd)
		}
		return err
	})
	op("open", false, func() error {
		fd, err := unix.Open(file, unix.O_RDONLY|unix.O_CLOEXEC, 0)
		if err == nil {
			unix.Close(fd)
		}
		return err
	})
	op("getdents", true, func() error { _, err := unix.Getdents(dfd, make([]byte, 4096)); return err })
	op("mkdir", true, func() error { return unix.Mkdir(filepath.Join(mnt, "dir2"), 0o755) })
	op("setxattr", true, func() error { return unix.Fsetxattr(fd, "user.x", []byte("v"), 0) })
	op("close", false, func() error { return closeFd(fd) })
	op("close dir", false, func() error { return closeFd(dfd) })
	closeFd(nocache)

	if binFindMount(mnt) == nil {
		t.Fatalf("the mount went away by itself")
	}
	noErr(t, binRun(t, "fusermount3", "-u", "-z", mnt), "fusermount3 -u -z")
	binWaitUnmounted(t, mnt)
	if fi, err := os.Stat(mnt); err != nil || !fi.IsDir() {
		t.Errorf("mount point after fusermount3 -u -z: %v", err)
	}
}

// TestFaultMapCount (only with MMAPFS_TEST_MAPCOUNT=1, as root: it lowers
// the system-wide vm.max_map_count, which parallel tests would feel): with
// vm.max_map_count at 2000, 5000 files with data spread over 3 MiB each
// (two 2 MiB windows) are written and read back; the store keeps its
// windows under the limit.
func TestFaultMapCount(t *testing.T) {
	if os.Getenv("MMAPFS_TEST_MAPCOUNT") != "1" {
		t.Skip("set MMAPFS_TEST_MAPCOUNT=1 (as root) to lower vm.max_map_count for this test")
	}
	needRoot(t)
	needFUSE(t)
	const knob = "/proc/sys/vm/max_map_count"
	old, err := os.ReadFile(knob)
	noErr(t, err, "read %s", knob)
	noErr(t, os.WriteFile(knob, []byte("2000"), 0), "lower %s", knob)
	t.Cleanup(func() {
		if err := os.WriteFile(knob, old, 0); err != nil {
			t.Errorf("restore %s to %s: %v", knob, bytes.TrimSpace(old), err)
		}
	})
	mnt, _, st := mountFS(t, withTimeout(10*time.Minute))
	const files = 5000
	offs := []int64{0, 1 << 20, 3<<20 - 16}
	rec := func(i int, k int) []byte { return []byte(fmt.Sprintf("file %05d part %d", i, k)) }
	for i := 0; i < files; i++ {
		p := filepath.Join(mnt, fmt.Sprintf("f%05d", i))
		fd, err := unix.Open(p, unix.O_CREAT|unix.O_WRONLY|unix.O_CLOEXEC, 0o644)
		noErr(t, err, "create %d", i)
		for k, off := range offs {
			if _, err := unix.Pwrite(fd, rec(i, k), off); err != nil {
				t.Fatalf("pwrite file %d at %d: %v", i, off, err)
			}
		}
		unix.Close(fd)
	}
	if s := st.Stats(); s.Windows > 1000 {
		t.Errorf("store has %d windows mapped with vm.max_map_count 2000", s.Windows)
	}
	maps, _ := os.ReadFile("/proc/self/maps")
	t.Logf("after writing: store %+v, %d mappings in the process", st.Stats(), bytes.Count(maps, []byte("\n")))
	for i := 0; i < files; i++ {
		p := filepath.Join(mnt, fmt.Sprintf("f%05d", i))
		fltDropCache(t, p)
		fd, err := unix.Open(p, unix.O_RDONLY|unix.O_CLOEXEC, 0)
		noErr(t, err, "open %d", i)
		for k, off := range offs {
			want := rec(i, k)
			b := make([]byte, len(want))
			if n, err := unix.Pread(fd, b, off); err != nil || n != len(b) || !bytes.Equal(b, want) {
				unix.Close(fd)
				t.Fatalf("read file %d at %d: %q, %v", i, off, b[:max(n, 0)], err)
			}
		}
		unix.Close(fd)
	}
	maps, _ = os.ReadFile("/proc/self/maps")
	t.Logf("after reading: store %+v, %d mappings in the process", st.Stats(), bytes.Count(maps, []byte("\n")))
}
