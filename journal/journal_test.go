package journal

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"maps"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
)

// ---------------------------------------------------------------------
// Helpers: encoding independent of the package.

var testCRC = crc32.MakeTable(crc32.Castagnoli)

// makeFrame builds a frame as the format describes it, without Batch.
func makeFrame(seq uint64, payload []byte) []byte {
	p := make([]byte, 16+len(payload))
	binary.LittleEndian.PutUint32(p[0:], uint32(len(payload)))
	binary.LittleEndian.PutUint64(p[8:], seq)
	copy(p[16:], payload)
	binary.LittleEndian.PutUint32(p[4:], crc32.Checksum(p[8:], testCRC))
	return p
}

// makeHeader builds a meta file header as the format describes it.
func makeHeader(version, kind uint32, gen uint64) []byte {
	h := make([]byte, 24)
	copy(h, "MMAPFS\x00M")
	binary.LittleEndian.PutUint32(h[8:], version)
	binary.LittleEndian.PutUint32(h[12:], kind)
	binary.LittleEndian.PutUint64(h[16:], gen)
	return h
}

// payloadOf returns a copy of the records of b.
func payloadOf(b *Batch) []byte {
	if len(b.buf) < frameHead {
		return nil
	}
	return append([]byte(nil), b.buf[frameHead:]...)
}

// decodeAll decodes every record of a payload.
func decodeAll(p []byte) ([]record, error) {
	d := decoder{p: p}
	var out []record
	var r record
	for d.next(&r) {
		out = append(out, r)
	}
	return out, d.err
}

// applyBatch applies the records of b to st, as a replay would.
func applyBatch(t testing.TB, st *State, b *Batch) {
	t.Helper()
	recs, err := decodeAll(payloadOf(b))
	if err != nil {
		t.Fatalf("decoding a batch built by the test: %v", err)
	}
	for i := range recs {
		st.apply(&recs[i])
	}
}

func inodeEqual(a, b *Inode) bool {
	if a.Ino != b.Ino || a.Mode != b.Mode || a.UID != b.UID || a.GID != b.GID || a.Rdev != b.Rdev ||
		a.Atime != b.Atime || a.Mtime != b.Mtime || a.Ctime != b.Ctime || a.Btime != b.Btime ||
		a.Size != b.Size || a.Blob != b.Blob || a.Alloc != b.Alloc || a.Nlink != b.Nlink ||
		!bytes.Equal(a.Target, b.Target) || len(a.Xattr) != len(b.Xattr) {
		return false
	}
	for k, v := range a.Xattr {
		if w, ok := b.Xattr[k]; !ok || !bytes.Equal(v, w) {
			return false
		}
	}
	return true
}

func diffInode(a, b *Inode) string {
	if inodeEqual(a, b) {
		return ""
	}
	var d []string
	f := func(name string, x, y any) {
		if x != y {
			d = append(d, fmt.Sprintf("%s %v != %v", name, x, y))
		}
	}
	f("Ino", a.Ino, b.Ino)
	f("Mode", a.Mode, b.Mode)
	f("UID", a.UID, b.UID)
	f("GID", a.GID, b.GID)
	f("Rdev", a.Rdev, b.Rdev)
	f("Atime", a.Atime, b.Atime)
	f("Mtime", a.Mtime, b.Mtime)
	f("Ctime", a.Ctime, b.Ctime)
	f("Btime", a.Btime, b.Btime)
	f("Size", a.Size, b.Size)
	f("Blob", a.Blob, b.Blob)
	f("Alloc", a.Alloc, b.Alloc)
	f("Nlink", a.Nlink, b.Nlink)
	if !bytes.Equal(a.Target, b.Target) {
		d = append(d, fmt.Sprintf("Target %q != %q", a.Target, b.Target))
	}
	if len(a.Xattr) != len(b.Xattr) {
		d = append(d, fmt.Sprintf("Xattr %q != %q", a.Xattr, b.Xattr))
	} else {
		for k, v := range a.Xattr {
			w, ok := b.Xattr[k]
			if !ok || !bytes.Equal(v, w) {
				d = append(d, fmt.Sprintf("Xattr %q != %q", a.Xattr, b.Xattr))
				break
			}
		}
	}
	return strings.Join(d, ", ")
}

// diffState compares two states; empty entry maps count as absent, nil
// and empty byte slices and maps are equal.
func diffState(got, want *State) []string {
	var d []string
	for _, ino := range sortedKeysT(want.Inodes) {
		g := got.Inodes[ino]
		if g == nil {
			d = append(d, fmt.Sprintf("inode %d missing", ino))
			continue
		}
		if s := diffInode(g, want.Inodes[ino]); s != "" {
			d = append(d, fmt.Sprintf("inode %d: got/want: %s", ino, s))
		}
	}
	for _, ino := range sortedKeysT(got.Inodes) {
		if want.Inodes[ino] == nil {
			d = append(d, fmt.Sprintf("inode %d should not be there", ino))
		}
	}
	dirs := make(map[uint64]bool)
	for k, v := range got.Entries {
		if len(v) > 0 {
			dirs[k] = true
		}
	}
	for k, v := range want.Entries {
		if len(v) > 0 {
			dirs[k] = true
		}
	}
	for _, dir := range sortedKeysT(dirs) {
		g, w := got.Entries[dir], want.Entries[dir]
		if !maps.Equal(g, w) && (len(g) > 0 || len(w) > 0) {
			d = append(d, fmt.Sprintf("entries of %d: got %v, want %v", dir, g, w))
		}
	}
	if got.NextIno != want.NextIno || got.NextBlob != want.NextBlob {
		d = append(d, fmt.Sprintf("next: got ino %d blob %d, want ino %d blob %d",
			got.NextIno, got.NextBlob, want.NextIno, want.NextBlob))
	}
	return d
}

func checkState(t testing.TB, got, want *State) {
	t.Helper()
	if d := diffState(got, want); len(d) > 0 {
		t.Fatalf("state differs:\n\t%s", strings.Join(d, "\n\t"))
	}
}

func cloneState(st *State) *State {
	c := &State{
		Inodes:   make(map[uint64]*Inode, len(st.Inodes)),
		Entries:  make(map[uint64]map[string]uint64, len(st.Entries)),
		NextIno:  st.NextIno,
		NextBlob: st.NextBlob,
	}
	for ino, in := range st.Inodes {
		n := *in
		n.Target = bytes.Clone(in.Target)
		if in.Xattr != nil {
			n.Xattr = make(map[string][]byte, len(in.Xattr))
			for k, v := range in.Xattr {
				n.Xattr[k] = bytes.Clone(v)
			}
		}
		c.Inodes[ino] = &n
	}
	for dir, ents := range st.Entries {
		c.Entries[dir] = maps.Clone(ents)
	}
	return c
}

func sortedKeysT[K uint64 | string, V any](m map[K]V) []K {
	return slices.Sorted(maps.Keys(m))
}

// testAddState writes every inode, xattr and entry of st to sn, perBatch
// inodes to a frame.
func testAddState(sn *Snapshot, st *State, perBatch int) {
	var b Batch
	b.Reset()
	b.Next(st.NextIno, st.NextBlob)
	n := 0
	for _, ino := range sortedKeysT(st.Inodes) {
		in := st.Inodes[ino]
		b.Inode(in)
		for _, name := range sortedKeysT(in.Xattr) {
			b.Xattr(ino, name, in.Xattr[name])
		}
		for _, name := range sortedKeysT(st.Entries[ino]) {
			b.Entry(ino, name, st.Entries[ino][name])
		}
		n++
		if n == perBatch {
			sn.add(&b, uint64(n))
			b.Reset()
			n = 0
		}
	}
	sn.add(&b, uint64(n))
}

// ---------------------------------------------------------------------
// Helpers: stores.

// newStoreDir returns a new, empty journal directory: meta/ of a store.
func newStoreDir(t testing.TB) string {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "meta")
	if err := os.Mkdir(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	return dir
}

func jpath(dir string, gen uint64) string {
	return filepath.Join(dir, fmt.Sprintf("journal-%016x", gen))
}

func spath(dir string, gen uint64) string {
	return filepath.Join(dir, fmt.Sprintf("snapshot-%016x", gen))
}

func openT(t testing.TB, dir string, opts Options) (*Meta, *State, *Report) {
	t.Helper()
	m, st, rep, err := Open(dir, opts)
	if err != nil {
		t.Fatalf("Open(%s): %v", dir, err)
	}
	return m, st, rep
}

func closeT(t testing.TB, m *Meta) {
	t.Helper()
	if err := m.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
}

func commitT(t testing.TB, m *Meta, b *Batch) {
	t.Helper()
	if err := m.Commit(b); err != nil {
		t.Fatalf("Commit: %v", err)
	}
}

func fileSize(t testing.TB, name string) int64 {
	t.Helper()
	fi, err := os.Stat(name)
	if err != nil {
		t.Fatal(err)
	}
	return fi.Size()
}

func metaNames(t testing.TB, dir string) []string {
	t.Helper()
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range ents {
		names = append(names, e.Name())
	}
	return names
}

// copyStore copies the meta/ of a closed store to a new store directory.
func copyStore(t testing.TB, src string) string {
	t.Helper()
	dst := newStoreDir(t)
	if err := os.MkdirAll(dst, 0o700); err != nil {
		t.Fatal(err)
	}
	for _, n := range metaNames(t, src) {
		data, err := os.ReadFile(filepath.Join(src, n))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dst, n), data, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	return dst
}

func flipBit(t testing.TB, name string, off int64, bit uint) {
	t.Helper()
	data, err := os.ReadFile(name)
	if err != nil {
		t.Fatal(err)
	}
	data[off] ^= 1 << bit
	if err := os.WriteFile(name, data, 0o600); err != nil {
		t.Fatal(err)
	}
}

func hasSubstr(list []string, sub string) bool {
	return slices.ContainsFunc(list, func(s string) bool { return strings.Contains(s, sub) })
}

// ---------------------------------------------------------------------
// Helpers: a random tree, built batch by batch, with its model state.

type tree struct {
	rng  *rand.Rand
	st   *State // the model: every batch applied
	name int
}

func newTree(seed uint64) *tree {
	return &tree{rng: rand.New(rand.NewPCG(seed, 7)), st: NewState()}
}

func (tr *tree) newName() string {
	tr.name++
	return "n" + strconv.Itoa(tr.name)
}

func (tr *tree) done(t testing.TB, b *Batch) *Batch {
	applyBatch(t, tr.st, b)
	return b
}

// root returns the batch that makes the root directory.
func (tr *tree) root(t testing.TB) *Batch {
	var b Batch
	b.Reset()
	b.Inode(&Inode{Ino: RootIno, Mode: syscall.S_IFDIR | 0o755, Nlink: 2, Mtime: 1, Ctime: 2, Btime: -3})
	b.Next(tr.st.NextIno, tr.st.NextBlob)
	return tr.done(t, &b)
}

func (tr *tree) dirs() []uint64 {
	var d []uint64
	for _, ino := range sortedKeysT(tr.st.Inodes) {
		if tr.st.Inodes[ino].IsDir() {
			d = append(d, ino)
		}
	}
	return d
}

type entry struct {
	parent uint64
	name   string
	child  uint64
}

