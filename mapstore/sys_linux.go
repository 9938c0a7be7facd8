package mapstore

import (
	"errors"
	"math"
	"math/bits"
	"os"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

// Sys holds the system calls the store makes on store files. Open copies it
// and fills nil fields with the real calls, so a test sets only the calls it
// wants to fail; the functions may be called concurrently.
//
// The mappings come from unix.Mmap and go back to unix.Munmap only: the
// store never calls mremap, so a mapping never moves while it is in use.
type Sys struct {
	Openat    func(dirfd int, path string, flags int, mode uint32) (fd int, err error)
	Ftruncate func(fd int, length int64) error
	Fallocate func(fd int, mode uint32, off, length int64) error
	Fdatasync func(fd int) error
	Fsync     func(fd int) error
	Mmap      func(fd int, offset int64, length int, prot, flags int) ([]byte, error)
	Munmap    func(b []byte) error
	Msync     func(b []byte, flags int) error
	// Pread and Pwrite serve the bytes of the last page below 2^63,
	// which cannot be mapped, the writes of a store that is not a tmpfs
	// (mappedio.go), and a lent blob's reads and writes.
	Pread  func(fd int, p []byte, off int64) (n int, err error)
	Pwrite func(fd int, p []byte, off int64) (n int, err error)
}

// withDefaults returns a copy of sys (which may be nil) with every nil field
// set to the real system call.
func (sys *Sys) withDefaults() *Sys {
	var c Sys
	if sys != nil {
		c = *sys
	}
	if c.Openat == nil {
		c.Openat = unix.Openat
	}
	if c.Ftruncate == nil {
		c.Ftruncate = unix.Ftruncate
	}
	if c.Fallocate == nil {
		c.Fallocate = unix.Fallocate
	}
	if c.Fsync == nil {
		c.Fsync = unix.Fsync
	}
	if c.Fdatasync == nil {
		c.Fdatasync = unix.Fdatasync
	}
	if c.Mmap == nil {
		c.Mmap = unix.Mmap
	}
	if c.Munmap == nil {
		c.Munmap = unix.Munmap
	}
	if c.Msync == nil {
		c.Msync = unix.Msync
	}
	if c.Pread == nil {
		c.Pread = unix.Pread
	}
	if c.Pwrite == nil {
		c.Pwrite = unix.Pwrite
	}
	return &c
}

const (
	// fallocAlloc allocates pages inside the store file's size. Store files
	// are grown with ftruncate before they are allocated into, so KEEP_SIZE
	// never hides an allocation past the end of the file.
	fallocAlloc = unix.FALLOC_FL_KEEP_SIZE
	// fallocPunch frees pages; the store file keeps its size.
	fallocPunch = unix.FALLOC_FL_PUNCH_HOLE | unix.FALLOC_FL_KEEP_SIZE

	// openFlags open an existing store file: never through a symlink,
	// never inherited by a child process.
	openFlags = unix.O_RDWR | unix.O_NOFOLLOW | unix.O_CLOEXEC
	// createFlags create a store file that must not exist yet.
	createFlags = openFlags | unix.O_CREAT | unix.O_EXCL
	// dirFlags open the store directory.
	dirFlags = unix.O_RDONLY | unix.O_DIRECTORY | unix.O_NOFOLLOW | unix.O_CLOEXEC

	mmapProt  = unix.PROT_READ | unix.PROT_WRITE
	mmapFlags = unix.MAP_SHARED
)

// isENOSPC reports whether err says the filesystem is full.
func isENOSPC(err error) bool {
	return errors.Is(err, unix.ENOSPC) || errors.Is(err, unix.EDQUOT)
}

// isEINTR reports whether err says a system call was interrupted.
func isEINTR(err error) bool { return errors.Is(err, unix.EINTR) }

// isENOMEM reports whether err says the address space or the map count is
// exhausted.
func isENOMEM(err error) bool { return errors.Is(err, unix.ENOMEM) }

// isTmpfs reports whether fd is on a tmpfs, where st_blocks counts exactly
// the allocated pages.
func isTmpfs(fd int) bool {
	var st unix.Statfs_t
	return unix.Fstatfs(fd, &st) == nil && st.Type == unix.TMPFS_MAGIC
}

// fileInfo is what Check and OpenBlob want from fstat.
type fileInfo struct {
	size, blocks int64 // bytes, and 512-byte blocks allocated
	mode         uint32
}

func fstat(fd int) (fileInfo, error) {
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		return fileInfo{}, err
	}
	return fileInfo{size: st.Size, blocks: st.Blocks, mode: st.Mode}, nil
}

