package tests

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// stressngCase is one stress-ng stressor run against the mount: stress-ng
// --NAME 2 --timeout TIMEOUT --verify ... with the extra options args. Sizes
// are kept small so that one bogo operation ends well within the timeout even
// under -race (a stressor stopped in the middle of its first operation
// reports 0 bogo ops, which fails the test).
type stressngCase struct {
	name      string        // subtest name
	stressor  string        // "": name
	timeout   time.Duration // 0: stressngTimeout
	instances int           // 0: stressngInstances
	args      []string
	setup     func(t *testing.T, dir string) []string // extra options that need the work directory
}

// stressngTimeout is the --timeout of a stressor run; stressngInstances the
// number of instances of each stressor; stressngParallel how many stressors
// run at a time.
const (
	stressngTimeout   = 3 * time.Second
	stressngInstances = 2
	stressngParallel  = 2
)

// stressngCases: every stressor of the filesystem and io classes (and the
// file-backed memory-mapping ones) of stress-ng 0.15 that works on a
// directory given with --temp-path.
var stressngCases = []stressngCase{
	{name: "xattr", instances: 1, timeout: 30 * time.Second}, // first: one bogo op is ~50000 xattr calls, a round trip each (slow under -race); it overlaps the others
	{name: "access"},
	{name: "aio"},
	{name: "aiol"},
	{name: "chattr"},
	{name: "chdir", args: []string{"--chdir-dirs", "1024"}},
	{name: "chmod"},
	{name: "chown"},
	{name: "copy-file", args: []string{"--copy-file-bytes", "128m"}}, // the least it takes,
	{name: "dentry", args: []string{"--dentries", "1024"}},
	{name: "dir", args: []string{"--dir-dirs", "1024"}},
	{name: "dirdeep", args: []string{"--dirdeep-inodes", "4096"}},
	{name: "dirmany"},
	{name: "dnotify"},
	{name: "dup"}, // opens a FIFO made in --temp-path
	{name: "fallocate", timeout: 4 * time.Second, args: []string{"--fallocate-bytes", "4m"}},
	{name: "fanotify"},
	{name: "fcntl"},
	{name: "file-ioctl"},
	{name: "filename", timeout: 5 * time.Second},
	{name: "flock"},
	// fpunch first writes half of a 16 MiB file, 4 KiB at a time, inside
	// its timeout (0.15 has no option for the size): beside another
	// stressor under -race that alone took 3 s now and then (0 bogo ops).
	{name: "fpunch", timeout: 8 * time.Second},
	{name: "fsize"},
	{name: "fstat", setup: stressngFstatDir},
	{name: "hdd", args: []string{"--hdd-bytes", "64m"}},
	{name: "inotify"},
	{name: "io"}, // sync(2), which syncs the mount too
	{name: "iomix", args: []string{"--iomix-bytes", "64m"}},
	{name: "ioprio"},
	{name: "lease"},
	{name: "link"},
	{name: "locka"},
	{name: "lockf"},
	{name: "lockofd"},
	{name: "madvise"}, // maps a file made in --temp-path
	{name: "mknod"},
	{name: "mmap", timeout: 4 * time.Second, args: []string{"--mmap-file", "--mmap-bytes", "4m"}},
	{name: "mmap-async", stressor: "mmap", timeout: 4 * time.Second, args: []string{"--mmap-file", "--mmap-async", "--mmap-mprotect", "--mmap-bytes", "4m"}},
	{name: "msync", args: []string{"--msync-bytes", "16m"}},
	{name: "msyncmany"},
	{name: "open"},
	{name: "readahead", timeout: 4 * time.Second, args: []string{"--readahead-bytes", "16m"}},
	{name: "rename"},
	{name: "revio"},
	{name: "seek", args: []string{"--seek-size", "64m", "--seek-punch"}},
	{name: "sendfile"},
	{name: "symlink"},
	{name: "sync-file", timeout: 4 * time.Second, args: []string{"--sync-file-bytes", "4m"}},
	{name: "touch"},
	{name: "utime"},
}

