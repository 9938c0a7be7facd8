package mapstore

import (
	"bytes"
	"errors"
	"io"
	"os"
	"runtime/debug"
	"sync/atomic"
	"testing"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"
	"golang.org/x/sys/unix"
)

// failpoint makes a system call fail: after `after` more successful calls,
// the next `times` calls (0 = all) return err. Its zero value never fails.
type failpoint struct {
	armed atomic.Bool
	after atomic.Int64
	times atomic.Int64
	err   atomic.Value // unix.Errno
	calls atomic.Int64 // calls that failed
}

func (f *failpoint) set(err unix.Errno, after, times int64) {
	f.err.Store(err)
	f.after.Store(after)
	f.times.Store(times)
	f.armed.Store(true)
}

func (f *failpoint) off() { f.armed.Store(false) }

// fail reports whether this call fails, and with what.
func (f *failpoint) fail() error {
	if !f.armed.Load() {
		return nil
	}
	if f.after.Add(-1) >= 0 {
		return nil
	}
	if t := f.times.Load(); t > 0 {
		if f.times.Add(-1) == 0 {
			f.armed.Store(false)
		}
	}
	f.calls.Add(1)
	return f.err.Load().(unix.Errno)
}

// faults are failpoints for each system call of Sys.
type faults struct {
	openat, ftruncate, falloc, punch, fdatasync, mmap, munmap, msync failpoint
	pread, pwrite                                                    failpoint
}

// reset disarms every failpoint.
func (f *faults) reset() {
	for _, fp := range []*failpoint{&f.openat, &f.ftruncate, &f.falloc, &f.punch, &f.fdatasync, &f.mmap, &f.munmap, &f.msync, &f.pread, &f.pwrite} {
		fp.off()
	}
}

func (f *faults) sys() *Sys {
	return &Sys{
		Openat: func(dirfd int, path string, flags int, mode uint32) (int, error) {
			if err := f.openat.fail(); err != nil {
				return -1, err
			}
			return unix.Openat(dirfd, path, flags, mode)
		},
		Ftruncate: func(fd int, n int64) error {
			if err := f.ftruncate.fail(); err != nil {
				return err
			}
			return unix.Ftruncate(fd, n)
		},
		Fallocate: func(fd int, mode uint32, off, n int64) error {
			fp := &f.falloc
			if mode&unix.FALLOC_FL_PUNCH_HOLE != 0 {
				fp = &f.punch
			}
			if err := fp.fail(); err != nil {
				return err
			}
			return unix.Fallocate(fd, mode, off, n)
		},
		Fdatasync: func(fd int) error {
			if err := f.fdatasync.fail(); err != nil {
				return err
			}
			return unix.Fdatasync(fd)
		},
		Mmap: func(fd int, off int64, n int, prot, flags int) ([]byte, error) {
			if err := f.mmap.fail(); err != nil {
				return nil, err
			}
			return unix.Mmap(fd, off, n, prot, flags)
		},
		Munmap: func(b []byte) error {
			if err := f.munmap.fail(); err != nil {
				// Really unmap, or the test leaks the mapping.
				unix.Munmap(b)
				return err
			}
			return unix.Munmap(b)
		},
		Msync: func(b []byte, flags int) error {
			if err := f.msync.fail(); err != nil {
				return err
			}
			return unix.Msync(b, flags)
		},
		Pread: func(fd int, p []byte, off int64) (int, error) {
			if err := f.pread.fail(); err != nil {
				return -1, err
			}
			return unix.Pread(fd, p, off)
		},
		Pwrite: func(fd int, p []byte, off int64) (int, error) {
			if err := f.pwrite.fail(); err != nil {
				return -1, err
			}
			return unix.Pwrite(fd, p, off)
		},
	}
}

