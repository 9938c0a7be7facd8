package fs

import (
	"context"
	"sync"
	"syscall"

	gofs "github.com/hanwen/go-fuse/v2/fs"
	"github.com/hanwen/go-fuse/v2/fuse"
)

// File handles (name_to_handle_at, open_by_handle_at, NFS export).
//
// The kernel's handle of a file holds its FUSE node ID, which is the
// inode number (gofs.Options.ExternalNodeID): numbers are never handed out
// twice (a persistent store's numbering goes on across mounts), so a handle
// names one file for good. Once the kernel has dropped the inode from its
// cache (or after a remount of a persistent store), it asks the root for
// the number alone (a LOOKUP of "."), and LookupNode finds the node in
// filesystem.nodes; a number no live node has gives ESTALE. A directory
// reached so finds its parent with LookupParent, for the kernel to
// reconnect it to the tree.

// nodeIndex maps inode numbers to live nodes. Its methods are safe for
// concurrent use.
type nodeIndex struct {
	mu    sync.Mutex
	nodes map[uint64]*node // Protected by mu.
}

// add indexes n, once its Inode exists (NewPersistentInode).
func (x *nodeIndex) add(n *node) {
	x.mu.Lock()
	if x.nodes == nil {
		x.nodes = make(map[uint64]*node)
	}
	x.nodes[n.ino] = n
	x.mu.Unlock()
}

// remove drops n: it was reclaimed, or never made it into the tree.
func (x *nodeIndex) remove(n *node) {
	x.mu.Lock()
	if x.nodes[n.ino] == n {
		delete(x.nodes, n.ino)
	}
	x.mu.Unlock()
}

// get returns the node numbered ino, or nil.
func (x *nodeIndex) get(ino uint64) *node {
	x.mu.Lock()
	defer x.mu.Unlock()
	return x.nodes[ino]
}

var _ = (gofs.NodeLookupNoder)((*Dir)(nil))

// LookupNode implements gofs.NodeLookupNoder (on the root): the node of a
// file handle whose inode the kernel no longer has.
func (d *Dir) LookupNode(ctx context.Context, id uint64, out *fuse.EntryOut) (*gofs.Inode, syscall.Errno) {
	n := d.fsys.nodes.get(id)
	if id == d.fsys.root.ino {
		n = &d.fsys.root.node
	}
	if n == nil {
		return nil, syscall.ESTALE
	}
	n.mu.Lock()
	gone := n.reclaimed
	n.mu.Unlock()
	if gone {
		return nil, syscall.ESTALE
	}
	n.entryOut(out)
	return n.EmbeddedInode(), 0
}

var _ = (gofs.NodeLookupParenter)((*Dir)(nil))

// LookupParent implements gofs.NodeLookupParenter: a directory has one
// parent, which go-fuse's tree knows.
func (d *Dir) LookupParent(ctx context.Context, out *fuse.EntryOut) (*gofs.Inode, string, syscall.Errno) {
	name, parent := d.Parent()
	if parent == nil {
		return nil, "", syscall.ESTALE
	}
	p := nodeOf(parent.Operations())
	if p == nil {
		return nil, "", syscall.ESTALE
	}
	p.entryOut(out)
	return parent, name, 0
}

// Lookup implements fuse.RawFileSystem: a LOOKUP of "." (a handle whose
// inode the kernel no longer has) of a number no live node has gives
// ESTALE, also while go-fuse still knows the node ID (the kernel's FORGET
// of a removed file may not have come yet).
func (w *wireFS) Lookup(cancel <-chan struct{}, header *fuse.InHeader, name string, out *fuse.EntryOut) fuse.Status {
	if name == "." && header.NodeId != w.fsys.root.ino && w.fsys.nodes.get(header.NodeId) == nil {
		return fuse.Status(syscall.ESTALE)
	}
	return w.RawFileSystem.Lookup(cancel, header, name, out)
}
