package main

// The soak worker's checks: what the mount returns compared with the
// model, during the run and once more at its end.

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"sort"
	"strings"

	"golang.org/x/sys/unix"
)

// check compares got with the model of f; on a mismatch it reports and
// adopts what the file holds, so that one fault is reported once.
func (w *worker) check(f *wfile, what string, off int, got []byte) {
	if len(got) == 0 {
		return
	}
	if off+len(got) > len(f.data) {
		w.fail("%s %s: %d bytes at %d, past the end %d", what, f.rel, len(got), off, len(f.data))
		w.reload(f)
		return
	}
	want := f.data[off : off+len(got)]
	if bytes.Equal(got, want) {
		return
	}
	i := 0
	for i < len(got) && got[i] == want[i] {
		i++
	}
	w.fail("%s %s: %d bytes at %d differ from byte %d (got %#x want %#x, size %d)",
		what, f.rel, len(got), off, off+i, got[i], want[i], len(f.data))
	w.reload(f)
}

// reload adopts what the file at f's path holds as f's contents.
func (w *worker) reload(f *wfile) {
	if b, err := os.ReadFile(w.abs(f.rel)); err == nil {
		f.adopt(b)
	}
}

// checkXattrs checks the names and values of f's user.* attributes.
func (w *worker) checkXattrs(f *wfile) {
	p := w.abs(f.rel)
	buf := make([]byte, 64<<10)
	n, err := unix.Listxattr(p, buf)
	if err != nil {
		w.fail("listxattr %s: %v", f.rel, err)
		return
	}
	var got, want []string
	for _, s := range strings.Split(string(buf[:n]), "\x00") {
		if strings.HasPrefix(s, "user.") {
			got = append(got, s)
		}
	}
	for k := range f.xattrs {
		want = append(want, k)
	}
	sort.Strings(got)
	sort.Strings(want)
	if strings.Join(got, ",") != strings.Join(want, ",") {
		w.fail("listxattr %s: %v, want %v", f.rel, got, want)
	}
	for k, v := range f.xattrs {
		n, err := unix.Getxattr(p, k, buf)
		if err != nil || !bytes.Equal(buf[:n], v) {
			w.fail("getxattr %s %s: %d bytes, %v; want %d bytes", f.rel, k, n, err, len(v))
		}
	}
}

// listDir returns the sorted names of the worker's directory dir.
func (w *worker) listDir(dir string) []string {
	names, err := readNames(w.abs(dir))
	if err != nil {
		w.fail("readdir %s: %v", dir, err)
		return nil
	}
	return names
}

// checkDir checks the names of the worker's directory d<k>.
func (w *worker) checkDir(k int) {
	dir := fmt.Sprintf("d%d", k)
	want := w.namesIn(dir)
	sort.Strings(want)
	got := w.listDir(dir)
	if strings.Join(got, "/") != strings.Join(want, "/") {
		w.fail("readdir %s: %d names %v, want %d names %v", dir, len(got), trunc(got), len(want), trunc(want))
	}
}

// trunc shortens a list of names for a message.
func trunc(s []string) []string {
	if len(s) > 8 {
		return append(s[:8:8], "…")
	}
	return s
}

// verifyAll checks every file, directory and shared region against the model.
func (w *worker) verifyAll() {
	for _, f := range w.files {
		got, err := os.ReadFile(w.abs(f.rel))
		if err != nil {
			w.fail("final read %s: %v", f.rel, err)
			continue
		}
		if len(got) != len(f.data) {
			w.fail("final read %s: %d bytes, want %d", f.rel, len(got), len(f.data))
			continue
		}
		w.check(f, "final read", 0, got)
		w.checkXattrs(f)
	}
	for k := 0; k < nSubdirs; k++ {
		w.checkDir(k)
	}
	top := w.listDir(".")
	if want := []string{"d0", "d1", "d2", "d3"}; strings.Join(top, ",") != strings.Join(want, ",") {
		w.fail("final readdir of w%d: %v, want %v (stray links, symlinks or trees)", w.id, trunc(top), want)
	}
	for k := 0; k < sharedFiles; k++ {
		if w.sharedData[k] == nil {
			continue
		}
		f, err := os.Open(w.sharedPath(k))
		if err != nil {
			w.fail("final open shared s%d: %v", k, err)
			continue
		}
		got := make([]byte, regionSize)
		n, err := io.ReadFull(io.NewSectionReader(f, int64(w.id*regionSize), regionSize), got)
		f.Close()
		if err != nil && !errors.Is(err, io.ErrUnexpectedEOF) && !errors.Is(err, io.EOF) || !regionEqual(got[:n], w.sharedData[k]) {
			w.fail("final shared s%d region %d differs (%v)", k, w.id, err)
		}
	}
}

// regionEqual reports whether got (possibly cut short by the end of the
// file) holds what want does, want's remainder being zeros.
func regionEqual(got, want []byte) bool {
	if len(got) > len(want) || !bytes.Equal(got, want[:len(got)]) {
		return false
	}
	for _, b := range want[len(got):] {
		if b != 0 {
			return false
		}
	}
	return true
}
