package tests

// Damaged persistent stores (`mmapfs mount --store DIR`, `mmapfs fsck`).
//
// Two stores are built through the program: "clean" (a tree, then a clean
// unmount: a snapshot and an empty journal) and "killed" (the clean store
// mounted again, files added under s2/, then SIGKILL: a journal with
// frames). Every subtest copies one of them (byte for byte, holes kept),
// damages the copy in one way, and then:
//
//   - mounts a first copy as it is: the server must mount (and then what
//     the damage did not destroy reads back, and a log line says what was
//     dropped or repaired) or exit non-zero with one line naming the store
//     (for damaged metadata, with the fsck command to run); never a panic,
//     never a hang;
//   - runs fsck, fsck --repair and fsck again on a second copy: the first
//     reports the problem in words and changes nothing, the repair
//     converges (the second fsck finds the store clean), and a mount then
//     shows everything the damage did not destroy.
//
// What each program said is logged (t.Logf), so that `go test -v` output
// documents the behaviour for every kind of damage.

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"mmapfs/internal/fsmodel"
	"mmapfs/journal"
	storedir "mmapfs/store"
)

// ---------------------------------------------------------------- the tree

// crpNode is one name of the tree the tests build.
type crpNode struct {
	path   string
	kind   byte // 'd' directory, 'f' regular file, 'l' symlink
	data   []byte
	target string
	xattrs map[string][]byte
	link   string // a hard link: the path of the first name
}

// crpModel is the tree of the clean store, in creation order: the list
// crpBuild makes on a mount and crpTree makes the model of.
func crpModel() []*crpNode {
	big := modelBytes(21, 5<<20+123) // over two 2 MiB store windows
	medium := modelBytes(22, 300<<10+7)
	small := []byte("hello, small file\n")
	m := []*crpNode{
		{path: "a", kind: 'd', xattrs: map[string][]byte{"user.dir": []byte("on a directory")}},
		{path: "a/b", kind: 'd'},
		{path: "c", kind: 'd'},
		{path: "x", kind: 'd'},
		{path: "a/small", kind: 'f', data: small, xattrs: map[string][]byte{"user.k": []byte("v1"), "user.bin": {0, 1, 0xff, 0}}},
		{path: "a/b/big", kind: 'f', data: big, xattrs: map[string][]byte{"user.mime": []byte("application/octet-stream")}},
		{path: "c/medium", kind: 'f', data: medium},
		{path: "empty", kind: 'f', data: []byte{}},
		{path: "c/small-link", kind: 'f', data: small, link: "a/small"},
		{path: "sym", kind: 'l', target: "a/b/big"},
		{path: "dangling", kind: 'l', target: "/nonexistent/target"},
	}
	// Large xattrs make the snapshot span several frames (a frame holds
	// about 256 KiB of records), so that a damaged snapshot can keep
	// some of its frames.
	for i := 0; i < 6; i++ {
		m = append(m, &crpNode{
			path: fmt.Sprintf("x/x%d", i), kind: 'f', data: []byte(fmt.Sprintf("x file %d\n", i)),
			xattrs: map[string][]byte{"user.big": modelBytes(uint32(30+i), 60000)},
		})
	}
	return m
}

// crpS2Files is the number of files the killed session writes, s2/f00…
const crpS2Files = 10

func crpS2Name(i int) string { return fmt.Sprintf("s2/f%02d", i) }
func crpS2Data(i int) []byte {
	return append([]byte(fmt.Sprintf("session two, file %d\n", i)), modelBytes(uint32(100+i), 3000+i)...)
}

// crpBuild makes the model's tree on a mount.
func crpBuild(t *testing.T, mnt string, model []*crpNode) {
	t.Helper()
	for _, n := range model {
		p := filepath.Join(mnt, n.path)
		switch {
		case n.kind == 'd':
			noErr(t, unix.Mkdir(p, 0o755), "mkdir %s", n.path)
		case n.link != "":
			noErr(t, unix.Link(filepath.Join(mnt, n.link), p), "link %s", n.path)
		case n.kind == 'l':
			noErr(t, unix.Symlink(n.target, p), "symlink %s", n.path)
		case n.kind == 'f':
			pstWriteAt(t, p, 0, nil)
			for off := 0; off < len(n.data); off += 1 << 20 {
				pstWriteAt(t, p, int64(off), n.data[off:min(off+1<<20, len(n.data))])
			}
		}
		if n.link != "" {
			continue
		}
		for k, v := range n.xattrs {
			noErr(t, unix.Lsetxattr(p, k, v, 0), "setxattr %s %s", n.path, k)
		}
	}
}

// ---------------------------------------------------------------- templates

type crpTemplates struct {
	clean, killed string
	model         []*crpNode
}

// crpMakeTemplates builds the two stores through the program.
func crpMakeTemplates(t *testing.T) *crpTemplates {
	t.Helper()
	tp := &crpTemplates{model: crpModel()}
	base := t.TempDir()
	tp.clean = filepath.Join(base, "clean")
	tp.killed = filepath.Join(base, "killed")
	noErr(t, os.Mkdir(tp.clean, 0o700), "mkdir")
	mnt := binMountpoint(t)

	p := pstMount(t, tp.clean, mnt, false)
	crpBuild(t, mnt, tp.model)
	if errs := crpCheck(t, mnt, tp.model, crpAllIntact, false, false, 0); len(errs) > 0 {
		t.Fatalf("the tree as built:\n  %s", strings.Join(errs, "\n  "))
	}
	pstUnmount(t, p, mnt)
	t.Logf("clean store: meta/ holds %s", crpLsMeta(tp.clean))

	crpCopy(t, tp.clean, tp.killed)
	p = pstMount(t, tp.killed, mnt, false)
	noErr(t, unix.Mkdir(filepath.Join(mnt, "s2"), 0o755), "mkdir s2")
	for i := 0; i < crpS2Files; i++ {
		noErr(t, os.WriteFile(filepath.Join(mnt, crpS2Name(i)), crpS2Data(i), 0o644), "write %s", crpS2Name(i))
	}
	pstKill(t, p, mnt)
	t.Logf("killed store: meta/ holds %s", crpLsMeta(tp.killed))
	_, jr := crpMetaFiles(t, tp.killed)
	if _, frames := crpFrames(t, jr); len(frames) < crpS2Files {
		t.Fatalf("the killed store's journal has %d frames, want at least %d", len(frames), crpS2Files)
	}

	// The copies the subtests damage must be faithful: fsck finds both
	// templates, and a copy of each, clean.
	for _, dir := range []string{tp.clean, tp.killed} {
		cp := filepath.Join(t.TempDir(), "copy")
		crpCopy(t, dir, cp)
		for _, d := range []string{dir, cp} {
			if code, out := pstFsck(t, d); code != 0 {
				t.Fatalf("fsck of the undamaged store %s: exit %d, want 0:\n%s", d, code, out)
			}
		}
	}
	return tp
}

