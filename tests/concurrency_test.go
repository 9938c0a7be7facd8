package tests

import (
	"bytes"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// TestConcurrentMixed: 100 goroutines create, write, read, rename, unlink,
// truncate, mkdir, readdir and stat at once, in their own directories and
// in a shared one, each checking the content of every file it owns.
func TestConcurrentMixed(t *testing.T) {
	t.Parallel()
	mnt, _, _ := mountFS(t, withTimeout(120*time.Second))
	const workers = 100
	const region = 4096
	duration := 3 * time.Second
	if testing.Short() {
		duration = time.Second
	}
	shared := filepath.Join(mnt, "shared")
	noErr(t, os.Mkdir(shared, 0o777), "mkdir")
	common := filepath.Join(mnt, "common")
	writeFile(t, common, make([]byte, workers*region))

	deadline := time.Now().Add(duration)
	var wg sync.WaitGroup
	var ops atomic.Int64
	for g := 0; g < workers; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			w := &worker{t: t, g: g, mnt: mnt, shared: shared, common: common, region: region,
				rng: rand.New(rand.NewPCG(uint64(g), 42)), files: map[string][]byte{}, dirs: map[string]bool{}}
			w.own = filepath.Join(mnt, fmt.Sprintf("w%03d", g))
			if err := os.Mkdir(w.own, 0o755); err != nil {
				t.Errorf("worker %d: mkdir: %v", g, err)
				return
			}
			for time.Now().Before(deadline) && !w.failed {
				w.step()
				ops.Add(1)
			}
			if !w.failed {
				w.verifyAll()
			}
		}()
	}
	wg.Wait()
	t.Logf("%d operations by %d workers", ops.Load(), workers)
	// Afterwards, the shared directory holds exactly what the workers left.
	if t.Failed() {
		return
	}
	ents, err := os.ReadDir(shared)
	noErr(t, err, "readdir shared")
	names := map[string]int{}
	for _, e := range ents {
		names[e.Name()]++
		if names[e.Name()] > 1 {
			t.Errorf("shared dir lists %q twice", e.Name())
		}
	}
}

type worker struct {
	t              *testing.T
	g              int
	mnt, own       string
	shared, common string
	region         int
	rng            *rand.Rand
	files          map[string][]byte // path -> expected content
	dirs           map[string]bool   // subdirectories of own
	seq            int
	failed         bool
}

func (w *worker) fail(format string, args ...any) {
	w.t.Errorf("worker %d: %s", w.g, fmt.Sprintf(format, args...))
	w.failed = true
}

func (w *worker) newName() string {
	w.seq++
	if w.rng.IntN(3) == 0 {
		return filepath.Join(w.shared, fmt.Sprintf("g%03d-%d", w.g, w.seq))
	}
	if len(w.dirs) > 0 && w.rng.IntN(3) == 0 {
		for d := range w.dirs {
			return filepath.Join(d, fmt.Sprintf("f%d", w.seq))
		}
	}
	return filepath.Join(w.own, fmt.Sprintf("f%d", w.seq))
}

func (w *worker) pick() (string, []byte, bool) {
	if len(w.files) == 0 {
		return "", nil, false
	}
	keys := make([]string, 0, len(w.files))
	for k := range w.files {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	k := keys[w.rng.IntN(len(keys))]
	return k, w.files[k], true
}

func (w *worker) randData() []byte {
	n := w.rng.IntN(3) * 4096
	n += w.rng.IntN(5000)
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(w.rng.Uint32())
	}
	return b
}

