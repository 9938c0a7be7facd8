// Package tests holds the integration tests of mmapfs: real mounts driven with
// ordinary system calls, checked against what Linux tmpfs does.
//
// With MMAPFS_TEST_TMPFS=1 every test runs against a fresh tmpfs instead of
// an mmapfs mount (a plain directory on /dev/shm when tmpfs cannot be
// mounted). That is how the expectations are validated: a test that fails on
// tmpfs is a wrong test.
package tests

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime/pprof"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"golang.org/x/sys/unix"

	"mmapfs/fs"
	"mmapfs/mapstore"
	"mmapfs/store"
)

// tmpfsMode: run against tmpfs instead of mmapfs.
var tmpfsMode = os.Getenv("MMAPFS_TEST_TMPFS") == "1"

// storeMode: every in-process mount keeps its tree in a persistent store
// (--store), compacted after every 256 KiB of journal; at unmount the
// store is loaded again and its tree checked.
var storeMode = os.Getenv("MMAPFS_TEST_STORE") == "1"

// passthroughMode: every in-process mount asks for FUSE passthrough, and
// fails if it does not get it. A mount with a size limit gets its store on
// a private tmpfs of that size instead, as `mmapfs --passthrough` does.
var passthroughMode = os.Getenv("MMAPFS_TEST_PASSTHROUGH") == "1"

// defaultTestTimeout bounds every test that mounts: a hung mount fails the
// test and is aborted instead of hanging the run.
const defaultTestTimeout = 60 * time.Second

type mountConfig struct {
	size        int64  // size= (bytes of data); 0 = no limit
	inodes      uint64 // inodes= (root included); 0 = no limit
	allowOther  bool   // other uids may enter the mount
	timeout     time.Duration
	storeParent string // where the store directory goes; "" = a new one on /dev/shm
	// Store caches (mmapfs only): window size, mapped windows and open
	// store files at most; 0 = the defaults.
	windowSize int64
	maxWindows int
	maxFDs     int
	// compactBytes > 0: a persistent store, compacted past this many
	// bytes of journal (storeMode sets it for every mount).
	compactBytes int64
	// passthrough: ask for FUSE passthrough, and fail without it
	// (passthroughMode sets it for every mount).
	passthrough bool
	// flags are the mount flags (MS_NOATIME, MS_RDONLY...), for
	// mmapfs and tmpfs alike.
	flags uintptr
}

// mountOption changes how mountFS mounts.
type mountOption func(*mountConfig)

// withSize sets the data size limit (size=).
func withSize(n int64) mountOption { return func(c *mountConfig) { c.size = n } }

// withInodes sets the inode limit (inodes=, root included).
func withInodes(n uint64) mountOption { return func(c *mountConfig) { c.inodes = n } }

// withAllowOther lets processes of other uids use the mount (allow_other).
func withAllowOther() mountOption { return func(c *mountConfig) { c.allowOther = true } }

// withSmallCaches makes the store map small windows and keep few of them
// and few descriptors, so that a test churns through them (mmapfs only;
// tmpfs mode ignores it).
func withSmallCaches(windowSize int64, maxWindows, maxFDs int) mountOption {
	return func(c *mountConfig) { c.windowSize, c.maxWindows, c.maxFDs = windowSize, maxWindows, maxFDs }
}

// withStoreIn puts the store in parent/store instead of a new directory on
// /dev/shm (mmapfs only), for tests that damage it or fill its filesystem.
func withStoreIn(parent string) mountOption { return func(c *mountConfig) { c.storeParent = parent } }

// withPersistentStore keeps the tree in a persistent store whose journal
// is compacted past compactBytes.
func withPersistentStore(compactBytes int64) mountOption {
	return func(c *mountConfig) { c.compactBytes = compactBytes }
}

// withPassthrough asks for FUSE passthrough (mmapfs only); the test fails
// if the kernel refuses it.
func withPassthrough() mountOption { return func(c *mountConfig) { c.passthrough = true } }

// withMountFlags mounts with the given mount flags (MS_NOATIME,
// MS_STRICTATIME, MS_RDONLY...).
func withMountFlags(flags uintptr) mountOption { return func(c *mountConfig) { c.flags = flags } }