// isRegular reports whether mode is a regular file's.
func isRegular(mode uint32) bool { return mode&unix.S_IFMT == unix.S_IFREG }

// dataRanges calls fn for each range of data in fd below size, as lseek
// SEEK_DATA/SEEK_HOLE report them.
//
// tmpfs gets the last page below 2^63 wrong (Linux 6.18): SEEK_DATA never
// finds data there, and SEEK_HOLE wraps to -2^63 where the data reaches
// the page's end, 2^63. So an end that wrapped is math.MaxInt64, and that
// page is asked about with SEEK_HOLE, which returns its start for a hole.
func dataRanges(fd int, size int64, fn func(start, end int64)) error {
	off := int64(0)
	for off < size {
		d, err := unix.Seek(fd, off, unix.SEEK_DATA)
		if err == unix.ENXIO {
			break
		}
		if err != nil {
			return err
		}
		h, err := unix.Seek(fd, d, unix.SEEK_HOLE)
		if err != nil {
			return err
		}
		if h <= d {
			h = math.MaxInt64
		}
		fn(d, min(h, size))
		off = h
	}
	if size <= maxMappable || off > maxMappable {
		return nil
	}
	h, err := unix.Seek(fd, maxMappable, unix.SEEK_HOLE)
	if err != nil {
		return err
	}
	if h != maxMappable {
		fn(maxMappable, size)
	}
	return nil
}

// dupFD duplicates fd, close-on-exec.
func dupFD(fd int) (int, error) {
	return unix.FcntlInt(uintptr(fd), unix.F_DUPFD_CLOEXEC, 0)
}

func closeFD(fd int) error { return unix.Close(fd) }

func unlinkat(dirfd int, name string) error { return unix.Unlinkat(dirfd, name, 0) }

func fchmod(fd int, mode uint32) error { return unix.Fchmod(fd, mode) }

// maxOpenFiles returns the soft RLIMIT_NOFILE, or 0 if unknown.
func maxOpenFiles() int64 {
	var rl unix.Rlimit
	if unix.Getrlimit(unix.RLIMIT_NOFILE, &rl) != nil || rl.Cur > 1<<40 {
		return 0
	}
	return int64(rl.Cur)
}

// openDir opens the store directory, not through a symlink.
func openDir(path string) (int, error) { return unix.Open(path, dirFlags, 0) }

