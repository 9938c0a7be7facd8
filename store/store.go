// Package store opens the directory a mount keeps its files in, in either
// of mmapfs's modes, and owns everything about that directory but the file
// data (package mapstore) and the framing of the metadata (package
// journal): making it, locking it, its layout, recovering its tree at
// mount, checking and repairing it (the engine of `mmapfs fsck`), the
// figures statfs reports of it, and closing it.
//
// A memory store (OpenMemory) is a private directory under a tmpfs, with
// the store files in it; it is removed when the store is closed. A
// persistent store (Open, `--store DIR`) is a directory that holds:
//
//	lock                 the pid of the process that holds the store, and its locks (lock.go)
//	meta/                the metadata: snapshot and journals (package journal)
//	blobs/               the file data, one store file per blob (package mapstore)
//	lost+found/          may be there (a filesystem's root has one); left alone
//
// A later kind of store (another layout, a store on a network filesystem)
// is another way of filling a Store: the filesystem sees only its accessors.
package store

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"

	"go.uber.org/zap"
	"golang.org/x/sys/unix"

	"mmapfs/journal"
	"mmapfs/mapstore"
)

// Paths inside a persistent store directory.
const (
	LockName      = "lock"
	MetaDir       = "meta"
	BlobsDir      = "blobs"
	lostFoundName = "lost+found"
)

// ErrInUse is returned when another process holds the store: it serves or
// checks it, or it is exiting and did not let go of it in time.
var ErrInUse = errors.New("in use")

// BlockSize is the unit of the figures Space reports.
const BlockSize = 4096

// Options configure OpenMemory and Open.
type Options struct {
	// SizeLimit is the bytes of file data at most; 0 = no limit but
	// the filesystem's.
	SizeLimit int64
	// OwnFS, for a memory store with a size limit: the private
	// directory gets a tmpfs of its own, of that size, which keeps the
	// limit instead of the store (for passthrough, whose writes the
	// store does not see). It needs CAP_SYS_ADMIN; without it the store
	// keeps the limit itself and OwnFSErr says why.
	OwnFS bool
	// Huge and NoSwap, for a memory store's tmpfs of its own (OwnFS
	// and a size limit): tmpfs's huge= ("never", "always",
	// "within_size" or "advise"; "" = the kernel's default) and
	// noswap. A store that cannot have that tmpfs with them (a
	// persistent store, a memory store without OwnFS or a limit, a
	// tmpfs the kernel will not mount with them) fails to open.
	Huge   string
	NoSwap bool
	// CompactBytes, for a persistent store: the journal size past which
	// it is compacted; 0 = the journal's default.
	CompactBytes int64
	// The store files' caches: bytes per mapping window, mapped windows
	// and open store files at most; 0 = mapstore's defaults.
	WindowSize int64
	MaxWindows int
	MaxFDs     int
	// Logger gets the store's lines; mapstore and journal log under it
	// as "store" and "journal". nil = zap.NewNop().
	Logger *zap.Logger
}

// Report says what opening a persistent store found on the way.
type Report struct {
	journal.Report
	Fresh    bool     // a new, empty store
	Repaired []string // problems opening it repaired
}

// Tree is the tree a persistent store holds, as recovery at Open left it:
// checked, repaired and committed, ready to be built into nodes.
type Tree struct {
	// State is the tree; with no inodes, the store is new and the
	// filesystem makes (and commits) its root.
	State *journal.State
	// Nlink is the link count the tree gives every inode.
	Nlink map[uint64]uint32
	// Files holds the blob ids that have a store file: the others were
	// never written, or their data is gone.
	Files map[uint64]bool
}

// Store is an open store directory. Its accessors are safe for concurrent
// use; TakeTree, Exiting, Close and Abandon are not.
type Store struct {
	dir   string          // the store directory
	files string          // the directory of the store files
	blobs *mapstore.Store // the file data
	log   *zap.Logger

	// Persistent stores only.
	lock   *os.File      // LockName, flocked
	meta   *journal.Meta // the metadata
	report *Report       // what Open found
	tree   *Tree         // until TakeTree

	// spaceDir is the directory whose filesystem's figures Space
	// reports when there is no size limit; "" = none to report.
	spaceDir string

	// Memory stores only.
	mem *memDir

	// figures holds the figures of the last walk over the store files
	// (figures.go).
	figures figureCache
}

// Dir returns the store directory: the private directory of a memory
// store, or the directory given to Open.
func (s *Store) Dir() string { return s.dir }

// FilesDir returns the directory of the store files.
func (s *Store) FilesDir() string { return s.files }

// Blobs returns the store files: the file data.
func (s *Store) Blobs() *mapstore.Store { return s.blobs }

// Meta returns the metadata journal of a persistent store; nil for a
// memory store.
func (s *Store) Meta() *journal.Meta { return s.meta }

// Persistent reports whether the store outlives the process.
func (s *Store) Persistent() bool { return s.meta != nil }

// Report returns what Open found in a persistent store; nil for a memory
// store.
func (s *Store) Report() *Report { return s.report }

// TakeTree returns the tree recovered at Open, once: the store keeps
// nothing of it afterwards. It is nil for a memory store, and the second
// time.
func (s *Store) TakeTree() *Tree {
	t := s.tree
	s.tree = nil
	return t
}

