package control

import "time"

// Operations of a Request.
const (
	ReqStats  = "stats"  // Response.Stats
	ReqChange = "change" // apply Request.Change
)

// Request is what a command asks of the server.
type Request struct {
	Op     string  `json:"op"`
	Change *Change `json:"change,omitempty"`
}

// Change is a change to a live mount's limits or flags, as `mount -o
// remount` and `mmapfs resize` ask for it. A nil field is left as it is.
type Change struct {
	// Size is the new limit of file data in bytes (0: no limit).
	Size *int64 `json:"size,omitempty"`
	// Inodes is the new inode limit (0: no limit).
	Inodes *uint64 `json:"inodes,omitempty"`
	// MountFlags are the mount's per-mount flags after the remount
	// (MS_RDONLY, MS_NOATIME, MS_STRICTATIME, MS_NODIRATIME...). The
	// command changes the kernel's flags of the mount itself
	// (MS_REMOUNT); the server takes from them when to update atime, and
	// whether it may change anything of its own accord (atimes, the
	// snapshot at unmount).
	MountFlags *uint64 `json:"mount_flags,omitempty"`
	// Huge is the new huge= of the tmpfs the server mounted for its
	// store ("never", "always", "within_size", "advise").
	Huge *string `json:"huge,omitempty"`
}

// Response is the server's answer. Error, if not empty, says in one line
// why the request was refused or failed; nothing was changed then.
type Response struct {
	Error string `json:"error,omitempty"`
	Stats *Stats `json:"stats,omitempty"`
}

// Stats are the figures of a live server.
type Stats struct {
	Time       time.Time `json:"time"`
	Started    time.Time `json:"started"`
	Mountpoint string    `json:"mountpoint"`
	Store      string    `json:"store"` // the store directory
	Persistent bool      `json:"persistent"`
	ReadOnly   bool      `json:"read_only"`
	PID        int       `json:"pid"`

	// Ops holds the requests served, by FUSE operation name
	// ("LOOKUP", "CREATE", ...); operations never asked for are left
	// out.
	Ops map[string]OpStats `json:"ops"`
	// Bytes of file data the server read for READ replies and wrote for
	// WRITE requests (what passthrough serves never reaches the server).
	ReadBytes  uint64 `json:"read_bytes"`
	WriteBytes uint64 `json:"write_bytes"`

	// The store: bytes of file data (what statfs counts as used), bytes
	// allocated to store files, the size limit (0: none), and bytes of
	// store files resident in RAM.
	StoreUsed      int64 `json:"store_used_bytes"`
	StoreAllocated int64 `json:"store_allocated_bytes"`
	SizeLimit      int64 `json:"size_limit_bytes"`
	Resident       int64 `json:"resident_bytes"`
	// ResidentMappedOnly: Resident counts only the pages of the
	// server's mapped windows (mincore), the kernel having no
	// cachestat(2) to tell those of whole store files (before 6.5).
	ResidentMappedOnly bool `json:"resident_mapped_only,omitempty"`

	Inodes     uint64 `json:"inodes"`
	InodeLimit uint64 `json:"inode_limit"` // 0: none

	// Lent is the number of files lent to passthrough now.
	Lent int64 `json:"lent_files"`
	// Windows and MappedBytes are the mapped windows of store files.
	Windows     int64 `json:"mapped_windows"`
	MappedBytes int64 `json:"mapped_bytes"`
	// OpenFDs is the number of store files the server holds open.
	OpenFDs int64 `json:"open_fds"`

	// The journal of a persistent store: its size, and the end of its
	// last compaction (zero if none since the mount).
	JournalBytes   int64     `json:"journal_bytes"`
	Compactions    uint64    `json:"compactions"`
	LastCompaction time.Time `json:"last_compaction"`
	CompactionTook float64   `json:"last_compaction_seconds"`
}

// OpStats are the figures of one FUSE operation.
type OpStats struct {
	Count  uint64 `json:"count"`
	Errors uint64 `json:"errors"` // replies other than OK
	// Seconds is the total time spent serving them.
	Seconds float64 `json:"seconds"`
	// Buckets[i] counts the requests that took at most LatencyBounds[i]
	// (and more than the bound before); the last one, past all bounds.
	Buckets []uint64 `json:"buckets"`
	// Percentiles of the time a request took, in seconds: the upper
	// bound of the bucket they fall in (the last bound for the bucket
	// past it).
	P50 float64 `json:"p50_seconds"`
	P90 float64 `json:"p90_seconds"`
	P99 float64 `json:"p99_seconds"`
}
