package dirs

import (
	"os"
	"path/filepath"
	"slices"
	"testing"
)

func TestNames(t *testing.T) {
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
	names, err := Names(link)
	if err != nil || !slices.Equal(names, []string{"0000000000000001", "a", "b"}) {
		t.Errorf("Names = %q, %v", names, err)
	}
	if _, err := Names(filepath.Join(dir, "missing")); !os.IsNotExist(err) {
		t.Errorf("Names of a missing directory: %v", err)
	}
}
