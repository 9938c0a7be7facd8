// Package journal keeps the metadata of a persistent mmapfs store: the
// inodes, directory entries and extended attributes of the tree, as an
// append-only journal of checksummed frames next to a snapshot that
// compaction rewrites from time to time.
//
// Its directory (meta/ of a store directory; package store owns the rest
// of the layout and the lock) holds:
//
//	snapshot-G      the whole tree when journal G began
//	journal-G       the changes made since snapshot G, frame by frame
//
// Every file in it starts with a 24-byte header: an 8-byte magic, the
// format version (uint32), the kind of file (uint32) and its generation
// (uint64), little-endian. Then come frames:
//
//	length uint32   bytes of payload
//	crc    uint32   CRC-32C of seq and payload
//	seq    uint64   1, 2, 3… within the file
//	payload         records
//
// A frame is applied whole or not at all: a change that writes several
// records (a rename) writes them in one frame. A frame that is cut short or
// fails its checksum ends the file: it and anything after it are dropped.
//
// Records are state, not operations: an inode record carries every
// attribute of the inode, a directory-entry record says what a name now
// refers to. Applying them again, or applying one whose effect a snapshot
// already holds, changes nothing.
//
// # Locking
//
//	Meta.syncMu (Sync, while it syncs the journal file without Meta.mu;
//	             BeginCompact and Close, which replace or close that file)
//	  Meta.mu   (the journal being appended to: Commit, Reserve, Unreserve,
//	             Sync, Frames, JournalSize, BeginCompact, Close; a leaf:
//	             nothing else is locked under it)
//
// Meta.compacting lets one compaction run at a time: between BeginCompact
// and Finish or Abort, the Snapshot is its caller's alone, and Finish
// writes, syncs and renames it without Meta.mu (taking it only to record
// the snapshot's size). The caller of BeginCompact keeps the tree still
// until the last record is added (package fs holds its quiesce lock).
// Meta.over, Meta.compacting and the batch pool are safe for concurrent
// use without a lock. A Batch is its caller's until Commit, which takes it
// back.
package journal

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"sync"
)

// Version is the format version this package writes. It reads every
// version from oldestVersion on: version 1 lacks the loan record. Open
// rewrites the metadata of an older version as its first change, so that
// an older mmapfs, which would take a loan record for damage, refuses the
// store by its version instead.
const Version = 2

// oldestVersion is the oldest format version this package reads.
const oldestVersion = 1

const (
	magic      = "MMAPFS\x00M"
	headerSize = 24
	frameHead  = 16
	// maxFrame bounds a frame's payload: a decoder never allocates more
	// for one frame, and Commit refuses more. The largest record is an
	// xattr of 64 KiB; a frame holds at most one inode's xattrs.
	maxFrame = 64 << 20
)

// Kinds of files in meta/.
const (
	kindSnapshot = 1
	kindJournal  = 2
)

// Record types.
const (
	recInode    = 1 // every attribute of an inode; creates it if new
	recEntry    = 2 // a directory entry: parent, name, child (0 = removed)
	recXattr    = 3 // an extended attribute set
	recXattrDel = 4 // an extended attribute removed
	recFree     = 5 // an inode and its data are gone
	recNext     = 6 // numbering: next inode and blob id (snapshots)
	recEnd      = 7 // the end of a snapshot, with its count of inodes
	recLoan     = 8 // the inode record before it is of a lent file (version 2)
	recReserved = 9 // the pages reserved without data of the inode record before it (version 2)
)

// MaxReserved bounds the runs of reserved pages one inode record carries.
const MaxReserved = 1 << 16

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// ErrVersion is returned for a store of another format version.
var ErrVersion = errors.New("journal: unknown format version")

