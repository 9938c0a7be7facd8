package tests

import (
	"bytes"
	"crypto/sha256"
	"io"
	"math"
	"os"
	"path/filepath"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

const page = 4096

// TestSparseFile: data written far apart leaves a hole that reads as zeros
// and costs no blocks.
func TestSparseFile(t *testing.T) {
	t.Parallel()
	mnt, _, _ := mountFS(t)
	p := filepath.Join(mnt, "sparse")
	fd := openFd(t, p, unix.O_CREAT|unix.O_RDWR, 0o644)
	defer closeFd(fd)

	pwriteAll(t, fd, []byte("head"), 0)
	const far = 1<<20 + 100
	pwriteAll(t, fd, []byte("tail"), far)
	st := fstat(t, fd)
	if st.Size != far+4 {
		t.Errorf("size %d, want %d", st.Size, far+4)
	}
	// Two pages hold data; everything else is a hole (tmpfs: 8 sectors a page).
	if st.Blocks != 2*page/512 {
		t.Errorf("st_blocks %d, want %d (two 4 KiB pages)", st.Blocks, 2*page/512)
	}
	buf := make([]byte, far+4)
	if n := preadFull(t, fd, buf, 0); n != len(buf) {
		t.Fatalf("read %d bytes, want %d", n, len(buf))
	}
	if string(buf[:4]) != "head" || string(buf[far:]) != "tail" {
		t.Errorf("data: got %q ... %q", buf[:4], buf[far:])
	}
	if !isZero(buf[4:far]) {
		i := bytes.IndexFunc(buf[4:far], func(r rune) bool { return r != 0 })
		t.Errorf("hole is not all zeros: nonzero at offset %d", 4+i)
	}
	// Reading entirely inside the hole, across a page boundary.
	small := make([]byte, 100)
	for i := range small {
		small[i] = 0xff
	}
	if n := preadFull(t, fd, small, 3*page-50); n != 100 || !isZero(small) {
		t.Errorf("read of hole: %d bytes, zero=%v", n, isZero(small))
	}
	// Extending with ftruncate adds a hole too.
	noErr(t, unix.Ftruncate(fd, 10<<20), "ftruncate 10 MiB")
	st = fstat(t, fd)
	if st.Size != 10<<20 || st.Blocks != 2*page/512 {
		t.Errorf("after ftruncate up: size %d blocks %d, want %d and %d", st.Size, st.Blocks, 10<<20, 2*page/512)
	}
	if n := preadFull(t, fd, small, 9<<20); n != 100 || !isZero(small) {
		t.Errorf("read past old EOF after ftruncate: %d bytes, zero=%v", n, isZero(small))
	}
	// Reading at and past EOF returns 0 bytes.
	if n, err := unix.Pread(fd, small, 10<<20); n != 0 || err != nil {
		t.Errorf("pread at EOF: n=%d err=%v, want 0, nil", n, err)
	}
	if n, err := unix.Pread(fd, small, 20<<20); n != 0 || err != nil {
		t.Errorf("pread past EOF: n=%d err=%v, want 0, nil", n, err)
	}
}

// seekExpect checks lseek(fd, off, whence).
func seekExpect(t *testing.T, fd int, off int64, whence int, want int64, wantErr error) {
	t.Helper()
	name := map[int]string{unix.SEEK_DATA: "SEEK_DATA", unix.SEEK_HOLE: "SEEK_HOLE"}[whence]
	got, err := unix.Seek(fd, off, whence)
	if wantErr != nil {
		if err != wantErr {
			t.Errorf("lseek(%d, %s) = %d, %v; want error %v", off, name, got, errString(err), wantErr)
		}
		return
	}
	if err != nil || got != want {
		t.Errorf("lseek(%d, %s) = %d, %v; want %d", off, name, got, errString(err), want)
	}
}

// TestSeekDataHole: SEEK_DATA and SEEK_HOLE report data and holes with page
// granularity, the end of file is a hole, and seeking at or past EOF is ENXIO.
func TestSeekDataHole(t *testing.T) {
	t.Parallel()
	mnt, _, _ := mountFS(t)
	fd := openFd(t, filepath.Join(mnt, "f"), unix.O_CREAT|unix.O_RDWR, 0o644)
	defer closeFd(fd)

	// Layout: data in page 0 (10 bytes), holes in pages 1-2, data in pages
	// 3-4 (written across their boundary), hole in pages 5-6, data in page 7
	// ending 10 bytes into it.
	pwriteAll(t, fd, []byte("0123456789"), 0)
	pwriteAll(t, fd, []byte("xxxxxxxxxx"), 4*page-5)
	pwriteAll(t, fd, []byte("end"), 7*page+7)
	size := int64(7*page + 10)
	if st := fstat(t, fd); st.Size != size {
		t.Fatalf("size %d, want %d", st.Size, size)
	}

	seekExpect(t, fd, 0, unix.SEEK_DATA, 0, nil)
	seekExpect(t, fd, 5, unix.SEEK_DATA, 5, nil)
	seekExpect(t, fd, 0, unix.SEEK_HOLE, page, nil)
	seekExpect(t, fd, 100, unix.SEEK_HOLE, page, nil) // page granularity
	seekExpect(t, fd, page, unix.SEEK_DATA, 3*page, nil)
	seekExpect(t, fd, page+1, unix.SEEK_DATA, 3*page, nil)
	seekExpect(t, fd, page, unix.SEEK_HOLE, page, nil)
	seekExpect(t, fd, 2*page+7, unix.SEEK_HOLE, 2*page+7, nil)
	seekExpect(t, fd, 3*page, unix.SEEK_HOLE, 5*page, nil)
	seekExpect(t, fd, 4*page+100, unix.SEEK_DATA, 4*page+100, nil)
	seekExpect(t, fd, 5*page, unix.SEEK_DATA, 7*page, nil)
	seekExpect(t, fd, 7*page, unix.SEEK_HOLE, size, nil) // EOF is a hole
	seekExpect(t, fd, size-1, unix.SEEK_DATA, size-1, nil)
	seekExpect(t, fd, size-1, unix.SEEK_HOLE, size, nil)
	seekExpect(t, fd, size, unix.SEEK_DATA, 0, unix.ENXIO)
	seekExpect(t, fd, size, unix.SEEK_HOLE, 0, unix.ENXIO)
	seekExpect(t, fd, size+page, unix.SEEK_DATA, 0, unix.ENXIO)
	seekExpect(t, fd, size+page, unix.SEEK_HOLE, 0, unix.ENXIO)
	seekExpect(t, fd, -1, unix.SEEK_DATA, 0, unix.ENXIO)

	// The file offset is left where lseek put it.
	seekExpect(t, fd, page, unix.SEEK_DATA, 3*page, nil)
	if cur, _ := unix.Seek(fd, 0, io.SeekCurrent); cur != 3*page {
		t.Errorf("offset after SEEK_DATA is %d, want %d", cur, 3*page)
	}

	// A file that is all hole: no data at all, the hole starts at 0.
	fd2 := openFd(t, filepath.Join(mnt, "empty-sparse"), unix.O_CREAT|unix.O_RDWR, 0o644)
	defer closeFd(fd2)
	noErr(t, unix.Ftruncate(fd2, 1<<20), "ftruncate")
	seekExpect(t, fd2, 0, unix.SEEK_DATA, 0, unix.ENXIO)
	seekExpect(t, fd2, 0, unix.SEEK_HOLE, 0, nil)
	seekExpect(t, fd2, 4000, unix.SEEK_HOLE, 4000, nil)

	// An empty file: ENXIO for both.
	fd3 := openFd(t, filepath.Join(mnt, "empty"), unix.O_CREAT|unix.O_RDWR, 0o644)
	defer closeFd(fd3)
	seekExpect(t, fd3, 0, unix.SEEK_DATA, 0, unix.ENXIO)
	seekExpect(t, fd3, 0, unix.SEEK_HOLE, 0, unix.ENXIO)

	// Data written then truncated away is no longer data.
	pwriteAll(t, fd2, []byte("x"), 10*page)
	seekExpect(t, fd2, 0, unix.SEEK_DATA, 10*page, nil)
	noErr(t, unix.Ftruncate(fd2, 5*page), "ftruncate down")
	seekExpect(t, fd2, 0, unix.SEEK_DATA, 0, unix.ENXIO)
}

// TestFallocate: mode 0 allocates and extends, KEEP_SIZE allocates without
// extending, PUNCH_HOLE needs KEEP_SIZE and frees whole pages, ZERO_RANGE and
// the other modes are refused as tmpfs refuses them.
func TestFallocate(t *testing.T) {
	t.Parallel()
	mnt, _, _ := mountFS(t)
	fd := openFd(t, filepath.Join(mnt, "f"), unix.O_CREAT|unix.O_RDWR, 0o644)
	defer closeFd(fd)

	// Mode 0 on an empty file: size grows, 4 pages allocated, reads zeros.
	noErr(t, unix.Fallocate(fd, 0, 0, 3*page+1), "fallocate 0")
	st := fstat(t, fd)
	if st.Size != 3*page+1 || st.Blocks != 4*page/512 {
		t.Errorf("after fallocate(0, 3 pages+1): size %d blocks %d, want %d and %d", st.Size, st.Blocks, 3*page+1, 4*page/512)
	}
	buf := make([]byte, 3*page+1)
	if n := preadFull(t, fd, buf, 0); n != len(buf) || !isZero(buf) {
		t.Errorf("allocated range: read %d bytes, zero=%v", n, isZero(buf))
	}
	// tmpfs reports allocated but never written pages as a hole.
	seekExpect(t, fd, 0, unix.SEEK_DATA, 0, unix.ENXIO)
	seekExpect(t, fd, 0, unix.SEEK_HOLE, 0, nil)

	// Mode 0 inside the file changes nothing visible.
	noErr(t, unix.Fallocate(fd, 0, 0, page), "fallocate 0 inside")
	if st2 := fstat(t, fd); st2.Size != st.Size || st2.Blocks != st.Blocks {
		t.Errorf("fallocate inside: size %d blocks %d, want unchanged %d %d", st2.Size, st2.Blocks, st.Size, st.Blocks)
	}

	// KEEP_SIZE past EOF: blocks grow, size does not.
	noErr(t, unix.Fallocate(fd, unix.FALLOC_FL_KEEP_SIZE, 8*page, 2*page), "fallocate KEEP_SIZE")
	st = fstat(t, fd)
	if st.Size != 3*page+1 || st.Blocks != 6*page/512 {
		t.Errorf("after KEEP_SIZE: size %d blocks %d, want %d and %d", st.Size, st.Blocks, 3*page+1, 6*page/512)
	}
	// Extending over the preallocated range exposes zeros.
	noErr(t, unix.Ftruncate(fd, 10*page), "ftruncate")
	buf = make([]byte, 2*page)
	if n := preadFull(t, fd, buf, 8*page); n != 2*page || !isZero(buf) {
		t.Errorf("preallocated range: read %d, zero=%v", n, isZero(buf))
	}

	// Data, then PUNCH_HOLE|KEEP_SIZE over part of it.
	data := pattern(10*page, 1)
	pwriteAll(t, fd, data, 0)
	st = fstat(t, fd)
	if st.Blocks != 10*page/512 {
		t.Errorf("after writing 10 pages: blocks %d, want %d", st.Blocks, 10*page/512)
	}
	// Punch [page+100, 4*page+100): page 1 is only partly covered (zeroed, kept),
	// pages 2 and 3 are freed, page 4 is partly covered (zeroed, kept).
	noErr(t, unix.Fallocate(fd, unix.FALLOC_FL_PUNCH_HOLE|unix.FALLOC_FL_KEEP_SIZE, page+100, 3*page), "punch hole")
	copy(data[page+100:4*page+100], make([]byte, 3*page))
	st = fstat(t, fd)
	if st.Size != 10*page {
		t.Errorf("punch changed size to %d", st.Size)
	}
	if st.Blocks != 8*page/512 {
		t.Errorf("after punching 2 whole pages: blocks %d, want %d", st.Blocks, 8*page/512)
	}
	got := make([]byte, 10*page)
	preadFull(t, fd, got, 0)
	if !bytes.Equal(got, data) {
		t.Errorf("content after punch differs from expectation at offset %d", firstDiff(got, data))
	}
	seekExpect(t, fd, 0, unix.SEEK_HOLE, 2*page, nil)
	seekExpect(t, fd, 2*page, unix.SEEK_DATA, 4*page, nil)

	// Punching past EOF does not extend.
	noErr(t, unix.Fallocate(fd, unix.FALLOC_FL_PUNCH_HOLE|unix.FALLOC_FL_KEEP_SIZE, 9*page, 10*page), "punch past EOF")
	copy(data[9*page:], make([]byte, page))
	if st := fstat(t, fd); st.Size != 10*page {
		t.Errorf("punch past EOF: size %d, want %d", st.Size, 10*page)
	}
	seekExpect(t, fd, 0, unix.SEEK_DATA, 0, nil)
	seekExpect(t, fd, 5*page, unix.SEEK_HOLE, 9*page, nil)

	// Refused modes, as on tmpfs.
	wantErrno(t, unix.Fallocate(fd, unix.FALLOC_FL_PUNCH_HOLE, 0, page), unix.EOPNOTSUPP, "PUNCH_HOLE without KEEP_SIZE")
	if tmpfsMode {
		// tmpfs has no ZERO_RANGE; mmapfs has it (docs/design.md, "Semantics").
		wantErrno(t, unix.Fallocate(fd, unix.FALLOC_FL_ZERO_RANGE, 0, page), unix.EOPNOTSUPP, "ZERO_RANGE on tmpfs")
	} else {
		noErr(t, unix.Fallocate(fd, unix.FALLOC_FL_ZERO_RANGE|unix.FALLOC_FL_KEEP_SIZE, 100, 200), "ZERO_RANGE|KEEP_SIZE")
		noErr(t, unix.Fallocate(fd, unix.FALLOC_FL_ZERO_RANGE, page+7, 300), "ZERO_RANGE")
		copy(data[100:300], make([]byte, 200))
		copy(data[page+7:page+307], make([]byte, 300))
		if st := fstat(t, fd); st.Size != 10*page {
			t.Errorf("ZERO_RANGE inside the file: size %d, want %d", st.Size, 10*page)
		}
	}
	wantErrno(t, unix.Fallocate(fd, unix.FALLOC_FL_COLLAPSE_RANGE, 0, page), unix.EOPNOTSUPP, "COLLAPSE_RANGE")
	wantErrno(t, unix.Fallocate(fd, unix.FALLOC_FL_INSERT_RANGE, 0, page), unix.EOPNOTSUPP, "INSERT_RANGE")
	// Bad arguments.
	wantErrno(t, unix.Fallocate(fd, 0, 0, 0), unix.EINVAL, "fallocate length 0")
	wantErrno(t, unix.Fallocate(fd, 0, -1, page), unix.EINVAL, "fallocate offset -1")
	wantErrno(t, unix.Fallocate(fd, 0, 1<<62, 1<<62), unix.EFBIG, "fallocate past the maximum file size")
	// The content survived all the refusals.
	preadFull(t, fd, got, 0)
	if !bytes.Equal(got, data) {
		t.Errorf("content changed by refused fallocate calls at offset %d", firstDiff(got, data))
	}
	// fallocate on a read-only descriptor.
	rfd := openFd(t, filepath.Join(mnt, "f"), unix.O_RDONLY, 0)
	defer closeFd(rfd)
	wantErrno(t, unix.Fallocate(rfd, 0, 0, page), unix.EBADF, "fallocate on O_RDONLY fd")
}

func firstDiff(a, b []byte) int {
	for i := 0; i < len(a) && i < len(b); i++ {
		if a[i] != b[i] {
			return i
		}
	}
	if len(a) != len(b) {
		return min(len(a), len(b))
	}
	return -1
}

// TestPunchHoleThenRewrite: a punched range reads zeros, is a hole for
// SEEK_HOLE, costs no blocks, and can be written again.
func TestPunchHoleThenRewrite(t *testing.T) {
	t.Parallel()
	mnt, _, _ := mountFS(t)
	fd := openFd(t, filepath.Join(mnt, "f"), unix.O_CREAT|unix.O_RDWR, 0o644)
	defer closeFd(fd)
	const n = 64 * page
	data := pattern(n, 3)
	pwriteAll(t, fd, data, 0)
	// Punch all of it.
	noErr(t, unix.Fallocate(fd, unix.FALLOC_FL_PUNCH_HOLE|unix.FALLOC_FL_KEEP_SIZE, 0, n), "punch all")
	st := fstat(t, fd)
	if st.Size != n || st.Blocks != 0 {
		t.Errorf("after punching everything: size %d blocks %d, want %d and 0", st.Size, st.Blocks, n)
	}
	got := make([]byte, n)
	preadFull(t, fd, got, 0)
	if !isZero(got) {
		t.Errorf("punched file does not read as zeros (first nonzero at %d)", bytes.IndexFunc(got, func(r rune) bool { return r != 0 }))
	}
	seekExpect(t, fd, 0, unix.SEEK_DATA, 0, unix.ENXIO)
	seekExpect(t, fd, 0, unix.SEEK_HOLE, 0, nil)
	// Rewrite the middle.
	pwriteAll(t, fd, data[20*page:21*page], 20*page)
	seekExpect(t, fd, 0, unix.SEEK_DATA, 20*page, nil)
	seekExpect(t, fd, 20*page, unix.SEEK_HOLE, 21*page, nil)
	preadFull(t, fd, got, 0)
	want := make([]byte, n)
	copy(want[20*page:21*page], data[20*page:21*page])
	if !bytes.Equal(got, want) {
		t.Errorf("after rewrite: content differs at %d", firstDiff(got, want))
	}
	if st := fstat(t, fd); st.Blocks != page/512 {
		t.Errorf("after rewriting one page: blocks %d, want %d", st.Blocks, page/512)
	}
}

// TestCopyFileRange: copy_file_range between files of the mount, with holes,
// at offsets, and past EOF.
func TestCopyFileRange(t *testing.T) {
	t.Parallel()
	mnt, _, _ := mountFS(t)
	src := openFd(t, filepath.Join(mnt, "src"), unix.O_CREAT|unix.O_RDWR, 0o644)
	defer closeFd(src)
	dst := openFd(t, filepath.Join(mnt, "dst"), unix.O_CREAT|unix.O_RDWR, 0o644)
	defer closeFd(dst)

	// src: 3 pages data, 5 pages hole, 2 pages + 123 bytes data.
	const srcSize = 10*page + 123
	want := make([]byte, srcSize)
	copy(want, pattern(3*page, 5))
	copy(want[8*page:], pattern(2*page+123, 6))
	pwriteAll(t, src, want[:3*page], 0)
	pwriteAll(t, src, want[8*page:], 8*page)

	copyAll := func(in int, inOff int64, out int, outOff int64, n int) int {
		t.Helper()
		total := 0
		for total < n {
			r, w := inOff+int64(total), outOff+int64(total)
			c, err := unix.CopyFileRange(in, &r, out, &w, n-total, 0)
			noErr(t, err, "copy_file_range(%d bytes at %d -> %d)", n-total, inOff+int64(total), outOff+int64(total))
			if c == 0 {
				break
			}
			total += c
		}
		return total
	}

	// Whole file, holes included.
	if n := copyAll(src, 0, dst, 0, srcSize); n != srcSize {
		t.Errorf("copied %d bytes, want %d", n, srcSize)
	}
	got := make([]byte, srcSize+10)
	if n := preadFull(t, dst, got, 0); n != srcSize || !bytes.Equal(got[:n], want) {
		t.Errorf("dst after full copy: %d bytes, differs at %d", n, firstDiff(got[:n], want))
	}

	// At unaligned offsets inside the file.
	if n := copyAll(src, 8*page+7, dst, 1000, 3000); n != 3000 {
		t.Errorf("copied %d, want 3000", n)
	}
	copy(want[1000:4000], append([]byte(nil), want[8*page+7:8*page+7+3000]...))
	got = make([]byte, srcSize)
	preadFull(t, dst, got, 0)
	if !bytes.Equal(got, want) {
		t.Errorf("dst after offset copy differs at %d", firstDiff(got, want))
	}

	// Asking for more than there is stops at the source's EOF.
	roff, woff := int64(srcSize-100), int64(0)
	dst2 := openFd(t, filepath.Join(mnt, "dst2"), unix.O_CREAT|unix.O_RDWR, 0o644)
	defer closeFd(dst2)
	n, err := unix.CopyFileRange(src, &roff, dst2, &woff, 1000, 0)
	if err != nil || n != 100 {
		t.Errorf("copy across source EOF: n=%d err=%v, want 100", n, errString(err))
	}
	if roff != srcSize || woff != 100 {
		t.Errorf("offsets after copy: in %d out %d, want %d and 100", roff, woff, srcSize)
	}
	// Starting at or past the source's EOF copies nothing.
	roff, woff = srcSize, 0
	if n, err := unix.CopyFileRange(src, &roff, dst2, &woff, 1000, 0); n != 0 || err != nil {
		t.Errorf("copy at source EOF: n=%d err=%v, want 0, nil", n, errString(err))
	}
	roff, woff = srcSize+5*page, 0
	if n, err := unix.CopyFileRange(src, &roff, dst2, &woff, 1000, 0); n != 0 || err != nil {
		t.Errorf("copy past source EOF: n=%d err=%v, want 0, nil", n, errString(err))
	}
	if st := fstat(t, dst2); st.Size != 100 {
		t.Errorf("dst2 size %d, want 100", st.Size)
	}

	// Writing past the destination's EOF leaves a hole before the copy.
	if n := copyAll(src, 0, dst2, 20*page, 10); n != 10 {
		t.Errorf("copy past dst EOF: %d, want 10", n)
	}
	if st := fstat(t, dst2); st.Size != 20*page+10 {
		t.Errorf("dst2 size %d, want %d", st.Size, 20*page+10)
	}
	got = make([]byte, 20*page+10)
	preadFull(t, dst2, got, 0)
	if !isZero(got[100:20*page]) || !bytes.Equal(got[20*page:], want[:10]) || !bytes.Equal(got[:100], want[srcSize-100:]) {
		t.Errorf("dst2 content wrong")
	}

	// With the file offsets (nil offsets): both advance.
	_, err = unix.Seek(src, 5, io.SeekStart)
	noErr(t, err, "seek")
	dst3 := openFd(t, filepath.Join(mnt, "dst3"), unix.O_CREAT|unix.O_RDWR, 0o644)
	defer closeFd(dst3)
	n, err = unix.CopyFileRange(src, nil, dst3, nil, 50, 0)
	if err != nil || n != 50 {
		t.Errorf("copy with file offsets: n=%d err=%v", n, errString(err))
	}
	if cur, _ := unix.Seek(src, 0, io.SeekCurrent); cur != 55 {
		t.Errorf("src offset %d, want 55", cur)
	}
	if cur, _ := unix.Seek(dst3, 0, io.SeekCurrent); cur != 50 {
		t.Errorf("dst offset %d, want 50", cur)
	}
	if b := readFile(t, filepath.Join(mnt, "dst3")); !bytes.Equal(b, want[5:55]) {
		t.Errorf("dst3 content wrong")
	}

	// Overlapping ranges in one file are refused.
	roff, woff = 0, 100
	_, err = unix.CopyFileRange(src, &roff, src, &woff, 1000, 0)
	wantErrno(t, err, unix.EINVAL, "copy_file_range with overlapping ranges of one file")
	// Non-overlapping ranges of one file work.
	roff, woff = 0, 12*page
	if n, err := unix.CopyFileRange(src, &roff, src, &woff, 100, 0); err != nil || n != 100 {
		t.Errorf("copy within one file: n=%d err=%v", n, errString(err))
	}
	b := make([]byte, 100)
	preadFull(t, src, b, 12*page)
	if !bytes.Equal(b, want[:100]) {
		t.Errorf("copy within one file: wrong content")
	}
	// Directories and bad descriptors.
	dfd := openFd(t, mnt, unix.O_RDONLY|unix.O_DIRECTORY, 0)
	defer closeFd(dfd)
	roff, woff = 0, 0
	_, err = unix.CopyFileRange(dfd, &roff, dst, &woff, 10, 0)
	wantErrno(t, err, unix.EISDIR, "copy_file_range from a directory")
	rdonly := openFd(t, filepath.Join(mnt, "dst"), unix.O_RDONLY, 0)
	defer closeFd(rdonly)
	roff, woff = 0, 0
	_, err = unix.CopyFileRange(src, &roff, rdonly, &woff, 10, 0)
	wantErrno(t, err, unix.EBADF, "copy_file_range to an O_RDONLY fd")
	// flags must be 0.
	roff, woff = 0, 0
	_, err = unix.CopyFileRange(src, &roff, dst, &woff, 10, 1)
	wantErrno(t, err, unix.EINVAL, "copy_file_range with flags 1")
}

// TestTruncate: shrinking discards data, growing again reads zeros there.
func TestTruncate(t *testing.T) {
	t.Parallel()
	mnt, _, _ := mountFS(t)
	p := filepath.Join(mnt, "f")
	data := pattern(5*page+300, 9)
	writeFile(t, p, data)

	for _, c := range []struct {
		size int64
		how  string
	}{
		{3*page + 17, "truncate"}, {6 * page, "truncate"}, {100, "ftruncate"}, {2*page + 1, "ftruncate"},
		{0, "truncate"}, {page, "ftruncate"},
	} {
		if c.how == "truncate" {
			noErr(t, unix.Truncate(p, c.size), "truncate to %d", c.size)
		} else {
			fd := openFd(t, p, unix.O_WRONLY, 0)
			noErr(t, unix.Ftruncate(fd, c.size), "ftruncate to %d", c.size)
			closeFd(fd)
		}
		if int64(len(data)) > c.size {
			data = data[:c.size]
		} else {
			data = append(data, make([]byte, c.size-int64(len(data)))...)
		}
		if got := readFile(t, p); !bytes.Equal(got, data) {
			t.Errorf("after %s to %d: %d bytes, differs at %d", c.how, c.size, len(got), firstDiff(got, data))
		}
		if st := lstat(t, p); st.Size != c.size {
			t.Errorf("after %s to %d: size %d", c.how, c.size, st.Size)
		}
	}
	// Shrink inside a page, write past the new end, the gap reads zeros.
	writeFile(t, p, pattern(2*page, 4))
	noErr(t, unix.Truncate(p, 10), "truncate")
	fd := openFd(t, p, unix.O_RDWR, 0)
	defer closeFd(fd)
	pwriteAll(t, fd, []byte("Z"), 3*page)
	got := make([]byte, 3*page+1)
	preadFull(t, fd, got, 0)
	want := make([]byte, 3*page+1)
	copy(want, pattern(10, 4))
	want[3*page] = 'Z'
	if !bytes.Equal(got, want) {
		t.Errorf("stale data after shrink+write beyond: differs at %d", firstDiff(got, want))
	}

	wantErrno(t, unix.Truncate(p, -1), unix.EINVAL, "truncate to -1")
	wantErrno(t, unix.Ftruncate(fd, -1), unix.EINVAL, "ftruncate to -1")
	wantErrno(t, unix.Truncate(mnt, 0), unix.EISDIR, "truncate a directory")
	wantErrno(t, unix.Truncate(filepath.Join(mnt, "missing"), 0), unix.ENOENT, "truncate a missing file")
	rfd := openFd(t, p, unix.O_RDONLY, 0)
	defer closeFd(rfd)
	wantErrno(t, unix.Ftruncate(rfd, 0), unix.EINVAL, "ftruncate an O_RDONLY fd")
}

// TestOpenFlags: O_APPEND, O_TRUNC, O_EXCL, O_CREAT and friends.
func TestOpenFlags(t *testing.T) {
	t.Parallel()
	mnt, _, _ := mountFS(t)
	p := filepath.Join(mnt, "f")

	t.Run("Append", func(t *testing.T) {
		writeFile(t, p, []byte("start"))
		fd := openFd(t, p, unix.O_WRONLY|unix.O_APPEND, 0)
		defer closeFd(fd)
		_, err := unix.Write(fd, []byte("-a"))
		noErr(t, err, "write")
		_, err = unix.Seek(fd, 0, io.SeekStart)
		noErr(t, err, "seek")
		_, err = unix.Write(fd, []byte("-b"))
		noErr(t, err, "write after seek")
		// pwrite on an O_APPEND descriptor appends too (Linux).
		_, err = unix.Pwrite(fd, []byte("-c"), 0)
		noErr(t, err, "pwrite")
		// Another descriptor extends the file: appends still go to the end.
		other := openFd(t, p, unix.O_WRONLY, 0)
		pwriteAll(t, other, []byte("-OTHER"), 11)
		closeFd(other)
		_, err = unix.Write(fd, []byte("-d"))
		noErr(t, err, "write after other writer")
		if cur, _ := unix.Seek(fd, 0, io.SeekCurrent); cur != 19 {
			t.Errorf("offset after append %d, want 19", cur)
		}
		if got := string(readFile(t, p)); got != "start-a-b-c-OTHER-d" {
			t.Errorf("content %q, want %q", got, "start-a-b-c-OTHER-d")
		}
	})
	t.Run("AppendTwoDescriptors", func(t *testing.T) {
		noErr(t, os.WriteFile(p, nil, 0o644), "create")
		a := openFd(t, p, unix.O_WRONLY|unix.O_APPEND, 0)
		defer closeFd(a)
		b := openFd(t, p, unix.O_WRONLY|unix.O_APPEND, 0)
		defer closeFd(b)
		var want []byte
		for i := 0; i < 50; i++ {
			fd, s := a, []byte("aaaa")
			if i%3 == 0 {
				fd, s = b, []byte("bb")
			}
			_, err := unix.Write(fd, s)
			noErr(t, err, "write")
			want = append(want, s...)
		}
		if got := readFile(t, p); !bytes.Equal(got, want) {
			t.Errorf("interleaved appends: got %q, want %q", got, want)
		}
	})
	t.Run("Trunc", func(t *testing.T) {
		writeFile(t, p, pattern(3*page, 1))
		fd := openFd(t, p, unix.O_RDWR|unix.O_TRUNC, 0)
		st := fstat(t, fd)
		if st.Size != 0 || st.Blocks != 0 {
			t.Errorf("after O_TRUNC: size %d blocks %d", st.Size, st.Blocks)
		}
		pwriteAll(t, fd, []byte("x"), 2*page)
		b := make([]byte, 2*page+1)
		preadFull(t, fd, b, 0)
		closeFd(fd)
		if !isZero(b[:2*page]) || b[2*page] != 'x' {
			t.Errorf("old data visible after O_TRUNC")
		}
		// O_TRUNC with O_RDONLY truncates too on Linux.
		fd = openFd(t, p, unix.O_RDONLY|unix.O_TRUNC, 0)
		st = fstat(t, fd)
		closeFd(fd)
		if st.Size != 0 {
			t.Errorf("O_RDONLY|O_TRUNC: size %d, want 0 (Linux truncates)", st.Size)
		}
	})
	t.Run("Excl", func(t *testing.T) {
		q := filepath.Join(mnt, "excl")
		fd := openFd(t, q, unix.O_CREAT|unix.O_EXCL|unix.O_WRONLY, 0o600)
		closeFd(fd)
		_, err := unix.Open(q, unix.O_CREAT|unix.O_EXCL|unix.O_WRONLY, 0o600)
		wantErrno(t, err, unix.EEXIST, "O_CREAT|O_EXCL on an existing file")
		// Also on a dangling symlink: O_EXCL does not follow it.
		l := filepath.Join(mnt, "dangling")
		noErr(t, os.Symlink("nowhere", l), "symlink")
		_, err = unix.Open(l, unix.O_CREAT|unix.O_EXCL|unix.O_WRONLY, 0o600)
		wantErrno(t, err, unix.EEXIST, "O_CREAT|O_EXCL on a dangling symlink")
		if _, err := os.Lstat(filepath.Join(mnt, "nowhere")); !os.IsNotExist(err) {
			t.Errorf("O_EXCL followed the symlink: %v", err)
		}
		// Without O_EXCL, O_CREAT through a dangling symlink creates its target.
		fd, err = unix.Open(l, unix.O_CREAT|unix.O_WRONLY, 0o600)
		noErr(t, err, "O_CREAT through a dangling symlink")
		closeFd(fd)
		if _, err := os.Lstat(filepath.Join(mnt, "nowhere")); err != nil {
			t.Errorf("target of the symlink not created: %v", err)
		}
		_, err = unix.Open(mnt, unix.O_CREAT|unix.O_EXCL|unix.O_RDWR, 0o600)
		wantErrno(t, err, unix.EEXIST, "O_CREAT|O_EXCL on a directory")
	})
	t.Run("Misc", func(t *testing.T) {
		_, err := unix.Open(filepath.Join(mnt, "nope"), unix.O_RDONLY, 0)
		wantErrno(t, err, unix.ENOENT, "open a missing file")
		_, err = unix.Open(mnt, unix.O_WRONLY, 0)
		wantErrno(t, err, unix.EISDIR, "open a directory for writing")
		writeFile(t, p, []byte("x"))
		_, err = unix.Open(p, unix.O_RDONLY|unix.O_DIRECTORY, 0)
		wantErrno(t, err, unix.ENOTDIR, "O_DIRECTORY on a file")
		_, err = unix.Open(p+"/x", unix.O_RDONLY, 0)
		wantErrno(t, err, unix.ENOTDIR, "a file used as a directory")
		l := filepath.Join(mnt, "link-to-f")
		noErr(t, os.Symlink("f", l), "symlink")
		_, err = unix.Open(l, unix.O_RDONLY|unix.O_NOFOLLOW, 0)
		wantErrno(t, err, unix.ELOOP, "O_NOFOLLOW on a symlink")
		fd, err := unix.Open(l, unix.O_PATH|unix.O_NOFOLLOW, 0)
		noErr(t, err, "O_PATH|O_NOFOLLOW on a symlink")
		closeFd(fd)
		// The mode given to O_CREAT is filtered by the umask.
		old := unix.Umask(0o022)
		fd, err = unix.Open(filepath.Join(mnt, "mode"), unix.O_CREAT|unix.O_WRONLY, 0o777)
		unix.Umask(old)
		noErr(t, err, "create")
		closeFd(fd)
		if st := lstat(t, filepath.Join(mnt, "mode")); st.Mode != unix.S_IFREG|0o755 {
			t.Errorf("created with 0777 under umask 022: mode %o, want %o", st.Mode, unix.S_IFREG|0o755)
		}
		// Writing to a read-only descriptor and reading a write-only one.
		rfd := openFd(t, p, unix.O_RDONLY, 0)
		_, err = unix.Write(rfd, []byte("x"))
		wantErrno(t, err, unix.EBADF, "write to O_RDONLY fd")
		closeFd(rfd)
		wfd := openFd(t, p, unix.O_WRONLY, 0)
		_, err = unix.Read(wfd, make([]byte, 1))
		wantErrno(t, err, unix.EBADF, "read from O_WRONLY fd")
		closeFd(wfd)
		// read on a directory
		dfd := openFd(t, mnt, unix.O_RDONLY, 0)
		_, err = unix.Read(dfd, make([]byte, 10))
		wantErrno(t, err, unix.EISDIR, "read a directory")
		closeFd(dfd)
	})
}

// TestTmpfile: O_TMPFILE makes a nameless file that linkat can give a name;
// with O_EXCL it can never get one.
func TestTmpfile(t *testing.T) {
	t.Parallel()
	mnt, _, _ := mountFS(t, withSize(64<<20))
	fd, err := unix.Open(mnt, unix.O_TMPFILE|unix.O_RDWR|unix.O_CLOEXEC, 0o640)
	noErr(t, err, "open(O_TMPFILE|O_RDWR)")
	defer closeFd(fd)
	data := pattern(3*page+5, 2)
	pwriteAll(t, fd, data, 0)
	st := fstat(t, fd)
	if st.Nlink != 0 || st.Mode != unix.S_IFREG|0o640 || st.Size != int64(len(data)) {
		t.Errorf("O_TMPFILE fstat: nlink %d mode %o size %d, want 0, %o, %d", st.Nlink, st.Mode, st.Size, unix.S_IFREG|0o640, len(data))
	}
	if ents, _ := os.ReadDir(mnt); len(ents) != 0 {
		t.Errorf("O_TMPFILE file is visible in the directory: %v", ents)
	}
	name := filepath.Join(mnt, "named")
	noErr(t, unix.Linkat(unix.AT_FDCWD, "/proc/self/fd/"+itoa(fd), unix.AT_FDCWD, name, unix.AT_SYMLINK_FOLLOW), "linkat via /proc/self/fd")
	if got := readFile(t, name); !bytes.Equal(got, data) {
		t.Errorf("linked tmpfile content differs at %d", firstDiff(got, data))
	}
	st2 := lstat(t, name)
	if st2.Nlink != 1 || st2.Ino != st.Ino {
		t.Errorf("linked tmpfile: nlink %d ino %d, want 1 and %d", st2.Nlink, st2.Ino, st.Ino)
	}
	// Writes through the fd show at the name.
	pwriteAll(t, fd, []byte("NEW"), 0)
	if got := readFile(t, name); string(got[:3]) != "NEW" {
		t.Errorf("write through tmpfile fd not visible at the name: %q", got[:3])
	}

	// O_EXCL: linkat is refused.
	fd2, err := unix.Open(mnt, unix.O_TMPFILE|unix.O_EXCL|unix.O_WRONLY|unix.O_CLOEXEC, 0o600)
	noErr(t, err, "open(O_TMPFILE|O_EXCL)")
	defer closeFd(fd2)
	err = unix.Linkat(unix.AT_FDCWD, "/proc/self/fd/"+itoa(fd2), unix.AT_FDCWD, filepath.Join(mnt, "never"), unix.AT_SYMLINK_FOLLOW)
	wantErrno(t, err, unix.ENOENT, "linkat of an O_TMPFILE|O_EXCL file")

	// In a subdirectory, and O_TMPFILE without write access is EINVAL.
	sub := filepath.Join(mnt, "sub")
	noErr(t, os.Mkdir(sub, 0o755), "mkdir")
	fd3, err := unix.Open(sub, unix.O_TMPFILE|unix.O_RDWR|unix.O_CLOEXEC, 0o600)
	noErr(t, err, "O_TMPFILE in a subdirectory")
	closeFd(fd3)
	_, err = unix.Open(sub, unix.O_TMPFILE|unix.O_RDONLY, 0o600)
	wantErrno(t, err, unix.EINVAL, "O_TMPFILE|O_RDONLY")
	// On a file: ENOTDIR.
	_, err = unix.Open(name, unix.O_TMPFILE|unix.O_RDWR, 0o600)
	wantErrno(t, err, unix.ENOTDIR, "O_TMPFILE on a file")
	// The directory stays removable: the tmpfile is not in it.
	noErr(t, unix.Rmdir(sub), "rmdir the directory a tmpfile was made in")

	// A tmpfile never linked frees its space at close.
	free0 := statfs(t, mnt).Bfree
	fd4, err := unix.Open(mnt, unix.O_TMPFILE|unix.O_RDWR|unix.O_CLOEXEC, 0o600)
	noErr(t, err, "O_TMPFILE")
	pwriteAll(t, fd4, pattern(1<<20, 8), 0)
	if f := statfs(t, mnt).Bfree; f >= free0 {
		t.Errorf("1 MiB in a tmpfile: Bfree %d, was %d", f, free0)
	}
	closeFd(fd4)
	if !eventually(5*time.Second, func() bool { return statfs(t, mnt).Bfree == free0 }) {
		t.Errorf("closed tmpfile: Bfree %d, want %d", statfs(t, mnt).Bfree, free0)
	}
}

func itoa(i int) string {
	return string(appendInt(nil, i))
}

func appendInt(b []byte, i int) []byte {
	if i < 0 {
		b = append(b, '-')
		i = -i
	}
	var d [20]byte
	n := len(d)
	for {
		n--
		d[n] = byte('0' + i%10)
		i /= 10
		if i == 0 {
			break
		}
	}
	return append(b, d[n:]...)
}

// TestSync: fsync, fdatasync, syncfs and sync_file_range succeed on files and
// directories.
func TestSync(t *testing.T) {
	t.Parallel()
	mnt, _, _ := mountFS(t)
	p := filepath.Join(mnt, "f")
	fd := openFd(t, p, unix.O_CREAT|unix.O_RDWR, 0o644)
	defer closeFd(fd)
	pwriteAll(t, fd, pattern(3*page, 1), 0)
	noErr(t, unix.Fsync(fd), "fsync")
	noErr(t, unix.Fdatasync(fd), "fdatasync")
	noErr(t, unix.SyncFileRange(fd, 0, 0, unix.SYNC_FILE_RANGE_WRITE|unix.SYNC_FILE_RANGE_WAIT_AFTER), "sync_file_range")
	noErr(t, unix.Syncfs(fd), "syncfs")
	rfd := openFd(t, p, unix.O_RDONLY, 0)
	noErr(t, unix.Fsync(rfd), "fsync of O_RDONLY fd")
	closeFd(rfd)
	dfd := openFd(t, mnt, unix.O_RDONLY|unix.O_DIRECTORY, 0)
	noErr(t, unix.Fsync(dfd), "fsync of a directory")
	noErr(t, unix.Fdatasync(dfd), "fdatasync of a directory")
	closeFd(dfd)
	// O_SYNC and O_DSYNC writes.
	for _, fl := range []int{unix.O_SYNC, unix.O_DSYNC} {
		sfd := openFd(t, p, unix.O_WRONLY|fl, 0)
		pwriteAll(t, sfd, []byte("sync"), 10)
		closeFd(sfd)
	}
	if got := readFile(t, p); string(got[10:14]) != "sync" {
		t.Errorf("O_SYNC write lost: %q", got[10:14])
	}
}

// TestLargeFile: 64 MiB written in odd-sized pieces and read back with a
// checksum; reads and writes across 2 MiB boundaries.
func TestLargeFile(t *testing.T) {
	t.Parallel()
	mnt, _, _ := mountFS(t)
	p := filepath.Join(mnt, "large")
	const size = 64 << 20
	data := make([]byte, size)
	for i := 0; i < size; i += 8 {
		v := uint64(i)*0x9E3779B97F4A7C15 + 12345
		for j := 0; j < 8; j++ {
			data[i+j] = byte(v >> (8 * j))
		}
	}
	want := sha256.Sum256(data)
	f, err := os.Create(p)
	noErr(t, err, "create")
	defer f.Close()
	for off, n := 0, 0; off < size; off += n {
		n = min(size-off, 1<<20+4099) // not aligned to anything
		if _, err := f.Write(data[off : off+n]); err != nil {
			t.Fatalf("write at %d: %v", off, err)
		}
	}
	if st, _ := f.Stat(); st.Size() != size {
		t.Fatalf("size %d, want %d", st.Size(), size)
	}
	// Read back through a fresh descriptor in another odd size.
	r, err := os.Open(p)
	noErr(t, err, "open")
	defer r.Close()
	h := sha256.New()
	buf := make([]byte, 777777)
	if _, err := io.CopyBuffer(h, r, buf); err != nil {
		t.Fatalf("read: %v", err)
	}
	if got := h.Sum(nil); !bytes.Equal(got, want[:]) {
		t.Fatalf("checksum of the read-back file differs")
	}
	// Around each 2 MiB boundary: read 20 bytes straddling it, then
	// overwrite 10 bytes straddling it and read them back.
	fd := int(f.Fd())
	for b := int64(2 << 20); b < size; b += 2 << 20 {
		got := make([]byte, 20)
		preadFull(t, fd, got, b-10)
		if !bytes.Equal(got, data[b-10:b+10]) {
			t.Errorf("read across %d: got %x want %x", b, got, data[b-10:b+10])
		}
		w := []byte{1, 2, 3, 4, 5, 6, 7, 8, 9, byte(b >> 21)}
		pwriteAll(t, fd, w, b-5)
		copy(data[b-5:], w)
		preadFull(t, fd, got, b-10)
		if !bytes.Equal(got, data[b-10:b+10]) {
			t.Errorf("after write across %d: got %x want %x", b, got, data[b-10:b+10])
		}
	}
	// One read of 3 MiB spanning two boundaries.
	got := make([]byte, 3<<20)
	preadFull(t, fd, got, 3<<20-7)
	if !bytes.Equal(got, data[3<<20-7:6<<20-7]) {
		t.Errorf("3 MiB read across boundaries differs at %d", firstDiff(got, data[3<<20-7:6<<20-7]))
	}
	if st := fstat(t, fd); st.Blocks != size/512 {
		t.Errorf("st_blocks %d, want %d", st.Blocks, size/512)
	}
}

// TestHugeOffsets: a write at 1 TiB makes a sparse file; offsets at the
// maximum file size are EFBIG.
func TestHugeOffsets(t *testing.T) {
	t.Parallel()
	mnt, _, _ := mountFS(t)
	fd := openFd(t, filepath.Join(mnt, "huge"), unix.O_CREAT|unix.O_RDWR, 0o644)
	defer closeFd(fd)
	const off = 1 << 40
	pwriteAll(t, fd, []byte("far away"), off)
	st := fstat(t, fd)
	if st.Size != off+8 {
		t.Errorf("size %d, want %d", st.Size, off+8)
	}
	if st.Blocks != page/512 {
		t.Errorf("st_blocks %d, want %d (one page)", st.Blocks, page/512)
	}
	b := make([]byte, 16)
	if n := preadFull(t, fd, b, off-8); n != 16 || !isZero(b[:8]) || string(b[8:]) != "far away" {
		t.Errorf("read around 1 TiB: %d bytes %q", n, b[:n])
	}
	seekExpect(t, fd, 0, unix.SEEK_DATA, off, nil)
	seekExpect(t, fd, off, unix.SEEK_HOLE, off+8, nil)

	// offset+length past MaxInt64 is EINVAL; fallocate past it EFBIG.
	_, err := unix.Pwrite(fd, []byte("x"), math.MaxInt64)
	wantErrno(t, err, unix.EINVAL, "pwrite at offset MaxInt64")
	_, err = unix.Pwrite(fd, []byte("xy"), math.MaxInt64-1)
	wantErrno(t, err, unix.EINVAL, "pwrite of 2 bytes at MaxInt64-1")
	wantErrno(t, unix.Fallocate(fd, 0, math.MaxInt64-page, 2*page), unix.EFBIG, "fallocate past MaxInt64")
	// Far, but not at the very end: 2^62.
	pwriteAll(t, fd, []byte("very far"), 1<<62)
	if st := fstat(t, fd); st.Size != 1<<62+8 || st.Blocks != 2*page/512 {
		t.Errorf("after a write at 2^62: size %d blocks %d, want %d and %d", st.Size, st.Blocks, int64(1<<62+8), 2*page/512)
	}
	if n := preadFull(t, fd, b, 1<<62-8); n != 16 || !isZero(b[:8]) || string(b[8:]) != "very far" {
		t.Errorf("read around 2^62: %d bytes %q", n, b[:n])
	}
	seekExpect(t, fd, off+page, unix.SEEK_DATA, 1<<62, nil)
}

// TestMaxFileSize: as on tmpfs, the largest file is MaxInt64 bytes: its last
// byte can be written (a sparse file), ftruncate to MaxInt64 works, and an
// append to such a file is EFBIG.
func TestMaxFileSize(t *testing.T) {
	t.Parallel()
	mnt, _, _ := mountFS(t)
	p := filepath.Join(mnt, "max")
	fd := openFd(t, p, unix.O_CREAT|unix.O_RDWR, 0o644)
	defer closeFd(fd)
	b := make([]byte, 16)
	if err := unix.Ftruncate(fd, math.MaxInt64); err != nil {
		t.Errorf("ftruncate to MaxInt64: %v", errString(err))
	} else if n, err := unix.Pread(fd, b, 1<<50); n != 16 || err != nil || !isZero(b) {
		t.Errorf("read at 1 PiB of a maximal sparse file: n=%d err=%v", n, err)
	}
	noErr(t, unix.Ftruncate(fd, 0), "ftruncate to 0")
	n, err := unix.Pwrite(fd, []byte("x"), math.MaxInt64-1)
	if err != nil || n != 1 {
		t.Fatalf("pwrite of 1 byte at MaxInt64-1: n=%d err=%v, want 1, nil", n, errString(err))
	}
	if st := fstat(t, fd); st.Size != math.MaxInt64 || st.Blocks != page/512 {
		t.Errorf("after writing the last byte: size %d blocks %d, want %d and %d", st.Size, st.Blocks, int64(math.MaxInt64), page/512)
	}
	if n := preadFull(t, fd, b[:2], math.MaxInt64-2); n != 2 || b[0] != 0 || b[1] != 'x' {
		t.Errorf("read of the last two bytes: %d %q", n, b[:n])
	}
	afd := openFd(t, p, unix.O_WRONLY|unix.O_APPEND, 0)
	defer closeFd(afd)
	_, err = unix.Write(afd, []byte("x"))
	wantErrno(t, err, unix.EFBIG, "append to a file of size MaxInt64")
}
