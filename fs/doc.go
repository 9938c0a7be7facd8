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
//	persist.quiesce      (read-held by every change; see persist.go)
//	  node.mu            (attributes of one node; a leaf lock)
//	    mapstore.Blob.mu (a File may call its blob with mu held)
//	      mapstore.Store.mu
//
// A read's reply holds its blob's mu (read-held, by a mapstore.View) until
// go-fuse has written it, after File.Read has returned: File.Read takes
// the node's mu before the view, never while it holds one.
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
//
// No method holds the mu of two nodes at once: an operation that changes
// several nodes (rename, link, unlink) updates them one after another, and
// the kernel's directory locks make the sequence atomic to other callers.
// go-fuse's own Inode locks are taken only inside go-fuse calls (GetChild,
// Children), never while a node.mu is held.
package fs
