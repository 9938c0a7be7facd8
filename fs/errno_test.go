package fs

import (
	"errors"
	"fmt"
	"syscall"
	"testing"

	"go.uber.org/zap"

	"mmapfs/mapstore"
)

func TestToErrno(t *testing.T) {
	for _, tc := range []struct {
		err  error
		want syscall.Errno
	}{
		{nil, 0},
		{syscall.ENOENT, syscall.ENOENT},
		{fmt.Errorf("open blob: %w", syscall.EACCES), syscall.EACCES},
		{fmt.Errorf("write: %w", mapstore.ErrNoSpace), syscall.ENOSPC},
		{fmt.Errorf("read: %w", mapstore.ErrFault), syscall.EIO},
		{mapstore.ErrTooBig, syscall.EFBIG},
		{errors.New("something else"), syscall.EIO},
	} {
		if got := toErrno(zap.NewNop(), "test", tc.err); got != tc.want {
			t.Errorf("toErrno(%v) = %v, want %v", tc.err, got, tc.want)
		}
	}
}