// Inode is the state of one inode.
type Inode struct {
	Ino                        uint64
	Mode                       uint32 // type and permission bits
	UID, GID, Rdev             uint32
	Atime, Mtime, Ctime, Btime int64  // nanoseconds since 1970
	Size                       int64  // regular files
	Blob                       uint64 // regular files: the blob with the data
	// Alloc is the bytes the blob had allocated, for fsck: a store file
	// holding less than this lost data (or a punch was cut short).
	Alloc int64
	// Nlink is the link count when the record was written, for fsck:
	// the tree gives the true count.
	Nlink  uint32
	Target []byte // symlinks
	Xattr  map[string][]byte
	// Lent: a regular file open for writing with passthrough, whose
	// store file the kernel writes without the server. Its size is then
	// the store file's length, and its mtime and ctime are the store
	// file's once these differ from FileMtime and FileCtime, the store
	// file's own times when the record was made (see package store,
	// recovery). Batch.Inode writes these in a loan record after the
	// inode record; an inode record alone is of a file not lent.
	Lent                 bool
	FileMtime, FileCtime int64 // nanoseconds since 1970
	// Reserved are the runs of pages of a regular file's blob that are
	// allocated without data (fallocate, zero range), as [start, end)
	// page numbers in ascending order, so that they stay reserved across
	// mounts (the store file cannot tell them from holes). Batch.Inode
	// writes them in a record of their own after the inode record, at
	// most MaxReserved of them.
	Reserved [][2]int64
}

// header returns the header of a file of kind and generation gen.
func header(kind uint32, gen uint64) []byte {
	h := make([]byte, headerSize)
	copy(h, magic)
	binary.LittleEndian.PutUint32(h[8:], Version)
	binary.LittleEndian.PutUint32(h[12:], kind)
	binary.LittleEndian.PutUint64(h[16:], gen)
	return h
}

// headerVersion returns the format version of a header that parseHeader
// accepted.
func headerVersion(h []byte) uint32 { return binary.LittleEndian.Uint32(h[8:]) }

// parseHeader checks a header and returns its kind and generation.
func parseHeader(h []byte) (kind uint32, gen uint64, err error) {
	if len(h) < headerSize || string(h[:8]) != magic {
		return 0, 0, errors.New("not an mmapfs metadata file (bad magic)")
	}
	if v := binary.LittleEndian.Uint32(h[8:]); v < oldestVersion || v > Version {
		return 0, 0, fmt.Errorf("%w %d (this mmapfs reads versions %d to %d)", ErrVersion, v, oldestVersion, Version)
	}
	return binary.LittleEndian.Uint32(h[12:]), binary.LittleEndian.Uint64(h[16:]), nil
}

// Batch is the records of one frame being built.
type Batch struct {
	buf      []byte     // frameHead bytes of room, then the records
	n        int        // records
	pool     *sync.Pool // the pool of the Meta whose Batch made it; nil = the caller's
	reserved bool       // journal room is reserved for it (Meta.Reserve)
}

// Reset empties the batch for reuse.
func (b *Batch) Reset() {
	if cap(b.buf) < frameHead {
		b.buf = make([]byte, frameHead, 256)
	}
	b.buf = b.buf[:frameHead]
	b.n = 0
}

// Len returns the number of records in the batch.
func (b *Batch) Len() int { return b.n }

// Bytes returns the size of the records in the batch.
func (b *Batch) Bytes() int { return max(len(b.buf)-frameHead, 0) }

func (b *Batch) begin(t byte) {
	if len(b.buf) < frameHead {
		b.Reset()
	}
	b.buf = append(b.buf, t)
	b.n++
}

func (b *Batch) uvarint(v uint64) { b.buf = binary.AppendUvarint(b.buf, v) }
func (b *Batch) varint(v int64)   { b.buf = binary.AppendVarint(b.buf, v) }
func (b *Batch) bytes(p []byte) {
	b.uvarint(uint64(len(p)))
	b.buf = append(b.buf, p...)
}
func (b *Batch) str(s string) {
	b.uvarint(uint64(len(s)))
	b.buf = append(b.buf, s...)
}

