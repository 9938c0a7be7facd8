package tests

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// TestStoreTmpfsFull: when the tmpfs under the store fills up (no size=
// set, so only the host's space limits the mount), a write gets ENOSPC,
// the server stays up, data written before is intact, and freeing space
// makes writing work again. A SIGBUS here would kill the test process,
// which serves the mount.
func TestStoreTmpfsFull(t *testing.T) {
	if tmpfsMode {
		t.Skip("tests the store under mmapfs")
	}
	if os.Geteuid() != 0 {
		t.Skip("needs root to mount a small tmpfs for the store")
	}
	t.Parallel()
	storeFS := t.TempDir()
	const tmpfsSize = 2 << 20
	noErr(t, unix.Mount("tmpfs", storeFS, "tmpfs", 0, "size=2m"), "mount the store's tmpfs")
	t.Cleanup(func() { unix.Unmount(storeFS, unix.MNT_DETACH) }) // after the mount's cleanup
	mnt, _, _ := mountFS(t, withStoreIn(storeFS))

	keep := bytes.Repeat([]byte("kept data "), 50<<10/10)
	noErr(t, os.WriteFile(filepath.Join(mnt, "keep"), keep, 0o644), "write a first file")

	f, err := os.Create(filepath.Join(mnt, "big"))
	noErr(t, err, "create")
	chunk := bytes.Repeat([]byte{0xa5}, 64<<10)
	var written int64
	var werr error
	for written < 2*tmpfsSize {
		n, err := f.Write(chunk)
		written += int64(n)
		if err != nil {
			werr = err
			break
		}
	}
	f.Close()
	wantErrno(t, werr, unix.ENOSPC, "writing past the size of the store's tmpfs")
	if written > tmpfsSize {
		t.Errorf("wrote %d bytes to a store on a %d-byte tmpfs", written, tmpfsSize)
	}

	// The server is up, and nothing written before is lost.
	got, err := os.ReadFile(filepath.Join(mnt, "keep"))
	noErr(t, err, "read back the first file")
	if !bytes.Equal(got, keep) {
		t.Errorf("first file changed after the store filled up")
	}
	got, err = os.ReadFile(filepath.Join(mnt, "big"))
	noErr(t, err, "read back the partial file")
	if int64(len(got)) != written || !bytes.Equal(got, bytes.Repeat([]byte{0xa5}, len(got))) {
		t.Errorf("partial file: %d bytes read, %d acknowledged, content intact %v",
			len(got), written, bytes.Equal(got, bytes.Repeat([]byte{0xa5}, len(got))))
	}

	// Freeing space makes room again. The kernel sends RELEASE after
	// close(2) has returned, so the server may still see "big" open when
	// the unlink arrives and free it a moment later: wait for that.
	noErr(t, os.Remove(filepath.Join(mnt, "big")), "remove")
	var again error
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		again = os.WriteFile(filepath.Join(mnt, "again"), chunk, 0o644)
		if !errors.Is(again, unix.ENOSPC) || time.Now().After(deadline) {
			break
		}
	}
	noErr(t, again, "write after freeing space")
}
