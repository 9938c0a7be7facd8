package fs

import (
	"context"
	"strings"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// Extended attributes, kept in node.xattr. The kernel already enforces
// the limits of the xattr system calls (name ≤ 255 bytes: ERANGE; value ≤
// 64 KiB: E2BIG), the namespace permissions (trusted.* needs
// CAP_SYS_ADMIN; user.* only on regular files and directories) and the
// sticky-directory rules; this file keeps the namespaces tmpfs supports
// and the flag semantics.

const (
	xattrNameMax  = 255
	xattrMaxValue = 64 << 10
)

// checkXattrName accepts names in the namespaces this filesystem stores:
// user., trusted. and security. (system.* holds POSIX ACLs, which are not
// supported, as in a tmpfs without CONFIG_TMPFS_POSIX_ACL).
func checkXattrName(name string) syscall.Errno {
	for _, p := range []string{"user.", "trusted.", "security."} {
		if strings.HasPrefix(name, p) {
			if len(name) == len(p) {
				return syscall.EINVAL // a bare prefix names nothing
			}
			return 0
		}
	}
	return syscall.EOPNOTSUPP
}

// Getxattr implements gofs.NodeGetxattrer.
func (n *node) Getxattr(ctx context.Context, attr string, dest []byte) (uint32, syscall.Errno) {
	if errno := checkXattrName(attr); errno != 0 {
		return 0, errno
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	v, ok := n.xattr[attr]
	if !ok {
		return 0, syscall.ENODATA
	}
	if len(dest) < len(v) {
		return uint32(len(v)), syscall.ERANGE
	}
	return uint32(copy(dest, v)), 0
}

// Setxattr implements gofs.NodeSetxattrer.
func (n *node) Setxattr(ctx context.Context, attr string, data []byte, flags uint32) syscall.Errno {
	if errno := checkXattrName(attr); errno != 0 {
		return errno
	}
	if len(attr) > xattrNameMax {
		return syscall.ERANGE
	}
	if len(data) > xattrMaxValue {
		return syscall.E2BIG
	}
	if flags&^(unix.XATTR_CREATE|unix.XATTR_REPLACE) != 0 {
		return syscall.EINVAL
	}
	c := n.fsys.begin(n)
	defer c.end()
	_, exists := n.xattr[attr]
	switch {
	case flags&unix.XATTR_CREATE != 0 && exists:
		return syscall.EEXIST
	case flags&unix.XATTR_REPLACE != 0 && !exists:
		return syscall.ENODATA
	}
	return n.setXattrLocked(&c, attr, append([]byte(nil), data...), true)
}

// Removexattr implements gofs.NodeRemovexattrer.
func (n *node) Removexattr(ctx context.Context, attr string) syscall.Errno {
	if errno := checkXattrName(attr); errno != 0 {
		return errno
	}
	c := n.fsys.begin(n)
	defer c.end()
	if _, ok := n.xattr[attr]; !ok {
		return syscall.ENODATA
	}
	return n.setXattrLocked(&c, attr, nil, false)
}

// setXattrLocked sets the xattr name of n to value, or removes it if !set,
// and n's ctime, as the change c.
//
// Preconditions: n is locked by c.
func (n *node) setXattrLocked(c *change, name string, value []byte, set bool) syscall.Errno {
	a := n.attrsLocked()
	a.ctime = time.Now()
	c.xattr(n, name, value, set)
	c.inode(n, &a)
	if errno := c.commit(); errno != 0 {
		return errno
	}
	switch {
	case !set:
		delete(n.xattr, name)
	case n.xattr == nil:
		n.xattr = map[string][]byte{name: value}
	default:
		n.xattr[name] = value
	}
	n.setAttrsLocked(&a)
	return 0
}

// Listxattr implements gofs.NodeListxattrer: names NUL-terminated. Names
// in trusted.* are listed only to callers with CAP_SYS_ADMIN; the caller's
// capabilities are not known here, so they are listed to root only.
func (n *node) Listxattr(ctx context.Context, dest []byte) (uint32, syscall.Errno) {
	root := callerUID(ctx) == 0
	n.mu.Lock()
	defer n.mu.Unlock()
	size := 0
	for k := range n.xattr {
		if !root && strings.HasPrefix(k, "trusted.") {
			continue
		}
		size += len(k) + 1
	}
	if len(dest) < size {
		return uint32(size), syscall.ERANGE
	}
	off := 0
	for k := range n.xattr {
		if !root && strings.HasPrefix(k, "trusted.") {
			continue
		}
		off += copy(dest[off:], k)
		dest[off] = 0
		off++
	}
	return uint32(size), 0
}
