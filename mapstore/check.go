package mapstore

import (
	"errors"
	"fmt"
	"slices"
	"strings"

	"mmapfs/internal/dirs"
)

// maxProblems bounds the problems Check lists.
const maxProblems = 50

// Check verifies the store's invariants and returns an error listing every
// problem found (at most 50), or nil:
//
//   - the blobs' allocations add up to Used, and Used is within the limit;
//   - each blob's page sets are sorted, disjoint, and data lies inside
//     the allocation and below Size;
//   - no window or descriptor is pinned, their counts match the caches and
//     are within MaxWindows and MaxFDs, every window lies inside its store
//     file;
//   - every file in Dir is the store file of a live blob, mode 0600, and
//     the pages it holds are the blob's: on a tmpfs exactly (SEEK_DATA and
//     SEEK_HOLE give the data pages, st_blocks the allocated ones), on
//     other filesystems at least.
//
// Check locks every blob, so it waits for running operations; it is meant
// for tests and fsck. Store files of blobs not adopted with OpenBlob count
// as strays.
//
// The analyzer cannot follow locks taken in a loop: Check holds b.mu of
// every blob it checks, from the first loop to its return.
//
// +checklocksignore
func (s *Store) Check() error {
	var blobs []*Blob
	for try := 0; ; try++ {
		s.mu.Lock()
		if s.closed {
			s.mu.Unlock()
			return errClosed
		}
		blobs = s.sortedBlobsLocked()
		s.mu.Unlock()
		for _, b := range blobs {
			b.mu.Lock()
		}
		s.mu.Lock()
		same := len(s.blobs) == len(blobs)
		for _, b := range blobs {
			same = same && s.blobs[b.id] == b
		}
		if same || s.closed || try == 10 {
			break
		}
		// A blob came or went between the snapshot and the locks.
		s.mu.Unlock()
		for _, b := range blobs {
			b.mu.Unlock()
		}
	}
	defer func() {
		for _, b := range blobs {
			b.mu.Unlock()
		}
	}()
	if s.closed {
		s.mu.Unlock()
		return errClosed
	}
	c := &checker{}
	live := make(map[uint64]*Blob, len(blobs))
	for _, b := range blobs {
		if s.blobs[b.id] == b && !b.dead {
			live[b.id] = b
		}
	}
	if len(live) != len(s.blobs) {
		c.add("blob set changed while checking: %d locked, %d registered", len(live), len(s.blobs))
	}
	s.checkCachesLocked(c, live)
	dirfd, err := dupFD(s.dirfd)
	s.mu.Unlock()
	if err != nil {
		c.add("dup store directory: %v", err)
		return c.err()
	}
	defer closeFD(dirfd)

	for _, b := range blobs {
		if live[b.id] == b {
			b.checkLocked(c)
		}
	}
	s.checkFiles(c, dirfd, live)
	return c.err()
}

// checkCachesLocked checks the accounting and the window and descriptor
// caches.
//
// Preconditions: s.mu is held, and b.mu of every live blob.
//
// +checklocks:s.mu
// +checklocksignore: the blobs' locks are Check's.
func (s *Store) checkCachesLocked(c *checker, live map[uint64]*Blob) {
	var pages int64
	for _, b := range live {
		pages += b.alloc.pages
	}
	if s.used != pages*PageSize {
		c.add("store: used %d bytes, blobs hold %d", s.used, pages*PageSize)
	}
	if limit := s.limit.Load(); limit > 0 && s.used > limit {
		c.add("store: used %d bytes over the limit %d", s.used, limit)
	}

	nwins, pinned := 0, false
	for w := s.wins.next; w != &s.wins; w = w.next {
		nwins++
		b := w.b
		switch {
		case w.refs != 0:
			c.add("window %x/%d: pinned %d times while idle", b.id, w.idx, w.refs)
			pinned = true
		case live[b.id] != b:
			c.add("window %x/%d: blob not live", b.id, w.idx)
		case b.wins[w.idx] != w:
			c.add("window %x/%d: not in its blob's table", b.id, w.idx)
		case int64(len(w.mem)) != s.windowLen(w.idx):
			c.add("window %x/%d: %d bytes mapped", b.id, w.idx, len(w.mem))
		case w.idx<<s.winShift+int64(len(w.mem)) > b.fileSize:
			c.add("window %x/%d: past the store file's end %d", b.id, w.idx, b.fileSize)
		}
	}
	tables := 0
	for _, b := range live {
		tables += len(b.wins)
	}
	if nwins != s.nwins || tables != s.nwins {
		c.add("windows: %d counted, %d on the list, %d in blob tables", s.nwins, nwins, tables)
	}
	if !pinned && s.nwins > s.maxWins {
		c.add("windows: %d mapped, more than %d", s.nwins, s.maxWins)
	}

	nfds, pinned := 0, false
	for f := s.fds.next; f != &s.fds; f = f.next {
		nfds++
		switch {
		case f.refs != 0:
			c.add("descriptor of %x: pinned %d times while idle", f.b.id, f.refs)
			pinned = true
		case f.fd < 0:
			c.add("descriptor of %x: closed but listed", f.b.id)
		case live[f.b.id] != f.b:
			c.add("descriptor of %x: blob not live", f.b.id)
		}
	}
	open := 0
	for _, b := range live {
		if b.fd.fd >= 0 {
			open++
		}
	}
	if nfds != s.nfds || open != s.nfds {
		c.add("descriptors: %d counted, %d on the list, %d open in blobs", s.nfds, nfds, open)
	}
	if !pinned && s.nfds > s.maxFDs {
		c.add("descriptors: %d open, more than %d", s.nfds, s.maxFDs)
	}
}

