package fsmodel

import (
	"bytes"
	"fmt"
	"strings"
)

// Diff is one way a real tree differs from the model.
type Diff struct {
	// Path is the path of the model ("" is the root), or a label such as
	// "<unlinked, fd3>" for a node compared through a descriptor.
	Path string
	// Class says what differs, in one word: names, type, stat, ino,
	// mode, owner, nlink, mtime, size, xattr, readlink, blocks, open,
	// holes or content.
	Class string
	// Msg says how, in words, without the path.
	Msg string
}

// String is the path and the message.
func (d Diff) String() string { return PathName(d.Path) + ": " + d.Msg }

// Summary joins the diffs one a line (after the first, each line begins
// with sep), at most max of them and then how many more there are.
func Summary(d []Diff, max int, sep string) string {
	var s []string
	for i, x := range d {
		if i == max {
			s = append(s, fmt.Sprintf("… and %d more", len(d)-max))
			break
		}
		s = append(s, x.String())
	}
	return strings.Join(s, sep)
}

// DataDiff describes how got, read from offset base of a file, differs
// from want; it is "" when they are equal.
func DataDiff(want, got []byte, base int64) string {
	if bytes.Equal(want, got) {
		return ""
	}
	var parts []string
	if len(got) != len(want) {
		parts = append(parts, fmt.Sprintf("%d bytes, model %d", len(got), len(want)))
	}
	n := min(len(got), len(want))
	first, count := -1, 0
	for i := 0; i < n; i++ {
		if got[i] != want[i] {
			if first < 0 {
				first = i
			}
			count++
		}
	}
	if first >= 0 {
		j := first
		for j < n && got[j] != want[j] {
			j++
		}
		parts = append(parts, fmt.Sprintf("%d of the common bytes differ, the first run of %d at offset %d: mount %x…, model %x…",
			count, j-first, base+int64(first), got[first:min(j, first+8)], want[first:min(j, first+8)]))
	}
	return strings.Join(parts, "; ")
}

// ambiguousSize reports whether size is one a file may have after an
// operation in doubt took it from old to new bytes: either, or, for one
// that grew it, a page boundary between them. The kernel sends a write
// that begins inside a page it does not have cached as two requests (the
// rest of that page, then the rest of the write), so a write in flight
// when the server died may have landed up to that boundary.
func ambiguousSize(size, old, new int) bool {
	if size == old || size == new {
		return true
	}
	return size > old && size < new && size%PageSize == 0
}

// ContentDiff compares got, the whole content of file n as read, with the
// model: exactly, or for an ambiguous node each byte as before or after
// the operation in doubt and a size ambiguousSize allows. It is "" when
// they agree.
func ContentDiff(n *Node, got []byte) string {
	data := n.Data()
	if !n.ambiguous {
		return DataDiff(data, got, 0)
	}
	old := n.before
	at := func(b []byte, i int) byte {
		if i < len(b) {
			return b[i]
		}
		return 0
	}
	var d []string
	if !ambiguousSize(len(got), len(old), len(data)) {
		d = append(d, fmt.Sprintf("size %d, want %d (after the ambiguous op) or %d (before it)", len(got), len(data), len(old)))
	}
	bad, first := 0, -1
	for i := range got {
		if got[i] != at(data, i) && got[i] != at(old, i) {
			if first < 0 {
				first = i
			}
			bad++
		}
	}
	if first >= 0 {
		d = append(d, fmt.Sprintf("%d bytes are neither as before the ambiguous op nor as after it, the first at %d: %#02x, want %#02x (after) or %#02x (before)",
			bad, first, got[first], at(data, first), at(old, first)))
	}
	if len(d) > 0 && len(got) > len(old) {
		// Say how much of what lies past the old size is the new data.
		newBytes := 0
		for i := len(old); i < len(got); i++ {
			if got[i] == at(data, i) {
				newBytes++
			}
		}
		d = append(d, fmt.Sprintf("of the %d bytes past the old size, %d are as after the op", len(got)-len(old), newBytes))
	}
	return strings.Join(d, "; ")
}

// XattrDiff describes how the attributes got differ from want, name by
// name; it is "" when they are equal.
func XattrDiff(want, got map[string][]byte) string {
	names := map[string]bool{}
	for k := range want {
		names[k] = true
	}
	for k := range got {
		names[k] = true
	}
	var d []string
	for _, k := range sortedNames(names) {
		vw, inw := want[k]
		vg, ing := got[k]
		switch {
		case !ing:
			d = append(d, fmt.Sprintf("%s missing", k))
		case !inw:
			d = append(d, fmt.Sprintf("%s appeared (%q)", k, short(vg)))
		case !bytes.Equal(vw, vg):
			d = append(d, fmt.Sprintf("%s is %q (%d bytes), model %q (%d bytes)", k, short(vg), len(vg), short(vw), len(vw)))
		}
	}
	return strings.Join(d, "; ")
}

func short(b []byte) string {
	if len(b) > 40 {
		return string(b[:40]) + "…"
	}
	return string(b)
}

// extString formats extents as "{[0,4096) [8192,9000)}".
func extString(e [][2]int64) string {
	var s []string
	for _, x := range e {
		s = append(s, fmt.Sprintf("[%d,%d)", x[0], x[1]))
	}
	return "{" + strings.Join(s, " ") + "}"
}