func (tr *tree) fileEntries() []entry {
	var es []entry
	for _, p := range sortedKeysT(tr.st.Entries) {
		for _, n := range sortedKeysT(tr.st.Entries[p]) {
			c := tr.st.Entries[p][n]
			if in := tr.st.Inodes[c]; in != nil && !in.IsDir() {
				es = append(es, entry{p, n, c})
			}
		}
	}
	return es
}

func (tr *tree) pick(list []uint64) uint64 { return list[tr.rng.IntN(len(list))] }

// create returns a batch making a new regular file in a random directory.
func (tr *tree) create(t testing.TB) *Batch {
	var b Batch
	b.Reset()
	ino, blob := tr.st.NextIno, tr.st.NextBlob
	b.Inode(&Inode{Ino: ino, Mode: syscall.S_IFREG | 0o644, UID: tr.rng.Uint32(), GID: 5,
		Size: tr.rng.Int64N(1 << 40), Blob: blob, Alloc: tr.rng.Int64N(1 << 30), Nlink: 1,
		Mtime: tr.rng.Int64() - math.MaxInt64/2, Atime: -1})
	b.Entry(tr.pick(tr.dirs()), tr.newName(), ino)
	return tr.done(t, &b)
}

// step returns a batch making a random change.
func (tr *tree) step(t testing.TB) *Batch {
	var b Batch
	b.Reset()
	dirs := tr.dirs()
	files := tr.fileEntries()
	inos := sortedKeysT(tr.st.Inodes)
	switch k := tr.rng.IntN(11); {
	case k < 2:
		ino := tr.st.NextIno
		b.Inode(&Inode{Ino: ino, Mode: syscall.S_IFDIR | 0o700, Nlink: 2, Ctime: tr.rng.Int64()})
		b.Entry(tr.pick(dirs), tr.newName(), ino)
	case k < 4:
		return tr.create(t)
	case k < 5:
		ino := tr.st.NextIno
		target := make([]byte, 1+tr.rng.IntN(60))
		for i := range target {
			target[i] = byte(tr.rng.Uint32())
		}
		b.Inode(&Inode{Ino: ino, Mode: syscall.S_IFLNK | 0o777, Target: target, Size: int64(len(target)), Nlink: 1})
		b.Entry(tr.pick(dirs), tr.newName(), ino)
	case k < 6:
		value := make([]byte, tr.rng.IntN(40))
		for i := range value {
			value[i] = byte(tr.rng.Uint32())
		}
		b.Xattr(tr.pick(inos), "user."+strconv.Itoa(tr.rng.IntN(4)), value)
	case k < 7:
		ino := tr.pick(inos)
		names := sortedKeysT(tr.st.Inodes[ino].Xattr)
		if len(names) == 0 {
			b.XattrDel(ino, "user.none")
		} else {
			b.XattrDel(ino, names[tr.rng.IntN(len(names))])
		}
	case k < 8 && len(files) > 0:
		// rename: both entries in one frame
		e := files[tr.rng.IntN(len(files))]
		b.Entry(e.parent, e.name, 0)
		b.Entry(tr.pick(dirs), tr.newName(), e.child)
	case k < 9 && len(files) > 0:
		// unlink, and free with the last name; or a hard link
		e := files[tr.rng.IntN(len(files))]
		if tr.rng.IntN(3) == 0 {
			b.Entry(tr.pick(dirs), tr.newName(), e.child)
			break
		}
		b.Entry(e.parent, e.name, 0)
		links := 0
		for _, f := range files {
			if f.child == e.child {
				links++
			}
		}
		if links == 1 {
			b.Free(e.child)
		}
	case k < 10:
		in := *tr.st.Inodes[tr.pick(inos)]
		in.Mtime = -tr.rng.Int64()
		in.Atime = math.MinInt64
		in.Nlink = tr.rng.Uint32()
		b.Inode(&in)
	default:
		b.Next(tr.st.NextIno+uint64(tr.rng.IntN(3)), tr.st.NextBlob+uint64(tr.rng.IntN(3)))
	}
	if b.Len() == 0 {
		return tr.create(t)
	}
	return tr.done(t, &b)
}

// ---------------------------------------------------------------------
// Encoding.

func TestFrameFormat(t *testing.T) {
	var b Batch
	b.Reset()
	b.Free(42)
	want := makeFrame(9, []byte{recFree, 42})
	if got := b.frame(9); !bytes.Equal(got, want) {
		t.Fatalf("frame = %x, want %x (length, CRC-32C of seq+payload, seq, payload)", got, want)
	}
	if got := header(kindJournal, 0x1122); !bytes.Equal(got, makeHeader(Version, kindJournal, 0x1122)) {
		t.Fatalf("header = %x", got)
	}
	kind, gen, err := parseHeader(makeHeader(1, kindSnapshot, 77))
	if err != nil || kind != kindSnapshot || gen != 77 {
		t.Fatalf("parseHeader = %d %d %v", kind, gen, err)
	}
	for _, h := range [][]byte{nil, make([]byte, 24), makeHeader(1, 1, 1)[:23], append([]byte("MMAPFS\x00X"), make([]byte, 16)...)} {
		if _, _, err := parseHeader(h); err == nil || errors.Is(err, ErrVersion) {
			t.Errorf("parseHeader(%x) = %v, want a bad magic error", h, err)
		}
	}
	for _, v := range []uint32{0, Version + 1, math.MaxUint32} {
		_, _, err := parseHeader(makeHeader(v, kindJournal, 1))
		if !errors.Is(err, ErrVersion) || !strings.Contains(err.Error(), strconv.Itoa(int(v))) {
			t.Errorf("parseHeader(version %d) = %v", v, err)
		}
	}
}

func TestRecordRoundTrip(t *testing.T) {
	full := Inode{
		Ino: math.MaxInt64, Mode: math.MaxUint32, UID: math.MaxUint32, GID: 1, Rdev: 0x0801,
		Atime: math.MinInt64, Mtime: -1, Ctime: math.MaxInt64, Btime: -1_000_000_007,
		Size: math.MaxInt64, Blob: math.MaxInt64, Alloc: 1 << 40, Nlink: math.MaxUint32,
		Target: []byte("../a/b\x00\xff"),
	}
	binValue := make([]byte, 300)
	for i := range binValue {
		binValue[i] = byte(i)
	}
	bigValue := bytes.Repeat([]byte{0xa5}, 64<<10)
	tests := []struct {
		name  string
		build func(b *Batch)
		want  []record
	}{
		{"inode all fields", func(b *Batch) { b.Inode(&full) },
			[]record{{typ: recInode, ino: full.Ino, inode: full}}},
		{"inode zero fields", func(b *Batch) { b.Inode(&Inode{Ino: 1}) },
			[]record{{typ: recInode, ino: 1, inode: Inode{Ino: 1}}}},
		{"inode of a lent file", func(b *Batch) {
			b.Inode(&Inode{Ino: 4, Mode: syscall.S_IFREG | 0o644, Size: 5, Blob: 3, Lent: true, FileMtime: -7, FileCtime: math.MaxInt64})
		}, []record{
			{typ: recInode, ino: 4, inode: Inode{Ino: 4, Mode: syscall.S_IFREG | 0o644, Size: 5, Blob: 3}},
			{typ: recLoan, ino: 4, inode: Inode{FileMtime: -7, FileCtime: math.MaxInt64}},
		}},
		{"inode with reserved pages", func(b *Batch) {
			b.Inode(&Inode{Ino: 5, Mode: syscall.S_IFREG | 0o600, Blob: 9, Reserved: [][2]int64{{0, 1}, {1, 4}, {10, 1 << 40}}})
		}, []record{
			{typ: recInode, ino: 5, inode: Inode{Ino: 5, Mode: syscall.S_IFREG | 0o600, Blob: 9}},
			{typ: recReserved, ino: 5, inode: Inode{Reserved: [][2]int64{{0, 1}, {1, 4}, {10, 1 << 40}}}},
		}},
		{"inode ignores xattrs", func(b *Batch) { b.Inode(&Inode{Ino: 2, Xattr: map[string][]byte{"a": {1}}}) },
			[]record{{typ: recInode, ino: 2, inode: Inode{Ino: 2}}}},
		{"inode negative times", func(b *Batch) {
			b.Inode(&Inode{Ino: 3, Mode: syscall.S_IFLNK | 0o777, Atime: -1, Mtime: -2, Ctime: math.MinInt64, Btime: -86400e9, Target: []byte("x")})
		}, []record{{typ: recInode, ino: 3, inode: Inode{Ino: 3, Mode: syscall.S_IFLNK | 0o777, Atime: -1, Mtime: -2, Ctime: math.MinInt64, Btime: -86400e9, Target: []byte("x")}}}},
		{"entry", func(b *Batch) { b.Entry(7, "héllo wörld", 1<<63-1) },
			[]record{{typ: recEntry, ino: 7, name: "héllo wörld", child: 1<<63 - 1}}},
		{"entry removal", func(b *Batch) { b.Entry(7, "gone", 0) },
			[]record{{typ: recEntry, ino: 7, name: "gone", child: 0}}},
		{"entry empty name", func(b *Batch) { b.Entry(7, "", 3) },
			[]record{{typ: recEntry, ino: 7, name: "", child: 3}}},
		{"xattr binary", func(b *Batch) { b.Xattr(9, "user.bin", binValue) },
			[]record{{typ: recXattr, ino: 9, name: "user.bin", value: binValue}}},
		{"xattr 64 KiB", func(b *Batch) { b.Xattr(9, "user.big", bigValue) },
			[]record{{typ: recXattr, ino: 9, name: "user.big", value: bigValue}}},
		{"xattr empty value", func(b *Batch) { b.Xattr(9, "user.empty", []byte{}) },
			[]record{{typ: recXattr, ino: 9, name: "user.empty", value: []byte{}}}},
		{"xattr nil value", func(b *Batch) { b.Xattr(9, "trusted.x", nil) },
			[]record{{typ: recXattr, ino: 9, name: "trusted.x"}}},
		{"xattr del", func(b *Batch) { b.XattrDel(9, "user.bin") },
			[]record{{typ: recXattrDel, ino: 9, name: "user.bin"}}},
		{"free", func(b *Batch) { b.Free(1 << 40) },
			[]record{{typ: recFree, ino: 1 << 40}}},
		{"next", func(b *Batch) { b.Next(math.MaxInt64, 0) },
			[]record{{typ: recNext, next1: math.MaxInt64, next2: 0}}},
		{"end", func(b *Batch) { b.end(0) },
			[]record{{typ: recEnd, next1: 0}}},
		{"end count", func(b *Batch) { b.end(123456789) },
			[]record{{typ: recEnd, next1: 123456789}}},
		{"rename: several records in a frame", func(b *Batch) {
			b.Entry(1, "a", 0)
			b.Entry(2, "b", 5)
			b.Inode(&Inode{Ino: 5, Mode: syscall.S_IFREG, Size: 3, Blob: 4, Alloc: 4096, Nlink: 1})
			b.Next(6, 5)
		}, []record{
			{typ: recEntry, ino: 1, name: "a"},
			{typ: recEntry, ino: 2, name: "b", child: 5},
			{typ: recInode, ino: 5, inode: Inode{Ino: 5, Mode: syscall.S_IFREG, Size: 3, Blob: 4, Alloc: 4096, Nlink: 1}},
			{typ: recNext, next1: 6, next2: 5},
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			for _, zero := range []bool{false, true} {
				var b Batch // a zero Batch must work without Reset
				if !zero {
					b.Reset()
				}
				tc.build(&b)
				if b.Len() != len(tc.want) {
					t.Fatalf("Len = %d, want %d", b.Len(), len(tc.want))
				}
				seq := uint64(3)
				fr := b.frame(seq)
				if b.Bytes() != len(fr)-frameHead {
					t.Fatalf("Bytes = %d, frame %d", b.Bytes(), len(fr))
				}
				if !bytes.Equal(fr, makeFrame(seq, fr[frameHead:])) {
					t.Fatal("the frame header does not match the format")
				}
				// Followed by more bytes, a frame still decodes alone.
				buf := append(append([]byte(nil), fr...), 0xff, 0xfe)
				payload, n, err := frameAt(buf, seq)
				if err != nil || n != len(fr) {
					t.Fatalf("frameAt = %d, %v; want %d", n, err, len(fr))
				}
				got, err := decodeAll(payload)
				if err != nil {
					t.Fatalf("decode: %v", err)
				}
				if len(got) != len(tc.want) {
					t.Fatalf("decoded %d records, want %d", len(got), len(tc.want))
				}
				for i := range got {
					if d := diffRecord(&got[i], &tc.want[i]); d != "" {
						t.Errorf("record %d: %s", i, d)
					}
				}
				if _, _, err := frameAt(fr, seq+1); err == nil {
					t.Error("frameAt accepted the wrong sequence number")
				}
				for cut := 0; cut < len(fr); cut += 1 + len(fr)/50 {
					if _, _, err := frameAt(fr[:cut], seq); err == nil {
						t.Errorf("frameAt accepted a frame cut to %d bytes", cut)
					}
				}
				for i := 0; i < len(fr); i += 1 + len(fr)/50 {
					c := bytes.Clone(fr)
					c[i] ^= 0x10
					if _, _, err := frameAt(c, seq); err == nil {
						t.Errorf("frameAt accepted a frame with byte %d flipped", i)
					}
				}
				// Batches are reused.
				b.Reset()
				if b.Len() != 0 || b.Bytes() != 0 {
					t.Fatalf("after Reset: Len %d Bytes %d", b.Len(), b.Bytes())
				}
			}
		})
	}
}

