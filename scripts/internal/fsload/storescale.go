package main

// fsload storescale: the steps of scripts/storescale, which mounts, kills
// and remounts a persistent store (--store) itself and calls these for the
// work on the mount and for its figures. Each step prints its figures on
// standard output as one line of space-separated numbers (for the script),
// and what it found on standard error; it exits 1 if a check failed.
//
//	storescale create  [-n N] [-dirs D] [-bytes S] [-workers W] DIR
//	storescale ready   -since T0 [-pid PID] [-timeout D] MNT
//	storescale walk    [-since T0] [-workers W] [-files N] [-bytes S] DIR
//	storescale mutate  [-k K] [-n N] [-dirs D] [-bytes S] [-workers W] DIR
//	storescale verify  [-k K] [-n N] [-dirs D] [-bytes S] [-workers W] DIR
//	storescale logfield [-since T0] [-first] LOG MSG FIELD
//	storescale report  [-json FILE] FIGURES.tsv
//
// The tree: DIR/dNNNN (D directories); file i is DIR/d(i/perDir)/f%07d(i)
// with perDir = ceil(N/D). mutate creates K new files gNNNNNNN (the j-th in
// directory j mod D), overwrites the start of files 0..K-1 and makes them
// mode 0600, and unlinks files K..K+K/10-1; verify checks all three.

import (
	"bytes"
	"errors"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"golang.org/x/sys/unix"
)

// storescaleMain parses the flags of one step and runs it; bad usage exits 2.
func storescaleMain(args []string) int {
	if len(args) < 1 {
		fmt.Fprintln(os.Stderr, "usage: fsload storescale create|ready|walk|mutate|verify|logfield|report [flags] ...")
		return 2
	}
	sub, args := args[0], args[1:]
	fl := flag.NewFlagSet("storescale "+sub, flag.ExitOnError)
	n := fl.Int("n", 1000000, "files of the tree")
	dirs := fl.Int("dirs", 1000, "directories of the tree")
	size := fl.Int("bytes", 0, "bytes of each file of the tree (walk: -1 = do not check)")
	nw := fl.Int("workers", 4, "goroutines")
	k := fl.Int("k", 10000, "files mutate creates and modifies")
	files := fl.Int("files", -1, "regular files walk must find (-1: any number)")
	since := fl.String("since", "", "start time, seconds since the epoch (bash's $EPOCHREALTIME)")
	pid := fl.Int("pid", 0, "server process: ready gives up when it is gone")
	timeout := fl.Duration("timeout", 30*time.Minute, "ready: how long to wait")
	first := fl.Bool("first", false, "logfield: the first matching line, not the last")
	jsonOut := fl.String("json", "", "report: also write the figures as JSON here")
	_ = fl.Parse(args)
	var t0 time.Time
	if *since != "" {
		var err error
		if t0, err = parseEpoch(*since); err != nil {
			fmt.Fprintln(os.Stderr, "storescale:", err)
			return 2
		}
	}
	need := func(count int) bool {
		if fl.NArg() != count {
			fmt.Fprintf(os.Stderr, "storescale %s: %d arguments expected\n", sub, count)
			return false
		}
		return true
	}
	t := tree{n: *n, dirs: *dirs, size: *size, workers: *nw}
	if *dirs <= 0 || *n < 0 || *nw <= 0 {
		fmt.Fprintln(os.Stderr, "storescale: bad -n, -dirs or -workers")
		return 2
	}
	t.perDir = (t.n + t.dirs - 1) / t.dirs
	switch sub {
	case "create":
		if !need(1) {
			return 2
		}
		t.root = fl.Arg(0)
		return t.create()
	case "ready":
		if !need(1) || t0.IsZero() {
			return 2
		}
		return ready(fl.Arg(0), t0, *pid, *timeout)
	case "walk":
		if !need(1) {
			return 2
		}
		t.root = fl.Arg(0)
		return t.walk(t0, *files)
	case "mutate", "verify":
		if !need(1) {
			return 2
		}
		t.root = fl.Arg(0)
		if sub == "mutate" {
			return t.mutate(*k)
		}
		return t.verify(*k)
	case "logfield":
		if !need(3) {
			return 2
		}
		return logField(fl.Arg(0), fl.Arg(1), fl.Arg(2), t0, *first)
	case "report":
		if !need(1) {
			return 2
		}
		return storeReport(fl.Arg(0), *jsonOut)
	}
	fmt.Fprintf(os.Stderr, "storescale: unknown step %q\n", sub)
	return 2
}

