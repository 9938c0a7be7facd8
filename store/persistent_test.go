package store

import (
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"

	"mmapfs/journal"
	"mmapfs/mapstore"
)

// openT opens the persistent store in dir, or fails the test.
func openT(t *testing.T, dir string) *Store {
	t.Helper()
	s, err := Open(dir, Options{})
	if err != nil {
		t.Fatalf("Open(%s): %v", dir, err)
	}
	return s
}

// closeT closes s, or fails the test.
func closeT(t *testing.T, s *Store) {
	t.Helper()
	if err := s.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
}

// commitT commits the records fn adds to s's journal.
func commitT(t *testing.T, s *Store, fn func(b *journal.Batch)) {
	t.Helper()
	var b journal.Batch
	fn(&b)
	if err := s.Meta().Commit(&b); err != nil {
		t.Fatalf("Commit: %v", err)
	}
}

func TestOpenNew(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "store")
	s := openT(t, dir)
	if !s.Persistent() || !s.Report().Fresh || s.Dir() != dir || s.FilesDir() != filepath.Join(dir, BlobsDir) {
		t.Errorf("new store: persistent %v, report %+v, dir %s, files in %s", s.Persistent(), s.Report(), s.Dir(), s.FilesDir())
	}
	tree := s.TakeTree()
	if tree == nil || len(tree.State.Inodes) != 0 || s.TakeTree() != nil {
		t.Errorf("TakeTree of a new store: %+v, then %+v", tree, s.TakeTree())
	}
	if fi, err := os.Stat(dir); err != nil || fi.Mode().Perm() != 0o700 {
		t.Errorf("store directory: %v, %v", fi.Mode(), err)
	}
	if _, ok := s.Space(); !ok {
		t.Error("Space of a persistent store reported nothing: want its filesystem's figures")
	}
	commitT(t, s, func(b *journal.Batch) { b.Inode(&journal.Inode{Ino: 1, Mode: syscall.S_IFDIR | 0o755, Nlink: 2}) })
	closeT(t, s)
	s = openT(t, dir)
	defer closeT(t, s)
	if s.Report().Fresh || s.Report().Frames != 1 {
		t.Errorf("reopened: report %+v", s.Report())
	}
	if tree := s.TakeTree(); tree.State.Inodes[1] == nil || tree.Nlink[1] != 2 {
		t.Errorf("reopened: tree %+v", tree)
	}
}

func TestLock(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "store")
	s := openT(t, dir)
	pid := strconv.Itoa(os.Getpid())
	if data, err := os.ReadFile(filepath.Join(dir, LockName)); err != nil || strings.TrimSpace(string(data)) != pid {
		t.Errorf("lock file holds %q, %v; want the pid %s", data, err, pid)
	}
	for _, open := range []func() error{
		func() error { s2, err := Open(dir, Options{}); _ = s2; return err },
		func() error { _, _, err := Load(dir, true); return err },
		func() error { _, err := Check(dir, CheckOptions{}); return err },
	} {
		err := open()
		if !errors.Is(err, ErrInUse) {
			t.Fatalf("second open = %v; want ErrInUse", err)
		}
		if !strings.Contains(err.Error(), "is in use by process "+pid) || !strings.Contains(err.Error(), dir) {
			t.Errorf("the error does not name the pid %s and the store: %v", pid, err)
		}
	}
	// The failed opens let the first one keep its lock and journal.
	commitT(t, s, func(b *journal.Batch) { b.Inode(&journal.Inode{Ino: 1, Mode: syscall.S_IFDIR, Nlink: 2}) })
	closeT(t, s)
	s = openT(t, dir)
	closeT(t, s)

	// Another holder that wrote no pid.
	s = openT(t, dir)
	defer closeT(t, s)
	if err := os.Truncate(filepath.Join(dir, LockName), 0); err != nil {
		t.Fatal(err)
	}
	if _, err := Open(dir, Options{}); !errors.Is(err, ErrInUse) || !strings.Contains(err.Error(), "another process") {
		t.Fatalf("Open = %v", err)
	}
}

