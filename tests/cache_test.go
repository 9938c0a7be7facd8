package tests

import (
	"bytes"
	"path/filepath"
	"testing"

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
