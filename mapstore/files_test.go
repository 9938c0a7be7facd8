package mapstore

import (
	"os"
	"path/filepath"
	"slices"
	"testing"
)

func TestFileNames(t *testing.T) {
	for _, id := range []uint64{1, 0xa7, 1 << 63, ^uint64(0)} {
		name := FileName(id)
		if got, ok := ParseFileName(name); !ok || got != id || len(name) != 16 {
			t.Errorf("FileName(%#x) = %q, parsed back as %#x, %v", id, name, got, ok)
		}
	}
	for _, name := range []string{"", "1", "00000000000000A7", "00000000000000a7.bad", "0000000000000g01", "lock"} {
		if id, ok := ParseFileName(name); ok {
			t.Errorf("ParseFileName(%q) = %#x, true", name, id)
		}
	}
}

func TestReadDirNames(t *testing.T) {
	dir := t.TempDir()
	for _, n := range []string{"b", "a", "0000000000000001"} {
		if err := os.WriteFile(filepath.Join(dir, n), nil, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	link := filepath.Join(t.TempDir(), "link")
	if err := os.Symlink(dir, link); err != nil {
		t.Fatal(err)
	}
	names, err := ReadDirNames(link)
	if err != nil || !slices.Equal(names, []string{"0000000000000001", "a", "b"}) {
		t.Errorf("ReadDirNames = %q, %v", names, err)
	}
	if _, err := ReadDirNames(filepath.Join(dir, "missing")); !os.IsNotExist(err) {
		t.Errorf("ReadDirNames of a missing directory: %v", err)
	}
}