func (w *worker) step() {
	switch w.rng.IntN(11) {
	case 0, 1: // create
		p := w.newName()
		data := w.randData()
		if err := os.WriteFile(p, data, 0o644); err != nil {
			w.fail("create %s: %v", p, err)
			return
		}
		w.files[p] = data
	case 2: // read and verify
		p, want, ok := w.pick()
		if !ok {
			return
		}
		got, err := os.ReadFile(p)
		if err != nil || !bytes.Equal(got, want) {
			w.fail("read %s: %d bytes (want %d), differs at %d, err %v", p, len(got), len(want), firstDiff(got, want), err)
		}
	case 3: // overwrite a range
		p, want, ok := w.pick()
		if !ok {
			return
		}
		off := w.rng.IntN(len(want) + 100)
		patch := w.randData()
		patch = patch[:min(len(patch), 1+w.rng.IntN(6000))]
		f, err := os.OpenFile(p, os.O_WRONLY, 0)
		if err != nil {
			w.fail("open %s: %v", p, err)
			return
		}
		_, err = f.WriteAt(patch, int64(off))
		f.Close()
		if err != nil {
			w.fail("pwrite %s: %v", p, err)
			return
		}
		if end := off + len(patch); end > len(want) {
			want = append(want, make([]byte, end-len(want))...)
		}
		copy(want[off:], patch)
		w.files[p] = want
	case 4: // rename, possibly between own and shared directories
		p, data, ok := w.pick()
		if !ok {
			return
		}
		q := w.newName()
		if err := unix.Rename(p, q); err != nil {
			w.fail("rename %s %s: %v", p, q, err)
			return
		}
		delete(w.files, p)
		w.files[q] = data
		if _, err := os.Lstat(p); !errors.Is(err, os.ErrNotExist) {
			w.fail("old name %s after rename: %v", p, err)
		}
	case 5: // unlink
		p, _, ok := w.pick()
		if !ok {
			return
		}
		if err := unix.Unlink(p); err != nil {
			w.fail("unlink %s: %v", p, err)
			return
		}
		delete(w.files, p)
		if _, err := os.Lstat(p); !errors.Is(err, os.ErrNotExist) {
			w.fail("%s after unlink: %v", p, err)
		}
	case 6: // mkdir or rmdir of an own subdirectory
		if len(w.dirs) < 3 {
			w.seq++
			d := filepath.Join(w.own, fmt.Sprintf("d%d", w.seq))
			if err := os.Mkdir(d, 0o755); err != nil {
				w.fail("mkdir %s: %v", d, err)
				return
			}
			w.dirs[d] = true
			return
		}
		for d := range w.dirs {
			// Empty it first by moving its files to own.
			for p, data := range w.files {
				if filepath.Dir(p) == d {
					q := filepath.Join(w.own, "m"+filepath.Base(p))
					if err := unix.Rename(p, q); err != nil {
						w.fail("rename %s %s: %v", p, q, err)
						return
					}
					delete(w.files, p)
					w.files[q] = data
				}
			}
			if err := unix.Rmdir(d); err != nil {
				w.fail("rmdir %s: %v", d, err)
				return
			}
			delete(w.dirs, d)
			return
		}
	case 7: // readdir own: exactly the expected names
		w.checkOwnDir()
	case 8: // readdir shared: all own shared files, each once
		ents, err := os.ReadDir(w.shared)
		if err != nil {
			w.fail("readdir shared: %v", err)
			return
		}
		seen := map[string]int{}
		for _, e := range ents {
			seen[e.Name()]++
		}
		prefix := fmt.Sprintf("g%03d-", w.g)
		for nm, c := range seen {
			if strings.HasPrefix(nm, prefix) {
				if c != 1 {
					w.fail("shared dir lists %s %d times", nm, c)
				}
				if _, ok := w.files[filepath.Join(w.shared, nm)]; !ok {
					w.fail("shared dir lists %s, which this worker removed", nm)
				}
			}
		}
		for p := range w.files {
			if filepath.Dir(p) == w.shared && seen[filepath.Base(p)] != 1 {
				w.fail("shared dir lists %s %d times, want once", filepath.Base(p), seen[filepath.Base(p)])
			}
		}
	case 9: // stat and truncate
		p, want, ok := w.pick()
		if !ok {
			return
		}
		var st unix.Stat_t
		if err := unix.Lstat(p, &st); err != nil || st.Size != int64(len(want)) || st.Nlink != 1 {
			w.fail("stat %s: size %d nlink %d (want %d, 1), %v", p, st.Size, st.Nlink, len(want), err)
			return
		}
		n := w.rng.IntN(len(want) + 5000)
		if err := os.Truncate(p, int64(n)); err != nil {
			w.fail("truncate %s: %v", p, err)
			return
		}
		if n <= len(want) {
			want = want[:n]
		} else {
			want = append(want, make([]byte, n-len(want))...)
		}
		w.files[p] = want
	case 10: // own region of the common file
		f, err := os.OpenFile(w.common, os.O_RDWR, 0)
		if err != nil {
			w.fail("open common: %v", err)
			return
		}
		defer f.Close()
		data := make([]byte, w.region)
		for i := range data {
			data[i] = byte(w.g) ^ byte(w.seq) ^ byte(i)
		}
		w.seq++
		if _, err := f.WriteAt(data, int64(w.g*w.region)); err != nil {
			w.fail("write common: %v", err)
			return
		}
		got := make([]byte, w.region)
		if _, err := f.ReadAt(got, int64(w.g*w.region)); err != nil || !bytes.Equal(got, data) {
			w.fail("own region of the common file differs at %d (%v)", firstDiff(got, data), err)
		}
	}
}

