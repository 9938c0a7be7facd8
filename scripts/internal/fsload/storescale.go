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
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/sys/unix"
)

const fuseSuperMagic = 0x65735546

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

// run runs fn(i) for i in [0, count) on the tree's goroutines; it returns
// the time taken, the number of errors and the first few of them.
func (t *tree) run(count int, fn func(i int, buf []byte) error) (time.Duration, int64, []string) {
	var next, errs atomic.Int64
	var mu sync.Mutex
	var firsts []string
	var wg sync.WaitGroup
	start := time.Now()
	for g := 0; g < t.workers; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			buf := make([]byte, max(t.size, 64))
			for {
				lo := int(next.Add(64)) - 64
				if lo >= count {
					return
				}
				for i := lo; i < min(lo+64, count); i++ {
					if err := fn(i, buf); err != nil {
						errs.Add(1)
						mu.Lock()
						if len(firsts) < 5 {
							firsts = append(firsts, err.Error())
						}
						mu.Unlock()
					}
				}
			}
		}()
	}
	wg.Wait()
	return time.Since(start), errs.Load(), firsts
}

func reportErrs(what string, errs int64, firsts []string) {
	if errs == 0 {
		return
	}
	fmt.Fprintf(os.Stderr, "storescale: %s: %d ERRORS, first:\n", what, errs)
	for _, e := range firsts {
		fmt.Fprintln(os.Stderr, "   ", e)
	}
}

// writeFile creates path (O_EXCL) with data.
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

// create makes the directories and the N files. Output: seconds, files/s
// (directories included in neither), errors.
func (t *tree) create() int {
	if err := os.Mkdir(t.root, 0o755); err != nil {
		fmt.Fprintln(os.Stderr, "storescale:", err)
		return 1
	}
	dt, errs, firsts := t.run(t.dirs, func(d int, _ []byte) error { return os.Mkdir(t.dir(d), 0o755) })
	reportErrs("mkdir", errs, firsts)
	fmt.Fprintf(os.Stderr, "   mkdir %d directories in %.2fs\n", t.dirs, dt.Seconds())
	if errs > 0 {
		return 1
	}
	dt, errs, firsts = t.run(t.n, func(i int, buf []byte) error {
		data := buf[:t.size]
		if len(data) >= 8 {
			copy(data, fmt.Sprintf("%07d\n", i))
		}
		return writeFile(t.file(i), data)
	})
	reportErrs("create", errs, firsts)
	fmt.Fprintf(os.Stderr, "   created %d files of %d bytes in %.2fs = %.0f files/s\n", t.n, t.size, dt.Seconds(), float64(t.n)/dt.Seconds())
	fmt.Printf("%.3f %.0f %d\n", dt.Seconds(), float64(t.n)/dt.Seconds(), errs)
	if errs > 0 {
		return 1
	}
	return 0
}

// ready waits until mnt is a FUSE mount whose root answers a stat, and
// prints the seconds since t0.
func ready(mnt string, t0 time.Time, pid int, timeout time.Duration) int {
	deadline := time.Now().Add(timeout)
	for {
		var sfs unix.Statfs_t
		if unix.Statfs(mnt, &sfs) == nil && sfs.Type == fuseSuperMagic {
			var st unix.Stat_t
			if err := unix.Lstat(mnt, &st); err == nil {
				fmt.Printf("%.3f\n", time.Since(t0).Seconds())
				return 0
			}
		}
		if pid != 0 && unix.Kill(pid, 0) != nil {
			fmt.Fprintf(os.Stderr, "storescale: the server (pid %d) is gone before %s answered\n", pid, mnt)
			return 1
		}
		if time.Now().After(deadline) {
			fmt.Fprintf(os.Stderr, "storescale: %s not mounted after %v\n", mnt, timeout)
			return 1
		}
		time.Sleep(time.Millisecond)
	}
}

