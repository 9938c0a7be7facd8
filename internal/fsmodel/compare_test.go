package fsmodel

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

// build makes a small tree on disk and the model of it.
func build(t *testing.T) (string, *FS) {
	t.Helper()
	dir := t.TempDir()
	um := unix.Umask(0)
	unix.Umask(um)
	var st unix.Stat_t
	if err := unix.Lstat(dir, &st); err != nil {
		t.Fatal(err)
	}
	m := New(st.Mode&0o7777, uint32(um))
	m.Root().Uid, m.Root().Gid = st.Uid, st.Gid
	do := func(err error, e unix.Errno) {
		t.Helper()
		if err != nil || e != 0 {
			t.Fatalf("building the tree: %v, model %v", err, e)
		}
	}
	j := func(p string) string { return filepath.Join(dir, p) }
	_, e := m.Mkdir("d", 0o750)
	do(os.Mkdir(j("d"), 0o750), e)
	f, e := m.Create("d/f", 0o640)
	data := Bytes(1, 3*PageSize+5)
	f.WriteAt(data, 0)
	do(os.WriteFile(j("d/f"), data, 0o640), e)
	do(os.Link(j("d/f"), j("g")), m.Link("d/f", "g"))
	_, e = m.Symlink("../nowhere", "d/s")
	do(os.Symlink("../nowhere", j("d/s")), e)
	do(unix.Setxattr(j("d"), "user.k", []byte("v"), 0), m.Setxattr("d", "user.k", []byte("v"), 0))
	for _, n := range []*Node{m.Lookup("d"), f, m.Lookup("d/s")} {
		n.Uid, n.Gid = st.Uid, st.Gid
	}
	return dir, m
}

func diffs(d []Diff) string {
	var s []string
	for _, x := range d {
		s = append(s, x.Class+" "+x.String())
	}
	return strings.Join(s, "\n")
}

// wantDiff checks that d holds a difference of class at path whose
// message says say (and perhaps others: a wrong byte of a file with two
// names shows at both).
func wantDiff(t *testing.T, d []Diff, class, path, say string) {
	t.Helper()
	for _, x := range d {
		if x.Class == class && x.Path == path && strings.Contains(x.Msg, say) {
			return
		}
	}
	t.Errorf("want a %s difference at %s saying %q, got:\n%s", class, path, say, diffs(d))
}

var all = &Options{Perm: true, Owner: true}

func TestCompareSame(t *testing.T) {
	dir, m := build(t)
	if d := Compare(dir, m, all); len(d) > 0 {
		t.Fatalf("a tree and its model differ:\n%s", diffs(d))
	}
	if d := Compare(dir, m, &Options{SampleAbove: PageSize, Limit: 1}); len(d) > 0 {
		t.Fatalf("read in samples, a tree and its model differ:\n%s", diffs(d))
	}
}

func TestCompareDiffs(t *testing.T) {
	for _, c := range []struct {
		name, class, path, say string
		change                 func(dir string, m *FS) error
	}{
		{"missing", "names", "d/s", "missing (want a symlink)", func(dir string, m *FS) error {
			return os.Remove(filepath.Join(dir, "d/s"))
		}},
		{"unexpected", "names", "x", "unexpected file", func(dir string, m *FS) error {
			return os.WriteFile(filepath.Join(dir, "x"), nil, 0o644)
		}},
		{"data", "content", "g", "at offset 4096", func(dir string, m *FS) error {
			m.Lookup("g").WriteAt([]byte{'!'}, PageSize)
			return nil
		}},
		{"size", "size", "g", "st_size 12293, model 12294", func(dir string, m *FS) error {
			m.Lookup("g").WriteAt([]byte{'!'}, 3*PageSize+5)
			return nil
		}},
		{"perm", "mode", "d", "permissions 0750, model 0700", func(dir string, m *FS) error {
			return errno(m.Chmod("d", 0o700))
		}},
		{"owner", "owner", "d/s", "model 4242:4242", func(dir string, m *FS) error {
			return errno(m.Lchown("d/s", 4242, 4242))
		}},
		{"xattr", "xattr", "d", `user.k is "w" (1 bytes), model "v"`, func(dir string, m *FS) error {
			return unix.Setxattr(filepath.Join(dir, "d"), "user.k", []byte("w"), 0)
		}},
		{"target", "readlink", "d/s", `model "../elsewhere"`, func(dir string, m *FS) error {
			m.Lookup("d/s").Target = "../elsewhere"
			m.Lookup("d/s").Size = int64(len("../elsewhere"))
			return nil
		}},
		{"nlink", "nlink", "g", "st_nlink 3, model 2", func(dir string, m *FS) error {
			return os.Link(filepath.Join(dir, "g"), filepath.Join(dir, "hidden-link-outside"))
		}},
		{"type", "type", "g", "want d--------- (a directory)", func(dir string, m *FS) error {
			if e := m.Unlink("g"); e != 0 {
				return e
			}
			_, e := m.Mkdir("g", 0o755)
			return errno(e)
		}},
		{"mtime", "mtime", "g", "model (set by utimensat) 1000000000.000000005", func(dir string, m *FS) error {
			return errno(m.SetMtime("g", unix.Timespec{Sec: 1e9, Nsec: 5}))
		}},
	} {
		t.Run(c.name, func(t *testing.T) {
			dir, m := build(t)
			if err := c.change(dir, m); err != nil {
				t.Fatal(err)
			}
			o := *all
			if c.name == "nlink" {
				o.Extra = func(p string) bool { return p == "hidden-link-outside" }
			}
			wantDiff(t, Compare(dir, m, &o), c.class, c.path, c.say)
		})
	}
}

