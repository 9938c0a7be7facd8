package journal

import (
	"bufio"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

// Compaction: the whole tree written to a new snapshot as the journal
// moves on to a new generation; the old files go once it is in place.

// snapshotChunk is the bytes of records past which a snapshot ends a
// frame: frames stay far below maxFrame, and a damaged one loses little.
const snapshotChunk = 256 << 10

// Snapshot is a snapshot being written by a compaction. The tree goes in
// as records (Next, Inode, Xattr, Entry), in any order; the snapshot cuts
// them into frames and counts the inodes for its end record.
type Snapshot struct {
	m       *Meta
	gen     uint64
	f       *os.File
	w       *bufio.Writer
	b       Batch  // the records of the frame being filled
	pending uint64 // inode records in b
	chunk   int    // bytes of records per frame; snapshotChunk but in tests
	seq     uint64
	count   uint64 // inode records in the frames written
	bytes   int64
	err     error
}

// BeginCompact starts a compaction: the journal moves on to a new
// generation, and the returned Snapshot must be given the whole tree as it
// is at this moment (its records), then finished (Finish). The caller
// makes sure that no change is made between BeginCompact and the last
// record. It returns nil if a compaction is running already.
func (m *Meta) BeginCompact() (*Snapshot, error) {
	if !m.compacting.CompareAndSwap(false, true) {
		return nil, nil
	}
	m.syncMu.Lock()
	defer m.syncMu.Unlock()
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.err != nil || m.f == nil {
		m.compacting.Store(false)
		return nil, errors.Join(m.err, errClosed)
	}
	if m.reserved > 0 {
		// A new journal would have to hold the room reserved in
		// this one: compact once no request holds any.
		m.compacting.Store(false)
		return nil, nil
	}
	// The old journal must be durable before anything of the new one
	// can be: a fsync of the new one covers only the new one.
	if err := m.syncLocked(); err != nil {
		m.compacting.Store(false)
		return nil, wrapNoSpace(err)
	}
	gen := m.gen + 1
	tmp := filepath.Join(m.dir, snapName+genHex(gen)+tmpSuffix)
	sf, err := os.OpenFile(tmp, os.O_RDWR|os.O_CREATE|os.O_TRUNC|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0o600)
	if err != nil {
		m.compacting.Store(false)
		return nil, wrapNoSpace(fmt.Errorf("journal: snapshot: %w", err))
	}
	old, oldOff, oldSeq, oldGen := m.f, m.off, m.seq, m.gen
	m.f, m.gen, m.off = nil, gen, 0
	if err := m.openJournal(false); err != nil {
		m.f, m.off, m.seq, m.gen = old, oldOff, oldSeq, oldGen
		sf.Close()
		os.Remove(tmp)
		m.compacting.Store(false)
		return nil, wrapNoSpace(err)
	}
	old.close(oldOff)
	sn := &Snapshot{m: m, gen: gen, f: sf, w: bufio.NewWriterSize(sf, 1<<20), seq: 1, chunk: snapshotChunk}
	sn.b.Reset()
	_, sn.err = sn.w.Write(header(kindSnapshot, gen))
	sn.bytes = headerSize
	return sn, nil
}

// Next adds the numbering state: inode and blob numbers handed out so far
// are below ino and blob.
func (sn *Snapshot) Next(ino, blob uint64) {
	sn.b.Next(ino, blob)
	sn.filled()
}

// Inode adds an inode, without its xattrs (Xattr adds them). Each inode
// goes in once.
func (sn *Snapshot) Inode(in *Inode) {
	sn.b.Inode(in)
	sn.pending++
	sn.filled()
}

// Xattr adds an extended attribute of inode ino, after the inode.
func (sn *Snapshot) Xattr(ino uint64, name string, value []byte) {
	sn.b.Xattr(ino, name, value)
	sn.filled()
}

// Entry adds a directory entry: name in parent is child.
func (sn *Snapshot) Entry(parent uint64, name string, child uint64) {
	sn.b.Entry(parent, name, child)
	sn.filled()
}

// Inodes returns the number of inodes added so far.
func (sn *Snapshot) Inodes() int { return int(sn.count + sn.pending) }

// filled writes the frame being filled once it holds chunk bytes.
func (sn *Snapshot) filled() {
	if sn.b.Bytes() > sn.chunk {
		sn.flush()
	}
}

// flush writes the records added since the last frame as a frame.
func (sn *Snapshot) flush() {
	sn.add(&sn.b, sn.pending)
	sn.b.Reset()
	sn.pending = 0
}

// add writes b into the snapshot as one frame. inodes is the number of
// inode records in it.
func (sn *Snapshot) add(b *Batch, inodes uint64) {
	if sn.err != nil || b.n == 0 {
		return
	}
	if b.Bytes() > maxFrame {
		sn.err = fmt.Errorf("journal: %d bytes of records for one frame of a snapshot (at most %d)", b.Bytes(), maxFrame)
		return
	}
	p := b.frame(sn.seq)
	sn.seq++
	sn.count += inodes
	sn.bytes += int64(len(p))
	_, sn.err = sn.w.Write(p)
}

// Finish ends the snapshot, makes it durable, puts it in place and removes
// what it replaces. It may run while changes are being committed.
func (sn *Snapshot) Finish() error {
	m := sn.m
	defer m.compacting.Store(false)
	sn.flush()
	var b Batch
	b.Reset()
	b.end(sn.count)
	sn.add(&b, 0)
	tmp := sn.f.Name()
	err := sn.err
	if err == nil {
		err = sn.w.Flush()
	}
	if err == nil {
		err = sn.f.Sync()
	}
	if cerr := sn.f.Close(); err == nil {
		err = cerr
	}
	final := filepath.Join(m.dir, snapName+genHex(sn.gen))
	if err == nil {
		err = os.Rename(tmp, final)
	}
	if err == nil {
		err = syncDir(m.dir)
	}
	if err != nil {
		os.Remove(tmp)
		// The journals since the last snapshot are all still there:
		// nothing is lost, the next compaction tries again.
		return wrapNoSpace(fmt.Errorf("journal: snapshot: %w", err))
	}
	m.mu.Lock()
	m.snapSize = sn.bytes
	m.mu.Unlock()
	names, _ := readNames(m.dir)
	for _, n := range names {
		var rest string
		switch {
		case strings.HasPrefix(n, snapName) && !strings.HasSuffix(n, tmpSuffix):
			rest = n[len(snapName):]
		case strings.HasPrefix(n, jrnlName):
			rest = n[len(jrnlName):]
		default:
			continue
		}
		if g, err := strconv.ParseUint(rest, 16, 64); err == nil && g < sn.gen {
			_ = os.Remove(filepath.Join(m.dir, n))
		}
	}
	return nil
}

// Abort gives up a snapshot.
func (sn *Snapshot) Abort() {
	sn.f.Close()
	os.Remove(sn.f.Name())
	sn.m.compacting.Store(false)
}

// AddState adds the whole of st to the snapshot, for a store rewritten
// from a loaded state (fsck --repair).
func (sn *Snapshot) AddState(st *State) {
	sn.Next(st.NextIno, st.NextBlob)
	for _, ino := range sortedKeys(st.Inodes) {
		in := st.Inodes[ino]
		sn.Inode(in)
		for _, name := range sortedKeys(in.Xattr) {
			sn.Xattr(ino, name, in.Xattr[name])
		}
		for _, name := range sortedKeys(st.Entries[ino]) {
			sn.Entry(ino, name, st.Entries[ino][name])
		}
	}
}

// Rewrite replaces the store's metadata with st: a new snapshot and an
// empty journal.
func (m *Meta) Rewrite(st *State) error {
	sn, err := m.BeginCompact()
	if err != nil {
		return err
	}
	if sn == nil {
		return errors.New("journal: a compaction is running")
	}
	sn.AddState(st)
	return sn.Finish()
}
