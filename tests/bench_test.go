package tests

// Benchmarks of the mapped data path (no passthrough) through an
// in-process mount: each read and write is a FUSE request the server
// answers, so allocs/op counts the server's allocations per request
// (go-fuse's included). scripts/bench compares whole systems.

import (
	"path/filepath"
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
