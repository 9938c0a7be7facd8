package store

import (
	"cmp"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"mmapfs/internal/dirs"
	"mmapfs/journal"
	"mmapfs/mapstore"
)

// checkData compares every file's data in the store with its metadata.
func (c *checker) checkData(st *journal.State, damaged bool) {
	blobs := blobsPath(c.dir)
	names, err := dirs.Names(blobs)
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		c.problem(fmt.Sprintf("data: the store files cannot be listed: %s", errnoText(err)), "", nil)
		return
	}
	files := make(map[uint64]bool, len(names))
	for _, n := range names {
		id, ok := mapstore.ParseFileName(n)
		if !ok || id == 0 {
			c.warn("%s/%s is not a file mmapfs made; it is left alone", BlobsDir, n)
			continue
		}
		files[id] = true
	}
	var regs []*journal.Inode
	for _, in := range st.Inodes {
		if in.IsReg() {
			regs = append(regs, in)
		}
	}
	slices.SortFunc(regs, func(a, b *journal.Inode) int { return cmp.Compare(a.Ino, b.Ino) })
	owner := make(map[uint64]uint64, len(regs))
	const label = "checking file data"
	for i, in := range regs {
		c.progress(label, i, len(regs))
		if in.Blob == 0 {
			c.problem(fmt.Sprintf("data: %s has no store file number", c.path(in.Ino)), "", nil)
			continue
		}
		if other, dup := owner[in.Blob]; dup {
			c.problem(fmt.Sprintf("data: %s and %s share one store file", c.path(other), c.path(in.Ino)), "", nil)
			continue
		}
		owner[in.Blob] = in.Ino
		name := mapstore.FileName(in.Blob)
		delete(files, in.Blob)
		var sb unix.Stat_t
		err := unix.Fstatat(unix.AT_FDCWD, filepath.Join(blobs, name), &sb, unix.AT_SYMLINK_NOFOLLOW)
		in := in
		switch {
		case errors.Is(err, unix.ENOENT):
			if in.Alloc > 0 {
				c.problem(fmt.Sprintf("data: %s: its data (%s) is missing from the store", c.path(in.Ino), FormatBytes(in.Alloc)),
					"keep the file, reading as zeros (its data is lost)", func(*journal.State) error { in.Alloc = 0; return nil })
			}
		case err != nil:
			c.problem(fmt.Sprintf("data: %s: store file %s: %s", c.path(in.Ino), name, errnoText(err)), "", nil)
		case sb.Mode&unix.S_IFMT != unix.S_IFREG:
			p := filepath.Join(blobs, name)
			c.problem(fmt.Sprintf("data: %s: store file %s is not a regular file", c.path(in.Ino), name),
				"move it aside as "+name+".bad; the file reads as zeros (its data is lost)", func(*journal.State) error {
					in.Alloc = 0
					return os.Rename(p, p+".bad")
				})
		case sb.Blocks*512 < in.Alloc:
			have := sb.Blocks * 512
			c.problem(fmt.Sprintf("data: %s: the store holds %s of its data where %s were recorded (data lost, or a hole punch the server did not finish)",
				c.path(in.Ino), FormatBytes(have), FormatBytes(in.Alloc)),
				"record what the store holds", func(*journal.State) error { in.Alloc = have; return nil })
		}
	}
	c.progress(label, len(regs), len(regs))
	var stray []uint64
	for id := range files {
		stray = append(stray, id)
	}
	slices.Sort(stray)
	for _, id := range stray {
		name := mapstore.FileName(id)
		p := filepath.Join(blobs, name)
		what := fmt.Sprintf("data: store file %s/%s belongs to no file", BlobsDir, name)
		if fi, err := os.Lstat(p); err == nil && !fi.Mode().IsRegular() {
			c.problem(what+" and is not a regular file", "move it aside as "+name+".bad",
				func(*journal.State) error { return os.Rename(p, p+".bad") })
			continue
		}
		if !damaged {
			// The server stopped between freeing a file and removing its
			// data: nothing refers to it.
			c.problem(what, "remove it", func(*journal.State) error { return os.Remove(p) })
			continue
		}
		// The metadata was damaged: this may be the only copy of a file
		// whose records were lost. It is kept, under a new name.
		id := id
		c.problem(what+" (its file's records may be lost)",
			"keep it as /lost+found/data-"+name, func(st *journal.State) error {
				return adoptStray(st, p, id)
			})
	}
}

// checkForeign notes files in the store directory that mmapfs did not make.
func (c *checker) checkForeign() {
	names, _ := dirs.Names(c.dir)
	for _, n := range names {
		switch n {
		case LockName:
			if fi, err := os.Lstat(filepath.Join(c.dir, n)); err == nil && !fi.Mode().IsRegular() {
				c.problem(fmt.Sprintf("%s is not a regular file (it is a %s)", n, fi.Mode().Type()),
					"replace it with a lock file (done when the store is opened for repair)", nil)
			}
		case MetaDir, BlobsDir, lostFoundName:
		default:
			c.warn("%s is not a file mmapfs made; it is left alone", n)
		}
	}
}

// adoptStray makes a store file no file owns into a file in /lost+found,
// as long as its data reaches.
func adoptStray(st *journal.State, path string, id uint64) error {
	fd, err := unix.Open(path, unix.O_RDONLY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	if err != nil {
		return err
	}
	defer unix.Close(fd)
	var sb unix.Stat_t
	if err := unix.Fstat(fd, &sb); err != nil {
		return err
	}
	if sb.Mode&unix.S_IFMT != unix.S_IFREG {
		return fmt.Errorf("%s is not a regular file", path)
	}
	// The size: the end of the last data (as far as it can be found).
	var size int64
	_ = mapstore.DataRanges(fd, sb.Size, func(_, end int64) { size = end })
	lf := lostFoundDir(st)
	now := time.Now().UnixNano()
	ino := st.NextIno
	st.NextIno++
	st.NextBlob = max(st.NextBlob, id+1)
	st.Inodes[ino] = &journal.Inode{Ino: ino, Mode: syscall.S_IFREG | 0o600, Atime: now, Mtime: now, Ctime: now, Btime: now,
		Size: size, Blob: id, Alloc: sb.Blocks * 512, Nlink: 1}
	st.Entries[lf]["data-"+mapstore.FileName(id)] = ino
	return nil
}