// Inode adds the state of an inode, without its xattrs, and the loan
// record of a lent file.
func (b *Batch) Inode(in *Inode) {
	b.begin(recInode)
	b.uvarint(in.Ino)
	b.uvarint(uint64(in.Mode))
	b.uvarint(uint64(in.UID))
	b.uvarint(uint64(in.GID))
	b.uvarint(uint64(in.Rdev))
	b.varint(in.Atime)
	b.varint(in.Mtime)
	b.varint(in.Ctime)
	b.varint(in.Btime)
	b.varint(in.Size)
	b.uvarint(in.Blob)
	b.varint(in.Alloc)
	b.uvarint(uint64(in.Nlink))
	b.bytes(in.Target)
	if in.Lent {
		b.begin(recLoan)
		b.uvarint(in.Ino)
		b.varint(in.FileMtime)
		b.varint(in.FileCtime)
	}
	if len(in.Reserved) > 0 {
		runs := in.Reserved[:min(len(in.Reserved), MaxReserved)]
		b.begin(recReserved)
		b.uvarint(in.Ino)
		b.uvarint(uint64(len(runs)))
		last := int64(0)
		for _, r := range runs {
			// Deltas: each run starts at or after the end of the last.
			b.uvarint(uint64(r[0] - last))
			b.uvarint(uint64(r[1] - r[0]))
			last = r[1]
		}
	}
}

// Entry adds a directory entry: name in parent is child, or is removed if
// child is 0.
func (b *Batch) Entry(parent uint64, name string, child uint64) {
	b.begin(recEntry)
	b.uvarint(parent)
	b.str(name)
	b.uvarint(child)
}

// Xattr adds an extended attribute set to value.
func (b *Batch) Xattr(ino uint64, name string, value []byte) {
	b.begin(recXattr)
	b.uvarint(ino)
	b.str(name)
	b.bytes(value)
}

// XattrDel adds the removal of an extended attribute.
func (b *Batch) XattrDel(ino uint64, name string) {
	b.begin(recXattrDel)
	b.uvarint(ino)
	b.str(name)
}

// Free adds the end of an inode.
func (b *Batch) Free(ino uint64) {
	b.begin(recFree)
	b.uvarint(ino)
}

// Next adds the numbering state.
func (b *Batch) Next(ino, blob uint64) {
	b.begin(recNext)
	b.uvarint(ino)
	b.uvarint(blob)
}

func (b *Batch) end(count uint64) {
	b.begin(recEnd)
	b.uvarint(count)
}

// frame fills in the frame header for seq and returns the whole frame.
func (b *Batch) frame(seq uint64) []byte {
	p := b.buf
	binary.LittleEndian.PutUint32(p[0:], uint32(len(p)-frameHead))
	binary.LittleEndian.PutUint64(p[8:], seq)
	binary.LittleEndian.PutUint32(p[4:], crc32.Checksum(p[8:], castagnoli))
	return p
}

// record is one decoded record.
type record struct {
	typ          byte
	ino          uint64 // recInode, recXattr*, recFree; parent for recEntry
	child        uint64 // recEntry
	name         string // recEntry, recXattr*
	value        []byte // recXattr
	inode        Inode  // recInode; FileMtime and FileCtime for recLoan; Reserved for recReserved
	next1, next2 uint64 // recNext; next1 is the count for recEnd
}

// decoder reads records from one frame's payload.
type decoder struct {
	p   []byte
	err error
}

var errShort = errors.New("record cut short")

func (d *decoder) uvarint() uint64 {
	if d.err != nil {
		return 0
	}
	v, n := binary.Uvarint(d.p)
	if n <= 0 {
		d.err = errShort
		return 0
	}
	d.p = d.p[n:]
	return v
}

func (d *decoder) u32() uint32 {
	v := d.uvarint()
	if v > 1<<32-1 && d.err == nil {
		d.err = errors.New("value out of range")
	}
	return uint32(v)
}

func (d *decoder) varint() int64 {
	if d.err != nil {
		return 0
	}
	v, n := binary.Varint(d.p)
	if n <= 0 {
		d.err = errShort
		return 0
	}
	d.p = d.p[n:]
	return v
}

