package tests

import (
	"fmt"
	"io/fs"
	"math/rand"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"mmapfs/journal"
	"mmapfs/store"
)

// treeEntry is what a tree walk and a loaded store are compared on.
type treeEntry struct {
	mode   uint32
	size   int64 // regular files
	nlink  uint32
	target string
	xattrs string // sorted name=value list
}

func (e treeEntry) String() string {
	return fmt.Sprintf("mode %07o size %d nlink %d target %q xattrs %s", e.mode, e.size, e.nlink, e.target, e.xattrs)
}

// walkMount lists every name under mnt with its attributes.
func walkMount(t *testing.T, mnt string) map[string]treeEntry {
	t.Helper()
	out := make(map[string]treeEntry)
	err := filepath.WalkDir(mnt, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(mnt, p)
		var st unix.Stat_t
		if err := unix.Lstat(p, &st); err != nil {
			return err
		}
		e := treeEntry{mode: st.Mode, nlink: uint32(st.Nlink)}
		switch st.Mode & unix.S_IFMT {
		case unix.S_IFREG:
			e.size = st.Size
		case unix.S_IFLNK:
			e.target, _ = os.Readlink(p)
		}
		if st.Mode&unix.S_IFMT == unix.S_IFREG || st.Mode&unix.S_IFMT == unix.S_IFDIR {
			buf := make([]byte, 4096)
			n, _ := unix.Llistxattr(p, buf)
			var kv []string
			for _, name := range strings.Split(strings.TrimRight(string(buf[:n]), "\x00"), "\x00") {
				if name == "" {
					continue
				}
				v := make([]byte, 256)
				m, _ := unix.Lgetxattr(p, name, v)
				kv = append(kv, name+"="+string(v[:max(m, 0)]))
			}
			sort.Strings(kv)
			e.xattrs = strings.Join(kv, ",")
		}
		out[rel] = e
		return nil
	})
	if err != nil {
		t.Fatalf("walk %s: %v", mnt, err)
	}
	return out
}

// stateTree lists every name of a loaded store as walkMount does.
func stateTree(st *journal.State) map[string]treeEntry {
	_, nlink := st.Validate()
	out := make(map[string]treeEntry)
	var walk func(ino uint64, rel string)
	walk = func(ino uint64, rel string) {
		in := st.Inodes[ino]
		e := treeEntry{mode: in.Mode, nlink: nlink[ino], target: string(in.Target)}
		if in.IsReg() {
			e.size = in.Size
		}
		var kv []string
		for k, v := range in.Xattr {
			kv = append(kv, k+"="+string(v))
		}
		sort.Strings(kv)
		e.xattrs = strings.Join(kv, ",")
		out[rel] = e
		if in.IsDir() {
			for name, ch := range st.Entries[ino] {
				walk(ch, filepath.Join(rel, name))
			}
		}
	}
	walk(journal.RootIno, ".")
	return out
}

// Compaction runs again and again while four workers change the tree,
// moving whole subtrees between directories among other things. The
// store's metadata, loaded from a copy taken once they stop, is exactly the
// tree the mount shows.
func TestPersistentCompactionUnderLoad(t *testing.T) {
	if tmpfsMode {
		t.Skip("mmapfs only")
	}
	tm := mountTest(t, withPersistentStore(16<<10))
	mnt := tm.dir
	for w := 0; w < 4; w++ {
		if err := os.Mkdir(filepath.Join(mnt, fmt.Sprint("w", w)), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	stop := time.Now().Add(2 * time.Second)
	var wg sync.WaitGroup
	var mu sync.Mutex
	var errs []string
	for w := 0; w < 4; w++ {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			rng := rand.New(rand.NewSource(int64(w)))
			home := filepath.Join(mnt, fmt.Sprint("w", w))
			fail := func(op string, err error) {
				if err != nil && err != syscall.ENOENT && err != syscall.EEXIST && !os.IsNotExist(err) && !os.IsExist(err) {
					mu.Lock()
					errs = append(errs, fmt.Sprintf("worker %d: %s: %v", w, op, err))
					mu.Unlock()
				}
			}
			for i := 0; time.Now().Before(stop); i++ {
				name := filepath.Join(home, fmt.Sprint("f", rng.Intn(20)))
				other := filepath.Join(mnt, fmt.Sprint("w", rng.Intn(4)), fmt.Sprint("d", rng.Intn(4)))
				switch rng.Intn(10) {
				case 0, 1:
					fail("write", os.WriteFile(name, make([]byte, rng.Intn(9000)), 0o644))
				case 2:
					fail("mkdir", os.MkdirAll(filepath.Join(home, fmt.Sprint("d", rng.Intn(4)), "sub"), 0o755))
				case 3:
					// Whole subtrees move between the workers' directories.
					fail("rename dir", unix.Renameat2(unix.AT_FDCWD, filepath.Join(home, fmt.Sprint("d", rng.Intn(4))), unix.AT_FDCWD, other, unix.RENAME_NOREPLACE))
				case 4:
					fail("link", os.Link(name, filepath.Join(home, fmt.Sprint("l", rng.Intn(5)))))
				case 5:
					fail("unlink", os.Remove(filepath.Join(home, fmt.Sprint("l", rng.Intn(5)))))
				case 6:
					fail("setxattr", unix.Setxattr(name, "user.k", []byte(fmt.Sprint(i)), 0))
				case 7:
					fail("chmod", os.Chmod(name, os.FileMode(0o600+rng.Intn(0o100))))
				case 8:
					fail("symlink", os.Symlink(strings.Repeat("x", rng.Intn(200)), filepath.Join(home, fmt.Sprint("s", rng.Intn(3)))))
				case 9:
					fail("rename file", os.Rename(name, filepath.Join(home, fmt.Sprint("f", rng.Intn(20)))))
				}
			}
		}(w)
	}
	wg.Wait()
	for _, e := range errs {
		t.Error(e)
	}
	want := walkMount(t, mnt)

	// A copy of the metadata as it is now, with the mount still up: what
	// a crash at this moment would leave.
	cp := t.TempDir()
	if out, err := exec.Command("cp", "-a", filepath.Join(tm.metaDir, store.MetaDir), cp).CombinedOutput(); err != nil {
		t.Fatalf("copy the metadata: %v: %s", err, out)
	}
	st, rep, err := store.Load(cp, false)
	if err != nil {
		t.Fatalf("load the copy: %v", err)
	}
	if rep.Generation < 3 {
		t.Errorf("generation %d: the journal was compacted fewer than twice", rep.Generation)
	}
	t.Logf("loaded: generation %d, %d inodes, %d journal frames", rep.Generation, len(st.Inodes), rep.Frames)
	if problems, _ := st.Validate(); len(problems) > 0 {
		t.Errorf("%d problems in the loaded tree; the first: %s", len(problems), problems[0])
	}
	got := stateTree(st)
	for p, w := range want {
		g, ok := got[p]
		switch {
		case !ok:
			t.Errorf("%s: missing from the store (%v)", p, w)
		case g != w:
			t.Errorf("%s: store has %v, mount has %v", p, g, w)
		}
	}
	for p := range got {
		if _, ok := want[p]; !ok {
			t.Errorf("%s: in the store, not on the mount", p)
		}
	}
}