func (w *worker) checkOwnDir() {
	for _, dir := range append([]string{w.own}, mapKeys(w.dirs)...) {
		ents, err := os.ReadDir(dir)
		if err != nil {
			w.fail("readdir %s: %v", dir, err)
			return
		}
		var got, want []string
		for _, e := range ents {
			got = append(got, e.Name())
		}
		for p := range w.files {
			if filepath.Dir(p) == dir {
				want = append(want, filepath.Base(p))
			}
		}
		if dir == w.own {
			for d := range w.dirs {
				want = append(want, filepath.Base(d))
			}
		}
		sort.Strings(got)
		sort.Strings(want)
		if strings.Join(got, "/") != strings.Join(want, "/") {
			w.fail("readdir %s: %v, want %v", dir, got, want)
		}
	}
}

func mapKeys(m map[string]bool) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	return out
}

func (w *worker) verifyAll() {
	for p, want := range w.files {
		got, err := os.ReadFile(p)
		if err != nil || !bytes.Equal(got, want) {
			w.fail("final check of %s: %d bytes (want %d), differs at %d, err %v", p, len(got), len(want), firstDiff(got, want), err)
			return
		}
	}
	w.checkOwnDir()
}

// TestConcurrentSameFile: writers on disjoint ranges of one file and readers
// of the whole file, with appends and a truncating reader-of-size, never see
// torn or lost data in their own ranges.
func TestConcurrentSameFile(t *testing.T) {
	t.Parallel()
	mnt, _, _ := mountFS(t)
	p := filepath.Join(mnt, "f")
	const writers, chunk, rounds = 16, 64 << 10, 20
	writeFile(t, p, make([]byte, writers*chunk))
	var wg sync.WaitGroup
	for g := 0; g < writers; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			fd, err := unix.Open(p, unix.O_RDWR|unix.O_CLOEXEC, 0)
			if err != nil {
				t.Errorf("open: %v", err)
				return
			}
			defer closeFd(fd)
			buf := make([]byte, chunk)
			got := make([]byte, chunk)
			for r := 0; r < rounds; r++ {
				for i := range buf {
					buf[i] = byte(g*31 + r + i/4096)
				}
				if n, err := unix.Pwrite(fd, buf, int64(g*chunk)); n != chunk || err != nil {
					t.Errorf("writer %d: pwrite %d, %v", g, n, err)
					return
				}
				if n, err := unix.Pread(fd, got, int64(g*chunk)); n != chunk || err != nil || !bytes.Equal(got, buf) {
					last := 0
					for i := range got {
						if got[i] != buf[i] {
							last = i
						}
					}
					t.Errorf("writer %d round %d: read back %d, %v, differs at %d..%d: got %d want %d; got at 4096: %d, at end %d", g, r, n, err, firstDiff(got, buf), last, got[0], buf[0], got[4096], got[len(got)-1])
					return
				}
			}
		}()
	}
	// Appenders on another file, in parallel.
	ap := filepath.Join(mnt, "appended")
	writeFile(t, ap, nil)
	const appenders, appends = 8, 200
	for g := 0; g < appenders; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			fd, err := unix.Open(ap, unix.O_WRONLY|unix.O_APPEND|unix.O_CLOEXEC, 0)
			if err != nil {
				t.Errorf("open: %v", err)
				return
			}
			defer closeFd(fd)
			rec := []byte(fmt.Sprintf("<%02d:%s>", g, strings.Repeat(string(rune('a'+g)), 50)))
			for i := 0; i < appends; i++ {
				if n, err := unix.Write(fd, rec); n != len(rec) || err != nil {
					t.Errorf("append: %d %v", n, err)
					return
				}
			}
		}()
	}
	wg.Wait()
	// Every append landed whole: the file is a sequence of whole records.
	b := readFile(t, ap)
	recLen := len(fmt.Sprintf("<%02d:%s>", 0, strings.Repeat("a", 50)))
	if len(b) != appenders*appends*recLen {
		t.Fatalf("appended file has %d bytes, want %d", len(b), appenders*appends*recLen)
	}
	count := map[byte]int{}
	for i := 0; i < len(b); i += recLen {
		r := b[i : i+recLen]
		g := (r[1]-'0')*10 + (r[2] - '0')
		if r[0] != '<' || r[recLen-1] != '>' || !bytes.Equal(r[4:recLen-1], bytes.Repeat([]byte{'a' + g}, 50)) {
			t.Fatalf("torn record at %d: %q", i, r)
		}
		count[g]++
	}
	for g := 0; g < appenders; g++ {
		if count[byte(g)] != appends {
			t.Errorf("appender %d: %d records, want %d", g, count[byte(g)], appends)
		}
	}
}