// withTimeout replaces the default watchdog timeout of the test.
func withTimeout(d time.Duration) mountOption { return func(c *mountConfig) { c.timeout = d } }

// testMount is one mounted filesystem under test.
type testMount struct {
	dir      string          // the mountpoint
	m        *fs.Mounted     // nil in tmpfs mode
	st       *mapstore.Store // nil in tmpfs mode
	store    *store.Store    // nil in tmpfs mode
	tmpfs    bool            // a real tmpfs was mounted on dir (tmpfs mode)
	dev      uint64          // st_dev of the mount (FUSE: the connection)
	storeDir string          // the store directory (mmapfs only)
	metaDir  string          // storeMode: the persistent store
	cfg      mountConfig     //
	wd       *watchdog       //
	log      *testLogSink    //
	mu       sync.Mutex      //
	gone     bool            // aborted by the watchdog
}

// mountFS mounts a fresh, empty filesystem for t and returns its
// mountpoint, the mount and its store (both nil in tmpfs mode). The mount is
// in a short, world-traversable directory (/tmp/mfsNNN/m: unix socket paths
// must stay below 108 bytes, other uids must reach it). A watchdog fails the
// test and aborts the mount if the test runs past its timeout. Cleanup
// unmounts, runs the store's Check and closes the store.
func mountFS(t testing.TB, opts ...mountOption) (string, *fs.Mounted, *mapstore.Store) {
	tm := mountTest(t, opts...)
	return tm.dir, tm.m, tm.st
}

// mountTest is mountFS returning the whole testMount.
func mountTest(t testing.TB, opts ...mountOption) *testMount {
	t.Helper()
	cfg := mountConfig{timeout: defaultTestTimeout, passthrough: passthroughMode}
	if storeMode {
		cfg.compactBytes = 256 << 10
	}
	for _, o := range opts {
		o(&cfg)
	}
	base, err := os.MkdirTemp("/tmp", "mfs")
	if err != nil {
		t.Fatalf("MkdirTemp: %v", err)
	}
	if err := os.Chmod(base, 0o755); err != nil {
		t.Fatalf("chmod %s: %v", base, err)
	}
	mnt := filepath.Join(base, "m")
	if err := os.Mkdir(mnt, 0o755); err != nil {
		t.Fatalf("mkdir %s: %v", mnt, err)
	}
	tm := &testMount{dir: mnt, cfg: cfg}

	// Cleanups run last-in first-out: the base directory goes last, the
	// watchdog stops after the unmount (which it also guards).
	t.Cleanup(func() {
		if isMountpoint(mnt) {
			t.Errorf("%s is still mounted; leaving %s in place", mnt, base)
			return
		}
		if err := os.RemoveAll(base); err != nil {
			t.Errorf("remove %s: %v", base, err)
		}
	})
	tm.log = &testLogSink{t: t}
	t.Cleanup(tm.log.close)
	tm.wd = startWatchdog(t, cfg.timeout, tm.abort)
	t.Cleanup(tm.wd.stop)

	if tmpfsMode {
		tm.mountTmpfs(t)
		return tm
	}

	storeDir := cfg.storeParent
	if storeDir != "" {
		// The caller's.
	} else if st, err := os.Stat("/dev/shm"); err == nil && st.IsDir() {
		if d, err := os.MkdirTemp("/dev/shm", "mmapfs-test-store-"); err == nil {
			storeDir = d
			t.Cleanup(func() { os.RemoveAll(d) })
		}
	}
	if storeDir == "" {
		storeDir = t.TempDir()
	}
	logger := zap.New(zapcore.NewCore(
		zapcore.NewConsoleEncoder(zap.NewDevelopmentEncoderConfig()),
		zapcore.AddSync(tm.log), zap.WarnLevel))
	sopts := store.Options{
		SizeLimit:    cfg.size,
		OwnFS:        cfg.passthrough,
		CompactBytes: cfg.compactBytes,
		WindowSize:   cfg.windowSize,
		MaxWindows:   cfg.maxWindows,
		MaxFDs:       cfg.maxFDs,
		Logger:       logger,
	}
	var s *store.Store
	if cfg.compactBytes > 0 {
		tm.metaDir = filepath.Join(storeDir, "pstore")
		if cfg.passthrough && cfg.size > 0 {
			// The limit is kept by a tmpfs of that size under the
			// store files, as a memory store's own tmpfs keeps it.
			blobs := filepath.Join(tm.metaDir, store.BlobsDir)
			if err := os.MkdirAll(blobs, 0o700); err != nil {
				t.Fatalf("mkdir %s: %v", blobs, err)
			}
			data := fmt.Sprintf("size=%d,mode=0700,nr_inodes=0", cfg.size)
			if err := unix.Mount("mmapfs-test-store", blobs, "tmpfs", unix.MS_NOSUID|unix.MS_NODEV, data); err != nil {
				t.Fatalf("mount the store's tmpfs: %v", err)
			}
			t.Cleanup(func() {
				if err := unix.Unmount(blobs, unix.MNT_DETACH); err != nil {
					t.Errorf("unmount the store's tmpfs %s: %v", blobs, err)
				}
			})
			sopts.SizeLimit = 0
		}
		s, err = store.Open(tm.metaDir, sopts)
		if err != nil {
			t.Fatalf("store.Open: %v", err)
		}
	} else {
		s, err = store.OpenMemory(storeDir, sopts)
		if err != nil {
			t.Fatalf("store.OpenMemory: %v", err)
		}
		if err := s.OwnFSErr(); cfg.passthrough && err != nil {
			s.Close()
			t.Fatalf("the store's tmpfs: %v", err)
		}
	}
	tm.store, tm.st, tm.storeDir = s, s.Blobs(), s.FilesDir()
	m, err := fs.Mount(mnt, fs.Config{
		Store:       s,
		MaxInodes:   cfg.inodes,
		RootMode:    0o1777,
		AllowOther:  cfg.allowOther,
		Logger:      logger,
		Passthrough: cfg.passthrough,
		MountFlags:  cfg.flags,
	})
	if err != nil {
		s.Close()
		t.Fatalf("fs.Mount: %v", err)
	}
	tm.m = m
	if cfg.passthrough && m.PassthroughErr != nil {
		defer m.Unmount()
		t.Fatalf("passthrough asked for and refused: %v", m.PassthroughErr)
	}
	var st0 unix.Stat_t
	if err := unix.Stat(mnt, &st0); err == nil {
		tm.dev = st0.Dev
	}
	t.Cleanup(func() { tm.unmount(t) })
	return tm
}

