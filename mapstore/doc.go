// Package mapstore keeps file data in memory-mapped store files.
//
// A Store is a directory (mode 0700) of store files (mode 0600), one per
// Blob, named by the blob's id in hex. A Blob is the data of one file: its
// bytes live at the same offsets in its store file, which is mapped
// MAP_SHARED in fixed-size, aligned windows. Windows are mapped on demand,
// reference-counted while a copy is in progress, and unmapped by a bounded
// LRU; a window is never moved or resized while mapped, so no slice of a
// mapping can dangle (DESIGN.md hazard 3).
//
// Space is allocated in pages (4 KiB) with fallocate before any write
// reaches them, and accounted against Options.SizeLimit, so a full store is
// ErrNoSpace and never SIGBUS. Pages never written stay holes: they read as
// zeros, cost no space and are reported by SeekHole. Reads of holes never
// touch the mapping (a read fault on a tmpfs hole would allocate a page).
// Every touch of a mapping runs with debug.SetPanicOnFault so that a fault
// (a store file truncated behind the server's back, say) becomes ErrFault
// instead of killing the process.
//
// Store files and their descriptors are bounded too: descriptors are kept in
// an LRU of at most Options.MaxFDs and reopened on demand; a blob that was
// never written has no store file at all.
//
// # Lifetimes
//
// Slices passed to ReadAt and WriteAt are only used during the call. No
// function returns a slice of a mapping.
//
// # Locking
//
//	Blob.mu           (data, size, extents of one blob)
//	  Store.mu        (window and descriptor caches, accounting)
//
// A Blob's methods are safe for concurrent use; CopyFrom locks the two blobs
// in id order.
package mapstore
