package fs

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"syscall"

	"github.com/hanwen/go-fuse/v2/fuse"
	"go.uber.org/zap"

	"mmapfs/journal"
	"mmapfs/mapstore"
	"mmapfs/store"
)

// nameMax is the longest name a directory entry may have, as on tmpfs.
const nameMax = 255

// symlinkMax is the longest symlink target: tmpfs keeps it with its NUL in
// one page.
const symlinkMax = 4095

// filesystem is what all nodes of one mount share.
type filesystem struct {
	store     *mapstore.Store
	log       *zap.Logger
	maxInodes atomic.Uint64 // 0: no limit; changed by a remount (change.go)
	// atime says when reads update atime (the mount's flags); a remount
	// may change it (change.go).
	atime atomic.Pointer[atimeRule]
	// readOnly: the mount is read-only (MS_RDONLY), as mounted or
	// remounted.
	readOnly atomic.Bool

	nextIno atomic.Uint64 // last inode number handed out
	inodes  atomic.Int64  // live inodes, root included

	root    *Dir     // set by NewRoot; immutable
	persist *persist // nil with a memory store; see commit.go
	// storeDir is the store directory, which gives statfs its figures.
	storeDir *store.Store
	// passthrough: opens lend their store file (File.opened). It is set
	// when the mount asks for passthrough, and cleared if the kernel
	// then refuses a store file as a backing file (Mount).
	passthrough atomic.Bool
	// lent holds the open requests being served with passthrough, by
	// cancel channel: *lentFDs (lend.go).
	lent sync.Map
	// whiteouts holds the whiteouts of RENAME_WHITEOUT requests, by
	// cancel channel, from Dir.Rename to wireFS.whiteoutRename.
	whiteouts sync.Map
	// lendWarned is set once a failed lend was logged at WARN.
	lendWarned atomic.Bool
	// nodes indexes the live nodes by number, for file handles
	// (handles.go).
	nodes nodeIndex
	// changeMu serializes the changes of a remount (change.go).
	changeMu sync.Mutex
	// counts are the figures of the requests served (counting.go).
	counts counts
}

// NewRoot builds the root directory of the filesystem of cfg.Store: a new,
// empty one for a memory store; for a persistent one the root of the tree
// it holds (OnAdd builds the rest).
func NewRoot(cfg Config) (*Dir, error) {
	if cfg.Store == nil {
		return nil, errors.New("fs: Config.Store is required")
	}
	log := cfg.Logger
	if log == nil {
		log = zap.NewNop()
	}
	fsys := &filesystem{store: cfg.Store.Blobs(), log: log, storeDir: cfg.Store}
	fsys.maxInodes.Store(cfg.MaxInodes)
	fsys.setMountFlags(cfg.MountFlags)
	fsys.nextIno.Store(journal.RootIno)
	fsys.inodes.Store(1)
	mode := cfg.RootMode & 07777
	if cfg.RootMode == 0 {
		mode = 01777
	}
	root := &Dir{}
	fsys.root = root
	if meta := cfg.Store.Meta(); meta != nil {
		return root, fsys.loadState(cfg, meta)
	}
	root.initNode(fsys, journal.RootIno, syscall.S_IFDIR|mode, &fuse.Caller{Owner: fuse.Owner{Uid: cfg.RootUID, Gid: cfg.RootGID}}, nil)
	root.nlink = 2
	return root, nil
}

// reserveInode takes one unit of the inode limit: ENOSPC past it. As on
// tmpfs, a node takes one, and so does each hard link after its first.
func (fsys *filesystem) reserveInode() syscall.Errno {
	if n, max := fsys.inodes.Add(1), fsys.maxInodes.Load(); max > 0 && uint64(n) > max {
		fsys.inodes.Add(-1)
		return syscall.ENOSPC
	}
	return 0
}

// allocIno reserves an inode for a new node and numbers it.
func (fsys *filesystem) allocIno() (uint64, syscall.Errno) {
	if errno := fsys.reserveInode(); errno != 0 {
		return 0, errno
	}
	return fsys.nextIno.Add(1), 0
}

// freeIno gives back a unit taken with reserveInode or allocIno.
func (fsys *filesystem) freeIno() { fsys.inodes.Add(-1) }

// statfs reports the size and inode limits and what is left of them.
func (fsys *filesystem) statfs(out *fuse.StatfsOut) {
	out.Bsize = store.BlockSize
	out.Frsize = store.BlockSize
	out.NameLen = nameMax
	if sp, ok := fsys.storeDir.Space(); ok {
		out.Blocks, out.Bfree, out.Bavail = sp.Blocks, sp.Bfree, sp.Bavail
	}
	if max := fsys.maxInodes.Load(); max > 0 {
		out.Files = max
		used := uint64(fsys.inodes.Load())
		if used > out.Files {
			used = out.Files
		}
		out.Ffree = out.Files - used
	}
}

// callerOf returns who made the request in ctx.
func callerOf(ctx context.Context) *fuse.Caller {
	if c, ok := fuse.FromContext(ctx); ok {
		return c
	}
	return &fuse.Caller{}
}

func callerUID(ctx context.Context) uint32 { return callerOf(ctx).Uid }

// checkName rejects names a directory cannot hold.
func checkName(name string) syscall.Errno {
	if len(name) > nameMax {
		return syscall.ENAMETOOLONG
	}
	return 0
}
