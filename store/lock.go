package store

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"go.uber.org/zap"
	"golang.org/x/sys/unix"
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

// takeLock locks persistent store dir for this process with flock; a
// second server gets ErrInUse with the pid the lock file names. Read only,
// the lock file is neither made nor written (nil: there is none), and one
// that is not a regular file is left for fsck to report.
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
	if err := flock(f); err != nil {
		pid, _ := io.ReadAll(io.LimitReader(f, 32))
		f.Close()
		if errors.Is(err, unix.EWOULDBLOCK) {
			who := "another process"
			if p := strings.TrimSpace(string(pid)); p != "" {
				who = "process " + p
			}
			return nil, fmt.Errorf("store %s is %w by %s (one mmapfs serves a store at a time)", dir, ErrInUse, who)
		}
		return nil, fmt.Errorf("store %s: lock: %w", dir, err)
	}
	if !ro {
		_ = f.Truncate(0)
		_, _ = f.WriteAt([]byte(strconv.Itoa(os.Getpid())+"\n"), 0)
	}
	return f, nil
}
