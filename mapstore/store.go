package mapstore

import (
	"errors"
	"fmt"
	"math"
	"math/bits"
	"os"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"go.uber.org/zap"

	"mmapfs/internal/dirs"
)

// PageSize is the unit of allocation and of hole reporting.
const PageSize = 4096

const (
	pageShift = 12

	// lastPage is the number of the last page below 2^63, the page of
	// byte math.MaxInt64-1: files may be math.MaxInt64 bytes long, as on
	// tmpfs. mmap refuses a mapping that reaches 2^63, so this page is
	// never mapped: its bytes go through pread and pwrite instead.
	lastPage = math.MaxInt64 >> pageShift
	// maxMappable is where the last page starts: no window reaches past it.
	maxMappable = lastPage << pageShift

	defaultWindowSize = 2 << 20
	defaultMaxWindows = 4096
	defaultMaxFDs     = 256

	// nameLen is the length of a store file name: the blob id in hex.
	nameLen = 16
)

// Options configure a Store.
type Options struct {
	Dir       string // directory of store files; created 0700 if missing
	SizeLimit int64  // bytes of allocated pages at most; 0 = no limit but the filesystem's
	// MaxFileSize is the largest offset+length; 0 = math.MaxInt64, the
	// largest file of a tmpfs. It is lowered to the largest file the
	// filesystem under Dir allows.
	MaxFileSize int64
	WindowSize  int64       // bytes per mapping window, power of two ≥ PageSize; 0 = 2 MiB
	MaxWindows  int         // mapped windows at most; 0 = 4096; never more than vm.max_map_count/2
	MaxFDs      int         // open store files at most; 0 = 256; never more than RLIMIT_NOFILE/4
	Logger      *zap.Logger // nil = zap.NewNop()
	Sys         *Sys        // system calls, replaceable to inject faults; nil = real ones
}

// Stats is a snapshot of the store's accounting.
type Stats struct {
	Used, Limit  int64 // bytes allocated, and Options.SizeLimit (0 = none)
	Blobs        int   // live blobs
	Windows, FDs int   // mapped windows and open descriptors now
}

// Store is a directory of store files and the caches of their mappings and
// descriptors. Its methods are safe for concurrent use. The fields above mu
// are set by Open and then read-only, or atomic.
type Store struct {
	lastFullWarn atomic.Int64 // unix nanoseconds of the last warnFull line
	// dirDirty is set when a store file is made: the directory entry
	// is not durable until Sync fsyncs the directory.
	dirDirty atomic.Bool

	// Set by Open, then read-only: read without mu.
	dir string
	// limit is Options.SizeLimit, changed by SetLimit (limit.go) with mu
	// held: read it with mu held where used is compared with it.
	limit   atomic.Int64
	maxFile int64 // Options.MaxFileSize, normalized
	// fileLimit is maxFile rounded up to a page, or math.MaxInt64: no
	// store file reaches past it.
	fileLimit int64
	// mapLimit is fileLimit, but at most maxMappable: no window reaches
	// past it. The bytes past it, in lastPage, are read and written with
	// pread and pwrite.
	mapLimit int64
	winSize  int64
	winShift uint
	maxWins  int
	maxFDs   int
	tmpfs    bool // Dir is on a tmpfs: st_blocks counts exactly our pages
	log      *zap.Logger
	sys      *Sys

	// mu is the store lock: a leaf under Blob.mu (doc.go says what runs
	// under it).
	mu sync.Mutex
	// closed is set by Close. Protected by mu.
	// +checklocks:mu
	closed bool
	// dirfd is the store directory, closed by Close. Protected by mu;
	// Close closes it only after it has locked every live blob, so a
	// live blob's mu keeps it open too (adoptLocked reads it so).
	// +checklocks:mu
	dirfd int
	// nextID is the id Create gives next. Protected by mu.
	// +checklocks:mu
	nextID uint64
	// blobs holds the live blobs by id. Protected by mu.
	// +checklocks:mu
	blobs map[uint64]*Blob
	// loans holds the lent blobs (lend.go). Protected by mu.
	// +checklocks:mu
	loans map[*Blob]*loan
	// used is the bytes allocated over all blobs, lent ones as they were
	// when lent. Protected by mu.
	// +checklocks:mu
	used int64
	// wins is the sentinel of the window LRU (windows.go). Protected by
	// mu.
	// +checklocks:mu
	wins window
	// nwins is the number of windows mapped. Protected by mu.
	// +checklocks:mu
	nwins int
	// mapped is the bytes of the windows mapped. Protected by mu.
	// +checklocks:mu
	mapped int64
	// fds is the sentinel of the descriptor LRU (fds.go). Protected by
	// mu.
	// +checklocks:mu
	fds fdSlot
	// nfds is the number of descriptors open. Protected by mu.
	// +checklocks:mu
	nfds int
}

