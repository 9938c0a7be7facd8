package journal

import (
	"errors"
	"fmt"
)

// Reservations. A request that changes a store file in a way it cannot
// take back (a file cut short, a hole punched) must not learn only after
// the change that its record cannot be written: the request would fail
// with its change made. So it reserves room in the journal first (Reserve),
// makes the change, and commits a batch that uses the room: that commit
// cannot fail for want of space. A full filesystem under the store then
// fails the request before anything is changed.
//
// The room reserved is kept free: an ordinary commit that would write
// into it grows the journal first, or fails with ErrNoSpace. Compaction
// waits until no room is reserved.

// ReserveBytes is the room one reservation keeps: the largest frame a
// single request commits after a change it cannot take back (the records
// of one inode, with a symlink's target at most, and its xattr changes).
const ReserveBytes = 16 << 10

// ErrNoSpace is returned, wrapped, when the filesystem under the journal
// has no room for a commit or a reservation. It matches the ENOSPC or
// EDQUOT of the system call with errors.Is.
var ErrNoSpace = errors.New("journal: no space left for metadata")

// Reserve reserves ReserveBytes of journal room for b, which must then be
// committed (Commit uses the room) or given back (Unreserve).
func (m *Meta) Reserve(b *Batch) error {
	if b.reserved {
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
	if err := m.f.ensure(m.off + m.reserved + ReserveBytes); err != nil {
		return fmt.Errorf("journal: reserving room: %w", err)
	}
	m.reserved += ReserveBytes
	b.reserved = true
	return nil
}

// Unreserve gives back the room reserved for b, if any.
func (m *Meta) Unreserve(b *Batch) {
	if !b.reserved {
		return
	}
	m.mu.Lock()
	m.reserved -= ReserveBytes
	m.mu.Unlock()
	b.reserved = false
}
