package tests

// Where the mmapfs program logs: --log-file (opened anew on SIGHUP), and
// the mount(8) form, which prints nothing but failures on the terminal of
// mount(8); and scripts/install, which lays the program out for mount(8).

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// binPollFile waits until the file at path holds want, and returns its
// text.
func binPollFile(t *testing.T, path, want string) string {
	t.Helper()
	deadline := time.Now().Add(binMountTimeout)
	for {
		b, _ := os.ReadFile(path)
		if strings.Contains(string(b), want) {
			return string(b)
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: no %q within %v; it holds:\n%s", path, want, binMountTimeout, b)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// binRotate moves the log file away as logrotate does, signals the server
// with SIGHUP, and waits until it logs to a new file at the same path.
func binRotate(t *testing.T, logFile string, pid int) {
	t.Helper()
	if err := os.Rename(logFile, logFile+".1"); err != nil {
		t.Fatal(err)
	}
	if err := unix.Kill(pid, unix.SIGHUP); err != nil {
		t.Fatalf("SIGHUP to %d: %v", pid, err)
	}
	binPollFile(t, logFile, "SIGHUP: log file reopened")
}

// binCheckRotated checks the two files after a rotation and an unmount:
// the mount before, the unmount after.
func binCheckRotated(t *testing.T, logFile string) {
	t.Helper()
	old, _ := os.ReadFile(logFile + ".1")
	if !strings.Contains(string(old), "\tINFO\tmmapfs\tmounted ") || strings.Contains(string(old), "unmounted") {
		t.Errorf("the moved log:\n%s", old)
	}
	cur := binPollFile(t, logFile, "\tINFO\tmmapfs\tunmounted ")
	if strings.Contains(cur, "\tmounted ") {
		t.Errorf("the new log:\n%s", cur)
	}
}

// `mmapfs mount --log-file F` logs to F, not to standard error; SIGHUP
// after F was moved away makes it write to a new F.
func TestBinaryLogFileReopen(t *testing.T) {
	logFile := filepath.Join(t.TempDir(), "mmapfs.log")
	mnt := binMountpoint(t)
	memdir := binMemDir(t)
	p := binStart(t, nil, "mount", "--memdir", memdir, "--log-file", logFile, mnt)
	binWaitMounted(t, nil, mnt)
	binPollFile(t, logFile, "\tINFO\tmmapfs\tmounted "+mnt)
	binReadWrite(t, mnt)
	binRotate(t, logFile, p.cmd.Process.Pid)
	if !p.binRunning() {
		t.Fatalf("the server died of SIGHUP: %v", p.err)
	}
	binReadWrite(t, mnt)
	p.binSignal(unix.SIGTERM)
	if code := p.binWait(); code != 0 {
		t.Errorf("exit status %d", code)
	}
	binCheckRotated(t, logFile)
	if out := p.output.String(); out != "" {
		t.Errorf("standard error: %q", out)
	}
	binCheckGone(t, mnt, memdir)
}

// binMountFuse runs mount.fuse3 as mount(8) does for
// `mount -t fuse.mmapfs -o OPTS SOURCE MOUNTPOINT`, with the program on
// the PATH, and returns what it printed and its exit status.
func binMountFuse(t *testing.T, bin, mnt, opts string) (string, int) {
	t.Helper()
	mountFuse, err := exec.LookPath("mount.fuse3")
	if err != nil {
		mountFuse = "/sbin/mount.fuse3"
	}
	if _, err := os.Stat(mountFuse); err != nil {
		t.Skipf("no mount.fuse3: %v", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), binCmdTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, mountFuse, "scratch", mnt, "-t", "fuse.mmapfs", "-o", opts)
	cmd.Env = append(os.Environ(), "PATH="+filepath.Dir(bin)+":"+os.Getenv("PATH"))
	cmd.WaitDelay = 5 * time.Second
	out, err := cmd.CombinedOutput()
	var ee *exec.ExitError
	switch {
	case errors.As(err, &ee):
		return string(out), ee.ExitCode()
	case err != nil:
		t.Fatalf("mount.fuse3: %v: %s", err, out)
	}
	return string(out), 0
}

// The mount(8) form prints nothing on the terminal of mount(8) but a
// failure: the background server logs to the system log, or to
// -o log_file=, where SIGHUP after a rotation makes it write to a new
// file.
func TestBinaryMountHelperQuiet(t *testing.T) {
	needRootBin(t) // mount(8) forms mount directly
	bin := binBuild(t)
	for _, c := range []struct {
		name, opts string
	}{
		{"syslog", ""},
		{"log_file", ",log_file=LOG"},
		{"log_file-debug", ",log_file=LOG,log_level=debug"},
	} {
		t.Run(c.name, func(t *testing.T) {
			mnt := binMountpoint(t)
			memdir := binMemDir(t)
			logFile := filepath.Join(t.TempDir(), "mmapfs.log")
			binReapServers(t, bin, mnt, mnt, binRunTimeout)
			opts := "rw,size=32m,memdir=" + memdir + strings.ReplaceAll(c.opts, "LOG", logFile)
			out, code := binMountFuse(t, bin, mnt, opts)
			if code != 0 || out != "" {
				t.Fatalf("mount.fuse3 -o %s: exit %d, printed %q; want 0 and nothing", opts, code, out)
			}
			if m := binFindMount(mnt); m == nil || m.fstype != "fuse.mmapfs" {
				t.Fatalf("not mounted after the helper returned: %+v", m)
			}
			servers := binServers(bin, mnt)
			if len(servers) != 1 {
				t.Fatalf("servers in the background: %v, want one", servers)
			}
			binReadWrite(t, mnt)
			if c.opts != "" {
				binPollFile(t, logFile, "\tINFO\tmmapfs\tmounted "+mnt)
				binRotate(t, logFile, servers[0])
			} else if err := unix.Kill(servers[0], unix.SIGHUP); err != nil {
				t.Fatal(err)
			}
			binReadWrite(t, mnt) // it survived SIGHUP
			binUmountWait(t, bin, mnt)
			if c.opts != "" {
				binCheckRotated(t, logFile)
			}
			binCheckGone(t, mnt, memdir)
		})
	}

	// Failures, found before going to the background or by the server
	// after, are each one line on the terminal, with a non-zero status.
	dir := t.TempDir()
	file := filepath.Join(dir, "file")
	if err := os.WriteFile(file, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	logFile := filepath.Join(dir, "mmapfs.log")
	for _, c := range []struct {
		mnt, opts, want string
		code            int
	}{
		{dir, "bogus", `mmapfs: unknown mount option "bogus"` + "\n", 2},
		{file, "size=1m", "mmapfs: mount point " + file + ": not a directory\n", 1},
		{file, "size=1m,log_file=" + logFile, "mmapfs: mount point " + file + ": not a directory\n", 1},
		{dir, "log_file=" + filepath.Join(dir, "missing", "log"), "mmapfs: log file: open " + filepath.Join(dir, "missing", "log") + ": no such file or directory\n", 1},
	} {
		out, code := binMountFuse(t, bin, c.mnt, c.opts)
		if code != c.code || out != c.want {
			t.Errorf("mount.fuse3 -o %s: exit %d, printed %q; want %d, %q", c.opts, code, out, c.code, c.want)
		}
	}
	// The failure of a server that logs to a file is in the file too.
	if b, _ := os.ReadFile(logFile); !strings.Contains(string(b), "\tERROR\tmmapfs\tmount point "+file+": not a directory\n") {
		t.Errorf("the log file lacks the failure:\n%s", b)
	}
}

// scripts/install into a scratch PREFIX lays out the program, the man
// page (which man renders) and the unit template (with the program's
// path); the uninstall removes them.
func TestBinaryInstall(t *testing.T) {
	bin := binBuild(t)
	prefix := filepath.Join(t.TempDir(), "prefix")
	ctx, cancel := context.WithTimeout(context.Background(), binCmdTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, "../scripts/install", prefix)
	cmd.Env = append(os.Environ(), "MMAPFS_BINARY="+bin)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("scripts/install %s: %v\n%s", prefix, err, out)
	}
	for _, f := range []struct {
		path string
		mode os.FileMode
	}{
		{"bin/mmapfs", 0o755},
		{"share/man/man8/mmapfs.8", 0o644},
		{"lib/systemd/system/mmapfs@.service", 0o644},
	} {
		fi, err := os.Stat(filepath.Join(prefix, f.path))
		if err != nil || fi.Mode().Perm() != f.mode {
			t.Errorf("%s: %v, %v; want mode %v", f.path, fi, err, f.mode)
		}
	}
	unit, _ := os.ReadFile(filepath.Join(prefix, "lib/systemd/system/mmapfs@.service"))
	if !strings.Contains(string(unit), "\nExecStart="+prefix+"/bin/mmapfs mount --store /var/lib/mmapfs/%i ") {
		t.Errorf("unit:\n%s", unit)
	}
	if _, err := exec.LookPath("man"); err == nil {
		cmd := exec.CommandContext(ctx, "man", "-l", filepath.Join(prefix, "share/man/man8/mmapfs.8"))
		cmd.Env = append(os.Environ(), "MANPAGER=cat", "MANWIDTH=80")
		out, err := cmd.Output()
		if err != nil || !strings.Contains(string(out), "mmapfs fsck [--repair]") || !strings.Contains(string(out), "--log-file FILE") {
			t.Errorf("man -l: %v\n%s", err, out)
		}
	}
	cmd = exec.CommandContext(ctx, "../scripts/install", "--uninstall", prefix)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("scripts/install --uninstall: %v\n%s", err, out)
	}
	if _, err := os.Stat(filepath.Join(prefix, "bin/mmapfs")); !os.IsNotExist(err) {
		t.Errorf("bin/mmapfs after the uninstall: %v", err)
	}
}

// scripts/install with its default prefix (/usr/local) puts the program
// where mount(8) finds it: `mount -t fuse.mmapfs` then mounts with nothing
// on the PATH but the standard directories. Skipped where /usr/local
// already has an mmapfs, which the test must not replace.
func TestBinaryInstallDefaultPrefix(t *testing.T) {
	needRootBin(t) // installs into /usr/local and mounts through mount(8)
	bin := binBuild(t)
	installed := []string{"/usr/local/bin/mmapfs", "/usr/local/share/man/man8/mmapfs.8", "/usr/local/lib/systemd/system/mmapfs@.service"}
	for _, f := range installed {
		if _, err := os.Lstat(f); err == nil {
			t.Skipf("%s exists already", f)
		}
	}
	if _, err := exec.LookPath("mount.fuse3"); err != nil {
		if _, err := os.Stat("/sbin/mount.fuse3"); err != nil {
			t.Skip("no mount.fuse3")
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), binCmdTimeout)
	defer cancel()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), binCmdTimeout)
		defer cancel()
		if out, err := exec.CommandContext(ctx, "../scripts/install", "--uninstall").CombinedOutput(); err != nil {
			t.Errorf("scripts/install --uninstall: %v\n%s", err, out)
		}
		for _, f := range installed {
			if _, err := os.Lstat(f); err == nil {
				t.Errorf("%s left after the uninstall", f)
			}
		}
	})
	cmd := exec.CommandContext(ctx, "../scripts/install")
	cmd.Env = append(os.Environ(), "MMAPFS_BINARY="+bin)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("scripts/install: %v\n%s", err, out)
	}
	if strings.Contains(string(out), "note:") {
		t.Errorf("scripts/install with the default prefix printed a note:\n%s", out)
	}

	mnt := binMountpoint(t)
	memdir := binMemDir(t)
	installedBin := "/usr/local/bin/mmapfs"
	binReapServers(t, installedBin, mnt, mnt, binRunTimeout)
	env := append(os.Environ(), "PATH=/usr/sbin:/usr/bin:/sbin:/bin")
	if err := binRunEnv(t, env, nil, "mount", "-t", "fuse.mmapfs", "-o", "size=16m,memdir="+memdir, "scratch", mnt); err != nil {
		t.Fatalf("mount -t fuse.mmapfs with the program installed in /usr/local: %v", err)
	}
	if m := binFindMount(mnt); m == nil || m.fstype != "fuse.mmapfs" {
		t.Fatalf("not mounted after mount(8) returned: %+v", m)
	}
	binReadWrite(t, mnt)
	binUmountWait(t, installedBin, mnt)
	binCheckGone(t, mnt, memdir)
}
