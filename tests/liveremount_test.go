package tests

import (
	"bytes"
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// binRunCmd runs the program with args (as cred, if not nil) and returns
// what it printed and its exit status.
func binRunCmd(t *testing.T, cred *syscall.Credential, args ...string) (stdout, stderr string, code int) {
	t.Helper()
	bin := binBuild(t)
	ctx, cancel := context.WithTimeout(context.Background(), binCmdTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, args...)
	cmd.WaitDelay = 5 * time.Second
	var out, errs bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errs
	if cred != nil {
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: cred}
	}
	err := cmd.Run()
	var ee *exec.ExitError
	switch {
	case errors.As(err, &ee):
		code = ee.ExitCode()
	case err != nil:
		t.Fatalf("mmapfs %q: %v", args, err)
	}
	return out.String(), errs.String(), code
}

// remountOpts are the options mount(8) passes to the helper for `mount -o
// remount,NEW MNT`: the mount's own from the mount table, remount, then
// NEW (as util-linux 2.38 does).
func remountOpts(t *testing.T, mnt, extra string) string {
	t.Helper()
	mi := binFindMount(mnt)
	if mi == nil {
		t.Fatalf("%s is not mounted", mnt)
	}
	perMount, super := binMountOptions(t, mnt)
	opts := perMount + ",remount," + super
	if extra != "" {
		opts += "," + extra
	}
	return opts
}

// binMountOptions returns the per-mount and the filesystem's options of
// the mount on mnt, as /proc/self/mountinfo has them.
func binMountOptions(t *testing.T, mnt string) (perMount, super string) {
	t.Helper()
	data, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(data), "\n") {
		f := strings.Fields(line)
		if len(f) < 10 || f[4] != mnt {
			continue
		}
		for i := 6; i+3 < len(f); i++ {
			if f[i] == "-" {
				perMount, super = f[5], f[i+3]
			}
		}
	}
	if perMount == "" {
		t.Fatalf("%s is not in mountinfo", mnt)
	}
	return perMount, super
}

// binRemount remounts mnt through mount.fuse3 as mount(8) runs it for
// `mount -o remount,EXTRA MNT`, and returns what it printed and its exit
// status.
func binRemount(t *testing.T, mnt, extra string) (string, int) {
	t.Helper()
	return binMountFuse(t, binBuild(t), mnt, remountOpts(t, mnt, extra))
}

// binMountAny mounts with args as binMount does, but for a --store
// without a memory store directory.
func binMountAny(t *testing.T, args ...string) (*binProc, string) {
	t.Helper()
	for _, a := range args {
		if a == "--store" {
			mnt := binMountpoint(t)
			p := binStart(t, nil, append(append([]string{"mount"}, args...), mnt)...)
			binWaitMounted(t, p, mnt)
			return p, mnt
		}
	}
	p, mnt, _ := binMount(t, args...)
	return p, mnt
}

// binDf returns the size and inode figures of statfs on mnt.
func binDf(t *testing.T, mnt string) (bytes, inodes uint64) {
	t.Helper()
	var st unix.Statfs_t
	if err := unix.Statfs(mnt, &st); err != nil {
		t.Fatal(err)
	}
	return st.Blocks * uint64(st.Bsize), st.Files
}

// mount -o remount,size=,nr_inodes= and mmapfs resize change a live
// mount's limits, up and down, as tmpfs's remount does: below what is in
// use they are refused with one line, and change nothing; df shows the new
// figures at once.
func TestBinaryRemountLiveLimits(t *testing.T) {
	needRootBin(t)
	for _, c := range []struct {
		name string
		args []string
	}{
		{"memory", []string{"--size", "64M", "--inodes", "1000"}},
		{"memory-mapped", []string{"--size", "64M", "--inodes", "1000", "--passthrough=off"}},
		{"store", []string{"--size", "64M", "--inodes", "1000", "--store", "STORE"}},
	} {
		t.Run(c.name, func(t *testing.T) {
			args := append([]string(nil), c.args...)
			for i, a := range args {
				if a == "STORE" {
					args[i] = filepath.Join(t.TempDir(), "store")
				}
			}
			_, mnt := binMountAny(t, args...)
			check := func(what string, size, inodes uint64) {
				t.Helper()
				if gs, gi := binDf(t, mnt); gs != size || gi != inodes {
					t.Errorf("%s: df says %d bytes, %d inodes; want %d, %d", what, gs, gi, size, inodes)
				}
			}
			check("as mounted", 64<<20, 1000)
			if out, code := binRemount(t, mnt, "size=128M"); code != 0 {
				t.Fatalf("remount,size=128M: exit %d: %s", code, out)
			}
			check("remount,size=128M", 128<<20, 1000)
			if err := os.WriteFile(filepath.Join(mnt, "f"), make([]byte, 20<<20), 0o644); err != nil {
				t.Fatal(err)
			}
			out, code := binRemount(t, mnt, "size=10M")
			if code != 32 || !strings.Contains(out, "less than") || strings.Count(out, "\n") != 1 {
				t.Errorf("remount,size=10M below 20 MiB in use: exit %d, %q; want 32 and one line saying why", code, out)
			}
			check("refused remount,size=10M", 128<<20, 1000)
			if out, code := binRemount(t, mnt, "size=32M,nr_inodes=50"); code != 0 {
				t.Fatalf("remount,size=32M,nr_inodes=50: exit %d: %s", code, out)
			}
			check("remount,size=32M,nr_inodes=50", 32<<20, 50)
			if out, code := binRemount(t, mnt, "nr_inodes=1"); code != 32 || !strings.Contains(out, "inodes in use") {
				t.Errorf("remount,nr_inodes=1: exit %d, %q", code, out)
			}
			check("refused nr_inodes=1", 32<<20, 50)
			// The new limit holds: 20 MiB more do not fit in 32 MiB.
			err := os.WriteFile(filepath.Join(mnt, "g"), make([]byte, 20<<20), 0o644)
			if !errors.Is(err, syscall.ENOSPC) {
				t.Errorf("writing past the new size limit: %v, want ENOSPC", err)
			}
			os.Remove(filepath.Join(mnt, "g"))

			if o, e, code := binRunCmd(t, nil, "resize", mnt, "48M", "--inodes", "500"); code != 0 || o != "" || e != "" {
				t.Fatalf("resize 48M --inodes 500: exit %d, %q %q", code, o, e)
			}
			check("resize 48M", 48<<20, 500)
			if _, e, code := binRunCmd(t, nil, "resize", mnt, "--inodes", "600"); code != 0 {
				t.Fatalf("resize --inodes 600: exit %d, %q", code, e)
			}
			check("resize --inodes 600", 48<<20, 600)
			o, e, code := binRunCmd(t, nil, "resize", mnt, "1M")
			binCheckOneError(t, "resize below what is in use", o, e, code, "less than")
			check("refused resize 1M", 48<<20, 600)
		})
	}
}

