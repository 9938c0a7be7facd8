// Package dirs holds the few operations on directories that the packages
// of a store directory share (store, mapstore, journal): listing one and
// making its entries durable.
package dirs

import (
	"fmt"
	"os"
	"slices"

	"golang.org/x/sys/unix"
)

// Names returns the names in directory dir, sorted. dir itself may be
// reached through a symlink.
func Names(dir string) ([]string, error) {
	fd, err := unix.Open(dir, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, &os.PathError{Op: "open", Path: dir, Err: err}
	}
	defer unix.Close(fd)
	names, err := NamesAt(fd)
	if err != nil {
		return nil, &os.PathError{Op: "readdirent", Path: dir, Err: err}
	}
	slices.Sort(names)
	return names, nil
}

// NamesAt returns the names in the directory open as dirfd, in the order
// the directory gives them. It reads through a descriptor of its own, so
// dirfd's offset does not move.
func NamesAt(dirfd int) ([]string, error) {
	fd, err := unix.Openat(dirfd, ".", unix.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, err
	}
	defer unix.Close(fd)
	var names []string
	buf := make([]byte, 32<<10)
	for {
		n, err := unix.Getdents(fd, buf)
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return nil, err
		}
		if n <= 0 {
			return names, nil
		}
		_, _, names = unix.ParseDirent(buf[:n], -1, names)
	}
}

// Sync makes the entries of directory dir durable (fsync).
func Sync(dir string) error {
	fd, err := unix.Open(dir, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("sync %s: %w", dir, err)
	}
	defer unix.Close(fd)
	if err := unix.Fsync(fd); err != nil {
		return fmt.Errorf("sync %s: %w", dir, err)
	}
	return nil
}