func diffRecord(a, b *record) string {
	if a.typ == b.typ && a.ino == b.ino && a.child == b.child && a.name == b.name && a.next1 == b.next1 &&
		a.next2 == b.next2 && bytes.Equal(a.value, b.value) && inodeEqual(&a.inode, &b.inode) {
		return ""
	}
	var d []string
	if a.typ != b.typ || a.ino != b.ino || a.child != b.child || a.name != b.name || a.next1 != b.next1 || a.next2 != b.next2 {
		d = append(d, fmt.Sprintf("got {typ %d ino %d child %d name %q next %d %d}, want {typ %d ino %d child %d name %q next %d %d}",
			a.typ, a.ino, a.child, a.name, a.next1, a.next2, b.typ, b.ino, b.child, b.name, b.next1, b.next2))
	}
	if !bytes.Equal(a.value, b.value) {
		d = append(d, fmt.Sprintf("value %q, want %q", a.value, b.value))
	}
	if s := diffInode(&a.inode, &b.inode); s != "" {
		d = append(d, "inode: "+s)
	}
	return strings.Join(d, "; ")
}

func TestDecodeRejects(t *testing.T) {
	uv := func(p []byte, v uint64) []byte { return binary.AppendUvarint(p, v) }
	inodeWith := func(mode uint64, size, alloc int64, nlink uint64) []byte {
		p := []byte{recInode}
		p = uv(p, 5)
		p = uv(p, mode)
		p = uv(uv(uv(p, 0), 0), 0)
		for range 4 {
			p = binary.AppendVarint(p, 0)
		}
		p = binary.AppendVarint(p, size)
		p = uv(p, 0)
		p = binary.AppendVarint(p, alloc)
		p = uv(p, nlink)
		return uv(p, 0)
	}
	okInode := inodeWith(syscall.S_IFREG, 1, 1, 1)
	if recs, err := decodeAll(okInode); err != nil || len(recs) != 1 || recs[0].inode.Size != 1 {
		t.Fatalf("the hand-made inode record does not decode: %v %v", recs, err)
	}
	var valid Batch
	valid.Free(3)
	tests := []struct {
		name string
		p    []byte
	}{
		{"unknown type", []byte{0}},
		{"unknown type 8", []byte{8, 1}},
		{"type 255", []byte{255}},
		{"mode out of range", inodeWith(1<<32, 0, 0, 1)},
		{"nlink out of range", inodeWith(0, 0, 0, 1<<32)},
		{"negative size", inodeWith(syscall.S_IFREG, -1, 0, 1)},
		{"negative alloc", inodeWith(syscall.S_IFREG, 0, -1, 1)},
		{"inode cut short", okInode[:len(okInode)-1]},
		{"inode ino 0", []byte{recInode, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0}},
		{"entry parent 0", []byte{recEntry, 0, 1, 'a', 2}},
		{"entry name too long", []byte{recEntry, 1, 5, 'a', 2}},
		{"entry name length huge", append([]byte{recEntry, 1}, binary.AppendUvarint(nil, math.MaxUint64)...)},
		{"entry no child", []byte{recEntry, 1, 1, 'a'}},
		{"xattr ino 0", []byte{recXattr, 0, 1, 'a', 0}},
		{"xattr value cut", []byte{recXattr, 1, 1, 'a', 3, 1, 2}},
		{"xattr del ino 0", []byte{recXattrDel, 0, 0}},
		{"free 0", []byte{recFree, 0}},
		{"free cut", []byte{recFree}},
		{"free overlong varint", []byte{recFree, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01}},
		{"next cut", []byte{recNext, 1}},
		{"end cut", []byte{recEnd}},
		{"valid then garbage", append(payloadOf(&valid), 99)},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := decodeAll(tc.p); err == nil {
				t.Fatalf("decoding %x succeeded", tc.p)
			}
			// In a frame, the bad record makes the whole frame unread.
			data := append(makeHeader(1, kindJournal, 1), makeFrame(1, payloadOf(&valid))...)
			data = append(data, makeFrame(2, tc.p)...)
			var got []record
			valid, frames, err := decodeFrames(data, headerSize, 1, func(r *record) { got = append(got, *r) })
			if err == nil || frames != 1 || valid != headerSize+frameHead+2 || len(got) != 1 {
				t.Fatalf("decodeFrames = %d, %d, %v, %d records", valid, frames, err, len(got))
			}
		})
	}
	if _, _, err := frameAt(binary.LittleEndian.AppendUint32(nil, maxFrame+1), 1); err == nil {
		t.Error("frameAt accepted a frame longer than maxFrame")
	}
}

func TestApply(t *testing.T) {
	st := NewState()
	if st.NextIno != RootIno+1 || st.NextBlob != 1 || len(st.Inodes) != 0 {
		t.Fatalf("NewState = %+v", st)
	}
	var b Batch
	b.Inode(&Inode{Ino: 1, Mode: syscall.S_IFDIR | 0o755})
	b.Inode(&Inode{Ino: 10, Mode: syscall.S_IFDIR | 0o755})
	b.Entry(1, "d", 10)
	b.Inode(&Inode{Ino: 11, Mode: syscall.S_IFREG, Blob: 30})
	b.Entry(10, "f", 11)
	b.Xattr(11, "user.a", []byte("1"))
	b.Xattr(11, "user.b", nil)
	b.Xattr(99, "user.lost", []byte("x")) // no such inode: ignored
	b.XattrDel(99, "user.lost")
	b.Inode(&Inode{Ino: 11, Mode: syscall.S_IFREG, Blob: 30, Size: 5}) // keeps the xattrs
	b.XattrDel(11, "user.a")
	b.Entry(50, "x", 0) // removal from a directory without entries
	applyBatch(t, st, &b)
	want := &State{
		Inodes: map[uint64]*Inode{
			1:  {Ino: 1, Mode: syscall.S_IFDIR | 0o755},
			10: {Ino: 10, Mode: syscall.S_IFDIR | 0o755},
			11: {Ino: 11, Mode: syscall.S_IFREG, Blob: 30, Size: 5, Xattr: map[string][]byte{"user.b": nil}},
		},
		Entries: map[uint64]map[string]uint64{1: {"d": 10}, 10: {"f": 11}},
		NextIno: 12, NextBlob: 31,
	}
	checkState(t, st, want)

	b.Reset()
	b.Next(5, 5) // never lowers
	b.Free(10)   // goes with its entries
	b.Entry(1, "d", 0)
	applyBatch(t, st, &b)
	delete(want.Inodes, 10)
	want.Entries = map[uint64]map[string]uint64{}
	checkState(t, st, want)

	b.Reset()
	b.Next(1000, 2000)
	b.Free(11)
	b.Inode(&Inode{Ino: 11, Mode: syscall.S_IFREG}) // reused: no old xattrs
	applyBatch(t, st, &b)
	want.Inodes[11] = &Inode{Ino: 11, Mode: syscall.S_IFREG}
	want.NextIno, want.NextBlob = 1000, 2000
	checkState(t, st, want)
}

// ---------------------------------------------------------------------
// Open, Commit, reopen.

