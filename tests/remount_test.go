package tests

// A persistent store mounted again at once after `umount` (issue 12,
// item 4): the server that was unmounted still holds the store while it
// writes its last snapshot and closes, and the new one waits for it; a
// store that a server really serves (its mount is there, or detached with
// files still open) is refused at once. The mounts are made through
// mount(8), as an administrator, a script or systemd makes them.

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// remountRounds is how many times TestRemountAtOnce unmounts and mounts.
const remountRounds = 200

// remountSetup builds the program, makes its -race build exit without the
// race detector's pause of 1 s, and returns a new store directory and
// mount point, with a cleanup that detaches the mount point and kills
// the servers left on it (they are not children of the test).
func remountSetup(t *testing.T) (bin, store, mnt string) {
	t.Helper()
	needRootBin(t) // mount(8) and umount(8)
	bin = binBuild(t)
	gorace := "atexit_sleep_ms=0"
	if v := os.Getenv("GORACE"); v != "" {
		gorace = v + " " + gorace
	}
	t.Setenv("GORACE", gorace)
	store = filepath.Join(t.TempDir(), "store")
	mnt = binMountpoint(t)
	binReapServers(t, bin, store, mnt, 5*time.Minute)
	return bin, store, mnt
}

// remountMount mounts store on mnt with mount(8) and returns its output
// and error. mount(8) runs its helpers without the caller's PATH, so the
// program is named by its path in the source, in the form mount.fuse3
// takes for `-t fuse.PROGRAM` ("PROGRAM#SOURCE"); the mount's type is
// fuse.mmapfs all the same.
func remountMount(bin, store, mnt string, opts ...string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), binCmdTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, "mount", "-t", "fuse", "-o", strings.Join(append([]string{"store=" + store}, opts...), ","), bin+"#mmapfs", mnt)
	cmd.WaitDelay = 5 * time.Second
	out, err := cmd.CombinedOutput()
	return string(out), err
}

