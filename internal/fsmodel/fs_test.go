package fsmodel

import (
	"bytes"
	"testing"

	"golang.org/x/sys/unix"
)

// TestNamespace runs the namespace operations through their errnos.
func TestNamespace(t *testing.T) {
	m := New(0o755, 0o022)
	must := func(what string, e unix.Errno) {
		t.Helper()
		if e != 0 {
			t.Fatalf("%s: %v", what, e)
		}
	}
	want := func(what string, got, e unix.Errno) {
		t.Helper()
		if got != e {
			t.Errorf("%s: %v, want %v", what, got, e)
		}
	}
	_, e := m.Mkdir("d", 0o777)
	must("mkdir d", e)
	f, e := m.Create("d/f", 0o666)
	must("create d/f", e)
	if f.Perm != 0o644 || f.Nlink != 1 {
		t.Errorf("d/f: perm %o nlink %d, want 644 1", f.Perm, f.Nlink)
	}
	_, e = m.Create("d/f", 0o600)
	want("create d/f again", e, unix.EEXIST)
	_, e = m.Create("d/f/x", 0o600)
	want("create under a file", e, unix.ENOTDIR)
	_, e = m.Create("nx/x", 0o600)
	want("create under nothing", e, unix.ENOENT)
	must("link", m.Link("d/f", "g"))
	want("link a directory", m.Link("d", "d2"), unix.EPERM)
	if f.Nlink != 2 || m.Lookup("g") != f {
		t.Errorf("after link: nlink %d, g is f: %v", f.Nlink, m.Lookup("g") == f)
	}
	want("rename onto a link of itself", m.Rename("g", "d/f", 0), 0)
	if m.Lookup("g") != f || f.Nlink != 2 {
		t.Errorf("a rename between links of one inode changed something")
	}
	want("rmdir non-empty", m.Rmdir("d"), unix.ENOTEMPTY)
	want("rename a directory into itself", m.Rename("d", "d/e", 0), unix.EINVAL)
	_, e = m.Mkdir("e", 0o755)
	must("mkdir e", e)
	want("rename onto a non-empty directory", m.Rename("e", "d", 0), unix.ENOTEMPTY)
	want("rename a file onto a directory", m.Rename("g", "e", 0), unix.EISDIR)
	want("noreplace", m.Rename("g", "d/f", unix.RENAME_NOREPLACE), unix.EEXIST)
	must("exchange", m.Rename("e", "d", unix.RENAME_EXCHANGE))
	if m.Lookup("e/f") != f || m.Lookup("d").Type != Dir || m.Lookup("e").Parent != m.Root() {
		t.Errorf("exchange did not swap d and e")
	}
	must("unlink", m.Unlink("e/f"))
	if f.Nlink != 1 {
		t.Errorf("after unlink: nlink %d, want 1", f.Nlink)
	}
	_, e = m.Symlink("/nowhere", "s")
	must("symlink", e)
	want("chmod through a dangling symlink", m.Chmod("s", 0o700), unix.ENOENT)
	want("setxattr on a symlink", m.Setxattr("s", "user.a", []byte("1"), 0), unix.EPERM)
	_, e = m.Getxattr("s", "user.a")
	want("getxattr on a symlink", e, unix.ENODATA)
	want("xattr replace of nothing", m.Setxattr("g", "user.a", []byte("1"), unix.XATTR_REPLACE), unix.ENODATA)
	must("setxattr", m.Setxattr("g", "user.a", []byte("1"), unix.XATTR_CREATE))
	want("xattr create again", m.Setxattr("g", "user.a", []byte("2"), unix.XATTR_CREATE), unix.EEXIST)
	if v, _ := m.Getxattr("g", "user.a"); string(v) != "1" {
		t.Errorf("getxattr: %q, want 1", v)
	}
	if n := m.Root().WantNlink(); n != 4 {
		t.Errorf("root nlink %d, want 4 (d and e)", n)
	}
	var paths []string
	for _, en := range m.Entries() {
		paths = append(paths, en.Path)
	}
	if got := join(paths); got != ",d,e,g,s" {
		t.Errorf("entries %q", got)
	}
}