// crpCopy copies a store directory byte for byte, keeping holes (so that
// the space a store file holds is the same) and modes.
func crpCopy(t *testing.T, src, dst string) {
	t.Helper()
	err := filepath.WalkDir(src, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(src, p)
		to := filepath.Join(dst, rel)
		fi, err := d.Info()
		if err != nil {
			return err
		}
		switch {
		case d.IsDir():
			if err := os.Mkdir(to, fi.Mode().Perm()); err != nil && !os.IsExist(err) {
				return err
			}
			return os.Chmod(to, fi.Mode().Perm())
		case fi.Mode().IsRegular():
			return crpCopyFile(p, to, fi)
		default:
			return fmt.Errorf("%s: unexpected file type %v", p, fi.Mode())
		}
	})
	if err != nil {
		t.Fatalf("copy %s to %s: %v", src, dst, err)
	}
}

func crpCopyFile(src, dst string, fi os.FileInfo) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.OpenFile(dst, os.O_WRONLY|os.O_CREATE|os.O_EXCL, fi.Mode().Perm())
	if err != nil {
		return err
	}
	defer out.Close()
	size := fi.Size()
	fd := int(in.Fd())
	for off := int64(0); off < size; {
		d, err := unix.Seek(fd, off, unix.SEEK_DATA)
		if err == unix.ENXIO {
			break
		}
		if err != nil {
			return err
		}
		h, err := unix.Seek(fd, d, unix.SEEK_HOLE)
		if err != nil {
			return err
		}
		if _, err := io.Copy(io.NewOffsetWriter(out, d), io.NewSectionReader(in, d, h-d)); err != nil {
			return err
		}
		off = h
	}
	return out.Truncate(size)
}

// ---------------------------------------------------------------- store files

// crpLsMeta lists meta/ with sizes, as `ls -l` would tell.
func crpLsMeta(store string) string {
	ents, err := os.ReadDir(filepath.Join(store, storedir.MetaDir))
	if err != nil {
		return err.Error()
	}
	var s []string
	for _, e := range ents {
		fi, err := e.Info()
		if err != nil {
			s = append(s, e.Name()+" (?)")
			continue
		}
		s = append(s, fmt.Sprintf("%s (%d bytes)", e.Name(), fi.Size()))
	}
	return strings.Join(s, ", ")
}

// crpMetaFiles returns the store's one snapshot and one journal.
func crpMetaFiles(t *testing.T, store string) (snap, jrnl string) {
	t.Helper()
	s, _ := filepath.Glob(filepath.Join(store, storedir.MetaDir, "snapshot-*"))
	j, _ := filepath.Glob(filepath.Join(store, storedir.MetaDir, "journal-*"))
	if len(s) != 1 || len(j) != 1 {
		t.Fatalf("meta/ of %s: snapshots %q, journals %q; want one of each", store, s, j)
	}
	return s[0], j[0]
}

// crpFrame is a frame of a metadata file: where it starts and its length
// with its 16-byte head.
type crpFrame struct{ off, n int }

// crpFrames reads a metadata file and finds its frames (by their lengths;
// checksums are not checked). A journal left by a killed server ends in
// zeros (space allocated ahead): they end the frames, and are cut off the
// data returned, so that damage "at the end" hits the last frame.
func crpFrames(t *testing.T, p string) ([]byte, []crpFrame) {
	t.Helper()
	data, err := os.ReadFile(p)
	noErr(t, err, "read %s", p)
	var fr []crpFrame
	for off := 24; off+16 <= len(data); {
		n := 16 + int(binary.LittleEndian.Uint32(data[off:]))
		if off+n > len(data) || binary.LittleEndian.Uint64(data[off+8:]) == 0 {
			// Cut short, or zeros: a frame's sequence number is never 0.
			if binary.LittleEndian.Uint64(data[off+8:]) == 0 {
				data = data[:off]
				noErr(t, os.Truncate(p, int64(off)), "cut the zeros off %s", p)
			}
			break
		}
		fr = append(fr, crpFrame{off, n})
		off += n
	}
	return data, fr
}

func crpWrite(t *testing.T, p string, data []byte) {
	t.Helper()
	fi, err := os.Stat(p)
	noErr(t, err, "stat %s", p)
	noErr(t, os.WriteFile(p, data, fi.Mode().Perm()), "write %s", p)
}

// crpFlip flips one bit at off of file p.
func crpFlip(t *testing.T, p string, off int) {
	t.Helper()
	data, err := os.ReadFile(p)
	noErr(t, err, "read %s", p)
	data[off] ^= 0x10
	crpWrite(t, p, data)
}

// crpBlobOf returns the store file holding data (by its first bytes).
func crpBlobOf(t *testing.T, store string, data []byte) string {
	t.Helper()
	dir := filepath.Join(store, storedir.BlobsDir)
	ents, err := os.ReadDir(dir)
	noErr(t, err, "readdir %s", dir)
	head := data[:min(len(data), 4096)]
	for _, e := range ents {
		b := make([]byte, len(head))
		f, err := os.Open(filepath.Join(dir, e.Name()))
		if err != nil {
			continue
		}
		n, _ := io.ReadFull(f, b)
		f.Close()
		if n == len(head) && bytes.Equal(b, head) {
			return filepath.Join(dir, e.Name())
		}
	}
	t.Fatalf("no store file in %s holds the data", dir)
	return ""
}

// crpBlobInfo is what a store file held: its size and allocated bytes.
type crpBlobInfo struct{ size, alloc int64 }

// crpBlobs lists the store files of a store.
func crpBlobs(store string) map[string]crpBlobInfo {
	m := map[string]crpBlobInfo{}
	dir := filepath.Join(store, storedir.BlobsDir)
	ents, _ := os.ReadDir(dir)
	for _, e := range ents {
		var st unix.Stat_t
		if unix.Lstat(filepath.Join(dir, e.Name()), &st) == nil && st.Mode&unix.S_IFMT == unix.S_IFREG {
			m[e.Name()] = crpBlobInfo{st.Size, st.Blocks * 512}
		}
	}
	return m
}

