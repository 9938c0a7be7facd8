package tests

import (
	"path/filepath"
	"testing"

	"golang.org/x/sys/unix"
)

// Regressions found by the model tester (tests/model_test.go), each
// reduced to the sequence it printed.

// TestRegressFallocateTwice: a page reserved by one fallocate and
// allocated again by another becomes data (SEEK_DATA finds it), as on
// tmpfs, where the second fallocate initialises the page it finds.
func TestRegressFallocateTwice(t *testing.T) {
	t.Parallel()
	mnt, _, _ := mountFS(t)
	fd := openFd(t, filepath.Join(mnt, "f"), unix.O_CREAT|unix.O_RDWR, 0o644)
	defer closeFd(fd)
	noErr(t, unix.Fallocate(fd, 0, 4885, 100431), "first fallocate")
	seekExpect(t, fd, 0, unix.SEEK_DATA, 0, unix.ENXIO)
	noErr(t, unix.Fallocate(fd, unix.FALLOC_FL_KEEP_SIZE, 16407, 1), "second fallocate")
	seekExpect(t, fd, 0, unix.SEEK_DATA, 4*page, nil)
	seekExpect(t, fd, 4*page, unix.SEEK_HOLE, 5*page, nil)
	if st := fstat(t, fd); st.Blocks != 25*page/512 || st.Size != 4885+100431 {
		t.Errorf("size %d blocks %d, want %d and %d", st.Size, st.Blocks, 4885+100431, 25*page/512)
	}
	b := make([]byte, 2*page)
	preadFull(t, fd, b, 3*page)
	if !isZero(b) {
		t.Errorf("reserved pages do not read as zeros")
	}
}

// TestRegressFallocateTwicePastEOF: pages reserved twice past the end of
// the file (KEEP_SIZE) are data once a write far beyond makes the file
// cover them, as on tmpfs (model seed 5007, shrunk).
func TestRegressFallocateTwicePastEOF(t *testing.T) {
	t.Parallel()
	mnt, _, _ := mountFS(t)
	fd := openFd(t, filepath.Join(mnt, "f"), unix.O_CREAT|unix.O_RDWR|unix.O_EXCL, 0o644)
	defer closeFd(fd)
	noErr(t, unix.Fallocate(fd, unix.FALLOC_FL_KEEP_SIZE, 8214, 1), "first fallocate")
	noErr(t, unix.Fallocate(fd, unix.FALLOC_FL_KEEP_SIZE, 0, 60333), "second fallocate")
	pwriteAll(t, fd, []byte("x"), 1073751869)
	seekExpect(t, fd, 0, unix.SEEK_DATA, 2*page, nil)
	seekExpect(t, fd, 2*page, unix.SEEK_HOLE, 3*page, nil)
	seekExpect(t, fd, 3*page, unix.SEEK_DATA, 1073750016, nil)
}
