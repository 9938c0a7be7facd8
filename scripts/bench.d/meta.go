package main

import (
	"bytes"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"syscall"
	"time"
)

// metaMain runs the metadata phases, one process, one thread of work, on N
// empty files in a new directory DIR, and prints "phase ops/s" per line:
// create (open O_CREAT|O_EXCL + close), stat (lstat), open+close (O_RDONLY),
// readdir (getdents64 with a 32 KiB buffer over all N entries; entries/s),
// rename (to a new name in the same directory) and unlink.
func metaMain(args []string) error {
	fl := flag.NewFlagSet("meta", flag.ContinueOnError)
	n := fl.Int("n", 20000, "number of files")
	if err := fl.Parse(args); err != nil {
		return err
	}
	if fl.NArg() != 1 || *n <= 0 {
		return fmt.Errorf("usage: meta -n N DIR")
	}
	dir := fl.Arg(0)
	if err := os.Mkdir(dir, 0o755); err != nil {
		return err
	}
	names := make([]string, *n)
	renamed := make([]string, *n)
	for i := range names {
		names[i] = filepath.Join(dir, fmt.Sprintf("f%07d", i))
		renamed[i] = filepath.Join(dir, fmt.Sprintf("r%07d", i))
	}
	phase := func(name string, count int, fn func(i int) error) error {
		start := time.Now()
		for i := range count {
			if err := fn(i); err != nil {
				return fmt.Errorf("%s: %w", name, err)
			}
		}
		el := time.Since(start).Seconds()
		fmt.Printf("%s %.1f\n", name, float64(*n)/el)
		return nil
	}
	openClose := func(path string, flags int) error {
		fd, err := syscall.Open(path, flags|syscall.O_CLOEXEC, 0o644)
		if err != nil {
			return &os.PathError{Op: "open", Path: path, Err: err}
		}
		return syscall.Close(fd)
	}
	var st syscall.Stat_t
	steps := []struct {
		name  string
		count int
		fn    func(i int) error
	}{
		{"create", *n, func(i int) error {
			return openClose(names[i], syscall.O_CREAT|syscall.O_EXCL|syscall.O_WRONLY)
		}},
		{"stat", *n, func(i int) error { return syscall.Lstat(names[i], &st) }},
		{"open_close", *n, func(i int) error { return openClose(names[i], syscall.O_RDONLY) }},
		{"readdir", 1, func(int) error {
			got, err := countEntries(dir)
			if err == nil && got != *n {
				err = fmt.Errorf("%d entries, want %d", got, *n)
			}
			return err
		}},
		{"rename", *n, func(i int) error { return syscall.Rename(names[i], renamed[i]) }},
		{"unlink", *n, func(i int) error { return syscall.Unlink(renamed[i]) }},
	}
	for _, s := range steps {
		if err := phase(s.name, s.count, s.fn); err != nil {
			return err
		}
	}
	return os.Remove(dir)
}

// countEntries reads the whole directory with getdents64 and counts the
// entries other than "." and "..".
func countEntries(dir string) (int, error) {
	fd, err := syscall.Open(dir, syscall.O_RDONLY|syscall.O_DIRECTORY|syscall.O_CLOEXEC, 0)
	if err != nil {
		return 0, err
	}
	defer syscall.Close(fd)
	buf := make([]byte, 32<<10)
	count := 0
	for {
		n, err := syscall.ReadDirent(fd, buf)
		if err != nil {
			return 0, err
		}
		if n <= 0 {
			return count, nil
		}
		b := buf[:n]
		for len(b) > 0 {
			// struct linux_dirent64: ino 8, off 8, reclen 2, type 1, name.
			reclen := int(b[16]) | int(b[17])<<8
			if reclen == 0 || reclen > len(b) {
				return 0, fmt.Errorf("bad dirent record")
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
