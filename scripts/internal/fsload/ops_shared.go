package main

// The soak worker's operations on what all workers share: its region of
// the shared files, the flock'd counter and the shared directory.

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"golang.org/x/sys/unix"
)

// opShared writes the worker's region of a shared file, reads it back, and
// checks that the file is at least as long as the region's end.
func (w *worker) opShared() {
	k := w.rng.IntN(sharedFiles)
	fd, err := unix.Open(w.sharedPath(k), unix.O_RDWR|unix.O_CLOEXEC, 0)
	if err != nil {
		w.fail("open shared %d: %v", k, err)
		return
	}
	defer unix.Close(fd)
	base := int64(w.id * regionSize)
	if w.sharedData[k] != nil && w.rng.IntN(2) == 0 {
		got := make([]byte, regionSize)
		// The region may end the file: a short read is right if the
		// rest of the model is zeros.
		if n, err := unix.Pread(fd, got, base); err != nil || !regionEqual(got[:max(n, 0)], w.sharedData[k]) {
			w.fail("shared s%d region %d: %d bytes, %v", k, w.id, n, err)
		}
		w.done(opShared, regionSize)
		return
	}
	w.region(k)
	off := w.rng.IntN(regionSize)
	n := 1 + w.rng.IntN(regionSize-off)
	b := w.randBytes(n)
	if m, err := unix.Pwrite(fd, b, base+int64(off)); err != nil || m != n {
		w.fail("pwrite shared s%d: %d, %v", k, m, err)
		return
	}
	w.writeRegion(k, off, b)
	got := make([]byte, n)
	if m, err := unix.Pread(fd, got, base+int64(off)); err != nil || m != n || !bytes.Equal(got, b) {
		w.fail("read back shared s%d region %d: %d, %v", k, w.id, m, err)
	}
	w.done(opShared, 2*n)
}

// opFlock increments the shared counter under an exclusive flock.
func (w *worker) opFlock() {
	fd, err := unix.Open(filepath.Join(w.shared, "counter"), unix.O_RDWR|unix.O_CLOEXEC, 0)
	if err != nil {
		w.fail("open counter: %v", err)
		return
	}
	defer unix.Close(fd)
	if err := unix.Flock(fd, unix.LOCK_EX); err != nil {
		w.fail("flock counter: %v", err)
		return
	}
	var b [8]byte
	n, err := unix.Pread(fd, b[:], 0)
	if err != nil || (n != 0 && n != 8) {
		w.fail("read counter: %d, %v", n, err)
	}
	v := binary.LittleEndian.Uint64(b[:]) + 1
	binary.LittleEndian.PutUint64(b[:], v)
	if n, err := unix.Pwrite(fd, b[:], 0); err != nil || n != 8 {
		w.fail("write counter: %d, %v", n, err)
	} else {
		w.flockIncs++
	}
	unix.Flock(fd, unix.LOCK_UN)
	w.done(opFlock, 16)
}

// opSharedDir adds or removes one of the worker's names in shared/dir, and
// now and then checks its own names there.
func (w *worker) opSharedDir() {
	dir := filepath.Join(w.shared, "dir")
	prefix := fmt.Sprintf("w%d-", w.id)
	if len(w.sharedDir) < 20 || w.rng.IntN(2) == 0 {
		w.seq++
		name := fmt.Sprintf("%s%d", prefix, w.seq)
		if err := os.WriteFile(filepath.Join(dir, name), nil, 0o644); err != nil {
			w.fail("create shared/dir/%s: %v", name, err)
			return
		}
		w.addSharedName(name)
	} else {
		for name := range w.sharedDir {
			if err := os.Remove(filepath.Join(dir, name)); err != nil {
				w.fail("remove shared/dir/%s: %v", name, err)
			}
			w.removeSharedName(name)
			break
		}
	}
	if w.rng.IntN(4) == 0 {
		names, err := readNames(dir)
		if err != nil {
			w.fail("readdir shared/dir: %v", err)
			return
		}
		own := 0
		for _, n := range names {
			if strings.HasPrefix(n, prefix) {
				own++
				if !w.sharedDir[n] {
					w.fail("readdir shared/dir: stray %s", n)
				}
			}
		}
		if own != len(w.sharedDir) {
			w.fail("readdir shared/dir: %d own names, want %d", own, len(w.sharedDir))
		}
	}
	w.done(opSharedDir, 0)
}
