package tests

import (
	"bytes"
	"crypto/sha256"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

// TestPersistReservedPages: pages reserved with fallocate (with and
// without KEEP_SIZE) and by a zero range, not written, stay reserved across
// a clean unmount and a SIGKILL, as unwritten extents of ext4 do: st_blocks
// and SEEK_DATA/SEEK_HOLE are what they were, the mount logs nothing about
// them, fsck finds the store clean, and with the store's filesystem full a
// write into them still succeeds.
func TestPersistReservedPages(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root to mount a small tmpfs for the store")
	}
	pstSetup(t)
	for _, pt := range []string{"on", "off"} {
		t.Run("passthrough="+pt, func(t *testing.T) {
			if pt == "on" {
				needPassthrough(t)
			}
			storeFS := pstSmallFS(t, "24m")
			store := filepath.Join(storeFS, "store")
			mnt := binMountpoint(t)
			j := func(rel string) string { return filepath.Join(mnt, rel) }
			arg := "--passthrough=" + pt
			p := pstMount(t, store, mnt, false, arg)

			pstWriteAt(t, j("keep"), 0, modelBytes(1, 256<<10))
			noErr(t, fallocatePath(j("keep"), unix.FALLOC_FL_KEEP_SIZE, 0, 1<<20), "fallocate keep size")
			pstWriteAt(t, j("zero"), 0, modelBytes(2, 64<<10))
			noErr(t, fallocatePath(j("zero"), unix.FALLOC_FL_ZERO_RANGE, 0, 64<<10), "zero range")
			pstWriteAt(t, j("alloc"), 0, nil)
			noErr(t, fallocatePath(j("alloc"), 0, 0, 512<<10), "fallocate")
			pstWriteAt(t, j("mixed"), 0, modelBytes(3, 40<<10))
			noErr(t, fallocatePath(j("mixed"), 0, 64<<10, 64<<10), "fallocate past the end")
			noErr(t, fallocatePath(j("mixed"), unix.FALLOC_FL_PUNCH_HOLE|unix.FALLOC_FL_KEEP_SIZE, 8<<10, 8<<10), "punch")
			pstWriteAt(t, j("mixed"), 100<<10, []byte("data among reserved pages"))
			names := []string{"keep", "zero", "alloc", "mixed"}
			type state struct {
				size, blocks int64
				ext          [][2]int64
				sum          [32]byte
			}
			look := func() map[string]state {
				t.Helper()
				m := map[string]state{}
				for _, n := range names {
					var st unix.Stat_t
					noErr(t, unix.Stat(j(n), &st), "stat %s", n)
					m[n] = state{st.Size, st.Blocks, pstExtents(t, j(n), st.Size), sha256.Sum256(readFile(t, j(n)))}
				}
				return m
			}
			want := look()
			if got := want["keep"].blocks; got != 2048 {
				t.Fatalf("keep: %d blocks after fallocate -k of 1 MiB, want 2048", got)
			}
			if got := want["zero"].blocks; got != 128 {
				t.Fatalf("zero: %d blocks after a zero range of 64 KiB, want 128", got)
			}
			check := func(after string, p *binProc) {
				t.Helper()
				for n, w := range want {
					if g := look()[n]; fmt.Sprint(g) != fmt.Sprint(w) {
						t.Errorf("%s after %s: size %d, %d blocks, data %v, hash %x; want %d, %d, %v, %x",
							n, after, g.size, g.blocks, g.ext, g.sum[:4], w.size, w.blocks, w.ext, w.sum[:4])
					}
				}
				if out := p.output.String(); strings.Contains(out, "holds less") || strings.Contains(out, "missing") {
					t.Errorf("the mount after %s warns about the reserved pages:\n%s", after, out)
				}
			}

			pstUnmount(t, p, mnt)
			p = pstMount(t, store, mnt, false, arg)
			check("a clean unmount", p)
			pstKill(t, p, mnt)
			p = pstMount(t, store, mnt, false, arg)
			check("a SIGKILL", p)
			pstKill(t, p, mnt)
			p = pstMount(t, store, mnt, false, arg)
			check("a second SIGKILL", p)

			// The store's filesystem full: writes into the reserved
			// pages need no room (the journal keeps some ahead).
			filler := pstFillFS(t, storeFS)
			fd, err := unix.Open(j("keep"), unix.O_WRONLY|unix.O_CLOEXEC, 0)
			noErr(t, err, "open keep")
			data := modelBytes(4, 512<<10)
			n, err := unix.Pwrite(fd, data, 256<<10)
			noErr(t, err, "a write into reserved pages of a full store (server output:\n%s)", p.output.String())
			if n != len(data) {
				t.Errorf("a write into reserved pages of a full store wrote %d of %d bytes", n, len(data))
			}
			noErr(t, unix.Fsync(fd), "fsync")
			unix.Close(fd)
			got := readFile(t, j("keep"))
			if !bytes.Equal(got[256<<10:], data) {
				t.Error("keep: the write into reserved pages reads back wrong")
			}
			noErr(t, os.Remove(filler), "remove filler")
			pstUnmount(t, p, mnt)
			pstRequireFsckClean(t, store)
		})
	}
}
