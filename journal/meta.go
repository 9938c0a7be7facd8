package journal

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime/debug"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"

	"go.uber.org/zap"
	"golang.org/x/sys/unix"

	"mmapfs/mapstore"
)

// Names of the files in the journal's directory.
const (
	snapName  = "snapshot-"
	jrnlName  = "journal-"
	tmpSuffix = ".tmp"
)

// ErrDamaged is returned by Open when the metadata is damaged beyond a torn
// journal tail; fsck --repair salvages what is left.
var ErrDamaged = errors.New("metadata damaged")

// Options configure Open.
type Options struct {
	// ReadOnly opens without changing anything: torn tails and stale
	// files stay, nothing is written. For fsck.
	ReadOnly bool
	// Salvage loads what can be read of damaged metadata instead of
	// failing with ErrDamaged. For fsck --repair.
	Salvage bool
	// CompactBytes is the journal size past which ShouldCompact says
	// yes; 0 = 64 MiB.
	CompactBytes int64
	Logger       *zap.Logger
}

// Report says what Open found on the way.
type Report struct {
	Generation uint64   // of the snapshot and journal now in use
	Frames     int      // journal frames replayed
	Bytes      int64    // bytes of snapshot and journal read
	Dropped    int64    // bytes of torn journal tail dropped
	Damage     []string // damage found, in plain words
	Notes      []string // things tidied up (stale files)
}

// Meta is the metadata of an open store: the snapshot and journals of its
// directory, and the journal that changes are committed to. Its methods are
// safe for concurrent use. Whoever opens it keeps other processes away from
// the directory (package store locks the store).
type Meta struct {
	dir     string // the journal's directory
	log     *zap.Logger
	ro      bool
	compact int64

	compacting atomic.Bool
	over       atomic.Bool // the journal is past the compaction threshold

	mu       sync.Mutex
	f        *jfile // Protected by mu: the journal being appended to.
	gen      uint64 // Protected by mu.
	off      int64  // Protected by mu: where the next frame goes.
	seq      uint64 // Protected by mu: the next frame's sequence number.
	unsynced bool   // Protected by mu: frames written since the last Sync.
	dirSync  bool   // Protected by mu: meta/ needs an fsync.
	err      error  // Protected by mu: a failure that stops all commits.
	snapSize int64  // Protected by mu: bytes of the last snapshot.
}

// Open loads the snapshot and journals in dir, the journal's directory,
// which must exist, and opens the journal for appending (not with
// ReadOnly). The State is the tree as the last committed change left it;
// Report says what was found. Errors do not name dir: the caller says
// whose metadata it is.
func Open(dir string, opts Options) (*Meta, *State, *Report, error) {
	log := opts.Logger
	if log == nil {
		log = zap.NewNop()
	}
	m := &Meta{dir: dir, log: log, ro: opts.ReadOnly, compact: opts.CompactBytes}
	if m.compact == 0 {
		m.compact = 64 << 20
	}
	rep := &Report{}
	st, err := m.load(rep, opts.Salvage)
	if err != nil {
		return nil, nil, nil, err
	}
	return m, st, rep, nil
}

// removing says what load does with a stale file: removes it, or, read
// only, would.
func (m *Meta) removing() string {
	if m.ro {
		return "would remove"
	}
	return "removed"
}

// rel names a file of the directory in messages: meta/NAME.
func (m *Meta) rel(name string) string { return filepath.Base(m.dir) + "/" + name }

// metaFile is a snapshot or journal file of the directory.
type metaFile struct {
	name string
	kind uint32
	gen  uint64
}

