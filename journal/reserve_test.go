package journal

import (
	"errors"
	"os"
	"path/filepath"
	"testing"

	"golang.org/x/sys/unix"
)

// smallMetaDir mounts a tmpfs of size (as tmpfs's size= takes it) for
// the test, unmounted at its end, and returns it and a meta directory made
// in it. It skips the test where a tmpfs cannot be mounted.
func smallMetaDir(t *testing.T, size string) (dir, meta string) {
	t.Helper()
	dir = t.TempDir()
	if err := unix.Mount("journal-test", dir, "tmpfs", 0, "size="+size); err != nil {
		t.Skipf("cannot mount a small tmpfs: %v", err)
	}
	t.Cleanup(func() { unix.Unmount(dir, unix.MNT_DETACH) }) // after the test's own defers
	meta = filepath.Join(dir, "meta")
	if err := os.Mkdir(meta, 0o700); err != nil {
		t.Fatal(err)
	}
	return dir, meta
}

// TestReserve: room reserved on a filesystem that then fills is kept for
// the reserved batch: ordinary commits that would take it fail with
// ErrNoSpace, the reserved one succeeds, and a reservation the filesystem
// has no room for fails before anything is done. Compaction waits while
// room is reserved.
func TestReserve(t *testing.T) {
	dir, meta := smallMetaDir(t, "4m")
	m, _, _ := openT(t, meta, Options{})
	defer m.Close()

	reserved := m.Batch()
	if err := m.Reserve(reserved); err != nil {
		t.Fatalf("Reserve with room: %v", err)
	}
	if sn, err := m.BeginCompact(); sn != nil || err != nil {
		t.Fatalf("BeginCompact with room reserved: %v, %v; want to wait", sn, err)
	}
	// Fill the filesystem, then the journal's room ahead.
	if err := os.WriteFile(filepath.Join(dir, "fill"), make([]byte, 4<<20), 0o600); err == nil {
		t.Fatal("the filesystem did not fill")
	}
	var err error
	for i := 0; i < 10000 && err == nil; i++ {
		b := m.Batch()
		b.Xattr(1, "user.fill", make([]byte, 1<<10))
		err = m.Commit(b)
	}
	if !errors.Is(err, ErrNoSpace) {
		t.Fatalf("commits on a full filesystem: %v; want ErrNoSpace", err)
	}
	if err := m.Reserve(m.Batch()); !errors.Is(err, ErrNoSpace) {
		t.Fatalf("Reserve on a full filesystem: %v; want ErrNoSpace", err)
	}
	reserved.Xattr(1, "user.last", make([]byte, ReserveBytes-100))
	if err := m.Commit(reserved); err != nil {
		t.Fatalf("the reserved commit on a full filesystem: %v", err)
	}
	m.mu.Lock()
	left := m.reserved
	m.mu.Unlock()
	if left != 0 {
		t.Errorf("%d bytes still reserved after the reserved commit", left)
	}

	// A reservation given back is free for others.
	if err := os.Remove(filepath.Join(dir, "fill")); err != nil {
		t.Fatal(err)
	}
	b := m.Batch()
	if err := m.Reserve(b); err != nil {
		t.Fatalf("Reserve after room was freed: %v", err)
	}
	m.Unreserve(b)
	if sn, err := m.BeginCompact(); sn == nil || err != nil {
		t.Fatalf("BeginCompact with nothing reserved: %v, %v", sn, err)
	} else {
		sn.Abort()
	}
}