func TestOpenCommitReopen(t *testing.T) {
	dir := newStoreDir(t)
	m, st, rep := openT(t, dir, Options{})
	if rep.Generation != 1 || rep.Frames != 0 || rep.Dropped != 0 || len(rep.Damage) != 0 {
		t.Fatalf("fresh store: report %+v", rep)
	}
	checkState(t, st, NewState())
	if data, err := os.ReadFile(jpath(dir, 1)); err != nil || !bytes.Equal(data, makeHeader(Version, kindJournal, 1)) {
		t.Fatalf("new journal: %x, %v", data, err)
	}
	if fi, err := os.Stat(dir); err != nil || fi.Mode().Perm() != 0o700 {
		t.Errorf("store directory: %v, %v", fi.Mode(), err)
	}
	if m.JournalSize() != headerSize {
		t.Errorf("JournalSize = %d", m.JournalSize())
	}

	var batches []func(b *Batch)
	add := func(f func(b *Batch)) { batches = append(batches, f) }
	add(func(b *Batch) {
		b.Inode(&Inode{Ino: 1, Mode: syscall.S_IFDIR | 0o755, UID: 1000, GID: 1000, Atime: 1, Mtime: -2, Ctime: 3, Btime: -4, Nlink: 2})
		b.Next(2, 1)
	})
	add(func(b *Batch) {
		b.Inode(&Inode{Ino: 2, Mode: syscall.S_IFREG | 0o644, Size: 12345, Blob: 7, Alloc: 16384, Nlink: 1, Atime: -5, Btime: math.MinInt64})
		b.Entry(1, "f", 2)
		b.Xattr(2, "user.a", []byte{0, 1, 2, 0xff})
		b.Xattr(2, "user.empty", nil)
	})
	add(func(b *Batch) {
		b.Inode(&Inode{Ino: 3, Mode: syscall.S_IFDIR | 0o700, Nlink: 2})
		b.Entry(1, "d", 3)
		b.Inode(&Inode{Ino: 4, Mode: syscall.S_IFLNK | 0o777, Size: 4, Target: []byte("../f"), Nlink: 1})
		b.Entry(3, "s", 4)
		b.Entry(3, "hard", 2)
		b.Inode(&Inode{Ino: 6, Mode: syscall.S_IFCHR | 0o600, Rdev: 0x0103, Nlink: 1})
		b.Entry(3, "null", 6)
	})
	add(func(b *Batch) {
		b.Entry(1, "f", 0)
		b.Entry(1, "g", 2)
		b.XattrDel(2, "user.a")
		b.Xattr(1, "user.root", []byte("v"))
	})
	add(func(b *Batch) {
		b.Inode(&Inode{Ino: 5, Mode: syscall.S_IFREG | 0o600, Blob: 8, Nlink: 1})
		b.Entry(3, "tmp", 5)
		b.Xattr(5, "user.gone", []byte("with the inode"))
	})
	add(func(b *Batch) {
		b.Entry(3, "tmp", 0)
		b.Free(5)
	})
	add(func(b *Batch) { b.Next(100, 50) })
	add(func(b *Batch) {
		b.Inode(&Inode{Ino: 2, Mode: syscall.S_IFREG | 0o640, Size: 1, Blob: 7, Alloc: 4096, Nlink: 2})
	})
	want := &State{
		Inodes: map[uint64]*Inode{
			1: {Ino: 1, Mode: syscall.S_IFDIR | 0o755, UID: 1000, GID: 1000, Atime: 1, Mtime: -2, Ctime: 3, Btime: -4, Nlink: 2,
				Xattr: map[string][]byte{"user.root": []byte("v")}},
			2: {Ino: 2, Mode: syscall.S_IFREG | 0o640, Size: 1, Blob: 7, Alloc: 4096, Nlink: 2,
				Xattr: map[string][]byte{"user.empty": {}}},
			3: {Ino: 3, Mode: syscall.S_IFDIR | 0o700, Nlink: 2},
			4: {Ino: 4, Mode: syscall.S_IFLNK | 0o777, Size: 4, Target: []byte("../f"), Nlink: 1},
			6: {Ino: 6, Mode: syscall.S_IFCHR | 0o600, Rdev: 0x0103, Nlink: 1},
		},
		Entries: map[uint64]map[string]uint64{
			1: {"g": 2, "d": 3},
			3: {"s": 4, "hard": 2, "null": 6},
		},
		NextIno:  100,
		NextBlob: 50,
	}

	var b Batch
	for _, f := range batches {
		b.Reset()
		f(&b)
		commitT(t, m, &b)
	}
	b.Reset()
	commitT(t, m, &b) // empty: no frame
	if err := m.Sync(); err != nil {
		t.Fatal(err)
	}
	size := m.JournalSize()
	if got := fileSize(t, jpath(dir, 1)); got < size {
		t.Fatalf("journal file %d bytes, JournalSize %d", got, size)
	}
	closeT(t, m)
	// Close cuts off the space allocated ahead.
	if got := fileSize(t, jpath(dir, 1)); got != size {
		t.Fatalf("journal file %d bytes after Close, JournalSize %d", got, size)
	}
	if err := m.Commit(&b); err != nil {
		t.Errorf("empty Commit after Close: %v", err)
	}
	b.Free(9)
	if err := m.Commit(&b); err == nil {
		t.Error("Commit after Close succeeded")
	}

	for round := range 2 {
		m, st, rep = openT(t, dir, Options{})
		if rep.Generation != 1 || rep.Frames != len(batches) || rep.Dropped != 0 ||
			len(rep.Damage) != 0 || len(rep.Notes) != 0 || rep.Bytes != size {
			t.Fatalf("round %d: report %+v; want %d frames, %d bytes", round, rep, len(batches), size)
		}
		checkState(t, st, want)
		if p, _ := st.Validate(); len(p) != 0 {
			t.Errorf("Validate: %v", p)
		}
		closeT(t, m)
	}
	if fileSize(t, jpath(dir, 1)) != size {
		t.Fatal("reopening changed the journal")
	}
	if names := metaNames(t, dir); !slices.Equal(names, []string{"journal-0000000000000001"}) {
		t.Errorf("meta/ holds %v", names)
	}
}

func TestOpenRandomTree(t *testing.T) {
	dir := newStoreDir(t)
	m, _, _ := openT(t, dir, Options{})
	tr := newTree(1)
	commitT(t, m, tr.root(t))
	frames := 1
	for i := range 400 {
		commitT(t, m, tr.step(t))
		frames++
		if i%100 == 99 {
			closeT(t, m)
			var st *State
			var rep *Report
			m, st, rep = openT(t, dir, Options{})
			if rep.Frames != frames {
				t.Fatalf("Frames = %d, want %d", rep.Frames, frames)
			}
			checkState(t, st, tr.st)
		}
	}
	closeT(t, m)
}