// load reads the snapshot and journals into a state and opens the journal
// for appending.
func (m *Meta) load(rep *Report, salvage bool) (*State, error) {
	names, err := readNames(m.dir)
	if err != nil {
		return nil, err
	}
	var snaps, jrnls []metaFile
	for _, n := range names {
		var mf metaFile
		var rest string
		switch {
		case strings.HasSuffix(n, tmpSuffix):
			// A snapshot that compaction did not finish.
			rep.Notes = append(rep.Notes, m.removing()+" the unfinished snapshot "+n)
			if !m.ro {
				_ = os.Remove(filepath.Join(m.dir, n))
			}
			continue
		case strings.HasPrefix(n, snapName):
			mf.kind, rest = kindSnapshot, n[len(snapName):]
		case strings.HasPrefix(n, jrnlName):
			mf.kind, rest = kindJournal, n[len(jrnlName):]
		default:
			rep.Notes = append(rep.Notes, m.rel(n)+" is not a file mmapfs writes; it is left alone")
			continue
		}
		g, err := strconv.ParseUint(rest, 16, 64)
		if err != nil || len(rest) != 16 {
			rep.Notes = append(rep.Notes, m.rel(n)+" is not a file mmapfs writes; it is left alone")
			continue
		}
		mf.name, mf.gen = n, g
		if mf.kind == kindSnapshot {
			snaps = append(snaps, mf)
		} else {
			jrnls = append(jrnls, mf)
		}
	}
	byGen := func(a, b metaFile) int { return cmpU64(a.gen, b.gen) }
	slices.SortFunc(snaps, byGen)
	slices.SortFunc(jrnls, byGen)

	// The newest snapshot that reads whole; older ones are the fallback
	// of a compaction that did not finish removing them.
	var st, partial *State
	var gen, partialGen uint64
	for i := len(snaps) - 1; i >= 0; i-- {
		s, n, err := m.readSnapshot(snaps[i])
		rep.Bytes += n
		if err == nil {
			st, gen = s, snaps[i].gen
			break
		}
		if errors.Is(err, ErrVersion) {
			return nil, fmt.Errorf("%s: %w", m.rel(snaps[i].name), err)
		}
		rep.Damage = append(rep.Damage, fmt.Sprintf("snapshot %s is damaged: %v", m.rel(snaps[i].name), err))
		if partial == nil {
			partial, partialGen = s, snaps[i].gen
		}
	}
	switch {
	case st != nil:
	case partial != nil:
		// Every snapshot is damaged: what could be read of the newest
		// (salvage uses it; otherwise the load fails below).
		st, gen = partial, partialGen
	default:
		st, gen = NewState(), 1
		if len(jrnls) > 0 && jrnls[0].gen != 1 {
			rep.Damage = append(rep.Damage, "the snapshot is missing: only later journals are there")
			gen = jrnls[0].gen
		}
	}
	// The journals from gen on, in order; older ones are stale.
	var use []metaFile
	for _, j := range jrnls {
		if j.gen < gen {
			rep.Notes = append(rep.Notes, m.removing()+" the compacted journal "+j.name)
			if !m.ro {
				_ = os.Remove(filepath.Join(m.dir, j.name))
			}
			continue
		}
		if len(use) > 0 && j.gen != use[len(use)-1].gen+1 || len(use) == 0 && j.gen != gen {
			rep.Damage = append(rep.Damage, fmt.Sprintf("journal %s does not follow on from generation %d", m.rel(j.name), gen))
		}
		use = append(use, j)
	}
	for i, j := range use {
		last := i == len(use)-1
		valid, size, seq, err := m.replay(j, st, rep, salvage)
		if err != nil {
			if errors.Is(err, ErrVersion) {
				return nil, fmt.Errorf("%s: %w", m.rel(j.name), err)
			}
			return nil, err
		}
		if valid < size {
			dropped := size - valid
			if !last {
				rep.Damage = append(rep.Damage, fmt.Sprintf("journal %s is damaged after byte %d (%d bytes unreadable); later journals follow it", m.rel(j.name), valid, dropped))
			} else {
				rep.Dropped += dropped
				m.log.Warn("dropped a torn or damaged journal tail: a change being written when the server stopped",
					zap.String("journal", filepath.Join(m.dir, j.name)),
					zap.Int64("at", valid), zap.Int64("bytes", dropped))
			}
		}
		if last {
			gen = j.gen
			m.off, m.seq = valid, seq
			if valid < headerSize {
				m.off, m.seq = 0, 1 // the header itself is rewritten
			}
		}
	}
	if len(rep.Damage) > 0 && !salvage {
		return nil, fmt.Errorf("%w: %s", ErrDamaged, strings.Join(rep.Damage, "; "))
	}
	rep.Generation = gen
	m.gen = gen
	if m.ro {
		return st, nil
	}
	return st, m.openJournal(len(use) > 0 && use[len(use)-1].gen == gen)
}

