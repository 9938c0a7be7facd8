package fs

import (
	"syscall"

	"github.com/hanwen/go-fuse/v2/fuse"
)

// Set-id bits and file capabilities are dropped by the server, not the
// kernel (CAP_HANDLE_KILLPRIV_V2). Without it the kernel asks for
// security.capability before every write (a round trip per write), and
// its own fallback only drops S_ISGID when S_IXGRP is set, which is not
// what tmpfs does. With it, the kernel flags requests from callers
// without CAP_FSETID and the server applies the rules of
// setattr_should_drop_suidgid:
//   - S_ISUID is dropped;
//   - S_ISGID is dropped if S_IXGRP is set, or if the caller is not in the
//     file's group (only the caller's primary group is known here);
//   - security.capability is removed.
// The kernel flags writes (WRITE_KILL_SUIDGID), opens with O_TRUNC
// (OPEN_KILL_SUIDGID), truncates and every chown of a non-directory
// (FATTR_KILL_SUIDGID).

func (k *wireFS) kill(cancel <-chan struct{}, h *fuse.InHeader) {
	in := fuse.SetAttrIn{}
	in.InHeader = *h
	in.Valid = fuse.FATTR_KILL_SUIDGID
	var out fuse.AttrOut
	k.RawFileSystem.SetAttr(cancel, &in, &out)
}

// Write implements fuse.RawFileSystem.
func (k *wireFS) Write(cancel <-chan struct{}, in *fuse.WriteIn, data []byte) (uint32, fuse.Status) {
	defer k.fsys.changing()()
	if in.WriteFlags&fuse.WRITE_KILL_SUIDGID != 0 {
		k.kill(cancel, &in.InHeader)
	}
	return k.RawFileSystem.Write(cancel, in, data)
}

// Writev implements fuse.RawFileSystem; go-fuse tries it before Write.
func (k *wireFS) Writev(cancel <-chan struct{}, in *fuse.WriteIn, data [][]byte) (uint32, fuse.Status) {
	defer k.fsys.changing()()
	if in.WriteFlags&fuse.WRITE_KILL_SUIDGID != 0 {
		k.kill(cancel, &in.InHeader)
	}
	return k.RawFileSystem.Writev(cancel, in, data)
}

// Open implements fuse.RawFileSystem.
func (k *wireFS) Open(cancel <-chan struct{}, in *fuse.OpenIn, out *fuse.OpenOut) fuse.Status {
	defer k.fsys.changing()()
	defer k.fsys.serveOpen(cancel)()
	if in.Mode&fuse.OPEN_KILL_SUIDGID != 0 {
		k.kill(cancel, &in.InHeader)
	}
	return k.RawFileSystem.Open(cancel, in, out)
}

// killPrivLocked drops set-id bits and the file capability of a
// non-directory for a change made by caller, and reports whether anything
// changed.
//
// Preconditions: n.mu is held.
func (n *node) killPrivLocked(caller *fuse.Caller) bool {
	if n.isDir() {
		return false
	}
	changed := false
	if n.mode&syscall.S_ISUID != 0 {
		n.mode &^= syscall.S_ISUID
		changed = true
	}
	if n.mode&syscall.S_ISGID != 0 &&
		(n.mode&syscall.S_IXGRP != 0 || (caller.Uid != 0 && caller.Gid != n.gid)) {
		n.mode &^= syscall.S_ISGID
		changed = true
	}
	if _, ok := n.xattr["security.capability"]; ok {
		delete(n.xattr, "security.capability")
		changed = true
	}
	return changed
}
