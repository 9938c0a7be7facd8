package store

import (
	"errors"
	"io"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/sys/unix"

	"mmapfs/mapstore"
)

// Figures are the figures of the store directory, for `mmapfs stats` and
// the metrics.
type Figures struct {
	// Allocated is the bytes the filesystem under the store allocated to
	// the store files (their st_blocks).
	Allocated int64
	// Resident is the bytes of the store files in RAM: their pages in
	// the page cache (cachestat(2)); where the kernel has no cachestat
	// (before Linux 6.5), the pages of the mapped windows only (mincore),
	// and ResidentMapped is set.
	Resident       int64
	ResidentMapped bool
	// SizeLimit is the bytes of file data at most: the store's own
	// limit, or the size of a memory store's own tmpfs; 0: none but the
	// filesystem's.
	SizeLimit int64
	// JournalBytes is the size of a persistent store's journal.
	JournalBytes int64
	// Walked is when the store files were last looked at for Allocated
	// and Resident (zero: not yet).
	Walked time.Time
}

// Allocated and Resident take a look at every store file: too long to do
// for every request on a store of a million files. A walk over the store
// files runs in the background when a request finds the last one too old:
// older than walkEvery, and than walkDuty times the walk took (so walks
// take a tenth of one CPU at most, however many files there are). The
// request waits up to walkWait for it, then takes the last figures.
const (
	walkEvery = time.Second
	walkDuty  = 10
	walkWait  = 200 * time.Millisecond
)

// figureCache holds the figures of the last walk over the store files.
type figureCache struct {
	mu sync.Mutex
	// last is the figures of the newest complete walk. Protected by mu.
	last walkFigures
	// running is closed when the walk in progress ends; nil when none
	// runs. Protected by mu.
	running chan struct{}
	// stopped is set by stop, under mu: walks end and no new one
	// starts.
	stopped atomic.Bool
	// noCachestat is set once cachestat(2) turned out to be missing.
	noCachestat atomic.Bool
	wg          sync.WaitGroup
}

// walkFigures are what one walk over the store files found.
type walkFigures struct {
	allocated, resident int64
	took                time.Duration
	at                  time.Time // when it ended; zero: no walk yet
}

// Figures returns the figures of the store now; Allocated and Resident
// are those of the last walk over the store files, at most a few seconds
// old (Walked says when).
func (s *Store) Figures() Figures {
	var f Figures
	blobs := s.blobs
	if blobs == nil {
		return f // closed
	}
	f.SizeLimit = blobs.Stats().Limit
	if f.SizeLimit == 0 && s.OwnFS() {
		var hs unix.Statfs_t
		if unix.Statfs(s.dir, &hs) == nil {
			f.SizeLimit = int64(hs.Blocks) * hs.Bsize
		}
	}
	if s.meta != nil {
		f.JournalBytes = s.meta.JournalSize()
	}
	w := s.figures.get(s.files)
	f.Allocated, f.Resident, f.Walked = w.allocated, w.resident, w.at
	if s.figures.noCachestat.Load() {
		f.Resident = blobs.ResidentMapped()
		f.ResidentMapped = true
	}
	return f
}

// get returns the figures of the last walk over the store files in dir,
// starting a new walk first if the last is too old, and waiting for it up
// to walkWait.
func (c *figureCache) get(dir string) walkFigures {
	c.mu.Lock()
	last, running := c.last, c.running
	stale := time.Since(last.at) >= max(walkEvery, walkDuty*last.took)
	if stale && running == nil && !c.stopped.Load() {
		running = make(chan struct{})
		c.running = running
		c.wg.Add(1)
		go c.walk(dir, running)
	}
	c.mu.Unlock()
	if !stale {
		return last
	}
	select {
	case <-running:
	case <-time.After(walkWait):
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.last
}

// walk walks the store files in dir, records what it found, and closes
// done.
func (c *figureCache) walk(dir string, done chan struct{}) {
	defer c.wg.Done()
	start := time.Now()
	w, err := c.walkFiles(dir)
	w.took = time.Since(start)
	w.at = time.Now()
	c.mu.Lock()
	if err == nil {
		c.last = w
	} else {
		// The directory is gone (the store is closing): keep the last
		// figures, and try again no sooner than after a good walk.
		c.last.at, c.last.took = w.at, w.took
	}
	c.running = nil
	c.mu.Unlock()
	close(done)
}

// walkFiles adds up the allocated and the resident bytes of the store
// files in dir. Files removed meanwhile count nothing.
func (c *figureCache) walkFiles(dir string) (walkFigures, error) {
	var w walkFigures
	d, err := os.Open(dir)
	if err != nil {
		return w, err
	}
	defer d.Close()
	raw, err := d.SyscallConn()
	if err != nil {
		return w, err
	}
	for !c.stopped.Load() {
		names, err := d.Readdirnames(1024)
		if cerr := raw.Control(func(dirfd uintptr) {
			for _, name := range names {
				if _, ok := mapstore.ParseFileName(name); ok {
					a, r := c.fileFigures(int(dirfd), name)
					w.allocated += a
					w.resident += r
				}
			}
		}); cerr != nil {
			return w, cerr
		}
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return w, err
		}
	}
	return w, nil
}

// fileFigures returns the allocated and the resident bytes of store file
// name in directory dirfd; zero if it cannot be opened.
func (c *figureCache) fileFigures(dirfd int, name string) (allocated, resident int64) {
	const flags = unix.O_RDONLY | unix.O_CLOEXEC | unix.O_NOFOLLOW
	fd, err := unix.Openat(dirfd, name, flags|unix.O_NOATIME, 0)
	if errors.Is(err, unix.EPERM) {
		fd, err = unix.Openat(dirfd, name, flags, 0) // not the owner
	}
	if err != nil {
		return 0, 0
	}
	defer unix.Close(fd)
	var st unix.Stat_t
	if unix.Fstat(fd, &st) != nil || st.Mode&unix.S_IFMT != unix.S_IFREG {
		return 0, 0
	}
	allocated = st.Blocks * 512
	if c.noCachestat.Load() {
		return allocated, 0
	}
	var cs unix.Cachestat_t
	err = unix.Cachestat(uint(fd), &unix.CachestatRange{}, &cs, 0)
	switch {
	case err == nil:
		resident = int64(cs.Cache) * int64(os.Getpagesize())
	case errors.Is(err, unix.ENOSYS):
		c.noCachestat.Store(true)
	}
	return allocated, resident
}

// stop ends a walk in progress and waits for it; no walk starts after.
func (c *figureCache) stop() {
	c.mu.Lock()
	c.stopped.Store(true)
	c.mu.Unlock()
	c.wg.Wait()
}