// openJournal opens journal m.gen for appending at m.off, creating it (or
// rewriting its header) if needed.
func (m *Meta) openJournal(exists bool) error {
	name := filepath.Join(m.dir, jrnlName+genHex(m.gen))
	f, err := os.OpenFile(name, os.O_RDWR|os.O_CREATE|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0o600)
	if err != nil {
		return fmt.Errorf("journal: %w", err)
	}
	if m.off < headerSize {
		if _, err := f.WriteAt(header(kindJournal, m.gen), 0); err != nil {
			f.Close()
			return fmt.Errorf("journal: %w", err)
		}
		m.off, m.seq = headerSize, 1
	}
	// A dropped tail goes, so that new frames follow the valid ones.
	if err := f.Truncate(m.off); err != nil {
		f.Close()
		return fmt.Errorf("journal: %w", err)
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return fmt.Errorf("journal: %w", err)
	}
	if !exists {
		if err := syncDir(m.dir); err != nil {
			f.Close()
			return err
		}
	}
	m.f = &jfile{f: f, size: m.off}
	m.over.Store(false)
	return nil
}

// readSnapshot reads a whole snapshot. On an error it also returns what it
// could read.
func (m *Meta) readSnapshot(mf metaFile) (*State, int64, error) {
	data, err := os.ReadFile(filepath.Join(m.dir, mf.name))
	st := NewState()
	if err != nil {
		return st, 0, err
	}
	kind, gen, err := parseHeader(data)
	if err != nil {
		return st, int64(len(data)), err
	}
	if kind != kindSnapshot || gen != mf.gen {
		return st, int64(len(data)), fmt.Errorf("header says kind %d generation %d", kind, gen)
	}
	ended := false
	_, _, err = decodeFrames(data, headerSize, 1, func(r *record) {
		if r.typ == recEnd {
			ended = uint64(len(st.Inodes)) == r.next1
			return
		}
		st.apply(r)
	})
	m.snapSize = int64(len(data))
	switch {
	case err != nil:
		return st, int64(len(data)), err
	case !ended:
		return st, int64(len(data)), errors.New("it is incomplete (no end record, or a wrong count)")
	}
	return st, int64(len(data)), nil
}

// replay applies a journal to st. It returns how many bytes of it are
// valid (a torn tail follows), its size, and the next sequence number.
// Damage in the middle (intact frames follow a bad one) is reported in
// rep; with salvage the intact frames after it are applied too.
func (m *Meta) replay(mf metaFile, st *State, rep *Report, salvage bool) (valid, size int64, seq uint64, err error) {
	data, err := os.ReadFile(filepath.Join(m.dir, mf.name))
	if err != nil {
		return 0, 0, 0, err
	}
	rep.Bytes += int64(len(data))
	if len(data) < headerSize {
		return 0, int64(len(data)), 1, nil // torn while being made
	}
	kind, gen, err := parseHeader(data)
	if errors.Is(err, ErrVersion) {
		return 0, 0, 0, err
	}
	if err != nil || kind != kindJournal || gen != mf.gen {
		rep.Damage = append(rep.Damage, fmt.Sprintf("journal %s has a damaged header", m.rel(mf.name)))
		if !salvage {
			return 0, int64(len(data)), 1, nil
		}
		// The frames after it may be intact.
	}
	off, seq := headerSize, uint64(1)
	for {
		n, frames, _ := decodeFrames(data, off, seq, func(r *record) { st.apply(r) })
		rep.Frames += frames
		off, seq = n, seq+uint64(frames)
		if off == len(data) || allZero(data[off:]) {
			// The end, or the end and the zeros of space allocated
			// ahead for frames to come.
			return int64(off), int64(off), seq, nil
		}
		at, next, ok := laterFrame(data[off:], seq)
		if !ok {
			return int64(off), int64(len(data)), seq, nil // a torn tail
		}
		rep.Damage = append(rep.Damage, fmt.Sprintf("journal %s is damaged at byte %d, and intact changes follow from byte %d", m.rel(mf.name), off, off+at))
		if !salvage {
			return int64(len(data)), int64(len(data)), seq, nil
		}
		off, seq = off+at, next
	}
}

