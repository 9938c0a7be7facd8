package store

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"time"

	"go.uber.org/zap"
	"golang.org/x/sys/unix"
)

// The lock of a persistent store is its lock file, LockName, which says
// who holds the store (lockinfo.go) and carries two locks, both dropped by
// the kernel when their holder dies:
//
//   - an flock on the whole file: the store is taken, from Open, Load or
//     Check until Close. Earlier versions of mmapfs take it too.
//   - an open file description lock (F_OFD_SETLK) on its first byte, the
//     in-use lock: the holder is using the store (serving it, starting
//     to, or checking it: a read lock when read only). A server lets go
//     of it once it has stopped serving (Store.Exiting), and keeps the
//     flock while it finishes: its last snapshot, closing the journal and
//     the store files.
//
// A process that finds the flock taken is refused at once with ErrInUse
// if the holder uses the store: it holds the in-use lock, and the mount
// the lock file names (Store.Serving) is still there, or it names none
// (the holder is starting, or checking the store). It waits for a holder
// whose in-use lock is free (it is exiting), or whose mount is gone (it
// is about to exit, or its mount was detached with files still open on
// it), lockWait at most, looking again all the while.

// How long a process opening a store waits for one that is exiting to let
// go of it, and after how long of that it says so. Variables for the
// tests.
var (
	lockWait    = 10 * time.Second
	lockWaitSay = time.Second
)

// The pauses between looks at a lock held by an exiting server: doubling
// from the first to the last.
const (
	lockPollFirst = time.Millisecond
	lockPollLast  = 20 * time.Millisecond
)

// flock takes an exclusive flock on f without waiting: EWOULDBLOCK if
// another open file description holds it.
func flock(f *os.File) error {
	return unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB)
}

// lockDir opens dir and takes an exclusive flock on it without waiting.
func lockDir(dir string) (*os.File, error) {
	f, err := os.OpenFile(dir, os.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW, 0)
	if err != nil {
		return nil, err
	}
	if err := flock(f); err != nil {
		f.Close()
		return nil, err
	}
	return f, nil
}

// inUseRange is the in-use lock of a lock file, of type typ (F_WRLCK,
// F_RDLCK or F_UNLCK).
func inUseRange(typ int16) *unix.Flock_t {
	return &unix.Flock_t{Type: typ, Whence: io.SeekStart, Start: 0, Len: 1}
}

// markInUse takes the in-use lock on lock file f: a write lock, or a read
// lock when f is open read only (two readers cannot both hold the flock).
func markInUse(f *os.File, ro bool) error {
	typ := int16(unix.F_WRLCK)
	if ro {
		typ = unix.F_RDLCK
	}
	return unix.FcntlFlock(f.Fd(), unix.F_OFD_SETLK, inUseRange(typ))
}

// unmarkInUse lets go of the in-use lock on lock file f.
func unmarkInUse(f *os.File) error {
	return unix.FcntlFlock(f.Fd(), unix.F_OFD_SETLK, inUseRange(unix.F_UNLCK))
}

// inUseType returns the type of the in-use lock that another open file
// description holds on lock file f: F_WRLCK, F_RDLCK, or F_UNLCK for none.
func inUseType(f *os.File) (int16, error) {
	lk := inUseRange(unix.F_WRLCK)
	if err := unix.FcntlFlock(f.Fd(), unix.F_OFD_GETLK, lk); err != nil {
		return 0, err
	}
	return lk.Type, nil
}

// releaseLock lets go of both locks on lock file f and closes it. The
// locks are let go of explicitly: they belong to the open file
// description, which a child being started (between fork and exec) may
// share for a moment.
func releaseLock(f *os.File) {
	_ = unmarkInUse(f)
	_ = unix.Flock(int(f.Fd()), unix.LOCK_UN)
	f.Close()
}