// crpDigest sums the names, types, modes, sizes and (for files in meta/
// and the lock) contents of a store, to tell whether a program changed it.
func crpDigest(store string) string {
	h := sha256.New()
	_ = filepath.WalkDir(store, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			fmt.Fprintf(h, "err %s %v\n", p, err)
			return nil
		}
		var st unix.Stat_t
		_ = unix.Lstat(p, &st)
		// The lock's content is the pid of the last process that took
		// it, and any opening for writing rewrites it: neither it nor
		// its size (the pid's digits) is compared.
		if filepath.Base(p) == storedir.LockName {
			fmt.Fprintf(h, "%s %o\n", p, st.Mode)
			return nil
		}
		fmt.Fprintf(h, "%s %o %d %d\n", p, st.Mode, st.Size, st.Blocks)
		if !d.IsDir() && !strings.Contains(p, "/"+storedir.BlobsDir+"/") {
			b, _ := os.ReadFile(p)
			h.Write(b)
		}
		return nil
	})
	return fmt.Sprintf("%x", h.Sum(nil))
}

// ---------------------------------------------------------------- checking a mount

// Fates: what a path of the model may have become after the damage.
type crpFate struct {
	kind int   // one of the crp* constants below
	n    int64 // crpPrefix: bytes that must have survived
}

const (
	crpIntact   = iota // there, exactly as made
	crpMayLose         // gone, or there exactly as made
	crpDataLost        // there, reading as zeros (the original size, or empty)
	crpPrefix          // there, the original size: n bytes as made, then zeros
)

func crpAllIntact(string) crpFate { return crpFate{kind: crpIntact} }

// crpTree is the model of the tree that model (the build list) makes.
func crpTree(t *testing.T, model []*crpNode) *fsmodel.FS {
	t.Helper()
	m := fsmodel.New(0o755, 0)
	for _, n := range model {
		var e unix.Errno
		switch {
		case n.kind == 'd':
			_, e = m.Mkdir(n.path, 0o755)
		case n.link != "":
			e = m.Link(n.link, n.path)
		case n.kind == 'l':
			_, e = m.Symlink(n.target, n.path)
		case n.kind == 'f':
			var f *fsmodel.Node
			if f, e = m.Create(n.path, 0o644); e == 0 {
				f.WriteAt(n.data, 0)
			}
		}
		for k, v := range n.xattrs {
			if e == 0 && n.link == "" {
				e = m.Setxattr(n.path, k, v, 0)
			}
		}
		if e != 0 {
			t.Fatalf("the model refuses %s: %v", n.path, errName(e))
		}
	}
	return m
}

// crpCheck compares the mount with the model, each path by its fate, and
// (with s2) the files of the killed session: some first ones whole, then
// perhaps one empty (its write was dropped), then none. With s2hole one of
// them may be missing among whole ones: the one whose creation was in a
// damaged frame that intact frames follow. It returns the differences,
// and fails the test if fewer than s2min are whole.
func crpCheck(t *testing.T, mnt string, model []*crpNode, fate func(string) crpFate, s2, s2hole bool, s2min int) []string {
	t.Helper()
	var errs []string
	bad := func(format string, args ...any) { errs = append(errs, fmt.Sprintf(format, args...)) }
	// The content of a file by its fate.
	content := func(p string, n *fsmodel.Node, got []byte) string {
		f := fate(p)
		data := n.Data()
		switch f.kind {
		case crpDataLost:
			if (len(got) != len(data) && len(got) != 0) || !crpZero(got) {
				return fmt.Sprintf("its data was lost: want %d zero bytes (or an empty file), got %d bytes, zero: %v", len(data), len(got), crpZero(got))
			}
			t.Logf("  %s: reads as %d zero bytes (was %d bytes of data)", p, len(got), len(data))
		case crpPrefix:
			switch {
			case len(got) != len(data):
				return fmt.Sprintf("size %d, want the recorded %d", len(got), len(data))
			case !bytes.Equal(got[:f.n], data[:f.n]):
				return fmt.Sprintf("the %d bytes the store file still held differ: %s", f.n, fsmodel.DataDiff(data[:f.n], got[:f.n], 0))
			case !crpZero(got[f.n:]):
				return fmt.Sprintf("past the %d bytes the store file still held, want zeros", f.n)
			}
			t.Logf("  %s: the first %d bytes are intact, the other %d read as zeros", p, f.n, len(got)-int(f.n))
		default:
			return fsmodel.ContentDiff(n, got)
		}
		return ""
	}
	diffs := fsmodel.Compare(mnt, crpTree(t, model), &fsmodel.Options{
		NlinkPresent: true,
		MayLack:      func(p string) bool { return fate(p).kind == crpMayLose },
		// /lost+found, and the killed session's files (checked below).
		Extra: func(p string) bool {
			return p == "lost+found" || s2 && p == "s2"
		},
		Content: content,
	})
	for _, d := range diffs {
		msg := d.String()
		if d.Class == "names" && strings.HasPrefix(d.Msg, "missing") {
			msg += " (it should have survived the damage)"
		}
		bad("%s", msg)
	}
	crpLogLostFound(t, mnt, model)
	if s2 {
		whole, ends := 0, "absent"
		state := func(i int) string {
			b, err := os.ReadFile(filepath.Join(mnt, crpS2Name(i)))
			switch {
			case err != nil:
				return "absent"
			case len(b) == 0:
				return "empty"
			case bytes.Equal(b, crpS2Data(i)):
				return "whole"
			}
			return fmt.Sprintf("wrong (%s)", pstDataDiff(crpS2Data(i), b))
		}
		i, hole := 0, -1
		for ; i < crpS2Files; i++ {
			switch st := state(i); {
			case st == "whole":
				whole++
				continue
			case st == "absent" && s2hole && hole < 0:
				hole = i
				continue
			}
			break
		}
		if hole >= 0 && i == hole+1 {
			i = hole // a last file missing is the ordinary end
			hole = -1
		}
		if hole >= 0 {
			t.Logf("  killed session: %s is missing, its creation lost with the damaged frame", crpS2Name(hole))
		}
		if i < crpS2Files {
			ends = state(i)
			if ends == "empty" {
				i++
			}
			for ; i < crpS2Files; i++ {
				if s := state(i); s != "absent" {
					bad("%s: %s after an earlier file of the session was lost: not the prefix of the session's changes", crpS2Name(i), s)
				}
			}
		}
		if ents, err := os.ReadDir(filepath.Join(mnt, "s2")); err == nil {
			for _, e := range ents {
				if !strings.HasPrefix(e.Name(), "f") || len(e.Name()) != 3 {
					bad("s2/%s: appeared", e.Name())
				}
			}
		}
		t.Logf("  killed session: %d of %d files whole, then %s", whole, crpS2Files, ends)
		if whole < s2min {
			bad("killed session: %d files whole, want at least %d (the damage did not reach the frames of the others)", whole, s2min)
		}
	}
	return errs
}