// parseEpoch parses "SECONDS[.FRACTION]".
func parseEpoch(s string) (time.Time, error) {
	sec, frac, _ := strings.Cut(s, ".")
	secs, err := strconv.ParseInt(sec, 10, 64)
	if err != nil {
		return time.Time{}, fmt.Errorf("bad -since %q", s)
	}
	var ns int64
	if frac != "" {
		frac = (frac + "000000000")[:9]
		if ns, err = strconv.ParseInt(frac, 10, 64); err != nil {
			return time.Time{}, fmt.Errorf("bad -since %q", s)
		}
	}
	return time.Unix(secs, ns), nil
}

// A tree is the files of a run: N files of size bytes over dirs
// directories under root, worked on by workers goroutines.
type tree struct {
	root                           string
	n, dirs, perDir, size, workers int
}

func (t *tree) dir(d int) string          { return filepath.Join(t.root, fmt.Sprintf("d%04d", d)) }
func (t *tree) file(i int) string         { return filepath.Join(t.dir(i/t.perDir), fmt.Sprintf("f%07d", i)) }
func (t *tree) newFile(j int) string      { return filepath.Join(t.dir(j%t.dirs), fmt.Sprintf("g%07d", j)) }
func newTag(j int) []byte                 { return []byte(fmt.Sprintf("new%07d\n", j)) }
func modTag(i int) []byte                 { return []byte(fmt.Sprintf("mod%07d\n", i)) }
func (t *tree) taggedSize(tag []byte) int { return max(t.size, len(tag)) }

// run runs fn(i, buf) for i in [0, count) on the tree's goroutines, each
// with a buffer for a file's data.
func (t *tree) run(count int, fn func(i int, buf []byte) error) batch {
	return parallel(count, t.workers, max(t.size, 64), fn)
}

// reportErrs prints the errors of a step's batch, if it had any.
func reportErrs(what string, b batch) {
	if b.errs == 0 {
		return
	}
	fmt.Fprintf(os.Stderr, "storescale: %s: %d ERRORS, first:\n", what, b.errs)
	for _, e := range b.firsts {
		fmt.Fprintln(os.Stderr, "   ", e)
	}
}

// create makes the directories and the N files. Output: seconds, files/s
// (directories included in neither), errors.
func (t *tree) create() int {
	if err := os.Mkdir(t.root, 0o755); err != nil {
		fmt.Fprintln(os.Stderr, "storescale:", err)
		return 1
	}
	b := t.run(t.dirs, func(d int, _ []byte) error { return os.Mkdir(t.dir(d), 0o755) })
	reportErrs("mkdir", b)
	fmt.Fprintf(os.Stderr, "   mkdir %d directories in %.2fs\n", t.dirs, b.dur.Seconds())
	if b.errs > 0 {
		return 1
	}
	b = t.run(t.n, func(i int, buf []byte) error {
		data := buf[:t.size]
		if len(data) >= 8 {
			copy(data, fmt.Sprintf("%07d\n", i))
		}
		return writeFile(t.file(i), data)
	})
	reportErrs("create", b)
	fmt.Fprintf(os.Stderr, "   created %d files of %d bytes in %.2fs = %.0f files/s\n", t.n, t.size, b.dur.Seconds(), float64(t.n)/b.dur.Seconds())
	fmt.Printf("%.3f %.0f %d\n", b.dur.Seconds(), float64(t.n)/b.dur.Seconds(), b.errs)
	if b.errs > 0 {
		return 1
	}
	return 0
}