// remountUmount unmounts mnt with umount(8); as binUnmount, it tries again
// while the mount is busy for a moment.
func remountUmount(t *testing.T, mnt string, args ...string) {
	t.Helper()
	var err error
	for try := 0; try < 50; try++ {
		if err = binRun(t, "umount", append(args, mnt)...); err == nil || !strings.Contains(err.Error(), "busy") {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	if err != nil {
		t.Fatal(err)
	}
}

// remountServer waits until one server serves store and returns its pid.
func remountServer(t *testing.T, bin, store string) int {
	t.Helper()
	for deadline := time.Now().Add(binMountTimeout); ; {
		pids := binServers(bin, store)
		if len(pids) == 1 {
			return pids[0]
		}
		if time.Now().After(deadline) {
			t.Fatalf("servers of %s: %v, want one", store, pids)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// remountWaitGone waits until no server of store is left.
func remountWaitGone(t *testing.T, bin, store string) {
	t.Helper()
	for deadline := time.Now().Add(binExitTimeout); len(binServers(bin, store)) > 0; {
		if time.Now().After(deadline) {
			t.Fatalf("servers of %s still running %v after the unmount: %v", store, binExitTimeout, binServers(bin, store))
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// umount followed at once by mount of the same store, remountRounds
// times: no mount is refused, and each finds what the one before wrote.
func TestRemountAtOnce(t *testing.T) {
	bin, store, mnt := remountSetup(t)
	name := filepath.Join(mnt, "round")
	start := time.Now()
	waited := 0
	for round := 1; round <= remountRounds; round++ {
		out, err := remountMount(bin, store, mnt)
		if err != nil {
			t.Fatalf("round %d: mount right after umount: %v\n%s", round, err, out)
		}
		if strings.Contains(out, "which is exiting, to let go of the store") {
			waited++
		}
		if m := binFindMount(mnt); m == nil || m.fstype != "fuse.mmapfs" {
			t.Fatalf("round %d: not mounted after mount returned: %+v", round, m)
		}
		if round > 1 {
			got, err := os.ReadFile(name)
			if err != nil || string(got) != strconv.Itoa(round-1) {
				t.Fatalf("round %d: %s holds %q, %v; want %d, written before the umount", round, name, got, err, round-1)
			}
		}
		if err := os.WriteFile(name, []byte(strconv.Itoa(round)), 0o644); err != nil {
			t.Fatalf("round %d: %v", round, err)
		}
		remountUmount(t, mnt)
	}
	t.Logf("%d rounds of umount and mount in %v; %d mounts waited over a second for the server before", remountRounds, time.Since(start).Round(time.Millisecond), waited)
	remountWaitGone(t, bin, store)
	if code, out := pstFsck(t, store); code != 0 {
		t.Errorf("mmapfs fsck after the rounds: exit status %d, want 0; output:\n%s", code, out)
	}
}

// A store that a server serves is refused at once, with a message naming
// the store and the server: by a second mount, and by fsck. Once its
// mount is detached (umount -l) while a file is still open on it, the
// server still serves the store: a mount waits for it (it cannot tell
// this from a server about to exit) and is refused, saying why. Once that
// file is closed, a mount at once works.
func TestRemountInUseRefused(t *testing.T) {
	bin, store, mnt := remountSetup(t)
	if out, err := remountMount(bin, store, mnt); err != nil {
		t.Fatalf("mount: %v\n%s", err, out)
	}
	pid := remountServer(t, bin, store)
	binReadWrite(t, mnt)
	lock, err := os.ReadFile(filepath.Join(store, "lock"))
	if lines := strings.Split(string(lock), "\n"); err != nil || len(lines) != 3 || lines[0] != strconv.Itoa(pid) ||
		!strings.HasPrefix(lines[1], "mount ") || !strings.HasSuffix(lines[1], " "+mnt) {
		t.Errorf("the lock file of a store being served holds %q, %v; want the pid %d and the mount on %s", lock, err, pid, mnt)
	}
	other := binMountpoint(t)
	refused := func(what, want, out string, err error) {
		t.Helper()
		if err == nil {
			t.Fatalf("%s: succeeded; output:\n%s", what, out)
		}
		if !strings.Contains(out, want) {
			t.Errorf("%s: output lacks %q:\n%s", what, want, out)
		}
		if m := binFindMount(other); m != nil {
			t.Errorf("%s left a mount on %s: %+v", what, other, *m)
		}
	}
	want := fmt.Sprintf("store %s is in use by process %d (one mmapfs serves a store at a time)", store, pid)
	out, err := remountMount(bin, store, other)
	refused("a second mount of a store being served", want, out, err)
	if code, out := pstFsck(t, store); code == 0 || !strings.Contains(out, want) {
		t.Errorf("mmapfs fsck of a store being served: exit status %d, output:\n%s\nwant a failure saying %q", code, out, want)
	}
	binReadWrite(t, mnt) // the first server goes on serving

	f, err := os.Open(filepath.Join(mnt, "file"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	remountUmount(t, mnt, "-l")
	if m := binFindMount(mnt); m != nil {
		t.Fatalf("%s still mounted after umount -l: %+v", mnt, *m)
	}
	want = fmt.Sprintf("store %s is in use by process %d, which still serves it 10s after its mount on %s was unmounted: "+
		"the mount was detached, and files are still open on it (one mmapfs serves a store at a time)", store, pid, mnt)
	// In the mount(8) form only failures reach the terminal: the line
	// that says the mount waits goes to the log.
	logFile := filepath.Join(t.TempDir(), "log")
	out, err = remountMount(bin, store, other, "log_file="+logFile)
	refused("a mount while the first is detached with a file open", want, out, err)
	if log, _ := os.ReadFile(logFile); !strings.Contains(string(log), fmt.Sprintf("waiting for process %d, whose mount on %s is gone, to stop serving the store", pid, mnt)) {
		t.Errorf("the mount that waited did not say so in its log:\n%s", log)
	}
	if _, err := f.Read(make([]byte, 1)); err != nil {
		t.Errorf("reading the file open on the detached mount: %v", err)
	}
	if got := binServers(bin, store); len(got) != 1 || got[0] != pid {
		t.Errorf("servers of %s: %v, want %d alone", store, got, pid)
	}
	f.Close()
	if out, err := remountMount(bin, store, other); err != nil {
		t.Fatalf("mount once the last file of the detached mount is closed: %v\n%s", err, out)
	}
	binReadWrite(t, other)
	remountUmount(t, other)
	remountWaitGone(t, bin, store)
}
