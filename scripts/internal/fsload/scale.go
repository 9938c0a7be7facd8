package main

// fsload scale: the phases of scripts/scale on one directory (the mount)
// and, for comparison, on a tmpfs directory.

import (
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"time"

	"golang.org/x/sys/unix"
)

// readdirBuf is the getdents64 buffer of the readdir phases: 8 KiB, as
// os.File's Readdirnames reads.
const readdirBuf = 8 << 10

// A phase is one timed step of the run over all its files.
type phase struct {
	Name  string
	Items int // files (and directories) handled
	Dur   time.Duration
	Errs  int64
	First string // first error
}

// rate returns the phase's items per second.
func (p phase) rate() float64 { return float64(p.Items) / p.Dur.Seconds() }

// A snap is what the server's /proc files and statfs said after a phase.
type snap struct {
	What       string
	ok         bool
	inodesUsed uint64
	procSample
}

// A target is one directory the phases run on, and what they found.
type target struct {
	label  string
	dir    string
	pid    int
	phases []phase
	snaps  []snap
}

func scaleMain(args []string) int {
	fl := flag.NewFlagSet("scale", flag.ExitOnError)
	n := fl.Int("n", 1000000, "files per structure")
	dirs := fl.Int("dirs", 1000, "directories of the tree")
	nw := fl.Int("workers", 4, "goroutines per phase")
	pid := fl.Int("pid", 0, "server process id of DIR's filesystem (0: none)")
	ref := fl.String("ref", "", "reference directory (tmpfs) to run the same phases on")
	label := fl.String("label", "mmapfs", "name of DIR's filesystem")
	_ = fl.Parse(args)
	if fl.NArg() != 1 || *n <= 0 || *dirs <= 0 {
		fmt.Fprintln(os.Stderr, "usage: fsload scale [-n N] [-dirs D] [-workers W] [-pid PID] [-ref TMPFSDIR] DIR")
		return 2
	}
	perDir := (*n + *dirs - 1) / *dirs
	targets := []*target{{label: *label, dir: fl.Arg(0), pid: *pid}}
	if *ref != "" {
		targets = append(targets, &target{label: "tmpfs", dir: *ref})
	}
	fmt.Printf("scale: %d files in one directory, then %d directories × %d files; %d goroutines per phase\n",
		*n, *dirs, perDir, *nw)
	failed := false
	for _, t := range targets {
		fmt.Printf("\n== %s (%s)\n", t.label, t.dir)
		if !t.run(*n, *dirs, perDir, *nw) {
			failed = true
		}
	}
	report(targets, *n)
	if failed {
		fmt.Println("\nRESULT: FAIL (errors above)")
		return 1
	}
	fmt.Println("\nRESULT: PASS")
	return 0
}

func (t *target) snap(what string) {
	s := snap{What: what}
	var st unix.Statfs_t
	if unix.Statfs(t.dir, &st) == nil {
		s.inodesUsed = st.Files - st.Ffree
	}
	if t.pid != 0 {
		ps, err := sampleProc(t.pid, "")
		if err != nil {
			fmt.Printf("   sample server: %v\n", err)
		} else {
			s.procSample, s.ok = ps, true
		}
	}
	t.snaps = append(t.snaps, s)
	if s.ok {
		fmt.Printf("   %-22s server RSS %8.1f MiB (anon %8.1f), %4d fds, %5d maps, %3d threads; inodes used %d\n",
			what, mib(s.RSS), mib(s.Anon), s.FDs, s.Maps, s.Threads, s.inodesUsed)
	}
}

// parallel runs fn(i) for i in [0, count) on nw goroutines, times it and
// records it as the phase name.
func (t *target) parallel(name string, count, nw int, fn func(i int) error) bool {
	b := parallel(count, nw, 0, func(i int, _ []byte) error { return fn(i) })
	return t.record(phase{Name: name, Items: count, Dur: b.dur, Errs: b.errs, First: b.first()})
}

func (t *target) record(p phase) bool {
	t.phases = append(t.phases, p)
	msg := fmt.Sprintf("   %-22s %9d in %8.2fs = %9.0f /s", p.Name, p.Items, p.Dur.Seconds(), p.rate())
	if p.Errs > 0 {
		msg += fmt.Sprintf("   %d ERRORS, first: %s", p.Errs, p.First)
	}
	fmt.Println(msg)
	return p.Errs == 0
}

func fileName(i int) string { return fmt.Sprintf("f%07d", i) }

func stat(path string) error {
	var st unix.Stat_t
	if err := unix.Lstat(path, &st); err != nil {
		return &os.PathError{Op: "stat", Path: path, Err: err}
	}
	if st.Mode&unix.S_IFMT != unix.S_IFREG || st.Size != 0 {
		return fmt.Errorf("stat %s: mode %o size %d", path, st.Mode, st.Size)
	}
	return nil
}