// Space is what statfs reports of the room for file data, in blocks of
// BlockSize bytes.
type Space struct {
	Blocks, Bfree, Bavail uint64
}

// Space returns the figures statfs reports: the size limit and what is
// left of it; without a limit the figures of the filesystem the store
// files are on, if the store has one to itself (a persistent store, a
// memory store's own tmpfs); else ok is false: there is no limit to tell.
func (s *Store) Space() (sp Space, ok bool) {
	st := s.blobs.Stats()
	if st.Limit > 0 {
		sp.Blocks = uint64(st.Limit) / BlockSize
		used := min(uint64(st.Used)/BlockSize, sp.Blocks)
		sp.Bfree = sp.Blocks - used
		sp.Bavail = sp.Bfree
		return sp, true
	}
	if s.spaceDir == "" {
		return sp, false
	}
	var hs unix.Statfs_t
	if unix.Statfs(s.spaceDir, &hs) != nil {
		return sp, true
	}
	conv := func(n uint64) uint64 { return n * uint64(hs.Bsize) / BlockSize }
	return Space{Blocks: conv(hs.Blocks), Bfree: conv(hs.Bfree), Bavail: conv(hs.Bavail)}, true
}

// Close closes the store files and the metadata, and lets go of the lock;
// a memory store's directory is removed (nothing of it persists). The
// filesystem has written its last snapshot already. It does nothing the
// second time.
func (s *Store) Close() error {
	s.figures.stop()
	if s.mem != nil {
		return s.closeMemory()
	}
	var err error
	if s.blobs != nil {
		err = s.blobs.Close()
		s.blobs = nil
	}
	if s.meta != nil {
		if cerr := s.meta.Close(); err == nil {
			err = cerr
		}
	}
	s.unlock()
	return err
}

// unlock lets go of a persistent store's lock.
func (s *Store) unlock() {
	if s.lock != nil {
		releaseLock(s.lock)
		s.lock = nil
	}
}

// Serving records in a persistent store's lock file the mount on
// mountpoint that serves it: while that mount is there, a process that
// opens the store is refused at once; once it is gone, it waits for this
// server to stop (Exiting, Close). It does nothing for a memory store,
// and says at DEBUG why it recorded nothing when mountpoint is not a
// FUSE mount this process sees (a /dev/fd/N mount point): a process that
// opens the store is then refused until Exiting.
func (s *Store) Serving(mountpoint string) {
	if s.lock == nil {
		return
	}
	m, err := ownMount(mountpoint)
	if err == nil {
		err = writeLockInfo(s.lock, lockInfo{pid: strconv.Itoa(os.Getpid()), mount: m})
	}
	if err != nil {
		s.log.Debug("the lock file does not name the mount", zap.String("mountpoint", mountpoint), zap.Error(err))
	}
}

// Exiting tells a persistent store that its server has stopped serving it
// (its mount is gone) and is only finishing: writing the last snapshot
// and closing the store. A process that opens the store meanwhile waits
// for Close instead of being refused. It does nothing for a memory store,
// or once the store is closed.
func (s *Store) Exiting() {
	if s.lock != nil {
		_ = unmarkInUse(s.lock)
	}
}

// Abandon, for a server that exits with requests still running, removes a
// memory store's directory without closing the store files under them. A
// persistent store is left as it is: the next mount replays its journal.
func (s *Store) Abandon() {
	s.figures.stop()
	if s.mem != nil {
		s.removeMemory()
	}
}

// openBlobs opens the store files in dir.
func openBlobs(dir string, limit int64, opts Options, log *zap.Logger) (*mapstore.Store, error) {
	return mapstore.Open(mapstore.Options{
		Dir:        dir,
		SizeLimit:  limit,
		WindowSize: opts.WindowSize,
		MaxWindows: opts.MaxWindows,
		MaxFDs:     opts.MaxFDs,
		Logger:     log.Named("store"),
	})
}

// logger returns opts.Logger, or one that drops everything.
func logger(opts Options) *zap.Logger {
	if opts.Logger == nil {
		return zap.NewNop()
	}
	return opts.Logger
}

// blobsPath returns the directory of the store files of persistent store
// dir.
func blobsPath(dir string) string { return filepath.Join(dir, BlobsDir) }

// errnoText is the text of an errno as strerror has it, without Go's
// wrapping: "no such file or directory".
func errnoText(err error) string {
	var en unix.Errno
	if errors.As(err, &en) {
		return en.Error()
	}
	return err.Error()
}

// FormatBytes writes n the way the messages and the help do: "64 MiB",
// "1.5 GiB".
func FormatBytes(n int64) string {
	units := []string{"B", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB"}
	u := 0
	for u+1 < len(units) && n >= int64(1)<<(10*(u+1)) {
		u++
	}
	if u == 0 {
		return fmt.Sprintf("%d B", n)
	}
	div := int64(1) << (10 * u)
	if n%div == 0 {
		return fmt.Sprintf("%d %s", n/div, units[u])
	}
	return fmt.Sprintf("%.1f %s", float64(n)/float64(div), units[u])
}

// Used returns the bytes of file data the store holds.
func (s *Store) Used() int64 {
	if s.blobs == nil {
		return 0 // closed
	}
	return s.blobs.Stats().Used
}
