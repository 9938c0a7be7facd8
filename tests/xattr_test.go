package tests

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

// listXattrs returns the names listxattr reports for p (not following a
// symlink), failing t on error.
func listXattrs(t testing.TB, p string) []string {
	t.Helper()
	n, err := unix.Llistxattr(p, nil)
	noErr(t, err, "listxattr size of %s", p)
	buf := make([]byte, n)
	m, err := unix.Llistxattr(p, buf)
	noErr(t, err, "listxattr %s", p)
	if m != n {
		t.Errorf("listxattr: size query said %d, list is %d", n, m)
	}
	var names []string
	for _, s := range strings.Split(string(buf[:m]), "\x00") {
		if s != "" {
			names = append(names, s)
		}
	}
	sort.Strings(names)
	return names
}

// TestXattr: set, get, list and remove in the user., trusted. and security.
// namespaces, with the errors the kernel documents.
func TestXattr(t *testing.T) {
	t.Parallel()
	mnt, _, _ := mountFS(t)
	p := filepath.Join(mnt, "f")
	writeFile(t, p, []byte("x"))

	names := []string{"user.a", "user.with.dots", "security.test"}
	if os.Geteuid() == 0 {
		names = append(names, "trusted.t")
	}
	for i, n := range names {
		noErr(t, unix.Setxattr(p, n, []byte(strings.Repeat("v", i+1)), 0), "setxattr %s", n)
	}
	for i, n := range names {
		buf := make([]byte, 100)
		m, err := unix.Getxattr(p, n, buf)
		if err != nil || string(buf[:m]) != strings.Repeat("v", i+1) {
			t.Errorf("getxattr %s: %q, %v", n, buf[:max(m, 0)], err)
		}
	}
	want := append([]string(nil), names...)
	sort.Strings(want)
	if got := listXattrs(t, p); strings.Join(got, ",") != strings.Join(want, ",") {
		t.Errorf("listxattr: %q, want %q", got, want)
	}

	// Flags.
	wantErrno(t, unix.Setxattr(p, "user.a", []byte("new"), unix.XATTR_CREATE), unix.EEXIST, "XATTR_CREATE on an existing name")
	wantErrno(t, unix.Setxattr(p, "user.missing", []byte("new"), unix.XATTR_REPLACE), unix.ENODATA, "XATTR_REPLACE on a missing name")
	noErr(t, unix.Setxattr(p, "user.a", []byte("replaced"), unix.XATTR_REPLACE), "XATTR_REPLACE on an existing name")
	noErr(t, unix.Setxattr(p, "user.created", []byte("c"), unix.XATTR_CREATE), "XATTR_CREATE on a new name")
	buf := make([]byte, 100)
	if m, _ := unix.Getxattr(p, "user.a", buf); string(buf[:max(m, 0)]) != "replaced" {
		t.Errorf("after XATTR_REPLACE: %q", buf[:max(m, 0)])
	}
	wantErrno(t, unix.Setxattr(p, "user.x", []byte("v"), 4), unix.EINVAL, "setxattr with unknown flags")

	// Missing names, small buffers, size queries.
	_, err := unix.Getxattr(p, "user.missing", buf)
	wantErrno(t, err, unix.ENODATA, "getxattr of a missing name")
	wantErrno(t, unix.Removexattr(p, "user.missing"), unix.ENODATA, "removexattr of a missing name")
	n, err := unix.Getxattr(p, "user.a", nil)
	if err != nil || n != len("replaced") {
		t.Errorf("getxattr size query: %d, %v; want %d", n, err, len("replaced"))
	}
	_, err = unix.Getxattr(p, "user.a", make([]byte, 3))
	wantErrno(t, err, unix.ERANGE, "getxattr into a too small buffer")
	ln, err := unix.Listxattr(p, nil)
	noErr(t, err, "listxattr size query")
	_, err = unix.Listxattr(p, make([]byte, ln-1))
	wantErrno(t, err, unix.ERANGE, "listxattr into a too small buffer")

	// Empty values exist and are listed.
	noErr(t, unix.Setxattr(p, "user.empty", nil, 0), "setxattr empty value")
	if n, err := unix.Getxattr(p, "user.empty", nil); n != 0 || err != nil {
		t.Errorf("getxattr size of empty value: %d, %v", n, err)
	}
	if n, err := unix.Getxattr(p, "user.empty", buf); n != 0 || err != nil {
		t.Errorf("getxattr of empty value: %d, %v", n, err)
	}
	if got := listXattrs(t, p); !contains(got, "user.empty") {
		t.Errorf("empty-valued xattr not listed: %q", got)
	}

	// Sizes: 64 KiB values, 255-byte names.
	big := bytes.Repeat([]byte{0xab}, 65536)
	noErr(t, unix.Setxattr(p, "user.big", big, 0), "setxattr 64 KiB value")
	if n, err := unix.Getxattr(p, "user.big", nil); n != 65536 || err != nil {
		t.Errorf("size of 64 KiB value: %d, %v", n, err)
	}
	got := make([]byte, 65536)
	if n, err := unix.Getxattr(p, "user.big", got); n != 65536 || err != nil || !bytes.Equal(got, big) {
		t.Errorf("get 64 KiB value: %d, %v, equal %v", n, err, bytes.Equal(got[:max(n, 0)], big))
	}
	wantErrno(t, unix.Setxattr(p, "user.toobig", make([]byte, 65537), 0), unix.E2BIG, "setxattr of 64 KiB + 1")
	name255 := "user." + strings.Repeat("n", 250)
	noErr(t, unix.Setxattr(p, name255, []byte("long"), 0), "setxattr with a 255-byte name")
	if n, err := unix.Getxattr(p, name255, buf); err != nil || string(buf[:n]) != "long" {
		t.Errorf("getxattr 255-byte name: %v", err)
	}
	wantErrno(t, unix.Setxattr(p, name255+"x", []byte("v"), 0), unix.ERANGE, "setxattr with a 256-byte name")
	_, err = unix.Getxattr(p, name255+"x", buf)
	wantErrno(t, err, unix.ERANGE, "getxattr with a 256-byte name")
	wantErrno(t, unix.Removexattr(p, name255+"x"), unix.ERANGE, "removexattr with a 256-byte name")

	// Odd names.
	wantErrno(t, unix.Setxattr(p, "user.", []byte("v"), 0), unix.EINVAL, "setxattr of the bare prefix user.")
	wantErrno(t, unix.Setxattr(p, "foo.bar", []byte("v"), 0), unix.EOPNOTSUPP, "setxattr in an unknown namespace")
	_, err = unix.Getxattr(p, "foo.bar", buf)
	wantErrno(t, err, unix.EOPNOTSUPP, "getxattr in an unknown namespace")
	wantErrno(t, unix.Setxattr(p, "noprefix", []byte("v"), 0), unix.EOPNOTSUPP, "setxattr without a namespace")
	wantErrno(t, unix.Setxattr(p, "system.foo", []byte("v"), 0), unix.EOPNOTSUPP, "setxattr system.foo")
	noErr(t, unix.Setxattr(p, "user.\x01\xff", []byte("v"), 0), "setxattr with odd bytes")
	if _, err := unix.Getxattr(p, "user.\x01\xff", buf); err != nil {
		t.Errorf("getxattr with odd bytes: %v", err)
	}
	// Binary values.
	bin := []byte{0, 1, 2, 0, 255}
	noErr(t, unix.Setxattr(p, "user.bin", bin, 0), "setxattr binary")
	if n, _ := unix.Getxattr(p, "user.bin", buf); !bytes.Equal(buf[:n], bin) {
		t.Errorf("binary value: %x", buf[:n])
	}

	// Remove everything; the list is empty after.
	for _, n := range listXattrs(t, p) {
		noErr(t, unix.Removexattr(p, n), "removexattr %q", n)
	}
	if got := listXattrs(t, p); len(got) != 0 {
		t.Errorf("after removing all: %q", got)
	}
	if n, err := unix.Listxattr(p, nil); n != 0 || err != nil {
		t.Errorf("listxattr size with nothing: %d, %v", n, err)
	}

	// Through a descriptor.
	fd := openFd(t, p, unix.O_RDONLY, 0)
	defer closeFd(fd)
	noErr(t, unix.Fsetxattr(fd, "user.fd", []byte("viafd"), 0), "fsetxattr")
	if n, err := unix.Fgetxattr(fd, "user.fd", buf); err != nil || string(buf[:n]) != "viafd" {
		t.Errorf("fgetxattr: %q %v", buf[:max(n, 0)], err)
	}
	// Xattrs follow the inode: visible through a hard link, kept by rename.
	noErr(t, os.Link(p, p+"2"), "link")
	noErr(t, unix.Rename(p+"2", p+"3"), "rename")
	if n, err := unix.Getxattr(p+"3", "user.fd", buf); err != nil || string(buf[:n]) != "viafd" {
		t.Errorf("xattr through a hard link after rename: %v", err)
	}
	// An unlinked open file keeps its xattrs.
	noErr(t, unix.Unlink(p), "unlink")
	noErr(t, unix.Unlink(p+"3"), "unlink")
	if n, err := unix.Fgetxattr(fd, "user.fd", buf); err != nil || string(buf[:n]) != "viafd" {
		t.Errorf("fgetxattr of an unlinked file: %v", err)
	}
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// TestXattrFileTypes: directories take user. xattrs; symlinks, FIFOs and
// sockets do not (EPERM to set, ENODATA to get), trusted. works on them.
func TestXattrFileTypes(t *testing.T) {
	t.Parallel()
	mnt, _, _ := mountFS(t)
	j := func(s string) string { return filepath.Join(mnt, s) }
	noErr(t, os.Mkdir(j("d"), 0o755), "mkdir")
	noErr(t, unix.Setxattr(j("d"), "user.dir", []byte("dv"), 0), "setxattr on a dir")
	buf := make([]byte, 10)
	if n, err := unix.Getxattr(j("d"), "user.dir", buf); err != nil || string(buf[:n]) != "dv" {
		t.Errorf("getxattr on a dir: %v", err)
	}
	writeFile(t, j("target"), nil)
	noErr(t, os.Symlink("target", j("l")), "symlink")
	noErr(t, unix.Mkfifo(j("fifo"), 0o644), "mkfifo")
	noErr(t, unix.Mknod(j("sock"), unix.S_IFSOCK|0o644, 0), "mknod socket")
	for _, n := range []string{"l", "fifo", "sock"} {
		wantErrno(t, unix.Lsetxattr(j(n), "user.x", []byte("v"), 0), unix.EPERM, "lsetxattr user.x on %s", n)
		_, err := unix.Lgetxattr(j(n), "user.x", buf)
		wantErrno(t, err, unix.ENODATA, "lgetxattr user.x on %s", n)
		if os.Geteuid() == 0 {
			noErr(t, unix.Lsetxattr(j(n), "trusted.x", []byte("tv"), 0), "lsetxattr trusted.x on %s", n)
			if m, err := unix.Lgetxattr(j(n), "trusted.x", buf); err != nil || string(buf[:m]) != "tv" {
				t.Errorf("lgetxattr trusted.x on %s: %v", n, err)
			}
			if got := listXattrs(t, j(n)); !contains(got, "trusted.x") {
				t.Errorf("llistxattr of %s: %q", n, got)
			}
		}
	}
	// Through the symlink, setxattr reaches the target.
	noErr(t, unix.Setxattr(j("l"), "user.via", []byte("v"), 0), "setxattr through a symlink")
	if _, err := unix.Getxattr(j("target"), "user.via", buf); err != nil {
		t.Errorf("setxattr through a symlink did not reach the target: %v", err)
	}
	if got := listXattrs(t, j("l")); contains(got, "user.via") {
		t.Errorf("llistxattr of the link shows the target's xattr")
	}
}

// TestXattrListLimit: names totalling more than 64 KiB can be set and read
// one by one, listxattr's size query reports them all, but the list itself is
// E2BIG (XATTR_LIST_MAX), whatever the buffer.
func TestXattrListLimit(t *testing.T) {
	t.Parallel()
	mnt, _, _ := mountFS(t)
	p := filepath.Join(mnt, "f")
	writeFile(t, p, nil)
	total := 0
	for i := 0; i < 300; i++ {
		n := fmt.Sprintf("user.%03d%s", i, strings.Repeat("n", 240))
		noErr(t, unix.Setxattr(p, n, []byte("v"), 0), "setxattr %d", i)
		total += len(n) + 1
	}
	sz, err := unix.Listxattr(p, nil)
	want := total
	if !tmpfsMode {
		// The kernel's FUSE client clamps the answer of a size query to
		// XATTR_LIST_MAX (fs/fuse/xattr.c, fuse_listxattr), whatever the
		// server replies; the listing itself fails as on tmpfs.
		want = 65536
	}
	if err != nil || sz != want {
		t.Errorf("listxattr size query: %d, %v; want %d", sz, errString(err), want)
	}
	_, err = unix.Listxattr(p, make([]byte, 65536))
	wantErrno(t, err, unix.E2BIG, "listxattr of %d bytes of names into 64 KiB", total)
	_, err = unix.Listxattr(p, make([]byte, total))
	wantErrno(t, err, unix.E2BIG, "listxattr of %d bytes of names into a buffer that fits", total)
	buf := make([]byte, 10)
	if n, err := unix.Getxattr(p, fmt.Sprintf("user.%03d%s", 299, strings.Repeat("n", 240)), buf); err != nil || string(buf[:n]) != "v" {
		t.Errorf("getxattr of the last name: %v", err)
	}
}
