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

// kill drops the privileges of the file of h, as a SETATTR with
// FATTR_KILL_SUIDGID would.
func (k *wireFS) kill(cancel <-chan struct{}, h *fuse.InHeader) {
	in := fuse.SetAttrIn{}
	in.InHeader = *h
	in.Valid = fuse.FATTR_KILL_SUIDGID
	var out fuse.AttrOut
	k.RawFileSystem.SetAttr(cancel, &in, &out)
}

// killPrivLocked drops, in a, the set-id bits of a non-directory n for a
// change made by caller, and reports whether n's file capability is to be
// removed too.
//
// Preconditions: n.mu is held.
func (n *node) killPrivLocked(a *attrs, caller *fuse.Caller) (dropCap bool) {
	if n.isDir() {
		return false
	}
	a.mode &^= syscall.S_ISUID
	if a.mode&syscall.S_ISGID != 0 &&
		(a.mode&syscall.S_IXGRP != 0 || (caller.Uid != 0 && caller.Gid != a.gid)) {
		a.mode &^= syscall.S_ISGID
	}
	_, hasCap := n.xattr["security.capability"]
	return hasCap
}