// TestConcurrentReadWriteDirect: O_DIRECT reads and writes of one file from
// several threads at once, so that every one reaches the server: reads
// answered from the mappings and writes that record the file's new
// attributes (in the journal, with a store) must not wait on each other
// for good. A deadlock hangs the mount; the watchdog ends it.
func TestConcurrentReadWriteDirect(t *testing.T) {
	t.Parallel()
	mnt, _, _ := mountFS(t)
	p := filepath.Join(mnt, "f")
	const span = 4 << 20
	writeFile(t, p, pattern(span, 1))
	deadline := time.Now().Add(time.Second)
	var wg sync.WaitGroup
	var ops atomic.Int64
	for g := 0; g < 8; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			fd, err := unix.Open(p, unix.O_RDWR|unix.O_DIRECT|unix.O_CLOEXEC, 0)
			if err != nil {
				t.Errorf("open: %v", err)
				return
			}
			defer closeFd(fd)
			buf, err := unix.Mmap(-1, 0, 16<<10, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_PRIVATE|unix.MAP_ANONYMOUS)
			if err != nil {
				t.Errorf("buffer: %v", err)
				return
			}
			defer unix.Munmap(buf)
			r := rand.New(rand.NewPCG(uint64(g), 1))
			for time.Now().Before(deadline) {
				n := 4096 << r.IntN(3)
				off := int64(r.IntN(span/n)) * int64(n)
				if g%2 == 0 {
					_, err = unix.Pwrite(fd, buf[:n], off)
				} else {
					_, err = unix.Pread(fd, buf[:n], off)
				}
				if err != nil {
					t.Errorf("thread %d: %d bytes at %d: %v", g, n, off, err)
					return
				}
				ops.Add(1)
			}
		}()
	}
	wg.Wait()
	t.Logf("%d reads and writes", ops.Load())
}
