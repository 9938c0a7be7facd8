package main

// The soak worker's operations on the contents of its files: each makes
// the call on the mount, checks what it returns against the model and
// changes the model as the call did.

import (
	"bytes"
	"os"

	"golang.org/x/sys/unix"
)

// open opens f with flags (and O_CLOEXEC); on failure it reports and
// returns false.
func (w *worker) open(f *wfile, flags int) (int, bool) {
	fd, err := unix.Open(w.abs(f.rel), flags|unix.O_CLOEXEC, 0)
	if err != nil {
		w.fail("open %s: %v", f.rel, err)
		return -1, false
	}
	return fd, true
}

// mapFile opens f with flags and maps its whole length, which must not be
// zero, shared with prot; the caller unmaps m and closes fd. On failure it
// reports and returns false.
func (w *worker) mapFile(f *wfile, flags, prot int) (fd int, m []byte, ok bool) {
	fd, ok = w.open(f, flags)
	if !ok {
		return -1, nil, false
	}
	m, err := unix.Mmap(fd, 0, int(f.n.Size), prot, unix.MAP_SHARED)
	if err != nil {
		unix.Close(fd)
		w.fail("mmap %s: %v", f.rel, err)
		return -1, nil, false
	}
	return fd, m, true
}

// opCreate creates a new file of a random size, written in random chunks.
func (w *worker) opCreate() {
	rel := w.newName()
	data := w.randBytes(w.randSize())
	fd, err := unix.Open(w.abs(rel), unix.O_CREAT|unix.O_EXCL|unix.O_WRONLY|unix.O_CLOEXEC, 0o644)
	if err != nil {
		w.fail("create %s: %v", rel, err)
		return
	}
	f, e := w.create(rel)
	if !w.agree("create", rel, e) {
		unix.Close(fd)
		return
	}
	for off := 0; off < len(data); {
		n := min(len(data)-off, 4<<10+w.rng.IntN(256<<10))
		m, err := unix.Write(fd, data[off:off+n])
		if err != nil || m != n {
			w.fail("write %s at %d: %d, %v", rel, off, m, err)
			unix.Close(fd)
			f.n.WriteAt(data, 0)
			w.reload(f)
			return
		}
		off += n
	}
	if err := unix.Close(fd); err != nil {
		w.fail("close %s: %v", rel, err)
	}
	f.n.WriteAt(data, 0)
	w.done(opCreate, len(data))
}

// opWrite writes random bytes at a random offset, up to 64 KiB past the end.
func (w *worker) opWrite() {
	f := w.pick()
	off := w.rng.IntN(int(f.n.Size) + 64<<10)
	n := 1 + w.rng.IntN(128<<10)
	b := w.randBytes(n)
	fd, ok := w.open(f, unix.O_WRONLY)
	if !ok {
		return
	}
	defer unix.Close(fd)
	m, err := unix.Pwrite(fd, b, int64(off))
	if err != nil || m != n {
		w.fail("pwrite %s %d at %d: %d, %v", f.rel, n, off, m, err)
		w.reload(f)
		return
	}
	f.n.WriteAt(b, int64(off))
	w.done(opWrite, n)
}

// opAppend appends random bytes through O_APPEND.
func (w *worker) opAppend() {
	f := w.pick()
	n := 1 + w.rng.IntN(32<<10)
	b := w.randBytes(n)
	fd, ok := w.open(f, unix.O_WRONLY|unix.O_APPEND)
	if !ok {
		return
	}
	defer unix.Close(fd)
	m, err := unix.Write(fd, b)
	if err != nil || m != n {
		w.fail("append %s %d: %d, %v", f.rel, n, m, err)
		w.reload(f)
		return
	}
	f.n.WriteAt(b, f.n.Size)
	w.done(opAppend, n)
}

// opRead reads a whole file and checks it.
func (w *worker) opRead() {
	f := w.pick()
	got, err := os.ReadFile(w.abs(f.rel))
	if err != nil {
		w.fail("read %s: %v", f.rel, err)
		return
	}
	if int64(len(got)) != f.n.Size {
		w.fail("read %s: %d bytes, want %d", f.rel, len(got), f.n.Size)
		f.n.SetData(got)
		return
	}
	w.check(f, "read", 0, got)
	w.done(opRead, len(got))
}

// opPread reads four random ranges of a file, some past its end, and
// checks them.
func (w *worker) opPread() {
	f := w.pick()
	fd, ok := w.open(f, unix.O_RDONLY)
	if !ok {
		return
	}
	defer unix.Close(fd)
	total := 0
	for i := 0; i < 4; i++ {
		off := w.rng.IntN(int(f.n.Size) + 4096)
		n := 1 + w.rng.IntN(64<<10)
		b := make([]byte, n)
		m, err := unix.Pread(fd, b, int64(off))
		if err != nil {
			w.fail("pread %s %d at %d: %v", f.rel, n, off, err)
			return
		}
		want := max(0, min(n, int(f.n.Size)-off))
		if m != want {
			w.fail("pread %s %d at %d: %d bytes, want %d", f.rel, n, off, m, want)
			w.reload(f)
			return
		}
		w.check(f, "pread", off, b[:m])
		total += m
	}
	w.done(opPread, total)
}

