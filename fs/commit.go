package fs

import (
	"cmp"
	"errors"
	"slices"
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
// Records are the state a change leaves behind (see package journal). Each
// request that changes the tree writes one frame: the new attributes of
// every node it touched, the entries it changed, the inodes it ended, all
// or nothing (change, below). The nodes stay locked from before their new
// state is computed until it is applied, so the order of frames in the
// journal is the order of the changes of each node. Link counts are
// recorded but not trusted at load: the tree gives them.
//
// atime changes from reads are saved with the inode's next change, or by
// the snapshot written at unmount; a crash may lose them.
//
// Compaction writes the whole tree to a snapshot and starts a new journal.
// The tree must not change while it is walked: every request that changes
// it holds persist.quiesce for reading (changes.go), the walk holds it
// for writing. A request holds it from before go-fuse's bridge looks at the
// tree until after the bridge has updated it.

// persist is the persistence state of a filesystem with a store.
type persist struct {
	meta    *journal.Meta
	quiesce sync.RWMutex
	failed  atomic.Int64 // unix nanoseconds of the last failure logged
	queued  atomic.Bool  // a compaction has been started

	// Set at mount, then used once by the root's OnAdd.
	state *journal.State
	nlink map[uint64]uint32
	files map[uint64]bool // blob ids that have a store file

	// atimeDirty is set when an atime changed without a record: the
	// snapshot at unmount is then due even if the journal is empty.
	atimeDirty atomic.Bool

	// The compactions done since the mount (compact.go).
	compactions atomic.Uint64
	compactEnd  atomic.Int64 // unix nanoseconds when the last one ended; 0: none
	compactTook atomic.Int64 // nanoseconds it took
}

// commit commits b, which the journal then takes back (b is not to be
// used after). A failure becomes the errno of the request, which then
// applies nothing (see change).
func (fsys *filesystem) commit(b *journal.Batch) syscall.Errno {
	p := fsys.persist
	err := p.meta.Commit(b)
	if err == nil {
		if p.meta.ShouldCompact() && p.queued.CompareAndSwap(false, true) {
			go func() {
				defer p.queued.Store(false)
				fsys.compact()
			}()
		}
		return 0
	}
	return fsys.commitFailed(err)
}

// commitFailed logs a failed commit or reservation (at most once a
// second) and returns the errno of the request: ENOSPC if the journal had
// no room, else EIO.
func (fsys *filesystem) commitFailed(err error) syscall.Errno {
	p := fsys.persist
	now := time.Now().UnixNano()
	if last := p.failed.Load(); now-last > int64(time.Second) && p.failed.CompareAndSwap(last, now) {
		fsys.log.Error("the metadata journal cannot take a change: the request fails and changes nothing", zap.Error(err))
	}
	if errors.Is(err, journal.ErrNoSpace) {
		return syscall.ENOSPC
	}
	return syscall.EIO
}

// attrs are a node's attributes, as a value: a change computes the new
// attributes of each node it touches, commits them, and only then sets
// them (setAttrsLocked).
type attrs struct {
	mode, uid, gid, nlink, rdev uint32
	atime, mtime, ctime, btime  time.Time
}

// attrsLocked returns n's attributes.
//
// Preconditions: n.mu is held.
func (n *node) attrsLocked() attrs {
	t := &n.times
	return attrs{n.mode, n.uid, n.gid, n.nlink, n.rdev, t.get(tAtime), t.get(tMtime), t.get(tCtime), t.get(tBtime)}
}

// setAttrsLocked sets n's attributes to a.
//
// Preconditions: n.mu is held.
func (n *node) setAttrsLocked(a *attrs) {
	n.mode, n.uid, n.gid, n.nlink, n.rdev = a.mode, a.uid, a.gid, a.nlink, a.rdev
	n.times.set(tAtime, a.atime)
	n.times.set(tMtime, a.mtime)
	n.times.set(tCtime, a.ctime)
	n.times.set(tBtime, a.btime)
}

// inodeLocked fills in with n's attributes.
//
// Preconditions: n.mu is held.
func (n *node) inodeLocked(in *journal.Inode) {
	a := n.attrsLocked()
	n.recordLocked(in, &a)
}

// recordLocked fills in with the attributes a of n, and n's size and data
// as its blob has them.
//
// Preconditions: n.mu is held.
func (n *node) recordLocked(in *journal.Inode, a *attrs) {
	*in = journal.Inode{
		Ino:   n.ino,
		Mode:  a.mode,
		UID:   a.uid,
		GID:   a.gid,
		Rdev:  a.rdev,
		Atime: a.atime.UnixNano(),
		Mtime: a.mtime.UnixNano(),
		Ctime: a.ctime.UnixNano(),
		Btime: a.btime.UnixNano(),
		Nlink: a.nlink,
	}
	switch v := n.Operations().(type) {
	case *File:
		in.Size = v.blob.Size()
		in.Blob = v.blob.ID()
		in.Alloc = v.blob.Allocated()
		in.Reserved = v.blob.Reserved(journal.MaxReserved)
		if v.writers > 0 {
			// The kernel may write the store file (store/loans.go).
			in.Lent = true
			if v.seen != nil {
				in.FileMtime = v.seen.m.Nano()
				in.FileCtime = v.seen.c.Nano()
			}
		}
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

// A change is what one request changes in the tree: the nodes it touches,
// locked for the whole request in ascending inode order, and the records
// of their new state, committed as one journal frame. A request computes
// the new state apart, commits it, and applies it only once the commit
// succeeded: a request that fails changes nothing.
//
//	c := fsys.begin(d, n) // locks d and n
//	defer c.end()         // unlocks them
//	a := n.attrsLocked()  // the new attributes, computed apart
//	a.ctime = now
//	c.inode(n, &a) // and recorded
//	if errno := c.commit(); errno != 0 {
//		return errno // nothing was applied
//	}
//	n.setAttrsLocked(&a) // applied
type change struct {
	fsys  *filesystem
	b     *journal.Batch // nil without a store
	nodes [4]*node       // locked, in ascending inode order
	n     int
}

// begin starts a change of the given nodes (nil ones and repeats are
// skipped) and locks them.
func (fsys *filesystem) begin(nodes ...*node) change {
	c := change{fsys: fsys}
	if fsys.persist != nil {
		c.b = fsys.persist.meta.Batch()
	}
outer:
	for _, n := range nodes {
		if n == nil {
			continue
		}
		for _, m := range c.nodes[:c.n] {
			if m == n {
				continue outer
			}
		}
		c.nodes[c.n] = n
		c.n++
	}
	held := c.nodes[:c.n]
	slices.SortFunc(held, func(a, b *node) int { return cmp.Compare(a.ino, b.ino) })
	for _, n := range held {
		n.mu.Lock()
	}
	return c
}

// lock locks n as well, for a change that locks nothing else (begin with
// no nodes): one that reserves journal room before it knows it will
// change n.
func (c *change) lock(n *node) {
	if c.n != 0 {
		panic("fs: change.lock after begin locked nodes")
	}
	c.nodes[0] = n
	c.n = 1
	n.mu.Lock()
}

// reserve reserves journal room for the change's records, before a change
// of a store file that cannot be taken back: the commit after it then
// cannot fail for want of space (see journal.Meta.Reserve).
func (c *change) reserve() syscall.Errno {
	if c.b == nil {
		return 0
	}
	if err := c.fsys.persist.meta.Reserve(c.b); err != nil {
		return c.fsys.commitFailed(err)
	}
	return 0
}

// end unlocks the change's nodes, and gives back the journal room of a
// change that was not committed.
func (c *change) end() {
	if c.b != nil {
		c.fsys.persist.meta.Unreserve(c.b)
		c.b = nil
	}
	for i := c.n - 1; i >= 0; i-- {
		c.nodes[i].mu.Unlock()
	}
	c.n = 0
}

// saving reports whether n's records are to be written: with a store, and
// while n is alive.
func (c *change) saving(n *node) bool { return c.b != nil && !n.reclaimed }

// inode records n with the attributes a.
//
// Preconditions: n is locked by c, or not yet visible to anyone.
func (c *change) inode(n *node, a *attrs) {
	if !c.saving(n) {
		return
	}
	var in journal.Inode
	n.recordLocked(&in, a)
	c.b.Inode(&in)
}

// newInode records a node that is new, or gets a name again: its
// attributes and all its xattrs.
//
// Preconditions: n is locked by c, or not yet visible to anyone.
func (c *change) newInode(n *node, a *attrs) {
	if !c.saving(n) {
		return
	}
	c.inode(n, a)
	for name, v := range n.xattr {
		c.b.Xattr(n.ino, name, v)
	}
}

// entry records that name in d now names child (nil: no longer names
// anything).
func (c *change) entry(d *Dir, name string, child *node) {
	if c.b == nil {
		return
	}
	var ino uint64
	if child != nil {
		ino = child.ino
	}
	c.b.Entry(d.ino, name, ino)
}

// xattr records the xattr name of n set to value, or removed if !set.
func (c *change) xattr(n *node, name string, value []byte, set bool) {
	if !c.saving(n) {
		return
	}
	if set {
		c.b.Xattr(n.ino, name, value)
	} else {
		c.b.XattrDel(n.ino, name)
	}
}

// free records the end of n: no link and no open file is left.
func (c *change) free(n *node) {
	if c.saving(n) {
		c.b.Free(n.ino)
	}
}

// commit commits the change's records as one frame. On failure (ENOSPC or
// EIO) the request must apply nothing.
func (c *change) commit() syscall.Errno {
	if c.b == nil {
		return 0
	}
	b := c.b
	c.b = nil
	return c.fsys.commit(b)
}

// saveLocked commits n's attributes, if the filesystem has a store: for
// what the server takes in from elsewhere (a lent store file's times).
//
// Preconditions: n.mu is held.
func (n *node) saveLocked() syscall.Errno {
	if n.fsys.persist == nil || n.reclaimed {
		return 0
	}
	b := n.fsys.persist.meta.Batch()
	n.addInodeLocked(b, false)
	return n.fsys.commit(b)
}

// syncMeta makes every committed change of metadata durable.
func (fsys *filesystem) syncMeta() syscall.Errno {
	if fsys.persist == nil {
		return 0
	}
	return toErrno(fsys.log, "fsync", fsys.persist.meta.Sync())
}

// changing takes the quiesce lock for reading, if there is one, and returns
// the function that lets go of it.
func (fsys *filesystem) changing() func() {
	if fsys.persist == nil {
		return func() {}
	}
	fsys.persist.quiesce.RLock()
	return fsys.persist.quiesce.RUnlock
}
