package store

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"mmapfs/journal"
	"mmapfs/mapstore"
)

func TestCheck(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "store")
	s := openT(t, dir)
	commitT(t, s, func(b *journal.Batch) {
		b.Inode(&journal.Inode{Ino: 1, Mode: syscall.S_IFDIR | 0o755, Nlink: 3})
		b.Inode(&journal.Inode{Ino: 2, Mode: syscall.S_IFDIR | 0o755, Nlink: 2})
		b.Entry(1, "d", 2)
		b.Inode(&journal.Inode{Ino: 3, Mode: syscall.S_IFLNK | 0o777, Target: []byte("x"), Nlink: 1})
		b.Entry(2, "l", 3)
	})
	closeT(t, s)

	var labels []string
	r, err := Check(dir, CheckOptions{Progress: func(label string, done, total int) {
		if done == total {
			labels = append(labels, label)
		}
	}})
	if err != nil {
		t.Fatal(err)
	}
	if len(r.Problems) != 0 || len(r.Warnings) != 0 || r.Dirs != 2 || r.Symlinks != 1 || r.Dir != dir || r.Unrepaired() != 0 {
		t.Errorf("clean store: %+v", r)
	}
	if len(labels) != 1 || labels[0] != "checking file data" {
		t.Errorf("progress ended for %q", labels)
	}

	// A store file no file owns, a file mmapfs did not make, and a link
	// count that is wrong.
	stray := filepath.Join(dir, BlobsDir, mapstore.FileName(0xa7))
	os.WriteFile(stray, []byte("x"), 0o600)
	os.WriteFile(filepath.Join(dir, "notes"), nil, 0o600)
	s = openT(t, dir) // recovery frees the stray: put it back after
	commitT(t, s, func(b *journal.Batch) {
		b.Inode(&journal.Inode{Ino: 3, Mode: syscall.S_IFLNK | 0o777, Target: []byte("x"), Nlink: 5})
	})
	closeT(t, s)
	os.WriteFile(stray, []byte("x"), 0o600)

	r, err = Check(dir, CheckOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if len(r.Problems) != 2 || r.Unrepaired() != 2 || len(r.Warnings) != 1 || !strings.Contains(r.Warnings[0], "notes") {
		t.Fatalf("damaged store: problems %+v, warnings %q", r.Problems, r.Warnings)
	}
	if _, err := os.Stat(stray); err != nil {
		t.Errorf("a check without repair changed the store: %v", err)
	}
	r, err = Check(dir, CheckOptions{Repair: true})
	if err != nil || r.RewriteErr != nil || len(r.Problems) != 2 || r.Unrepaired() != 0 {
		t.Fatalf("repair: %v, %+v", err, r)
	}
	if _, err := os.Stat(stray); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("the stray store file is still there: %v", err)
	}
	if r, err := Check(dir, CheckOptions{}); err != nil || len(r.Problems) != 0 {
		t.Errorf("after the repair: %v, %+v", err, r)
	}
	if _, err := Check(t.TempDir(), CheckOptions{}); err == nil || !strings.Contains(err.Error(), "not an mmapfs store (no meta/)") {
		t.Errorf("Check of an empty directory: %v", err)
	}
}