// opMmapRead reads a whole file through a shared mapping and checks it.
func (w *worker) opMmapRead() {
	f := w.pick()
	if f.n.Size == 0 {
		w.done(opMmapRead, 0)
		return
	}
	fd, m, ok := w.mapFile(f, unix.O_RDONLY, unix.PROT_READ)
	if !ok {
		return
	}
	defer unix.Close(fd)
	got := bytes.Clone(m)
	unix.Munmap(m)
	w.check(f, "mmap read", 0, got)
	w.done(opMmapRead, len(got))
}

// opMmapWrite writes a random range through a shared mapping, msyncs it and
// reads it back through pread(2).
func (w *worker) opMmapWrite() {
	f := w.pick()
	if f.n.Size == 0 {
		w.done(opMmapWrite, 0)
		return
	}
	fd, m, ok := w.mapFile(f, unix.O_RDWR, unix.PROT_READ|unix.PROT_WRITE)
	if !ok {
		return
	}
	defer unix.Close(fd)
	off := w.rng.IntN(int(f.n.Size))
	n := 1 + w.rng.IntN(min(int(f.n.Size)-off, 64<<10))
	b := w.randBytes(n)
	copy(m[off:], b)
	if err := unix.Msync(m, unix.MS_SYNC); err != nil {
		w.fail("msync %s: %v", f.rel, err)
	}
	unix.Munmap(m)
	f.n.WriteAt(b, int64(off))
	// Read back through read(2): shared mappings are coherent with it.
	got := make([]byte, n)
	if k, err := unix.Pread(fd, got, int64(off)); err != nil || k != n {
		w.fail("pread after mmap write %s: %d, %v", f.rel, k, err)
		return
	}
	w.check(f, "read after mmap write", off, got)
	w.done(opMmapWrite, n)
}

// opTruncate shrinks or grows a file to a random size.
func (w *worker) opTruncate() {
	f := w.pick()
	var size int
	if w.rng.IntN(2) == 0 {
		size = w.rng.IntN(int(f.n.Size) + 1)
	} else {
		size = int(f.n.Size) + w.rng.IntN(256<<10)
	}
	if err := unix.Truncate(w.abs(f.rel), int64(size)); err != nil {
		w.fail("truncate %s to %d: %v", f.rel, size, err)
		return
	}
	w.agree("truncate", f.rel, f.n.Truncate(int64(size)))
	w.done(opTruncate, 0)
}

// opFallocate allocates, punches a hole or zeros a random range (with or
// without KEEP_SIZE).
func (w *worker) opFallocate() {
	f := w.pick()
	var mode uint32
	off := w.rng.IntN(int(f.n.Size) + 64<<10)
	n := 1 + w.rng.IntN(256<<10)
	switch w.rng.IntN(5) {
	case 0:
		mode = 0
	case 1:
		mode = unix.FALLOC_FL_KEEP_SIZE
	case 2, 3:
		mode = unix.FALLOC_FL_PUNCH_HOLE | unix.FALLOC_FL_KEEP_SIZE
	case 4:
		if noZeroRange {
			w.done(opFallocate, 0)
			return
		}
		mode = unix.FALLOC_FL_ZERO_RANGE
		if w.rng.IntN(2) == 0 {
			mode |= unix.FALLOC_FL_KEEP_SIZE
		}
	}
	fd, ok := w.open(f, unix.O_RDWR)
	if !ok {
		return
	}
	defer unix.Close(fd)
	if err := unix.Fallocate(fd, mode, int64(off), int64(n)); err != nil {
		w.fail("fallocate %s mode %#x %d at %d: %v", f.rel, mode, n, off, err)
		w.reload(f)
		return
	}
	w.agree("fallocate", f.rel, f.n.Fallocate(mode, int64(off), int64(n)))
	w.done(opFallocate, 0)
}

// opCopyRange copies a random range of one file into another with
// copy_file_range(2).
func (w *worker) opCopyRange() {
	src, dst := w.pick(), w.pick()
	if src == dst || src.n.Size == 0 {
		w.done(opCopyRange, 0)
		return
	}
	soff := w.rng.IntN(int(src.n.Size))
	n := 1 + w.rng.IntN(min(int(src.n.Size)-soff, 512<<10))
	doff := w.rng.IntN(int(dst.n.Size) + 4096)
	in, ok := w.open(src, unix.O_RDONLY)
	if !ok {
		return
	}
	defer unix.Close(in)
	out, ok := w.open(dst, unix.O_WRONLY)
	if !ok {
		return
	}
	defer unix.Close(out)
	done := 0
	for done < n {
		so, do := int64(soff+done), int64(doff+done)
		m, err := unix.CopyFileRange(in, &so, out, &do, n-done, 0)
		if err != nil || m == 0 {
			w.fail("copy_file_range %s→%s %d at %d→%d: %d, %v", src.rel, dst.rel, n-done, soff+done, doff+done, m, err)
			w.reload(dst)
			return
		}
		done += m
	}
	dst.n.WriteAt(src.n.ReadAt(int64(soff), int64(n)), int64(doff))
	w.done(opCopyRange, n)
}

// opFsync fsyncs or fdatasyncs a file.
func (w *worker) opFsync() {
	f := w.pick()
	fd, ok := w.open(f, unix.O_RDWR)
	if !ok {
		return
	}
	defer unix.Close(fd)
	var err error
	if w.rng.IntN(2) == 0 {
		err = unix.Fsync(fd)
	} else {
		err = unix.Fdatasync(fd)
	}
	if err != nil {
		w.fail("fsync %s: %v", f.rel, err)
	}
	w.done(opFsync, 0)
}
