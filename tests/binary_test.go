package tests

// End-to-end tests of the mmapfs program: built once, run as a user runs
// it, stopped every way a user stops it. Every process and mount a test
// starts is cleaned up by t.Cleanup, also when the test fails, and every
// wait has a deadline.

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"runtime/debug"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

const (
	binBuildTimeout = 5 * time.Minute
	binRunTimeout   = 2 * time.Minute  // the longest any mmapfs process may live
	binMountTimeout = 20 * time.Second // until the mount appears
	binExitTimeout  = 20 * time.Second // until the server exits once told to
	binCmdTimeout   = 20 * time.Second // helper commands: fusermount3, mount.fuse3, ...
)

var (
	binOnce sync.Once
	binPath string
	binErr  error
)

// binBuild builds cmd/mmapfs once per test binary (with -race if the tests
// run with it) and returns the path of the program.
func binBuild(t *testing.T) string {
	t.Helper()
	if os.Getenv("MMAPFS_TEST_TMPFS") == "1" {
		t.Skip("tests the mmapfs program; skipped in tmpfs mode")
	}
	if _, err := os.Stat("/dev/fuse"); err != nil {
		t.Skipf("no FUSE: %v", err)
	}
	binOnce.Do(func() { binPath, binErr = binDoBuild() })
	if binErr != nil {
		t.Fatalf("building mmapfs: %v", binErr)
	}
	return binPath
}

func binDoBuild() (string, error) {
	root, err := filepath.Abs("..")
	if err != nil {
		return "", err
	}
	if _, err := os.Stat(filepath.Join(root, "go.mod")); err != nil {
		return "", fmt.Errorf("module root not found: %v", err)
	}
	// One directory per test process; those of processes that are gone
	// are removed here, so at most the last run's binary is left over.
	parent := filepath.Join(os.TempDir(), "mmapfs-bintest")
	if err := os.MkdirAll(parent, 0o755); err != nil {
		return "", err
	}
	if entries, err := os.ReadDir(parent); err == nil {
		for _, e := range entries {
			pid, err := strconv.Atoi(e.Name())
			if err == nil && pid != os.Getpid() && unix.Kill(pid, 0) == unix.ESRCH {
				os.RemoveAll(filepath.Join(parent, e.Name()))
			}
		}
	}
	dir := filepath.Join(parent, strconv.Itoa(os.Getpid()))
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", err
	}
	if err := os.Chmod(parent, 0o755); err != nil { // other users run it too
		return "", err
	}
	out := filepath.Join(dir, "mmapfs")
	goTool, err := exec.LookPath("go")
	if err != nil {
		goTool = filepath.Join(os.Getenv("GOROOT"), "bin", "go")
	}
	args := []string{"build", "-o", out}
	if binRaceEnabled() {
		args = append(args, "-race")
	}
	args = append(args, "./cmd/mmapfs")
	ctx, cancel := context.WithTimeout(context.Background(), binBuildTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, goTool, args...)
	cmd.Dir = root
	if b, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("go %s: %v\n%s", strings.Join(args, " "), err, b)
	}
	return out, nil
}

// binRaceEnabled reports whether this test binary was built with -race.
func binRaceEnabled() bool {
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		return false
	}
	for _, s := range bi.Settings {
		if s.Key == "-race" && s.Value == "true" {
			return true
		}
	}
	return false
}

// binBuffer is a bytes.Buffer safe for the writer goroutine of exec.
type binBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *binBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *binBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// binProc is a running mmapfs process.
type binProc struct {
	t      *testing.T
	cmd    *exec.Cmd
	output *binBuffer // standard output and error
	done   chan struct{}
	err    error // of Wait, once done is closed
}

// binStart starts mmapfs with args. A cleanup kills it if it is still
// running when the test ends.
func binStart(t *testing.T, cred *syscall.Credential, args ...string) *binProc {
	t.Helper()
	bin := binBuild(t)
	ctx, cancel := context.WithTimeout(context.Background(), binRunTimeout)
	p := &binProc{t: t, output: &binBuffer{}, done: make(chan struct{})}
	p.cmd = exec.CommandContext(ctx, bin, args...)
	p.cmd.Stdout = p.output
	p.cmd.Stderr = p.output
	p.cmd.WaitDelay = 5 * time.Second
	if cred != nil {
		p.cmd.SysProcAttr = &syscall.SysProcAttr{Credential: cred}
	}
	if err := p.cmd.Start(); err != nil {
		cancel()
		t.Fatalf("starting mmapfs %q: %v", args, err)
	}
	go func() {
		p.err = p.cmd.Wait()
		cancel()
		close(p.done)
	}()
	t.Cleanup(func() {
		select {
		case <-p.done:
			return
		default:
		}
		// Still serving: the test failed. Ask it to stop, then make it.
		_ = p.cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-p.done:
			return
		case <-time.After(3 * time.Second):
		}
		_ = p.cmd.Process.Kill()
		select {
		case <-p.done:
		case <-time.After(binExitTimeout):
			t.Errorf("mmapfs %q (pid %d) did not die", args, p.cmd.Process.Pid)
		}
	})
	return p
}

