package fs

import (
	"sync/atomic"
	"time"

	"github.com/hanwen/go-fuse/v2/fuse"

	"mmapfs/control"
)

// Operations counted by countFS, one counter each; opNames names them as
// the FUSE protocol does (go-fuse's names of the opcodes).
const (
	opLookup = iota
	opForget
	opGetAttr
	opSetAttr
	opMknod
	opMkdir
	opUnlink
	opRmdir
	opRename
	opLink
	opSymlink
	opReadlink
	opAccess
	opGetXAttr
	opListXAttr
	opSetXAttr
	opRemoveXAttr
	opCreate
	opTmpfile
	opOpen
	opRead
	opLseek
	opGetLk
	opSetLk
	opSetLkw
	opRelease
	opWrite
	opCopyFileRange
	opIoctl
	opFlush
	opFsync
	opFallocate
	opOpenDir
	opReadDir
	opReadDirPlus
	opReleaseDir
	opFsyncDir
	opStatFs
	opStatx
	numOps
)

var opNames = [numOps]string{
	opLookup: "LOOKUP", opForget: "FORGET", opGetAttr: "GETATTR", opSetAttr: "SETATTR",
	opMknod: "MKNOD", opMkdir: "MKDIR", opUnlink: "UNLINK", opRmdir: "RMDIR",
	opRename: "RENAME", opLink: "LINK", opSymlink: "SYMLINK", opReadlink: "READLINK",
	opAccess: "ACCESS", opGetXAttr: "GETXATTR", opListXAttr: "LISTXATTR",
	opSetXAttr: "SETXATTR", opRemoveXAttr: "REMOVEXATTR", opCreate: "CREATE",
	opTmpfile: "TMPFILE", opOpen: "OPEN", opRead: "READ", opLseek: "LSEEK",
	opGetLk: "GETLK", opSetLk: "SETLK", opSetLkw: "SETLKW", opRelease: "RELEASE",
	opWrite: "WRITE", opCopyFileRange: "COPY_FILE_RANGE", opIoctl: "IOCTL",
	opFlush: "FLUSH", opFsync: "FSYNC", opFallocate: "FALLOCATE", opOpenDir: "OPENDIR",
	opReadDir: "READDIR", opReadDirPlus: "READDIRPLUS", opReleaseDir: "RELEASEDIR",
	opFsyncDir: "FSYNCDIR", opStatFs: "STATFS", opStatx: "STATX",
}

// counts are the figures of the requests a mount served.
type counts struct {
	ops        [numOps]control.Counter
	readBytes  atomic.Uint64 // file data read for READ replies
	writeBytes atomic.Uint64 // file data of WRITE requests written
}

// snapshot returns the counters of the operations asked for so far.
func (c *counts) snapshot() map[string]control.OpStats {
	out := make(map[string]control.OpStats)
	for i := range c.ops {
		if c.ops[i].Count() > 0 {
			out[opNames[i]] = c.ops[i].Snapshot()
		}
	}
	return out
}

// countFS counts every request on its way to the filesystem below it (the
// wireFS): how many of each operation, how many failed, how long each
// took, and the bytes of READ and WRITE. It adds two clock reads and a few
// atomic additions to each request, and takes no lock.
type countFS struct {
	fuse.RawFileSystem
	c *counts
}

// done counts one request of op that started at start.
func (f *countFS) done(op int, start time.Time, st fuse.Status) {
	f.c.ops[op].Observe(time.Since(start), st != fuse.OK)
}

func (f *countFS) Lookup(cancel <-chan struct{}, h *fuse.InHeader, name string, out *fuse.EntryOut) fuse.Status {
	t := time.Now()
	st := f.RawFileSystem.Lookup(cancel, h, name, out)
	f.done(opLookup, t, st)
	return st
}

func (f *countFS) Forget(nodeid, nlookup uint64) {
	t := time.Now()
	f.RawFileSystem.Forget(nodeid, nlookup)
	f.done(opForget, t, fuse.OK)
}

func (f *countFS) GetAttr(cancel <-chan struct{}, in *fuse.GetAttrIn, out *fuse.AttrOut) fuse.Status {
	t := time.Now()
	st := f.RawFileSystem.GetAttr(cancel, in, out)
	f.done(opGetAttr, t, st)
	return st
}

func (f *countFS) SetAttr(cancel <-chan struct{}, in *fuse.SetAttrIn, out *fuse.AttrOut) fuse.Status {
	t := time.Now()
	st := f.RawFileSystem.SetAttr(cancel, in, out)
	f.done(opSetAttr, t, st)
	return st
}

func (f *countFS) Mknod(cancel <-chan struct{}, in *fuse.MknodIn, name string, out *fuse.EntryOut) fuse.Status {
	t := time.Now()
	st := f.RawFileSystem.Mknod(cancel, in, name, out)
	f.done(opMknod, t, st)
	return st
}

func (f *countFS) Mkdir(cancel <-chan struct{}, in *fuse.MkdirIn, name string, out *fuse.EntryOut) fuse.Status {
	t := time.Now()
	st := f.RawFileSystem.Mkdir(cancel, in, name, out)
	f.done(opMkdir, t, st)
	return st
}

