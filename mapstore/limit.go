package mapstore

import (
	"errors"
	"fmt"
)

// ErrLimitInUse is returned by SetLimit for a limit below what the store
// holds.
var ErrLimitInUse = errors.New("mapstore: the store holds more than the limit")

// SetLimit changes the size limit of a live store to limit bytes (0: no
// limit but the filesystem's), as tmpfs's remount does with size=: a limit
// below the bytes allocated now fails with ErrLimitInUse, and one on a
// store that lends blobs now (a limit the kernel's writes would not keep)
// with ErrNoLend. On error nothing changes.
func (s *Store) SetLimit(limit int64) error {
	if limit < 0 {
		return fmt.Errorf("%w: negative size limit", errInvalid)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if limit > 0 {
		if len(s.loans) > 0 {
			return ErrNoLend
		}
		if used := s.used + s.loanedBytesLocked(); used > limit {
			return fmt.Errorf("%w: %d bytes in use", ErrLimitInUse, used)
		}
	}
	s.limit.Store(limit)
	return nil
}
