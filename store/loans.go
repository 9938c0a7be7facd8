package store

import (
	"errors"
	"path/filepath"

	"go.uber.org/zap"
	"golang.org/x/sys/unix"

	"mmapfs/journal"
	"mmapfs/mapstore"
)

// Files lent for writing.
//
// With passthrough the kernel writes an open file's store file itself, and
// the server learns of it only when it looks. So before the kernel may
// write (an open for writing is answered), the server records the file as
// lent (journal.Inode.Lent), with the store file's own mtime and ctime at
// that moment; every later record of the file while it is lent says so
// again, with the store file's times as the server last saw them. Once the
// last open for writing is closed, a record without the loan follows, and
// only then is the store file given back to the mapped path (which grows
// it again only as the file grows: a lost end record cannot make the file
// longer than the kernel left it).
//
// While a file is recorded as lent, its store file is the truth about it:
// the kernel keeps the file's length at the file's size, and sets its mtime
// and ctime at each write. At recovery a lent file's size is thus the store
// file's length, and its mtime and ctime are the store file's where these
// moved since the record (else the recorded ones stand: a utimensat made
// while the file was lent changes the node's times, not the store file's).
// Its data is the store file's, as for any file. settleLoans applies this,
// and the store commits the settled records before anything else can
// change the store files.

// settleLoans takes the size and times of every file recorded as lent from
// its store file in dir (the store files' directory), and returns the
// inodes it changed; they are no longer lent.
func settleLoans(st *journal.State, dir string, log *zap.Logger) []*journal.Inode {
	var settled []*journal.Inode
	for _, in := range st.Inodes {
		if !in.Lent {
			continue
		}
		in.Lent = false
		settled = append(settled, in)
		if !in.IsReg() || in.Blob == 0 {
			continue
		}
		var sb unix.Stat_t
		err := unix.Fstatat(unix.AT_FDCWD, filepath.Join(dir, mapstore.FileName(in.Blob)), &sb, unix.AT_SYMLINK_NOFOLLOW)
		if err != nil || sb.Mode&unix.S_IFMT != unix.S_IFREG {
			// The loan made the store file; without it nothing was
			// written. (A store file that is something else is for
			// the data checks to report.)
			if err != nil && !errors.Is(err, unix.ENOENT) {
				log.Warn("a file open for writing with passthrough when the server stopped: its store file cannot be looked at; its recorded size stands",
					zap.Uint64("ino", in.Ino), zap.Uint64("blob", in.Blob), zap.Error(err))
			}
			continue
		}
		in.Size = sb.Size
		if m := sb.Mtim.Nano(); m != in.FileMtime {
			in.Mtime = m
		}
		if c := sb.Ctim.Nano(); c != in.FileCtime {
			in.Ctime = c
		}
		in.FileMtime, in.FileCtime = 0, 0
	}
	return settled
}