func (f *countFS) Unlink(cancel <-chan struct{}, h *fuse.InHeader, name string) fuse.Status {
	t := time.Now()
	st := f.RawFileSystem.Unlink(cancel, h, name)
	f.done(opUnlink, t, st)
	return st
}

func (f *countFS) Rmdir(cancel <-chan struct{}, h *fuse.InHeader, name string) fuse.Status {
	t := time.Now()
	st := f.RawFileSystem.Rmdir(cancel, h, name)
	f.done(opRmdir, t, st)
	return st
}

func (f *countFS) Rename(cancel <-chan struct{}, in *fuse.RenameIn, oldName, newName string) fuse.Status {
	t := time.Now()
	st := f.RawFileSystem.Rename(cancel, in, oldName, newName)
	f.done(opRename, t, st)
	return st
}

func (f *countFS) Link(cancel <-chan struct{}, in *fuse.LinkIn, name string, out *fuse.EntryOut) fuse.Status {
	t := time.Now()
	st := f.RawFileSystem.Link(cancel, in, name, out)
	f.done(opLink, t, st)
	return st
}

func (f *countFS) Symlink(cancel <-chan struct{}, h *fuse.InHeader, target, name string, out *fuse.EntryOut) fuse.Status {
	t := time.Now()
	st := f.RawFileSystem.Symlink(cancel, h, target, name, out)
	f.done(opSymlink, t, st)
	return st
}

func (f *countFS) Readlink(cancel <-chan struct{}, h *fuse.InHeader) ([]byte, fuse.Status) {
	t := time.Now()
	out, st := f.RawFileSystem.Readlink(cancel, h)
	f.done(opReadlink, t, st)
	return out, st
}

func (f *countFS) Access(cancel <-chan struct{}, in *fuse.AccessIn) fuse.Status {
	t := time.Now()
	st := f.RawFileSystem.Access(cancel, in)
	f.done(opAccess, t, st)
	return st
}

func (f *countFS) GetXAttr(cancel <-chan struct{}, h *fuse.InHeader, attr string, dest []byte) (uint32, fuse.Status) {
	t := time.Now()
	n, st := f.RawFileSystem.GetXAttr(cancel, h, attr, dest)
	f.done(opGetXAttr, t, st)
	return n, st
}

func (f *countFS) ListXAttr(cancel <-chan struct{}, h *fuse.InHeader, dest []byte) (uint32, fuse.Status) {
	t := time.Now()
	n, st := f.RawFileSystem.ListXAttr(cancel, h, dest)
	f.done(opListXAttr, t, st)
	return n, st
}

func (f *countFS) SetXAttr(cancel <-chan struct{}, in *fuse.SetXAttrIn, attr string, data []byte) fuse.Status {
	t := time.Now()
	st := f.RawFileSystem.SetXAttr(cancel, in, attr, data)
	f.done(opSetXAttr, t, st)
	return st
}

func (f *countFS) RemoveXAttr(cancel <-chan struct{}, h *fuse.InHeader, attr string) fuse.Status {
	t := time.Now()
	st := f.RawFileSystem.RemoveXAttr(cancel, h, attr)
	f.done(opRemoveXAttr, t, st)
	return st
}

func (f *countFS) Create(cancel <-chan struct{}, in *fuse.CreateIn, name string, out *fuse.CreateOut) fuse.Status {
	t := time.Now()
	st := f.RawFileSystem.Create(cancel, in, name, out)
	f.done(opCreate, t, st)
	return st
}

func (f *countFS) Tmpfile(cancel <-chan struct{}, in *fuse.CreateIn, out *fuse.CreateOut) fuse.Status {
	t := time.Now()
	st := f.RawFileSystem.Tmpfile(cancel, in, out)
	f.done(opTmpfile, t, st)
	return st
}

func (f *countFS) Open(cancel <-chan struct{}, in *fuse.OpenIn, out *fuse.OpenOut) fuse.Status {
	t := time.Now()
	st := f.RawFileSystem.Open(cancel, in, out)
	f.done(opOpen, t, st)
	return st
}

func (f *countFS) Read(cancel <-chan struct{}, in *fuse.ReadIn, buf []byte) (fuse.ReadResult, fuse.Status) {
	t := time.Now()
	res, st := f.RawFileSystem.Read(cancel, in, buf)
	if st == fuse.OK && res != nil {
		f.c.readBytes.Add(uint64(res.Size()))
	}
	f.done(opRead, t, st)
	return res, st
}

func (f *countFS) Lseek(cancel <-chan struct{}, in *fuse.LseekIn, out *fuse.LseekOut) fuse.Status {
	t := time.Now()
	st := f.RawFileSystem.Lseek(cancel, in, out)
	f.done(opLseek, t, st)
	return st
}

func (f *countFS) GetLk(cancel <-chan struct{}, in *fuse.LkIn, out *fuse.LkOut) fuse.Status {
	t := time.Now()
	st := f.RawFileSystem.GetLk(cancel, in, out)
	f.done(opGetLk, t, st)
	return st
}

