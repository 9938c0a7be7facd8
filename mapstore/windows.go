package mapstore

import (
	"fmt"
	"sync/atomic"

	"go.uber.org/zap"
)

// A window maps WindowSize bytes of one store file, aligned to WindowSize,
// MAP_SHARED and read-write. It is mapped when first needed, pinned while a
// copy into or out of it runs (forWindowsLocked), a View of it is out, or
// Sync msyncs it, and unmapped by the store's LRU when the store holds more
// than MaxWindows and the window is not pinned. Its mem is never moved or
// resized, so a slice of it stays valid while it is pinned.
//
// A pin is taken and dropped under Store.mu, by a holder of the blob's mu;
// the blob's mu is held, for reading at least, as long as a window of it is
// pinned. So a window is unmapped only under Store.mu with no pin, and
// windows are unmapped under the blob's mu held for writing (Lend, Free)
// only once no pin can be left.
type window struct {
	// b and idx are set when the window is mapped, then read-only: it
	// maps [idx*WindowSize, idx*WindowSize+len(mem)) of b's store file.
	b   *Blob
	idx int64
	// mem is the mapping. Protected by Store.mu, except that whoever
	// pinned the window may read it, and read and write its bytes,
	// without Store.mu.
	mem []byte
	// refs counts the pins. Protected by Store.mu.
	refs int
	// prev and next link the window into the store's LRU. Protected by
	// Store.mu.
	prev, next *window
	// filled marks the chunks of mem (1/32 of the window each, at least
	// a page) that populate has mapped into the page tables: bit i for
	// reading, bit 32+i for writing. Atomic: read and set without
	// Store.mu by whoever pinned the window (populate), cleared under
	// Store.mu (unfillLocked).
	filled atomic.Uint64
}

// windowLen returns the length of window idx: WindowSize, except for a last
// window cut short at mapLimit.
func (s *Store) windowLen(idx int64) int64 {
	start := idx << s.winShift
	return min(s.winSize, s.mapLimit-start)
}

// pinWindow returns window idx of b, mapped and pinned; unpinWindow undoes
// it.
//
// Preconditions: b.mu is held, for reading or writing. b's store file
// exists and is at least as long as the window (b.fileSize ≥ window end).
//
// +checklocksread:b.mu
func (s *Store) pinWindow(b *Blob, idx int64) (*window, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	w := b.wins[idx]
	if w == nil {
		var err error
		if w, err = s.mapWindowLocked(b, idx); err != nil {
			return nil, err
		}
	} else {
		w.unlink()
	}
	w.refs++
	s.wins.pushFront(w)
	return w, nil
}

// unfillLocked forgets that the pages of [off, end) of b's windows are
// populated: a punch removed them from the page tables.
//
// Preconditions: b.mu is held for writing.
//
// +checklocks:b.mu
func (s *Store) unfillLocked(b *Blob, off, end int64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	first, last := off>>s.winShift, (end-1)>>s.winShift
	if last-first >= int64(len(b.wins)) {
		for idx, w := range b.wins {
			if idx >= first && idx <= last {
				w.filled.Store(0)
			}
		}
		return
	}
	for idx := first; idx <= last; idx++ {
		if w := b.wins[idx]; w != nil {
			w.filled.Store(0)
		}
	}
}

// unpinWindow releases a window pinned by pinWindow.
func (s *Store) unpinWindow(w *window) {
	s.mu.Lock()
	w.refs--
	if s.nwins > s.maxWins {
		s.evictWindowsLocked(s.maxWins)
	}
	s.mu.Unlock()
}

// mapWindowLocked maps window idx of b and adds it to the cache, unpinned
// and outside the LRU list.
//
// Preconditions: s.mu and b.mu are held; window idx of b is not mapped;
// b.fileSize covers the window.
//
// +checklocks:s.mu
// +checklocksread:b.mu
func (s *Store) mapWindowLocked(b *Blob, idx int64) (*window, error) {
	if s.closed {
		return nil, errClosed
	}
	off, n := idx<<s.winShift, s.windowLen(idx)
	if !b.hasFile || b.fileSize < off+n {
		// A bug, not a condition: mapping past the end of the store file
		// would turn the next access into SIGBUS.
		return nil, fmt.Errorf("mapstore: blob %x: window at %d past store file end %d", b.id, off, b.fileSize)
	}
	fd, err := s.openFDLocked(b, false)
	if err != nil {
		return nil, err
	}
	// Make room first, so that the bound holds even while mapping.
	if s.nwins >= s.maxWins {
		s.evictWindowsLocked(s.maxWins - 1)
	}
	mem, err := s.sys.Mmap(fd, off, int(n), mmapProt, mmapFlags)
	if isENOMEM(err) {
		// vm.max_map_count or the address space is exhausted: give back
		// every window not in use and try once more.
		s.evictWindowsLocked(0)
		mem, err = s.sys.Mmap(fd, off, int(n), mmapProt, mmapFlags)
	}
	if err != nil {
		return nil, fmt.Errorf("mapstore: mmap blob %x [%d, %d): %w", b.id, off, off+n, err)
	}
	w := &window{b: b, idx: idx, mem: mem}
	if b.wins == nil {
		b.wins = make(map[int64]*window)
	}
	b.wins[idx] = w
	s.nwins++
	s.mapped += int64(len(mem))
	return w, nil
}

// evictWindowsLocked unmaps least recently used, unpinned windows until at
// most max remain or all the rest are pinned.
//
// Preconditions: s.mu is held.
//
// +checklocks:s.mu
func (s *Store) evictWindowsLocked(max int) {
	for w := s.wins.prev; w != &s.wins && s.nwins > max; {
		prev := w.prev
		if w.refs == 0 {
			if err := s.unmapWindowLocked(w); err != nil {
				// Nothing holds a slice of the window any more, so
				// the mapping is only leaked address space, and the
				// operation that needed the room goes on.
				s.log.Error("evicting a store window", zap.Error(err))
			}
		}
		w = prev
	}
}

// unmapWindowLocked unmaps w and forgets it, even if munmap fails.
//
// Preconditions: s.mu is held; w is not pinned.
//
// +checklocks:s.mu
func (s *Store) unmapWindowLocked(w *window) error {
	w.unlink()
	delete(w.b.wins, w.idx)
	if len(w.b.wins) == 0 {
		w.b.wins = nil // a million idle blobs keep no tables
	}
	s.nwins--
	mem := w.mem
	s.mapped -= int64(len(mem))
	w.mem = nil
	if err := s.sys.Munmap(mem); err != nil {
		return fmt.Errorf("mapstore: munmap blob %x window %d: %w", w.b.id, w.idx, err)
	}
	return nil
}

// unmapBlobWindowsLocked unmaps every window of b from index from on.
//
// Preconditions: s.mu is held; b.mu is held for writing, so no window of b
// is pinned.
//
// +checklocks:s.mu
// +checklocks:b.mu
func (s *Store) unmapBlobWindowsLocked(b *Blob, from int64) error {
	var first error
	for idx, w := range b.wins {
		if idx >= from {
			if err := s.unmapWindowLocked(w); err != nil && first == nil {
				first = err
			}
		}
	}
	return first
}

// The window list is circular with the store's sentinel: most recently used
// first. A window not on the list points to itself or is zero.

func (l *window) pushFront(w *window) {
	w.prev, w.next = l, l.next
	l.next.prev = w
	l.next = w
}

func (w *window) unlink() {
	if w.next != nil {
		w.prev.next, w.next.prev = w.next, w.prev
	}
	w.prev, w.next = nil, nil
}