// crpLogLostFound says what /lost+found of the mount holds: for a file,
// which file of the tree had its content.
func crpLogLostFound(t *testing.T, mnt string, model []*crpNode) {
	t.Helper()
	lf := filepath.Join(mnt, "lost+found")
	if _, err := os.Lstat(lf); err != nil {
		return
	}
	err := filepath.WalkDir(lf, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(mnt, p)
		if d.Type().IsRegular() {
			b, _ := os.ReadFile(p)
			what := "no file of the tree"
			for _, n := range model {
				if n.kind == 'f' && len(n.data) > 0 && bytes.Equal(b, n.data) {
					what = n.path
				}
			}
			t.Logf("  %s: %d bytes, the content of %s", rel, len(b), what)
		} else {
			t.Logf("  %s (%v)", rel, d.Type())
		}
		return nil
	})
	if err != nil {
		t.Errorf("walk of /lost+found: %v", err)
	}
}

func crpZero(b []byte) bool {
	for _, c := range b {
		if c != 0 {
			return false
		}
	}
	return true
}

// ---------------------------------------------------------------- running the program

// crpNoPanic fails t if out shows a Go panic or a goroutine dump.
func crpNoPanic(t *testing.T, what, out string) {
	t.Helper()
	for _, s := range []string{"panic:", "goroutine ", "fatal error:", "SIGSEGV", "DATA RACE"} {
		if strings.Contains(out, s) {
			t.Errorf("%s: output has %q:\n%s", what, s, out)
			return
		}
	}
}

// crpLogLines returns the log lines of a server's output at warn level or
// above (console format: time, level, logger, message, fields).
func crpLogLines(out string) (warn, other []string) {
	for _, line := range strings.Split(strings.TrimRight(out, "\n"), "\n") {
		f := strings.SplitN(line, "\t", 3)
		switch {
		case line == "":
		case len(f) >= 2 && (f[1] == "WARN" || f[1] == "ERROR"):
			warn = append(warn, line)
		case len(f) >= 2 && (f[1] == "INFO" || f[1] == "DEBUG"):
		default:
			other = append(other, line)
		}
	}
	return warn, other
}

// crpMount tries `mmapfs mount --store STORE MNT`: it returns the server
// if it mounted, or nil and its output if it exited. A server that does
// neither within binMountTimeout fails the test.
func crpMount(t *testing.T, store string) (*binProc, string, string) {
	p, mnt, _, out := crpMountCode(t, store)
	return p, mnt, out
}