// binWait waits until the process exits and returns its exit status.
func (p *binProc) binWait() int {
	p.t.Helper()
	select {
	case <-p.done:
	case <-time.After(binExitTimeout):
		p.t.Fatalf("mmapfs did not exit within %v; output:\n%s", binExitTimeout, p.output)
	}
	var ee *exec.ExitError
	if errors.As(p.err, &ee) {
		return ee.ExitCode()
	}
	if p.err != nil {
		p.t.Fatalf("mmapfs: %v", p.err)
	}
	return 0
}

func (p *binProc) binRunning() bool {
	select {
	case <-p.done:
		return false
	default:
		return true
	}
}

func (p *binProc) binSignal(sig os.Signal) {
	p.t.Helper()
	if err := p.cmd.Process.Signal(sig); err != nil {
		p.t.Fatalf("signal %v: %v", sig, err)
	}
}

// binMountpoint returns a new, empty directory to mount on, with a cleanup
// that detaches whatever is still mounted on it. It is registered after the
// directory's own removal, so it runs before it.
func binMountpoint(t *testing.T) string {
	t.Helper()
	dir, err := filepath.EvalSymlinks(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	mnt := filepath.Join(dir, "mnt")
	if err := os.Mkdir(mnt, 0o755); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { binForceUnmount(t, mnt) })
	return mnt
}

func binForceUnmount(t *testing.T, mnt string) {
	for i := 0; i < 10 && binFindMount(mnt) != nil; i++ {
		if err := unix.Unmount(mnt, unix.MNT_DETACH); err != nil {
			_ = binRun(t, "fusermount3", "-u", "-z", mnt)
		}
	}
}

// binMemDir returns a new directory to hold the memory store, on /dev/shm
// when there is one, removed at the end of the test.
func binMemDir(t *testing.T) string {
	t.Helper()
	base := "/dev/shm"
	if fi, err := os.Stat(base); err != nil || !fi.IsDir() {
		base = t.TempDir()
	}
	dir, err := os.MkdirTemp(base, "mmapfs-bintest-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		// A server killed by the test leaves the tmpfs of its store
		// (passthrough with size=); the next server would remove it.
		for _, m := range binMountsUnder(dir) {
			if err := unix.Unmount(m, unix.MNT_DETACH); err != nil {
				t.Errorf("unmount %s: %v", m, err)
			}
		}
		os.RemoveAll(dir)
	})
	return dir
}