// mountTmpfs mounts a tmpfs with the configured limits on tm.dir; without the
// privilege to mount it falls back to a directory on /dev/shm.
func (tm *testMount) mountTmpfs(t testing.TB) {
	data := "mode=1777"
	if tm.cfg.size > 0 {
		data += fmt.Sprintf(",size=%d", tm.cfg.size)
	}
	if tm.cfg.inodes > 0 {
		data += fmt.Sprintf(",nr_inodes=%d", tm.cfg.inodes)
	}
	if err := unix.Mount("tmpfs", tm.dir, "tmpfs", tm.cfg.flags, data); err == nil {
		tm.tmpfs = true
		t.Cleanup(func() {
			tm.mu.Lock()
			gone := tm.gone
			tm.mu.Unlock()
			if gone {
				return
			}
			var err error
			for i := 0; i < 50; i++ {
				if err = unix.Unmount(tm.dir, 0); err != unix.EBUSY {
					break
				}
				time.Sleep(100 * time.Millisecond)
			}
			if err != nil {
				t.Errorf("unmount tmpfs %s: %v (detaching)", tm.dir, err)
				unix.Unmount(tm.dir, unix.MNT_DETACH)
			}
		})
		return
	} else if tm.cfg.size > 0 || tm.cfg.inodes > 0 {
		t.Skipf("cannot mount a tmpfs with limits (%v): limits untestable in tmpfs mode", err)
	} else if tm.cfg.flags != 0 {
		t.Skipf("cannot mount a tmpfs with mount flags (%v): flags untestable in tmpfs mode", err)
	}
	// A directory on /dev/shm (or the default temp dir) stands in.
	d, err := os.MkdirTemp("/dev/shm", "mmapfs-test-")
	if err != nil {
		d = t.TempDir()
	} else {
		t.Cleanup(func() { os.RemoveAll(d) })
	}
	os.Chmod(d, 0o1777)
	tm.dir = d
}

