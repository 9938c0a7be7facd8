package journal

import (
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

// Reserve reserves ReserveBytes of journal room for b, which must then be
// committed (Commit uses the room) or given back (Unreserve).
func (m *Meta) Reserve(b *Batch) error {
	if b.reserved {
		return nil
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if err := m.appendableLocked(); err != nil {
		return err
	}
	if err := m.f.ensure(m.off + m.reserved + ReserveBytes); err != nil {
		return wrapNoSpace(fmt.Errorf("journal: reserving room: %w", err))
	}
	m.reserved += ReserveBytes
	b.reserved = true
	return nil
}

// Unreserve gives back the room reserved for b, if any: for a batch that
// is not to be committed (Commit gives it back itself).
func (m *Meta) Unreserve(b *Batch) {
	if !b.reserved {
		return
	}
	m.mu.Lock()
	m.reserved -= ReserveBytes
	m.mu.Unlock()
	b.reserved = false
}