// laterFrame looks in what follows the valid part of a journal for an
// intact frame with a later sequence number (up to 64 frames later): a
// write cut short by a crash leaves none; damage in the middle of a
// journal does. It returns the frame's offset in tail and its number.
func laterFrame(tail []byte, seq uint64) (int, uint64, bool) {
	for i := 1; i+frameHead <= len(tail); i++ {
		s := binary.LittleEndian.Uint64(tail[i+8:])
		if s <= seq || s > seq+64 {
			continue
		}
		if _, _, err := frameAt(tail[i:], s); err == nil {
			return i, s, true
		}
	}
	return 0, 0, false
}

// decodeFrames applies fn to every record of the intact frames of a meta
// file (after its header), in order, a frame at a time: a frame with a bad
// record is not applied at all. It returns the length of the valid prefix
// and the number of frames in it, and why it ended early.
func decodeFrames(data []byte, off int, seq uint64, fn func(*record)) (valid, frames int, err error) {
	var recs []record
	for ; off < len(data); seq++ {
		payload, n, err := frameAt(data[off:], seq)
		if err != nil {
			return off, frames, fmt.Errorf("at byte %d: %w", off, err)
		}
		recs = recs[:0]
		d := decoder{p: payload}
		var r record
		for d.next(&r) {
			recs = append(recs, r)
		}
		if d.err != nil {
			return off, frames, fmt.Errorf("at byte %d: %w", off, d.err)
		}
		for i := range recs {
			fn(&recs[i])
		}
		off += n
		frames++
	}
	return off, frames, nil
}