// unmount ends an mmapfs mount at the end of a test: a normal unmount,
// retried while busy, then a forced lazy one. It then checks and closes the
// store.
func (tm *testMount) unmount(t testing.TB) {
	tm.mu.Lock()
	gone := tm.gone
	tm.mu.Unlock()
	if !gone {
		var err error
		for i := 0; i < 50; i++ {
			done := make(chan error, 1)
			go func() { done <- tm.m.Server.Unmount() }()
			select {
			case err = <-done:
			case <-time.After(20 * time.Second):
				err = errors.New("Unmount hung for 20s")
			}
			if err == nil || !isMountpoint(tm.dir) {
				break
			}
			time.Sleep(100 * time.Millisecond)
		}
		if err != nil && isMountpoint(tm.dir) {
			t.Errorf("unmount %s: %v; forcing a lazy unmount", tm.dir, err)
			abortConn(tm.dev)
			forceUnmount(tm.dir)
		}
	}
	waited := make(chan struct{})
	go func() { tm.m.Wait(); close(waited) }()
	select {
	case <-waited:
	case <-time.After(20 * time.Second):
		t.Errorf("server of %s did not stop within 20s of the unmount", tm.dir)
		abortConn(tm.dev)
		forceUnmount(tm.dir)
		return // the store may still be in use; do not close it under the server
	}
	if err := tm.m.Close(); err != nil {
		t.Errorf("closing the persistent store: %v", err)
	}
	if err := tm.st.Check(); err != nil {
		t.Errorf("store Check after unmount: %v", err)
	}
	if err := tm.store.Close(); err != nil {
		t.Errorf("store Close: %v", err)
	}
	if tm.metaDir != "" {
		checkPersistentStore(t, tm.metaDir)
	}
}

// checkPersistentStore loads a persistent store again and checks that its
// metadata is undamaged and its tree whole.
func checkPersistentStore(t testing.TB, dir string) {
	st, rep, err := store.Load(dir, false)
	// A child process another test is starting holds a copy of every
	// descriptor from fork to exec, the store's locked one included:
	// the lock may outlive Close by that long.
	for deadline := time.Now().Add(5 * time.Second); errors.Is(err, store.ErrInUse) && time.Now().Before(deadline); {
		time.Sleep(10 * time.Millisecond)
		st, rep, err = store.Load(dir, false)
	}
	if err != nil {
		t.Errorf("loading the store again: %v", err)
		return
	}
	if len(rep.Damage) > 0 || rep.Dropped > 0 {
		t.Errorf("store loaded again: damage %q, %d bytes dropped", rep.Damage, rep.Dropped)
	}
	if problems, _ := st.Validate(); len(problems) > 0 {
		t.Errorf("store loaded again: %d problems, the first: %s", len(problems), problems[0])
	}
	t.Logf("store loaded again: %d inodes, %d journal frames, generation %d", len(st.Inodes), rep.Frames, rep.Generation)
}

// abort is the watchdog's action: abort the FUSE connection (MNT_FORCE makes
// the kernel fail every pending request) and detach the mount, so that
// whatever the test is blocked in returns.
func (tm *testMount) abort() {
	tm.mu.Lock()
	tm.gone = true
	tm.mu.Unlock()
	abortConn(tm.dev)
	forceUnmount(tm.dir)
}

// forceUnmount aborts and detaches the mount on dir.
func forceUnmount(dir string) {
	if err := unix.Unmount(dir, unix.MNT_FORCE|unix.MNT_DETACH); err != nil {
		exec.Command("fusermount3", "-u", "-z", dir).Run()
	}
}

// abortConn aborts the FUSE connection dev through fusectl, if mounted: that
// ends requests even of a mount already detached.
func abortConn(dev uint64) {
	if dev == 0 {
		return
	}
	p := fmt.Sprintf("/sys/fs/fuse/connections/%d/abort", unix.Minor(dev))
	os.WriteFile(p, []byte("1"), 0)
}