// Open opens the store in opts.Dir, creating the directory if needed. Store
// files already in it stay untouched until OpenBlob adopts them; Create
// never reuses their ids.
func Open(opts Options) (*Store, error) {
	s := &Store{
		dir:     opts.Dir,
		maxFile: opts.MaxFileSize,
		winSize: opts.WindowSize,
		maxWins: opts.MaxWindows,
		maxFDs:  opts.MaxFDs,
		log:     opts.Logger,
		sys:     opts.Sys.withDefaults(),
		nextID:  1,
		blobs:   make(map[uint64]*Blob),
		loans:   make(map[*Blob]*loan),
		dirfd:   -1,
	}
	if s.log == nil {
		s.log = zap.NewNop()
	}
	if s.maxFile == 0 {
		s.maxFile = math.MaxInt64
	}
	if s.winSize == 0 {
		s.winSize = defaultWindowSize
	}
	if s.maxWins == 0 {
		s.maxWins = defaultMaxWindows
	}
	if s.maxFDs == 0 {
		s.maxFDs = defaultMaxFDs
	}
	s.limit.Store(opts.SizeLimit)
	switch {
	case s.dir == "":
		return nil, fmt.Errorf("%w: no store directory", errInvalid)
	case s.limit.Load() < 0 || s.maxFile < 0 || s.maxWins < 0 || s.maxFDs < 0:
		return nil, fmt.Errorf("%w: negative store option", errInvalid)
	case s.winSize < PageSize || s.winSize&(s.winSize-1) != 0 || s.winSize%int64(os.Getpagesize()) != 0:
		return nil, fmt.Errorf("%w: window size %d is not a power of two ≥ the page size", errInvalid, s.winSize)
	}
	if n := maxOpenFiles() / 4; n > 0 && int64(s.maxFDs) > n {
		s.maxFDs = int(n)
	}
	// The rest of the process maps too (heap, stacks, libraries, and the
	// other mapped files of a filesystem server).
	if n := maxMapCount() / 2; n > 0 && int64(s.maxWins) > n {
		s.maxWins = int(n)
	}
	s.winShift = uint(bits.TrailingZeros64(uint64(s.winSize)))
	s.setLimits()
	s.wins.prev, s.wins.next = &s.wins, &s.wins
	s.fds.prev, s.fds.next = &s.fds, &s.fds

	if err := os.MkdirAll(s.dir, 0o700); err != nil {
		return nil, fmt.Errorf("mapstore: create store directory: %w", err)
	}
	dirfd, err := openDir(s.dir)
	if err != nil {
		return nil, fmt.Errorf("mapstore: open store directory %s: %w", s.dir, err)
	}
	fi, err := fstat(dirfd)
	if err == nil && fi.mode&0o077 != 0 {
		s.log.Info("store directory was open to others; now 0700", zap.String("dir", s.dir))
		err = fchmod(dirfd, 0o700)
	}
	var names []string
	if err == nil {
		names, err = dirs.NamesAt(dirfd)
	}
	if err != nil {
		closeFD(dirfd)
		return nil, fmt.Errorf("mapstore: store directory %s: %w", s.dir, err)
	}
	for _, name := range names {
		if id, ok := parseName(name); ok && id >= s.nextID {
			s.nextID = id + 1
		}
	}
	s.dirfd = dirfd
	s.tmpfs = isTmpfs(dirfd)
	if !s.tmpfs {
		// ext4 stops at 16 TiB, say: past that ftruncate fails, so the
		// store says EFBIG first, as the filesystem would.
		s.maxFile = maxFileSizeOf(dirfd, s.maxFile)
		s.setLimits()
	}
	s.log.Debug("store open", zap.String("dir", s.dir), zap.Int("files", len(names)),
		zap.Bool("tmpfs", s.tmpfs), zap.Int64("windowSize", s.winSize),
		zap.Int("maxWindows", s.maxWins), zap.Int("maxFDs", s.maxFDs))
	return s, nil
}

// Close unmaps every window and closes every descriptor. It waits for
// running operations on blobs; afterwards every method returns ErrClosed.
// Store files stay in Dir.
func (s *Store) Close() error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil
	}
	s.closed = true
	blobs := s.sortedBlobsLocked()
	s.mu.Unlock()

	var errs []error
	for _, b := range blobs {
		b.mu.Lock()
		b.dead = true
		s.mu.Lock()
		if b.loan != nil {
			delete(s.loans, b)
			b.loan = nil
		}
		errs = append(errs, s.dropBlobLocked(b))
		s.mu.Unlock()
		b.mu.Unlock()
	}
	s.mu.Lock()
	if err := closeFD(s.dirfd); err != nil {
		errs = append(errs, fmt.Errorf("mapstore: close store directory: %w", err))
	}
	s.dirfd = -1
	s.mu.Unlock()
	return errors.Join(errs...)
}

// Create returns a new, empty blob. It has no store file until data is
// first allocated in it.
func (s *Store) Create() (*Blob, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return nil, errClosed
	}
	for s.blobs[s.nextID] != nil {
		s.nextID++
	}
	b := newBlob(s, s.nextID)
	s.nextID++
	s.blobs[b.id] = b
	return b, nil
}

