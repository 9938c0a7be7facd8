package store

import (
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"
	"golang.org/x/sys/unix"

	"mmapfs/journal"
)

// setLockWait sets how long an open waits for an exiting holder, and
// after how long it says so, for the rest of the test.
func setLockWait(t *testing.T, wait, say time.Duration) {
	t.Helper()
	oldWait, oldSay := lockWait, lockWaitSay
	lockWait, lockWaitSay = wait, say
	t.Cleanup(func() { lockWait, lockWaitSay = oldWait, oldSay })
}

// waitingLine is the start of the line an open logs while it waits for the
// holder of the store, this process.
func waitingLine() string {
	return "waiting for process " + strconv.Itoa(os.Getpid()) + ", which is exiting"
}

// countLogs returns how many of the lines logged so far start with msg.
func countLogs(logs *observer.ObservedLogs, msg string) int {
	return logs.Filter(func(e observer.LoggedEntry) bool { return strings.HasPrefix(e.Message, msg) }).Len()
}

// awaitLog waits until a line starting with msg has been logged, or fails
// the test after a minute.
func awaitLog(t *testing.T, logs *observer.ObservedLogs, msg string) {
	t.Helper()
	for deadline := time.Now().Add(time.Minute); countLogs(logs, msg) == 0; {
		if time.Now().After(deadline) {
			t.Fatalf("no log line %q within a minute; lines: %v", msg, logs.All())
		}
		time.Sleep(time.Millisecond)
	}
}

// openResult is what an Open run in a goroutine returned.
type openResult struct {
	s   *Store
	err error
}

// openAsync runs Open(dir) in a goroutine, logging into the observer it
// returns.
func openAsync(dir string) (<-chan openResult, *observer.ObservedLogs) {
	core, logs := observer.New(zapcore.InfoLevel)
	res := make(chan openResult, 1)
	go func() {
		s, err := Open(dir, Options{Logger: zap.New(core)})
		res <- openResult{s, err}
	}()
	return res, logs
}

// result returns what the Open of res returned, or fails the test after a
// minute.
func result(t *testing.T, res <-chan openResult) openResult {
	t.Helper()
	select {
	case r := <-res:
		return r
	case <-time.After(time.Minute):
		t.Fatal("Open did not return within a minute")
		return openResult{}
	}
}