// checkLocked checks the blob's own invariants.
//
// Preconditions: b.mu is held.
//
// +checklocksread:b.mu
func (b *Blob) checkLocked(c *checker) {
	if b.loan != nil {
		return // the store file is the truth while lent
	}
	if why := b.alloc.valid(); why != "" {
		c.add("blob %x: allocated pages: %s", b.id, why)
	}
	if why := b.data.valid(); why != "" {
		c.add("blob %x: data pages: %s", b.id, why)
	}
	for _, e := range b.data.es {
		if !b.alloc.covers(e.start, e.end) {
			c.add("blob %x: data pages [%d, %d) not allocated", b.id, e.start, e.end)
		}
	}
	switch {
	case b.size < 0 || b.size > b.s.maxFile:
		c.add("blob %x: size %d out of range", b.id, b.size)
	// Data pages may lie past size: on tmpfs, allocating again a page
	// reserved past the end of the file makes it data (Allocate).
	case b.alloc.pages > 0 && !b.hasFile:
		c.add("blob %x: pages allocated without a store file", b.id)
	case pageOff(b.alloc.last()) > pageOff(pageUp(b.fileSize)):
		// (A file taken back from a loan ends inside its last page.)
		c.add("blob %x: allocated page %d past the store file's end %d", b.id, b.alloc.last()-1, b.fileSize)
	}
}

// checkFiles checks the files in the store directory against the blobs.
//
// Preconditions: b.mu of every live blob is held.
//
// +checklocksignore: the blobs' locks are Check's.
func (s *Store) checkFiles(c *checker, dirfd int, live map[uint64]*Blob) {
	if fi, err := fstat(dirfd); err != nil || fi.mode&0o777 != 0o700 {
		c.add("store directory: mode %o, error %v; want 0700", fi.mode&0o7777, err)
	}
	names, err := dirs.NamesAt(dirfd)
	if err != nil {
		c.add("read store directory: %v", err)
		return
	}
	seen := make(map[uint64]bool, len(names))
	for _, name := range names {
		id, ok := parseName(name)
		b := live[id]
		switch {
		case !ok:
			c.add("stray file %q in the store directory", name)
		case b == nil && s.registered(id):
			// A blob created after Check locked the others.
		case b == nil:
			c.add("store file %s: no live blob", name)
		case !b.hasFile:
			c.add("store file %s: blob %x thinks it has none", name, id)
		default:
			seen[id] = true
			s.checkFile(c, dirfd, b)
		}
	}
	for id, b := range live {
		if b.hasFile && !seen[id] {
			c.add("blob %x: store file %s missing", id, b.name())
		}
	}
}

// registered reports whether blob id is open now.
func (s *Store) registered(id uint64) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.blobs[id] != nil
}

// checkFile checks one store file's size, mode and pages against its blob.
//
// Preconditions: b.mu is held.
//
// +checklocksread:b.mu
func (s *Store) checkFile(c *checker, dirfd int, b *Blob) {
	if b.loan != nil {
		return // the store file is the truth while lent
	}
	fd, err := openRead(dirfd, b.name())
	if err != nil {
		c.add("store file %s: %v", b.name(), err)
		return
	}
	defer closeFD(fd)
	fi, err := fstat(fd)
	if err != nil {
		c.add("store file %s: %v", b.name(), err)
		return
	}
	switch {
	case !isRegular(fi.mode) || fi.mode&0o777 != 0o600:
		c.add("store file %s: mode %o, want a regular file 0600", b.name(), fi.mode)
	case fi.size != b.fileSize:
		c.add("store file %s: size %d, blob says %d", b.name(), fi.size, b.fileSize)
	case s.tmpfs && fi.blocks*512 != b.alloc.pages*PageSize:
		c.add("store file %s: %d bytes allocated, blob holds %d", b.name(), fi.blocks*512, b.alloc.pages*PageSize)
	case fi.blocks*512 < b.alloc.pages*PageSize:
		c.add("store file %s: %d bytes allocated, blob holds %d", b.name(), fi.blocks*512, b.alloc.pages*PageSize)
	}
	var file extents
	if err := dataRanges(fd, fi.size, func(start, end int64) {
		file.add(start>>pageShift, pageUp(end))
	}); err != nil {
		c.add("store file %s: seek data: %v", b.name(), err)
		return
	}
	// tmpfs reports exactly the pages written. Other filesystems may
	// report more as data (ext4: unwritten extents with pages in the page
	// cache), never less.
	if s.tmpfs && !slices.Equal(file.es, b.data.es) {
		c.add("store file %s: data pages %v, blob says %v", b.name(), clip(file.es), clip(b.data.es))
	}
	for _, e := range b.data.es {
		if !file.covers(e.start, e.end) {
			c.add("store file %s: data pages [%d, %d) of the blob are holes in the file", b.name(), e.start, e.end)
			break
		}
	}
}

// clip shortens a list of extents for a message.
func clip(es []extent) []extent {
	if len(es) > 8 {
		return es[:8]
	}
	return es
}

// checker collects problems.
type checker struct {
	problems []string
	more     int
}

func (c *checker) add(format string, args ...any) {
	if len(c.problems) == maxProblems {
		c.more++
		return
	}
	c.problems = append(c.problems, fmt.Sprintf(format, args...))
}

func (c *checker) err() error {
	if len(c.problems) == 0 {
		return nil
	}
	msg := "mapstore: check: " + strings.Join(c.problems, "; ")
	if c.more > 0 {
		msg += fmt.Sprintf("; and %d more", c.more)
	}
	return errors.New(msg)
}
