package store

import (
	"os"
	"path/filepath"
	"testing"

	"go.uber.org/zap"
)

func TestRemoveAbandonedStores(t *testing.T) {
	memdir := t.TempDir()
	mk := func(name string, mode os.FileMode) string {
		dir := filepath.Join(memdir, name)
		if err := os.Mkdir(dir, mode); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(dir, mode); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, "0000000000000001"), []byte("data"), 0o600); err != nil {
			t.Fatal(err)
		}
		return dir
	}
	abandoned := mk("mmapfs-111", 0o700)
	live := mk("mmapfs-222", 0o700)
	foreign := mk("mmapfs-333", 0o755) // not made by mmapfs
	other := mk("mmapfs-notes", 0o700)
	starting := mk(".mmapfs-new-444", 0o700)
	lock, err := lockDir(live)
	if err != nil {
		t.Fatal(err)
	}
	defer lock.Close()

	removeAbandonedStores(memdir, zap.NewNop())

	if _, err := os.Stat(abandoned); !os.IsNotExist(err) {
		t.Errorf("abandoned store %s not removed (%v)", abandoned, err)
	}
	for _, dir := range []string{live, foreign, other, starting} {
		if _, err := os.Stat(dir); err != nil {
			t.Errorf("%s removed: %v", dir, err)
		}
	}
}

func TestOpenMemory(t *testing.T) {
	memdir := t.TempDir()
	s, err := OpenMemory(memdir, Options{SizeLimit: 1 << 20})
	if err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(s.Dir())
	if err != nil || !fi.IsDir() || fi.Mode().Perm() != 0o700 || !isStoreName(filepath.Base(s.Dir())) {
		t.Fatalf("store dir %s: %v %v", s.Dir(), fi.Mode(), err)
	}
	if s.Persistent() || s.Meta() != nil || s.TakeTree() != nil || s.FilesDir() != s.Dir() || s.OwnFS() || s.OwnFSErr() != nil {
		t.Errorf("a memory store: persistent %v, meta %v, files in %s, own fs %v (%v)", s.Persistent(), s.Meta(), s.FilesDir(), s.OwnFS(), s.OwnFSErr())
	}
	if sp, ok := s.Space(); !ok || sp.Blocks != 256 || sp.Bfree != 256 || sp.Bavail != 256 {
		t.Errorf("Space = %+v, %v; want the size limit", sp, ok)
	}
	// Held by this server: another one starting must leave it alone.
	removeAbandonedStores(memdir, zap.NewNop())
	if _, err := os.Stat(s.Dir()); err != nil {
		t.Fatalf("live store removed: %v", err)
	}
	dir := s.Dir()
	if err := s.Close(); err != nil {
		t.Errorf("Close: %v", err)
	}
	if _, err := os.Stat(dir); !os.IsNotExist(err) {
		t.Errorf("store %s not removed at close (%v)", dir, err)
	}
	if entries, _ := os.ReadDir(memdir); len(entries) != 0 {
		t.Errorf("memdir not empty: %v", entries)
	}
}

func TestOpenMemoryNoLimit(t *testing.T) {
	s, err := OpenMemory(t.TempDir(), Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if _, ok := s.Space(); ok {
		t.Error("Space of a memory store with no limit and no tmpfs of its own reported figures")
	}
}

func TestAbandon(t *testing.T) {
	s, err := OpenMemory(t.TempDir(), Options{})
	if err != nil {
		t.Fatal(err)
	}
	dir := s.Dir()
	s.Abandon()
	if _, err := os.Stat(dir); !os.IsNotExist(err) {
		t.Errorf("store %s not removed (%v)", dir, err)
	}
	s.Blobs().Close()
}