// A store that its holder uses (serves, starts to serve, checks) is
// refused at once: the opener does not wait (were it to, the wait of ten
// minutes would outlast the test), and says who holds it.
func TestLockInUseRefusedAtOnce(t *testing.T) {
	setLockWait(t, 10*time.Minute, 0)
	dir := filepath.Join(t.TempDir(), "store")
	s := openT(t, dir)
	pid := strconv.Itoa(os.Getpid())
	for name, open := range map[string]func(*zap.Logger) error{
		"Open":  func(log *zap.Logger) error { _, err := Open(dir, Options{Logger: log}); return err },
		"Load":  func(*zap.Logger) error { _, _, err := Load(dir, false); return err },
		"Check": func(*zap.Logger) error { _, err := Check(dir, CheckOptions{}); return err },
		"Check --repair": func(*zap.Logger) error {
			_, err := Check(dir, CheckOptions{Repair: true})
			return err
		},
	} {
		core, logs := observer.New(zapcore.DebugLevel)
		err := open(zap.New(core))
		if !errors.Is(err, ErrInUse) {
			t.Fatalf("%s of a store being served = %v; want ErrInUse", name, err)
		}
		want := "store " + dir + " is in use by process " + pid + " (one mmapfs serves a store at a time)"
		if err.Error() != want {
			t.Errorf("%s: %q; want %q", name, err, want)
		}
		if logs.Len() != 0 {
			t.Errorf("%s logged %v; want nothing", name, logs.All())
		}
	}
	closeT(t, s)

	// A store being checked read only (fsck without --repair) is in use
	// as well.
	ms, err := openMeta(dir, true, true, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := Open(dir, Options{}); !errors.Is(err, ErrInUse) || strings.Contains(err.Error(), "stopped serving") {
		t.Errorf("Open of a store being checked = %v; want ErrInUse at once", err)
	}
	ms.close()
	closeT(t, openT(t, dir))
}

// A server that has stopped serving (Exiting) is waited for: the new one
// opens the store once the old one has closed it, and finds in it the last
// change the old one made while it waited. It says once whom it waits for.
func TestLockWaitsForExiting(t *testing.T) {
	setLockWait(t, 10*time.Minute, 0)
	dir := filepath.Join(t.TempDir(), "store")
	s := openT(t, dir)
	s.Exiting()
	res, logs := openAsync(dir)
	awaitLog(t, logs, waitingLine())
	// The last snapshot of the exiting server.
	commitT(t, s, func(b *journal.Batch) { b.Inode(&journal.Inode{Ino: 1, Mode: syscall.S_IFDIR | 0o755, Nlink: 2}) })
	closeT(t, s)
	r := result(t, res)
	if r.err != nil {
		t.Fatalf("Open after the exiting server closed the store: %v", r.err)
	}
	defer closeT(t, r.s)
	if tree := r.s.TakeTree(); tree.State.Inodes[1] == nil {
		t.Errorf("the store opened after the wait lacks the exiting server's last change: %+v", tree.State.Inodes)
	}
	if n := countLogs(logs, waitingLine()); n != 1 {
		t.Errorf("the wait was logged %d times, want once: %v", n, logs.All())
	}
	if countLogs(logs, "the process that held the store let go of it") != 1 {
		t.Errorf("the end of the wait was not logged: %v", logs.All())
	}
	if data, err := os.ReadFile(filepath.Join(dir, LockName)); err != nil || strings.TrimSpace(string(data)) != strconv.Itoa(os.Getpid()) {
		t.Errorf("lock file holds %q, %v; want the pid", data, err)
	}
}

// An exiting server that keeps the store is waited for lockWait, no
// longer; the message says that it stopped serving but kept the store.
// fsck waits the same way.
func TestLockWaitBounded(t *testing.T) {
	setLockWait(t, 50*time.Millisecond, time.Hour)
	dir := filepath.Join(t.TempDir(), "store")
	s := openT(t, dir)
	s.Exiting()
	want := "store " + dir + " is in use by process " + strconv.Itoa(os.Getpid()) +
		", which has stopped serving it but has not let go of it in 50ms (one mmapfs serves a store at a time)"
	if _, err := Open(dir, Options{}); !errors.Is(err, ErrInUse) || err.Error() != want {
		t.Errorf("Open = %v; want %q", err, want)
	}
	if _, err := Check(dir, CheckOptions{}); !errors.Is(err, ErrInUse) || err.Error() != want {
		t.Errorf("Check = %v; want %q", err, want)
	}
	// The exiting server still has the store.
	commitT(t, s, func(b *journal.Batch) { b.Inode(&journal.Inode{Ino: 1, Mode: syscall.S_IFDIR, Nlink: 2}) })
	closeT(t, s)
	if _, err := Check(dir, CheckOptions{}); err != nil {
		t.Errorf("Check once the store is closed: %v", err)
	}
}

// An opener waiting for an exiting holder is refused at once when the
// store is taken by a server that uses it (here: the holder marks it in
// use again, as a server does that has just taken the store).
func TestLockWaitEndsWhenInUse(t *testing.T) {
	setLockWait(t, 10*time.Minute, 0)
	dir := filepath.Join(t.TempDir(), "store")
	s := openT(t, dir)
	defer closeT(t, s)
	s.Exiting()
	res, logs := openAsync(dir)
	awaitLog(t, logs, waitingLine())
	if err := markInUse(s.lock, false); err != nil {
		t.Fatal(err)
	}
	r := result(t, res)
	if !errors.Is(r.err, ErrInUse) || strings.Contains(r.err.Error(), "stopped serving") {
		t.Fatalf("Open = %v; want ErrInUse for a store in use", r.err)
	}
}

// Close lets go of the store even while another descriptor shares the
// open file description of the lock (a child between fork and exec): the
// next open does not wait.
func TestLockReleasedWhileShared(t *testing.T) {
	setLockWait(t, 0, time.Hour)
	dir := filepath.Join(t.TempDir(), "store")
	s := openT(t, dir)
	fd, err := unix.Dup(int(s.lock.Fd()))
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(fd)
	closeT(t, s)
	s = openT(t, dir)
	closeT(t, s)
	if _, _, err := Load(dir, false); err != nil {
		t.Errorf("Load: %v", err)
	}
}

// Exiting does nothing to a memory store, nor to a closed store.
func TestExitingMemoryAndClosed(t *testing.T) {
	s, err := OpenMemory(t.TempDir(), Options{})
	if err != nil {
		t.Fatal(err)
	}
	s.Exiting()
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join(t.TempDir(), "store")
	p := openT(t, dir)
	closeT(t, p)
	p.Exiting()
	closeT(t, openT(t, dir))
}

// mountTmpfs mounts a small tmpfs on a new directory named name, as root,
// and returns the directory; a cleanup detaches it if it is still there.
func mountTmpfs(t *testing.T, name string) string {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("mounting a tmpfs needs root")
	}
	base, err := filepath.EvalSymlinks(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join(base, name)
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := unix.Mount("tmpfs", dir, "tmpfs", 0, "size=1m"); err != nil {
		t.Skipf("mount tmpfs: %v", err)
	}
	t.Cleanup(func() { _ = unix.Unmount(dir, unix.MNT_DETACH) })
	return dir
}

// serveOn records in s's lock file the mount on dir, as Serving does for a
// FUSE mount.
func serveOn(t *testing.T, s *Store, dir string) {
	t.Helper()
	m, err := mountOfDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	if err := writeLockInfo(s.lock, lockInfo{pid: strconv.Itoa(os.Getpid()), mount: m}); err != nil {
		t.Fatal(err)
	}
}

// While the mount the lock file names is there, the store is refused at
// once; once it is gone, the server is waited for, also before it says
// it is exiting, and its last change is found.
func TestLockMountGone(t *testing.T) {
	setLockWait(t, 10*time.Minute, 0)
	mnt := mountTmpfs(t, "mount point")
	dir := filepath.Join(t.TempDir(), "store")
	s := openT(t, dir)
	s.Serving(mnt) // not a FUSE mount: nothing recorded
	pid := strconv.Itoa(os.Getpid())
	if data, err := os.ReadFile(filepath.Join(dir, LockName)); err != nil || string(data) != pid+"\n" {
		t.Errorf("lock file after Serving on a tmpfs: %q, %v; want the pid alone", data, err)
	}
	serveOn(t, s, mnt)
	data, err := os.ReadFile(filepath.Join(dir, LockName))
	lines := strings.Split(string(data), "\n")
	if err != nil || len(lines) != 3 || lines[0] != pid || !strings.HasPrefix(lines[1], "mount ") ||
		!strings.HasSuffix(lines[1], " "+strings.ReplaceAll(mnt, " ", `\040`)) {
		t.Errorf("lock file naming the mount: %q, %v", data, err)
	}
	core, logs := observer.New(zapcore.DebugLevel)
	if _, err := Open(dir, Options{Logger: zap.New(core)}); !errors.Is(err, ErrInUse) ||
		err.Error() != "store "+dir+" is in use by process "+pid+" (one mmapfs serves a store at a time)" {
		t.Errorf("Open while the mount is there = %v; want ErrInUse at once", err)
	}
	if logs.Len() != 0 {
		t.Errorf("Open while the mount is there logged %v", logs.All())
	}

	if err := unix.Unmount(mnt, 0); err != nil {
		t.Fatal(err)
	}
	res, logs := openAsync(dir)
	awaitLog(t, logs, "waiting for process "+pid+", whose mount on "+mnt+" is gone, to stop serving the store")
	s.Exiting()
	commitT(t, s, func(b *journal.Batch) { b.Inode(&journal.Inode{Ino: 1, Mode: syscall.S_IFDIR | 0o755, Nlink: 2}) })
	closeT(t, s)
	r := result(t, res)
	if r.err != nil {
		t.Fatalf("Open once the server let go: %v", r.err)
	}
	defer closeT(t, r.s)
	if tree := r.s.TakeTree(); tree.State.Inodes[1] == nil {
		t.Errorf("the store opened after the wait lacks the last change: %+v", tree.State.Inodes)
	}
	if n := logs.FilterMessageSnippet("waiting for").Len(); n != 1 {
		t.Errorf("the wait was logged %d times, want once: %v", n, logs.All())
	}
}

// A server whose mount is gone but that goes on serving (a mount detached
// with files open) is waited for lockWait, and then refused with a message
// that says so.
func TestLockMountGoneBounded(t *testing.T) {
	setLockWait(t, 50*time.Millisecond, time.Hour)
	mnt := mountTmpfs(t, "mnt")
	dir := filepath.Join(t.TempDir(), "store")
	s := openT(t, dir)
	defer closeT(t, s)
	serveOn(t, s, mnt)
	if err := unix.Unmount(mnt, 0); err != nil {
		t.Fatal(err)
	}
	want := "store " + dir + " is in use by process " + strconv.Itoa(os.Getpid()) + ", which still serves it 50ms after its mount on " + mnt +
		" was unmounted: the mount was detached, and files are still open on it (one mmapfs serves a store at a time)"
	if _, err := Open(dir, Options{}); !errors.Is(err, ErrInUse) || err.Error() != want {
		t.Errorf("Open = %v; want %q", err, want)
	}
}

// What the lock file says is read back as written; what is not known is
// left out.
func TestLockInfo(t *testing.T) {
	m := &lockMount{id: "42", dev: "0:57", point: "/mnt/a b\tc"}
	for _, li := range []lockInfo{{}, {pid: "12"}, {pid: "12", mount: m}} {
		got := parseLockInfo(li.format())
		if got.pid != li.pid || (got.mount == nil) != (li.mount == nil) || (got.mount != nil && *got.mount != *li.mount) {
			t.Errorf("parse(format(%+v)) = %+v", li, got)
		}
	}
	for data, want := range map[string]lockInfo{
		"":                         {},
		"\n":                       {},
		" 7 \n":                    {pid: "7"},
		"7\nmount 1 2\nfuture x\n": {pid: "7"},
	} {
		if got := parseLockInfo([]byte(data)); got.pid != want.pid || got.mount != nil {
			t.Errorf("parseLockInfo(%q) = %+v, want %+v", data, got, want)
		}
	}
	if got := (lockInfo{}).who(); got != "another process" {
		t.Errorf("who of no pid = %q", got)
	}
	if got := string((lockInfo{pid: "12", mount: m}).format()); got != "12\nmount 42 0:57 /mnt/a\\040b\\011c\n" {
		t.Errorf("lock file %q: the mount point is not escaped as in mountinfo", got)
	}
}
