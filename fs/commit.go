package fs

import (
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"go.uber.org/zap"

	"mmapfs/journal"
)

// Persistence (--store). Every change of the tree is committed to the
// store's metadata journal before the request is answered: the journal's
// write reaches the page cache of the store's filesystem, which outlives
// this process. File data lives in MAP_SHARED pages of the store files,
// which outlive it too.
//
// Records are the state a change leaves behind (see package journal):
//   - an inode's attributes are written, under node.mu, whenever they
//     change, so their order in the journal is the order of the changes;
//   - directory entries are written by the request that changes them; the
//     kernel holds the directories' locks for the whole request;
//   - a change of several entries (rename) is one frame: all or nothing.
// Link counts are not recorded: the tree gives them.
//
// atime changes from reads are saved with the inode's next change, or by
// the snapshot written at unmount; a crash may lose them.
//
// Compaction writes the whole tree to a snapshot and starts a new journal.
// The tree must not change while it is walked: every request that changes
// it holds persist.quiesce for reading (wireFS takes it), the walk holds it
// for writing. A request holds it from before go-fuse's bridge looks at the
// tree until after the bridge has updated it.

// persist is the persistence state of a filesystem with a store.
type persist struct {
	meta    *journal.Meta
	quiesce sync.RWMutex
	batches sync.Pool
	failed  atomic.Int64 // unix nanoseconds of the last failure logged
	queued  atomic.Bool  // a compaction has been started

	// Set at mount, then used once by the root's OnAdd.
	state *journal.State
	nlink map[uint64]uint32
	files map[uint64]bool // blob ids that have a store file

	// atimeDirty is set when an atime changed without a record: the
	// snapshot at unmount is then due even if the journal is empty.
	atimeDirty atomic.Bool
}

// batch returns an empty batch.
func (p *persist) batch() *journal.Batch {
	b, _ := p.batches.Get().(*journal.Batch)
	if b == nil {
		b = new(journal.Batch)
	}
	b.Reset()
	return b
}

// commit commits b and recycles it. A failure is logged (at most once a
// second) and becomes the errno of the request: the change is made in
// memory but would not survive the server.
func (fsys *filesystem) commit(b *journal.Batch) syscall.Errno {
	p := fsys.persist
	err := p.meta.Commit(b)
	if b.Bytes() < 1<<16 {
		p.batches.Put(b)
	}
	if err == nil {
		if p.meta.ShouldCompact() && p.queued.CompareAndSwap(false, true) {
			go func() {
				defer p.queued.Store(false)
				fsys.compact()
			}()
		}
		return 0
	}
	now := time.Now().UnixNano()
	if last := p.failed.Load(); now-last > int64(time.Second) && p.failed.CompareAndSwap(last, now) {
		fsys.log.Error("writing the metadata journal failed: the change is not saved in the store", zap.Error(err))
	}
	if errno := toErrno(zap.NewNop(), "journal", err); errno == syscall.ENOSPC {
		return errno
	}
	return syscall.EIO
}

// inodeLocked fills in with n's attributes.
//
// Preconditions: n.mu is held.
func (n *node) inodeLocked(in *journal.Inode) {
	*in = journal.Inode{
		Ino:   n.ino,
		Mode:  n.mode,
		UID:   n.uid,
		GID:   n.gid,
		Rdev:  n.rdev,
		Atime: n.atime.UnixNano(),
		Mtime: n.mtime.UnixNano(),
		Ctime: n.ctime.UnixNano(),
		Btime: n.btime.UnixNano(),
		Nlink: n.nlink,
	}
	switch v := n.Operations().(type) {
	case *File:
		in.Size = v.blob.Size()
		in.Blob = v.blob.ID()
		in.Alloc = v.blob.Allocated()
	case *Symlink:
		in.Target = v.target
	}
}

// addInodeLocked adds n's attributes to b, and its xattrs if all.
//
// Preconditions: n.mu is held.
func (n *node) addInodeLocked(b *journal.Batch, all bool) {
	var in journal.Inode
	n.inodeLocked(&in)
	b.Inode(&in)
	if all {
		for name, v := range n.xattr {
			b.Xattr(n.ino, name, v)
		}
	}
}

// saveLocked commits n's attributes, if the filesystem has a store.
//
// Preconditions: n.mu is held.
func (n *node) saveLocked() syscall.Errno {
	if n.fsys.persist == nil || n.reclaimed {
		return 0
	}
	b := n.fsys.persist.batch()
	n.addInodeLocked(b, false)
	return n.fsys.commit(b)
}

// saveXattrLocked commits an xattr set to value (which may be empty), or
// removed if !set, with the inode's ctime.
//
// Preconditions: n.mu is held.
func (n *node) saveXattrLocked(name string, value []byte, set bool) syscall.Errno {
	if n.fsys.persist == nil || n.reclaimed {
		return 0
	}
	b := n.fsys.persist.batch()
	if set {
		b.Xattr(n.ino, name, value)
	} else {
		b.XattrDel(n.ino, name)
	}
	n.addInodeLocked(b, false)
	return n.fsys.commit(b)
}

// saveEntries commits changes of directory entries, in one frame: for
// each i, names[i] in dirs[i] is now children[i] (nil: removed). With
// full, the first child's inode and xattrs are written too (a new inode,
// or one that gets a name again).
func (fsys *filesystem) saveEntries(full *node, dirs []*Dir, names []string, children []*node) syscall.Errno {
	if fsys.persist == nil {
		return 0
	}
	b := fsys.persist.batch()
	if full != nil {
		full.mu.Lock()
		full.addInodeLocked(b, true)
		full.mu.Unlock()
	}
	for i, d := range dirs {
		var ino uint64
		if children[i] != nil {
			ino = children[i].ino
		}
		b.Entry(d.ino, names[i], ino)
	}
	return fsys.commit(b)
}

// saveFree commits the end of an inode.
func (fsys *filesystem) saveFree(ino uint64) {
	if fsys.persist == nil {
		return
	}
	b := fsys.persist.batch()
	b.Free(ino)
	fsys.commit(b)
}

// syncMeta makes every committed change of metadata durable.
func (fsys *filesystem) syncMeta() syscall.Errno {
	if fsys.persist == nil {
		return 0
	}
	return toErrno(fsys.log, "fsync", fsys.persist.meta.Sync())
}

// quiesced runs fn holding the quiesce lock for reading, if there is one.
func (fsys *filesystem) changing() func() {
	if fsys.persist == nil {
		return func() {}
	}
	fsys.persist.quiesce.RLock()
	return fsys.persist.quiesce.RUnlock
}
