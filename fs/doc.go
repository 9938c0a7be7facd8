// Package fs is the mmapfs node tree: names, attributes, extended
// attributes and open files, served through go-fuse. File data lives in
// mapstore blobs; everything else lives in the nodes of this package.
//
// The namespace is go-fuse's tree of persistent inodes: every directory
// entry is a child Inode, added by the bridge after a successful Create,
// Mkdir, Mknod, Symlink or Link, moved after Rename and removed after
// Unlink or Rmdir. The kernel serializes operations that change a
// directory (it holds the directory's i_rwsem, and s_vfs_rename_mutex for a
// rename across directories), so a check made by one of those methods
// still holds when the bridge applies the change.
//
// # Locking
//
//	node.mu              (attributes of one node; a leaf lock)
//	  mapstore.Blob.mu   (a File may call its blob with mu held)
//	    mapstore.Store.mu
//
// No method holds the mu of two nodes at once: an operation that changes
// several nodes (rename, link, unlink) updates them one after another, and
// the kernel's directory locks make the sequence atomic to other callers.
// go-fuse's own Inode locks are taken only inside go-fuse calls (GetChild,
// Children), never while a node.mu is held.
package fs