func (f *countFS) SetLk(cancel <-chan struct{}, in *fuse.LkIn) fuse.Status {
	t := time.Now()
	st := f.RawFileSystem.SetLk(cancel, in)
	f.done(opSetLk, t, st)
	return st
}

func (f *countFS) SetLkw(cancel <-chan struct{}, in *fuse.LkIn) fuse.Status {
	t := time.Now()
	st := f.RawFileSystem.SetLkw(cancel, in)
	f.done(opSetLkw, t, st)
	return st
}

func (f *countFS) Release(cancel <-chan struct{}, in *fuse.ReleaseIn) {
	t := time.Now()
	f.RawFileSystem.Release(cancel, in)
	f.done(opRelease, t, fuse.OK)
}

func (f *countFS) Write(cancel <-chan struct{}, in *fuse.WriteIn, data []byte) (uint32, fuse.Status) {
	t := time.Now()
	n, st := f.RawFileSystem.Write(cancel, in, data)
	f.c.writeBytes.Add(uint64(n))
	f.done(opWrite, t, st)
	return n, st
}

func (f *countFS) Writev(cancel <-chan struct{}, in *fuse.WriteIn, data [][]byte) (uint32, fuse.Status) {
	t := time.Now()
	n, st := f.RawFileSystem.Writev(cancel, in, data)
	if st == fuse.ENOSYS {
		return n, st // go-fuse goes on with Write, which counts it
	}
	f.c.writeBytes.Add(uint64(n))
	f.done(opWrite, t, st)
	return n, st
}

func (f *countFS) CopyFileRange(cancel <-chan struct{}, in *fuse.CopyFileRangeIn) (uint32, fuse.Status) {
	t := time.Now()
	n, st := f.RawFileSystem.CopyFileRange(cancel, in)
	f.done(opCopyFileRange, t, st)
	return n, st
}

func (f *countFS) Ioctl(cancel <-chan struct{}, in *fuse.IoctlIn, inbuf []byte, out *fuse.IoctlOut, outbuf []byte) fuse.Status {
	t := time.Now()
	st := f.RawFileSystem.Ioctl(cancel, in, inbuf, out, outbuf)
	f.done(opIoctl, t, st)
	return st
}

func (f *countFS) Flush(cancel <-chan struct{}, in *fuse.FlushIn) fuse.Status {
	t := time.Now()
	st := f.RawFileSystem.Flush(cancel, in)
	f.done(opFlush, t, st)
	return st
}

func (f *countFS) Fsync(cancel <-chan struct{}, in *fuse.FsyncIn) fuse.Status {
	t := time.Now()
	st := f.RawFileSystem.Fsync(cancel, in)
	f.done(opFsync, t, st)
	return st
}

func (f *countFS) Fallocate(cancel <-chan struct{}, in *fuse.FallocateIn) fuse.Status {
	t := time.Now()
	st := f.RawFileSystem.Fallocate(cancel, in)
	f.done(opFallocate, t, st)
	return st
}

func (f *countFS) OpenDir(cancel <-chan struct{}, in *fuse.OpenIn, out *fuse.OpenOut) fuse.Status {
	t := time.Now()
	st := f.RawFileSystem.OpenDir(cancel, in, out)
	f.done(opOpenDir, t, st)
	return st
}

func (f *countFS) ReadDir(cancel <-chan struct{}, in *fuse.ReadIn, out *fuse.DirEntryList) fuse.Status {
	t := time.Now()
	st := f.RawFileSystem.ReadDir(cancel, in, out)
	f.done(opReadDir, t, st)
	return st
}

func (f *countFS) ReadDirPlus(cancel <-chan struct{}, in *fuse.ReadIn, out *fuse.DirEntryList) fuse.Status {
	t := time.Now()
	st := f.RawFileSystem.ReadDirPlus(cancel, in, out)
	f.done(opReadDirPlus, t, st)
	return st
}

func (f *countFS) ReleaseDir(in *fuse.ReleaseIn) {
	t := time.Now()
	f.RawFileSystem.ReleaseDir(in)
	f.done(opReleaseDir, t, fuse.OK)
}

func (f *countFS) FsyncDir(cancel <-chan struct{}, in *fuse.FsyncIn) fuse.Status {
	t := time.Now()
	st := f.RawFileSystem.FsyncDir(cancel, in)
	f.done(opFsyncDir, t, st)
	return st
}

func (f *countFS) StatFs(cancel <-chan struct{}, in *fuse.InHeader, out *fuse.StatfsOut) fuse.Status {
	t := time.Now()
	st := f.RawFileSystem.StatFs(cancel, in, out)
	f.done(opStatFs, t, st)
	return st
}

func (f *countFS) Statx(cancel <-chan struct{}, in *fuse.StatxIn, out *fuse.StatxOut) fuse.Status {
	t := time.Now()
	st := f.RawFileSystem.Statx(cancel, in, out)
	f.done(opStatx, t, st)
	return st
}
