package tests

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"runtime/debug"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// Files of the mount are mapped only in a child process: the FUSE server
// runs in the test process, and a process that faults on a mapping of a
// file it serves itself deadlocks on its own mmap lock (munmap writing back
// a dirty page waits for a WRITE that the server, needing the same lock to
// touch its store mappings, cannot answer). Real programs are never their
// own server.

// mmapChecks are run by the helper process (op "check NAME DIR"); each
// returns what went wrong.
var mmapChecks = map[string]func(dir string) []string{
	"shared":      mmapSharedCheck,
	"no-msync":    mmapNoMsyncCheck,
	"grow":        mmapGrowCheck,
	"read-holes":  mmapReadHolesCheck,
	"child-write": mmapChildWrite,
}

// problems collects failures in the helper process.
type problems []string

func (p *problems) add(format string, args ...any) {
	*p = append(*p, fmt.Sprintf(format, args...))
}

// guard turns a fault on mapped memory (SIGBUS) into a problem.
func (p *problems) guard(what string, f func()) {
	old := debug.SetPanicOnFault(true)
	defer debug.SetPanicOnFault(old)
	defer func() {
		if r := recover(); r != nil {
			p.add("%s: fault on mapped memory: %v", what, r)
		}
	}()
	f()
}

func runCheck(name, dir string) string {
	f, ok := mmapChecks[name]
	if !ok {
		return "no check " + name
	}
	if errs := f(dir); len(errs) > 0 {
		return strings.Join(errs, "; ")
	}
	return "ok"
}

// runMmapCheck runs the named check in a child process on dir.
func runMmapCheck(t *testing.T, bin, name, dir string) {
	t.Helper()
	res := runHelper(t, bin, hop("check", name, dir))
	if res[0] != "ok" {
		t.Errorf("%s (in a child process): %s", name, res[0])
	}
}

func mmapSharedCheck(dir string) []string {
	var p problems
	path := filepath.Join(dir, "mapped")
	const size = 5 * page
	init := pattern(size, 1)
	if err := os.WriteFile(path, init, 0o644); err != nil {
		return []string{err.Error()}
	}
	fd, err := unix.Open(path, unix.O_RDWR, 0)
	if err != nil {
		return []string{err.Error()}
	}
	defer unix.Close(fd)
	m, err := unix.Mmap(fd, 0, size, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_SHARED)
	if err != nil {
		return []string{"mmap: " + err.Error()}
	}
	p.guard("coherence", func() {
		if !bytes.Equal(m, init) {
			p.add("mapping differs from the file at %d", firstDiff(m, init))
		}
		// Mapping -> read.
		copy(m[100:], "written through the mapping")
		copy(m[3*page-5:], "across a page")
		b := make([]byte, 27)
		unix.Pread(fd, b, 100)
		if string(b) != "written through the mapping" {
			p.add("pread after a store to the mapping: %q", b)
		}
		b = make([]byte, 13)
		unix.Pread(fd, b, 3*page-5)
		if string(b) != "across a page" {
			p.add("pread across pages after a store: %q", b)
		}
		// write -> mapping, through this and another descriptor.
		if _, err := unix.Pwrite(fd, []byte("written with pwrite"), 2*page+10); err != nil {
			p.add("pwrite: %v", err)
		}
		if got := string(m[2*page+10 : 2*page+29]); got != "written with pwrite" {
			p.add("mapping after pwrite: %q", got)
		}
		if other, err := unix.Open(path, unix.O_WRONLY, 0); err != nil {
			p.add("open: %v", err)
		} else {
			unix.Pwrite(other, []byte("from another fd"), 4*page)
			unix.Close(other)
		}
		if got := string(m[4*page : 4*page+15]); got != "from another fd" {
			p.add("mapping after a write on another fd: %q", got)
		}
		if err := unix.Msync(m, unix.MS_SYNC); err != nil {
			p.add("msync: %v", err)
		}
		if err := unix.Msync(m[page:2*page], unix.MS_ASYNC); err != nil {
			p.add("msync MS_ASYNC: %v", err)
		}
	})
	want := append([]byte(nil), m...)
	if err := unix.Munmap(m); err != nil {
		p.add("munmap: %v", err)
	}
	if got, err := os.ReadFile(path); err != nil || !bytes.Equal(got, want) {
		p.add("file after munmap differs at %d (%v)", firstDiff(got, want), err)
	}
	os.WriteFile(filepath.Join(dir, "mapped.want"), want, 0o644)
	return p
}

