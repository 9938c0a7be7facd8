package tests

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// TestWindowChurn: many readers and writers over more data than the store
// keeps mapped or open at once (mmapfs runs with tiny caches here), so that
// windows and descriptors are evicted and reopened while reads and writes
// are in flight. Every read must see exactly what was written.
func TestWindowChurn(t *testing.T) {
	t.Parallel()
	mnt, _, st := mountFS(t, withSmallCaches(64<<10, 3, 2), withTimeout(120*time.Second))
	const files, size = 12, 1 << 20
	const workers = 24
	duration := 2 * time.Second
	contents := make([][]byte, files)
	locks := make([]sync.RWMutex, files)
	for i := range contents {
		contents[i] = pattern(size, byte(i))
		writeFile(t, filepath.Join(mnt, fmt.Sprintf("f%d", i)), contents[i])
	}
	deadline := time.Now().Add(duration)
	var wg sync.WaitGroup
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			fds := make([]int, files)
			for i := range fds {
				fd, err := unix.Open(filepath.Join(mnt, fmt.Sprintf("f%d", i)), unix.O_RDWR|unix.O_CLOEXEC, 0)
				if err != nil {
					t.Errorf("open: %v", err)
					return
				}
				fds[i] = fd
				defer closeFd(fd)
			}
			buf := make([]byte, 200<<10)
			for k := 0; time.Now().Before(deadline); k++ {
				i := (w*7 + k*5) % files
				off := int64((w*131071 + k*65521) % (size - len(buf)))
				n := 1 + (w*k*977)%len(buf)
				if k%4 == 0 {
					// Write a new pattern over [off, off+n).
					locks[i].Lock()
					data := pattern(n, byte(w+k))
					_, err := unix.Pwrite(fds[i], data, off)
					if err == nil {
						copy(contents[i][off:], data)
					}
					locks[i].Unlock()
					if err != nil {
						t.Errorf("pwrite: %v", err)
						return
					}
					continue
				}
				locks[i].RLock()
				got := buf[:n]
				m, err := unix.Pread(fds[i], got, off)
				ok := err == nil && m == n && bytes.Equal(got, contents[i][off:off+int64(n)])
				at := firstDiff(got[:max(m, 0)], contents[i][off:off+int64(n)])
				locks[i].RUnlock()
				if !ok {
					t.Errorf("worker %d: read f%d [%d,+%d): %d bytes, %v, differs at %d", w, i, off, n, m, err, at)
					return
				}
			}
		}()
	}
	wg.Wait()
	for i := range contents {
		if got := readFile(t, filepath.Join(mnt, fmt.Sprintf("f%d", i))); !bytes.Equal(got, contents[i]) {
			t.Errorf("f%d at the end differs at %d", i, firstDiff(got, contents[i]))
		}
	}
	if st != nil {
		// A read's reply pins its windows until go-fuse has written it,
		// after the reader has its bytes; the bound holds again once
		// the server lets go of them.
		s := st.Stats()
		for deadline := time.Now().Add(5 * time.Second); (s.Windows > 3 || s.FDs > 2) && time.Now().Before(deadline); s = st.Stats() {
			time.Sleep(time.Millisecond)
		}
		if s.Windows > 3 || s.FDs > 2 {
			t.Errorf("store caches beyond their bounds: %+v", s)
		}
	}
}