// openRead opens a store file read-only for Check, outside the descriptor
// cache.
func openRead(dirfd int, name string) (int, error) {
	return unix.Openat(dirfd, name, unix.O_RDONLY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
}

// isEMFILE reports whether err says the process or system is out of
// descriptors.
func isEMFILE(err error) bool { return errors.Is(err, unix.EMFILE) || errors.Is(err, unix.ENFILE) }

// isENOENT reports whether err says a file does not exist.
func isENOENT(err error) bool { return errors.Is(err, unix.ENOENT) }

// msyncFlags make msync wait for the write-back.
const msyncFlags = unix.MS_SYNC

// maxFileSizeOf returns the largest file size the filesystem of dirfd
// allows (its s_maxbytes), found by growing an unnamed temporary file
// there, or limit if it allows at least limit or cannot be asked.
func maxFileSizeOf(dirfd int, limit int64) int64 {
	fd, err := unix.Openat(dirfd, ".", unix.O_TMPFILE|unix.O_RDWR|unix.O_CLOEXEC, 0o600)
	if err != nil {
		return limit
	}
	defer unix.Close(fd)
	if unix.Ftruncate(fd, limit) == nil {
		return limit
	}
	// Binary search in pages: lo is allowed, hi is not.
	lo, hi := int64(0), limit/PageSize+1
	for hi-lo > 1 {
		m := lo + (hi-lo)/2
		if unix.Ftruncate(fd, m*PageSize) == nil {
			lo = m
		} else {
			hi = m
		}
	}
	return lo * PageSize
}

// maxMapCount returns vm.max_map_count, or 0 if unknown.
func maxMapCount() int64 {
	b, err := os.ReadFile("/proc/sys/vm/max_map_count")
	if err != nil {
		return 0
	}
	n, err := strconv.ParseInt(strings.TrimSpace(string(b)), 10, 64)
	if err != nil {
		return 0
	}
	return n
}

// populateMin is the smallest copy worth a populate call: below it, the
// one or two page faults the copy takes cost less than the system call.
const populateMin = 64 << 10

// populate maps the pages of w.mem[off:off+n] into the page tables ahead
// of a copy, with one madvise(MADV_POPULATE_READ/WRITE) instead of a page
// fault per page: a fresh mapping of a 1 MiB range would otherwise take
// 256 faults. The pages must be allocated (data pages for reading,
// fallocated pages for writing), so this never allocates store space. An
// error is ignored: the copy then faults page by page, under its guard.
//
// The page table entries stay until the window is unmapped, so a chunk
// populated once (w.filled) is not populated again: asking again costs a
// walk over every page (80 µs per MiB here), a fifth of the server's time
// in a read of 1 MiB. A punch or a reclaim may remove entries behind the
// marks; the copy then takes page faults, which are only slower.
func populate(w *window, off int64, n int, write bool) {
	if n < populateMin {
		return
	}
	mem := w.mem
	start := off &^ (PageSize - 1)
	end := min((off+int64(n)+PageSize-1)&^(PageSize-1), int64(len(mem)))
	touched, whole := fillBits(int64(len(mem)), start, end)
	shift := 0
	advice := unix.MADV_POPULATE_READ
	if write {
		shift = 32
		advice = unix.MADV_POPULATE_WRITE
	}
	f := w.filled.Load()
	// Written entries serve reads too.
	if have := (f >> shift) | (f >> 32); have&touched == touched {
		return
	}
	if err := unix.Madvise(mem[start:end], advice); err == nil && whole != 0 {
		w.filled.Or(whole << shift)
	}
}

// fillBits returns the populate chunks of a window of n bytes that the
// range [start, end) touches, and those it covers whole (a last chunk cut
// short by the window's end counts as whole if the range covers what
// there is of it).
func fillBits(n, start, end int64) (touched, whole uint64) {
	if start >= end {
		return 0, 0
	}
	cs := fillShift(n)
	first, last := start>>cs, (end-1)>>cs
	touched = chunkBits(first, last)
	lo := (start + 1<<cs - 1) >> cs
	hi := end >> cs
	if end == n {
		hi = last + 1
	}
	return touched, chunkBits(lo, hi-1)
}

// fillShift is the log2 of a populate chunk of a window of n bytes: a
// 32nd of it, at least a page.
func fillShift(n int64) uint {
	s := uint(bits.Len64(uint64(n - 1))) // ceil(log2 n)
	if s < 5+pageShift {
		return pageShift
	}
	return s - 5
}

// chunkBits returns the bits of chunks first to last (≤ 31).
func chunkBits(first, last int64) uint64 {
	last = min(last, 31)
	if first > last {
		return 0
	}
	return (uint64(1)<<(last-first+1) - 1) << first
}
