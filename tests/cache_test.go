package tests

import (
	"bytes"
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// TestPageCacheCoherence: data the server replaces itself, not through a
// write (copy_file_range inside the store, punching a hole, truncating),
// must not be served stale from the kernel's page cache, which the mount
// keeps across opens. Each case reads the file first so its pages are
// cached, through one descriptor, then changes it and reads through
// another.
func TestPageCacheCoherence(t *testing.T) {
	t.Parallel()
	mnt, _, _ := mountFS(t)
	const size = 8 * page
	old := pattern(size, 1)
	fresh := pattern(size, 2)

	setup := func(name string) (int, int) {
		p := filepath.Join(mnt, name)
		writeFile(t, p, old)
		a := openFd(t, p, unix.O_RDWR, 0)
		b := openFd(t, p, unix.O_RDONLY, 0)
		got := make([]byte, size)
		preadFull(t, b, got, 0) // into the page cache
		return a, b
	}
	check := func(what string, fd int, want []byte) {
		t.Helper()
		got := make([]byte, len(want))
		n := preadFull(t, fd, got, 0)
		if n != len(want) || !bytes.Equal(got[:n], want) {
			t.Errorf("%s: read %d bytes, first difference at %d", what, n, firstDiff(got[:n], want))
		}
	}

	t.Run("copy_file_range", func(t *testing.T) {
		src := filepath.Join(mnt, "src")
		writeFile(t, src, fresh)
		in := openFd(t, src, unix.O_RDONLY, 0)
		defer closeFd(in)
		a, b := setup("cfr")
		defer closeFd(a)
		defer closeFd(b)
		offIn, offOut := int64(page), int64(2*page+100)
		n, err := unix.CopyFileRange(in, &offIn, a, &offOut, 3*page, 0)
		if err != nil || n != 3*page {
			t.Fatalf("copy_file_range: %d, %v", n, err)
		}
		want := append([]byte(nil), old...)
		copy(want[2*page+100:], fresh[page:4*page])
		check("after copy_file_range", b, want)
	})
	t.Run("punch", func(t *testing.T) {
		a, b := setup("punch")
		defer closeFd(a)
		defer closeFd(b)
		noErr(t, unix.Fallocate(a, unix.FALLOC_FL_PUNCH_HOLE|unix.FALLOC_FL_KEEP_SIZE, page+10, 3*page), "punch")
		want := append([]byte(nil), old...)
		copy(want[page+10:4*page+10], make([]byte, 3*page))
		check("after punching a hole", b, want)
	})
	if !tmpfsMode {
		t.Run("zero_range", func(t *testing.T) {
			a, b := setup("zero")
			defer closeFd(a)
			defer closeFd(b)
			noErr(t, unix.Fallocate(a, unix.FALLOC_FL_ZERO_RANGE, 5, 2*page), "zero range")
			want := append([]byte(nil), old...)
			copy(want[5:2*page+5], make([]byte, 2*page))
			check("after zeroing a range", b, want)
		})
	}
	t.Run("truncate", func(t *testing.T) {
		a, b := setup("trunc")
		defer closeFd(a)
		defer closeFd(b)
		noErr(t, unix.Ftruncate(a, page+1), "truncate down")
		noErr(t, unix.Ftruncate(a, size), "truncate up")
		want := make([]byte, size)
		copy(want, old[:page+1])
		check("after truncating down and up", b, want)
	})
}

// TestCachedAttrsAcrossProcesses: the kernel keeps names and attributes
// for long, and another process sees every change at once all the same:
// the size and mtime after a write, truncate, fallocate, copy_file_range
// and utimensat, the mtime after a store through a shared mapping and
// msync (within a clock tick with passthrough, where the kernel writes the
// store file itself: polled for), and names created (also over a cached
// negative entry), renamed and removed.
func TestCachedAttrsAcrossProcesses(t *testing.T) {
	t.Parallel()
	mnt, _, _ := mountFS(t)
	bin := helperBinary(t)
	j := func(rel string) string { return filepath.Join(mnt, rel) }
	writeFile(t, j("f"), pattern(3*page, 1))
	writeFile(t, j("src"), pattern(5*page, 2))
	stat := func(p string) (size, mtime, ctime int64, err string) {
		t.Helper()
		r := runHelper(t, bin, hop("statfull", p))[0]
		if _, err := fmt.Sscanf(r, "ok:%d:%d:%d", &size, &mtime, &ctime); err != nil {
			return 0, 0, 0, r
		}
		return size, mtime, ctime, ""
	}
	_, m0, _, e := stat(j("f")) // the attributes are cached now
	if e != "" {
		t.Fatalf("stat in another process: %s", e)
	}
	changes := []struct {
		what string
		size int64
		do   func()
	}{
		{"a write that grows the file", 4 * page, func() {
			fd := openFd(t, j("f"), unix.O_WRONLY, 0)
			defer closeFd(fd)
			_, err := unix.Pwrite(fd, pattern(page, 3), 3*page)
			noErr(t, err, "pwrite")
		}},
		{"a write inside the file", 4 * page, func() {
			fd := openFd(t, j("f"), unix.O_WRONLY, 0)
			defer closeFd(fd)
			_, err := unix.Pwrite(fd, pattern(100, 4), 10)
			noErr(t, err, "pwrite")
		}},
		{"truncate", 2*page + 5, func() { noErr(t, unix.Truncate(j("f"), 2*page+5), "truncate") }},
		{"fallocate", 6 * page, func() {
			fd := openFd(t, j("f"), unix.O_WRONLY, 0)
			defer closeFd(fd)
			noErr(t, unix.Fallocate(fd, 0, 0, 6*page), "fallocate")
		}},
		{"copy_file_range", 8 * page, func() {
			in := openFd(t, j("src"), unix.O_RDONLY, 0)
			defer closeFd(in)
			out := openFd(t, j("f"), unix.O_WRONLY, 0)
			defer closeFd(out)
			off := int64(3 * page)
			_, err := unix.CopyFileRange(in, nil, out, &off, 5*page, 0)
			noErr(t, err, "copy_file_range")
		}},
		{"utimensat", 8 * page, func() {
			ts := []unix.Timespec{{Sec: 1e9}, {Sec: 1e9 + 1}}
			noErr(t, unix.UtimesNanoAt(unix.AT_FDCWD, j("f"), ts, 0), "utimensat")
		}},
	}
	last := m0
	for _, c := range changes {
		time.Sleep(5 * time.Millisecond) // past a tick of the coarse clock: the mtime moves
		c.do()
		size, mtime, _, e := stat(j("f"))
		switch {
		case e != "":
			t.Errorf("after %s: stat in another process: %s", c.what, e)
		case size != c.size:
			t.Errorf("after %s: another process sees size %d, want %d", c.what, size, c.size)
		case mtime == last:
			t.Errorf("after %s: another process sees the old mtime", c.what)
		}
		last = mtime
	}
	// A store through a shared mapping, by another process, while the
	// file is open here (with passthrough: lent all along), its
	// attributes cached.
	held := openFd(t, j("f"), unix.O_RDWR, 0)
	defer closeFd(held)
	if _, mtime, _, e := stat(j("f")); e != "" || mtime != last {
		t.Fatalf("stat of the open file in another process: %s, mtime moved", e)
	}
	time.Sleep(5 * time.Millisecond)
	if r := runHelper(t, bin, hop("mmap-store", j("f"), "stored"))[0]; r != "ok" {
		t.Fatalf("mmap-store: %s", r)
	}
	for deadline := time.Now().Add(2 * time.Second); ; time.Sleep(time.Millisecond) {
		_, mtime, _, e := stat(j("f"))
		if e == "" && mtime != last {
			break
		}
		if time.Now().After(deadline) {
			t.Errorf("after a store through a shared mapping and msync: another process sees the old mtime (%s)", e)
			break
		}
	}
	if got := readFile(t, j("f")); !bytes.HasPrefix(got, []byte("stored")) {
		t.Errorf("a store through a shared mapping does not read back")
	}
	// Two stores through shared mappings of one descriptor, each seen by
	// fstat, with no open or close between them.
	var m1, m2 int64
	if r := runHelper(t, bin, hop("mmap-twice", j("f")))[0]; !strings.HasPrefix(r, "ok:") {
		t.Fatalf("mmap-twice: %s", r)
	} else if _, err := fmt.Sscanf(r, "ok:%d:%d", &m1, &m2); err != nil || m1 == m2 {
		t.Errorf("two stores through shared mappings, msync'd a tick apart: fstat shows mtime %d then %d (%v)", m1, m2, err)
	}

	// Names.
	if _, _, _, e := stat(j("new")); e != "ENOENT" {
		t.Fatalf("stat of a missing name: %q, want ENOENT", e)
	}
	writeFile(t, j("new"), []byte("x")) // over the negative entry just cached
	if _, _, _, e := stat(j("new")); e != "" {
		t.Errorf("a name created over a cached negative entry: another process gets %s", e)
	}
	noErr(t, unix.Rename(j("new"), j("renamed")), "rename")
	if _, _, _, e := stat(j("new")); e != "ENOENT" {
		t.Errorf("the old name of a renamed file: another process gets %q, want ENOENT", e)
	}
	if _, _, _, e := stat(j("renamed")); e != "" {
		t.Errorf("the new name of a renamed file: another process gets %s", e)
	}
	noErr(t, unix.Unlink(j("renamed")), "unlink")
	if _, _, _, e := stat(j("renamed")); e != "ENOENT" {
		t.Errorf("a removed name: another process gets %q, want ENOENT", e)
	}
}
