package tests

// Benchmarks of the mapped data path (no passthrough) through an
// in-process mount: each read and write is a FUSE request the server
// answers, so allocs/op counts the server's allocations per request
// (go-fuse's included). scripts/bench compares whole systems.

import (
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"runtime/pprof"
	"strconv"
	"testing"

	"golang.org/x/sys/unix"
)

// benchIO runs b.N preads or pwrites of n bytes with O_DIRECT, so that
// every one reaches the server, over a file of span bytes.
func benchIO(b *testing.B, n int, span int64, write bool) {
	needRoot(b)
	mnt, _, _ := mountFS(b, func(c *mountConfig) { c.passthrough = false })
	path := filepath.Join(mnt, "f")
	fd := openFd(b, path, unix.O_CREAT|unix.O_RDWR, 0o644)
	defer closeFd(fd)
	chunk := pattern(1<<20, 1)
	for off := int64(0); off < span; off += int64(len(chunk)) {
		pwriteAll(b, fd, chunk, off)
	}
	dfd := openFd(b, path, unix.O_RDWR|unix.O_DIRECT, 0)
	defer closeFd(dfd)
	buf, err := unix.Mmap(-1, 0, n, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_PRIVATE|unix.MAP_ANONYMOUS)
	noErr(b, err, "aligned buffer")
	defer unix.Munmap(buf)
	copy(buf, chunk)
	slots := span / int64(n)
	b.SetBytes(int64(n))
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; b.Loop(); i++ {
		off := int64(i) % slots * int64(n)
		var got int
		if write {
			got, err = unix.Pwrite(dfd, buf, off)
		} else {
			got, err = unix.Pread(dfd, buf, off)
		}
		if err != nil || got != n {
			b.Fatalf("%d bytes at %d: %d, %v", n, off, got, err)
		}
	}
}

func BenchmarkMountRead4K(b *testing.B)  { benchIO(b, 4<<10, 16<<20, false) }
func BenchmarkMountWrite4K(b *testing.B) { benchIO(b, 4<<10, 16<<20, true) }
func BenchmarkMountRead1M(b *testing.B)  { benchIO(b, 1<<20, 64<<20, false) }
func BenchmarkMountWrite1M(b *testing.B) { benchIO(b, 1<<20, 64<<20, true) }

// BenchmarkMemoryPerFile creates empty files (the kernel holding every
// inode: each stays looked up) in directories of 1000, and reports the
// server's live heap per file after a collection, which is what a million
// empty files cost beyond the runtime's own slack. With
// MMAPFS_HEAPPROFILE=FILE it writes a heap profile there, for go tool
// pprof -sample_index=inuse_space.
func BenchmarkMemoryPerFile(b *testing.B) {
	needRoot(b)
	const files = 100000
	mnt, _, _ := mountFS(b, withInodes(4*files))
	heap := func() uint64 {
		runtime.GC()
		runtime.GC()
		var ms runtime.MemStats
		runtime.ReadMemStats(&ms)
		return ms.HeapAlloc
	}
	for b.Loop() {
		root := filepath.Join(mnt, fmt.Sprintf("r%d", b.N))
		noErr(b, os.Mkdir(root, 0o755), "mkdir")
		before := heap()
		for i := 0; i < files; i++ {
			dir := filepath.Join(root, strconv.Itoa(i/1000))
			if i%1000 == 0 {
				noErr(b, os.Mkdir(dir, 0o755), "mkdir")
			}
			fd, err := unix.Open(filepath.Join(dir, strconv.Itoa(i)), unix.O_CREAT|unix.O_EXCL|unix.O_WRONLY|unix.O_CLOEXEC, 0o644)
			noErr(b, err, "create %d", i)
			unix.Close(fd)
		}
		after := heap()
		b.ReportMetric(float64(after-before)/files, "heapB/file")
		if p := os.Getenv("MMAPFS_HEAPPROFILE"); p != "" {
			f, err := os.Create(p)
			noErr(b, err, "heap profile")
			noErr(b, pprof.WriteHeapProfile(f), "heap profile")
			f.Close()
		}
	}
}
