package store

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"go.uber.org/zap"
	"golang.org/x/sys/unix"
)

// A memory store is a private directory of a tmpfs, removed when the
// store is closed (Close) or abandoned (Abandon).
//
// A server that is killed cannot remove its store, and the tmpfs would
// keep its pages until reboot. So each server holds an exclusive flock on
// its store directory for as long as it runs, and the next server to start
// on the same memdir removes the mmapfs-* directories nobody holds. The
// lock is taken before the directory gets its mmapfs- name (it is created
// as .mmapfs-new-*, locked, then renamed), so a starting server's store is
// never mistaken for an abandoned one.
//
// With passthrough the kernel writes store files itself, past any limit
// the store keeps. So for a size limit and passthrough the private
// directory gets a tmpfs of its own, of that size, which keeps the limit
// for both; the store then has none of its own. (Mounting it needs
// CAP_SYS_ADMIN, which passthrough needs too.)

const (
	storePrefix    = "mmapfs-"
	newStorePrefix = ".mmapfs-new-"
)

// memDir is what a memory store holds besides its store files.
type memDir struct {
	ownFS    bool     // the directory is a tmpfs of its own, of the size limit
	ownFSErr error    // why not, when asked for
	lock     *os.File // the directory, flocked
	lock2    *os.File // with ownFS: the tmpfs's root, flocked too
}

// DefaultMemDir is where a memory store goes unless the caller says
// otherwise: /dev/shm, else $XDG_RUNTIME_DIR, else os.TempDir().
func DefaultMemDir() string {
	if isDir("/dev/shm") {
		return "/dev/shm"
	}
	if x := os.Getenv("XDG_RUNTIME_DIR"); x != "" && isDir(x) {
		return x
	}
	return os.TempDir()
}

func isDir(p string) bool {
	fi, err := os.Stat(p)
	return err == nil && fi.IsDir()
}

// OpenMemory creates a private directory under memdir and opens a store
// in it. On error nothing is left behind. With opts.OwnFS and a size
// limit, it mounts a tmpfs of that size on the private directory; if that
// fails, the store keeps the limit itself and OwnFSErr says why. With
// opts.Huge or opts.NoSwap that tmpfs must be there: without it, OpenMemory
// fails, saying why and what to do instead.
func OpenMemory(memdir string, opts Options) (*Store, error) {
	log := logger(opts)
	fi, err := os.Stat(memdir)
	if err != nil {
		return nil, fmt.Errorf("memory store directory %s: %s", memdir, errnoText(err))
	}
	if !fi.IsDir() {
		return nil, fmt.Errorf("memory store directory %s: not a directory", memdir)
	}
	if err := checkMemoryTmpfsOpts(opts, memdir); err != nil {
		return nil, err
	}
	removeAbandonedStores(memdir, log)
	checkMemDir(memdir, opts.SizeLimit, log)
	tmp, err := os.MkdirTemp(memdir, newStorePrefix) // mode 0700
	if err != nil {
		return nil, fmt.Errorf("memory store directory %s: %s", memdir, errnoText(err))
	}
	lock, err := lockDir(tmp)
	if err != nil {
		os.RemoveAll(tmp)
		return nil, fmt.Errorf("memory store %s: %s", tmp, errnoText(err))
	}
	dir := filepath.Join(memdir, storePrefix+strings.TrimPrefix(filepath.Base(tmp), newStorePrefix))
	if err := os.Rename(tmp, dir); err != nil {
		lock.Close()
		os.RemoveAll(tmp)
		return nil, fmt.Errorf("memory store %s: %s", dir, errnoText(err))
	}
	s := &Store{dir: dir, files: dir, log: log, mem: &memDir{lock: lock}}
	limit := opts.SizeLimit
	if opts.OwnFS && limit > 0 {
		if s.mem.ownFSErr = s.mountOwnFS(limit, opts); s.mem.ownFSErr == nil {
			limit = 0
			s.spaceDir = dir
		} else if opts.wantsTmpfsOpts() {
			s.removeMemory()
			return nil, fmt.Errorf("%s: %v; %s", opts.tmpfsOpts(), s.mem.ownFSErr, tmpfsOptsInstead(opts, memdir))
		}
	}
	st, err := openBlobs(dir, limit, opts, log)
	if err != nil {
		s.removeMemory()
		return nil, fmt.Errorf("memory store %s: %w", dir, err)
	}
	s.blobs = st
	return s, nil
}

// OwnFS reports whether a memory store's directory is a tmpfs of its own,
// which keeps the size limit.
func (s *Store) OwnFS() bool { return s.mem != nil && s.mem.ownFS }

// OwnFSErr says why a memory store asked for a tmpfs of its own has none;
// nil if it has one, or did not ask.
func (s *Store) OwnFSErr() error {
	if s.mem == nil {
		return nil
	}
	return s.mem.ownFSErr
}