func TestReadOnly(t *testing.T) {
	dir := newStoreDir(t)
	if _, _, _, err := Open(filepath.Join(dir, "missing"), Options{ReadOnly: true}); err == nil {
		t.Fatal("read-only Open of a missing directory succeeded")
	}
	m, _, _ := openT(t, dir, Options{})
	tr := newTree(2)
	commitT(t, m, tr.root(t))
	for range 10 {
		commitT(t, m, tr.step(t))
	}
	closeT(t, m)
	name := jpath(dir, 1)
	size := fileSize(t, name)
	f, err := os.OpenFile(name, os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	f.Write([]byte("torn tail"))
	f.Close()
	m, st, rep := openT(t, dir, Options{ReadOnly: true})
	checkState(t, st, tr.st)
	if rep.Dropped != 9 || rep.Frames != 11 {
		t.Errorf("report %+v", rep)
	}
	var b Batch
	b.Free(2)
	if err := m.Commit(&b); err == nil {
		t.Error("Commit on a read-only Meta succeeded")
	}
	closeT(t, m)
	if got := fileSize(t, name); got != size+9 {
		t.Errorf("read-only Open changed the journal: %d bytes, want %d", got, size+9)
	}
}

// ---------------------------------------------------------------------
// Torn tails and damage.

// buildJournal commits a root and n random batches to a new store and
// returns the store, the records of each frame, the model state after
// each frame and the frame boundaries (ends[0] is the header).
func buildJournal(t *testing.T, seed uint64, n int) (dir string, payloads [][]byte, states []*State, ends []int64) {
	dir = newStoreDir(t)
	m, _, _ := openT(t, dir, Options{})
	tr := newTree(seed)
	states = []*State{cloneState(tr.st)}
	ends = []int64{m.JournalSize()}
	for i := range n + 1 {
		var b *Batch
		if i == 0 {
			b = tr.root(t)
		} else {
			b = tr.step(t)
		}
		commitT(t, m, b)
		payloads = append(payloads, payloadOf(b))
		states = append(states, cloneState(tr.st))
		ends = append(ends, m.JournalSize())
	}
	closeT(t, m)
	if fileSize(t, jpath(dir, 1)) != ends[len(ends)-1] {
		t.Fatal("JournalSize does not match the file")
	}
	return dir, payloads, states, ends
}

// checkRecovered opens a copy with a torn tail and checks it holds frames
// whole frames, that the tail is cut back, and that commits after it
// replay.
func checkRecovered(t *testing.T, dir string, frames int, states []*State, ends []int64, dropped int64) {
	t.Helper()
	m, st, rep := openT(t, dir, Options{})
	checkState(t, st, states[frames])
	if rep.Frames != frames || rep.Dropped != dropped || len(rep.Damage) != 0 {
		t.Fatalf("report %+v; want %d frames, %d dropped", rep, frames, dropped)
	}
	if dropped > 0 && rep.Dropped <= 0 {
		t.Fatal("no Dropped")
	}
	if got := fileSize(t, jpath(dir, 1)); got != ends[frames] {
		t.Fatalf("journal is %d bytes after Open, want it cut back to %d", got, ends[frames])
	}
	if m.JournalSize() != ends[frames] {
		t.Fatalf("JournalSize = %d, want %d", m.JournalSize(), ends[frames])
	}
	checkCommitsAfter(t, dir, m, states[frames], frames)
}

// checkCommitsAfter commits to m, closes it and checks the store reads
// back as want with the commits, frames frames before them.
func checkCommitsAfter(t *testing.T, dir string, m *Meta, want *State, frames int) {
	t.Helper()
	model := cloneState(want)
	var b Batch
	for i := range 2 {
		b.Reset()
		b.Inode(&Inode{Ino: 1 << 20, Mode: syscall.S_IFREG, Size: int64(i)})
		b.Xattr(1<<20, "user.after", []byte{byte(i)})
		commitT(t, m, &b)
		applyBatch(t, model, &b)
	}
	closeT(t, m)
	m, st, rep := openT(t, dir, Options{})
	checkState(t, st, model)
	if rep.Frames != frames+2 || rep.Dropped != 0 || len(rep.Damage) != 0 {
		t.Fatalf("after new commits: report %+v, want %d frames", rep, frames+2)
	}
	closeT(t, m)
}

// checkDamaged opens a copy whose only journal is damaged in the middle:
// Open fails with ErrDamaged and changes nothing; Open with Salvage loads
// want, from frames intact frames, and reports the damage; and the
// salvaged state, rewritten as fsck --repair does, reads back.
func checkDamaged(t *testing.T, dir string, want *State, frames int) {
	t.Helper()
	data, _ := os.ReadFile(jpath(dir, 1))
	_, _, _, err := Open(dir, Options{})
	if !errors.Is(err, ErrDamaged) || !strings.Contains(err.Error(), "meta/journal-0000000000000001") {
		t.Fatalf("Open = %v; want ErrDamaged naming the journal", err)
	}
	if after, _ := os.ReadFile(jpath(dir, 1)); !bytes.Equal(after, data) {
		t.Fatal("a failed Open changed the journal")
	}
	m, st, rep := openT(t, dir, Options{Salvage: true})
	checkState(t, st, want)
	if rep.Frames != frames || !hasSubstr(rep.Damage, "journal-0000000000000001") {
		t.Fatalf("report %+v; want %d frames and the damage", rep, frames)
	}
	compactT(t, m, st)
	closeT(t, m)
	m, st, rep = openT(t, dir, Options{})
	checkState(t, st, want)
	if len(rep.Damage) != 0 || rep.Dropped != 0 {
		t.Fatalf("after the rewrite: report %+v", rep)
	}
	checkCommitsAfter(t, dir, m, want, 0)
}

func TestTornTail(t *testing.T) {
	base, _, states, ends := buildJournal(t, 3, 30)
	size := ends[len(ends)-1]
	last := len(ends) - 1
	cuts := map[int64]bool{0: true, 1: true, 10: true, headerSize - 1: true}
	for _, i := range []int{1, 2, 10, 20, last - 1, last} {
		for _, d := range []int64{-1, 1, 2, frameHead - 1, frameHead, frameHead + 1} {
			if c := ends[i-1] + d; c > ends[i-1] && c < ends[i] {
				cuts[c] = true
			}
		}
		if c := ends[i] - 1; c > ends[i-1] {
			cuts[c] = true
		}
	}
	for c := size - 1; c >= size-25 && c > ends[last-1]; c-- {
		cuts[c] = true
	}
	cutList := slices.Sorted(maps.Keys(cuts))
	for _, cut := range cutList {
		t.Run(fmt.Sprintf("cut%d", cut), func(t *testing.T) {
			dir := copyStore(t, base)
			if err := os.Truncate(jpath(dir, 1), cut); err != nil {
				t.Fatal(err)
			}
			frames, valid := 0, int64(0)
			if cut >= headerSize {
				for frames+1 < len(ends) && ends[frames+1] <= cut {
					frames++
				}
				valid = ends[frames]
			}
			checkRecovered(t, dir, frames, states, ends, cut-valid)
		})
	}
	garbage := map[string][]byte{
		"zeros1":    {0},
		"zeros15":   make([]byte, 15),
		"zeros16":   make([]byte, 16),
		"zeros17":   make([]byte, 17),
		"zeros4096": make([]byte, 4096),
		"text":      []byte("this is not a frame at all, just some text"),
		"huge length": func() []byte {
			p := makeFrame(uint64(last+1), []byte{recFree, 1})
			binary.LittleEndian.PutUint32(p, maxFrame)
			return p
		}(),
		"over maxFrame": binary.LittleEndian.AppendUint32(make([]byte, 0, 32), math.MaxUint32),
		"wrong seq":     makeFrame(uint64(last+5), []byte{recFree, 1}),
		"repeated seq":  makeFrame(uint64(last), []byte{recFree, 1}),
		"bad record":    makeFrame(uint64(last+1), []byte{recFree, 0}),
		"good then bad": append(makeFrame(uint64(last+1), []byte{recNext, 1, 1}), 1, 2, 3),
	}
	for name, g := range garbage {
		t.Run(name, func(t *testing.T) {
			dir := copyStore(t, base)
			f, err := os.OpenFile(jpath(dir, 1), os.O_APPEND|os.O_WRONLY, 0)
			if err != nil {
				t.Fatal(err)
			}
			f.Write(g)
			f.Close()
			frames, dropped := last, int64(len(g))
			if allZero(g) {
				// Zeros are the space allocated ahead for frames:
				// the journal ends cleanly before them.
				dropped = 0
			}
			s := states
			e := ends
			if name == "good then bad" {
				// The whole frame counts; the 3 bytes after it go.
				frames, dropped = last+1, 3
				s = append(slices.Clone(states), cloneState(states[last]))
				e = append(slices.Clone(ends), size+int64(len(g))-3)
			}
			checkRecovered(t, dir, frames, s, e, dropped)
		})
	}
}

// A bit flipped in the last frame of the last journal is a torn tail: the
// frame goes. One flipped in an earlier frame, with intact frames after it,
// is damage: a write cut short leaves no intact frame after it. Salvage
// loads every intact frame.
func TestBitFlipJournal(t *testing.T) {
	base, payloads, states, ends := buildJournal(t, 4, 20)
	last := len(ends) - 1
	offsets := func(frame int) []struct {
		name string
		off  int64
	} {
		start := ends[frame-1]
		return []struct {
			name string
			off  int64
		}{
			{"length", start},
			{"length high byte", start + 3},
			{"crc", start + 5},
			{"seq", start + 8},
			{"seq high byte", start + 15},
			{"payload first byte", start + frameHead},
			{"payload last byte", ends[frame] - 1},
		}
	}
	for _, frame := range []int{1, 11, last - 1, last} {
		for _, tc := range offsets(frame) {
			for _, bit := range []uint{0, 7} {
				t.Run(fmt.Sprintf("frame%d/%s/bit%d", frame, tc.name, bit), func(t *testing.T) {
					dir := copyStore(t, base)
					flipBit(t, jpath(dir, 1), tc.off, bit)
					if frame == last {
						checkRecovered(t, dir, frame-1, states, ends, ends[last]-ends[frame-1])
						return
					}
					want := NewState()
					for i, p := range payloads {
						if i+1 != frame {
							recs, err := decodeAll(p)
							if err != nil {
								t.Fatal(err)
							}
							for j := range recs {
								want.apply(&recs[j])
							}
						}
					}
					checkDamaged(t, dir, want, last-1)
				})
			}
		}
	}
	t.Run("header magic", func(t *testing.T) {
		dir := copyStore(t, base)
		flipBit(t, jpath(dir, 1), 2, 0)
		_, _, _, err := Open(dir, Options{})
		if !errors.Is(err, ErrDamaged) || !strings.Contains(err.Error(), "journal-0000000000000001") {
			t.Fatalf("Open = %v, want ErrDamaged naming the journal", err)
		}
		if fileSize(t, jpath(dir, 1)) != ends[len(ends)-1] {
			t.Fatal("a failed Open changed the journal")
		}
		// Salvage reads the intact frames after the damaged header.
		m, st, rep := openT(t, dir, Options{Salvage: true})
		if len(rep.Damage) == 0 {
			t.Error("no Damage")
		}
		checkState(t, st, states[len(states)-1])
		closeT(t, m)
	})
	t.Run("header generation", func(t *testing.T) {
		dir := copyStore(t, base)
		flipBit(t, jpath(dir, 1), 17, 0)
		if _, _, _, err := Open(dir, Options{}); !errors.Is(err, ErrDamaged) {
			t.Fatalf("Open = %v, want ErrDamaged", err)
		}
	})
}

// compactT runs a whole compaction of m with the state st.
func compactT(t testing.TB, m *Meta, st *State) {
	t.Helper()
	sn, err := m.BeginCompact()
	if err != nil || sn == nil {
		t.Fatalf("BeginCompact = %v, %v", sn, err)
	}
	testAddState(sn, st, 7)
	if err := sn.Finish(); err != nil {
		t.Fatalf("Finish: %v", err)
	}
}

// snapshotStore makes a store whose state is in snapshot-2 with an
// empty journal-2.
func snapshotStore(t *testing.T, seed uint64) (dir string, tr *tree) {
	dir = newStoreDir(t)
	m, _, _ := openT(t, dir, Options{})
	tr = newTree(seed)
	commitT(t, m, tr.root(t))
	for range 60 {
		commitT(t, m, tr.step(t))
	}
	compactT(t, m, tr.st)
	closeT(t, m)
	if names := metaNames(t, dir); !slices.Equal(names, []string{"journal-0000000000000002", "snapshot-0000000000000002"}) {
		t.Fatalf("meta/ holds %v", names)
	}
	return dir, tr
}

func TestDamagedSnapshot(t *testing.T) {
	base, tr := snapshotStore(t, 5)
	size := fileSize(t, spath(base, 2))
	var eb Batch
	eb.end(uint64(len(tr.st.Inodes)))
	endLen := int64(len(eb.frame(1))) // the last frame of the snapshot
	damage := []struct {
		name string
		do   func(t *testing.T, name string)
	}{
		{"flip middle", func(t *testing.T, name string) { flipBit(t, name, size/2, 3) }},
		{"flip last byte", func(t *testing.T, name string) { flipBit(t, name, size-1, 0) }},
		{"flip header magic", func(t *testing.T, name string) { flipBit(t, name, 0, 0) }},
		{"flip header kind", func(t *testing.T, name string) { flipBit(t, name, 12, 0) }},
		{"flip header generation", func(t *testing.T, name string) { flipBit(t, name, 16, 2) }},
		{"truncate half", func(t *testing.T, name string) { os.Truncate(name, size/2) }},
		{"truncate 1", func(t *testing.T, name string) { os.Truncate(name, size-1) }},
		{"truncate end frame", func(t *testing.T, name string) { os.Truncate(name, size-endLen) }},
		{"truncate to header", func(t *testing.T, name string) { os.Truncate(name, headerSize) }},
		{"truncate in header", func(t *testing.T, name string) { os.Truncate(name, 10) }},
		{"empty", func(t *testing.T, name string) { os.Truncate(name, 0) }},
		{"trailing garbage", func(t *testing.T, name string) {
			f, _ := os.OpenFile(name, os.O_APPEND|os.O_WRONLY, 0)
			f.Write([]byte{1, 2, 3})
			f.Close()
		}},
		{"wrong end count", func(t *testing.T, name string) {
			data, _ := os.ReadFile(name)
			// The end frame is the last: replace it with a count one too many.
			var b Batch
			b.end(uint64(len(tr.st.Inodes) + 1))
			end := b.frame(binary.LittleEndian.Uint64(data[size-endLen+8:]))
			os.WriteFile(name, append(data[:size-endLen], end...), 0o600)
		}},
	}
	for _, tc := range damage {
		t.Run(tc.name, func(t *testing.T) {
			dir := copyStore(t, base)
			tc.do(t, spath(dir, 2))
			_, _, _, err := Open(dir, Options{})
			if !errors.Is(err, ErrDamaged) {
				t.Fatalf("Open = %v, want ErrDamaged", err)
			}
			msg := err.Error()
			if !strings.Contains(msg, "meta/snapshot-0000000000000002") {
				t.Errorf("the error does not name the snapshot: %v", msg)
			}
			m, st, rep := openT(t, dir, Options{Salvage: true})
			if len(rep.Damage) == 0 || !hasSubstr(rep.Damage, "snapshot-0000000000000002") {
				t.Errorf("Damage = %q", rep.Damage)
			}
			if rep.Generation != 2 {
				t.Errorf("Generation = %d", rep.Generation)
			}
			// What was salvaged is part of what was there.
			for ino, in := range st.Inodes {
				if want := tr.st.Inodes[ino]; want == nil || diffInode(in, want) != "" {
					t.Errorf("salvaged inode %d is not what was written", ino)
				}
			}
			// And it can be repaired and used.
			problems, _ := st.Validate()
			var b Batch
			st.Fix(problems, &b)
			if p, _ := st.Validate(); len(p) != 0 {
				t.Errorf("after Fix: %v", p)
			}
			commitT(t, m, &b)
			closeT(t, m)
		})
	}
	t.Run("intact", func(t *testing.T) {
		dir := copyStore(t, base)
		m, st, rep := openT(t, dir, Options{})
		checkState(t, st, tr.st)
		if rep.Generation != 2 || rep.Frames != 0 || len(rep.Damage) != 0 || rep.Bytes != size+headerSize {
			t.Errorf("report %+v", rep)
		}
		closeT(t, m)
	})
}

func TestVersion(t *testing.T) {
	base, _ := snapshotStore(t, 6)
	for _, name := range []string{"snapshot-0000000000000002", "journal-0000000000000002"} {
		for _, salvage := range []bool{false, true} {
			t.Run(fmt.Sprintf("%s/salvage=%v", name, salvage), func(t *testing.T) {
				dir := copyStore(t, base)
				file := filepath.Join(dir, name)
				data, err := os.ReadFile(file)
				if err != nil {
					t.Fatal(err)
				}
				binary.LittleEndian.PutUint32(data[8:12], Version+1)
				if err := os.WriteFile(file, data, 0o600); err != nil {
					t.Fatal(err)
				}
				_, _, _, err = Open(dir, Options{Salvage: salvage})
				if !errors.Is(err, ErrVersion) {
					t.Fatalf("Open = %v, want ErrVersion", err)
				}
				if errors.Is(err, ErrDamaged) {
					t.Errorf("a newer version is not damage: %v", err)
				}
				msg := err.Error()
				if !strings.Contains(msg, fmt.Sprintf("version %d", Version+1)) || !strings.Contains(msg, fmt.Sprintf("versions 1 to %d", Version)) || !strings.Contains(msg, name) {
					t.Errorf("unclear message: %v", msg)
				}
				after, _ := os.ReadFile(file)
				if !bytes.Equal(after, data) {
					t.Error("Open changed a file of another version")
				}
				// The lock was let go.
				data[8] = Version
				os.WriteFile(file, data, 0o600)
				m, _, _ := openT(t, dir, Options{})
				closeT(t, m)
			})
		}
	}
	t.Run("fresh journal", func(t *testing.T) {
		dir := newStoreDir(t)
		m, _, _ := openT(t, dir, Options{})
		closeT(t, m)
		data, _ := os.ReadFile(jpath(dir, 1))
		binary.LittleEndian.PutUint32(data[8:12], Version+1)
		os.WriteFile(jpath(dir, 1), data, 0o600)
		if _, _, _, err := Open(dir, Options{}); !errors.Is(err, ErrVersion) {
			t.Fatalf("Open = %v", err)
		}
		if got, _ := os.ReadFile(jpath(dir, 1)); !bytes.Equal(got, data) {
			t.Error("Open rewrote the header of a journal of another version")
		}
	})
}

// ---------------------------------------------------------------------
// Compaction.

func TestCompaction(t *testing.T) {
	dir := newStoreDir(t)
	m, _, _ := openT(t, dir, Options{})
	tr := newTree(8)
	commitT(t, m, tr.root(t))
	for range 100 {
		commitT(t, m, tr.step(t))
	}
	sn, err := m.BeginCompact()
	if err != nil || sn == nil {
		t.Fatalf("BeginCompact = %v, %v", sn, err)
	}
	if sn2, err := m.BeginCompact(); sn2 != nil || err != nil {
		t.Fatalf("a second BeginCompact = %v, %v; want nil, nil", sn2, err)
	}
	if m.ShouldCompact() {
		t.Error("ShouldCompact during a compaction")
	}
	if m.JournalSize() != headerSize {
		t.Errorf("the new journal is %d bytes", m.JournalSize())
	}
	if _, err := os.Stat(jpath(dir, 2)); err != nil {
		t.Fatalf("no new journal: %v", err)
	}
	if _, err := os.Stat(spath(dir, 2) + ".tmp"); err != nil {
		t.Fatalf("no snapshot being written: %v", err)
	}
	testAddState(sn, tr.st, 5)

	// Changes committed while the snapshot is finished: disjoint new
	// files, so their order does not matter.
	var concurrent []*Batch
	for range 40 {
		concurrent = append(concurrent, tr.create(t))
	}
	var wg sync.WaitGroup
	errs := make(chan error, len(concurrent)+1)
	for w := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := w; i < len(concurrent); i += 4 {
				if err := m.Commit(concurrent[i]); err != nil {
					errs <- err
				}
			}
		}()
	}
	if err := sn.Finish(); err != nil {
		t.Fatalf("Finish: %v", err)
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatalf("Commit: %v", err)
	}
	frames := len(concurrent)
	for range 20 {
		commitT(t, m, tr.step(t))
		frames++
	}
	closeT(t, m)
	if names := metaNames(t, dir); !slices.Equal(names, []string{"journal-0000000000000002", "snapshot-0000000000000002"}) {
		t.Fatalf("meta/ holds %v", names)
	}
	m, st, rep := openT(t, dir, Options{})
	checkState(t, st, tr.st)
	if rep.Generation != 2 || rep.Frames != frames || len(rep.Damage) != 0 || len(rep.Notes) != 0 {
		t.Fatalf("report %+v; want generation 2, %d frames", rep, frames)
	}

	// Again, from a store with a snapshot.
	for range 20 {
		commitT(t, m, tr.step(t))
	}
	compactT(t, m, tr.st)
	commitT(t, m, tr.step(t))
	closeT(t, m)
	if names := metaNames(t, dir); !slices.Equal(names, []string{"journal-0000000000000003", "snapshot-0000000000000003"}) {
		t.Fatalf("meta/ holds %v", names)
	}
	m, st, rep = openT(t, dir, Options{})
	checkState(t, st, tr.st)
	if rep.Generation != 3 || rep.Frames != 1 {
		t.Fatalf("report %+v", rep)
	}
	closeT(t, m)
}