// mount -o remount,ro makes every change fail with EROFS (a file open for
// writing makes it fail with EBUSY, as on tmpfs), and remount,rw writes
// again; the other flags follow too.
func TestBinaryRemountLiveReadOnly(t *testing.T) {
	needRootBin(t)
	_, mnt, _ := binMount(t, "--size", "64M")
	f := filepath.Join(mnt, "f")
	if err := os.WriteFile(f, []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	w, err := os.OpenFile(f, os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	out, code := binRemount(t, mnt, "ro")
	w.Close()
	if code != 32 || !strings.Contains(out, "busy") {
		t.Errorf("remount,ro with a file open for writing: exit %d, %q; want 32, busy", code, out)
	}
	if perMount, _ := binMountOptions(t, mnt); !strings.HasPrefix(perMount, "rw") {
		t.Errorf("refused remount,ro: the mount is %s", perMount)
	}
	if err := os.WriteFile(filepath.Join(mnt, "g"), nil, 0o644); err != nil {
		t.Errorf("write after a refused remount,ro: %v", err)
	}
	// Once a close's RELEASE has reached the server the mount may go
	// read-only; the kernel refuses until then.
	deadline := time.Now().Add(10 * time.Second)
	for {
		out, code = binRemount(t, mnt, "ro")
		if code == 0 || !strings.Contains(out, "busy") || time.Now().After(deadline) {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	if code != 0 {
		t.Fatalf("remount,ro: exit %d: %s", code, out)
	}
	if perMount, _ := binMountOptions(t, mnt); !strings.HasPrefix(perMount, "ro") {
		t.Errorf("after remount,ro the mount is %s", perMount)
	}
	for what, err := range map[string]error{
		"create": os.WriteFile(filepath.Join(mnt, "h"), nil, 0o644),
		"write":  os.WriteFile(f, []byte("y"), 0o644),
		"mkdir":  os.Mkdir(filepath.Join(mnt, "d"), 0o755),
		"remove": os.Remove(f),
		"chmod":  os.Chmod(f, 0o600),
	} {
		if !errors.Is(err, syscall.EROFS) {
			t.Errorf("%s on a mount remounted ro: %v, want EROFS", what, err)
		}
	}
	if st := binStatsJSON(t, mnt); !st.ReadOnly {
		t.Errorf("stats of a mount remounted ro: read_only false")
	}
	if out, code := binRemount(t, mnt, "rw,noexec"); code != 0 {
		t.Fatalf("remount,rw: exit %d: %s", code, out)
	}
	if perMount, _ := binMountOptions(t, mnt); !strings.HasPrefix(perMount, "rw") || !strings.Contains(perMount, "noexec") {
		t.Errorf("after remount,rw,noexec the mount is %s", perMount)
	}
	if err := os.WriteFile(f, []byte("z"), 0o644); err != nil {
		t.Errorf("write after remount,rw: %v", err)
	}
	if st := binStatsJSON(t, mnt); st.ReadOnly {
		t.Errorf("stats of a mount remounted rw: read_only true")
	}
}

// Only root and the mount's owner may resize it; a limit the server cannot
// keep (passthrough on a --store without size=) is refused with a reason.
func TestBinaryResizeRefused(t *testing.T) {
	needRootBin(t)
	mnt := binStatsOpenMount(t, "--size", "64M")
	o, e, code := binRunCmd(t, binUserCred, "resize", mnt, "128M")
	binCheckOneError(t, "resize as another user", o, e, code, "permission denied")
	if size, _ := binDf(t, mnt); size != 64<<20 {
		t.Errorf("after a refused resize df says %d bytes", size)
	}
	if p, smnt := binMountAny(t, "--store", filepath.Join(t.TempDir(), "store")); strings.Contains(p.output.String(), "passthrough on") {
		o, e, code = binRunCmd(t, nil, "resize", smnt, "128M")
		binCheckOneError(t, "resize of a --store with passthrough", o, e, code, "passthrough", "size=")
	}
	o, e, code = binRunCmd(t, nil, "resize", t.TempDir(), "1G")
	binCheckOneError(t, "resize of a directory that is no mount", o, e, code, "not on an mmapfs mount")
}
