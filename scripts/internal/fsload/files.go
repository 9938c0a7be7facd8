package main

import (
	"bytes"
	"fmt"
	"os"
	"sort"

	"golang.org/x/sys/unix"
)

// The file operations the workloads share, each one system call (or a few)
// with its error wrapped in an *os.PathError that names the call.

// writeFile creates path (O_EXCL, mode 0644) with data; with no data it is
// an open and a close.
func writeFile(path string, data []byte) error {
	fd, err := unix.Open(path, unix.O_CREAT|unix.O_EXCL|unix.O_WRONLY|unix.O_CLOEXEC, 0o644)
	if err != nil {
		return &os.PathError{Op: "create", Path: path, Err: err}
	}
	for off := 0; off < len(data); {
		w, err := unix.Write(fd, data[off:])
		if err != nil {
			unix.Close(fd)
			return &os.PathError{Op: "write", Path: path, Err: err}
		}
		off += w
	}
	if err := unix.Close(fd); err != nil {
		return &os.PathError{Op: "close", Path: path, Err: err}
	}
	return nil
}

// create makes an empty file at path (O_EXCL).
func create(path string) error { return writeFile(path, nil) }

// unlink removes the file at path.
func unlink(path string) error {
	if err := unix.Unlink(path); err != nil {
		return &os.PathError{Op: "unlink", Path: path, Err: err}
	}
	return nil
}

// countEntries reads the whole directory with getdents64 into a buffer of
// bufSize bytes and counts the entries other than "." and "..". The
// buffer's size sets how many calls a directory takes: os.File's
// Readdirnames uses 8 KiB.
func countEntries(dir string, bufSize int) (int, error) {
	fd, err := unix.Open(dir, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return 0, &os.PathError{Op: "open", Path: dir, Err: err}
	}
	defer unix.Close(fd)
	buf := make([]byte, bufSize)
	count := 0
	for {
		n, err := unix.ReadDirent(fd, buf)
		if err != nil {
			return count, &os.PathError{Op: "getdents64", Path: dir, Err: err}
		}
		if n <= 0 {
			return count, nil
		}
		b := buf[:n]
		for len(b) > 0 {
			// struct linux_dirent64: ino 8, off 8, reclen 2, type 1, name.
			reclen := int(b[16]) | int(b[17])<<8
			if reclen == 0 || reclen > len(b) {
				return count, fmt.Errorf("%s: bad dirent record", dir)
			}
			name := b[19:reclen]
			if i := bytes.IndexByte(name, 0); i >= 0 {
				name = name[:i]
			}
			if s := string(name); s != "." && s != ".." {
				count++
			}
			b = b[reclen:]
		}
	}
}

// readNames returns the sorted names of dir.
func readNames(dir string) ([]string, error) {
	d, err := os.Open(dir)
	if err != nil {
		return nil, err
	}
	defer d.Close()
	names, err := d.Readdirnames(-1)
	sort.Strings(names)
	return names, err
}
