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

	"mmapfs/internal/fsmodel"

	"golang.org/x/sys/unix"
)

// agree reports an operation (what, on rel) that succeeded on the mount
// but that the model refused with e, a fault of the worker's bookkeeping.
// It returns whether e is 0.
func (w *worker) agree(what, rel string, e unix.Errno) bool {
	if e != 0 {
		w.fail("%s %s: done on the mount, but the model says %v", what, rel, e)
		return false
	}
	return true
}

// check compares got, read at off, with the model of f; on a mismatch it
// reports and adopts what the file holds, so that one fault is reported
// once.
func (w *worker) check(f *wfile, what string, off int, got []byte) {
	if len(got) == 0 {
		return
	}
	if int64(off+len(got)) > f.n.Size {
		w.fail("%s %s: %d bytes at %d, past the end %d", what, f.rel, len(got), off, f.n.Size)
		w.reload(f)
		return
	}
	if d := fsmodel.DataDiff(f.n.Read(int64(off), int64(len(got))), got, int64(off)); d != "" {
		w.fail("%s %s: %d bytes at %d (size %d): %s", what, f.rel, len(got), off, f.n.Size, d)
		w.reload(f)
	}
}

// reload adopts what the file at f's path holds as f's contents.
func (w *worker) reload(f *wfile) {
	if b, err := os.ReadFile(w.abs(f.rel)); err == nil {
		f.n.SetData(b)
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
	for k := range f.n.Xattrs {
		want = append(want, k)
	}
	sort.Strings(got)
	sort.Strings(want)
	if strings.Join(got, ",") != strings.Join(want, ",") {
		w.fail("listxattr %s: %v, want %v", f.rel, got, want)
	}
	for k, v := range f.n.Xattrs {
		n, err := unix.Getxattr(p, k, buf)
		if err != nil || !bytes.Equal(buf[:n], v) {
			w.fail("getxattr %s %s: %d bytes, %v; want %d bytes", f.rel, k, n, err, len(v))
		}
	}
}

// checkDir checks the names of the worker's directory d<k>.
func (w *worker) checkDir(k int) {
	dir := fmt.Sprintf("d%d", k)
	var want []string
	if d := w.m.Lookup(dir); d != nil {
		for name := range d.Kids {
			want = append(want, name)
		}
	}
	sort.Strings(want)
	got, err := readNames(w.abs(dir))
	if err != nil {
		w.fail("readdir %s: %v", dir, err)
		return
	}
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

// verifyAll checks the worker's directory (every name, type, size, link
// count, user.* attribute and byte) and its shared regions against the
// model.
func (w *worker) verifyAll() {
	for _, d := range fsmodel.Compare(w.root, w.m, &fsmodel.Options{XattrPrefix: "user."}) {
		w.fail("final check %s", d)
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
