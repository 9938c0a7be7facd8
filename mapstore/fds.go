package mapstore

import (
	"fmt"

	"go.uber.org/zap"
)

// fdSlot is the descriptor of one blob's store file. Descriptors are opened
// on demand and kept in the store's LRU; one pinned by a running system
// call is never closed under it. When more than MaxFDs are open, the least
// recently used unpinned ones are closed. Windows stay mapped after their
// descriptor closes. A pin is taken and dropped under Store.mu, by a holder
// of the blob's mu; the system call it is for runs without Store.mu.
type fdSlot struct {
	// b is set by newBlob, then read-only.
	b *Blob
	// fd is the descriptor, -1 when closed. Protected by Store.mu; whoever
	// pinned it uses the value acquireFD returned.
	fd int32
	// refs counts the pins by running system calls. Protected by
	// Store.mu.
	refs int32
	// prev and next link the slot into the store's LRU. Protected by
	// Store.mu.
	prev, next *fdSlot
}

// acquireFD returns the descriptor of b's store file, pinned until
// releaseFD. With create, a store file that does not exist yet is created.
//
// Preconditions: b.mu is held, for writing if create. Without create, b's
// store file exists (b.hasFile).
//
// +checklocksread:b.mu
func (s *Store) acquireFD(b *Blob, create bool) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	fd, err := s.openFDLocked(b, create)
	if err != nil {
		return -1, err
	}
	b.fd.refs++
	return fd, nil
}

// releaseFD unpins a descriptor pinned by acquireFD.
func (s *Store) releaseFD(b *Blob) {
	s.mu.Lock()
	b.fd.refs--
	if s.nfds > s.maxFDs {
		s.evictFDsLocked(s.maxFDs)
	}
	s.mu.Unlock()
}

// openFDLocked returns b's descriptor, opening the store file (or creating
// it, with create) if needed, and marks it most recently used.
//
// Preconditions: s.mu is held; b.mu is held, for writing if create.
//
// +checklocks:s.mu
// +checklocksread:b.mu
func (s *Store) openFDLocked(b *Blob, create bool) (int, error) {
	if s.closed {
		return -1, errClosed
	}
	f := &b.fd
	if f.fd >= 0 {
		f.unlink()
		s.fds.pushFront(f)
		return int(f.fd), nil
	}
	flags := openFlags
	if !b.hasFile {
		if !create {
			return -1, fmt.Errorf("mapstore: blob %x has no store file", b.id)
		}
		// b.mu is held for writing: hasFile may change.
		flags = createFlags
	}
	if s.nfds >= s.maxFDs {
		s.evictFDsLocked(s.maxFDs - 1)
	}
	fd, err := s.sys.Openat(s.dirfd, b.name(), flags, 0o600)
	if isEMFILE(err) {
		// Someone else holds the descriptors: give back all of ours that
		// are idle and try once more.
		s.evictFDsLocked(0)
		fd, err = s.sys.Openat(s.dirfd, b.name(), flags, 0o600)
	}
	if err != nil {
		if flags == createFlags || isEMFILE(err) {
			return -1, fmt.Errorf("mapstore: open store file %s: %w", b.name(), err)
		}
		// The store file existed and is gone or unreadable: the store
		// was changed behind the server's back. The data is lost; the
		// program gets EIO, not the errno of a file it never named.
		s.log.Error("store file missing or unreadable: its data is lost",
			zap.String("file", b.name()), zap.Error(err))
		return -1, fmt.Errorf("%w: open store file %s: %w", ErrFault, b.name(), err)
	}
	if flags == createFlags {
		b.hasFile = true // +checklocksignore: with create, b.mu is held for writing.
		s.dirDirty.Store(true)
	}
	f.fd = int32(fd)
	s.nfds++
	s.fds.pushFront(f)
	return fd, nil
}

// evictFDsLocked closes least recently used, unpinned descriptors until at
// most max are open or all the rest are pinned.
//
// Preconditions: s.mu is held.
//
// +checklocks:s.mu
func (s *Store) evictFDsLocked(max int) {
	for f := s.fds.prev; f != &s.fds && s.nfds > max; {
		prev := f.prev
		if f.refs == 0 {
			if err := s.closeFDLocked(f); err != nil {
				// The descriptor is gone either way (close(2) never
				// leaves it open on Linux); nobody is left to tell.
				s.log.Error("closing a store file", zap.Error(err))
			}
		}
		f = prev
	}
}

// closeFDLocked closes f if it is open.
//
// Preconditions: s.mu is held; f is not pinned.
//
// +checklocks:s.mu
func (s *Store) closeFDLocked(f *fdSlot) error {
	if f.fd < 0 {
		return nil
	}
	f.unlink()
	fd := int(f.fd)
	f.fd = -1
	s.nfds--
	if err := closeFD(fd); err != nil {
		return fmt.Errorf("mapstore: close store file %s: %w", f.b.name(), err)
	}
	return nil
}

// The descriptor list is circular with the store's sentinel: most recently
// used first.

func (l *fdSlot) pushFront(f *fdSlot) {
	f.prev, f.next = l, l.next
	l.next.prev = f
	l.next = f
}

func (f *fdSlot) unlink() {
	if f.next != nil {
		f.prev.next, f.next.prev = f.next, f.prev
	}
	f.prev, f.next = nil, nil
}