// stressngNotApplicable: the stressors of the filesystem and io classes that
// are not run, and why. Each is reported with t.Log.
var stressngNotApplicable = []struct{ name, reason string }{
	{"fiemap", "FS_IOC_FIEMAP is answered by the VFS only for filesystems with a fiemap inode operation; FUSE has none (and no FUSE request for it), nor has tmpfs: both give EOPNOTSUPP and stress-ng skips the stressor with 0 bogo ops"},
	{"inode-flags", "stress-ng 0.15 reports 0 bogo ops for it on tmpfs too; besides, mmapfs answers FS_IOC_GETFLAGS/SETFLAGS with ENOTTY (no FUSE ioctl support)"},
	{"io-uring", "fails on tmpfs too: stress-ng 0.15.06 checks IORING_OP_STATX completions, which get ENOENT (a stress-ng bug, not a filesystem one)"},
	{"verity", "fs-verity is supported by neither tmpfs nor FUSE; stress-ng skips it"},
	{"bind-mount", "pathological in stress-ng (needs --pathological) and bind-mounts / itself, not --temp-path"},
	{"binderfs", "needs the binderfs filesystem, unrelated to --temp-path"},
	{"rawdev", "needs the raw block device under the temp path; neither tmpfs nor FUSE has one"},
	{"getdent", "reads /proc, /sys and /dev, never --temp-path"},
	{"handle", "name_to_handle_at on /proc files, never --temp-path"},
	{"procfs", "reads /proc only"},
	{"eventfd", "eventfd only; no file"},
	{"tmpfs", "maps files on the tmpfs mounts it finds in /proc/mounts, never --temp-path"},
}

// stressngFstatDir fills a directory with files for --fstat-dir (by
// default the fstat stressor stats /dev).
func stressngFstatDir(t *testing.T, dir string) []string {
	d := filepath.Join(dir, "fstat-dir")
	noErr(t, os.Mkdir(d, 0o755), "mkdir %s", d)
	for i := 0; i < 64; i++ {
		writeFile(t, filepath.Join(d, fmt.Sprintf("f%02d", i)), pattern(i*100, byte(i)))
	}
	noErr(t, os.Mkdir(filepath.Join(d, "sub"), 0o755), "mkdir")
	noErr(t, os.Symlink("f01", filepath.Join(d, "sym")), "symlink")
	return []string{"--fstat-dir", d}
}

// stressngBad matches output lines that report a failure: stress-ng's fail
// and error lines, and anything about verification.
var stressngBad = regexp.MustCompile(`(?i)stress-ng: (fail|error):|verif|fail(ed|ure)|corrupt|mismatch`)

// stressngResult is what one stress-ng run reported.
type stressngResult struct {
	ops     int64 // bogo ops, from the YAML metrics; -1 if absent
	elapsed time.Duration
}

// TestStressNG runs stress-ng's filesystem stressors with --verify, each for
// a few seconds, on one mount (two stressors at a time, each in its own
// directory). A stressor passes if stress-ng exits 0, prints no failure and
// reports more than 0 bogo ops.
func TestStressNG(t *testing.T) {
	// Not parallel with the other tests: bogo ops must stay above 0 on a
	// loaded machine, and the io stressor calls sync(2), which would wait
	// for mounts that other tests stall on purpose.
	bin, err := exec.LookPath("stress-ng")
	if err != nil {
		t.Skip("stress-ng is not installed (apt-get install stress-ng; scripts/test installs it)")
	}
	for _, na := range stressngNotApplicable {
		t.Logf("not applicable: %s: %s", na.name, na.reason)
	}
	mnt, _, _ := mountFS(t, withSize(4<<30), withTimeout(4*time.Minute))
	yamlDir := t.TempDir()

	var mu sync.Mutex
	results := map[string]stressngResult{}
	sem := make(chan struct{}, stressngParallel)
	t.Run("group", func(t *testing.T) {
		for _, c := range stressngCases {
			t.Run(c.name, func(t *testing.T) {
				t.Parallel()
				sem <- struct{}{}
				defer func() { <-sem }()
				r := stressngRun(t, bin, mnt, yamlDir, c)
				mu.Lock()
				results[c.name] = r
				mu.Unlock()
			})
		}
	})

	var sb strings.Builder
	fsName := "mmapfs"
	if tmpfsMode {
		fsName = "tmpfs"
	}
	fmt.Fprintf(&sb, "stress-ng bogo ops on %s (%d instances each):", fsName, stressngInstances)
	for _, c := range stressngCases {
		if r, ok := results[c.name]; ok {
			fmt.Fprintf(&sb, "\n  %-12s %10d  (%.1fs)", c.name, r.ops, r.elapsed.Seconds())
		}
	}
	t.Log(sb.String())
}