// SetNextID makes Create return only ids ≥ next from now on: ids a caller
// has recorded for blobs that have no store file yet stay free.
func (s *Store) SetNextID(next uint64) {
	s.mu.Lock()
	s.nextID = max(s.nextID, next)
	s.mu.Unlock()
}

// NextID returns the id Create would try next.
func (s *Store) NextID() uint64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.nextID
}

// Files returns the ids of the store files in Dir, open as blobs or not, in
// increasing order. Names that are not store file names are left out
// (Check reports them).
func (s *Store) Files() ([]uint64, error) {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil, errClosed
	}
	names, err := dirs.NamesAt(s.dirfd)
	s.mu.Unlock()
	if err != nil {
		return nil, fmt.Errorf("mapstore: read store directory: %w", err)
	}
	var ids []uint64
	for _, name := range names {
		if id, ok := parseName(name); ok {
			ids = append(ids, id)
		}
	}
	slices.Sort(ids)
	return ids, nil
}

// Stats returns a snapshot of the store's accounting.
func (s *Store) Stats() Stats {
	s.mu.Lock()
	defer s.mu.Unlock()
	return Stats{
		Used:    s.used + s.loanedBytesLocked(),
		Limit:   s.limit.Load(),
		Blobs:   len(s.blobs),
		Windows: s.nwins,
		FDs:     s.nfds,
	}
}

// MaxFileSize returns the largest offset+length the store accepts.
func (s *Store) MaxFileSize() int64 { return s.maxFile }

// reserve takes up to pages pages of the size limit for a caller about to
// allocate them, and returns how many it took: all of them, or with partial
// as many as fit, or none.
func (s *Store) reserve(pages int64, partial bool) int64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	if limit := s.limit.Load(); limit > 0 {
		free := max(0, (limit-s.used)/PageSize)
		if pages > free {
			if !partial {
				return 0
			}
			pages = free
		}
	}
	s.used += pages * PageSize
	return pages
}

// unreserve gives back pages taken by reserve or freed from a blob.
func (s *Store) unreserve(pages int64) {
	if pages == 0 {
		return
	}
	s.mu.Lock()
	s.used -= pages * PageSize
	s.mu.Unlock()
}

// sortedBlobsLocked returns the live blobs in id order, the order in which
// several blob locks are taken.
//
// Preconditions: s.mu is held.
//
// +checklocks:s.mu
func (s *Store) sortedBlobsLocked() []*Blob {
	blobs := make([]*Blob, 0, len(s.blobs))
	for _, b := range s.blobs {
		blobs = append(blobs, b)
	}
	slices.SortFunc(blobs, func(a, b *Blob) int {
		switch {
		case a.id < b.id:
			return -1
		case a.id > b.id:
			return 1
		}
		return 0
	})
	return blobs
}

// dropBlobLocked unmaps b's windows and closes its descriptor.
//
// Preconditions: b.mu is held for writing; s.mu is held.
//
// +checklocks:s.mu
// +checklocks:b.mu
func (s *Store) dropBlobLocked(b *Blob) error {
	err := s.unmapBlobWindowsLocked(b, 0)
	return errors.Join(err, s.closeFDLocked(&b.fd))
}

// setLimits sets fileLimit and mapLimit from maxFile.
func (s *Store) setLimits() {
	s.fileLimit = pageOff(pageUp(s.maxFile))
	s.mapLimit = min(s.fileLimit, maxMappable)
}

// fileTarget returns the store file size that covers byte end: end rounded
// up to a window, but no further than mapLimit; or fileLimit if end is past
// mapLimit (in lastPage, which no window maps).
func (s *Store) fileTarget(end int64) int64 {
	switch {
	case end > s.mapLimit:
		return s.fileLimit
	case end > s.mapLimit-s.winSize:
		return s.mapLimit
	}
	return (end + s.winSize - 1) &^ (s.winSize - 1)
}

// storeName returns the store file name of blob id.
func storeName(id uint64) string {
	const digits = "0123456789abcdef"
	var buf [nameLen]byte
	for i := nameLen - 1; i >= 0; i-- {
		buf[i] = digits[id&0xf]
		id >>= 4
	}
	return string(buf[:])
}

// parseName returns the blob id of a store file name.
func parseName(name string) (uint64, bool) { return ParseFileName(name) }

// fullWarnEvery spaces the warnings that the filesystem under the store is
// full: a program that keeps writing would otherwise fill the log.
const fullWarnEvery = 10 * time.Second

// warnFull logs, at most once per fullWarnEvery, that the filesystem under
// the store refused space. Unlike the size limit, which is the mount's own
// business, this is the host running out: an administrator must hear of it.
func (s *Store) warnFull(err error) {
	now := time.Now().UnixNano()
	last := s.lastFullWarn.Load()
	if now-last < int64(fullWarnEvery) || !s.lastFullWarn.CompareAndSwap(last, now) {
		return
	}
	s.log.Warn("the filesystem under the store is full: writes get ENOSPC",
		zap.String("dir", s.dir), zap.Error(err))
}