// mutate creates K new files, modifies files 0..K-1 and unlinks files
// K..K+K/10-1. Output: seconds, created, modified, removed.
func (t *tree) mutate(k int) int {
	k = min(k, t.n)
	rm := min(k/10, t.n-k)
	start := time.Now()
	b1 := t.run(k, func(j int, buf []byte) error {
		tag := newTag(j)
		data := buf[:t.taggedSize(tag)]
		for o := 0; o < len(data); o += copy(data[o:], tag) {
		}
		return writeFile(t.newFile(j), data)
	})
	reportErrs("mutate: create", b1)
	b2 := t.run(k, func(i int, _ []byte) error {
		path := t.file(i)
		fd, err := unix.Open(path, unix.O_WRONLY|unix.O_CLOEXEC, 0)
		if err != nil {
			return &os.PathError{Op: "open", Path: path, Err: err}
		}
		defer unix.Close(fd)
		if _, err := unix.Pwrite(fd, modTag(i), 0); err != nil {
			return &os.PathError{Op: "pwrite", Path: path, Err: err}
		}
		if err := unix.Fchmod(fd, 0o600); err != nil {
			return &os.PathError{Op: "fchmod", Path: path, Err: err}
		}
		return nil
	})
	reportErrs("mutate: modify", b2)
	b3 := t.run(rm, func(i int, _ []byte) error { return unlink(t.file(k + i)) })
	reportErrs("mutate: unlink", b3)
	dt := time.Since(start)
	fmt.Fprintf(os.Stderr, "   created %d, modified %d, unlinked %d files in %.2fs\n", k, k, rm, dt.Seconds())
	fmt.Printf("%.3f %d %d %d\n", dt.Seconds(), k, k, rm)
	if b1.errs+b2.errs+b3.errs > 0 {
		return 1
	}
	return 0
}

// verify checks what mutate did. Output: seconds, files checked.
func (t *tree) verify(k int) int {
	k = min(k, t.n)
	rm := min(k/10, t.n-k)
	check := func(path string, tag []byte, mode uint32) error {
		var st unix.Stat_t
		if err := unix.Lstat(path, &st); err != nil {
			return &os.PathError{Op: "stat", Path: path, Err: err}
		}
		if want := int64(t.taggedSize(tag)); st.Size != want || st.Mode&0o7777 != mode {
			return fmt.Errorf("%s: size %d mode %o, want %d and %o", path, st.Size, st.Mode&0o7777, want, mode)
		}
		got := make([]byte, len(tag))
		fd, err := unix.Open(path, unix.O_RDONLY|unix.O_CLOEXEC, 0)
		if err != nil {
			return &os.PathError{Op: "open", Path: path, Err: err}
		}
		defer unix.Close(fd)
		if n, err := unix.Pread(fd, got, 0); err != nil || !bytes.Equal(got[:n], tag) {
			return fmt.Errorf("%s: starts with %q (%v), want %q", path, got[:max(n, 0)], err, tag)
		}
		return nil
	}
	start := time.Now()
	b1 := t.run(k, func(j int, _ []byte) error { return check(t.newFile(j), newTag(j), 0o644) })
	reportErrs("verify: new files", b1)
	b2 := t.run(k, func(i int, _ []byte) error { return check(t.file(i), modTag(i), 0o600) })
	reportErrs("verify: modified files", b2)
	b3 := t.run(rm, func(i int, _ []byte) error {
		var st unix.Stat_t
		if err := unix.Lstat(t.file(k+i), &st); !errors.Is(err, unix.ENOENT) {
			return fmt.Errorf("%s: unlinked, but stat says %v", t.file(k+i), err)
		}
		return nil
	})
	reportErrs("verify: unlinked files", b3)
	dt := time.Since(start)
	fmt.Fprintf(os.Stderr, "   checked %d new, %d modified and %d unlinked files in %.2fs: %d wrong\n", k, k, rm, dt.Seconds(), b1.errs+b2.errs+b3.errs)
	fmt.Printf("%.3f %d\n", dt.Seconds(), 2*k+rm)
	if b1.errs+b2.errs+b3.errs > 0 {
		return 1
	}
	return 0
}
