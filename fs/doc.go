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
//	persist.quiesce          (read-held by every request that changes the tree: changes.go;
//	                          write-held by compaction while it walks the tree)
//	dirHandle.mu             (one open directory stream: its snapshot of the entries and atime)
//	  node.mu                (several at once only through filesystem.begin, in ascending inode order)
//	    mapstore.Blob's locks (a File calls its blob with mu held; see package mapstore)
//	      mapstore.Store's locks
//	    journal.Meta.mu      (a commit or a reservation; a leaf)
//
// The tree has two roots: node.mu is taken with persist.quiesce held (a
// change, compaction's walk), with a dirHandle.mu held (Readdirent), or
// with neither (stat, lookup, getxattr); never with both. Compaction also
// takes journal.Meta.mu with only the quiesce lock held
// (journal.Meta.BeginCompact).
//
// A read's reply holds its blob (read-held, by a mapstore.View) until
// go-fuse has written it, after File.Read has returned: File.Read takes
// the node's mu before the view, never while it holds one.
//
// go-fuse's own Inode locks are taken only inside go-fuse calls (GetChild,
// Children, Parent, NewPersistentInode, AddChild), never while a node.mu is
// held; Readdirent makes its snapshot (Children, Parent) with its
// dirHandle.mu held.
//
// # One request, one frame
//
// A request that changes metadata is a change (commit.go): it locks the
// nodes it touches, computes their new attributes apart, records them and
// the entries it changes, commits the records as one journal frame, and
// applies the new state only once that commit succeeded. A commit that
// fails is the request's errno (ENOSPC or EIO), and nothing has changed:
// not the nodes, not go-fuse's tree (the bridge changes it only after a
// node's method succeeds), not the kernel's caches. A change of file data
// that cannot be taken back (a write over data, copy_file_range, truncate,
// punch, zero range) reserves journal room before it is made, so that its
// commit cannot fail for want of space.
//
// # Adding an operation
//
// A new FUSE operation that can change anything a snapshot records gets
// its wrapper in changes.go (which holds persist.quiesce), and its node
// method is a change: begin, compute, record, commit, apply, end. One that
// cannot is added to the reviewed read-only list in changes_test.go;
// TestEveryChangeIsWrapped fails for an operation in neither.
//
// # Passthrough
//
// With FUSE passthrough (Config.Passthrough) an open of a regular file
// lends the file's blob (mapstore.Blob.Lend): go-fuse hands a descriptor of
// its store file to the kernel, which then reads, writes and maps it
// without the server. While a File has loans, the store file is the truth
// about size and times: File.observe takes them into the node when the
// server looks (stat, fsync, close), and the blob serves the server's own
// operations (truncate, fallocate, copy_file_range, lseek) with system
// calls on the file. The last Release returns the blob.
package fs
