package main

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

func TestOpenMemStore(t *testing.T) {
	memdir := t.TempDir()
	ms, _, err := openMemStore(memdir, 1<<20, false, zap.NewNop())
	if err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(ms.Dir)
	if err != nil || !fi.IsDir() || fi.Mode().Perm() != 0o700 || !isStoreName(filepath.Base(ms.Dir)) {
		t.Fatalf("store dir %s: %v %v", ms.Dir, fi.Mode(), err)
	}
	// Held by this server: another one starting must leave it alone.
	removeAbandonedStores(memdir, zap.NewNop())
	if _, err := os.Stat(ms.Dir); err != nil {
		t.Fatalf("live store removed: %v", err)
	}
	dir := ms.Dir
	ms.Close()
	if _, err := os.Stat(dir); !os.IsNotExist(err) {
		t.Errorf("store %s not removed at close (%v)", dir, err)
	}
	if entries, _ := os.ReadDir(memdir); len(entries) != 0 {
		t.Errorf("memdir not empty: %v", entries)
	}
}