func crpMountCode(t *testing.T, store string) (*binProc, string, int, string) {
	t.Helper()
	mnt := binMountpoint(t)
	p := binStart(t, nil, "mount", "--store", store, mnt)
	deadline := time.Now().Add(binMountTimeout)
	for {
		// Mounted, and the server says so: it logs "mounted MNT" once
		// go-fuse's WaitMount returned (an unmount before that makes
		// the server fail), and its earlier log lines are in by then.
		if m := binFindMount(mnt); m != nil && m.fstype == "fuse.mmapfs" && strings.Contains(p.output.String(), "mounted "+mnt) {
			return p, mnt, 0, ""
		}
		if !p.binRunning() {
			code := p.binWait()
			out := p.output.String()
			if code == 0 {
				t.Errorf("mmapfs mount on the damaged store exited 0 without mounting; output:\n%s", out)
			}
			if m := binFindMount(mnt); m != nil {
				t.Errorf("the server exited but left a mount on %s", mnt)
			}
			return nil, mnt, code, out
		}
		if time.Now().After(deadline) {
			t.Fatalf("mmapfs mount on the damaged store neither mounted nor exited within %v (a hang); output:\n%s", binMountTimeout, p.output)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// crpFsck runs fsck and checks what any fsck must do: exit with a code of
// want, print no panic, and give a problem line when it finds problems.
func crpFsck(t *testing.T, store, label string, want []int, args ...string) (int, string) {
	t.Helper()
	code, out := pstFsck(t, store, args...)
	t.Logf("%s: exit %d\n%s", label, code, crpIndent(out))
	crpNoPanic(t, label, out)
	ok := false
	for _, w := range want {
		ok = ok || code == w
	}
	if !ok {
		t.Errorf("%s: exit %d, want one of %v", label, code, want)
	}
	if (code == 1 || code == 4) && !strings.Contains(out, "problem: ") {
		t.Errorf("%s: exit %d without a \"problem:\" line", label, code)
	}
	return code, out
}

func crpIndent(s string) string {
	s = strings.TrimRight(s, "\n")
	if s == "" {
		return "    (nothing)"
	}
	return "    " + strings.ReplaceAll(s, "\n", "\n    ")
}

// ---------------------------------------------------------------- the cases

// crpCase is one kind of damage and what it may do.
type crpCase struct {
	name   string
	killed bool // damage the killed store (a journal with frames)
	damage func(t *testing.T, store string)

	// Mount of the damaged store.
	mustRefuse bool     // the mount must refuse it
	mustMount  bool     // the mount must accept it
	refuseSay  []string // the refusal names the store and says these ({store} = the store)
	refuseNot  []string // and does not say these (damage that is not there)
	mountSay   []string // if it mounts, one warn/error log line has one of these; nil: none needed
	mountFate  func(string) crpFate
	mountS2    int // killed session files that must be whole after the mount

	// fsck.
	fsck      []int    // exit codes the first fsck may give
	fsckSay   []string // its output has these
	repair    []int    // exit codes fsck --repair may give
	salvage   bool     // what fsck --repair keeps is what the damaged metadata still names
	fixFate   func(string) crpFate
	fixS2     int
	s2Hole    bool                             // one file of the killed session may be missing among whole ones (see crpCheck)
	metaDmg   bool                             // the damage is to the metadata: no file data may be deleted by --repair
	unfixable func(t *testing.T, store string) // fsck exits 8 and changes nothing; this undoes the damage
	after     func(t *testing.T, store string) // more checks after the repair
}

func crpCases(t *testing.T, tp *crpTemplates) []crpCase {
	bigData := tp.model[5].data
	if tp.model[5].path != "a/b/big" {
		t.Fatal("model changed: a/b/big is not the sixth entry")
	}
	bigFate := func(f crpFate) func(string) crpFate {
		return func(p string) crpFate {
			if p == "a/b/big" {
				return f
			}
			return crpFate{kind: crpIntact}
		}
	}
	fixSay := []string{"mmapfs fsck --store {store} --repair"}

	// Journal cuts: at a fraction of a frame.
	cut := func(which string, frac float64) func(*testing.T, string) {
		return func(t *testing.T, store string) {
			_, jr := crpMetaFiles(t, store)
			data, fr := crpFrames(t, jr)
			var at int
			switch which {
			case "last":
				f := fr[len(fr)-1]
				at = f.off + int(float64(f.n)*frac)
			case "first":
				at = fr[0].off + int(float64(fr[0].n)*frac)
			case "middle-head": // inside the 16-byte head of a middle frame
				at = fr[len(fr)/2].off + 5
			case "file-header":
				at = 10
			}
			t.Logf("journal %s: %d frames, %d bytes; cut to %d bytes", filepath.Base(jr), len(fr), len(data), at)
			noErr(t, os.Truncate(jr, int64(at)), "truncate")
		}
	}
	flipJournal := func(which string) func(*testing.T, string) {
		return func(t *testing.T, store string) {
			_, jr := crpMetaFiles(t, store)
			_, fr := crpFrames(t, jr)
			f := fr[len(fr)-1]
			if which == "early" {
				f = fr[1]
			}
			t.Logf("journal %s: %d frames; a bit flipped in the payload of the frame at byte %d", filepath.Base(jr), len(fr), f.off)
			crpFlip(t, jr, f.off+16+(f.n-16)/2)
		}
	}
	snapFrames := func(t *testing.T, store string) (string, []byte, []crpFrame) {
		sn, _ := crpMetaFiles(t, store)
		data, fr := crpFrames(t, sn)
		if len(fr) < 3 {
			t.Fatalf("snapshot %s has %d frames, want at least 3 (the xattrs of x/ should need two frames, and the end is one)", sn, len(fr))
		}
		return sn, data, fr
	}
	cutSnap := func(which string) func(*testing.T, string) {
		return func(t *testing.T, store string) {
			sn, data, fr := snapFrames(t, store)
			var at int
			switch which {
			case "header":
				at = 10
			case "first-frame":
				at = fr[0].off + fr[0].n/2
			case "second-frame":
				at = fr[1].off + fr[1].n/2
			case "end-frame":
				at = fr[len(fr)-1].off + 3
			}
			t.Logf("snapshot %s: %d frames (%v), %d bytes; cut to %d bytes", filepath.Base(sn), len(fr), fr, len(data), at)
			noErr(t, os.Truncate(sn, int64(at)), "truncate")
		}
	}
	flipSnap := func(which string) func(*testing.T, string) {
		return func(t *testing.T, store string) {
			sn, _, fr := snapFrames(t, store)
			f := fr[0]
			if which == "end-frame" {
				f = fr[len(fr)-1]
			}
			t.Logf("snapshot %s: %d frames; a bit flipped in the payload of the frame at byte %d", filepath.Base(sn), len(fr), f.off)
			crpFlip(t, sn, f.off+16+(f.n-16)/2)
		}
	}
	setVersion := func(which string, v uint32) func(*testing.T, string) {
		return func(t *testing.T, store string) {
			sn, jr := crpMetaFiles(t, store)
			p := sn
			if which == "journal" {
				p = jr
			}
			data, err := os.ReadFile(p)
			noErr(t, err, "read")
			binary.LittleEndian.PutUint32(data[8:12], v)
			crpWrite(t, p, data)
		}
	}
	var cases []crpCase

	// (1) The journal cut short, at several points.
	for _, c := range []struct {
		name      string
		which     string
		frac      float64
		minS2     int
		harmless  bool
		mountFate func(string) crpFate
	}{
		{"journal-cut-last-frame-middle", "last", 0.5, crpS2Files - 1, false, nil},
		{"journal-cut-last-frame-head", "last", 0.25, crpS2Files - 1, false, nil},
		{"journal-cut-middle-frame-head", "middle-head", 0, 0, false, nil},
		{"journal-cut-first-frame", "first", 0.5, 0, false, nil},
		{"journal-cut-in-file-header", "file-header", 0, 0, false, nil},
	} {
		cases = append(cases, crpCase{
			name: c.name, killed: true, damage: cut(c.which, c.frac),
			mustMount: true, mountSay: []string{"dropped a torn or damaged journal tail"}, mountS2: c.minS2,
			fsck: []int{4}, fsckSay: []string{"did not finish"}, repair: []int{1}, fixS2: c.minS2,
		})
	}
	// (2) A bit flipped in the journal.
	cases = append(cases,
		crpCase{
			name: "journal-flip-last-frame", killed: true, damage: flipJournal("last"),
			mountSay: []string{"dropped a torn or damaged journal tail"}, mountS2: crpS2Files - 1,
			fsck: []int{4}, repair: []int{1}, fixS2: crpS2Files - 1,
		},
		crpCase{
			// Intact frames follow the damaged one: the changes they hold
			// were acknowledged, and their records can still be read.
			// The second frame is the creation of s2/f00 (one frame per
			// request): that file goes, its data to /lost+found; the
			// others stay whole.
			name: "journal-flip-early-frame", killed: true, damage: flipJournal("early"),
			mountSay: []string{"journal"}, refuseSay: append([]string{"journal", "damaged"}, fixSay...),
			fsck: []int{4}, fsckSay: []string{"journal"}, repair: []int{1}, metaDmg: true,
			s2Hole: true, fixS2: crpS2Files - 1,
		},
	)
	// (3) The snapshot cut short; (4) a bit flipped in it.
	for _, c := range []struct {
		name   string
		damage func(*testing.T, string)
		all    bool // every inode's frame is intact: everything must survive
	}{
		{"snapshot-cut-in-header", cutSnap("header"), false},
		{"snapshot-cut-first-frame", cutSnap("first-frame"), false},
		{"snapshot-cut-second-frame", cutSnap("second-frame"), false},
		{"snapshot-cut-end-frame", cutSnap("end-frame"), true},
		{"snapshot-flip-first-frame", flipSnap("first-frame"), false},
		{"snapshot-flip-end-frame", flipSnap("end-frame"), true},
	} {
		cc := crpCase{
			name: c.name, damage: c.damage,
			mustRefuse: true, refuseSay: append([]string{"snapshot", "damaged"}, fixSay...),
			refuseNot: []string{"does not follow on"}, // the journal is intact
			fsck:      []int{4}, fsckSay: []string{"snapshot", "damaged"}, repair: []int{1},
			salvage: !c.all, metaDmg: true,
		}
		cases = append(cases, cc)
	}
	// (5) The snapshot deleted, the journal left.
	cases = append(cases, crpCase{
		name: "snapshot-deleted", killed: true,
		damage: func(t *testing.T, store string) {
			sn, _ := crpMetaFiles(t, store)
			noErr(t, os.Remove(sn), "remove")
		},
		mustRefuse: true, refuseSay: append([]string{"snapshot"}, fixSay...),
		fsck: []int{4}, fsckSay: []string{"snapshot is missing"}, repair: []int{1},
		salvage: true, metaDmg: true, fixS2: crpS2Files,
	})
	// (6) Another format version.
	for _, which := range []string{"snapshot", "journal"} {
		cases = append(cases, crpCase{
			name: "version-99-in-" + which, killed: which == "journal", damage: setVersion(which, 99),
			mustRefuse: true, refuseSay: []string{"version 99", "versions 1 to 2"},
			fsck: []int{8}, fsckSay: []string{"version 99"}, repair: []int{8},
			unfixable: setVersion(which, 2), fixS2: crpS2Files,
		})
	}
	// (7) A store file deleted; (8) cut short; (9) replaced by a directory.
	const kept = 1 << 20
	cases = append(cases,
		crpCase{
			name:     "blob-deleted",
			damage:   func(t *testing.T, store string) { noErr(t, os.Remove(crpBlobOf(t, store, bigData)), "remove") },
			mountSay: []string{"data", "store file"}, mountFate: bigFate(crpFate{kind: crpDataLost}),
			fsck: []int{4}, fsckSay: []string{"a/b/big", "missing"}, repair: []int{1},
			fixFate: bigFate(crpFate{kind: crpDataLost}),
		},
		crpCase{
			name: "blob-truncated",
			damage: func(t *testing.T, store string) {
				noErr(t, os.Truncate(crpBlobOf(t, store, bigData), kept), "truncate")
			},
			mountSay: []string{"data", "store file"}, mountFate: bigFate(crpFate{kind: crpPrefix, n: kept}),
			fsck: []int{4}, fsckSay: []string{"a/b/big", "recorded"}, repair: []int{1},
			fixFate: bigFate(crpFate{kind: crpPrefix, n: kept}),
		},
		crpCase{
			name: "blob-replaced-by-empty-directory",
			damage: func(t *testing.T, store string) {
				b := crpBlobOf(t, store, bigData)
				noErr(t, os.Remove(b), "remove")
				noErr(t, os.Mkdir(b, 0o700), "mkdir")
			},
			mountSay: []string{"data"}, mountFate: bigFate(crpFate{kind: crpDataLost}),
			fsck: []int{4}, fsckSay: []string{"a/b/big", "not a regular file"}, repair: []int{1},
			fixFate: bigFate(crpFate{kind: crpDataLost}),
		},
		crpCase{
			name: "blob-replaced-by-nonempty-directory",
			damage: func(t *testing.T, store string) {
				b := crpBlobOf(t, store, bigData)
				noErr(t, os.Remove(b), "remove")
				noErr(t, os.Mkdir(b, 0o700), "mkdir")
				noErr(t, os.WriteFile(filepath.Join(b, "inside"), []byte("x"), 0o600), "write")
			},
			mountSay: []string{"data"}, mountFate: bigFate(crpFate{kind: crpDataLost}),
			fsck: []int{4}, fsckSay: []string{"a/b/big", "not a regular file"}, repair: []int{1, 4},
			fixFate: bigFate(crpFate{kind: crpDataLost}),
		},
	)
	// (10) Foreign files.
	for _, where := range []string{"", storedir.BlobsDir, storedir.MetaDir} {
		where := where
		name := "foreign-file-in-" + map[string]string{"": "store", storedir.BlobsDir: "blobs", storedir.MetaDir: "meta"}[where]
		p := func(store string) string { return filepath.Join(store, where, "NOTES.txt") }
		cases = append(cases, crpCase{
			name: name,
			damage: func(t *testing.T, store string) {
				noErr(t, os.WriteFile(p(store), []byte("not mmapfs's\n"), 0o600), "write")
			},
			fsck: []int{0, 4}, repair: []int{0, 1},
			after: func(t *testing.T, store string) {
				if where == storedir.MetaDir {
					return // --repair may remove it from meta/
				}
				if b, err := os.ReadFile(p(store)); err != nil || string(b) != "not mmapfs's\n" {
					t.Errorf("the foreign file %s was not left alone: %q, %v", p(store), b, err)
				}
			},
		})
	}
	// (11) A store file nobody owns.
	orphan := func(store string) string { return filepath.Join(store, storedir.BlobsDir, "00000000000000a7") }
	cases = append(cases, crpCase{
		name: "orphan-blob",
		damage: func(t *testing.T, store string) {
			noErr(t, os.WriteFile(orphan(store), modelBytes(77, 100<<10), 0o600), "write")
		},
		mountSay: nil, fsck: []int{4}, fsckSay: []string{"00000000000000a7", "belongs to no file"}, repair: []int{1},
		after: func(t *testing.T, store string) {
			if _, err := os.Lstat(orphan(store)); err == nil {
				t.Errorf("the orphan store file is still there after the repair")
			}
		},
	})
	// (12) The lock file deleted, or a directory in its place.
	lock := func(store string) string { return filepath.Join(store, storedir.LockName) }
	cases = append(cases,
		crpCase{
			name:      "lock-deleted",
			damage:    func(t *testing.T, store string) { noErr(t, os.Remove(lock(store)), "remove") },
			mustMount: true, fsck: []int{0}, repair: []int{0, 1},
		},
		crpCase{
			name: "lock-replaced-by-directory",
			damage: func(t *testing.T, store string) {
				noErr(t, os.Remove(lock(store)), "remove")
				noErr(t, os.Mkdir(lock(store), 0o700), "mkdir")
			},
			refuseSay: []string{"lock"}, fsck: []int{4}, fsckSay: []string{"lock"}, repair: []int{1},
		},
	)
	return cases
}

// ---------------------------------------------------------------- the test

func TestPersistCorrupt(t *testing.T) {
	pstSetup(t)
	start := time.Now()
	tp := crpMakeTemplates(t)
	t.Logf("templates built in %v", time.Since(start).Round(time.Millisecond))
	for _, c := range crpCases(t, tp) {
		t.Run(c.name, func(t *testing.T) { crpRun(t, tp, c) })
	}
	t.Run("meta-unreadable", func(t *testing.T) { crpUnreadable(t, tp) })
	t.Logf("total %v", time.Since(start).Round(time.Millisecond))
}

func crpRun(t *testing.T, tp *crpTemplates, c crpCase) {
	tpl := tp.clean
	if c.killed {
		tpl = tp.killed
	}
	mountFate, fixFate := c.mountFate, c.fixFate
	if mountFate == nil {
		mountFate = crpAllIntact
	}
	if fixFate == nil {
		fixFate = crpAllIntact
	}
	subst := func(s []string, store string) []string {
		var r []string
		for _, x := range s {
			r = append(r, strings.ReplaceAll(x, "{store}", store))
		}
		return r
	}

	// ---- the mount, on one copy
	t.Run("mount", func(t *testing.T) {
		store := filepath.Join(t.TempDir(), "store")
		crpCopy(t, tpl, store)
		c.damage(t, store)
		t.Logf("damaged: meta/ holds %s", crpLsMeta(store))
		p, mnt, code, res := crpMountCode(t, store)
		if p == nil {
			t.Logf("mmapfs mount refused the store: exit %d\n%s", code, crpIndent(res))
			crpNoPanic(t, "mount", res)
			if c.mustMount {
				t.Errorf("mmapfs mount refused a store it should accept (%s)", c.name)
			}
			_, other := crpLogLines(res)
			var msgs []string
			for _, l := range other {
				if strings.HasPrefix(l, "mmapfs: ") {
					msgs = append(msgs, l)
				}
			}
			if len(msgs) != 1 || len(other) != 1 {
				t.Errorf("refusal: want one line \"mmapfs: …\" besides the log, got %q", other)
			}
			if len(msgs) > 0 {
				for _, w := range append([]string{store}, subst(c.refuseSay, store)...) {
					if !strings.Contains(msgs[0], w) {
						t.Errorf("refusal %q does not say %q", msgs[0], w)
					}
				}
				for _, w := range c.refuseNot {
					if strings.Contains(msgs[0], w) {
						t.Errorf("refusal %q says %q, of a part of the store that is not damaged", msgs[0], w)
					}
				}
			}
			return
		}
		out := p.output.String()
		warn, _ := crpLogLines(out)
		t.Logf("mmapfs mount accepted the store; its log:\n%s", crpIndent(out))
		crpNoPanic(t, "mount", out)
		if c.mustRefuse {
			t.Errorf("mmapfs mount accepted a store it must refuse (%s)", c.name)
		}
		if c.mountSay != nil {
			found := false
			for _, l := range warn {
				for _, w := range c.mountSay {
					found = found || strings.Contains(strings.ToLower(l), strings.ToLower(w))
				}
			}
			if !found {
				t.Errorf("mount: no warning or error in the log about the damage (want a line with one of %q)", c.mountSay)
			}
		}
		if errs := crpCheck(t, mnt, tp.model, mountFate, c.killed, c.s2Hole, c.mountS2); len(errs) > 0 {
			t.Errorf("after mounting the damaged store:\n  %s", strings.Join(errs, "\n  "))
		}
		pstUnmount(t, p, mnt)
		crpNoPanic(t, "mount", p.output.String())
		// What the mount accepted, it repaired: fsck finds the store
		// clean, or --repair makes it so.
		code, _ = crpFsck(t, store, "fsck after the mount and a clean unmount", []int{0, 4})
		if code == 4 {
			t.Logf("NOTE: the mount accepted the damaged store, but after its clean unmount fsck still finds problems (above)")
			crpFsck(t, store, "fsck --repair after that", []int{1}, "--repair")
			crpFsck(t, store, "fsck after the repair", []int{0})
		}
	})

	// ---- fsck, on another copy
	t.Run("fsck", func(t *testing.T) {
		store := filepath.Join(t.TempDir(), "store")
		crpCopy(t, tpl, store)
		c.damage(t, store)
		var oracle map[string]bool
		if c.salvage {
			oracle = crpSalvage(t, store)
		}
		damagedBlobs := crpBlobs(store)
		digest := crpDigest(store)
		_, out := crpFsck(t, store, "fsck", c.fsck)
		for _, w := range subst(c.fsckSay, store) {
			if !strings.Contains(out, w) {
				t.Errorf("fsck: output does not say %q", w)
			}
		}
		if d := crpDigest(store); d != digest {
			t.Errorf("fsck without --repair changed the store")
		}
		_, _ = crpFsck(t, store, "fsck --repair", c.repair, "--repair")
		if c.unfixable != nil {
			if d := crpDigest(store); d != digest {
				t.Errorf("fsck --repair changed a store it could not check")
			}
			c.unfixable(t, store)
			t.Logf("damage undone")
		}
		if code, _ := crpFsck(t, store, "fsck again", []int{0}); code != 0 {
			t.Errorf("fsck --repair did not converge: a second fsck finds problems")
			crpFsck(t, store, "fsck --repair, a second time", []int{1, 0}, "--repair")
			crpFsck(t, store, "fsck a third time", []int{0})
		}
		if c.metaDmg {
			// The damage was to the metadata: every store file with data
			// was intact. --repair must not have deleted any.
			after := crpBlobs(store)
			var gone []string
			var bytesGone int64
			for name, bi := range damagedBlobs {
				if _, ok := after[name]; !ok && bi.alloc > 0 {
					gone = append(gone, name)
					bytesGone += bi.alloc
				}
			}
			sort.Strings(gone)
			if len(gone) > 0 {
				t.Errorf("DATA DESTROYED BY REPAIR: the damage was to the metadata only, yet fsck --repair deleted %d of the %d store files, %d bytes of intact file data (%s), instead of keeping them (e.g. in /lost+found)",
					len(gone), len(damagedBlobs), bytesGone, strings.Join(gone, ", "))
			}
		}
		fate := fixFate
		if oracle != nil {
			fate = func(p string) crpFate {
				if oracle[p] {
					return fixFate(p)
				}
				return crpFate{kind: crpMayLose}
			}
		}
		p, mnt, res := crpMount(t, store)
		if p == nil {
			t.Fatalf("mmapfs mount refused the store after fsck --repair: %s", res)
		}
		if errs := crpCheck(t, mnt, tp.model, fate, c.killed, c.s2Hole, c.fixS2); len(errs) > 0 {
			t.Errorf("after fsck --repair and a mount:\n  %s", strings.Join(errs, "\n  "))
		}
		if oracle != nil {
			lost := 0
			for _, n := range tp.model {
				if !oracle[n.path] {
					lost++
				}
			}
			t.Logf("the damaged metadata still named %d of the %d paths of the tree", len(tp.model)-lost, len(tp.model))
		}
		pstUnmount(t, p, mnt)
		crpNoPanic(t, "mount after the repair", p.output.String())
		crpFsck(t, store, "fsck after the mount", []int{0})
		if c.after != nil {
			c.after(t, store)
		}
	})
}

// crpSalvage returns the paths of the model that the damaged metadata
// still names: what fsck --repair can keep.
func crpSalvage(t *testing.T, store string) map[string]bool {
	t.Helper()
	st, _, err := storedir.Load(store, true)
	if err != nil {
		t.Logf("reading the damaged metadata: %v", err)
		return map[string]bool{}
	}
	paths := map[string]bool{}
	seen := map[uint64]bool{journal.RootIno: true}
	queue := []struct {
		ino  uint64
		path string
	}{{journal.RootIno, ""}}
	for len(queue) > 0 {
		d := queue[0]
		queue = queue[1:]
		for name, ino := range st.Entries[d.ino] {
			in := st.Inodes[ino]
			if in == nil {
				continue
			}
			p := pstJoin(d.path, name)
			paths[p] = true
			if in.IsDir() && !seen[ino] {
				seen[ino] = true
				queue = append(queue, struct {
					ino  uint64
					path string
				}{ino, p})
			}
		}
	}
	return paths
}

// (13) meta/ unreadable. Root reads it anyway, so it is tested as another
// user (nobody) when the test runs as root.
func crpUnreadable(t *testing.T, tp *crpTemplates) {
	if os.Geteuid() != 0 {
		store := filepath.Join(t.TempDir(), "store")
		crpCopy(t, tp.clean, store)
		meta := filepath.Join(store, storedir.MetaDir)
		noErr(t, os.Chmod(meta, 0), "chmod")
		t.Cleanup(func() { os.Chmod(meta, 0o700) })
		p, mnt, res := crpMount(t, store)
		if p != nil {
			pstUnmount(t, p, mnt)
			t.Fatalf("mmapfs mount accepted a store whose meta/ it cannot read")
		}
		t.Logf("mount: %s", res)
		crpNoPanic(t, "mount", res)
		if !strings.Contains(res, store) {
			t.Errorf("the refusal does not name the store")
		}
		crpFsck(t, store, "fsck", []int{8})
		return
	}
	// As root, the mode does not matter.
	store := filepath.Join(t.TempDir(), "store")
	crpCopy(t, tp.clean, store)
	noErr(t, os.Chmod(filepath.Join(store, storedir.MetaDir), 0), "chmod")
	crpFsck(t, store, "fsck as root, meta/ mode 000", []int{0})
	t.Logf("as root, meta/ of mode 000 is read all the same; trying as nobody")

	const nobody = 65534
	base, err := os.MkdirTemp("", "mmapfs-crp-")
	noErr(t, err, "mkdtemp")
	t.Cleanup(func() { os.RemoveAll(base) })
	noErr(t, os.Chmod(base, 0o755), "chmod")
	store = filepath.Join(base, "store")
	crpCopy(t, tp.clean, store)
	mnt := filepath.Join(base, "mnt")
	noErr(t, os.Mkdir(mnt, 0o755), "mkdir")
	t.Cleanup(func() { binForceUnmount(t, mnt) })
	noErr(t, filepath.Walk(base, func(p string, _ os.FileInfo, err error) error {
		if err != nil {
			return err
		}
		return os.Lchown(p, nobody, nobody)
	}), "chown")
	meta := filepath.Join(store, storedir.MetaDir)
	noErr(t, os.Chmod(meta, 0), "chmod")
	cred := &syscall.Credential{Uid: nobody, Gid: nobody, Groups: []uint32{}}

	run := func(args ...string) (int, string) {
		p := binStart(t, cred, args...)
		deadline := time.Now().Add(binMountTimeout)
		for p.binRunning() {
			if m := binFindMount(mnt); m != nil {
				binForceUnmount(t, mnt)
				p.binWait()
				return 0, "MOUNTED: " + p.output.String()
			}
			if time.Now().After(deadline) {
				t.Fatalf("mmapfs %q as nobody: neither done nor mounted within %v", args, binMountTimeout)
			}
			time.Sleep(10 * time.Millisecond)
		}
		return p.binWait(), p.output.String()
	}
	code, out := run("fsck", "--store", store)
	t.Logf("fsck as nobody, meta/ mode 000: exit %d\n%s", code, crpIndent(out))
	crpNoPanic(t, "fsck", out)
	if code != 8 {
		t.Errorf("fsck of a store whose meta/ it cannot read: exit %d, want 8", code)
	}
	if !strings.Contains(out, store) || !strings.Contains(out, "permission denied") {
		t.Errorf("fsck: the message does not name the store and say \"permission denied\"")
	}
	code, out = run("mount", "--store", store, mnt)
	t.Logf("mount as nobody, meta/ mode 000: exit %d\n%s", code, crpIndent(out))
	crpNoPanic(t, "mount", out)
	if code == 0 || strings.HasPrefix(out, "MOUNTED") {
		t.Errorf("mmapfs mount as nobody accepted a store whose meta/ it cannot read")
	} else if !strings.Contains(out, store) {
		t.Errorf("the refusal does not name the store")
	}
	noErr(t, os.Chmod(meta, 0o700), "chmod")
	code, out = run("fsck", "--store", store)
	t.Logf("fsck as nobody, meta/ readable again: exit %d\n%s", code, crpIndent(out))
	if code != 0 {
		t.Errorf("fsck once meta/ is readable: exit %d, want 0", code)
	}
	p, m, res := crpMount(t, store)
	if p == nil {
		t.Fatalf("mount once meta/ is readable: %s", res)
	}
	if errs := crpCheck(t, m, tp.model, crpAllIntact, false, false, 0); len(errs) > 0 {
		t.Errorf("once meta/ is readable:\n  %s", strings.Join(errs, "\n  "))
	}
	pstUnmount(t, p, m)
}