func TestCompactionAbort(t *testing.T) {
	dir := newStoreDir(t)
	m, _, _ := openT(t, dir, Options{})
	tr := newTree(9)
	commitT(t, m, tr.root(t))
	for range 30 {
		commitT(t, m, tr.step(t))
	}
	sn, err := m.BeginCompact()
	if err != nil || sn == nil {
		t.Fatal(sn, err)
	}
	testAddState(sn, tr.st, 4)
	commitT(t, m, tr.step(t))
	sn.Abort()
	if _, err := os.Stat(spath(dir, 2) + ".tmp"); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("Abort left the snapshot: %v", err)
	}
	commitT(t, m, tr.step(t))
	closeT(t, m)
	m, st, rep := openT(t, dir, Options{})
	checkState(t, st, tr.st)
	if rep.Generation != 2 || rep.Frames != 33 || len(rep.Damage) != 0 {
		t.Fatalf("report %+v", rep)
	}
	// A compaction can start again.
	compactT(t, m, st)
	closeT(t, m)
	m, st, _ = openT(t, dir, Options{})
	checkState(t, st, tr.st)
	closeT(t, m)
}

func TestCompactionCrash(t *testing.T) {
	for _, withSnapshot := range []bool{false, true} {
		t.Run(fmt.Sprintf("snapshot=%v", withSnapshot), func(t *testing.T) {
			dir := newStoreDir(t)
			m, _, _ := openT(t, dir, Options{})
			tr := newTree(10)
			commitT(t, m, tr.root(t))
			frames := 1
			gen := uint64(1)
			for range 40 {
				commitT(t, m, tr.step(t))
				frames++
			}
			if withSnapshot {
				compactT(t, m, tr.st)
				gen, frames = 2, 0
				for range 30 {
					commitT(t, m, tr.step(t))
					frames++
				}
			}
			sn, err := m.BeginCompact()
			if err != nil || sn == nil {
				t.Fatal(sn, err)
			}
			testAddState(sn, tr.st, 3)
			sn.w.Flush() // part of it reached the file
			for range 25 {
				commitT(t, m, tr.step(t))
				frames++
			}
			// The process dies: no Finish.
			sn.f.Close()
			closeT(t, m)
			tmp := fmt.Sprintf("snapshot-%016x.tmp", gen+1)
			if _, err := os.Stat(filepath.Join(dir, tmp)); err != nil {
				t.Fatal(err)
			}

			m, st, rep := openT(t, dir, Options{})
			checkState(t, st, tr.st)
			if rep.Generation != gen+1 || rep.Frames != frames || len(rep.Damage) != 0 {
				t.Fatalf("report %+v; want generation %d, %d frames", rep, gen+1, frames)
			}
			if !hasSubstr(rep.Notes, tmp) {
				t.Errorf("Notes = %q; want the unfinished snapshot", rep.Notes)
			}
			if _, err := os.Stat(filepath.Join(dir, tmp)); !errors.Is(err, os.ErrNotExist) {
				t.Errorf("the unfinished snapshot is still there: %v", err)
			}
			// Commits go on into the newest journal.
			commitT(t, m, tr.step(t))
			closeT(t, m)
			m, st, rep = openT(t, dir, Options{})
			checkState(t, st, tr.st)
			if rep.Frames != frames+1 {
				t.Errorf("Frames = %d, want %d", rep.Frames, frames+1)
			}
			// And the next compaction tidies up every older file.
			compactT(t, m, st)
			closeT(t, m)
			want := []string{fmt.Sprintf("journal-%016x", gen+2), fmt.Sprintf("snapshot-%016x", gen+2)}
			if names := metaNames(t, dir); !slices.Equal(names, want) {
				t.Fatalf("meta/ holds %v, want %v", names, want)
			}
			m, st, _ = openT(t, dir, Options{})
			checkState(t, st, tr.st)
			closeT(t, m)
		})
	}
}

// A crash after the snapshot is in place but before the old files went.
func TestCompactionCrashAfterRename(t *testing.T) {
	dir := newStoreDir(t)
	m, _, _ := openT(t, dir, Options{})
	tr := newTree(11)
	commitT(t, m, tr.root(t))
	for range 30 {
		commitT(t, m, tr.step(t))
	}
	closeT(t, m)
	old, err := os.ReadFile(jpath(dir, 1))
	if err != nil {
		t.Fatal(err)
	}
	m, st, _ := openT(t, dir, Options{})
	compactT(t, m, st)
	commitT(t, m, tr.step(t))
	closeT(t, m)
	if err := os.WriteFile(jpath(dir, 1), old, 0o600); err != nil {
		t.Fatal(err)
	}
	m, st, rep := openT(t, dir, Options{})
	checkState(t, st, tr.st)
	if rep.Generation != 2 || rep.Frames != 1 || !hasSubstr(rep.Notes, "journal-0000000000000001") || len(rep.Damage) != 0 {
		t.Fatalf("report %+v", rep)
	}
	if _, err := os.Stat(jpath(dir, 1)); !errors.Is(err, os.ErrNotExist) {
		t.Error("the compacted journal is still there")
	}
	closeT(t, m)
}

// A journal that is not the last is damaged: that is damage, not a tail.
func TestDamagedMiddleJournal(t *testing.T) {
	dir := newStoreDir(t)
	m, _, _ := openT(t, dir, Options{})
	tr := newTree(12)
	commitT(t, m, tr.root(t))
	for range 20 {
		commitT(t, m, tr.step(t))
	}
	sn, err := m.BeginCompact()
	if err != nil || sn == nil {
		t.Fatal(sn, err)
	}
	commitT(t, m, tr.step(t))
	sn.f.Close() // crash
	closeT(t, m)
	flipBit(t, jpath(dir, 1), fileSize(t, jpath(dir, 1))-3, 1)
	_, _, _, err = Open(dir, Options{})
	if !errors.Is(err, ErrDamaged) || !strings.Contains(err.Error(), "journal-0000000000000001") {
		t.Fatalf("Open = %v", err)
	}
	m, _, rep := openT(t, dir, Options{Salvage: true})
	if !hasSubstr(rep.Damage, "journal-0000000000000001") || rep.Frames != 21 {
		t.Errorf("report %+v", rep)
	}
	closeT(t, m)
}

func TestShouldCompact(t *testing.T) {
	dir := newStoreDir(t)
	m, _, _ := openT(t, dir, Options{CompactBytes: 200})
	tr := newTree(13)
	commitT(t, m, tr.root(t))
	if m.ShouldCompact() {
		t.Fatal("ShouldCompact on a small journal")
	}
	for m.JournalSize() <= 200 {
		commitT(t, m, tr.step(t))
	}
	if !m.ShouldCompact() {
		t.Fatal("ShouldCompact is false past CompactBytes")
	}
	compactT(t, m, tr.st)
	if m.ShouldCompact() {
		t.Fatal("ShouldCompact right after a compaction")
	}
	closeT(t, m)
}

// ---------------------------------------------------------------------
// Stores that are not stores.

