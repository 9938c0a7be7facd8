// Package fsmodel is a reference model of a directory tree, for the tests
// and the load tools that check mmapfs against it.
//
// An FS holds the state: a tree of names (Node.Kids) leading to nodes that
// carry a type, permission bits, owner, link count, size, the data of a
// regular file page by page (data, fallocated, or a hole, as tmpfs keeps
// them), extended attributes, the target of a symlink and the mtime when it
// is known. Its operations (Create, Mkdir, Rename, Node.WriteAt,
// Node.Fallocate, ...) follow the Linux system calls of the same names on
// tmpfs, errno for errno, so that a test can apply an operation to the
// model and to a mount and compare the answers.
//
// Compare walks a real directory tree and lists how it differs from the
// model (Diff); Options choose what is compared, so that a model test can
// check page allocation and times, a crash test owners and ambiguous data,
// and a damaged-store test the paths that may have been lost.
//
// A node whose data is not known for certain (the operation in flight when
// a server was killed) is marked with Node.MarkAmbiguous before the
// operation is applied; Compare then accepts, byte by byte, the data before
// or after it, and Node.Settle adopts what the mount shows.
//
// Nothing here is safe for concurrent use: each model belongs to one
// goroutine at a time.
package fsmodel
