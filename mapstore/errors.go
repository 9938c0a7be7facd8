package mapstore

import (
	"errors"

	"golang.org/x/sys/unix"
)

// Errors returned by the store. They are matched with errors.Is; each one
// also matches the errno a filesystem should return for it.
var (
	// ErrNoSpace: the size limit or the filesystem under the store is full.
	ErrNoSpace = errnoError{"mapstore: no space left in store", unix.ENOSPC}
	// ErrFault: a mapped page could not be accessed (SIGBUS/SIGSEGV caught).
	ErrFault = errnoError{"mapstore: fault touching a mapped page", unix.EIO}
	// ErrTooBig: an offset or size beyond the maximum file size.
	ErrTooBig = errnoError{"mapstore: offset or size beyond the maximum file size", unix.EFBIG}
	// ErrInvalid: a negative offset or length, or an otherwise bad argument.
	ErrInvalid = errnoError{"mapstore: invalid argument", unix.EINVAL}
	// ErrNoData: SeekData or SeekHole at or past the end of the data.
	ErrNoData = errnoError{"mapstore: no data at or after offset", unix.ENXIO}
	// ErrClosed: the blob was freed or the store closed.
	ErrClosed = errnoError{"mapstore: store or blob closed", unix.EIO}
)

// errnoError is a sentinel that also matches its errno with errors.Is.
type errnoError struct {
	msg   string
	errno unix.Errno
}

func (e errnoError) Error() string { return e.msg }

// Is reports whether target is this sentinel or its errno.
func (e errnoError) Is(target error) bool {
	var en unix.Errno
	if errors.As(target, &en) {
		return en == e.errno
	}
	return false
}

// Errno is the errno a filesystem returns for e.
func (e errnoError) Errno() unix.Errno { return e.errno }

// The sentinels as error values, boxed once: returning one of these does
// not allocate, which keeps the hot paths free of garbage. They compare
// equal to the exported sentinels.
var (
	errNoSpace error = ErrNoSpace
	errTooBig  error = ErrTooBig
	errInvalid error = ErrInvalid
	errNoData  error = ErrNoData
	errClosed  error = ErrClosed
)
