package mapstore

import (
	"fmt"
	"runtime"
	"runtime/debug"

	"go.uber.org/zap"
)

// Every access to a mapping goes through copyGuarded or clearGuarded. A page
// the kernel cannot back (the store file was truncated behind the store's
// back, or a disk filesystem under it is full) raises SIGBUS; with
// debug.SetPanicOnFault the runtime turns it into a panic on this goroutine,
// which is recovered here into ErrFault (docs/design.md, hazard 1).

// copyGuarded copies src into dst, one of which is a mapping of b at blob
// offset off.
func (b *Blob) copyGuarded(dst, src []byte, off int64) (err error) {
	old := debug.SetPanicOnFault(true)
	defer func() {
		debug.SetPanicOnFault(old)
		if r := recover(); r != nil {
			err = b.faultError(r, off)
		}
	}()
	copy(dst, src)
	return nil
}

// clearGuarded zeroes dst, a mapping of b at blob offset off.
func (b *Blob) clearGuarded(dst []byte, off int64) (err error) {
	old := debug.SetPanicOnFault(true)
	defer func() {
		debug.SetPanicOnFault(old)
		if r := recover(); r != nil {
			err = b.faultError(r, off)
		}
	}()
	clear(dst)
	return nil
}

// faultError turns a recovered memory fault into ErrFault and logs it. Any
// other panic is not ours to swallow and goes on.
func (b *Blob) faultError(r any, off int64) error {
	re, ok := r.(runtime.Error)
	if !ok {
		panic(r)
	}
	fa, ok := re.(interface{ Addr() uintptr })
	if !ok {
		panic(r)
	}
	b.s.log.Error("fault touching a mapped store page",
		zap.Uint64("blob", b.id), zap.Int64("offset", off),
		zap.Uintptr("addr", fa.Addr()), zap.String("panic", re.Error()))
	return fmt.Errorf("%w: blob %x near offset %d", ErrFault, b.id, off)
}