func TestForeignFiles(t *testing.T) {
	for _, name := range []string{"foo", "journal-1", "snapshot-zz00000000000001", "journal-00000000000000001"} {
		t.Run(name, func(t *testing.T) {
			dir := newStoreDir(t)
			m, _, _ := openT(t, dir, Options{})
			var b Batch
			b.Inode(&Inode{Ino: 1, Mode: syscall.S_IFDIR})
			commitT(t, m, &b)
			closeT(t, m)
			if err := os.WriteFile(filepath.Join(dir, name), []byte("x"), 0o600); err != nil {
				t.Fatal(err)
			}
			// Either damage (Open fails, Salvage reports it) or a note
			// (Open goes on); named either way, and left alone.
			m, st, rep, err := Open(dir, Options{})
			switch {
			case err == nil:
				if !hasSubstr(rep.Notes, "meta/"+name) || len(rep.Damage) != 0 || st.Inodes[1] == nil {
					t.Errorf("report %+v; want a note naming meta/%s", rep, name)
				}
			case errors.Is(err, ErrDamaged) && strings.Contains(err.Error(), "meta/"+name):
				m, st, rep = openT(t, dir, Options{Salvage: true})
				if !hasSubstr(rep.Damage, "meta/"+name) || st.Inodes[1] == nil {
					t.Errorf("report %+v", rep)
				}
			default:
				t.Fatalf("Open = %v; want success with a note, or ErrDamaged, naming meta/%s", err, name)
			}
			closeT(t, m)
			if _, err := os.Stat(filepath.Join(dir, name)); err != nil {
				t.Errorf("Open removed the foreign file: %v", err)
			}
		})
	}
	t.Run("missing", func(t *testing.T) {
		if _, _, _, err := Open(filepath.Join(t.TempDir(), "meta"), Options{}); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("Open = %v", err)
		}
	})
	t.Run("journal without its snapshot", func(t *testing.T) {
		base, _ := snapshotStore(t, 14)
		dir := copyStore(t, base)
		os.Remove(spath(dir, 2))
		_, _, _, err := Open(dir, Options{})
		if !errors.Is(err, ErrDamaged) || !strings.Contains(err.Error(), "snapshot is missing") {
			t.Fatalf("Open = %v", err)
		}
	})
}

// ---------------------------------------------------------------------
// Validate and Fix.

func vdir(st *State, ino uint64) {
	st.Inodes[ino] = &Inode{Ino: ino, Mode: syscall.S_IFDIR | 0o755}
	st.NextIno = max(st.NextIno, ino+1)
}

func vfile(st *State, ino uint64) {
	st.Inodes[ino] = &Inode{Ino: ino, Mode: syscall.S_IFREG | 0o644, Blob: ino + 100}
	st.NextIno = max(st.NextIno, ino+1)
	st.NextBlob = max(st.NextBlob, ino+101)
}

func vlink(st *State, parent uint64, name string, child uint64) {
	if st.Entries[parent] == nil {
		st.Entries[parent] = make(map[string]uint64)
	}
	st.Entries[parent][name] = child
}

// wantNlink counts links in a tree without problems: every entry is a
// link to its child, and a subdirectory's ".." a link to its parent.
func wantNlink(st *State) map[uint64]uint32 {
	n := make(map[uint64]uint32)
	if r := st.Inodes[RootIno]; r != nil && r.IsDir() {
		n[RootIno] = 2
	}
	for parent, ents := range st.Entries {
		for _, child := range ents {
			if st.Inodes[child].IsDir() {
				n[child] += 2
				n[parent]++
			} else {
				n[child]++
			}
		}
	}
	return n
}

// stateRecords returns st as the records a journal would hold.
func stateRecords(st *State) *Batch {
	var b Batch
	b.Reset()
	b.Next(st.NextIno, st.NextBlob)
	for _, ino := range sortedKeysT(st.Inodes) {
		b.Inode(st.Inodes[ino])
		for _, name := range sortedKeysT(st.Inodes[ino].Xattr) {
			b.Xattr(ino, name, st.Inodes[ino].Xattr[name])
		}
	}
	for _, p := range sortedKeysT(st.Entries) {
		for _, name := range sortedKeysT(st.Entries[p]) {
			b.Entry(p, name, st.Entries[p][name])
		}
	}
	return &b
}

// checkFix runs Validate and Fix on st and checks that Fix leaves a
// clean tree with the right link counts, and that its records make the
// same repairs when applied to the original state.
func checkFix(t *testing.T, st *State) (problems []Problem, orphans []*Inode) {
	t.Helper()
	orig := cloneState(st)
	problems, _ = st.Validate()
	again, _ := cloneState(st).Validate()
	if !slices.EqualFunc(problems, again, func(a, b Problem) bool { return a.What == b.What }) {
		t.Errorf("Validate's order is not stable:\n%v\n%v", problems, again)
	}
	for _, p := range problems {
		if p.What == "" || p.Repair == "" || p.String() != p.What {
			t.Errorf("problem without words: %+v", p)
		}
	}
	var b Batch
	b.Reset()
	orphans = st.Fix(problems, &b)
	after, nlink := st.Validate()
	for _, p := range after {
		t.Errorf("after Fix: %s", p.What)
	}
	if want := wantNlink(st); !maps.Equal(nlink, want) {
		t.Errorf("nlink = %v, want %v", nlink, want)
	}
	replayed := cloneState(orig)
	applyBatch(t, replayed, &b)
	if d := diffState(replayed, st); len(d) > 0 {
		t.Errorf("Fix's records do not make the repairs it made:\n\t%s", strings.Join(d, "\n\t"))
	}
	return problems, orphans
}

func TestValidateFix(t *testing.T) {
	long := strings.Repeat("x", 256)
	tests := []struct {
		name    string
		build   func(st *State)
		want    []string // problems, in order, by a part of their words
		orphans []uint64 // freed by Fix, in order
	}{
		{"clean", func(st *State) {
			vdir(st, 1)
			vdir(st, 2)
			vfile(st, 3)
			vlink(st, 1, "a", 2)
			vlink(st, 1, "f", 3)
			vlink(st, 2, "hard", 3)
			vlink(st, 2, strings.Repeat("y", 255), 3)
			vdir(st, 4)
			vlink(st, 2, "sub", 4)
			st.Inodes[5] = &Inode{Ino: 5, Mode: syscall.S_IFLNK | 0o777, Target: []byte("a")}
			vlink(st, 4, "s", 5)
		}, nil, nil},
		{"empty root", func(st *State) { vdir(st, 1) }, nil, nil},
		{"dangling entry", func(st *State) {
			vdir(st, 1)
			vfile(st, 2)
			vlink(st, 1, "f", 2)
			vlink(st, 1, "gone", 99)
		}, []string{`entry "gone" in directory 1 names inode 99, which does not exist`}, nil},
		{"entry in a file", func(st *State) {
			vdir(st, 1)
			vfile(st, 2)
			vfile(st, 3)
			vlink(st, 1, "f", 2)
			vlink(st, 2, "x", 3)
		}, []string{`entry "x" of inode 2: inode 2 is not a directory`, "inode 3 (file) is not in the tree"}, []uint64{3}},
		{"entries of a missing inode", func(st *State) {
			vdir(st, 1)
			vfile(st, 2)
			vlink(st, 1, "f", 2)
			vlink(st, 50, "a", 2)
			vlink(st, 50, "b", 2)
		}, []string{`entry "a" of inode 50`, `entry "b" of inode 50`}, nil},
		{"directory with two names", func(st *State) {
			vdir(st, 1)
			vdir(st, 2)
			vdir(st, 3)
			vlink(st, 1, "a", 2)
			vlink(st, 1, "b", 2)
			vlink(st, 2, "c", 3)
			vlink(st, 1, "z", 3)
		}, []string{`entry "b" in directory 1 is a second name of directory 2`, `entry "c" in directory 2 is a second name of directory 3`}, nil},
		{"unreachable cycle", func(st *State) {
			vdir(st, 1)
			vdir(st, 2)
			vdir(st, 3)
			vfile(st, 4)
			vlink(st, 2, "b", 3)
			vlink(st, 3, "a", 2)
			vlink(st, 3, "f", 4)
		}, []string{"inode 2 (directory) is not in the tree", "inode 3 (directory) is not in the tree", "inode 4 (file) is not in the tree"}, []uint64{2, 3, 4}},
		{"reachable cycle", func(st *State) {
			vdir(st, 1)
			vdir(st, 2)
			vdir(st, 3)
			vlink(st, 1, "a", 2)
			vlink(st, 2, "b", 3)
			vlink(st, 3, "up", 2)
			vlink(st, 3, "root", 1)
			vlink(st, 2, "self", 2)
		}, []string{
			`entry "self" in directory 2 is a second name of directory 2`,
			`entry "root" in directory 3 names the root`,
			`entry "up" in directory 3 is a second name of directory 2`,
		}, nil},
		{"orphans", func(st *State) {
			vdir(st, 1)
			vfile(st, 5)
			vdir(st, 6)
			vfile(st, 7)
			vlink(st, 6, "f", 7)
			vdir(st, 8)
			vlink(st, 1, "d", 8)
			vlink(st, 6, "d", 8) // an unreachable directory names a reachable one
		}, []string{"inode 5 (file) is not in the tree", "inode 6 (directory) is not in the tree", "inode 7 (file) is not in the tree"}, []uint64{5, 6, 7}},
		{"missing root", func(st *State) {
			vdir(st, 2)
			vfile(st, 3)
			vlink(st, 1, "a", 2)
			vlink(st, 2, "f", 3)
		}, []string{"root directory is missing", `entry "a" of inode 1: inode 1 is not a directory`, "inode 2 (directory) is not in the tree", "inode 3 (file) is not in the tree"}, []uint64{2, 3}},
		{"no inodes at all", func(st *State) {}, []string{"root directory is missing"}, nil},
		{"invalid names", func(st *State) {
			vdir(st, 1)
			vfile(st, 2)
			vlink(st, 1, "ok", 2)
			for _, n := range []string{"", ".", "..", "a/b", "/", "nul\x00", long} {
				vlink(st, 1, n, 2)
			}
		}, []string{`entry "" in directory 1 is not a valid name`, `entry "." in`, `entry ".." in`, `entry "/" in`, `entry "a/b" in`, `entry "nul\x00" in`, `entry "xxxxx`}, nil},
		{"invalid name is the only link", func(st *State) {
			vdir(st, 1)
			vdir(st, 2)
			vlink(st, 1, "a/b", 2)
		}, []string{`entry "a/b" in directory 1 is not a valid name`, "inode 2 (directory) is not in the tree"}, []uint64{2}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			st := NewState()
			tc.build(st)
			problems, orphans := checkFix(t, st)
			if len(problems) != len(tc.want) {
				t.Fatalf("problems:\n%v\nwant:\n%q", problems, tc.want)
			}
			var orphanProblems []uint64
			for i, p := range problems {
				if !strings.Contains(p.What, tc.want[i]) {
					t.Errorf("problem %d: %q, want it to say %q", i, p.What, tc.want[i])
				}
				if p.Orphan() {
					orphanProblems = append(orphanProblems, p.orphan)
				}
			}
			var got []uint64
			for _, in := range orphans {
				got = append(got, in.Ino)
				if st.Inodes[in.Ino] != nil {
					t.Errorf("orphan %d is still in the state", in.Ino)
				}
			}
			if !slices.Equal(got, tc.orphans) || !slices.Equal(orphanProblems, tc.orphans) {
				t.Errorf("orphans: Fix returned %v, problems said %v; want %v", got, orphanProblems, tc.orphans)
			}
			if r := st.Inodes[RootIno]; r == nil || !r.IsDir() {
				t.Error("no root after Fix")
			}
		})
	}
}