// Commit appends b as one frame. When Commit returns, the change survives
// the end of this process; Sync makes it survive a power loss.
func (m *Meta) Commit(b *Batch) error {
	if b.n == 0 {
		return nil
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.err != nil {
		return m.err
	}
	if m.f == nil {
		return errors.New("journal: closed")
	}
	if b.Bytes() > maxFrame {
		return fmt.Errorf("journal: a change of %d bytes is larger than a frame may be (%d)", b.Bytes(), maxFrame)
	}
	p := b.frame(m.seq)
	if err := m.f.write(p, m.off); err != nil {
		// Nothing counts as written: the next frame goes at the same
		// place, over whatever part of this one got there.
		return fmt.Errorf("journal: %w", err)
	}
	m.off += int64(len(p))
	m.seq++
	m.unsynced = true
	if m.off > m.compact && m.off > m.snapSize {
		m.over.Store(true)
	}
	return nil
}

// Sync makes every committed change durable.
func (m *Meta) Sync() error {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.syncLocked()
}

func (m *Meta) syncLocked() error {
	if m.err != nil {
		return m.err
	}
	if m.f == nil {
		return nil
	}
	if m.unsynced {
		if err := unix.Fdatasync(int(m.f.f.Fd())); err != nil {
			return fmt.Errorf("journal: fdatasync: %w", err)
		}
		m.unsynced = false
	}
	if m.dirSync {
		if err := syncDir(m.dir); err != nil {
			return err
		}
		m.dirSync = false
	}
	return nil
}

// ShouldCompact says whether the journal has grown enough that a snapshot
// would pay: past CompactBytes and past the size of the last snapshot.
func (m *Meta) ShouldCompact() bool {
	return m.over.Load() && !m.compacting.Load()
}

// Frames returns the number of frames in the journal being appended to:
// the changes since the last snapshot.
func (m *Meta) Frames() uint64 {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.seq - 1
}

// JournalSize returns the bytes in the journal being appended to.
func (m *Meta) JournalSize() int64 {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.off
}

// Snapshot is a snapshot being written by a compaction.
type Snapshot struct {
	m     *Meta
	gen   uint64
	f     *os.File
	w     *bufio.Writer
	seq   uint64
	count uint64
	bytes int64
	err   error
}

// BeginCompact starts a compaction: the journal moves on to a new
// generation, and the returned Snapshot must be given the whole tree as it
// is at this moment (Add), then finished (Finish). The caller makes sure
// that no change is made between BeginCompact and the last Add. It
// returns nil if a compaction is running already.
func (m *Meta) BeginCompact() (*Snapshot, error) {
	if !m.compacting.CompareAndSwap(false, true) {
		return nil, nil
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.err != nil || m.f == nil {
		m.compacting.Store(false)
		return nil, errors.Join(m.err, errors.New("journal: closed"))
	}
	// The old journal must be durable before anything of the new one
	// can be: a fsync of the new one covers only the new one.
	if err := m.syncLocked(); err != nil {
		m.compacting.Store(false)
		return nil, err
	}
	gen := m.gen + 1
	tmp := filepath.Join(m.dir, snapName+genHex(gen)+tmpSuffix)
	sf, err := os.OpenFile(tmp, os.O_RDWR|os.O_CREATE|os.O_TRUNC|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0o600)
	if err != nil {
		m.compacting.Store(false)
		return nil, fmt.Errorf("journal: snapshot: %w", err)
	}
	old, oldOff, oldSeq, oldGen := m.f, m.off, m.seq, m.gen
	m.f, m.gen, m.off = nil, gen, 0
	if err := m.openJournal(false); err != nil {
		m.f, m.off, m.seq, m.gen = old, oldOff, oldSeq, oldGen
		sf.Close()
		os.Remove(tmp)
		m.compacting.Store(false)
		return nil, err
	}
	old.close(oldOff)
	sn := &Snapshot{m: m, gen: gen, f: sf, w: bufio.NewWriterSize(sf, 1<<20), seq: 1}
	_, sn.err = sn.w.Write(header(kindSnapshot, gen))
	sn.bytes = headerSize
	return sn, nil
}

// Add writes b into the snapshot. inodes is the number of inode records
// in it.
func (sn *Snapshot) Add(b *Batch, inodes int) {
	if sn.err != nil || b.n == 0 {
		return
	}
	if b.Bytes() > maxFrame {
		sn.err = fmt.Errorf("journal: %d bytes of records for one frame of a snapshot (at most %d)", b.Bytes(), maxFrame)
		return
	}
	p := b.frame(sn.seq)
	sn.seq++
	sn.count += uint64(inodes)
	sn.bytes += int64(len(p))
	_, sn.err = sn.w.Write(p)
}

// Finish ends the snapshot, makes it durable, puts it in place and removes
// what it replaces. It may run while changes are being committed.
func (sn *Snapshot) Finish() error {
	m := sn.m
	defer m.compacting.Store(false)
	var b Batch
	b.Reset()
	b.end(sn.count)
	sn.Add(&b, 0)
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
		return fmt.Errorf("journal: snapshot: %w", err)
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

// Close syncs and closes the journal.
func (m *Meta) Close() error {
	m.mu.Lock()
	err := m.syncLocked()
	if m.f != nil {
		if cerr := m.f.close(m.off); err == nil {
			err = cerr
		}
		m.f = nil
	}
	m.mu.Unlock()
	return err
}

func genHex(g uint64) string { return fmt.Sprintf("%016x", g) }

func cmpU64(a, b uint64) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

// readNames returns the names in dir, sorted.
func readNames(dir string) ([]string, error) { return mapstore.ReadDirNames(dir) }

// syncDir makes the entries of dir durable.
func syncDir(dir string) error { return mapstore.SyncDir(dir) }

// AddState adds the whole of st to the snapshot, for a store rewritten
// from a loaded state (fsck --repair).
func (sn *Snapshot) AddState(st *State) {
	var b Batch
	b.Reset()
	b.Next(st.NextIno, st.NextBlob)
	pending := 0
	for _, ino := range sortedKeys(st.Inodes) {
		in := st.Inodes[ino]
		b.Inode(in)
		for _, name := range sortedKeys(in.Xattr) {
			b.Xattr(ino, name, in.Xattr[name])
		}
		pending++
		for _, name := range sortedKeys(st.Entries[ino]) {
			b.Entry(ino, name, st.Entries[ino][name])
		}
		if b.Bytes() > 256<<10 {
			sn.Add(&b, pending)
			b.Reset()
			pending = 0
		}
	}
	sn.Add(&b, pending)
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

func allZero(p []byte) bool {
	for _, c := range p {
		if c != 0 {
			return false
		}
	}
	return true
}

// journalChunk is how much journal space is allocated ahead at a time.
const journalChunk = 1 << 20

// jfile is the journal being appended to: its file, and a shared mapping of
// it that frames are copied into. A frame copied into the mapping is in
// the page cache of the store's filesystem, like a write(2): it survives
// the end of the process. Copying costs no system call and is short
// enough not to make committers queue. Space is allocated ahead with
// fallocate, so that a full filesystem is an error here, never a fault on
// the mapping; the zeros past the last frame end the journal as surely as
// its end does, and Close cuts them off.
type jfile struct {
	f    *os.File
	size int64  // of the file
	mem  []byte // mapping of the file's first len(mem) bytes
}

// write copies p into the journal at off, making room first.
func (j *jfile) write(p []byte, off int64) error {
	end := off + int64(len(p))
	if end > int64(len(j.mem)) {
		if err := j.grow(end); err != nil {
			return err
		}
	}
	return copyGuarded(j.mem[off:end], p)
}

// grow allocates and maps the journal up to at least need bytes.
func (j *jfile) grow(need int64) error {
	size := max(int64(len(j.mem))*2, (need+journalChunk-1)/journalChunk*journalChunk)
	if size > j.size {
		fd := int(j.f.Fd())
		err := unix.Fallocate(fd, 0, j.size, size-j.size)
		if errors.Is(err, unix.EOPNOTSUPP) {
			err = unix.Ftruncate(fd, size) // no way to reserve: sparse
		}
		if err != nil {
			return fmt.Errorf("allocate journal space: %w", err)
		}
		j.size = size
	}
	mem, err := unix.Mmap(int(j.f.Fd()), 0, int(size), unix.PROT_READ|unix.PROT_WRITE, unix.MAP_SHARED)
	if err != nil {
		return fmt.Errorf("map the journal: %w", err)
	}
	if j.mem != nil {
		_ = unix.Munmap(j.mem)
	}
	j.mem = mem
	return nil
}

// close unmaps the journal, cuts off the space allocated past end, and
// closes it.
func (j *jfile) close(end int64) error {
	if j.mem != nil {
		_ = unix.Munmap(j.mem)
		j.mem = nil
	}
	err := j.f.Truncate(end)
	if cerr := j.f.Close(); err == nil {
		err = cerr
	}
	return err
}

// copyGuarded copies src to dst, a slice of the mapping, turning a fault
// (an I/O error under the mapping, or the file cut short behind the
// server's back) into an error.
func copyGuarded(dst, src []byte) (err error) {
	defer debug.SetPanicOnFault(debug.SetPanicOnFault(true))
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("fault writing the mapped journal: %v", r)
		}
	}()
	copy(dst, src)
	return nil
}
