package fs

import (
	"time"

	gofs "github.com/hanwen/go-fuse/v2/fs"
	"go.uber.org/zap"

	"mmapfs/journal"
)

// compact writes a snapshot of the tree and starts a new journal. It does
// nothing if a compaction is running already, or while a request holds
// reserved journal room (journal.Meta.BeginCompact then returns no
// snapshot; the next commit past the threshold tries again).
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
	end := time.Now()
	p.compactTook.Store(int64(end.Sub(start)))
	p.compactEnd.Store(end.UnixNano())
	p.compactions.Add(1)
	fsys.log.Debug("metadata snapshot written",
		zap.Int("inodes", inodes),
		zap.Duration("stall", stall),
		zap.Duration("took", end.Sub(start)))
	return nil
}

// writeSnapshot adds the whole tree to sn and returns the number of
// inodes. The tree must not change meanwhile.
func (fsys *filesystem) writeSnapshot(sn *journal.Snapshot) int {
	sn.Next(fsys.nextIno.Load()+1, fsys.store.NextID())
	seen := make(map[uint64]bool) // inodes with more than one link
	var in journal.Inode
	add := func(n *node) {
		n.mu.Lock()
		defer n.mu.Unlock()
		if n.nlink > 1 && !n.isDir() {
			if seen[n.ino] {
				return
			}
			seen[n.ino] = true
		}
		n.inodeLocked(&in)
		sn.Inode(&in)
		for name, v := range n.xattr {
			sn.Xattr(n.ino, name, v)
		}
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
			sn.Entry(dino, name, n.ino)
			if n.isDir() {
				queue = append(queue, ch)
			}
		}
	}
	return sn.Inodes()
}

// closePersist ends persistence after the server stopped: a last
// snapshot, so that the next mount has no journal to replay and atimes
// are saved, and the journal is closed. The store's Close lets go of its
// lock. A read-only mount changed nothing and writes nothing (a journal
// it found is replayed again by the next mount).
func (fsys *filesystem) closePersist() error {
	if fsys.persist == nil {
		return nil
	}
	var err error
	if !fsys.readOnly.Load() && (fsys.persist.meta.Frames() > 0 || fsys.persist.atimeDirty.Load()) {
		err = fsys.compact()
	}
	if cerr := fsys.persist.meta.Close(); err == nil {
		err = cerr
	}
	return err
}