// TestInjectedFailures makes each system call fail in turn. Every failure
// must come back as an error (never a panic), keep what was acknowledged,
// and leave the store consistent (Check in the cleanup).
func TestInjectedFailures(t *testing.T) {
	type env struct {
		s *Store
		b *Blob
		f *faults
	}
	// Each blob starts with data in pages 0-1 and 4, a hole in 2-3, and
	// window 2 and later never mapped.
	base := func() []byte {
		p := make([]byte, 5*pg)
		copy(p, pattern(2*pg, 1))
		copy(p[4*pg:], pattern(pg, 2))
		return p
	}
	tests := []struct {
		name    string
		arm     func(f *faults)
		op      func(e env) error
		wantErr error
		// after the faults are off: the contents and allocation expected
		want      func() []byte
		wantAlloc int64
	}{
		{"ftruncate on growth", func(f *faults) { f.ftruncate.set(unix.EIO, 0, 0) },
			func(e env) error { _, err := e.b.WriteAt([]byte("x"), 10*win); return err },
			unix.EIO, base, 3 * pg},
		{"fallocate ENOSPC", func(f *faults) { f.falloc.set(unix.ENOSPC, 0, 0) },
			func(e env) error { _, err := e.b.WriteAt(pattern(3*pg, 3), pg); return err },
			ErrNoSpace, base, 3 * pg},
		{"fallocate EDQUOT", func(f *faults) { f.falloc.set(unix.EDQUOT, 0, 0) },
			func(e env) error { return e.b.Allocate(0, 8*pg, false) },
			ErrNoSpace, base, 3 * pg},
		{"fallocate fails on the second gap: first is rolled back", func(f *faults) { f.falloc.set(unix.EIO, 1, 0) },
			// gaps: pages 2-3 and 5-6
			func(e env) error { _, err := e.b.WriteAt(pattern(5*pg, 3), 2*pg); return err },
			unix.EIO, base, 3 * pg},
		{"fallocate and its rollback fail: pages kept and accounted", func(f *faults) {
			f.falloc.set(unix.EIO, 1, 0)
			f.punch.set(unix.EIO, 0, 0)
		},
			func(e env) error { _, err := e.b.WriteAt(pattern(5*pg, 3), 2*pg); return err },
			unix.EIO, base, 5 * pg},
		{"punch in PunchHole", func(f *faults) { f.punch.set(unix.EIO, 0, 0) },
			func(e env) error { return e.b.PunchHole(0, 5*pg) },
			unix.EIO, base, 3 * pg},
		{"punch in Truncate", func(f *faults) { f.punch.set(unix.EIO, 0, 0) },
			func(e env) error { return e.b.Truncate(pg) },
			unix.EIO, base, 3 * pg},
		{"punch in ZeroRange", func(f *faults) { f.punch.set(unix.EIO, 0, 0) },
			func(e env) error { return e.b.ZeroRange(0, 5*pg, false) },
			unix.EIO, base, 5 * pg},
		{"re-allocation in ZeroRange", func(f *faults) { f.falloc.set(unix.ENOSPC, 1, 0) },
			// allocates pages 2-3 (call 1), punches 0-1, fails to allocate them again
			func(e env) error { return e.b.ZeroRange(0, 4*pg, false) },
			ErrNoSpace, func() []byte { p := base(); clear(p[:4*pg]); return p }, 3 * pg},
		{"mmap of a new window", func(f *faults) { f.mmap.set(unix.EIO, 0, 0) },
			func(e env) error { _, err := e.b.WriteAt([]byte("abc"), 3*win); return err },
			unix.EIO, base, 4 * pg},
		{"mmap for a read", func(f *faults) { f.mmap.set(unix.EACCES, 0, 0) },
			func(e env) error {
				// Evict the windows, then read data.
				e.s.mu.Lock()
				e.s.evictWindowsLocked(0)
				e.s.mu.Unlock()
				_, err := e.b.ReadAt(make([]byte, 10), 0)
				return err
			},
			unix.EACCES, base, 3 * pg},
		{"mmap ENOMEM once is retried", func(f *faults) { f.mmap.set(unix.ENOMEM, 0, 1) },
			func(e env) error { _, err := e.b.WriteAt([]byte("abc"), 3*win); return err },
			nil, func() []byte {
				p := append(base(), make([]byte, 3*win+3-5*pg)...)
				copy(p[3*win:], "abc")
				return p
			}, 4 * pg},
		{"open EMFILE once is retried", func(f *faults) { f.openat.set(unix.EMFILE, 0, 1) },
			func(e env) error {
				e.s.mu.Lock()
				e.s.evictWindowsLocked(0)
				e.s.evictFDsLocked(0)
				e.s.mu.Unlock()
				_, err := e.b.ReadAt(make([]byte, 10), 0)
				return err
			},
			nil, base, 3 * pg},
		{"open fails", func(f *faults) { f.openat.set(unix.EACCES, 0, 0) },
			func(e env) error {
				e.s.mu.Lock()
				e.s.evictWindowsLocked(0)
				e.s.evictFDsLocked(0)
				e.s.mu.Unlock()
				return e.b.Sync(0, 0)
			},
			unix.EACCES, base, 3 * pg},
		{"msync", func(f *faults) { f.msync.set(unix.EIO, 0, 0) },
			func(e env) error { return e.b.Sync(0, 0) },
			unix.EIO, base, 3 * pg},
		{"fdatasync", func(f *faults) { f.fdatasync.set(unix.EIO, 0, 0) },
			func(e env) error { return e.b.Sync(pg, 10) },
			unix.EIO, base, 3 * pg},
		{"munmap in Free", func(f *faults) { f.munmap.set(unix.EINVAL, 0, 0) },
			func(e env) error {
				o, err := e.s.Create()
				if err == nil {
					_, err = o.WriteAt([]byte("x"), 0)
				}
				if err == nil {
					err = o.Free()
				}
				return err
			},
			unix.EINVAL, base, 3 * pg},
		{"munmap in eviction is logged and survived", func(f *faults) { f.munmap.set(unix.EINVAL, 0, 0) },
			func(e env) error {
				for i := int64(0); i < 6; i++ {
					if _, err := e.b.WriteAt([]byte("y"), 10*win+i*win); err != nil {
						return err
					}
				}
				return nil
			},
			nil, func() []byte {
				p := append(base(), make([]byte, 15*win+1-5*pg)...)
				for i := 0; i < 6; i++ {
					p[10*win+i*win] = 'y'
				}
				return p
			}, 9 * pg},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := &faults{}
			o := smallOpts()
			o.Sys = f.sys()
			s := newStore(t, o)
			if !s.tmpfs && (tt.name == "mmap of a new window" || tt.name == "munmap in Free") {
				t.Skip("the store is not on a tmpfs: writes go through pwrite and map no window")
			}
			b := mustCreate(t, s)
			mustWrite(t, b, base(), 0)
			if err := b.PunchHole(2*pg, 2*pg); err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(contents(t, b), base()) {
				t.Fatal("setup")
			}
			tt.arm(f)
			err := tt.op(env{s, b, f})
			f.reset()
			if (tt.wantErr == nil) != (err == nil) || (err != nil && !errors.Is(err, tt.wantErr)) {
				t.Fatalf("error %v, want %v", err, tt.wantErr)
			}
			if err := s.Check(); err != nil {
				t.Fatalf("Check after the failure: %v", err)
			}
			if got := contents(t, b); !bytes.Equal(got, tt.want()) {
				t.Errorf("contents after the failure differ (size %d, want %d)", len(got), len(tt.want()))
			}
			if b.Allocated() != tt.wantAlloc {
				t.Errorf("allocated %d, want %d", b.Allocated(), tt.wantAlloc)
			}
			// The store works again.
			p := pattern(3*win, 9)
			mustWrite(t, b, p, pg)
			if !bytes.Equal(readRange(t, b, pg, len(p)), p) {
				t.Error("write after the failure")
			}
		})
	}
}

