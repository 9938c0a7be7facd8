// Package mapstore keeps file data in memory-mapped store files.
//
// A Store is a directory (mode 0700) of store files (mode 0600), one per
// Blob, named by the blob's id in hex (16 digits) and never opened through
// a symlink. A Blob is the data of one file: its bytes live at the same
// offsets in its store file, which is mapped MAP_SHARED in fixed-size,
// aligned windows. Windows are mapped on demand, reference-counted while a
// copy is in progress or a View of them is out, and unmapped by a bounded
// LRU; a window is never
// moved or resized while mapped, so no slice of a mapping can dangle
// (docs/design.md, hazard 3).
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
// its pages out instead. Every touch of a mapping runs with
// debug.SetPanicOnFault so that a fault (a store file truncated behind the
// server's back, say) becomes ErrFault instead of killing the process.
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
// function returns a slice of a mapping.
//
// # Errors
//
// Errors match the sentinels of errors.go with errors.Is, and wrapped
// system call errors match their unix.Errno. A method that returns n > 0
// with an error did the first n bytes of its work.
//
// # Locking
//
//	Blob.mu           (size, page sets, store file state of one blob)
//	  Store.mu        (blob table, accounting, window and descriptor caches)
//
// A Blob's methods are safe for concurrent use: ReadAt, SeekData,
// SeekHole, Size, Allocated and Sync share Blob.mu; the others take it
// exclusively. CopyFrom locks the two blobs in id order; Check locks every
// blob in id order. System calls on a store file run under Blob.mu with the
// descriptor pinned, not under Store.mu, except open and mmap, which fill
// the caches.
package mapstore