// takeLock locks persistent store dir for this process (see above): a
// second process gets ErrInUse with the pid the lock file names, at once
// if the holder uses the store, after waiting for it if it is exiting.
// Read only, the lock file is neither made nor written (nil: there is
// none), and one that is not a regular file is left for fsck to report.
// Written, it names this process before the in-use lock is taken: a
// holder of the in-use lock that writes is named by the file.
func takeLock(dir string, ro bool, rep *Report, log *zap.Logger) (*os.File, error) {
	name := filepath.Join(dir, LockName)
	if fi, err := os.Lstat(name); err == nil && !fi.Mode().IsRegular() {
		if ro {
			return nil, nil // fsck reports it
		}
		// Not ours: an empty directory or a symlink is replaced, and
		// anything else is left for the user.
		if err := os.Remove(name); err != nil {
			return nil, fmt.Errorf("store %s: %s is not a regular file and cannot be replaced: %w", dir, name, err)
		}
		log.Warn("replaced a lock that was not a regular file", zap.String("lock", name))
		rep.Repaired = append(rep.Repaired, fmt.Sprintf("%s was not a regular file (a %s): replaced it with a lock file", LockName, fi.Mode().Type()))
	}
	flags := os.O_RDWR | os.O_CREATE | unix.O_NOFOLLOW | unix.O_CLOEXEC
	if ro {
		flags = os.O_RDONLY | unix.O_NOFOLLOW | unix.O_CLOEXEC
	}
	f, err := os.OpenFile(name, flags, 0o600)
	if ro && errors.Is(err, os.ErrNotExist) {
		return nil, nil // never mounted with this version: nothing holds it
	}
	if err != nil {
		return nil, fmt.Errorf("store %s: lock: %w", dir, err)
	}
	if err := waitLock(f, dir, log); err != nil {
		f.Close()
		return nil, err
	}
	if !ro {
		// On a full filesystem the pid may not fit: the lock holds all
		// the same.
		_ = writeLockInfo(f, lockInfo{pid: strconv.Itoa(os.Getpid())})
	}
	if err := markInUse(f, ro); err != nil {
		// The store is ours all the same; a process that opens it
		// meanwhile takes this one for an exiting server, and is
		// refused only once it has waited for it.
		log.Warn("cannot mark the store in use: a server started on it while this one runs waits "+lockWait.String()+" before it is refused",
			zap.String("lock", name), zap.Error(err))
	}
	return f, nil
}

// waitLock takes the flock on lock file f of store dir. A holder that
// uses the store is refused at once with ErrInUse; one that is exiting,
// or whose mount is gone, is waited for, lockWait at most, said at INFO
// once the wait is longer than lockWaitSay.
func waitLock(f *os.File, dir string, log *zap.Logger) error {
	start := time.Now()
	said := false
	pause := lockPollFirst
	for {
		err := flock(f)
		if err == nil {
			if said {
				log.Info("the process that held the store let go of it",
					zap.String("store", dir), zap.Duration("waited", time.Since(start).Round(time.Millisecond)))
			}
			return nil
		}
		if !errors.Is(err, unix.EWOULDBLOCK) {
			return fmt.Errorf("store %s: lock: %w", dir, err)
		}
		typ, lerr := inUseType(f)
		li := readLockInfo(f)
		switch {
		case lerr != nil:
			// A filesystem without open file description locks
			// cannot tell: the holder is taken to use the store.
			return fmt.Errorf("store %s is %w by %s (one mmapfs serves a store at a time)", dir, ErrInUse, li.who())
		case typ == unix.F_RDLCK:
			// Read only, it names nobody: the file tells of an
			// earlier holder.
			return fmt.Errorf("store %s is %w by another process, which is checking it (one mmapfs serves a store at a time)", dir, ErrInUse)
		case typ == unix.F_WRLCK && (li.mount == nil || li.mount.present(li.pid)):
			return fmt.Errorf("store %s is %w by %s (one mmapfs serves a store at a time)", dir, ErrInUse, li.who())
		}
		// Exiting (typ is F_UNLCK), or serving a mount that is gone.
		exiting := typ == unix.F_UNLCK
		waited := time.Since(start)
		if waited >= lockWait {
			if exiting {
				return fmt.Errorf("store %s is %w by %s, which has stopped serving it but has not let go of it in %v (one mmapfs serves a store at a time)",
					dir, ErrInUse, li.who(), lockWait)
			}
			return fmt.Errorf("store %s is %w by %s, which still serves it %v after its mount on %s was unmounted: the mount was detached, and files are still open on it (one mmapfs serves a store at a time)",
				dir, ErrInUse, li.who(), lockWait, li.mount.point)
		}
		if !said && waited >= lockWaitSay {
			if exiting {
				log.Info("waiting for "+li.who()+", which is exiting, to let go of the store", zap.String("store", dir))
			} else {
				log.Info("waiting for "+li.who()+", whose mount on "+li.mount.point+" is gone, to stop serving the store",
					zap.String("store", dir))
			}
			said = true
		}
		time.Sleep(min(pause, lockWait-waited))
		pause = min(2*pause, lockPollLast)
	}
}