// stressngRun runs one stressor in a fresh directory on mnt and checks its
// exit status, output and bogo ops.
func stressngRun(t *testing.T, bin, mnt, yamlDir string, c stressngCase) stressngResult {
	dir := filepath.Join(mnt, c.name)
	noErr(t, os.Mkdir(dir, 0o777), "mkdir %s", dir)
	stressor := c.stressor
	if stressor == "" {
		stressor = c.name
	}
	timeout := c.timeout
	if timeout == 0 {
		timeout = stressngTimeout
	}
	instances := c.instances
	if instances == 0 {
		instances = stressngInstances
	}
	yaml := filepath.Join(yamlDir, c.name+".yaml")
	args := []string{
		"--" + stressor, strconv.Itoa(instances),
		"--timeout", fmt.Sprintf("%ds", int(timeout/time.Second)),
		"--verify", "--metrics-brief",
		"--temp-path", dir,
		"--yaml", yaml,
	}
	args = append(args, c.args...)
	if c.setup != nil {
		args = append(args, c.setup(t, dir)...)
	}

	// stress-ng and its workers run in a process group of their own, killed
	// as a whole when the run is over (or hangs), so no worker outlives it.
	ctx, cancel := context.WithTimeout(context.Background(), timeout+60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, args...)
	cmd.Dir = yamlDir // not the mount: the child chdirs before exec, while the parent holds ForkLock
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	start := time.Now()
	err := cmd.Start()
	noErr(t, err, "start stress-ng")
	pgid := cmd.Process.Pid
	err = cmd.Wait()
	elapsed := time.Since(start)
	syscall.Kill(-pgid, syscall.SIGKILL) // stragglers, if any (ESRCH otherwise)

	cmdline := "stress-ng " + strings.Join(args, " ")
	var bad []string
	sc := bufio.NewScanner(bytes.NewReader(out.Bytes()))
	for sc.Scan() {
		if stressngBad.MatchString(sc.Text()) {
			bad = append(bad, sc.Text())
		}
	}
	if err != nil {
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			t.Errorf("%s: exit status %d", cmdline, ee.ExitCode())
		} else {
			t.Errorf("%s: %v", cmdline, err)
		}
	}
	if ctx.Err() != nil {
		t.Errorf("%s: still running %v after its timeout; killed", cmdline, 60*time.Second)
	}
	if len(bad) > 0 {
		t.Errorf("%s: failures reported:\n%s", cmdline, strings.Join(bad, "\n"))
	}
	ops := stressngBogoOps(yaml, stressor)
	if ops <= 0 && err == nil && len(bad) == 0 {
		t.Errorf("%s: %d bogo ops: the stressor did no work", cmdline, ops)
	}
	if t.Failed() {
		t.Logf("output of %s:\n%s", cmdline, out.String())
	}
	// Leave the mount empty for the next stressor (stress-ng removes its
	// files; what is left is the work directory and fstat's files).
	if err := os.RemoveAll(dir); err != nil {
		t.Errorf("remove %s: %v", dir, err)
	}
	return stressngResult{ops: ops, elapsed: elapsed}
}

// stressngBogoOps reads the bogo ops of stressor from stress-ng's YAML
// report: the "bogo-ops:" line after "- stressor: NAME" under "metrics:".
// It returns -1 if the report or the stressor is missing.
func stressngBogoOps(yaml, stressor string) int64 {
	b, err := os.ReadFile(yaml)
	if err != nil {
		return -1
	}
	in := false
	for _, l := range strings.Split(string(b), "\n") {
		f := strings.Fields(l)
		switch {
		case len(f) == 3 && f[0] == "-" && f[1] == "stressor:":
			in = f[2] == stressor
		case in && len(f) == 2 && f[0] == "bogo-ops:":
			n, err := strconv.ParseInt(f[1], 10, 64)
			if err != nil {
				return -1
			}
			return n
		}
	}
	return -1
}