// The persisted form of a repaired tree reads back clean.
func TestFixPersisted(t *testing.T) {
	dir := newStoreDir(t)
	m, _, _ := openT(t, dir, Options{})
	st := NewState()
	vdir(st, 1)
	vdir(st, 2)
	vdir(st, 3)
	vfile(st, 4)
	vlink(st, 1, "a", 2)
	vlink(st, 2, "b", 3)
	vlink(st, 3, "up", 2)
	vlink(st, 1, "..", 4)
	vlink(st, 1, "dangling", 40)
	vfile(st, 9)
	commitT(t, m, stateRecords(st))
	closeT(t, m)
	m, st, _ = openT(t, dir, Options{})
	problems, _ := st.Validate()
	if len(problems) != 5 {
		t.Fatalf("problems: %v", problems)
	}
	var b Batch
	st.Fix(problems, &b)
	commitT(t, m, &b)
	closeT(t, m)
	m, st2, _ := openT(t, dir, Options{})
	checkState(t, st2, st)
	if p, nlink := st2.Validate(); len(p) != 0 || nlink[1] != 3 || nlink[2] != 3 || nlink[3] != 2 {
		t.Fatalf("after Fix and reopen: %v, nlink %v", p, nlink)
	}
	closeT(t, m)
}

// Inode 1 exists but is not a directory.
func TestFixRootNotDirectory(t *testing.T) {
	st := NewState()
	st.Inodes[1] = &Inode{Ino: 1, Mode: syscall.S_IFREG | 0o644, Blob: 3, Xattr: map[string][]byte{"user.x": []byte("old")}}
	vfile(st, 2)
	vlink(st, 1, "f", 2)
	st.NextBlob = 10
	orig := cloneState(st)
	problems, _ := st.Validate()
	var b Batch
	orphans := st.Fix(problems, &b)
	if r := st.Inodes[RootIno]; r == nil || !r.IsDir() || len(r.Xattr) != 0 {
		t.Fatalf("root after Fix: %+v", r)
	}
	var moved *Inode
	for _, in := range orphans {
		if in.Blob == 3 {
			moved = in
		}
	}
	if moved == nil {
		t.Fatalf("the old inode 1 is not given back as an orphan (its data is the caller's to free): %v", orphans)
	}
	after, _ := st.Validate()
	replayed := cloneState(orig)
	applyBatch(t, replayed, &b)
	d := diffState(replayed, st)
	if len(after) != 0 || len(d) != 0 {
		t.Errorf("Fix of a root that is not a directory: after Fix, Validate still reports %q; "+
			"replaying Fix's records differs from Fix's state: %q", after, d)
	}
}

// A frame longer than a decoder reads (maxFrame) must not be written: it
// would read back as a torn tail, with every frame after it.
func TestOversizedFrame(t *testing.T) {
	dir := newStoreDir(t)
	m, _, _ := openT(t, dir, Options{})
	var b Batch
	b.Inode(&Inode{Ino: 1, Mode: syscall.S_IFDIR | 0o755})
	commitT(t, m, &b)
	size := m.JournalSize()
	b.Reset()
	b.Xattr(1, "user.big", make([]byte, maxFrame)) // with its name, past maxFrame
	bigErr := m.Commit(&b)
	if bigErr == nil {
		t.Error("Commit of more than maxFrame bytes succeeded")
	} else if m.JournalSize() != size {
		t.Errorf("a refused Commit moved the journal on from %d to %d bytes", size, m.JournalSize())
	}
	b.Reset()
	b.Xattr(1, "user.after", []byte("x"))
	commitT(t, m, &b)
	closeT(t, m)
	m, st, rep := openT(t, dir, Options{})
	defer closeT(t, m)
	_, big := st.Inodes[1].Xattr["user.big"]
	_, after := st.Inodes[1].Xattr["user.after"]
	if !after || bigErr == nil && !big || rep.Dropped != 0 {
		t.Errorf("Commit of a frame of more than maxFrame bytes: err %v; the big change lost: %v, "+
			"the change committed after it lost: %v; report %+v", bigErr, !big, !after, rep)
	}
}

// Nor in a snapshot: the snapshot would not read, and the journals it
// replaces are gone.
func TestOversizedSnapshotFrame(t *testing.T) {
	dir := newStoreDir(t)
	m, _, _ := openT(t, dir, Options{})
	st := NewState()
	vdir(st, 1)
	st.Inodes[1].Xattr = map[string][]byte{}
	value := bytes.Repeat([]byte{7}, 64<<10)
	for i := range maxFrame/len(value) + 1 {
		st.Inodes[1].Xattr["user."+strconv.Itoa(i)] = value
	}
	var b Batch
	b.Inode(st.Inodes[1])
	b.Xattr(1, "user.0", value)
	commitT(t, m, &b)
	want := NewState()
	applyBatch(t, want, &b)
	sn, err := m.BeginCompact()
	if err != nil || sn == nil {
		t.Fatal(sn, err)
	}
	testAddState(sn, st, 100) // the root and its xattrs in one frame
	ferr := sn.Finish()
	closeT(t, m)
	if ferr == nil {
		t.Error("Finish of a snapshot with a frame of more than maxFrame bytes succeeded")
	}
	m, got, _, err := Open(dir, Options{})
	if err != nil {
		t.Fatalf("after a snapshot with a frame of more than maxFrame bytes (Finish: %v): %v", ferr, err)
	}
	defer closeT(t, m)
	if ferr != nil {
		checkState(t, got, want)
	}
}

// Salvage loads what can be read: the frames of a journal whose header is
// damaged are intact.
func TestSalvageDamagedJournalHeader(t *testing.T) {
	base, _, states, ends := buildJournal(t, 15, 10)
	dir := copyStore(t, base)
	flipBit(t, jpath(dir, 1), 0, 0)
	m, st, rep := openT(t, dir, Options{Salvage: true})
	closeT(t, m)
	size := fileSize(t, jpath(dir, 1))
	if len(diffState(st, states[len(states)-1])) > 0 || size < ends[len(ends)-1] {
		t.Errorf("Open with Salvage of a journal whose header is damaged (one bit of its magic) "+
			"loads none of its %d intact frames (state has %d inodes) and cuts the file from %d to %d bytes; report %+v",
			len(ends)-1, len(st.Inodes), ends[len(ends)-1], size, rep)
	}
}

// NextIno and NextBlob are above every number handed out.
func TestNextAboveMax(t *testing.T) {
	// Numbers at or above 2^63 are refused by the decoder, so one more
	// than any number in use never wraps.
	for _, in := range []Inode{
		{Ino: math.MaxUint64, Mode: syscall.S_IFREG, Blob: 1},
		{Ino: 2, Mode: syscall.S_IFREG, Blob: math.MaxUint64},
		{Ino: 1 << 63, Mode: syscall.S_IFREG, Blob: 1},
	} {
		var b Batch
		b.Inode(&in)
		d := decoder{p: b.buf[frameHead:]}
		var r record
		if d.next(&r) || d.err == nil {
			t.Errorf("inode %d blob %d: decoded; want an out-of-range error", in.Ino, in.Blob)
		}
	}
	var b Batch
	b.Entry(1, "x", math.MaxUint64)
	d := decoder{p: b.buf[frameHead:]}
	var r record
	if d.next(&r) || d.err == nil {
		t.Errorf("entry naming inode 2^64-1: decoded; want an out-of-range error")
	}
}

// TestLoan: a loan record marks the inode record before it as of a lent
// file, through the journal and through a snapshot; a later inode record
// alone ends the loan.
func TestLoan(t *testing.T) {
	dir := newStoreDir(t)
	m, _, _ := openT(t, dir, Options{})
	lent := Inode{Ino: RootIno + 1, Mode: syscall.S_IFREG | 0o644, Size: 9, Blob: 1, Lent: true, FileMtime: 11, FileCtime: 12,
		Reserved: [][2]int64{{2, 5}}}
	b := m.Batch()
	b.Inode(&Inode{Ino: RootIno, Mode: syscall.S_IFDIR | 0o755})
	b.Entry(RootIno, "f", lent.Ino)
	b.Inode(&lent)
	other := lent
	other.Ino, other.Blob = RootIno+2, 2
	b.Entry(RootIno, "g", other.Ino)
	b.Inode(&other)
	commitT(t, m, b)
	closeT(t, m)

	check := func(what string, st *State, wantF, wantG bool) {
		t.Helper()
		for ino, want := range map[uint64]bool{lent.Ino: wantF, other.Ino: wantG} {
			in := st.Inodes[ino]
			if in == nil || in.Lent != want || want && (in.FileMtime != 11 || in.FileCtime != 12) {
				t.Fatalf("%s: inode %d = %+v, want lent=%v with the store file's times 11, 12", what, ino, in, want)
			}
			// The reserved pages go with the loan in this test.
			if want != (len(in.Reserved) == 1 && in.Reserved[0] == [2]int64{2, 5}) {
				t.Fatalf("%s: inode %d reserved %v", what, ino, in.Reserved)
			}
		}
	}
	m, st, _ := openT(t, dir, Options{})
	check("journal", st, true, true)
	ended := other
	ended.Lent, ended.Reserved = false, nil
	b = m.Batch()
	b.Inode(&ended)
	commitT(t, m, b)
	closeT(t, m)
	m, st, _ = openT(t, dir, Options{})
	check("after the loan of g ended", st, true, false)
	if err := m.Rewrite(st); err != nil {
		t.Fatal(err)
	}
	closeT(t, m)
	m, st, _ = openT(t, dir, Options{})
	check("snapshot", st, true, false)
	closeT(t, m)
}

// TestOlderVersion: a store of format version 1 loads, and Open rewrites
// it in the current version before anything else.
func TestOlderVersion(t *testing.T) {
	base, tr := snapshotStore(t, 8)
	dir := copyStore(t, base)
	for _, n := range metaNames(t, dir) {
		p := filepath.Join(dir, n)
		data, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		binary.LittleEndian.PutUint32(data[8:12], 1)
		if err := os.WriteFile(p, data, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	if _, _, _, err := Open(dir, Options{ReadOnly: true}); err != nil {
		t.Fatalf("read-only Open of a version 1 store: %v", err)
	}
	m, st, rep := openT(t, dir, Options{})
	if !slices.ContainsFunc(rep.Notes, func(n string) bool { return strings.Contains(n, "format version") }) {
		t.Errorf("notes %q do not say the metadata was rewritten", rep.Notes)
	}
	checkState(t, st, tr.st)
	closeT(t, m)
	for _, n := range metaNames(t, dir) {
		data, _ := os.ReadFile(filepath.Join(dir, n))
		if v := binary.LittleEndian.Uint32(data[8:12]); v != Version {
			t.Errorf("%s is of version %d after Open, want %d", n, v, Version)
		}
	}
	m, st, _ = openT(t, dir, Options{})
	checkState(t, st, tr.st)
	closeT(t, m)
}