// mountOwnFS mounts a tmpfs of size bytes on the private directory, with
// opts's huge= and noswap, and locks its root as well:
// removeAbandonedStores locks what the path names, which is now the tmpfs.
func (s *Store) mountOwnFS(size int64, opts Options) error {
	mopts := fmt.Sprintf("size=%d,nr_inodes=0,mode=0700,uid=%d,gid=%d", size, os.Geteuid(), os.Getegid())
	if extra := opts.tmpfsOpts(); extra != "" {
		mopts += "," + extra
	}
	if err := unix.Mount("mmapfs-store", s.dir, "tmpfs", unix.MS_NOSUID|unix.MS_NODEV|unix.MS_NOEXEC, mopts); err != nil {
		why := ""
		switch {
		case errors.Is(err, unix.EPERM):
			why = " (mounting a tmpfs needs CAP_SYS_ADMIN: run as root)"
		case errors.Is(err, unix.EINVAL) && opts.wantsTmpfsOpts():
			why = " (the kernel refuses " + opts.tmpfsOpts() + ")"
		}
		return fmt.Errorf("mounting a tmpfs of size=%s for the store: %s%s", FormatBytes(size), errnoText(err), why)
	}
	lock2, err := lockDir(s.dir)
	if err != nil {
		unix.Unmount(s.dir, unix.MNT_DETACH)
		return fmt.Errorf("locking the store's tmpfs: %s", errnoText(err))
	}
	s.mem.ownFS, s.mem.lock2 = true, lock2
	return nil
}

// removeAbandonedStores removes the stores under memdir, of this user,
// whose servers are gone (nobody holds their lock).
func removeAbandonedStores(memdir string, log *zap.Logger) {
	entries, err := os.ReadDir(memdir)
	if err != nil {
		return
	}
	uid := uint32(os.Geteuid())
	for _, e := range entries {
		if !e.IsDir() || !isStoreName(e.Name()) {
			continue // IsDir is false for symlinks too
		}
		dir := filepath.Join(memdir, e.Name())
		var st unix.Stat_t
		if unix.Lstat(dir, &st) != nil || st.Uid != uid || st.Mode&0o7777 != 0o700 {
			continue
		}
		lock, err := lockDir(dir)
		if err != nil {
			continue // in use, or not ours to judge
		}
		// A store with a tmpfs of its own (passthrough and size=):
		// the tmpfs goes first. EINVAL: not a mount point.
		if err := unix.Unmount(dir, unix.MNT_DETACH); err != nil && !errors.Is(err, unix.EINVAL) {
			log.Debug("unmounting the tmpfs of an abandoned memory store", zap.String("dir", dir), zap.Error(err))
		}
		if err := os.RemoveAll(dir); err != nil {
			log.Warn("cannot remove the memory store of a server that is gone", zap.String("dir", dir), zap.Error(err))
		} else {
			log.Info("removed the memory store of a server that is gone", zap.String("dir", dir))
		}
		lock.Close()
	}
}

// closeMemory closes the store files and removes the directory.
func (s *Store) closeMemory() error {
	var err error
	if s.blobs != nil {
		if err = s.blobs.Close(); err != nil {
			s.log.Error("closing the memory store", zap.String("dir", s.dir), zap.Error(err))
		}
		s.blobs = nil
	}
	s.removeMemory()
	return err
}

// removeMemory removes a memory store's directory without closing the
// store files.
func (s *Store) removeMemory() {
	m := s.mem
	if m.lock == nil {
		return // removed already
	}
	if m.ownFS {
		if m.lock2 != nil {
			m.lock2.Close()
			m.lock2 = nil
		}
		if err := unix.Unmount(s.dir, unix.MNT_DETACH); err != nil {
			s.log.Error("unmounting the memory store's tmpfs", zap.String("dir", s.dir), zap.Error(err))
		}
		m.ownFS = false
	}
	if err := os.RemoveAll(s.dir); err != nil {
		s.log.Error("removing the memory store", zap.String("dir", s.dir), zap.Error(err))
	}
	m.lock.Close()
	m.lock = nil
}

// checkMemDir warns when the filesystem under memdir cannot hold size bytes,
// or is not a memory filesystem at all. The store still returns ENOSPC when
// that filesystem fills; the warning only says so up front.
func checkMemDir(memdir string, size int64, log *zap.Logger) {
	var sfs unix.Statfs_t
	if err := unix.Statfs(memdir, &sfs); err != nil {
		log.Warn("cannot statfs the memory store directory", zap.String("dir", memdir), zap.Error(err))
		return
	}
	if sfs.Type != unix.TMPFS_MAGIC && sfs.Type != unix.RAMFS_MAGIC {
		log.Warn(fmt.Sprintf("memory store directory %s is not on a tmpfs: file data goes to the filesystem under it", memdir))
	}
	free := int64(sfs.Bavail) * int64(sfs.Bsize)
	if sfs.Type == unix.RAMFS_MAGIC || sfs.Blocks == 0 {
		return // no limit to report
	}
	// A few percent short is the normal case when size= and the tmpfs
	// have the same default (50% of RAM) and something else uses it.
	if size > 0 && free < size-size/20 {
		log.Warn(fmt.Sprintf("memory store on %s has %s free, less than size=%s: files can hold at most %s; use --memdir on a larger tmpfs or remount %s with a larger size=",
			memdir, FormatBytes(free), FormatBytes(size), FormatBytes(free), memdir))
	}
}

// isStoreName reports whether name is that of a store directory: mmapfs-
// and the digits os.MkdirTemp puts there.
func isStoreName(name string) bool {
	digits, ok := strings.CutPrefix(name, storePrefix)
	if !ok || digits == "" {
		return false
	}
	for _, c := range digits {
		if c < '0' || c > '9' {
			return false
		}
	}
	return true
}
