package journal

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime/debug"

	"golang.org/x/sys/unix"
)

// Appending: a change is one frame, copied into a mapping of the journal
// file; Sync makes the frames durable.

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

// AllocateAhead allocates journal room for the frames to come now rather
// than at the first commit, so that a store whose filesystem fills up
// later still takes some changes (writes into pages reserved with
// fallocate, say). On a full filesystem it fails with ErrNoSpace, and the
// first commit will say so again.
func (m *Meta) AllocateAhead() error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if err := m.appendableLocked(); err != nil {
		return err
	}
	if err := m.f.ensure(m.off + journalChunk/2); err != nil {
		return wrapNoSpace(fmt.Errorf("journal: allocating room ahead: %w", err))
	}
	return nil
}

// maxPooledBatch is the largest buffer a batch may keep to go back into
// the pool: a rare huge change does not pin its memory for good.
const maxPooledBatch = 64 << 10

// Batch returns an empty batch for the records of one change. Commit takes
// it back, whether it succeeds or not: a batch from Batch must not be
// touched once it is given to Commit.
func (m *Meta) Batch() *Batch {
	b, _ := m.batches.Get().(*Batch)
	if b == nil {
		b = &Batch{pool: &m.batches}
	}
	b.Reset()
	return b
}

// recycle puts b back in the pool if it came from Batch.
func (m *Meta) recycle(b *Batch) {
	if b.pool == &m.batches && cap(b.buf) <= maxPooledBatch {
		m.batches.Put(b)
	}
}

// Commit appends b as one frame. When Commit returns, the change survives
// the end of this process; Sync makes it survive a power loss. A batch
// from Batch goes back to the pool. A full filesystem under the store is
// an error that ErrNoSpace matches.
func (m *Meta) Commit(b *Batch) error {
	defer m.recycle(b)
	m.mu.Lock()
	defer m.mu.Unlock()
	if b.reserved {
		// The room kept for b is its own now, whatever comes of the
		// commit: what is left to keep is the others'.
		m.reserved -= ReserveBytes
		b.reserved = false
	}
	if b.n == 0 {
		return nil
	}
	if err := m.appendableLocked(); err != nil {
		return err
	}
	if b.Bytes() > maxFrame {
		return fmt.Errorf("journal: a change of %d bytes is larger than a frame may be (%d)", b.Bytes(), maxFrame)
	}
	p := b.frame(m.seq)
	if err := m.f.write(p, m.off, m.reserved); err != nil {
		// Nothing counts as written: the next frame goes at the same
		// place, over whatever part of this one got there.
		return wrapNoSpace(fmt.Errorf("journal: %w", err))
	}
	m.off += int64(len(p))
	m.seq++
	m.unsynced = true
	if m.off > m.compact && m.off > m.snapSize {
		m.over.Store(true)
	}
	return nil
}

// errClosed is the error of a change to a closed journal.
var errClosed = errors.New("journal: closed")

// appendableLocked returns why nothing can be appended now: a failure
// that stopped all commits, or the journal closed.
//
// Preconditions: m.mu is held.
func (m *Meta) appendableLocked() error {
	if m.err != nil {
		return m.err
	}
	if m.f == nil {
		return errClosed
	}
	return nil
}

// Sync makes every committed change durable.
//
// The file is synced without m.mu, so that commits go on meanwhile: a
// commit made during the sync may or may not be covered, and is left for
// the next Sync.
func (m *Meta) Sync() error {
	m.syncMu.Lock()
	defer m.syncMu.Unlock()
	m.mu.Lock()
	if m.err != nil || m.f == nil {
		err := m.err
		m.mu.Unlock()
		return err
	}
	f, data, dir := m.f, m.unsynced, m.dirSync
	m.unsynced, m.dirSync = false, false
	m.mu.Unlock()
	var err error
	if data {
		if e := unix.Fdatasync(int(f.f.Fd())); e != nil {
			err = fmt.Errorf("journal: fdatasync: %w", e)
		}
	}
	if err == nil && dir {
		err = syncDir(m.dir)
	}
	if err != nil {
		m.mu.Lock()
		m.unsynced = m.unsynced || data
		m.dirSync = m.dirSync || dir
		m.mu.Unlock()
	}
	return wrapNoSpace(err)
}

// ErrNoSpace matches, with errors.Is, the error of a write of the journal
// or of a snapshot that failed because the filesystem under the store is
// full (ENOSPC) or the quota is (EDQUOT); the error keeps its own text and
// errno. Like mapstore's sentinels, it also matches those errnos itself.
var ErrNoSpace error = noSpace{}

// noSpace is the type of ErrNoSpace.
type noSpace struct{}

func (noSpace) Error() string { return "journal: no space left for the metadata" }

// Is reports whether target is ENOSPC or EDQUOT.
func (noSpace) Is(target error) bool { return isNoSpace(target) }

// isNoSpace reports whether err is, or wraps, ENOSPC or EDQUOT.
func isNoSpace(err error) bool {
	var en unix.Errno
	return errors.As(err, &en) && (en == unix.ENOSPC || en == unix.EDQUOT)
}

// noSpaceError is a failed write that ErrNoSpace matches.
type noSpaceError struct{ err error }

func (e noSpaceError) Error() string { return e.err.Error() }
func (e noSpaceError) Unwrap() error { return e.err }

// Is reports whether target is ErrNoSpace.
func (e noSpaceError) Is(target error) bool { return target == ErrNoSpace }

// wrapNoSpace returns err so that ErrNoSpace matches it if it says the
// filesystem is full; other errors, and nil, as they are.
func wrapNoSpace(err error) error {
	if err != nil && isNoSpace(err) {
		return noSpaceError{err}
	}
	return err
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

// write copies p into the journal at off, making room first for it and
// for keep bytes more (the room reserved).
func (j *jfile) write(p []byte, off, keep int64) error {
	end := off + int64(len(p))
	if err := j.ensure(end + keep); err != nil {
		return err
	}
	return copyGuarded(j.mem[off:end], p)
}

// ensure makes the journal's first need bytes allocated and mapped.
func (j *jfile) ensure(need int64) error {
	if need <= int64(len(j.mem)) {
		return nil
	}
	return j.grow(need)
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
