// Package mapstore keeps file data in memory-mapped store files.
//
// A Store is a directory (mode 0700) of store files (mode 0600), one per
// Blob, named by the blob's id in hex (16 digits) and never opened through
// a symlink. A Blob is the data of one file: its bytes live at the same
// offsets in its store file, which is mapped MAP_SHARED in fixed-size,
// aligned windows. Windows are mapped on demand, pinned (reference-counted)
// while a copy or an msync is in progress or a View of them is out, and
// unmapped by a bounded LRU; a window is never moved or resized while
// mapped, so no slice of a mapping can dangle (docs/design.md, hazard 3).
//
// Space is allocated in pages (4 KiB) with fallocate before any write
// reaches them, and accounted against Options.SizeLimit, so a full store is
// ErrNoSpace and never SIGBUS. A page is a hole, allocated, or data, as on
// tmpfs: holes cost nothing; allocated pages (Allocate, ZeroRange) hold
// space but no data and are holes to SeekData, as fallocated pages are on
// tmpfs; data pages were written. Reads copy only data pages out of the
// mapping and fill the rest with zeros: a read fault on a hole would
// allocate a page. Store files only grow (sparse, rounded up to a window, so
// a mapped window always lies inside its file); truncating a blob punches
// its pages out instead. Only a lent blob's store file is as long as the
// blob (lend.go), with none of its windows mapped. On a store that is not a
// tmpfs, writes go through pwrite rather than the mapping (mappedio.go).
// Every touch of a mapping runs with debug.SetPanicOnFault so that a fault
// (a store file truncated behind the server's back, say) becomes ErrFault
// instead of killing the process.
// ReadView hands out the mapped bytes themselves, for a reply the kernel
// copies with writev: a fault there fails that system call (EFAULT), and
// never reaches Go code.
//
// A blob may be as large as math.MaxInt64 bytes, as a tmpfs file may. Its
// last page, [math.MaxInt64 &^ 4095, math.MaxInt64), cannot be mapped (the
// mapping would end at 2^63), so its bytes go through pread and pwrite on
// the store file; it is accounted like any other page. fallocate cannot
// free it either, so it is freed by cutting the store file short at its
// start and growing it back, which no window notices. Page arithmetic near
// 2^63 goes through pageUp and pageOff, which do not overflow.
//
// Store files and their descriptors are bounded too: descriptors are kept in
// an LRU of at most Options.MaxFDs and reopened on demand; a blob that was
// never written has no store file at all. The per-blob page sets live in
// memory; OpenBlob rebuilds them from a store file left by an earlier Open.
//
// # Lifetimes
//
// Slices passed to ReadAt and WriteAt are only used during the call. No
// function returns a slice of a mapping, except a View's Slices, which stay
// valid until its Release.
//
// # Errors
//
// Errors match the sentinels of errors.go with errors.Is, and wrapped
// system call errors match their unix.Errno. A method that returns n > 0
// with an error did the first n bytes of its work.
//
// # Locking
//
// The package has two locks, taken in this order (a lock is taken only
// while holding nothing below it):
//
//	Blob.mu     RWMutex: one blob's size, page sets, store file state, loan
//	  Store.mu  Mutex, a leaf: blob table and ids, accounting (used), lent
//	            blobs (loans), window cache (LRU list, pins, the blobs'
//	            window tables), descriptor cache (LRU list, pins, the blobs'
//	            descriptor slots)
//
// Several Blob.mu are taken only in id order: CopyFrom takes its two (src
// for reading), Check every live blob's; Close takes them one at a time.
// Store.mu is also taken without a Blob.mu (Create, AddBlob, NextID,
// SetNextID, Files, Stats, and Check and Close to list the blobs), and
// nothing is locked under it.
//
// What else orders access is not a lock to order, but holds with them:
//
//   - A pin of a window (window.refs) or of a descriptor (fdSlot.refs) is
//     taken and dropped under Store.mu by a holder of the blob's mu. It
//     keeps the mapping mapped, or the descriptor open, for use without
//     Store.mu until the pin is dropped, always before the blob's mu.
//   - A View holds its blob's mu for reading from ReadView to Release, and
//     its windows pinned.
//   - Atomics: window.filled (populate's marks), Store.dirDirty,
//     Store.lastFullWarn, and rereads (a count for tests).
//   - debug.SetPanicOnFault is per goroutine, set and restored around each
//     copy through a mapping (fault.go); viewPool is a sync.Pool.
//
// A Blob's methods are safe for concurrent use: ReadAt, ReadView,
// SeekData, SeekHole, Size, Allocated, Sync, Lent and FileStat share
// Blob.mu, as CopyFrom does its source's; the others take it exclusively.
//
// Under Store.mu run, besides the tables and lists it protects:
//
//   - openat of store files, O_CREAT included (openFDLocked: from acquireFD,
//     and when a window is mapped), and close of descriptors: those the
//     LRU evicts (on an open, on releaseFD, when Lend's dup runs out of
//     descriptors) and those of a blob freed, closed or not adopted;
//   - mmap of a window (pinWindow), and munmap: of windows the LRU evicts
//     (before an mmap, or on unpinWindow), and of every window of a blob
//     lent, freed, closed or not adopted (unmapBlobWindowsLocked);
//   - unlinkat of a freed blob's store file (Free);
//   - fsync of the store directory (syncDir, from Sync);
//   - Files' listing of the directory (openat, getdents, close);
//   - fstatat of every lent blob's store file (Stats);
//   - dup of the directory descriptor (Check) and its close (Close);
//   - log lines of failed evictions, and Check's walk of the caches.
//
// So a store file's open, mmap, munmap, close and unlink, and the
// directory's fsync, stall every blob while they run. All other system
// calls on a store file run under the blob's mu alone, with the descriptor
// or window pinned: pread, pwrite, fallocate, ftruncate, fdatasync, fstat,
// fstatat (adoptLocked), lseek and Lend's dup of the descriptor; msync,
// madvise (populate) and the copies through the mappings.
//
// Fields say "Protected by X." and carry +checklocks annotations where the
// analyzer (gVisor's checklocks) can check them: the fields of Blob under
// Blob.mu and of Store under Store.mu. Fields of one type protected by
// another's lock (windows, descriptor slots, Blob.wins and Blob.fd under
// Store.mu; a loan under its blob's mu) say so in prose only.
package mapstore