// isMountpoint reports whether dir is a mountpoint listed in /proc/self/mounts.
func isMountpoint(dir string) bool {
	b, err := os.ReadFile("/proc/self/mounts")
	if err != nil {
		return false
	}
	for _, l := range strings.Split(string(b), "\n") {
		f := strings.Fields(l)
		if len(f) > 1 && f[1] == dir {
			return true
		}
	}
	return false
}

// watchdog fails a test that runs longer than its timeout.
type watchdog struct {
	mu      sync.Mutex
	stopped bool
	timer   *time.Timer
}

// startWatchdog calls onTimeout (and fails t, with a dump of all goroutines)
// unless stop is called within d.
func startWatchdog(t testing.TB, d time.Duration, onTimeout func()) *watchdog {
	w := &watchdog{}
	name := t.Name()
	w.timer = time.AfterFunc(d, func() {
		w.mu.Lock()
		defer w.mu.Unlock()
		if w.stopped {
			return
		}
		// Abort first: the goroutine dump stops the world, which waits
		// for every thread, including one stuck in a page fault on a
		// mapping that only an answer from the mount would end.
		if onTimeout != nil {
			onTimeout()
		}
		t.Errorf("test timed out after %v: mount aborted (goroutines dumped on stderr)", d)
		go func() {
			var buf bytes.Buffer
			pprof.Lookup("goroutine").WriteTo(&buf, 2)
			fmt.Fprintf(os.Stderr, "=== %s timed out after %v; goroutines:\n%s\n", name, d, buf.Bytes())
		}()
	})
	return w
}

func (w *watchdog) stop() {
	w.mu.Lock()
	w.stopped = true
	w.mu.Unlock()
	w.timer.Stop()
}

// testLogSink sends the filesystem's log lines to the test's log while the
// test runs and to stderr afterwards (t.Log panics after the test ends).
type testLogSink struct {
	mu    sync.Mutex
	t     testing.TB
	done  bool
	lines []string // every line logged, for tests that look for one
}

func (s *testLogSink) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.lines = append(s.lines, string(bytes.TrimRight(p, "\n")))
	if s.done {
		return os.Stderr.Write(p)
	}
	s.t.Logf("mmapfs: %s", bytes.TrimRight(p, "\n"))
	return len(p), nil
}

// logged reports whether a line at one of levels (ERROR, WARN...) contains
// all of words.
func (s *testLogSink) logged(levels []string, words ...string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
next:
	for _, line := range s.lines {
		if !slices.ContainsFunc(levels, func(l string) bool { return strings.Contains(line, l) }) {
			continue
		}
		for _, w := range words {
			if !strings.Contains(line, w) {
				continue next
			}
		}
		return true
	}
	return false
}

// has reports whether a line logged at level ERROR or above contains all
// of words.
func (s *testLogSink) has(words ...string) bool {
	return s.logged([]string{"ERROR", "DPANIC"}, words...)
}

// hasWarning reports whether a line logged at level WARN contains all of
// words.
func (s *testLogSink) hasWarning(words ...string) bool {
	return s.logged([]string{"WARN"}, words...)
}

// count returns the number of lines logged.
func (s *testLogSink) count() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.lines)
}

func (s *testLogSink) close() {
	s.mu.Lock()
	s.done = true
	s.mu.Unlock()
}

// needFUSE skips tests that look inside mmapfs (store statistics and such).
func needFUSE(t testing.TB) {
	t.Helper()
	if tmpfsMode {
		t.Skip("needs mmapfs internals; skipped in tmpfs mode")
	}
}

// needRoot skips tests that need root (chown, mknod, other uids).
func needRoot(t testing.TB) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root")
	}
}

// wantErrno fails t unless err is the errno want.
func wantErrno(t testing.TB, err error, want unix.Errno, format string, args ...any) {
	t.Helper()
	if !errors.Is(err, want) {
		t.Errorf("%s: got error %v, want %v (%s)", fmt.Sprintf(format, args...), errString(err), want, errName(want))
	}
}

// noErr fails t now if err is not nil.
func noErr(t testing.TB, err error, format string, args ...any) {
	t.Helper()
	if err != nil {
		t.Fatalf("%s: %v", fmt.Sprintf(format, args...), errString(err))
	}
}

