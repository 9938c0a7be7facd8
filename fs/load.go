package fs

import (
	"context"
	"errors"
	"runtime/debug"
	"syscall"
	"time"

	gofs "github.com/hanwen/go-fuse/v2/fs"
	"github.com/hanwen/go-fuse/v2/fuse"
	"go.uber.org/zap"

	"mmapfs/journal"
	"mmapfs/mapstore"
)

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
	var again []*node // records to write again (nodeFromState)
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
				ops, recount := fsys.nodeFromState(in, nlink[ino])
				if ops == nil {
					continue
				}
				if recount {
					again = append(again, nodeOf(ops))
				}
				ch = parent.NewPersistentInode(ctx, ops, gofs.StableAttr{Mode: in.Mode & syscall.S_IFMT, Ino: ino})
				fsys.nodes.add(nodeOf(ops))
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
	if len(again) > 0 {
		// The records of files whose store file holds less than they
		// said (logged above), so that the next mount says it no more.
		b := fsys.persist.meta.Batch()
		for _, n := range again {
			n.mu.Lock()
			n.addInodeLocked(b, false)
			n.mu.Unlock()
		}
		if err := fsys.persist.meta.Commit(b); err != nil {
			fsys.log.Warn("recording what the store holds of damaged files", zap.Error(err))
		}
	}
}

// nodeFromState makes the node of a loaded inode. recount says that its
// record is to be written again: its store file holds less than it says.
func (fsys *filesystem) nodeFromState(in *journal.Inode, nlink uint32) (ops gofs.InodeEmbedder, recount bool) {
	var n *node
	switch in.Mode & syscall.S_IFMT {
	case syscall.S_IFDIR:
		d := &Dir{}
		ops, n = d, &d.node
	case syscall.S_IFREG:
		var blob *mapstore.Blob
		var err error
		if fsys.persist.files[in.Blob] {
			blob, err = fsys.store.OpenBlob(in.Blob, in.Size, in.Reserved)
		} else {
			// Never written, or its data is gone: no store file to
			// look at.
			blob, err = fsys.store.AddBlob(in.Blob, in.Size)
		}
		if err != nil {
			fsys.log.Error("the data of a file cannot be read: it is empty now (mmapfs fsck tells more)",
				zap.Uint64("ino", in.Ino), zap.Uint64("blob", in.Blob), zap.Error(err))
			if blob, err = fsys.store.Create(); err != nil {
				return nil, false
			}
			recount = true
		} else if have := blob.Allocated(); have < in.Alloc {
			// Data pages and reserved ones are kept across mounts:
			// what is missing was lost (or a punch was cut short). Said
			// once: the file's record then says what the store holds.
			log := fsys.log.Warn
			msg := "a file's store file holds less than was recorded: data was lost, or a hole punch did not finish (mmapfs fsck tells more)"
			if have == 0 {
				log = fsys.log.Error
				msg = "a file's data is missing from the store: it reads as zeros"
			}
			log(msg, zap.Uint64("ino", in.Ino), zap.Uint64("blob", in.Blob),
				zap.Int64("recorded", in.Alloc), zap.Int64("held", have))
			recount = true
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
	return ops, recount
}

// setFromState sets n's fields from a loaded inode.
func (n *node) setFromState(fsys *filesystem, in *journal.Inode, nlink uint32) {
	n.fsys = fsys
	n.ino = in.Ino
	n.typ = in.Mode & syscall.S_IFMT
	n.mode = in.Mode
	n.uid, n.gid, n.rdev = in.UID, in.GID, in.Rdev
	n.nlink = nlink
	n.times.set(tAtime, time.Unix(0, in.Atime))
	n.times.set(tMtime, time.Unix(0, in.Mtime))
	n.times.set(tCtime, time.Unix(0, in.Ctime))
	n.times.set(tBtime, time.Unix(0, in.Btime))
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

// loadState prepares the filesystem for a persistent store: it takes the
// tree the store recovered, makes and commits the root of a new store, or
// sets up the root of the loaded one; OnAdd builds the rest.
func (fsys *filesystem) loadState(cfg Config, meta *journal.Meta) error {
	tree := cfg.Store.TakeTree()
	if tree == nil {
		return errors.New("fs: the store's tree was taken by another mount")
	}
	st := tree.State
	p := &persist{meta: meta}
	fsys.persist = p
	root := fsys.root
	if len(st.Inodes) == 0 {
		// A new store.
		mode := cfg.RootMode & 07777
		if cfg.RootMode == 0 {
			mode = 01777
		}
		root.initNode(fsys, journal.RootIno, syscall.S_IFDIR|mode, &fuse.Caller{Owner: fuse.Owner{Uid: cfg.RootUID, Gid: cfg.RootGID}}, nil)
		root.nlink = 2
		b := meta.Batch()
		root.mu.Lock()
		root.addInodeLocked(b, true)
		root.mu.Unlock()
		if err := meta.Commit(b); err != nil {
			return err
		}
		return meta.Sync()
	}
	fsys.nextIno.Store(st.NextIno - 1)
	root.setFromState(fsys, st.Inodes[journal.RootIno], tree.Nlink[journal.RootIno])
	p.state, p.nlink, p.files = st, tree.Nlink, tree.Files
	return nil
}