func mmapNoMsyncCheck(dir string) []string {
	var p problems
	for i := 0; i < 3; i++ {
		path := filepath.Join(dir, fmt.Sprintf("nosync%d", i))
		size := (i + 1) * 3 * page
		if err := os.WriteFile(path, make([]byte, size), 0o644); err != nil {
			return []string{err.Error()}
		}
		fd, err := unix.Open(path, unix.O_RDWR, 0)
		if err != nil {
			return []string{err.Error()}
		}
		m, err := unix.Mmap(fd, 0, size, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_SHARED)
		if err != nil {
			unix.Close(fd)
			return []string{"mmap: " + err.Error()}
		}
		var st0, st1 unix.Stat_t
		unix.Fstat(fd, &st0)
		time.Sleep(20 * time.Millisecond)
		want := pattern(size, byte(i))
		p.guard("store", func() { copy(m, want) })
		unix.Munmap(m)
		unix.Close(fd)
		if got, err := os.ReadFile(path); err != nil || !bytes.Equal(got, want) {
			p.add("%s after munmap and close: differs at %d (%v)", path, firstDiff(got, want), err)
		}
		unix.Stat(path, &st1)
		if st1.Mtim == st0.Mtim || st1.Ctim == st0.Ctim {
			p.add("%s: stores through a mapping did not change mtime/ctime (%v -> %v)", path, st0.Mtim, st1.Mtim)
		}
	}
	return p
}

func mmapGrowCheck(dir string) []string {
	var p problems
	path := filepath.Join(dir, "grow")
	fd, err := unix.Open(path, unix.O_CREAT|unix.O_RDWR, 0o644)
	if err != nil {
		return []string{err.Error()}
	}
	defer unix.Close(fd)
	unix.Pwrite(fd, []byte("head"), 0)
	if err := unix.Ftruncate(fd, 600*page); err != nil {
		return []string{"ftruncate: " + err.Error()}
	}
	m, err := unix.Mmap(fd, 0, 600*page, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_SHARED)
	if err != nil {
		return []string{"mmap: " + err.Error()}
	}
	p.guard("grown range", func() {
		if string(m[:4]) != "head" || !isZero(m[4:]) {
			p.add("grown mapping: head %q, rest zero %v", m[:4], isZero(m[4:]))
		}
		copy(m[512*page-2:], "boundary") // across a 2 MiB boundary
	})
	unix.Munmap(m)
	b := make([]byte, 8)
	unix.Pread(fd, b, 512*page-2)
	if string(b) != "boundary" {
		p.add("store across 2 MiB through the mapping: read %q", b)
	}
	// A mapping at an offset.
	m2, err := unix.Mmap(fd, 511*page, 2*page, unix.PROT_READ, unix.MAP_SHARED)
	if err != nil {
		p.add("mmap at an offset: %v", err)
	} else {
		p.guard("offset mapping", func() {
			if string(m2[page-2:page+6]) != "boundary" {
				p.add("mapping at an offset: %q", m2[page-2:page+6])
			}
		})
		unix.Munmap(m2)
	}
	// Private mapping: stores stay private.
	m3, err := unix.Mmap(fd, 0, page, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_PRIVATE)
	if err != nil {
		p.add("mmap private: %v", err)
	} else {
		p.guard("private mapping", func() { copy(m3, "PRIVATE") })
		unix.Munmap(m3)
		unix.Pread(fd, b[:4], 0)
		if string(b[:4]) != "head" {
			p.add("a private mapping wrote back: %q", b[:4])
		}
	}
	// A read-only descriptor cannot be mapped shared and writable.
	if rfd, err := unix.Open(path, unix.O_RDONLY, 0); err == nil {
		if m4, err := unix.Mmap(rfd, 0, page, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_SHARED); err != unix.EACCES {
			p.add("shared writable mmap of an O_RDONLY fd: %v, want EACCES", err)
			if err == nil {
				unix.Munmap(m4)
			}
		}
		unix.Close(rfd)
	}
	return p
}

func mmapReadHolesCheck(dir string) []string {
	var p problems
	path := filepath.Join(dir, "holes")
	fd, err := unix.Open(path, unix.O_CREAT|unix.O_RDWR, 0o644)
	if err != nil {
		return []string{err.Error()}
	}
	defer unix.Close(fd)
	unix.Pwrite(fd, []byte("x"), 0)
	if err := unix.Ftruncate(fd, 1000*page); err != nil {
		return []string{err.Error()}
	}
	var st unix.Stat_t
	unix.Fstat(fd, &st)
	before := st.Blocks
	m, err := unix.Mmap(fd, 0, 1000*page, unix.PROT_READ, unix.MAP_SHARED)
	if err != nil {
		return []string{"mmap: " + err.Error()}
	}
	p.guard("read holes", func() {
		nonzero := 0
		for i := page; i < len(m); i += 512 {
			if m[i] != 0 {
				nonzero++
			}
		}
		if nonzero > 0 || m[0] != 'x' {
			p.add("mapping of a sparse file: %d nonzero bytes in holes, first byte %q", nonzero, m[0])
		}
	})
	unix.Munmap(m)
	// No check of st_blocks: tmpfs allocates a page for every hole read
	// through a shared mapping (8 -> 8000 blocks here), which is no promise
	// worth keeping.
	_ = before
	return p
}

