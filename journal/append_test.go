package journal

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"syscall"
	"testing"

	"golang.org/x/sys/unix"
)

func TestBatchPool(t *testing.T) {
	m, _, _ := openT(t, newStoreDir(t), Options{})
	defer closeT(t, m)
	b := m.Batch()
	if b.Len() != 0 || b.pool != &m.batches {
		t.Fatalf("Batch: %d records, pool %p", b.Len(), b.pool)
	}
	b.Inode(&Inode{Ino: 1, Mode: syscall.S_IFDIR, Nlink: 2})
	commitT(t, m, b)
	// Back in the pool and handed out again, empty. (A pool may drop
	// what it holds; under -race it does so at random.)
	for range 100 {
		b2 := m.Batch()
		if b2.Len() != 0 || b2.Bytes() != 0 {
			t.Fatalf("a batch from the pool holds %d records", b2.Len())
		}
		b2.Entry(1, "x", 0)
		commitT(t, m, b2)
	}
	// A batch of the caller's own is not taken.
	var own Batch
	own.Entry(1, "y", 0)
	commitT(t, m, &own)
	if own.pool != nil || own.Len() != 1 {
		t.Errorf("Commit changed a batch that is not from the pool: pool %p, %d records", own.pool, own.Len())
	}
	// An empty batch from the pool goes back too.
	if err := m.Commit(m.Batch()); err != nil {
		t.Fatal(err)
	}
	// A huge one does not.
	big := m.Batch()
	big.Xattr(1, "user.big", make([]byte, 2*maxPooledBatch))
	m.recycle(big)
	for range 10 {
		if m.Batch() == big {
			t.Fatal("a batch past maxPooledBatch went back into the pool")
		}
	}
}

func TestErrNoSpace(t *testing.T) {
	if !errors.Is(ErrNoSpace, unix.ENOSPC) || !errors.Is(ErrNoSpace, unix.EDQUOT) || errors.Is(ErrNoSpace, unix.EIO) {
		t.Error("ErrNoSpace does not match ENOSPC and EDQUOT alone")
	}
	for _, errno := range []unix.Errno{unix.ENOSPC, unix.EDQUOT} {
		err := wrapNoSpace(fmt.Errorf("journal: %w", errno))
		if !errors.Is(err, ErrNoSpace) || !errors.Is(err, errno) || err.Error() != "journal: "+errno.Error() {
			t.Errorf("%v: wrapped as %q; want ErrNoSpace, the errno and the same text", errno, err)
		}
	}
	if err := wrapNoSpace(fmt.Errorf("journal: %w", unix.EIO)); errors.Is(err, ErrNoSpace) {
		t.Error("ErrNoSpace matches EIO")
	}
	if wrapNoSpace(nil) != nil {
		t.Error("wrapNoSpace(nil) is not nil")
	}

	// A journal on a filesystem that fills.
	dir, meta := smallMetaDir(t, "2m")
	m, _, _ := openT(t, meta, Options{})
	defer m.Close()
	var err error
	for i := 0; i < 1000 && err == nil; i++ {
		b := m.Batch()
		b.Xattr(1, "user.fill", make([]byte, 60<<10))
		err = m.Commit(b)
	}
	if !errors.Is(err, ErrNoSpace) || !errors.Is(err, unix.ENOSPC) {
		t.Fatalf("Commit on a full filesystem: %v; want ErrNoSpace", err)
	}
	// The filesystem is full: a snapshot cannot be written either.
	if err := os.WriteFile(filepath.Join(dir, "fill"), make([]byte, 2<<20), 0o600); err == nil {
		t.Log("the filesystem had room left")
	}
	if err := m.Rewrite(NewState()); err != nil && !errors.Is(err, ErrNoSpace) {
		t.Errorf("Rewrite on a full filesystem: %v; want ErrNoSpace", err)
	}
}

func TestSnapshotChunks(t *testing.T) {
	dir := newStoreDir(t)
	m, _, _ := openT(t, dir, Options{})
	tr := newTree(3)
	commitT(t, m, tr.root(t))
	for range 300 {
		commitT(t, m, tr.step(t))
	}
	sn, err := m.BeginCompact()
	if err != nil || sn == nil {
		t.Fatalf("BeginCompact: %v, %v", sn, err)
	}
	sn.chunk = 512
	sn.AddState(tr.st)
	if sn.Inodes() != len(tr.st.Inodes) {
		t.Errorf("Inodes = %d, want %d", sn.Inodes(), len(tr.st.Inodes))
	}
	if err := sn.Finish(); err != nil {
		t.Fatal(err)
	}
	if sn.seq < 10 {
		t.Errorf("%d frames: the snapshot was not cut into chunks", sn.seq-1)
	}
	closeT(t, m)
	m, st, rep := openT(t, dir, Options{})
	defer closeT(t, m)
	checkState(t, st, tr.st)
	if len(rep.Damage) != 0 || rep.Generation != 2 {
		t.Errorf("report %+v", rep)
	}
}
