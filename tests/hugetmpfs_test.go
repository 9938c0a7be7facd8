package tests

// tmpfs's huge= and noswap on the tmpfs mmapfs mounts for its store (a
// memory store with size= and passthrough), and the clear refusal where
// there is no such tmpfs.

import (
	"bytes"
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/sys/unix"

	"mmapfs/internal/mountinfo"
)

// hugeTmpfsProbe skips the test unless a tmpfs can be mounted here with
// opts: as root, on a kernel that has them.
func hugeTmpfsProbe(t *testing.T, opts string) {
	t.Helper()
	needRootBin(t)
	dir := t.TempDir()
	if err := unix.Mount("mmapfs-probe", dir, "tmpfs", 0, "size=1m,"+opts); err != nil {
		t.Skipf("this kernel mounts no tmpfs with %s: %v", opts, err)
	}
	if err := unix.Unmount(dir, 0); err != nil {
		t.Fatal(err)
	}
}

// The store's tmpfs is mounted with huge= and noswap, and goes with the
// server.
func TestBinaryHugeTmpfs(t *testing.T) {
	hugeTmpfsProbe(t, "huge=within_size,noswap")
	p, mnt, memdir := binMount(t, "--size", "16M", "-o", "huge=within_size", "--noswap")
	binCheckStore(t, memdir)
	stores := binMountsUnder(memdir)
	if len(stores) != 1 {
		t.Fatalf("mounts under %s: %q, want the store's tmpfs", memdir, stores)
	}
	entries, err := mountinfo.Read("/proc/self/mountinfo")
	if err != nil {
		t.Fatal(err)
	}
	var found *mountinfo.Entry
	for i := range entries {
		if entries[i].Mountpoint == stores[0] {
			found = &entries[i]
		}
	}
	if found == nil || found.FsType != "tmpfs" {
		t.Fatalf("the store's mount on %s: %+v", stores[0], found)
	}
	if v, _ := found.SuperOption("huge"); v != "within_size" {
		t.Errorf("the store's tmpfs has huge=%q (%s), want within_size", v, found.SuperOpts)
	}
	if _, ok := found.SuperOption("noswap"); !ok {
		t.Errorf("the store's tmpfs has no noswap (%s)", found.SuperOpts)
	}
	if v, _ := found.SuperOption("size"); v != "16384k" {
		t.Errorf("the store's tmpfs has size=%q (%s), want 16384k", v, found.SuperOpts)
	}
	binReadWrite(t, mnt)
	if err := binUnmount(t, mnt); err != nil {
		t.Fatal(err)
	}
	if code := p.binWait(); code != 0 {
		t.Fatalf("exit status %d, want 0; output:\n%s", code, p.output)
	}
	binCheckGone(t, mnt, memdir)
	if ms := binMountsUnder(memdir); len(ms) != 0 {
		t.Errorf("left mounted: %q", ms)
	}
}

// Where huge= and noswap cannot apply, mmapfs stops at start with one line
// saying why and what to do instead, exit status 1, and leaves nothing
// mounted or made.
func TestBinaryHugeRefused(t *testing.T) {
	bin := binBuild(t)
	memdir := binMemDir(t)
	mnt := binMountpoint(t)
	storeDir := filepath.Join(t.TempDir(), "store")
	for _, c := range []struct {
		name string
		args []string
		want string
	}{
		{"store", []string{"--store", storeDir, "--huge", "within_size"},
			"store " + storeDir + ": huge=within_size: only the tmpfs mmapfs mounts for a memory store takes them"},
		{"store-noswap", []string{"--store", storeDir, "-o", "noswap"},
			"store " + storeDir + ": noswap: only the tmpfs mmapfs mounts for a memory store takes them"},
		{"passthrough-off", []string{"--memdir", memdir, "--passthrough=off", "-o", "huge=always"},
			"huge=always: only the tmpfs mmapfs mounts for a memory store with a size limit and passthrough takes them, and here passthrough is off; set huge= on the tmpfs under the store instead: mount -o remount,huge=always " + memdir},
		{"no-size", []string{"--memdir", memdir, "--size", "0", "--noswap"},
			"noswap: only the tmpfs mmapfs mounts for a memory store with a size limit and passthrough takes them, and here there is no size limit (size=0); give --memdir a tmpfs mounted with noswap instead"},
	} {
		t.Run(c.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), binCmdTimeout)
			defer cancel()
			cmd := exec.CommandContext(ctx, bin, append(append([]string{"mount"}, c.args...), mnt)...)
			var stdout, stderr bytes.Buffer
			cmd.Stdout, cmd.Stderr = &stdout, &stderr
			err := cmd.Run()
			var ee *exec.ExitError
			if !errors.As(err, &ee) || ee.ExitCode() != 1 {
				t.Fatalf("mmapfs %q: %v, want exit status 1; stderr %q", c.args, err, stderr.String())
			}
			errs := stderr.String()
			if strings.Count(errs, "\n") != 1 || !strings.HasPrefix(errs, "mmapfs: ") || !strings.Contains(errs, c.want) {
				t.Errorf("mmapfs %q: stderr %q, want one line with %q", c.args, errs, c.want)
			}
			if m := binFindMount(mnt); m != nil {
				t.Errorf("mounted on %s: %+v", mnt, *m)
			}
			if _, err := os.Stat(storeDir); !os.IsNotExist(err) {
				t.Errorf("store directory made: %v", err)
			}
			if ents, _ := os.ReadDir(memdir); len(ents) != 0 {
				t.Errorf("left in %s: %v", memdir, ents)
			}
			if ms := binMountsUnder(memdir); len(ms) != 0 {
				t.Errorf("left mounted: %q", ms)
			}
		})
	}
}
