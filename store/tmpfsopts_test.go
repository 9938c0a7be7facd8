package store

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/sys/unix"

	"mmapfs/internal/mountinfo"
)

func TestKernelAtLeast(t *testing.T) {
	for _, c := range []struct {
		rel  string
		want bool
	}{
		{"6.4.0", true},
		{"6.3.13-200.fc38.x86_64", false},
		{"6.18.44-fc-v1147", true},
		{"5.15.0-105-generic", false},
		{"7.0", true},
		{"6", true}, // not readable: later
		{"", true},
	} {
		if got := kernelAtLeast(c.rel, 6, 4); got != c.want {
			t.Errorf("kernelAtLeast(%q, 6, 4) = %v, want %v", c.rel, got, c.want)
		}
	}
}

// What the kernel will not take is refused before anything is made, with
// what to do instead.
func TestCheckTmpfsOpts(t *testing.T) {
	dir := t.TempDir()
	shmem := filepath.Join(dir, "shmem_enabled")
	oldShmem, oldRel := thpShmem, kernelRelease
	t.Cleanup(func() { thpShmem, kernelRelease = oldShmem, oldRel })
	release := "6.8.0"
	kernelRelease = func() string { return release }
	thpShmem = shmem
	write := func(s string) {
		if err := os.WriteFile(shmem, []byte(s), 0o644); err != nil {
			t.Fatal(err)
		}
	}

	write("always within_size advise [never] deny force\n")
	for _, o := range []Options{{Huge: "within_size"}, {Huge: "never", NoSwap: true}, {NoSwap: true}, {}} {
		if err := checkTmpfsOpts(o); err != nil {
			t.Errorf("%+v: %v", o, err)
		}
	}
	for _, c := range []struct {
		setup func()
		opts  Options
		want  string
	}{
		{func() {}, Options{Huge: "sometimes"}, "huge=sometimes: want never, always, within_size, advise"},
		{func() { write("always within_size advise never [deny] force\n") }, Options{Huge: "always"}, "is deny"},
		{func() { os.Remove(shmem) }, Options{Huge: "advise"}, "this kernel has no transparent huge pages for tmpfs"},
		{func() { release = "6.1.90" }, Options{NoSwap: true}, "noswap: tmpfs has it from Linux 6.4, and this kernel is 6.1.90; leave noswap out"},
	} {
		c.setup()
		err := checkTmpfsOpts(c.opts)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%+v: %v, want %q", c.opts, err, c.want)
		}
	}
	// huge=never needs nothing of the kernel.
	if err := checkTmpfsOpts(Options{Huge: "never"}); err != nil {
		t.Errorf("huge=never without THP: %v", err)
	}
}

// A memory store that would have no tmpfs of its own refuses huge= and
// noswap, saying why, and leaves nothing behind.
func TestOpenMemoryTmpfsOptsRefused(t *testing.T) {
	memdir := t.TempDir()
	for _, c := range []struct {
		opts Options
		want string
	}{
		{Options{SizeLimit: 1 << 20, Huge: "within_size"}, "huge=within_size: only the tmpfs mmapfs mounts for a memory store with a size limit and passthrough takes them, and here passthrough is off; set huge= on the tmpfs under the store instead: mount -o remount,huge=within_size " + memdir},
		{Options{OwnFS: true, Huge: "always"}, "and here there is no size limit (size=0)"},
		{Options{SizeLimit: 1 << 20, NoSwap: true}, "give --memdir a tmpfs mounted with noswap instead (noswap cannot be set on a remount): mount -t tmpfs -o noswap,size=SIZE tmpfs DIR"},
	} {
		s, err := OpenMemory(memdir, c.opts)
		if err == nil {
			s.Close()
			t.Errorf("%+v: opened", c.opts)
			continue
		}
		if !strings.Contains(err.Error(), c.want) || strings.Contains(err.Error(), "\n") {
			t.Errorf("%+v: %q, want one line with %q", c.opts, err, c.want)
		}
	}
	if ents, _ := os.ReadDir(memdir); len(ents) != 0 {
		t.Errorf("left behind in %s: %v", memdir, ents)
	}
}

// As root, the store's own tmpfs has huge= and noswap (when the kernel has
// them), as its mountinfo shows.
func TestOpenMemoryOwnFSTmpfsOpts(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root")
	}
	opts := Options{SizeLimit: 4 << 20, OwnFS: true, Huge: "within_size", NoSwap: true}
	if err := checkTmpfsOpts(opts); err != nil {
		t.Skip(err)
	}
	s, err := OpenMemory(t.TempDir(), opts)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if !s.OwnFS() {
		t.Fatalf("no tmpfs of its own: %v", s.OwnFSErr())
	}
	var st unix.Stat_t
	if err := unix.Stat(s.Dir(), &st); err != nil {
		t.Fatal(err)
	}
	e, ok, err := mountinfo.OfDev(st.Dev)
	if err != nil || !ok {
		t.Fatalf("no mount of %s: %v", s.Dir(), err)
	}
	if e.FsType != "tmpfs" || e.Mountpoint != s.Dir() {
		t.Fatalf("store's mount %+v", e)
	}
	if v, _ := e.SuperOption("huge"); v != "within_size" {
		t.Errorf("huge=%q in %q", v, e.SuperOpts)
	}
	if _, ok := e.SuperOption("noswap"); !ok {
		t.Errorf("no noswap in %q", e.SuperOpts)
	}
}

// A persistent store refuses them, naming the filesystem under it.
func TestOpenPersistentTmpfsOptsRefused(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "store")
	_, err := Open(dir, Options{Huge: "always"})
	if err == nil || !strings.Contains(err.Error(), "huge=always: only the tmpfs mmapfs mounts for a memory store takes them") {
		t.Fatalf("Open with huge=: %v", err)
	}
	if _, err := os.Stat(dir); !os.IsNotExist(err) {
		t.Errorf("store directory made: %v", err)
	}
}
