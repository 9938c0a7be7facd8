package main

import (
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"golang.org/x/sys/unix"
)

// metaReaddirBuf is the getdents64 buffer of the readdir phase.
const metaReaddirBuf = 32 << 10

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
	openClose := func(path string) error {
		fd, err := unix.Open(path, unix.O_RDONLY|unix.O_CLOEXEC, 0)
		if err != nil {
			return &os.PathError{Op: "open", Path: path, Err: err}
		}
		return unix.Close(fd)
	}
	var st unix.Stat_t
	steps := []struct {
		name  string
		count int
		fn    func(i int) error
	}{
		{"create", *n, func(i int) error { return create(names[i]) }},
		{"stat", *n, func(i int) error { return unix.Lstat(names[i], &st) }},
		{"open_close", *n, func(i int) error { return openClose(names[i]) }},
		{"readdir", 1, func(int) error {
			got, err := countEntries(dir, metaReaddirBuf)
			if err == nil && got != *n {
				err = fmt.Errorf("%d entries, want %d", got, *n)
			}
			return err
		}},
		{"rename", *n, func(i int) error { return unix.Rename(names[i], renamed[i]) }},
		{"unlink", *n, func(i int) error { return unlink(renamed[i]) }},
	}
	for _, s := range steps {
		if err := phase(s.name, s.count, s.fn); err != nil {
			return err
		}
	}
	return os.Remove(dir)
}