func TestNotAStore(t *testing.T) {
	t.Run("foreign files", func(t *testing.T) {
		dir := t.TempDir()
		os.WriteFile(filepath.Join(dir, "notes.txt"), []byte("mine"), 0o644)
		_, err := Open(dir, Options{})
		if err == nil || !strings.Contains(err.Error(), "not an mmapfs store") || !strings.Contains(err.Error(), "notes.txt") {
			t.Fatalf("Open = %v", err)
		}
		if names, _ := os.ReadDir(dir); len(names) != 1 {
			t.Errorf("Open of a foreign directory made files: %v", names)
		}
		if _, _, err := Load(dir, false); err == nil || !strings.Contains(err.Error(), "not an mmapfs store") {
			t.Errorf("Load = %v", err)
		}
	})
	t.Run("empty with blobs and lost+found", func(t *testing.T) {
		dir := t.TempDir()
		os.Mkdir(filepath.Join(dir, BlobsDir), 0o700)
		os.Mkdir(filepath.Join(dir, "lost+found"), 0o700)
		s := openT(t, dir)
		if !s.Report().Fresh {
			t.Errorf("report %+v", s.Report())
		}
		closeT(t, s)
	})
	t.Run("empty read-only", func(t *testing.T) {
		if _, _, err := Load(t.TempDir(), false); err == nil || !strings.Contains(err.Error(), "not an mmapfs store") {
			t.Errorf("Load = %v", err)
		}
	})
	t.Run("missing read-only", func(t *testing.T) {
		dir := filepath.Join(t.TempDir(), "store")
		if _, _, err := Load(dir, false); err == nil {
			t.Error("Load of a missing store succeeded")
		}
		if _, err := os.Stat(dir); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("Load made the store: %v", err)
		}
	})
	t.Run("a file", func(t *testing.T) {
		file := filepath.Join(t.TempDir(), "file")
		os.WriteFile(file, nil, 0o600)
		if _, err := Open(file, Options{}); err == nil || !strings.Contains(err.Error(), "not a directory") {
			t.Errorf("Open = %v", err)
		}
	})
}

func TestDamagedSaysFsck(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "store")
	s := openT(t, dir)
	commitT(t, s, func(b *journal.Batch) { b.Inode(&journal.Inode{Ino: 1, Mode: syscall.S_IFDIR, Nlink: 2}) })
	closeT(t, s)
	// Only a later journal: the snapshot before it is missing.
	j := filepath.Join(dir, MetaDir, "journal-0000000000000001")
	if err := os.Rename(j, filepath.Join(dir, MetaDir, "journal-0000000000000002")); err != nil {
		t.Fatal(err)
	}
	_, err := Open(dir, Options{})
	if !errors.Is(err, journal.ErrDamaged) || !strings.Contains(err.Error(), "run `mmapfs fsck --store "+dir+" --repair`") ||
		!strings.HasPrefix(err.Error(), "store "+dir+": ") {
		t.Fatalf("Open = %v; want ErrDamaged naming the store and fsck --repair", err)
	}
	st, rep, err := Load(dir, true)
	if err != nil || len(rep.Damage) == 0 || st.Inodes[1] == nil {
		t.Errorf("Load with salvage: %v, %+v", err, rep)
	}
}

func TestRecoverTree(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "store")
	s := openT(t, dir)
	// A root, a file with data, a file unlinked while open (no name),
	// and a store file no inode names.
	named, err := s.Blobs().Create()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := named.WriteAt([]byte("data"), 0); err != nil {
		t.Fatal(err)
	}
	orphan, _ := s.Blobs().Create()
	orphan.WriteAt([]byte("gone"), 0)
	stray, _ := s.Blobs().Create()
	stray.WriteAt([]byte("stray"), 0)
	commitT(t, s, func(b *journal.Batch) {
		b.Inode(&journal.Inode{Ino: 1, Mode: syscall.S_IFDIR | 0o755, Nlink: 2})
		b.Inode(&journal.Inode{Ino: 2, Mode: syscall.S_IFREG | 0o644, Size: 4, Blob: named.ID(), Nlink: 1})
		b.Entry(1, "f", 2)
		b.Inode(&journal.Inode{Ino: 3, Mode: syscall.S_IFREG | 0o644, Size: 4, Blob: orphan.ID(), Nlink: 0})
		b.Next(4, stray.ID()+1)
	})
	// A crash: nothing is closed.
	ids := []uint64{named.ID(), orphan.ID(), stray.ID()}
	s.Blobs().Close()
	s.Meta().Close()
	s.unlock()

	s = openT(t, dir)
	defer closeT(t, s)
	tree := s.TakeTree()
	if tree.State.Inodes[3] != nil || tree.State.Inodes[2] == nil || tree.Nlink[2] != 1 {
		t.Errorf("recovered tree: inodes %v, nlink %v", tree.State.Inodes, tree.Nlink)
	}
	for _, id := range ids {
		if !tree.Files[id] {
			t.Errorf("Files lacks store file %d", id)
		}
	}
	for _, id := range ids[1:] {
		if _, err := os.Stat(filepath.Join(s.FilesDir(), mapstore.FileName(id))); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("store file %d of no file was not freed: %v", id, err)
		}
	}
	if b, err := s.Blobs().Create(); err != nil || b.ID() <= stray.ID() {
		t.Errorf("Create after recovery: %v, %v; want an id above %d", b, err, stray.ID())
	}
	// The repairs were committed: a read-only look finds them.
	closeT(t, s)
	st, _, err := Load(dir, false)
	if err != nil || st.Inodes[3] != nil {
		t.Errorf("Load after recovery: %v, orphan %v", err, st.Inodes[3])
	}
	s = openT(t, dir)
}