// walk reads every directory under root and stats every entry (as
// find(1) does, with fstatat on the directory), on the tree's goroutines.
// Output: seconds since t0 (0 without it), seconds of the walk, regular
// files, directories (root included), files whose size is not -bytes.
func (t *tree) walk(t0 time.Time, wantFiles int) int {
	start := time.Now()
	var (
		mu      sync.Mutex
		cond    = sync.NewCond(&mu)
		stack   = []string{t.root}
		active  int
		files   atomic.Int64
		dirs    atomic.Int64
		badSize atomic.Int64
		errs    atomic.Int64
		firsts  []string
	)
	fail := func(err error) {
		errs.Add(1)
		mu.Lock()
		if len(firsts) < 5 {
			firsts = append(firsts, err.Error())
		}
		mu.Unlock()
	}
	get := func() (string, bool) {
		mu.Lock()
		defer mu.Unlock()
		for len(stack) == 0 && active > 0 {
			cond.Wait()
		}
		if len(stack) == 0 {
			cond.Broadcast()
			return "", false
		}
		d := stack[len(stack)-1]
		stack = stack[:len(stack)-1]
		active++
		return d, true
	}
	put := func(sub []string) {
		mu.Lock()
		stack = append(stack, sub...)
		active--
		cond.Broadcast()
		mu.Unlock()
	}
	one := func(dir string) []string {
		dirs.Add(1)
		f, err := os.Open(dir)
		if err != nil {
			fail(err)
			return nil
		}
		defer f.Close()
		fd := int(f.Fd())
		var sub []string
		for {
			names, err := f.Readdirnames(4096)
			for _, name := range names {
				var st unix.Stat_t
				if err := unix.Fstatat(fd, name, &st, unix.AT_SYMLINK_NOFOLLOW); err != nil {
					fail(&os.PathError{Op: "stat", Path: filepath.Join(dir, name), Err: err})
					continue
				}
				switch st.Mode & unix.S_IFMT {
				case unix.S_IFDIR:
					sub = append(sub, filepath.Join(dir, name))
				case unix.S_IFREG:
					files.Add(1)
					if t.size >= 0 && st.Size != int64(t.size) {
						badSize.Add(1)
					}
				}
			}
			if err != nil || len(names) == 0 {
				if err != nil && !errors.Is(err, io.EOF) {
					fail(err)
				}
				return sub
			}
		}
	}
	var wg sync.WaitGroup
	for g := 0; g < t.workers; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				d, ok := get()
				if !ok {
					return
				}
				put(one(d))
			}
		}()
	}
	wg.Wait()
	dt := time.Since(start)
	total := 0.0
	if !t0.IsZero() {
		total = time.Since(t0).Seconds()
	}
	reportErrs("walk", errs.Load(), firsts)
	fmt.Fprintf(os.Stderr, "   walked %d directories and %d files in %.2fs (%.0f entries/s)\n",
		dirs.Load(), files.Load(), dt.Seconds(), float64(files.Load()+dirs.Load())/dt.Seconds())
	ok := errs.Load() == 0
	if wantFiles >= 0 && files.Load() != int64(wantFiles) {
		fmt.Fprintf(os.Stderr, "storescale: walk found %d files, want %d\n", files.Load(), wantFiles)
		ok = false
	}
	if badSize.Load() > 0 {
		fmt.Fprintf(os.Stderr, "storescale: %d files are not %d bytes\n", badSize.Load(), t.size)
		ok = false
	}
	fmt.Printf("%.3f %.3f %d %d %d\n", total, dt.Seconds(), files.Load(), dirs.Load(), badSize.Load())
	if !ok {
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
	_, e1, f1 := t.run(k, func(j int, buf []byte) error {
		tag := newTag(j)
		data := buf[:t.taggedSize(tag)]
		for o := 0; o < len(data); o += copy(data[o:], tag) {
		}
		return writeFile(t.newFile(j), data)
	})
	reportErrs("mutate: create", e1, f1)
	_, e2, f2 := t.run(k, func(i int, _ []byte) error {
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
	reportErrs("mutate: modify", e2, f2)
	_, e3, f3 := t.run(rm, func(i int, _ []byte) error { return unlink(t.file(k + i)) })
	reportErrs("mutate: unlink", e3, f3)
	dt := time.Since(start)
	fmt.Fprintf(os.Stderr, "   created %d, modified %d, unlinked %d files in %.2fs\n", k, k, rm, dt.Seconds())
	fmt.Printf("%.3f %d %d %d\n", dt.Seconds(), k, k, rm)
	if e1+e2+e3 > 0 {
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
	_, e1, f1 := t.run(k, func(j int, _ []byte) error { return check(t.newFile(j), newTag(j), 0o644) })
	reportErrs("verify: new files", e1, f1)
	_, e2, f2 := t.run(k, func(i int, _ []byte) error { return check(t.file(i), modTag(i), 0o600) })
	reportErrs("verify: modified files", e2, f2)
	_, e3, f3 := t.run(rm, func(i int, _ []byte) error {
		var st unix.Stat_t
		if err := unix.Lstat(t.file(k+i), &st); !errors.Is(err, unix.ENOENT) {
			return fmt.Errorf("%s: unlinked, but stat says %v", t.file(k+i), err)
		}
		return nil
	})
	reportErrs("verify: unlinked files", e3, f3)
	dt := time.Since(start)
	fmt.Fprintf(os.Stderr, "   checked %d new, %d modified and %d unlinked files in %.2fs: %d wrong\n", k, k, rm, dt.Seconds(), e1+e2+e3)
	fmt.Printf("%.3f %d\n", dt.Seconds(), 2*k+rm)
	if e1+e2+e3 > 0 {
		return 1
	}
	return 0
}

// logField prints field of the last (or first) line of a JSON log whose
// msg starts with msg. A duration is printed in seconds; the field "time"
// with t0 as the seconds from t0 to the line. Nothing found: exit 1.
func logField(log, msg, field string, t0 time.Time, first bool) int {
	f, err := os.Open(log)
	if err != nil {
		fmt.Fprintln(os.Stderr, "storescale:", err)
		return 1
	}
	defer f.Close()
	var found any
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<20), 1<<24)
	for sc.Scan() {
		var rec map[string]any
		if json.Unmarshal(sc.Bytes(), &rec) != nil {
			continue
		}
		m, _ := rec["msg"].(string)
		v, ok := rec[field]
		if !strings.HasPrefix(m, msg) || !ok {
			continue
		}
		found = v
		if first {
			break
		}
	}
	switch v := found.(type) {
	case nil:
		fmt.Fprintf(os.Stderr, "storescale: no %q in a line %q of %s\n", field, msg, log)
		return 1
	case float64:
		fmt.Println(strconv.FormatFloat(v, 'f', -1, 64))
	case string:
		if field == "time" && !t0.IsZero() {
			tm, err := time.Parse("2006-01-02T15:04:05.000Z0700", v)
			if err != nil {
				fmt.Fprintln(os.Stderr, "storescale:", err)
				return 1
			}
			fmt.Printf("%.3f\n", tm.Sub(t0).Seconds())
		} else if d, err := time.ParseDuration(v); err == nil {
			fmt.Printf("%.3f\n", d.Seconds())
		} else {
			fmt.Println(v)
		}
	default:
		fmt.Println(v)
	}
	return 0
}

// storeReport prints the figures of FIGURES.tsv (key, value, unit, label
// a line) as a table, and writes them as JSON.
func storeReport(tsv, jsonOut string) int {
	data, err := os.ReadFile(tsv)
	if err != nil {
		fmt.Fprintln(os.Stderr, "storescale:", err)
		return 1
	}
	type figure struct {
		Key   string `json:"key"`
		Label string `json:"label"`
		Value any    `json:"value"`
		Unit  string `json:"unit,omitempty"`
	}
	var figs []figure
	values := map[string]any{}
	width := 0
	for _, line := range strings.Split(strings.TrimRight(string(data), "\n"), "\n") {
		f := strings.SplitN(line, "\t", 4)
		if len(f) < 4 {
			continue
		}
		var v any = f[1]
		if x, err := strconv.ParseFloat(f[1], 64); err == nil {
			v = x
		}
		figs = append(figs, figure{Key: f[0], Value: v, Unit: f[2], Label: f[3]})
		values[f[0]] = v
		width = max(width, len([]rune(f[3])))
	}
	fmt.Println()
	for _, g := range figs {
		val := fmt.Sprint(g.Value)
		if x, ok := g.Value.(float64); ok {
			val = humanNumber(x)
		}
		fmt.Printf("  %-*s %16s %s\n", width, g.Label, val, g.Unit)
	}
	if jsonOut == "" {
		return 0
	}
	out, _ := json.MarshalIndent(map[string]any{"figures": figs, "values": values}, "", "  ")
	if err := os.WriteFile(jsonOut, append(out, '\n'), 0o644); err != nil {
		fmt.Fprintln(os.Stderr, "storescale:", err)
		return 1
	}
	fmt.Printf("\nfigures written to %s\n", jsonOut)
	return 0
}

// humanNumber prints x with thousands separators, and up to 3 decimals
// below 100.
func humanNumber(x float64) string {
	if x != float64(int64(x)) && x < 100 && x > -100 {
		return strconv.FormatFloat(x, 'f', -1, 64)
	}
	s := strconv.FormatInt(int64(x+0.5), 10)
	var b strings.Builder
	for i, c := range s {
		if i > 0 && (len(s)-i)%3 == 0 && s[i-1] != '-' {
			b.WriteByte(',')
		}
		b.WriteRune(c)
	}
	return b.String()
}
