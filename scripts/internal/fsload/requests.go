package main

import (
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"golang.org/x/sys/unix"

	"mmapfs/control"
)

// requestsMain runs `fsload requests [-n N] DIR`: each common call, N times
// on N names in a new directory DIR of an mmapfs mount, and prints the FUSE
// requests the kernel sent the server per call, from the server's own
// counts (mmapfs stats). One line per call: "call<TAB>REQ×k REQ×k ...".
// A call is measured as a program makes it, with the kernel's caches as
// the calls before it left them: the name was created (or listed) just
// before.
func requestsMain(args []string) int {
	fl := flag.NewFlagSet("requests", flag.ContinueOnError)
	n := fl.Int("n", 200, "calls of each kind")
	if err := fl.Parse(args); err != nil || fl.NArg() != 1 || *n <= 0 {
		fmt.Fprintln(os.Stderr, "usage: fsload requests [-n N] DIR")
		return 2
	}
	if err := requests(fl.Arg(0), *n); err != nil {
		fmt.Fprintln(os.Stderr, "fsload requests:", err)
		return 1
	}
	return 0
}

func requests(dir string, n int) error {
	if err := os.Mkdir(dir, 0o755); err != nil {
		return err
	}
	m, err := control.FindMount(dir)
	if err != nil {
		return err
	}
	counts := func() (map[string]uint64, error) {
		r, err := control.Ask(m, control.Request{Op: control.ReqStats})
		if err != nil {
			return nil, err
		}
		if r.Error != "" {
			return nil, fmt.Errorf("%s", r.Error)
		}
		out := map[string]uint64{}
		for op, s := range r.Stats.Ops {
			out[op] = s.Count
		}
		return out, nil
	}
	name := func(kind string, i int) string { return filepath.Join(dir, fmt.Sprintf("%s%05d", kind, i)) }
	buf := make([]byte, 4096)
	var st unix.Stat_t
	ts := []unix.Timespec{{Sec: 1e9}, {Sec: 1e9}}
	calls := []struct {
		name string
		fn   func(i int) error
	}{
		{"create (open O_CREAT|O_EXCL, close)", func(i int) error {
			fd, err := unix.Open(name("f", i), unix.O_CREAT|unix.O_EXCL|unix.O_WRONLY, 0o644)
			if err != nil {
				return err
			}
			return unix.Close(fd)
		}},
		{"stat of a name just created", func(i int) error { return unix.Lstat(name("f", i), &st) }},
		{"stat again", func(i int) error { return unix.Lstat(name("f", i), &st) }},
		{"open O_RDONLY, close", func(i int) error {
			fd, err := unix.Open(name("f", i), unix.O_RDONLY, 0)
			if err != nil {
				return err
			}
			return unix.Close(fd)
		}},
		{"open O_WRONLY, write 4 KiB, close", func(i int) error {
			fd, err := unix.Open(name("f", i), unix.O_WRONLY, 0)
			if err != nil {
				return err
			}
			if _, err := unix.Write(fd, buf); err != nil {
				unix.Close(fd)
				return err
			}
			return unix.Close(fd)
		}},
		{"open O_RDONLY, read 4 KiB, close", func(i int) error {
			fd, err := unix.Open(name("f", i), unix.O_RDONLY, 0)
			if err != nil {
				return err
			}
			if _, err := unix.Read(fd, buf); err != nil {
				unix.Close(fd)
				return err
			}
			return unix.Close(fd)
		}},
		{"chmod", func(i int) error { return unix.Chmod(name("f", i), 0o600) }},
		{"utimensat", func(i int) error { return unix.UtimesNanoAt(unix.AT_FDCWD, name("f", i), ts, 0) }},
		{"stat of a missing name", func(i int) error {
			if err := unix.Lstat(name("none", i), &st); err != unix.ENOENT {
				return fmt.Errorf("stat of a missing name: %v", err)
			}
			return nil
		}},
		{"rename", func(i int) error { return unix.Rename(name("f", i), name("r", i)) }},
		{"unlink", func(i int) error { return unix.Unlink(name("r", i)) }},
		{"mkdir", func(i int) error { return unix.Mkdir(name("d", i), 0o755) }},
		{"readdir of an empty directory (open, getdents, close)", func(i int) error {
			_, err := os.ReadDir(name("d", i))
			return err
		}},
		{"readdir of it again", func(i int) error {
			_, err := os.ReadDir(name("d", i))
			return err
		}},
		{"rmdir", func(i int) error { return unix.Rmdir(name("d", i)) }},
	}
	for _, c := range calls {
		before, err := counts()
		if err != nil {
			return err
		}
		for i := 0; i < n; i++ {
			if err := c.fn(i); err != nil {
				return fmt.Errorf("%s: %w", c.name, err)
			}
		}
		after, err := counts()
		if err != nil {
			return err
		}
		fmt.Printf("%s\t%s\n", c.name, perCall(before, after, n))
	}
	return os.Remove(dir)
}

// perCall formats the requests counted between before and after, per call
// of n: "LOOKUP CREATE RELEASE" (×k for k of one kind, fractions where not
// every call sent one). RELEASE, FORGET and the like are sent after the
// call returns; they are counted when they have arrived.
func perCall(before, after map[string]uint64, n int) string {
	type op struct {
		name string
		per  float64
	}
	var ops []op
	for name, c := range after {
		if d := c - before[name]; d > 0 {
			ops = append(ops, op{name, float64(d) / float64(n)})
		}
	}
	sort.Slice(ops, func(i, j int) bool { return ops[i].name < ops[j].name })
	var parts []string
	for _, o := range ops {
		switch {
		case o.per < 0.05:
			continue // the odd one: a GETATTR of the directory, a STATFS
		case o.per > 0.95 && o.per < 1.05:
			parts = append(parts, o.name)
		default:
			parts = append(parts, fmt.Sprintf("%s×%.2g", o.name, o.per))
		}
	}
	if len(parts) == 0 {
		return "(none)"
	}
	return strings.Join(parts, " ")
}
