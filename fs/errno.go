package fs

import (
	"context"
	"errors"
	"syscall"

	"go.uber.org/zap"
	"golang.org/x/sys/unix"

	"mmapfs/mapstore"
)

// toErrno turns an error into the errno a program sees. It unwraps, so an
// errno wrapped with %w keeps its value; an error with no errno is EIO and
// is logged, since the program only learns "I/O error".
func toErrno(log *zap.Logger, op string, err error) syscall.Errno {
	if err == nil {
		return 0
	}
	var en interface{ Errno() unix.Errno }
	if errors.As(err, &en) {
		return syscall.Errno(en.Errno())
	}
	var errno syscall.Errno
	if errors.As(err, &errno) {
		return errno
	}
	switch {
	case errors.Is(err, context.Canceled):
		return syscall.EINTR
	case errors.Is(err, mapstore.ErrNoSpace):
		return syscall.ENOSPC
	}
	log.Error("operation failed", zap.String("op", op), zap.Error(err))
	return syscall.EIO
}
