package tests

import (
	"bytes"
	"fmt"
	"path/filepath"
	"runtime/debug"
	"testing"

	"golang.org/x/sys/unix"
)

// faultSafe runs f with faults on mapped memory turned into panics, and a
// panic into a test error, so a SIGBUS fails the test instead of the binary.
func faultSafe(t *testing.T, what string, f func()) {
	t.Helper()
	old := debug.SetPanicOnFault(true)
	defer debug.SetPanicOnFault(old)
	defer func() {
		if r := recover(); r != nil {
			t.Errorf("%s: fault on mapped memory: %v", what, r)
		}
	}()
	f()
}

// TestMmapShared: a shared writable mapping is coherent with read and write
// in both directions, msync works, and the data is there after munmap.
func TestMmapShared(t *testing.T) {
	t.Parallel()
	mnt, _, _ := mountFS(t)
	p := filepath.Join(mnt, "mapped")
	const size = 5 * page
	init := pattern(size, 1)
	writeFile(t, p, init)
	fd := openFd(t, p, unix.O_RDWR, 0)
	defer unix.Close(fd)
	m, err := unix.Mmap(fd, 0, size, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_SHARED)
	noErr(t, err, "mmap")
	unmapped := false
	defer func() {
		if !unmapped {
			unix.Munmap(m)
		}
	}()
	faultSafe(t, "coherence", func() {
		if !bytes.Equal(m, init) {
			t.Errorf("mapping differs from the file at %d", firstDiff(m, init))
		}
		// Mapping -> read.
		copy(m[100:], "written through the mapping")
		copy(m[3*page-5:], "across a page")
		b := make([]byte, 27)
		preadFull(t, fd, b, 100)
		if string(b) != "written through the mapping" {
			t.Errorf("pread after a store to the mapping: %q", b)
		}
		b = make([]byte, 13)
		preadFull(t, fd, b, 3*page-5)
		if string(b) != "across a page" {
			t.Errorf("pread across pages after a store: %q", b)
		}
		// write -> mapping, through this and another descriptor.
		pwriteAll(t, fd, []byte("written with pwrite"), 2*page+10)
		if got := string(m[2*page+10 : 2*page+29]); got != "written with pwrite" {
			t.Errorf("mapping after pwrite: %q", got)
		}
		other := openFd(t, p, unix.O_WRONLY, 0)
		pwriteAll(t, other, []byte("from another fd"), 4*page)
		unix.Close(other)
		if got := string(m[4*page : 4*page+15]); got != "from another fd" {
			t.Errorf("mapping after a write on another fd: %q", got)
		}
		noErr(t, unix.Msync(m, unix.MS_SYNC), "msync")
		noErr(t, unix.Msync(m[page:2*page], unix.MS_ASYNC), "msync async")
	})
	want := append([]byte(nil), m...)
	noErr(t, unix.Munmap(m), "munmap")
	unmapped = true
	// Close everything, reopen, read.
	if got := readFile(t, p); !bytes.Equal(got, want) {
		t.Errorf("file after munmap differs at %d", firstDiff(got, want))
	}
}

// TestMmapWithoutMsync: stores to a shared mapping reach the file even when
// the mapping is only unmapped and the file closed, never msynced.
func TestMmapWithoutMsync(t *testing.T) {
	t.Parallel()
	mnt, _, _ := mountFS(t)
	for i := 0; i < 3; i++ {
		p := filepath.Join(mnt, fmt.Sprintf("f%d", i))
		size := (i + 1) * 3 * page
		writeFile(t, p, make([]byte, size))
		fd := openFd(t, p, unix.O_RDWR, 0)
		m, err := unix.Mmap(fd, 0, size, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_SHARED)
		noErr(t, err, "mmap")
		want := pattern(size, byte(i))
		faultSafe(t, "store", func() { copy(m, want) })
		unix.Munmap(m)
		unix.Close(fd)
		if got := readFile(t, p); !bytes.Equal(got, want) {
			t.Errorf("%s after munmap and close: differs at %d", p, firstDiff(got, want))
		}
	}
}

// TestMmapGrow: a file grown with ftruncate can be mapped and written in its
// new range; a private mapping does not write back; a mapping at an offset
// sees the right data.
func TestMmapGrow(t *testing.T) {
	t.Parallel()
	mnt, _, _ := mountFS(t)
	p := filepath.Join(mnt, "f")
	fd := openFd(t, p, unix.O_CREAT|unix.O_RDWR, 0o644)
	defer unix.Close(fd)
	pwriteAll(t, fd, []byte("head"), 0)
	noErr(t, unix.Ftruncate(fd, 600*page), "ftruncate")
	m, err := unix.Mmap(fd, 0, 600*page, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_SHARED)
	noErr(t, err, "mmap")
	faultSafe(t, "grown range", func() {
		if string(m[:4]) != "head" || !isZero(m[4:]) {
			t.Errorf("grown mapping: head %q, rest zero %v", m[:4], isZero(m[4:]))
		}
		copy(m[512*page-2:], "boundary") // across a 2 MiB boundary
	})
	unix.Munmap(m)
	b := make([]byte, 8)
	preadFull(t, fd, b, 512*page-2)
	if string(b) != "boundary" {
		t.Errorf("store across 2 MiB through the mapping: read %q", b)
	}
	// A mapping at an offset.
	m2, err := unix.Mmap(fd, 511*page, 2*page, unix.PROT_READ, unix.MAP_SHARED)
	noErr(t, err, "mmap at an offset")
	faultSafe(t, "offset mapping", func() {
		if string(m2[page-2:page+6]) != "boundary" {
			t.Errorf("mapping at an offset: %q", m2[page-2:page+6])
		}
	})
	unix.Munmap(m2)
	// Private mapping: stores stay private.
	m3, err := unix.Mmap(fd, 0, page, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_PRIVATE)
	noErr(t, err, "mmap private")
	faultSafe(t, "private mapping", func() { copy(m3, "PRIVATE") })
	unix.Munmap(m3)
	preadFull(t, fd, b[:4], 0)
	if string(b[:4]) != "head" {
		t.Errorf("a private mapping wrote back: %q", b[:4])
	}
	// A mapping of a read-only descriptor cannot be shared writable.
	rfd := openFd(t, p, unix.O_RDONLY, 0)
	defer unix.Close(rfd)
	_, err = unix.Mmap(rfd, 0, page, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_SHARED)
	wantErrno(t, err, unix.EACCES, "shared writable mmap of an O_RDONLY fd")
	// Holes stay holes when only read through a mapping... on tmpfs a read
	// fault of a hole maps the zero page: st_blocks stays as it was.
	before := fstat(t, fd).Blocks
	m4, err := unix.Mmap(fd, 0, 600*page, unix.PROT_READ, unix.MAP_SHARED)
	noErr(t, err, "mmap read-only")
	faultSafe(t, "read holes", func() {
		var sum byte
		for i := 0; i < len(m4); i += page {
			sum |= m4[i]
		}
		_ = sum
	})
	unix.Munmap(m4)
	if after := fstat(t, fd).Blocks; after != before {
		t.Errorf("reading holes through a mapping changed st_blocks %d -> %d", before, after)
	}
}