func (t *target) run(n, dirs, perDir, nw int) bool {
	ok := true
	t.snap("before")

	flat := filepath.Join(t.dir, "flat")
	if err := os.Mkdir(flat, 0o755); err != nil {
		fmt.Println("   mkdir:", err)
		return false
	}
	ok = t.parallel("flat create", n, nw, func(i int) error { return create(filepath.Join(flat, fileName(i))) }) && ok
	t.snap("after flat create")
	ok = t.parallel("flat stat", n, nw, func(i int) error { return stat(filepath.Join(flat, fileName(i))) }) && ok
	start := time.Now()
	cnt, err := countEntries(flat, readdirBuf)
	p := phase{Name: "flat readdir", Items: cnt, Dur: time.Since(start)}
	if err != nil || cnt != n {
		p.Errs, p.First = 1, fmt.Sprintf("%d entries (want %d), %v", cnt, n, err)
	}
	ok = t.record(p) && ok
	ok = t.parallel("flat unlink", n, nw, func(i int) error { return unlink(filepath.Join(flat, fileName(i))) }) && ok
	if err := os.Remove(flat); err != nil {
		fmt.Println("   rmdir:", err)
		ok = false
	}
	t.snap("after flat unlink")

	tree := filepath.Join(t.dir, "tree")
	if err := os.Mkdir(tree, 0o755); err != nil {
		fmt.Println("   mkdir:", err)
		return false
	}
	total := dirs * perDir
	dirName := func(d int) string { return filepath.Join(tree, fmt.Sprintf("d%04d", d)) }
	// File i lives in directory i/perDir: each goroutine's batch of 64
	// stays in one or two directories, as a build or an unpack would.
	path := func(i int) string { return filepath.Join(dirName(i/perDir), fileName(i%perDir)) }
	ok = t.parallel("tree mkdir", dirs, nw, func(d int) error { return os.Mkdir(dirName(d), 0o755) }) && ok
	ok = t.parallel("tree create", total, nw, func(i int) error { return create(path(i)) }) && ok
	t.snap("after tree create")
	ok = t.parallel("tree stat", total, nw, func(i int) error { return stat(path(i)) }) && ok
	var seen atomic.Int64
	ok = t.parallel("tree readdir (dirs)", dirs, nw, func(d int) error {
		c, err := countEntries(dirName(d), readdirBuf)
		seen.Add(int64(c))
		if err != nil || c != perDir {
			return fmt.Errorf("readdir %s: %d entries (want %d), %v", dirName(d), c, perDir, err)
		}
		return nil
	}) && ok
	last := &t.phases[len(t.phases)-1]
	last.Name, last.Items = "tree readdir", int(seen.Load())
	ok = t.parallel("tree unlink", total, nw, func(i int) error { return unlink(path(i)) }) && ok
	ok = t.parallel("tree rmdir", dirs, nw, func(d int) error { return unix.Rmdir(dirName(d)) }) && ok
	if err := os.Remove(tree); err != nil {
		fmt.Println("   rmdir:", err)
		ok = false
	}
	t.snap("after tree unlink")
	return ok
}

func report(targets []*target, n int) {
	t0 := targets[0]
	fmt.Printf("\nphases (files/s; ratio = %s time / tmpfs time):\n", t0.label)
	cols := []string{"phase", "items"}
	for _, t := range targets {
		cols = append(cols, t.label+" s", t.label+" /s")
	}
	if len(targets) > 1 {
		cols = append(cols, "ratio")
	}
	fmt.Printf("%-14s %9s", cols[0], cols[1])
	for _, c := range cols[2:] {
		fmt.Printf(" %12s", c)
	}
	fmt.Println()
	for i, p := range t0.phases {
		fmt.Printf("%-14s %9d", p.Name, p.Items)
		for _, t := range targets {
			if i < len(t.phases) {
				fmt.Printf(" %12.2f %12.0f", t.phases[i].Dur.Seconds(), t.phases[i].rate())
			}
		}
		if len(targets) > 1 && i < len(targets[1].phases) {
			fmt.Printf(" %12.2f", p.Dur.Seconds()/targets[1].phases[i].Dur.Seconds())
		}
		fmt.Println()
	}
	if t0.pid == 0 || len(t0.snaps) == 0 || !t0.snaps[0].ok {
		return
	}
	base := t0.snaps[0]
	fmt.Printf("\n%s server (pid %d):\n", t0.label, t0.pid)
	fmt.Printf("%-20s %10s %12s %10s %6s %6s %8s %12s\n", "when", "RSS(MiB)", "ΔRSS(MiB)", "anon(MiB)", "fds", "maps", "threads", "inodes used")
	for _, s := range t0.snaps {
		if !s.ok {
			continue
		}
		fmt.Printf("%-20s %10.1f %12.1f %10.1f %6d %6d %8d %12d\n", s.What, mib(s.RSS), mib(s.RSS-base.RSS), mib(s.Anon), s.FDs, s.Maps, s.Threads, s.inodesUsed)
	}
	var parts []string
	for _, s := range t0.snaps {
		if s.ok && strings.HasSuffix(s.What, "create") {
			parts = append(parts, fmt.Sprintf("%s: %.0f bytes/file", strings.TrimPrefix(s.What, "after "), float64(s.RSS-base.RSS)/float64(n)))
		}
	}
	fmt.Printf("server memory per file ((RSS after create − RSS before) / %d): %s\n", n, strings.Join(parts, "; "))
}
