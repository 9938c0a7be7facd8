package main

// The walk step of fsload storescale: the whole tree read and stat'ed, as
// find(1) would, timed from the server's start.

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/sys/unix"
)

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
		if len(firsts) < maxFirstErrs {
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
	reportErrs("walk", batch{errs: errs.Load(), firsts: firsts})
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