func (d *decoder) bytes() []byte {
	n := d.uvarint()
	if d.err != nil {
		return nil
	}
	if n > uint64(len(d.p)) {
		d.err = errShort
		return nil
	}
	v := d.p[:n:n]
	d.p = d.p[n:]
	return v
}

// next decodes the next record; ok is false at the end of the payload or
// on an error (in d.err).
func (d *decoder) next(r *record) bool {
	if d.err != nil || len(d.p) == 0 {
		return false
	}
	*r = record{typ: d.p[0]}
	d.p = d.p[1:]
	switch r.typ {
	case recInode:
		in := &r.inode
		in.Ino = d.uvarint()
		in.Mode = d.u32()
		in.UID = d.u32()
		in.GID = d.u32()
		in.Rdev = d.u32()
		in.Atime = d.varint()
		in.Mtime = d.varint()
		in.Ctime = d.varint()
		in.Btime = d.varint()
		in.Size = d.varint()
		in.Blob = d.uvarint()
		in.Alloc = d.varint()
		in.Nlink = d.u32()
		if t := d.bytes(); len(t) > 0 {
			in.Target = append([]byte(nil), t...)
		}
		r.ino = in.Ino
		if d.err == nil && (in.Size < 0 || in.Alloc < 0) {
			d.err = errors.New("negative size")
		}
	case recEntry:
		r.ino = d.uvarint()
		r.name = string(d.bytes())
		r.child = d.uvarint()
	case recXattr:
		r.ino = d.uvarint()
		r.name = string(d.bytes())
		r.value = append([]byte{}, d.bytes()...)
	case recXattrDel:
		r.ino = d.uvarint()
		r.name = string(d.bytes())
	case recFree:
		r.ino = d.uvarint()
	case recLoan:
		r.ino = d.uvarint()
		r.inode.FileMtime = d.varint()
		r.inode.FileCtime = d.varint()
	case recReserved:
		r.ino = d.uvarint()
		n := d.uvarint()
		if n > MaxReserved {
			d.err = errors.New("too many reserved runs")
			break
		}
		runs := make([][2]int64, 0, n)
		last := uint64(0)
		for i := uint64(0); i < n && d.err == nil; i++ {
			start := last + d.uvarint()
			end := start + d.uvarint()
			if start < last || end < start || end > 1<<52 {
				d.err = errors.New("reserved run out of range")
				break
			}
			runs = append(runs, [2]int64{int64(start), int64(end)})
			last = end
		}
		r.inode.Reserved = runs
	case recNext:
		r.next1 = d.uvarint()
		r.next2 = d.uvarint()
	case recEnd:
		r.next1 = d.uvarint()
	default:
		d.err = fmt.Errorf("unknown record type %d", r.typ)
	}
	if d.err == nil && r.ino == 0 && r.typ != recNext && r.typ != recEnd {
		d.err = errors.New("inode number 0")
	}
	// Numbers are below 2^63, so that one more is always above them.
	if d.err == nil && (r.ino|r.child|r.inode.Blob|r.next1|r.next2)>>63 != 0 {
		d.err = errors.New("number out of range")
	}
	return d.err == nil
}

// frameAt decodes the frame at the start of p. It returns the payload and
// the frame's total length, or an error saying why p does not start with
// a whole, intact frame with sequence number seq.
func frameAt(p []byte, seq uint64) (payload []byte, n int, err error) {
	if len(p) < frameHead {
		return nil, 0, errShort
	}
	length := binary.LittleEndian.Uint32(p[0:])
	if length > maxFrame {
		return nil, 0, fmt.Errorf("frame length %d is out of range", length)
	}
	if uint64(len(p)) < frameHead+uint64(length) {
		return nil, 0, errShort
	}
	end := frameHead + int(length)
	if crc32.Checksum(p[8:end], castagnoli) != binary.LittleEndian.Uint32(p[4:]) {
		return nil, 0, errors.New("checksum mismatch")
	}
	if got := binary.LittleEndian.Uint64(p[8:]); got != seq {
		return nil, 0, fmt.Errorf("frame %d where %d was expected", got, seq)
	}
	return p[frameHead:end], end, nil
}
