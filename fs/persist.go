package fs

import (
	"context"
	"runtime/debug"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	gofs "github.com/hanwen/go-fuse/v2/fs"
	"github.com/hanwen/go-fuse/v2/fuse"
	"go.uber.org/zap"

	"mmapfs/journal"
	"mmapfs/mapstore"
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

// compact writes a snapshot of the tree and starts a new journal. It does
// nothing if a compaction is running already.
func (fsys *filesystem) compact() error {
	p := fsys.persist
	if p == nil || fsys.root == nil {
		return nil
	}
	p.atimeDirty.Store(false)
	start := time.Now()
	p.quiesce.Lock()
	sn, err := p.meta.BeginCompact()
	if sn == nil {
		p.quiesce.Unlock()
		if err != nil {
			fsys.log.Error("compacting the metadata journal failed", zap.Error(err))
		}
		return err
	}
	inodes := fsys.writeSnapshot(sn)
	p.quiesce.Unlock()
	stall := time.Since(start)
	if err := sn.Finish(); err != nil {
		fsys.log.Error("writing a metadata snapshot failed; the journal is kept", zap.Error(err))
		return err
	}
	fsys.log.Debug("metadata snapshot written",
		zap.Int("inodes", inodes),
		zap.Duration("stall", stall),
		zap.Duration("took", time.Since(start)))
	return nil
}

// writeSnapshot adds the whole tree to sn and returns the number of
// inodes. The tree must not change meanwhile.
func (fsys *filesystem) writeSnapshot(sn *journal.Snapshot) int {
	b := new(journal.Batch)
	b.Reset()
	b.Next(fsys.nextIno.Load()+1, fsys.store.NextID())
	inodes, pending := 0, 0
	flush := func() {
		sn.Add(b, pending)
		b.Reset()
		pending = 0
	}
	seen := make(map[uint64]bool) // inodes with more than one link
	add := func(n *node) {
		n.mu.Lock()
		if n.nlink > 1 && !n.isDir() {
			if seen[n.ino] {
				n.mu.Unlock()
				return
			}
			seen[n.ino] = true
		}
		n.addInodeLocked(b, true)
		n.mu.Unlock()
		inodes++
		pending++
	}
	add(&fsys.root.node)
	queue := []*gofs.Inode{fsys.root.EmbeddedInode()}
	for len(queue) > 0 {
		dir := queue[0]
		queue = queue[1:]
		dino := dir.StableAttr().Ino
		for name, ch := range dir.Children() {
			n := nodeOf(ch.Operations())
			if n == nil {
				continue
			}
			add(n)
			b.Entry(dino, name, n.ino)
			if n.isDir() {
				queue = append(queue, ch)
			}
			if b.Bytes() > 256<<10 {
				flush()
			}
		}
	}
	flush()
	return inodes
}

// Close ends persistence after the server stopped: a last snapshot, so
// that the next mount has no journal to replay and atimes are saved, and
// the store's lock is let go.
func (fsys *filesystem) closePersist() error {
	if fsys.persist == nil {
		return nil
	}
	var err error
	if fsys.persist.meta.Frames() > 0 || fsys.persist.atimeDirty.Load() {
		err = fsys.compact()
	}
	if cerr := fsys.persist.meta.Close(); err == nil {
		err = cerr
	}
	return err
}

// buildTree makes the nodes of the loaded state under the root. It runs
// in the root's OnAdd, before the first request.
func (d *Dir) buildTree(ctx context.Context) {
	fsys := d.fsys
	st, nlink := fsys.persist.state, fsys.persist.nlink
	defer func() { fsys.persist.state, fsys.persist.nlink, fsys.persist.files = nil, nil, nil }()
	// Building a million nodes makes garbage the collector would chase
	// again and again; nothing here is garbage for long.
	defer debug.SetGCPercent(debug.SetGCPercent(400))
	made := make(map[uint64]*gofs.Inode, len(st.Inodes))
	made[journal.RootIno] = d.EmbeddedInode()
	var count int64 = 1
	queue := []uint64{journal.RootIno}
	for len(queue) > 0 {
		dino := queue[0]
		queue = queue[1:]
		parent := made[dino]
		pd := parent.Operations().(*Dir)
		for name, ino := range st.Entries[dino] {
			ch := made[ino]
			if ch == nil {
				in := st.Inodes[ino]
				ops := fsys.nodeFromState(in, nlink[ino])
				if ops == nil {
					continue
				}
				ch = parent.NewPersistentInode(ctx, ops, gofs.StableAttr{Mode: in.Mode & syscall.S_IFMT, Ino: ino})
				made[ino] = ch
				if in.IsDir() {
					queue = append(queue, ino)
					count++
				} else {
					count += int64(nlink[ino])
				}
			}
			parent.AddChild(name, ch, false)
			pd.nent++
		}
		delete(st.Entries, dino)
	}
	fsys.inodes.Store(count)
}

// nodeFromState makes the node of a loaded inode.
func (fsys *filesystem) nodeFromState(in *journal.Inode, nlink uint32) gofs.InodeEmbedder {
	var ops gofs.InodeEmbedder
	var n *node
	switch in.Mode & syscall.S_IFMT {
	case syscall.S_IFDIR:
		d := &Dir{}
		ops, n = d, &d.node
	case syscall.S_IFREG:
		var blob *mapstore.Blob
		var err error
		if fsys.persist.files[in.Blob] {
			blob, err = fsys.store.OpenBlob(in.Blob, in.Size)
		} else {
			// Never written, or its data is gone: no store file to
			// look at.
			blob, err = fsys.store.AddBlob(in.Blob, in.Size)
		}
		if err != nil {
			fsys.log.Error("the data of a file cannot be read: it is empty now (mmapfs fsck tells more)",
				zap.Uint64("ino", in.Ino), zap.Uint64("blob", in.Blob), zap.Error(err))
			if blob, err = fsys.store.Create(); err != nil {
				return nil
			}
		} else if have := blob.Allocated(); have < in.Alloc {
			// Pages reserved with fallocate and never written are not
			// kept across mounts; anything else missing was lost.
			log := fsys.log.Warn
			msg := "a file's store file holds less than was recorded: reserved pages were dropped, or data was lost"
			if have == 0 {
				log = fsys.log.Error
				msg = "a file's data is missing from the store: it reads as zeros"
			}
			log(msg, zap.Uint64("ino", in.Ino), zap.Uint64("blob", in.Blob),
				zap.Int64("recorded", in.Alloc), zap.Int64("held", have))
		}
		f := &File{blob: blob}
		ops, n = f, &f.node
	case syscall.S_IFLNK:
		s := &Symlink{target: in.Target}
		ops, n = s, &s.node
	default:
		s := &Special{}
		ops, n = s, &s.node
	}
	n.setFromState(fsys, in, nlink)
	return ops
}

// setFromState sets n's fields from a loaded inode.
func (n *node) setFromState(fsys *filesystem, in *journal.Inode, nlink uint32) {
	n.fsys = fsys
	n.ino = in.Ino
	n.typ = in.Mode & syscall.S_IFMT
	n.mode = in.Mode
	n.uid, n.gid, n.rdev = in.UID, in.GID, in.Rdev
	n.nlink = nlink
	n.atime = time.Unix(0, in.Atime)
	n.mtime = time.Unix(0, in.Mtime)
	n.ctime = time.Unix(0, in.Ctime)
	n.btime = time.Unix(0, in.Btime)
	n.xattr = in.Xattr
}

var _ = (gofs.NodeOnAdder)((*Dir)(nil))

// OnAdd implements gofs.NodeOnAdder: the root of a persistent store builds
// the loaded tree under itself.
func (d *Dir) OnAdd(ctx context.Context) {
	if p := d.fsys.persist; p != nil && p.state != nil && d == d.fsys.root {
		d.buildTree(ctx)
	}
}

// loadState prepares the filesystem for a persistent store: it repairs
// what a crash leaves behind (files unlinked while open, store files no
// inode names), commits the repairs, and sets up the root; OnAdd builds
// the rest.
func (fsys *filesystem) loadState(cfg Config) error {
	st := cfg.State
	p := &persist{meta: cfg.Meta}
	fsys.persist = p
	root := fsys.root
	b := p.batch()
	if len(st.Inodes) == 0 {
		// A new store.
		mode := cfg.RootMode & 07777
		if cfg.RootMode == 0 {
			mode = 01777
		}
		root.initNode(fsys, journal.RootIno, syscall.S_IFDIR|mode, &fuse.Caller{Owner: fuse.Owner{Uid: cfg.RootUID, Gid: cfg.RootGID}}, nil)
		root.nlink = 2
		root.mu.Lock()
		root.addInodeLocked(b, true)
		root.mu.Unlock()
		if err := cfg.Meta.Commit(b); err != nil {
			return err
		}
		return cfg.Meta.Sync()
	}
	problems, nlink := st.Validate()
	st.Fix(problems, b) // the data of freed inodes goes with the strays below
	freed := 0
	for _, pr := range problems {
		if pr.Orphan() {
			freed++
			continue
		}
		fsys.log.Warn("store repaired: "+pr.What, zap.String("repair", pr.Repair))
	}
	if len(problems) > freed {
		problems, nlink = st.Validate() // the root may be new
	}
	if err := cfg.Meta.Commit(b); err != nil {
		return err
	}
	// The data of freed inodes goes; so do store files no inode names
	// (the server stopped between freeing an inode and its data).
	referenced := make(map[uint64]bool, len(st.Inodes))
	for _, in := range st.Inodes {
		if in.IsReg() {
			referenced[in.Blob] = true
		}
	}
	ids, err := fsys.store.Files()
	if err != nil {
		return err
	}
	p.files = make(map[uint64]bool, len(ids))
	stray := 0
	for _, id := range ids {
		p.files[id] = true
		if !referenced[id] {
			if blob, err := fsys.store.OpenBlob(id, 0); err == nil {
				blob.Free()
				stray++
			}
		}
	}
	if freed > 0 || stray > 0 {
		fsys.log.Info("recovered the store: freed files that were unlinked while open, and data no file named",
			zap.Int("inodes", freed), zap.Int("store_files", stray))
	}
	fsys.store.SetNextID(st.NextBlob)
	fsys.nextIno.Store(st.NextIno - 1)
	in := st.Inodes[journal.RootIno]
	root.setFromState(fsys, in, nlink[journal.RootIno])
	p.state, p.nlink = st, nlink
	return nil
}