// mmapChildWrite writes through a mapping and exits without munmap, msync
// or close: the kernel must write the dirty pages back by itself.
func mmapChildWrite(dir string) []string {
	path := filepath.Join(dir, "exit-dirty")
	fd, err := unix.Open(path, unix.O_CREAT|unix.O_RDWR, 0o644)
	if err != nil {
		return []string{err.Error()}
	}
	if err := unix.Ftruncate(fd, 8*page); err != nil {
		return []string{err.Error()}
	}
	m, err := unix.Mmap(fd, 0, 8*page, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_SHARED)
	if err != nil {
		return []string{"mmap: " + err.Error()}
	}
	var p problems
	p.guard("store", func() { copy(m, pattern(8*page, 77)) })
	// A sparse file of which one page is written through a mapping.
	fd2, err := unix.Open(filepath.Join(dir, "exit-sparse"), unix.O_CREAT|unix.O_RDWR, 0o644)
	if err != nil {
		return append(p, err.Error())
	}
	unix.Ftruncate(fd2, 8*page)
	m2, err := unix.Mmap(fd2, 0, 8*page, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_SHARED)
	if err != nil {
		return append(p, "mmap: "+err.Error())
	}
	p.guard("store in page 5", func() { copy(m2[5*page+10:], "five") })
	return p
}

// TestMmapShared: a shared writable mapping is coherent with read and write
// in both directions, msync works, and the data is there after munmap, for
// this and for another process.
func TestMmapShared(t *testing.T) {
	t.Parallel()
	mnt, _, _ := mountFS(t)
	bin := helperBinary(t)
	runMmapCheck(t, bin, "shared", mnt)
	want, err := os.ReadFile(filepath.Join(mnt, "mapped.want"))
	if err == nil {
		if got := readFile(t, filepath.Join(mnt, "mapped")); !bytes.Equal(got, want) {
			t.Errorf("file written through a mapping, read by another process: differs at %d", firstDiff(got, want))
		}
	}
}

// TestMmapWithoutMsync: stores to a shared mapping reach the file when it is
// only unmapped and closed, never msynced, and when the process exits with
// the mapping still in place.
func TestMmapWithoutMsync(t *testing.T) {
	t.Parallel()
	mnt, _, _ := mountFS(t)
	bin := helperBinary(t)
	runMmapCheck(t, bin, "no-msync", mnt)
	runMmapCheck(t, bin, "child-write", mnt)
	if got := readFile(t, filepath.Join(mnt, "exit-dirty")); !bytes.Equal(got, pattern(8*page, 77)) {
		t.Errorf("stores of a process that exited with the mapping in place: differ at %d", firstDiff(got, pattern(8*page, 77)))
	}
	// The one page stored through the mapping is data, the rest holes.
	fd := openFd(t, filepath.Join(mnt, "exit-sparse"), unix.O_RDONLY, 0)
	defer closeFd(fd)
	b := make([]byte, 4)
	if preadFull(t, fd, b, 5*page+10); string(b) != "five" {
		t.Errorf("store through a mapping in a sparse file: read %q", b)
	}
	seekExpect(t, fd, 0, unix.SEEK_DATA, 5*page, nil)
	seekExpect(t, fd, 5*page, unix.SEEK_HOLE, 6*page, nil)
	if st := fstat(t, fd); st.Blocks != page/512 {
		t.Errorf("one page stored through a mapping: st_blocks %d, want %d", st.Blocks, page/512)
	}
}

// TestMmapGrow: a file grown with ftruncate can be mapped and written in its
// new range, across a 2 MiB boundary; a mapping at an offset sees the right
// data; a private mapping does not write back; a read-only descriptor cannot
// be mapped shared and writable.
func TestMmapGrow(t *testing.T) {
	t.Parallel()
	mnt, _, _ := mountFS(t)
	runMmapCheck(t, helperBinary(t), "grow", mnt)
}

// TestMmapReadHoles: reading holes through a mapping gives zeros.
func TestMmapReadHoles(t *testing.T) {
	t.Parallel()
	mnt, _, _ := mountFS(t)
	runMmapCheck(t, helperBinary(t), "read-holes", mnt)
}
