package store

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"

	"mmapfs/internal/mountinfo"
)

// tmpfs's huge= and noswap for the tmpfs a memory store mounts for itself
// (Options.Huge, Options.NoSwap). They apply to nothing else: a store
// asked for them that has no tmpfs of its own, or whose tmpfs the kernel
// will not mount with them, fails to open rather than go without.

// HugeValues are the values of tmpfs's huge= (tmpfs(5)).
var HugeValues = []string{"never", "always", "within_size", "advise"}

// thpShmem is the file saying how the kernel gives tmpfs huge pages; it
// is missing in a kernel without transparent huge pages. Tests replace
// it.
var thpShmem = "/sys/kernel/mm/transparent_hugepage/shmem_enabled"

// kernelRelease returns the release of the running kernel ("6.8.0-45").
// Tests replace it.
var kernelRelease = func() string {
	var u unix.Utsname
	if unix.Uname(&u) != nil {
		return ""
	}
	return unix.ByteSliceToString(u.Release[:])
}

// wantsTmpfsOpts reports whether opts asks for huge= or noswap.
func (o Options) wantsTmpfsOpts() bool { return o.Huge != "" || o.NoSwap }

// tmpfsOpts returns huge= and noswap as -o options of tmpfs, comma
// separated: "huge=within_size,noswap"; "" if neither is asked for.
func (o Options) tmpfsOpts() string {
	var opts []string
	if o.Huge != "" {
		opts = append(opts, "huge="+o.Huge)
	}
	if o.NoSwap {
		opts = append(opts, "noswap")
	}
	return strings.Join(opts, ",")
}

// tmpfsOptsInstead says what to do instead when the store cannot have a
// tmpfs of its own with opts's huge= and noswap: set them on the tmpfs
// under memdir. noswap cannot be set on a remount, so with it that means
// a tmpfs mounted for the purpose.
func tmpfsOptsInstead(opts Options, memdir string) string {
	if !opts.NoSwap {
		return fmt.Sprintf("set huge= on the tmpfs under the store instead: mount -o remount,huge=%s %s", opts.Huge, memdir)
	}
	return fmt.Sprintf("give --memdir a tmpfs mounted with %s instead (noswap cannot be set on a remount): mount -t tmpfs -o %s,size=SIZE tmpfs DIR", opts.tmpfsOpts(), opts.tmpfsOpts())
}

// checkMemoryTmpfsOpts says, before anything is made, why a memory store
// under memdir cannot have opts's huge= and noswap: it will mount no tmpfs
// of its own, or the kernel will not take them on one.
func checkMemoryTmpfsOpts(opts Options, memdir string) error {
	if !opts.wantsTmpfsOpts() {
		return nil
	}
	if !opts.OwnFS || opts.SizeLimit <= 0 {
		why := "passthrough is off"
		if opts.OwnFS {
			why = "there is no size limit (size=0)"
		}
		return fmt.Errorf("%s: only the tmpfs mmapfs mounts for a memory store with a size limit and passthrough takes them, and here %s; %s",
			opts.tmpfsOpts(), why, tmpfsOptsInstead(opts, memdir))
	}
	return checkTmpfsOpts(opts)
}

// checkTmpfsOpts says why the kernel will not take opts's huge= or noswap
// on a tmpfs: a value of huge= tmpfs does not know; huge= (other than
// never) needs transparent huge pages for tmpfs, which shmem_enabled
// "deny" turns off for every mount; noswap needs Linux 6.4.
func checkTmpfsOpts(opts Options) error {
	if opts.Huge != "" && !slices.Contains(HugeValues, opts.Huge) {
		return fmt.Errorf("huge=%s: want %s", opts.Huge, strings.Join(HugeValues, ", "))
	}
	if opts.Huge != "" && opts.Huge != "never" {
		data, err := os.ReadFile(thpShmem)
		if errors.Is(err, os.ErrNotExist) {
			return fmt.Errorf("huge=%s: this kernel has no transparent huge pages for tmpfs (no %s); leave huge= out", opts.Huge, thpShmem)
		}
		if err == nil && strings.Contains(string(data), "[deny]") {
			return fmt.Errorf("huge=%s: %s is deny, which keeps huge pages off on every tmpfs; leave huge= out, or as root: echo never > %s", opts.Huge, thpShmem, thpShmem)
		}
	}
	if opts.NoSwap {
		if rel := kernelRelease(); rel != "" && !kernelAtLeast(rel, 6, 4) {
			return fmt.Errorf("noswap: tmpfs has it from Linux 6.4, and this kernel is %s; leave noswap out", rel)
		}
	}
	return nil
}

// kernelAtLeast reports whether kernel release rel ("6.8.0-45-generic")
// is major.minor or later; a release it cannot read counts as later.
func kernelAtLeast(rel string, major, minor int) bool {
	f := strings.FieldsFunc(rel, func(r rune) bool { return r < '0' || r > '9' })
	if len(f) < 2 {
		return true
	}
	ma, err1 := strconv.Atoi(f[0])
	mi, err2 := strconv.Atoi(f[1])
	if err1 != nil || err2 != nil {
		return true
	}
	return ma > major || (ma == major && mi >= minor)
}

// persistentTmpfsOptsErr says why a persistent store in dir cannot have
// opts's huge= and noswap, and what to do instead: set them on the tmpfs
// the store is on, if it is on one.
func persistentTmpfsOptsErr(dir string, opts Options) error {
	what := opts.tmpfsOpts()
	msg := fmt.Sprintf("store %s: %s: only the tmpfs mmapfs mounts for a memory store takes them, and with --store the data is on the filesystem under the store", dir, what)
	e, ok := mountUnder(dir)
	switch {
	case !ok:
		return errors.New(msg + ": set them there, if it is a tmpfs")
	case e.FsType != "tmpfs":
		return fmt.Errorf("%s, %s on %s, not a tmpfs: leave %s out", msg, e.FsType, e.Mountpoint, what)
	case opts.NoSwap:
		return fmt.Errorf("%s, the tmpfs on %s: noswap is set only when a tmpfs is mounted (mount -t tmpfs -o %s,size=SIZE tmpfs DIR, the store in it)", msg, e.Mountpoint, what)
	}
	return fmt.Errorf("%s: set huge= on the tmpfs under the store: mount -o remount,huge=%s %s", msg, opts.Huge, e.Mountpoint)
}

// mountUnder returns the mount dir is on (dir need not exist yet: then
// its nearest ancestor that does), as this process's mountinfo has it.
func mountUnder(dir string) (mountinfo.Entry, bool) {
	var st unix.Stat_t
	for unix.Stat(dir, &st) != nil {
		parent := filepath.Dir(dir)
		if parent == dir {
			return mountinfo.Entry{}, false
		}
		dir = parent
	}
	e, ok, err := mountinfo.OfDev(st.Dev)
	return e, ok && err == nil
}