func errno(e unix.Errno) error {
	if e != 0 {
		return e
	}
	return nil
}

// TestCompareOptions: MayLack, Extra, NlinkPresent, Content, Limit.
func TestCompareOptions(t *testing.T) {
	dir, m := build(t)
	if err := os.RemoveAll(filepath.Join(dir, "d")); err != nil {
		t.Fatal(err)
	}
	os.Mkdir(filepath.Join(dir, "lost+found"), 0o700)
	o := &Options{
		MayLack:      func(p string) bool { return p == "d" || p == "d/f" },
		Extra:        func(p string) bool { return p == "lost+found" },
		NlinkPresent: true,
	}
	// d/s may not be lacking: its directory's absence is no excuse.
	d := Compare(dir, m, o)
	wantDiff(t, d, "names", "d/s", "the directory holding it is missing too")
	if len(d) != 1 {
		t.Errorf("more than the one difference:\n%s", diffs(d))
	}
	o.MayLack = func(p string) bool { return strings.HasPrefix(p, "d") }
	if d := Compare(dir, m, o); len(d) > 0 {
		t.Errorf("with d lost and allowed to be, and g's other name gone:\n%s", diffs(d))
	}
	// Content judges the data, and the size with it.
	if err := os.Truncate(filepath.Join(dir, "g"), 0); err != nil {
		t.Fatal(err)
	}
	o.Content = func(p string, n *Node, got []byte) string {
		if len(got) != 0 {
			return "not empty"
		}
		return ""
	}
	if d := Compare(dir, m, o); len(d) > 0 {
		t.Errorf("Content said an empty file is fine, yet:\n%s", diffs(d))
	}
	o.Content, o.Limit = nil, 1
	if d := Compare(dir, m, o); len(d) != 1 || d[0].Class != "size" {
		t.Errorf("Limit 1 with the data lost: want the size diff only, got:\n%s", diffs(d))
	}
}

// TestCompareFD compares a file without a name through its descriptor,
// and an ambiguous file.
func TestCompareFD(t *testing.T) {
	dir, m := build(t)
	f := m.Lookup("g")
	fd, err := unix.Open(filepath.Join(dir, "g"), unix.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(fd)
	for _, p := range []string{"g", "d/f"} {
		os.Remove(filepath.Join(dir, p))
		m.Unlink(p)
	}
	if d := CompareFD(fd, "<fd>", f, all); len(d) > 0 {
		t.Errorf("unlinked: %s", diffs(d))
	}
	f.MarkAmbiguous()
	f.WriteAt([]byte("new"), 0)
	f.WriteAt([]byte("tail"), f.Size)
	if _, err := unix.Pwrite(fd, []byte("n"), 0); err != nil {
		t.Fatal(err)
	}
	if d := CompareFD(fd, "<fd>", f, all); len(d) > 0 {
		t.Errorf("ambiguous, a byte of the new data: %s", diffs(d))
	}
	if _, err := unix.Pwrite(fd, []byte("?"), 1); err != nil {
		t.Fatal(err)
	}
	d := CompareFD(fd, "<fd>", f, all)
	wantDiff(t, d, "content", "<fd>", "neither as before the ambiguous op nor as after it, the first at 1")
	if len(d) != 1 {
		t.Errorf("more than the one difference:\n%s", diffs(d))
	}
}

// TestAmbiguousSize: a write in doubt may have landed up to a page
// boundary between the old and the new size, and nowhere else.
func TestAmbiguousSize(t *testing.T) {
	for _, c := range []struct {
		size, old, new int
		ok             bool
	}{
		{5348, 5348, 215006, true},
		{215006, 5348, 215006, true},
		{212992, 5348, 215006, true},
		{212993, 5348, 215006, false},
		{4096, 5348, 215006, false},
		{219136, 5348, 215006, false},
		{8192, 10000, 5000, false}, // a truncate is one request
	} {
		if got := ambiguousSize(c.size, c.old, c.new); got != c.ok {
			t.Errorf("ambiguousSize(%d, %d, %d) = %v, want %v", c.size, c.old, c.new, got, c.ok)
		}
	}
}