// binUnmount runs fusermount3 -u on mnt. The mount is busy while the last
// RELEASE is in flight, and while a child forked by a test running
// alongside holds copies of this process's descriptors (files on the mount
// included) until it execs: EBUSY is tried again for 2.5 s.
func binUnmount(t *testing.T, mnt string) error {
	var err error
	for try := 0; try < 50; try++ {
		if err = binRun(t, "fusermount3", "-u", mnt); err == nil || !strings.Contains(err.Error(), "busy") {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	return err
}

// binMountsUnder returns the mount points below dir, deepest first.
func binMountsUnder(dir string) []string {
	b, err := os.ReadFile("/proc/self/mounts")
	if err != nil {
		return nil
	}
	var ms []string
	for _, line := range strings.Split(string(b), "\n") {
		if f := strings.Fields(line); len(f) > 1 && strings.HasPrefix(f[1], dir+"/") {
			ms = append(ms, f[1])
		}
	}
	slices.Reverse(ms)
	return ms
}

// binMountInfo is a line of /proc/self/mountinfo.
type binMountInfo struct {
	mountpoint, options, fstype, source string
}

// binFindMount returns the topmost mount on mnt, or nil.
func binFindMount(mnt string) *binMountInfo {
	b, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		return nil
	}
	var found *binMountInfo
	for _, line := range strings.Split(string(b), "\n") {
		f := strings.Fields(line)
		sep := -1
		for i := 6; i < len(f); i++ {
			if f[i] == "-" {
				sep = i
				break
			}
		}
		if sep < 0 || sep+2 >= len(f) {
			continue
		}
		if strings.ReplaceAll(f[4], `\040`, " ") == mnt {
			found = &binMountInfo{mountpoint: mnt, options: f[5], fstype: f[sep+1], source: f[sep+2]}
		}
	}
	return found
}

// binWaitMounted waits until mmapfs is mounted on mnt; p, if not nil, is
// the server, whose early exit fails the test at once.
func binWaitMounted(t *testing.T, p *binProc, mnt string) *binMountInfo {
	t.Helper()
	deadline := time.Now().Add(binMountTimeout)
	for {
		if m := binFindMount(mnt); m != nil && m.fstype == "fuse.mmapfs" {
			// The mount shows before the server is done mounting: go-fuse
			// then opens a file on it (its poll probe), and a server
			// killed with that file open waits at exit for the answer
			// to its own FLUSH. Wait for its "mounted" line as well.
			for p != nil && p.binRunning() && !strings.Contains(p.output.String(), "mounted ") && time.Now().Before(deadline) {
				time.Sleep(5 * time.Millisecond)
			}
			return m
		}
		if p != nil && !p.binRunning() {
			t.Fatalf("mmapfs exited (%v) before mounting; output:\n%s", p.err, p.output)
		}
		if time.Now().After(deadline) {
			out := ""
			if p != nil {
				out = p.output.String()
			}
			t.Fatalf("%s not mounted within %v; output:\n%s", mnt, binMountTimeout, out)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// binWaitUnmounted waits until nothing is mounted on mnt.
func binWaitUnmounted(t *testing.T, mnt string) {
	t.Helper()
	deadline := time.Now().Add(binExitTimeout)
	for binFindMount(mnt) != nil {
		if time.Now().After(deadline) {
			t.Fatalf("%s still mounted after %v", mnt, binExitTimeout)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// binRun runs a command with a deadline and returns its error, with its
// output in the message.
func binRun(t *testing.T, name string, args ...string) error {
	return binRunEnv(t, nil, nil, name, args...)
}

func binRunEnv(t *testing.T, env []string, cred *syscall.Credential, name string, args ...string) error {
	ctx, cancel := context.WithTimeout(context.Background(), binCmdTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.WaitDelay = 5 * time.Second
	if env != nil {
		cmd.Env = env
	}
	if cred != nil {
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: cred}
	}
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("%s %q: %v: %s", name, args, err, out)
	}
	return nil
}

// binStoreDirs lists the memory stores (mmapfs-*) in memdir.
func binStoreDirs(t *testing.T, memdir string) []string {
	t.Helper()
	m, err := filepath.Glob(filepath.Join(memdir, "mmapfs-*"))
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// binCheckStore checks that one private store directory exists in memdir.
func binCheckStore(t *testing.T, memdir string) {
	t.Helper()
	dirs := binStoreDirs(t, memdir)
	if len(dirs) != 1 {
		t.Fatalf("memory stores in %s: %q, want one", memdir, dirs)
	}
	fi, err := os.Stat(dirs[0])
	if err != nil {
		t.Fatal(err)
	}
	if !fi.IsDir() || fi.Mode().Perm() != 0o700 {
		t.Errorf("memory store %s: mode %v, want a directory 0700", dirs[0], fi.Mode())
	}
}

// binCheckGone checks what a clean exit leaves: no mount, no store.
func binCheckGone(t *testing.T, mnt, memdir string) {
	t.Helper()
	if m := binFindMount(mnt); m != nil {
		t.Errorf("%s still mounted: %+v", mnt, *m)
	}
	if dirs := binStoreDirs(t, memdir); len(dirs) != 0 {
		t.Errorf("memory store not removed: %q", dirs)
	}
}

// binReadWrite writes a file on the mount and reads it back.
func binReadWrite(t *testing.T, mnt string) {
	t.Helper()
	data := bytes.Repeat([]byte("mmapfs binary test\n"), 10000)
	name := filepath.Join(mnt, "file")
	if err := os.WriteFile(name, data, 0o644); err != nil {
		t.Fatalf("write: %v", err)
	}
	got, err := os.ReadFile(name)
	if err != nil {
		t.Fatalf("read: %v", err)
	}
	if !bytes.Equal(got, data) {
		t.Fatalf("read back %d bytes, differing from the %d written", len(got), len(data))
	}
}

// binMount starts `mmapfs mount` with extra args on a new mount point and
// memory store directory, and waits until it is mounted.
func binMount(t *testing.T, args ...string) (p *binProc, mnt, memdir string) {
	t.Helper()
	mnt = binMountpoint(t)
	memdir = binMemDir(t)
	all := append([]string{"mount", "--memdir", memdir}, args...)
	p = binStart(t, nil, append(all, mnt)...)
	binWaitMounted(t, p, mnt)
	return p, mnt, memdir
}

// fusermount3 -u from outside ends the server cleanly.
func TestBinaryUnmountFusermount(t *testing.T) {
	p, mnt, memdir := binMount(t, "--size", "64M")
	binCheckStore(t, memdir)
	binReadWrite(t, mnt)
	if err := binUnmount(t, mnt); err != nil {
		t.Fatal(err)
	}
	if code := p.binWait(); code != 0 {
		t.Fatalf("exit status %d, want 0; output:\n%s", code, p.output)
	}
	binCheckGone(t, mnt, memdir)
	out := p.output.String()
	if !strings.Contains(out, "mounted "+mnt) || !strings.Contains(out, "unmounted "+mnt) {
		t.Errorf("log lacks the mounted/unmounted lines:\n%s", out)
	}
}

// SIGINT and SIGTERM unmount, remove the store and exit 0.
func TestBinarySignals(t *testing.T) {
	for _, sig := range []syscall.Signal{syscall.SIGINT, syscall.SIGTERM} {
		t.Run(unix.SignalName(sig), func(t *testing.T) {
			p, mnt, memdir := binMount(t, "--size", "16M", "--log-format", "json")
			binReadWrite(t, mnt)
			p.binSignal(sig)
			if code := p.binWait(); code != 0 {
				t.Fatalf("exit status %d, want 0; output:\n%s", code, p.output)
			}
			binCheckGone(t, mnt, memdir)
			// --log-format json: every line is an object with a message.
			for _, line := range strings.Split(strings.TrimSpace(p.output.String()), "\n") {
				var rec map[string]any
				if err := json.Unmarshal([]byte(line), &rec); err != nil || rec["msg"] == nil {
					t.Errorf("log line is not JSON with a msg: %q (%v)", line, err)
				}
			}
		})
	}
}

// A signal while a file is open on the mount detaches it lazily; the server
// exits 0 once the file is closed.
func TestBinaryBusyUnmount(t *testing.T) {
	p, mnt, memdir := binMount(t, "--size", "16M")
	f, err := os.Create(filepath.Join(mnt, "held"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	p.binSignal(syscall.SIGTERM)
	binWaitUnmounted(t, mnt)
	if _, err := f.WriteString("still works\n"); err != nil {
		t.Errorf("write to a file held open across the lazy unmount: %v", err)
	}
	time.Sleep(200 * time.Millisecond)
	if !p.binRunning() {
		t.Fatalf("mmapfs exited while a file was still open; output:\n%s", p.output)
	}
	f.Close()
	if code := p.binWait(); code != 0 {
		t.Fatalf("exit status %d, want 0; output:\n%s", code, p.output)
	}
	binCheckGone(t, mnt, memdir)
	if !strings.Contains(p.output.String(), "busy") {
		t.Errorf("log does not say the mount was busy:\n%s", p.output)
	}
}

// A second signal stops the server without waiting for open files.
func TestBinarySecondSignalForces(t *testing.T) {
	p, mnt, memdir := binMount(t, "--size", "16M")
	f, err := os.Create(filepath.Join(mnt, "held"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	p.binSignal(syscall.SIGINT)
	binWaitUnmounted(t, mnt)
	p.binSignal(syscall.SIGINT)
	// 0 if the connection could be aborted (fusectl), 1 if the server had
	// to be abandoned with the file still open.
	if code := p.binWait(); code != 0 && code != 1 {
		t.Fatalf("exit status %d, want 0 or 1; output:\n%s", code, p.output)
	}
	binCheckGone(t, mnt, memdir)
}

// Mistakes give one line on standard error and a non-zero status, and leave
// nothing behind.
func TestBinaryErrors(t *testing.T) {
	bin := binBuild(t)
	memdir := binMemDir(t)
	dir := t.TempDir()
	file := filepath.Join(dir, "file")
	if err := os.WriteFile(file, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	missing := filepath.Join(dir, "missing")

	// A live mount, to mount on again.
	_, busy, _ := binMount(t, "--size", "16M")

	for _, c := range []struct {
		name string
		args []string
		code int
		want string // the whole line, or a part of it
	}{
		{"missing", []string{"mount", "--memdir", memdir, missing}, 1, "mmapfs: mount point " + missing + ": no such file or directory\n"},
		{"file", []string{"mount", "--memdir", memdir, file}, 1, "mmapfs: mount point " + file + ": not a directory\n"},
		{"mounted", []string{"mount", "--memdir", memdir, busy}, 1, "already mounted"},
		{"bad-o", []string{"mount", "--memdir", memdir, "-o", "size=1G,bogus", dir}, 2, `unknown mount option "bogus"`},
		{"bad-size", []string{"mount", "--memdir", memdir, "--size", "12parsecs", dir}, 2, `invalid value "12parsecs" for --size`},
		{"bad-mode", []string{"mount", "-o", "mode=999", dir}, 2, "invalid mount option mode=999"},
		{"bad-memdir", []string{"mount", "--memdir", missing, dir}, 1, "memory store directory " + missing + ": no such file or directory"},
		{"unknown-command", []string{"frobnicate"}, 2, `unknown command "frobnicate"`},
		{"no-command", nil, 2, "missing command"},
		{"helper-form-bad-o", []string{"none", dir, "-o", "rw,size=tiny"}, 2, "invalid mount option size=tiny"},
	} {
		t.Run(c.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), binCmdTimeout)
			defer cancel()
			cmd := exec.CommandContext(ctx, bin, c.args...)
			var stdout, stderr bytes.Buffer
			cmd.Stdout, cmd.Stderr = &stdout, &stderr
			err := cmd.Run()
			var ee *exec.ExitError
			if !errors.As(err, &ee) || ee.ExitCode() != c.code {
				t.Fatalf("mmapfs %q: %v, want exit status %d; stderr %q", c.args, err, c.code, stderr.String())
			}
			errs := stderr.String()
			if strings.Count(errs, "\n") != 1 || !strings.HasPrefix(errs, "mmapfs: ") || !strings.Contains(errs, c.want) {
				t.Errorf("mmapfs %q: stderr %q, want one line with %q", c.args, errs, c.want)
			}
			if stdout.Len() != 0 {
				t.Errorf("mmapfs %q: stdout %q", c.args, stdout.String())
			}
			if dirs := binStoreDirs(t, memdir); len(dirs) != 0 {
				t.Errorf("a memory store was left behind: %q", dirs)
			}
		})
	}
}

// The store of a killed server is removed by the next server that starts on
// the same memory directory; a live server's store is left alone.
func TestBinaryAbandonedStoreRemoved(t *testing.T) {
	killed, killedMnt, memdir := binMount(t, "--size", "16M")
	binReadWrite(t, killedMnt)
	old := binStoreDirs(t, memdir)
	if len(old) != 1 {
		t.Fatalf("stores %q, want one", old)
	}
	_ = killed.cmd.Process.Kill()
	killed.binWait()
	binForceUnmount(t, killedMnt)

	start := func() *binProc {
		mnt := binMountpoint(t)
		p := binStart(t, nil, "mount", "--size", "16M", "--memdir", memdir, mnt)
		binWaitMounted(t, p, mnt)
		return p
	}
	second := start()
	if stores := binStoreDirs(t, memdir); len(stores) != 1 || stores[0] == old[0] {
		t.Errorf("stores %q after the second server started, want one other than %s", stores, old[0])
	}
	if !strings.Contains(second.output.String(), "removed the memory store of a server that is gone") {
		t.Errorf("no log line about the removed store:\n%s", second.output)
	}
	third := start()
	if stores := binStoreDirs(t, memdir); len(stores) != 2 {
		t.Errorf("stores %q with two servers running, want two", stores)
	}
	for _, p := range []*binProc{second, third} {
		p.binSignal(syscall.SIGTERM)
		if code := p.binWait(); code != 0 {
			t.Errorf("exit status %d; output:\n%s", code, p.output)
		}
	}
	if stores := binStoreDirs(t, memdir); len(stores) != 0 {
		t.Errorf("stores left: %q", stores)
	}
}

func TestBinaryVersionHelp(t *testing.T) {
	bin := binBuild(t)
	for _, c := range []struct {
		args []string
		want []string
	}{
		{[]string{"version"}, []string{"mmapfs ", "go-fuse v"}},
		{[]string{"--version"}, []string{"mmapfs ", "go-fuse v"}},
		{[]string{"--help"}, []string{"NAME", "SYNOPSIS", "OPTIONS", "EXAMPLES", "EXIT STATUS"}},
		{[]string{"help"}, []string{"NAME", "SYNOPSIS"}},
		{[]string{"mount", "--help"}, []string{"NAME", "--size"}},
	} {
		ctx, cancel := context.WithTimeout(context.Background(), binCmdTimeout)
		cmd := exec.CommandContext(ctx, bin, c.args...)
		var stdout, stderr bytes.Buffer
		cmd.Stdout, cmd.Stderr = &stdout, &stderr
		err := cmd.Run()
		cancel()
		if err != nil || stderr.Len() != 0 {
			t.Errorf("mmapfs %q: %v, stderr %q", c.args, err, stderr.String())
		}
		for _, w := range c.want {
			if !strings.Contains(stdout.String(), w) {
				t.Errorf("mmapfs %q: output lacks %q", c.args, w)
			}
		}
	}
}

// size=, inodes=, mode=, uid= and gid= are what statfs and stat report.
func TestBinaryStatfs(t *testing.T) {
	const size = 64 << 20
	p, mnt, _ := binMount(t, "-o", "size=64m,nr_inodes=1000,mode=0750,uid=123,gid=456")
	var st unix.Statfs_t
	if err := unix.Statfs(mnt, &st); err != nil {
		t.Fatal(err)
	}
	total := int64(st.Blocks) * int64(st.Bsize)
	if d := total - size; d < -int64(st.Bsize) || d > int64(st.Bsize) {
		t.Errorf("statfs: %d blocks of %d = %d bytes, want %d", st.Blocks, st.Bsize, total, size)
	}
	if st.Files != 1000 {
		t.Errorf("statfs: %d inodes, want 1000", st.Files)
	}
	var root unix.Stat_t
	if err := unix.Stat(mnt, &root); err != nil {
		t.Fatal(err)
	}
	if root.Mode != unix.S_IFDIR|0o750 || root.Uid != 123 || root.Gid != 456 {
		t.Errorf("root: mode %o uid %d gid %d, want %o 123 456", root.Mode, root.Uid, root.Gid, unix.S_IFDIR|0o750)
	}
	p.binSignal(syscall.SIGTERM)
	if code := p.binWait(); code != 0 {
		t.Fatalf("exit status %d; output:\n%s", code, p.output)
	}
}

// A memory store directory with less room than size= is reported.
func TestBinaryMemDirWarning(t *testing.T) {
	needRootBin(t)
	binBuild(t)
	small := t.TempDir()
	if err := unix.Mount("tmpfs", small, "tmpfs", 0, "size=1m,mode=0700"); err != nil {
		t.Skipf("cannot mount a tmpfs: %v", err)
	}
	t.Cleanup(func() { _ = unix.Unmount(small, unix.MNT_DETACH) })
	mnt := binMountpoint(t)
	p := binStart(t, nil, "mount", "--size", "64M", "--memdir", small, mnt)
	binWaitMounted(t, p, mnt)
	p.binSignal(syscall.SIGTERM)
	if code := p.binWait(); code != 0 {
		t.Fatalf("exit status %d; output:\n%s", code, p.output)
	}
	want := "memory store on " + small + " has 1 MiB free, less than size=64 MiB"
	if !strings.Contains(p.output.String(), want) {
		t.Errorf("no warning %q in:\n%s", want, p.output)
	}
}

func needRootBin(t *testing.T) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root")
	}
}

// binServers returns the pids of running mmapfs processes (the program
// bin) whose command line mentions mnt.
func binServers(bin, mnt string) []int {
	var pids []int
	entries, _ := os.ReadDir("/proc")
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		exe, err := os.Readlink(filepath.Join("/proc", e.Name(), "exe"))
		if err != nil || exe != bin {
			continue // zombies have no exe
		}
		cmdline, _ := os.ReadFile(filepath.Join("/proc", e.Name(), "cmdline"))
		if bytes.Contains(cmdline, []byte(mnt)) {
			pids = append(pids, pid)
		}
	}
	return pids
}

// binReapServers arranges, for a test whose servers go to the background
// (they are not its children), that mnt is detached and the servers of bin
// whose command line mentions match are killed at the end of the test, and
// also after timeout, should one hang: that fails whatever the test is
// blocked on in the mount.
func binReapServers(t *testing.T, bin, match, mnt string, timeout time.Duration) {
	t.Helper()
	kill := func() {
		for _, pid := range binServers(bin, match) {
			_ = unix.Kill(pid, unix.SIGKILL)
		}
	}
	t.Cleanup(func() {
		binForceUnmount(t, mnt)
		kill()
	})
	watchdog := time.AfterFunc(timeout, kill)
	t.Cleanup(func() { watchdog.Stop() })
}

// binUmountWait unmounts mnt with umount(8) and waits until the
// background server of bin serving it has exited.
func binUmountWait(t *testing.T, bin, mnt string) {
	t.Helper()
	if err := binRun(t, "umount", mnt); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(binExitTimeout)
	for len(binServers(bin, mnt)) > 0 {
		if time.Now().After(deadline) {
			t.Fatalf("the background server did not exit after umount")
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// The forms mount(8) uses: mount.fuse3 running `mmapfs SOURCE MOUNTPOINT
// -o OPTIONS`, and a /sbin/mount.fuse.mmapfs link run as
// `mount.fuse.mmapfs SOURCE MOUNTPOINT -o OPTIONS`. Both go to the
// background once mounted, and accept the generic options fstab lines
// carry.
func TestBinaryMountHelper(t *testing.T) {
	needRootBin(t) // mount(8) forms mount directly
	bin := binBuild(t)
	link := filepath.Join(t.TempDir(), "mount.fuse.mmapfs")
	if err := os.Symlink(bin, link); err != nil {
		t.Fatal(err)
	}
	mountFuse, err := exec.LookPath("mount.fuse3")
	if err != nil {
		mountFuse = "/sbin/mount.fuse3"
	}
	for _, c := range []struct {
		name string
		cmd  func(mnt, opts string) []string
	}{
		{"mount.fuse3", func(mnt, opts string) []string {
			return []string{mountFuse, "scratch", mnt, "-t", "fuse.mmapfs", "-o", opts}
		}},
		{"mount.fuse.mmapfs", func(mnt, opts string) []string {
			return []string{link, "scratch", mnt, "-o", opts}
		}},
	} {
		t.Run(c.name, func(t *testing.T) {
			if _, err := os.Stat(c.cmd("", "")[0]); err != nil {
				t.Skipf("%v", err)
			}
			mnt := binMountpoint(t)
			memdir := binMemDir(t)
			binReapServers(t, bin, mnt, mnt, binRunTimeout)
			opts := "rw,size=32m,noatime,nofail,_netdev,auto,user,x-systemd.automount,memdir=" + memdir
			argv := c.cmd(mnt, opts)
			env := append(os.Environ(), "PATH="+filepath.Dir(bin)+":"+os.Getenv("PATH"))
			if err := binRunEnv(t, env, nil, argv[0], argv[1:]...); err != nil {
				t.Fatal(err) // it must return once mounted, not serve
			}
			m := binFindMount(mnt)
			if m == nil || m.fstype != "fuse.mmapfs" {
				t.Fatalf("not mounted after the helper returned: %+v", m)
			}
			if m.source != "scratch" {
				t.Errorf("source %q, want scratch", m.source)
			}
			if !strings.Contains(","+m.options+",", ",noatime,") {
				t.Errorf("mount options %q lack noatime", m.options)
			}
			servers := binServers(bin, mnt)
			if len(servers) != 1 {
				t.Fatalf("servers in the background: %v, want one", servers)
			}
			binCheckStore(t, memdir)
			binReadWrite(t, mnt)
			binUmountWait(t, bin, mnt)
			binCheckGone(t, mnt, memdir)
		})
	}
}

// An ordinary user (nobody, uid 65534, which every Debian machine has:
// fusermount3 needs the user's name) mounts through fusermount3, uses the
// mount (reads, writes, and mmap in a child process) and unmounts it, with
// a memory store and with a persistent store of its own, which keeps the
// files for the user's next mount. The user has no CAP_SYS_ADMIN, so
// passthrough is off. /dev/fuse must be open to other users, as a standard
// install has it (0666); scripts/test, run as root, opens it for the run.
func TestBinaryUnprivileged(t *testing.T) {
	needRootBin(t) // to become another user
	binBuild(t)
	if _, err := exec.LookPath("fusermount3"); err != nil {
		t.Skip("no fusermount3")
	}
	if fi, err := os.Stat("/dev/fuse"); err != nil || fi.Mode().Perm()&0o006 != 0o006 {
		t.Skip("/dev/fuse is not open to other users on this machine (it is 0666 on a standard install)")
	}
	if _, err := user.LookupId(strconv.Itoa(binUserID)); err != nil {
		t.Skipf("no user with uid %d (nobody), which fusermount3 needs: %v", binUserID, err)
	}
	helper := helperBinary(t)

	t.Run("memory", func(t *testing.T) {
		base := binUserDir(t, "mnt")
		mnt := filepath.Join(base, "mnt")
		shm := binMemDir(t)
		if err := os.Chmod(shm, 0o755); err != nil {
			t.Fatal(err)
		}
		memdir := filepath.Join(shm, "mem")
		binUserMkdir(t, memdir)

		p := binUserMount(t, mnt, "--size", "16M", "--memdir", memdir)
		binCheckStore(t, memdir)
		binUserUse(t, helper, mnt)
		binUserUnmount(t, p, mnt)
		binCheckGone(t, mnt, memdir)
	})

	t.Run("store", func(t *testing.T) {
		base := binUserDir(t, "mnt", "store")
		mnt, dir := filepath.Join(base, "mnt"), filepath.Join(base, "store")

		p := binUserMount(t, mnt, "--store", dir)
		binUserUse(t, helper, mnt)
		binUserUnmount(t, p, mnt)
		if m := binFindMount(mnt); m != nil {
			t.Fatalf("%s still mounted: %+v", mnt, *m)
		}
		// The store is the user's: everything in it belongs to them.
		err := filepath.WalkDir(dir, func(path string, _ os.DirEntry, err error) error {
			if err != nil {
				return err
			}
			var st unix.Stat_t
			if err := unix.Lstat(path, &st); err != nil {
				return err
			}
			if st.Uid != binUserID {
				t.Errorf("%s in the store: owner %d, want %d", path, st.Uid, binUserID)
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}

		// The user's next mount has the files, those stored through the
		// mapping included.
		p = binUserMount(t, mnt, "--store", dir)
		res := runAs(t, helper, binUserID, binUserID,
			hop("read", filepath.Join(mnt, "f")),
			hop("read", filepath.Join(mnt, "mapped")),
			hop("read", filepath.Join(mnt, "mapped.want")))
		if res[0] != "ok:hello\n" {
			t.Errorf("f after a remount: %.40q, want ok:hello", res[0])
		}
		if !strings.HasPrefix(res[1], "ok:") || res[1] != res[2] {
			t.Errorf("mapped after a remount: %d bytes (%.40q), want the %d stored through the mapping", len(res[1]), res[1], len(res[2]))
		}
		binUserUnmount(t, p, mnt)
	})
}

// binUserID is the uid and gid of the ordinary user of
// TestBinaryUnprivileged (nobody and nogroup on Debian).
const binUserID = 65534

// binUserCred is the ordinary user, without supplementary groups.
var binUserCred = &syscall.Credential{Uid: binUserID, Gid: binUserID, Groups: []uint32{}}

// binUserDir returns a new directory (0755, removed at the end of the test)
// with the named directories in it, owned by the ordinary user; a cleanup
// detaches whatever is still mounted on them.
func binUserDir(t *testing.T, names ...string) string {
	t.Helper()
	base, err := os.MkdirTemp("", "mmapfs-bintest-user-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(base) })
	if err := os.Chmod(base, 0o755); err != nil {
		t.Fatal(err)
	}
	for _, n := range names {
		d := filepath.Join(base, n)
		binUserMkdir(t, d)
		t.Cleanup(func() { binForceUnmount(t, d) })
	}
	return base
}

// binUserMkdir makes the directory d, 0700 and owned by the ordinary user.
func binUserMkdir(t *testing.T, d string) {
	t.Helper()
	if err := os.Mkdir(d, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.Chown(d, binUserID, binUserID); err != nil {
		t.Fatal(err)
	}
}

// binUserMount starts `mmapfs mount ARGS MNT` as the ordinary user and
// waits until it is mounted, as a user's mount is: nosuid and nodev.
func binUserMount(t *testing.T, mnt string, args ...string) *binProc {
	t.Helper()
	p := binStart(t, binUserCred, append(append([]string{"mount"}, args...), mnt)...)
	m := binWaitMounted(t, p, mnt)
	if !strings.Contains(m.options, "nosuid") || !strings.Contains(m.options, "nodev") {
		t.Errorf("user mount options %q: want nosuid,nodev", m.options)
	}
	return p
}

// binUserUse writes and reads files on mnt as the ordinary user (who owns
// its root), and maps them in a child process: stores through a shared
// mapping seen by read and write and back, a mapping of a file grown past
// 2 MiB. Root has no access to the mount (it is not allow_other).
func binUserUse(t *testing.T, helper, mnt string) {
	t.Helper()
	script := fmt.Sprintf("echo hello > %[1]s/f && test \"$(cat %[1]s/f)\" = hello && test -O %[1]s && test -O %[1]s/f", mnt)
	if err := binRunEnv(t, nil, binUserCred, "/bin/sh", "-c", script); err != nil {
		t.Errorf("as the user: %v", err)
	}
	res := runAs(t, helper, binUserID, binUserID, hop("check", "shared", mnt), hop("check", "grow", mnt))
	for i, name := range []string{"shared", "grow"} {
		if res[i] != "ok" {
			t.Errorf("mmap check %s as the user (in a child process): %s", name, res[i])
		}
	}
}

// binUserUnmount unmounts mnt as the ordinary user (fusermount3 -u; EBUSY
// is tried again for 2.5 s, as binUnmount does) and checks that the server
// p exits with status 0.
func binUserUnmount(t *testing.T, p *binProc, mnt string) {
	t.Helper()
	var err error
	for try := 0; try < 50; try++ {
		if err = binRunEnv(t, nil, binUserCred, "fusermount3", "-u", mnt); err == nil || !strings.Contains(err.Error(), "busy") {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	if err != nil {
		t.Fatal(err)
	}
	if code := p.binWait(); code != 0 {
		t.Fatalf("exit status %d; output:\n%s", code, p.output)
	}
	binWaitUnmounted(t, mnt)
}
