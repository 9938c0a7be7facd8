package mapstore

import (
	"fmt"
	"os"
	"slices"
	"strconv"

	"golang.org/x/sys/unix"
)

// The files of a store directory, for the code that checks or recovers a
// store without opening it: how store files are named, how to list a
// directory, and where a store file holds data.

// FileName returns the name of the store file of blob id: the id in 16
// lower-case hex digits.
func FileName(id uint64) string { return storeName(id) }

// ParseFileName returns the blob id a store file name stands for, and
// whether name is one (16 lower-case hex digits).
func ParseFileName(name string) (uint64, bool) {
	if len(name) != nameLen {
		return 0, false
	}
	for _, c := range name {
		if (c < '0' || c > '9') && (c < 'a' || c > 'f') {
			return 0, false
		}
	}
	id, err := strconv.ParseUint(name, 16, 64)
	return id, err == nil
}

// ReadDirNames returns the names in directory dir, sorted. dir itself may
// be reached through a symlink.
func ReadDirNames(dir string) ([]string, error) {
	fd, err := unix.Open(dir, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, &os.PathError{Op: "open", Path: dir, Err: err}
	}
	defer unix.Close(fd)
	names, err := readDirNames(fd)
	if err != nil {
		return nil, &os.PathError{Op: "readdirent", Path: dir, Err: err}
	}
	slices.Sort(names)
	return names, nil
}

// DataRanges calls fn for each range of data in the file open as fd below
// size, as lseek SEEK_DATA/SEEK_HOLE report them, in order.
func DataRanges(fd int, size int64, fn func(start, end int64)) error {
	return dataRanges(fd, size, fn)
}

// SyncDir makes the entries of directory dir durable (fsync).
func SyncDir(dir string) error {
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