// TestManyFiles: thousands of small files in one directory, with the store
// keeping few descriptors: all readable, listed once, removable.
func TestManyFiles(t *testing.T) {
	t.Parallel()
	mnt, _, st := mountFS(t, withSmallCaches(0, 8, 4), withTimeout(120*time.Second))
	const n = 3000
	d := filepath.Join(mnt, "many")
	noErr(t, os.Mkdir(d, 0o755), "mkdir")
	name := func(i int) string { return fmt.Sprintf("file-%05d", i) }
	for i := 0; i < n; i++ {
		var data []byte
		if i%3 != 0 { // every third file stays empty
			data = []byte(name(i))
		}
		if err := os.WriteFile(filepath.Join(d, name(i)), data, 0o644); err != nil {
			t.Fatalf("create %d: %v", i, err)
		}
	}
	ents := readAllDirents(t, d)
	seen := map[string]int{}
	for _, e := range ents {
		seen[e.name]++
	}
	if len(ents) != n+2 || len(seen) != n+2 {
		t.Errorf("readdir: %d entries, %d distinct, want %d", len(ents), len(seen), n+2)
	}
	for i := 0; i < n; i++ {
		want := ""
		if i%3 != 0 {
			want = name(i)
		}
		if got := string(readFile(t, filepath.Join(d, name(i)))); got != want {
			t.Fatalf("%s: %q, want %q", name(i), got, want)
		}
	}
	if st != nil {
		if s := st.Stats(); s.FDs > 4 || s.Windows > 8 {
			t.Errorf("store caches beyond their bounds: %+v", s)
		}
	}
	for i := 0; i < n; i++ {
		noErr(t, unix.Unlink(filepath.Join(d, name(i))), "unlink")
	}
	if st := lstat(t, d); st.Size != 40 || st.Nlink != 2 {
		t.Errorf("emptied directory: size %d nlink %d", st.Size, st.Nlink)
	}
	noErr(t, unix.Rmdir(d), "rmdir")
	if st != nil {
		if !eventually(5*time.Second, func() bool { s := st.Stats(); return s.Used == 0 && s.Blobs == 0 }) {
			t.Errorf("store after removing every file: %+v, want nothing used", st.Stats())
		}
	}
}

// TestHolesCostNothing: sparse files use store space only for written pages.
func TestHolesCostNothing(t *testing.T) {
	needFUSE(t)
	t.Parallel()
	mnt, _, st := mountFS(t)
	used0 := st.Stats().Used
	fd := openFd(t, filepath.Join(mnt, "sparse"), unix.O_CREAT|unix.O_RDWR, 0o644)
	defer closeFd(fd)
	noErr(t, unix.Ftruncate(fd, 1<<40), "ftruncate 1 TiB")
	pwriteAll(t, fd, []byte("a"), 0)
	pwriteAll(t, fd, []byte("b"), 1<<30+5)
	pwriteAll(t, fd, []byte("c"), 1<<40-1)
	if u := st.Stats().Used - used0; u != 3*page {
		t.Errorf("store Used grew by %d for three written pages, want %d", u, 3*page)
	}
	noErr(t, unix.Fallocate(fd, unix.FALLOC_FL_PUNCH_HOLE|unix.FALLOC_FL_KEEP_SIZE, 1<<30, page), "punch")
	if u := st.Stats().Used - used0; u != 2*page {
		t.Errorf("store Used %d after punching a page, want %d", u, 2*page)
	}
	b := make([]byte, 1<<20)
	preadFull(t, fd, b, 1<<35) // reading a hole allocates nothing
	if u := st.Stats().Used - used0; u != 2*page {
		t.Errorf("store Used %d after reading a hole, want %d", u, 2*page)
	}
}

// TestRootAttributes: the root directory is as mounted: mode 1777, owned by
// the mounting user, two links, and usable like any directory.
func TestRootAttributes(t *testing.T) {
	t.Parallel()
	mnt, _, _ := mountFS(t)
	st := lstat(t, mnt)
	if st.Mode != unix.S_IFDIR|0o1777 || st.Nlink != 2 || st.Uid != uint32(os.Geteuid()) || st.Gid != uint32(os.Getegid()) {
		t.Errorf("root: mode %o nlink %d owner %d:%d, want %o 2 %d:%d", st.Mode, st.Nlink, st.Uid, st.Gid,
			unix.S_IFDIR|0o1777, os.Geteuid(), os.Getegid())
	}
	if st.Size != 40 {
		t.Errorf("empty root: size %d, want 40 (as tmpfs)", st.Size)
	}
	noErr(t, unix.Setxattr(mnt, "user.root", []byte("r"), 0), "setxattr on the root")
	noErr(t, unix.Chmod(mnt, 0o755), "chmod the root")
	if st := lstat(t, mnt); st.Mode != unix.S_IFDIR|0o755 {
		t.Errorf("root after chmod: %o", st.Mode)
	}
	if a, b := lstat(t, mnt+"/..").Ino, lstat(t, filepath.Dir(mnt)).Ino; a != b {
		t.Errorf("'..' of the root is inode %d, want the parent of the mountpoint %d", a, b)
	}
	wantErrno(t, unix.Rmdir(mnt), unix.EBUSY, "rmdir of the mount root")
	wantErrno(t, unix.Rename(mnt, mnt+"x"), unix.EBUSY, "rename of the mount root")
}