func join(s []string) string {
	var b bytes.Buffer
	for i, x := range s {
		if i > 0 {
			b.WriteByte(',')
		}
		b.WriteString(x)
	}
	return b.String()
}

// TestData follows a file's pages through writes, fallocate and truncate.
func TestData(t *testing.T) {
	m := New(0o755, 0)
	f, _ := m.Create("f", 0o644)
	f.WriteAt([]byte("abc"), PageSize+1)
	if f.Size != PageSize+4 || f.Pages() != 1 {
		t.Fatalf("size %d pages %d", f.Size, f.Pages())
	}
	if got := f.Read(PageSize, 10); !bytes.Equal(got, []byte("\x00abc")) {
		t.Errorf("read %q", got)
	}
	if e := f.Fallocate(unix.FALLOC_FL_KEEP_SIZE, 0, 3*PageSize); e != 0 {
		t.Fatal(e)
	}
	if f.Pages() != 3 || f.Size != PageSize+4 {
		t.Errorf("after fallocate KEEP_SIZE: pages %d size %d", f.Pages(), f.Size)
	}
	if ext := f.DataExtents(); len(ext) != 1 || ext[0] != [2]int64{PageSize, PageSize + 4} {
		t.Errorf("extents %v", ext)
	}
	if e := f.Fallocate(unix.FALLOC_FL_PUNCH_HOLE|unix.FALLOC_FL_KEEP_SIZE, PageSize+2, 1); e != 0 {
		t.Fatal(e)
	}
	if got := f.Data(); !bytes.Equal(got[PageSize:], []byte("\x00a\x00c")) {
		t.Errorf("after punch: %q", got[PageSize:])
	}
	f.Truncate(PageSize + 2)
	f.Truncate(PageSize + 4)
	if got := f.Data(); !bytes.Equal(got[PageSize:], []byte("\x00a\x00\x00")) || f.Pages() != 2 {
		t.Errorf("after truncate down and up: %q, pages %d", got[PageSize:], f.Pages())
	}
	if e := f.Fallocate(0x40, 0, 1); e != unix.EOPNOTSUPP {
		t.Errorf("fallocate mode 0x40: %v", e)
	}
	if e := f.Truncate(-1); e != unix.EINVAL {
		t.Errorf("truncate -1: %v", e)
	}
}

// TestCloneAmbiguous: a clone keeps links as links and is independent;
// an ambiguous node accepts its data before or after, byte by byte.
func TestCloneAmbiguous(t *testing.T) {
	m := New(0o755, 0)
	m.Mkdir("d", 0o755)
	f, _ := m.Create("d/f", 0o644)
	f.WriteAt([]byte("old!"), 0)
	m.Link("d/f", "g")
	c := m.Clone()
	cf := c.Lookup("d/f")
	if cf == f || c.Lookup("g") != cf || c.Lookup("d").Parent != c.Root() {
		t.Fatal("the clone shares nodes with the model, or lost a link")
	}
	cf.MarkAmbiguous()
	cf.WriteAt([]byte("NEW!longer"), 0)
	if string(f.Data()) != "old!" {
		t.Errorf("a change of the clone reached the model: %q", f.Data())
	}
	for _, ok := range []string{"old!", "NEW!longer", "oEd!", "NEW!"} {
		if d := ContentDiff(cf, []byte(ok)); d != "" {
			t.Errorf("%q: %s", ok, d)
		}
	}
	for _, bad := range []string{"xld!", "old!l", "NEW!longe"} {
		if d := ContentDiff(cf, []byte(bad)); d == "" {
			t.Errorf("%q accepted", bad)
		}
	}
	cf.Settle([]byte("oEd!"))
	if cf.Ambiguous() || string(cf.Data()) != "oEd!" {
		t.Errorf("settle: %v %q", cf.Ambiguous(), cf.Data())
	}
}

// TestWriteNothing: a write of no bytes past EOF does not grow the file.
func TestWriteNothing(t *testing.T) {
	m := New(0o755, 0)
	f, _ := m.Create("f", 0o644)
	f.WriteAt(nil, 100)
	if f.Size != 0 || f.Pages() != 0 {
		t.Errorf("size %d pages %d, want 0 0", f.Size, f.Pages())
	}
}