// TestFallocateENOSPCKeepsAccounting: the filesystem under the store is
// full while the size limit is not: nothing is written, nothing accounted.
func TestFallocateENOSPCKeepsAccounting(t *testing.T) {
	f := &faults{}
	o := smallOpts()
	o.Sys = f.sys()
	o.SizeLimit = 100 * pg
	s := newStore(t, o)
	b := mustCreate(t, s)
	mustWrite(t, b, pattern(pg, 1), 0)
	f.falloc.set(unix.ENOSPC, 0, 0)
	n, err := b.WriteAt(pattern(4*pg, 2), 10)
	if n != 0 || !errors.Is(err, ErrNoSpace) || !errors.Is(err, unix.ENOSPC) {
		t.Fatalf("WriteAt = %d, %v", n, err)
	}
	if st := s.Stats(); st.Used != pg || b.Size() != pg {
		t.Errorf("stats %+v size %d", st, b.Size())
	}
	if !bytes.Equal(contents(t, b), pattern(pg, 1)) {
		t.Error("acknowledged data changed")
	}
	f.falloc.off()
}

// TestFault truncates a store file behind the store's back: touching the
// lost pages through the mapping raises SIGBUS, which must come back as
// ErrFault with a log line, not kill the process.
func TestFault(t *testing.T) {
	core, logs := observer.New(zapcore.ErrorLevel)
	o := smallOpts()
	o.Logger = zap.New(core)
	s := newStore(t, o)
	if !s.tmpfs {
		t.Skip("the store is not on a tmpfs: writes go through pwrite, which extends a truncated store file instead of faulting")
	}
	b := mustCreate(t, s)
	other := mustCreate(t, s)
	mustWrite(t, b, pattern(3*pg, 1), 0)
	mustWrite(t, other, pattern(10, 2), 0)
	if err := os.Truncate(storePath(s, b), 0); err != nil {
		t.Fatal(err)
	}
	p := make([]byte, 100)
	if n, err := b.ReadAt(p, pg); n != 0 || !errors.Is(err, ErrFault) || !errors.Is(err, unix.EIO) {
		t.Errorf("ReadAt of a lost page = %d, %v; want ErrFault", n, err)
	}
	if n, err := b.WriteAt(p, 2*pg); n != 0 || !errors.Is(err, ErrFault) {
		t.Errorf("WriteAt to a lost page = %d, %v; want ErrFault", n, err)
	}
	if err := b.Truncate(pg + 1); !errors.Is(err, ErrFault) {
		t.Errorf("Truncate zeroing a lost page = %v; want ErrFault", err)
	}
	if logs.FilterMessage("fault touching a mapped store page").Len() < 3 {
		t.Errorf("fault log lines: %v", logs.All())
	}
	entry := logs.All()[0]
	if entry.ContextMap()["blob"] != b.ID() {
		t.Errorf("log line without the blob id: %v", entry.ContextMap())
	}
	// The rest of the store is fine; the damaged blob can be freed.
	if got := readRange(t, other, 0, 10); !bytes.Equal(got, pattern(10, 2)) {
		t.Error("other blob damaged")
	}
	if err := s.Check(); err == nil {
		t.Error("Check does not see the damaged store file")
	}
	if err := b.Free(); err != nil {
		t.Fatal(err)
	}
}

// TestFaultOnlyRecoversFaults: other panics in the guarded code are not
// swallowed.
func TestFaultOnlyRecoversFaults(t *testing.T) {
	s := newStore(t, Options{})
	b := mustCreate(t, s)
	defer func() {
		if r := recover(); r == nil {
			t.Error("a non-fault panic was swallowed")
		}
	}()
	b.faultError(errors.New("not a fault"), 0)
}

// TestPanicOnFaultRestored: the guarded copy leaves the goroutine's
// setting as it found it.
func TestPanicOnFaultRestored(t *testing.T) {
	s := newStore(t, Options{})
	b := mustCreate(t, s)
	mustWrite(t, b, []byte("abc"), 0)
	for _, want := range []bool{false, true} {
		old := debug.SetPanicOnFault(want)
		p := make([]byte, 10)
		if n, err := b.ReadAt(p, 1); n != 2 || err != io.EOF {
			t.Errorf("ReadAt = %d, %v", n, err)
		}
		if got := debug.SetPanicOnFault(old); got != want {
			t.Errorf("SetPanicOnFault was %v after ReadAt, want %v", got, want)
		}
	}
}