func errString(err error) string {
	if err == nil {
		return "<nil>"
	}
	var en unix.Errno
	if errors.As(err, &en) {
		return fmt.Sprintf("%v (%s)", err, errName(en))
	}
	return err.Error()
}

func errName(e unix.Errno) string {
	if n := unix.ErrnoName(e); n != "" {
		return n
	}
	return fmt.Sprintf("errno %d", int(e))
}

// lstat returns the unix.Stat_t of path, failing t on error.
func lstat(t testing.TB, path string) unix.Stat_t {
	t.Helper()
	var st unix.Stat_t
	noErr(t, unix.Lstat(path, &st), "lstat %s", path)
	return st
}

// fstat returns the unix.Stat_t of fd, failing t on error.
func fstat(t testing.TB, fd int) unix.Stat_t {
	t.Helper()
	var st unix.Stat_t
	noErr(t, unix.Fstat(fd, &st), "fstat %d", fd)
	return st
}

// statfs returns the unix.Statfs_t of path, failing t on error.
func statfs(t testing.TB, path string) unix.Statfs_t {
	t.Helper()
	var st unix.Statfs_t
	noErr(t, unix.Statfs(path, &st), "statfs %s", path)
	return st
}

// openFds maps descriptors opened by openFd, and not closed by closeFd yet,
// to a token of that opening.
var (
	openFdsMu sync.Mutex
	openFds   = map[int]*int{}
)

// openFd opens path with unix.Open, failing t on error. A descriptor still
// open when the test ends is closed before the unmount, so that a test that
// fails half-way leaves no busy mount. Close it only with closeFd.
func openFd(t testing.TB, path string, flags int, mode uint32) int {
	t.Helper()
	fd, err := unix.Open(path, flags|unix.O_CLOEXEC, mode)
	noErr(t, err, "open %s", path)
	token := new(int)
	openFdsMu.Lock()
	openFds[fd] = token
	openFdsMu.Unlock()
	t.Cleanup(func() {
		openFdsMu.Lock()
		defer openFdsMu.Unlock()
		if openFds[fd] == token {
			delete(openFds, fd)
			unix.Close(fd)
		}
	})
	return fd
}

// closeFd closes fd (from openFd or not).
func closeFd(fd int) error {
	openFdsMu.Lock()
	defer openFdsMu.Unlock()
	delete(openFds, fd)
	return unix.Close(fd)
}

// writeFile writes data to path (created 0644), failing t on error.
func writeFile(t testing.TB, path string, data []byte) {
	t.Helper()
	noErr(t, os.WriteFile(path, data, 0o644), "write %s", path)
}

// readFile reads path, failing t on error.
func readFile(t testing.TB, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	noErr(t, err, "read %s", path)
	return b
}

// pattern returns n bytes of a recognisable, position-dependent pattern.
func pattern(n int, seed byte) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(i*7+i/4096) ^ seed
	}
	return b
}

// pwriteAll writes all of p at off, failing t on error or a short write.
func pwriteAll(t testing.TB, fd int, p []byte, off int64) {
	t.Helper()
	for len(p) > 0 {
		n, err := unix.Pwrite(fd, p, off)
		noErr(t, err, "pwrite %d bytes at %d", len(p), off)
		if n == 0 {
			t.Fatalf("pwrite at %d wrote nothing", off)
		}
		p = p[n:]
		off += int64(n)
	}
}

// preadFull reads len(p) bytes at off (less only at EOF), failing t on error.
func preadFull(t testing.TB, fd int, p []byte, off int64) int {
	t.Helper()
	got := 0
	for got < len(p) {
		n, err := unix.Pread(fd, p[got:], off+int64(got))
		noErr(t, err, "pread %d bytes at %d", len(p)-got, off+int64(got))
		if n == 0 {
			break
		}
		got += n
	}
	return got
}

// eventually polls cond until it holds or d passes.
func eventually(d time.Duration, cond func() bool) bool {
	deadline := time.Now().Add(d)
	for {
		if cond() {
			return true
		}
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// isZero reports whether b is all zero bytes.
func isZero(b []byte) bool {
	for _, c := range b {
		if c != 0 {
			return false
		}
	}
	return true
}
