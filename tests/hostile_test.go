package tests

// Hostile input: names, link targets, offsets and xattrs at and past their
// limits, and option strings and mount points a user gets wrong. Each gets
// the errno tmpfs gives (run with MMAPFS_TEST_TMPFS=1 to check the
// expectations) or, at the command line, one clear line and exit status 2.
// What TestNames, TestHugeOffsets, TestMaxFileSize, TestXattr and
// TestBinaryErrors check already is not repeated here.

import (
	"bytes"
	"context"
	"errors"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// TestHostileNameLength: the 256-byte name as the source of rename and
// link, in the path of attribute and xattr calls, and a 255-byte name in
// the operations TestNames does not try it in; a path of PATH_MAX bytes.
func TestHostileNameLength(t *testing.T) {
	t.Parallel()
	mnt, _, _ := mountFS(t)
	j := func(s ...string) string { return filepath.Join(append([]string{mnt}, s...)...) }
	n255 := strings.Repeat("\xe9", 255)
	n256 := strings.Repeat("\xe9", 256)
	writeFile(t, j("f"), []byte("data"))

	// 255 bytes: mknod, setxattr on such a path, chmod, utimes, truncate,
	// and as the source of rename and link.
	noErr(t, unix.Mknod(j(n255), unix.S_IFIFO|0o644, 0), "mknod 255")
	noErr(t, unix.Unlink(j(n255)), "unlink 255")
	writeFile(t, j(n255), []byte("long"))
	noErr(t, unix.Setxattr(j(n255), "user.a", []byte("v"), 0), "setxattr on a 255-byte name")
	noErr(t, unix.Chmod(j(n255), 0o600), "chmod 255")
	noErr(t, unix.UtimesNanoAt(unix.AT_FDCWD, j(n255), nil, 0), "utimes 255")
	noErr(t, unix.Truncate(j(n255), 2), "truncate 255")
	noErr(t, unix.Link(j(n255), j("l")), "link from 255")
	noErr(t, unix.Rename(j(n255), j("r")), "rename from 255")
	if got := string(readFile(t, j("l"))); got != "lo" {
		t.Errorf("file made with a 255-byte name: %q", got)
	}
	noErr(t, unix.Rename(j("r"), j(n255)), "rename to 255")
	noErr(t, unix.Renameat2(unix.AT_FDCWD, j("f"), unix.AT_FDCWD, j(n255), unix.RENAME_EXCHANGE), "exchange with 255")

	// 256 bytes.
	wantErrno(t, unix.Rename(j(n256), j("x")), unix.ENAMETOOLONG, "rename from 256")
	wantErrno(t, unix.Renameat2(unix.AT_FDCWD, j("f"), unix.AT_FDCWD, j(n256), unix.RENAME_EXCHANGE), unix.ENAMETOOLONG, "exchange with 256")
	wantErrno(t, unix.Renameat2(unix.AT_FDCWD, j("f"), unix.AT_FDCWD, j(n256), unix.RENAME_NOREPLACE), unix.ENAMETOOLONG, "rename noreplace to 256")
	wantErrno(t, unix.Link(j(n256), j("x")), unix.ENAMETOOLONG, "link from 256")
	wantErrno(t, unix.Setxattr(j(n256), "user.a", []byte("v"), 0), unix.ENAMETOOLONG, "setxattr on a 256-byte name")
	wantErrno(t, unix.Lsetxattr(j(n256), "user.a", []byte("v"), 0), unix.ENAMETOOLONG, "lsetxattr on a 256-byte name")
	_, err := unix.Listxattr(j(n256), nil)
	wantErrno(t, err, unix.ENAMETOOLONG, "listxattr on a 256-byte name")
	wantErrno(t, unix.Removexattr(j(n256), "user.a"), unix.ENAMETOOLONG, "removexattr on a 256-byte name")
	wantErrno(t, unix.Chmod(j(n256), 0o600), unix.ENAMETOOLONG, "chmod 256")
	wantErrno(t, unix.Lchown(j(n256), 0, 0), unix.ENAMETOOLONG, "lchown 256")
	wantErrno(t, unix.UtimesNanoAt(unix.AT_FDCWD, j(n256), nil, 0), unix.ENAMETOOLONG, "utimes 256")
	wantErrno(t, unix.Truncate(j(n256), 0), unix.ENAMETOOLONG, "truncate 256")
	_, err = unix.Readlink(j(n256), make([]byte, 10))
	wantErrno(t, err, unix.ENAMETOOLONG, "readlink 256")
	wantErrno(t, unix.Mkdir(j(n256, "sub"), 0o755), unix.ENAMETOOLONG, "mkdir under a 256-byte directory name")

	// A symlink whose target has a 256-byte component can be made (a
	// target is not a path until followed); following it is ENAMETOOLONG.
	noErr(t, unix.Symlink(n256, j("tolong")), "symlink to a 256-byte name")
	buf := make([]byte, 512)
	if n, err := unix.Readlink(j("tolong"), buf); err != nil || string(buf[:n]) != n256 {
		t.Errorf("readlink of a 256-byte target: %d, %v", n, err)
	}
	_, err = unix.Open(j("tolong"), unix.O_RDONLY, 0)
	wantErrno(t, err, unix.ENAMETOOLONG, "open through a link to a 256-byte name")

	// A path of PATH_MAX bytes (nested 255-byte directories).
	p := mnt
	for len(p)+256 < unix.PathMax {
		p = filepath.Join(p, strings.Repeat("d", 255))
		noErr(t, unix.Mkdir(p, 0o755), "mkdir at depth %d", len(p))
	}
	last := strings.Repeat("e", unix.PathMax-2-len(p)) // path of PathMax-1 bytes: fits with its NUL
	writeFile(t, filepath.Join(p, last), []byte("deep"))
	_, err = unix.Open(filepath.Join(p, last+"e"), unix.O_CREAT|unix.O_WRONLY, 0o644)
	wantErrno(t, err, unix.ENAMETOOLONG, "create with a path of PATH_MAX bytes")
}

// TestHostileSymlinkTarget: a target of 4095 bytes (PATH_MAX with its NUL)
// is stored and read back whole; 4096 bytes is ENAMETOOLONG, as on tmpfs.
func TestHostileSymlinkTarget(t *testing.T) {
	t.Parallel()
	mnt, _, _ := mountFS(t)
	target := strings.Repeat("t/", 2047) + "x" // 4095 bytes
	noErr(t, unix.Symlink(target, filepath.Join(mnt, "l4095")), "symlink with a 4095-byte target")
	buf := make([]byte, 8192)
	n, err := unix.Readlink(filepath.Join(mnt, "l4095"), buf)
	if err != nil || string(buf[:n]) != target {
		t.Errorf("readlink of a 4095-byte target: %d bytes, %v", n, errString(err))
	}
	st := lstat(t, filepath.Join(mnt, "l4095"))
	if st.Size != 4095 {
		t.Errorf("lstat size of a 4095-byte link: %d", st.Size)
	}
	// A small buffer gets the start, truncated, as readlink(2) says.
	if n, err := unix.Readlink(filepath.Join(mnt, "l4095"), buf[:10]); err != nil || n != 10 || string(buf[:10]) != target[:10] {
		t.Errorf("readlink into 10 bytes: %d, %v", n, err)
	}
	wantErrno(t, unix.Symlink(target+"y", filepath.Join(mnt, "l4096")), unix.ENAMETOOLONG, "symlink with a 4096-byte target")
	var st2 unix.Stat_t
	wantErrno(t, unix.Lstat(filepath.Join(mnt, "l4096"), &st2), unix.ENOENT, "the failed symlink")
	// An empty target is ENOENT (the kernel refuses empty paths).
	wantErrno(t, unix.Symlink("", filepath.Join(mnt, "empty")), unix.ENOENT, "symlink with an empty target")
	// Targets with every byte but NUL ('/' included) round-trip.
	var all []byte
	for c := 1; c < 256; c++ {
		all = append(all, byte(c))
	}
	noErr(t, unix.Symlink(string(all), filepath.Join(mnt, "bytes")), "symlink with every byte in the target")
	if n, err := unix.Readlink(filepath.Join(mnt, "bytes"), buf); err != nil || !bytes.Equal(buf[:n], all) {
		t.Errorf("readlink of a target with every byte: %q, %v", buf[:max(n, 0)], err)
	}
}

// TestHostileNameBytes: every byte but '/' and NUL in the names link,
// mkdir and symlink make and in the target of rename and link, listed by
// readdir with the right type.
func TestHostileNameBytes(t *testing.T) {
	t.Parallel()
	mnt, _, _ := mountFS(t)
	src := filepath.Join(mnt, "src")
	writeFile(t, src, []byte("linked"))
	d := filepath.Join(mnt, "d")
	noErr(t, os.Mkdir(d, 0o755), "mkdir")
	want := map[string]byte{}
	for c := 1; c < 256; c++ {
		if c == '/' {
			continue
		}
		b := string([]byte{byte(c)})
		names := map[string]byte{
			"l" + b:        unix.DT_REG,
			"m" + b:        unix.DT_DIR,
			"s" + b + b:    unix.DT_LNK,
			b + "r" + b:    unix.DT_REG,
			"\xff\xfe" + b: unix.DT_REG,
		}
		if err := unix.Link(src, filepath.Join(d, "l"+b)); err != nil {
			t.Errorf("link to %q: %v", "l"+b, err)
		}
		if err := unix.Mkdir(filepath.Join(d, "m"+b), 0o755); err != nil {
			t.Errorf("mkdir %q: %v", "m"+b, err)
		}
		if err := unix.Symlink(b, filepath.Join(d, "s"+b+b)); err != nil {
			t.Errorf("symlink %q: %v", "s"+b+b, err)
		}
		tmp := filepath.Join(d, "tmp")
		writeFile(t, tmp, nil)
		if err := unix.Rename(tmp, filepath.Join(d, b+"r"+b)); err != nil {
			t.Errorf("rename to %q: %v", b+"r"+b, err)
		}
		if err := unix.Link(filepath.Join(d, "l"+b), filepath.Join(d, "\xff\xfe"+b)); err != nil {
			t.Errorf("link from %q to %q: %v", "l"+b, "\xff\xfe"+b, err)
		}
		for n, typ := range names {
			want[n] = typ
		}
	}
	got := map[string]byte{}
	for _, e := range readAllDirents(t, d) {
		if e.name != "." && e.name != ".." {
			if _, dup := got[e.name]; dup {
				t.Errorf("readdir lists %q twice", e.name)
			}
			got[e.name] = e.typ
		}
	}
	for n, typ := range want {
		if g, ok := got[n]; !ok {
			t.Errorf("readdir lacks %q", n)
		} else if g != typ {
			t.Errorf("readdir type of %q: %d, want %d", n, g, typ)
		}
	}
	if len(got) != len(want) {
		t.Errorf("readdir lists %d names, want %d", len(got), len(want))
	}
	if st := lstat(t, src); st.Nlink != 1+2*254 {
		t.Errorf("nlink after %d links: %d", 2*254, st.Nlink)
	}
	buf := make([]byte, 8)
	if n, err := unix.Readlink(filepath.Join(d, "s\x01\x01"), buf); err != nil || string(buf[:n]) != "\x01" {
		t.Errorf("readlink: %q, %v", buf[:max(n, 0)], err)
	}
}

// TestHostileOffsets: negative, huge and overflowing offsets and lengths
// for pread, pwrite, lseek, fallocate, truncate and copy_file_range.
func TestHostileOffsets(t *testing.T) {
	t.Parallel()
	mnt, _, _ := mountFS(t)
	path := filepath.Join(mnt, "f")
	writeFile(t, path, []byte("0123456789"))
	fd := openFd(t, path, unix.O_RDWR, 0)
	defer closeFd(fd)
	dst := openFd(t, filepath.Join(mnt, "dst"), unix.O_CREAT|unix.O_RDWR, 0o644)
	defer closeFd(dst)
	b := make([]byte, 4)

	_, err := unix.Pread(fd, b, -1)
	wantErrno(t, err, unix.EINVAL, "pread at -1")
	_, err = unix.Pread(fd, b, math.MinInt64)
	wantErrno(t, err, unix.EINVAL, "pread at MinInt64")
	_, err = unix.Pwrite(fd, b, -1)
	wantErrno(t, err, unix.EINVAL, "pwrite at -1")
	_, err = unix.Pread(fd, b, math.MaxInt64)
	wantErrno(t, err, unix.EINVAL, "pread of 4 bytes at MaxInt64")
	if n, err := unix.Pread(fd, b[:1], math.MaxInt64-1); n != 0 || err != nil {
		t.Errorf("pread of 1 byte at MaxInt64-1: %d, %v; want 0, nil", n, err)
	}

	seek := func(off int64, whence int, want int64, wantErr error, what string) {
		t.Helper()
		got, err := unix.Seek(fd, off, whence)
		if wantErr != nil {
			wantErrno(t, err, wantErr.(unix.Errno), "%s", what)
		} else if err != nil || got != want {
			t.Errorf("%s: %d, %v; want %d", what, got, errString(err), want)
		}
	}
	seek(-1, unix.SEEK_SET, 0, unix.EINVAL, "lseek to -1")
	seek(math.MaxInt64, unix.SEEK_SET, math.MaxInt64, nil, "lseek to MaxInt64")
	seek(1, unix.SEEK_CUR, 0, unix.EINVAL, "lseek past MaxInt64 with SEEK_CUR")
	seek(-11, unix.SEEK_END, 0, unix.EINVAL, "lseek before 0 with SEEK_END")
	seek(math.MaxInt64, unix.SEEK_END, 0, unix.EINVAL, "lseek SEEK_END overflowing")
	seek(0, 5, 0, unix.EINVAL, "lseek with whence 5")
	seek(-1, unix.SEEK_DATA, 0, unix.ENXIO, "SEEK_DATA at -1")
	seek(-1, unix.SEEK_HOLE, 0, unix.ENXIO, "SEEK_HOLE at -1")
	seek(10, unix.SEEK_DATA, 0, unix.ENXIO, "SEEK_DATA at EOF")
	seek(10, unix.SEEK_HOLE, 0, unix.ENXIO, "SEEK_HOLE at EOF")
	seek(math.MaxInt64, unix.SEEK_DATA, 0, unix.ENXIO, "SEEK_DATA at MaxInt64")
	seek(math.MinInt64, unix.SEEK_HOLE, 0, unix.ENXIO, "SEEK_HOLE at MinInt64")
	seek(3, unix.SEEK_HOLE, 10, nil, "SEEK_HOLE in data")

	wantErrno(t, unix.Fallocate(fd, 0, -1, 10), unix.EINVAL, "fallocate at -1")
	wantErrno(t, unix.Fallocate(fd, 0, 0, 0), unix.EINVAL, "fallocate of 0 bytes")
	wantErrno(t, unix.Fallocate(fd, 0, 0, -1), unix.EINVAL, "fallocate of -1 bytes")
	wantErrno(t, unix.Fallocate(fd, 0, math.MaxInt64, 1), unix.EFBIG, "fallocate at MaxInt64")
	wantErrno(t, unix.Fallocate(fd, 0, 1, math.MaxInt64), unix.EFBIG, "fallocate with offset+length overflowing")
	wantErrno(t, unix.Fallocate(fd, unix.FALLOC_FL_KEEP_SIZE, math.MaxInt64-10, 100), unix.EFBIG, "fallocate KEEP_SIZE past MaxInt64")
	wantErrno(t, unix.Fallocate(fd, unix.FALLOC_FL_PUNCH_HOLE, 0, 4), unix.EOPNOTSUPP, "PUNCH_HOLE without KEEP_SIZE")
	wantErrno(t, unix.Fallocate(fd, unix.FALLOC_FL_PUNCH_HOLE|unix.FALLOC_FL_KEEP_SIZE, -4, 4), unix.EINVAL, "PUNCH_HOLE at -4")

	wantErrno(t, unix.Ftruncate(fd, -1), unix.EINVAL, "ftruncate to -1")
	wantErrno(t, unix.Truncate(path, -1), unix.EINVAL, "truncate to -1")
	wantErrno(t, unix.Truncate(path, math.MinInt64), unix.EINVAL, "truncate to MinInt64")

	cfr := func(inOff, outOff int64, n int) (int, error) {
		return unix.CopyFileRange(fd, &inOff, dst, &outOff, n, 0)
	}
	_, err = cfr(-1, 0, 4)
	wantErrno(t, err, unix.EOVERFLOW, "copy_file_range from -1")
	_, err = cfr(0, -1, 4)
	wantErrno(t, err, unix.EOVERFLOW, "copy_file_range to -1")
	_, err = cfr(0, math.MaxInt64, 4)
	wantErrno(t, err, unix.EFBIG, "copy_file_range to MaxInt64")
	if n, err := cfr(0, math.MaxInt64-2, 4); n != 2 || err != nil {
		t.Errorf("copy_file_range of 4 bytes to MaxInt64-2: %d, %v; want 2 (cut at the largest file size)", n, errString(err))
	}
	if n, err := cfr(math.MaxInt64-1, 0, 1); n != 0 || err != nil {
		t.Errorf("copy_file_range from MaxInt64-1: %d, %v; want 0, nil", n, errString(err))
	}
	var in, out int64 = 0, 0
	_, err = unix.CopyFileRange(fd, &in, dst, &out, 4, 1)
	wantErrno(t, err, unix.EINVAL, "copy_file_range with flags 1")
	// Huge lengths are cut to the end of the source.
	for _, c := range []struct {
		in, out int64
		n       int
		want    string
	}{
		{1, 0, math.MaxInt64, "123456789"},
		{0, 1, math.MaxInt64, "\x000123456789"},
		{2, 0, math.MaxInt64 - 2, "23456789"},
	} {
		noErr(t, unix.Ftruncate(dst, 0), "ftruncate")
		n, err := cfr(c.in, c.out, c.n)
		got := readFile(t, filepath.Join(mnt, "dst"))
		if err != nil || n != len(c.want)-int(c.out) || string(got) != c.want {
			t.Errorf("copy_file_range(in %d, out %d, %d bytes) of a 10-byte file: %d, %v, destination %q; want %q",
				c.in, c.out, c.n, n, errString(err), got, c.want)
		}
	}

	// The file is what it was.
	if got := readFile(t, path); string(got) != "0123456789" {
		t.Errorf("file after the hostile calls: %q", got)
	}
}

// TestHostileXattr: xattr names and flags TestXattr does not try.
func TestHostileXattr(t *testing.T) {
	t.Parallel()
	mnt, _, _ := mountFS(t)
	p := filepath.Join(mnt, "f")
	writeFile(t, p, nil)
	buf := make([]byte, 64)
	wantErrno(t, unix.Setxattr(p, "", []byte("v"), 0), unix.ERANGE, "setxattr with an empty name")
	_, err := unix.Getxattr(p, "", buf)
	wantErrno(t, err, unix.ERANGE, "getxattr with an empty name")
	wantErrno(t, unix.Removexattr(p, ""), unix.ERANGE, "removexattr with an empty name")
	for _, n := range []string{"trusted.", "security."} {
		if n == "trusted." && os.Geteuid() != 0 {
			continue
		}
		wantErrno(t, unix.Setxattr(p, n, []byte("v"), 0), unix.EINVAL, "setxattr of the bare prefix %s", n)
		_, err := unix.Getxattr(p, n, buf)
		wantErrno(t, err, unix.EINVAL, "getxattr of the bare prefix %s", n)
	}
	_, err = unix.Getxattr(p, "user.", buf)
	wantErrno(t, err, unix.EINVAL, "getxattr of the bare prefix user.")
	wantErrno(t, unix.Removexattr(p, "user."), unix.EINVAL, "removexattr of the bare prefix user.")
	for _, n := range []string{"User.x", "user", "usr.x", ".user.x", "xattr.user.x", "system.", "system.nonesuch", "os2.x", "\xff.x"} {
		wantErrno(t, unix.Setxattr(p, n, []byte("v"), 0), unix.EOPNOTSUPP, "setxattr %q", n)
		wantErrno(t, unix.Removexattr(p, n), unix.EOPNOTSUPP, "removexattr %q", n)
	}
	// Both flags at once: CREATE fails on an existing name, REPLACE on a
	// missing one.
	both := unix.XATTR_CREATE | unix.XATTR_REPLACE
	wantErrno(t, unix.Setxattr(p, "user.new", []byte("v"), both), unix.ENODATA, "setxattr CREATE|REPLACE of a new name")
	noErr(t, unix.Setxattr(p, "user.old", []byte("v"), 0), "setxattr")
	wantErrno(t, unix.Setxattr(p, "user.old", []byte("v"), both), unix.EEXIST, "setxattr CREATE|REPLACE of an existing name")
	wantErrno(t, unix.Setxattr(p, "user.x", []byte("v"), -1), unix.EINVAL, "setxattr with flags -1")
	// A name with a 64 KiB value and a 255-byte name at once, then
	// everything listed.
	long := "user." + strings.Repeat("\x01", 250)
	noErr(t, unix.Setxattr(p, long, bytes.Repeat([]byte{0}, 65536), 0), "setxattr: longest name and largest value")
	if n, err := unix.Getxattr(p, long, nil); n != 65536 || err != nil {
		t.Errorf("size of the largest value: %d, %v", n, err)
	}
	if got := listXattrs(t, p); !contains(got, long) || !contains(got, "user.old") || len(got) != 2 {
		t.Errorf("listxattr: %q", got)
	}
}

// hstRun runs mmapfs with args and returns its exit status, standard
// output and error. Should it mount on mnt (when not ""), it is stopped
// with SIGTERM, and mounted is true.
func hstRun(t *testing.T, bin, mnt string, args ...string) (code int, stdout, stderr string, mounted bool) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), binCmdTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, args...)
	cmd.WaitDelay = 5 * time.Second
	var out, errb binBuffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	noErr(t, cmd.Start(), "start mmapfs")
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	var err error
wait:
	for {
		select {
		case err = <-done:
			break wait
		case <-time.After(20 * time.Millisecond):
			if mnt != "" && !mounted {
				if m := binFindMount(mnt); m != nil && m.fstype == "fuse.mmapfs" {
					mounted = true
					cmd.Process.Signal(syscall.SIGTERM)
				}
			}
		}
	}
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatalf("mmapfs %q: %v", args, err)
	}
	if mnt != "" && binFindMount(mnt) != nil {
		mounted = true
		binForceUnmount(t, mnt)
	}
	return code, out.String(), errb.String(), mounted
}

// TestHostileOptions: garbage option strings give exit status 2 and one
// line on standard error, and mount nothing. Empty items (",,,") are
// ignored, as mount(8) and tmpfs ignore them.
func TestHostileOptions(t *testing.T) {
	bin := binBuild(t)
	t.Parallel()
	mnt := binMountpoint(t)
	memdir := binMemDir(t)
	long := strings.Repeat("a", 100000)
	for _, o := range []string{
		"=", "=x", "=1G", "size=", "size=-1", "size=1x", "size=1G=2", "size==1",
		"size=99999999999999999999999", "size=1e9", "size=0x", "size=%",
		"size=-5%", "size= 1G", "size", "size,", "inodes=abc", "nr_inodes=abc",
		"nr_inodes=-5", "nr_inodes=", "inodes=1.5", "mode=999", "mode=", "mode=rwx",
		"mode=-1", "mode=0777777", "uid=nosuchuser", "uid=", "uid=-1", "uid=4294967296",
		"gid=nosuchgroup", "gid=1.0", "bogus", "bogus=1", "size=1G,bogus", ",,=,,",
		long, "size=" + long, long + "=1", "\xff\xfe", "size=\xff", "\xff=1",
		"size=1\nbogus", "mode=\n",
	} {
		code, stdout, stderr, mounted := hstRun(t, bin, mnt, "mount", "--memdir", memdir, "-o", o, mnt)
		short := o
		if len(short) > 40 {
			short = short[:40] + "..."
		}
		if code != 2 || strings.Count(stderr, "\n") != 1 || !strings.HasPrefix(stderr, "mmapfs: ") || !strings.HasSuffix(stderr, "\n") || stdout != "" {
			t.Errorf("-o %q: exit status %d, stdout %q, stderr %.300q; want 2 and one line", short, code, stdout, stderr)
		}
		if len(stderr) > 1000 {
			t.Logf("note: -o %q: a message of %d bytes", short, len(stderr))
		}
		if mounted {
			t.Errorf("-o %q mounted", short)
		}
	}
	// Flags with garbage values.
	for _, args := range [][]string{
		{"--size", ""}, {"--size", "-1"}, {"--size=1x"}, {"--inodes", "abc"}, {"--mode", "999"},
		{"--uid", "nosuchuser"}, {"--size"}, {"--nosuchflag"}, {"-o"},
	} {
		all := append(append([]string{"mount", "--memdir", memdir}, args...), mnt)
		if len(args) == 1 && (args[0] == "--size" || args[0] == "-o") {
			all = []string{"mount", "--memdir", memdir, mnt, args[0]}
		}
		code, _, stderr, mounted := hstRun(t, bin, mnt, all...)
		if code != 2 || strings.Count(stderr, "\n") != 1 || !strings.HasPrefix(stderr, "mmapfs: ") {
			t.Errorf("mmapfs %q: exit status %d, stderr %.300q; want 2 and one line", all, code, stderr)
		}
		if mounted {
			t.Errorf("mmapfs %q mounted", all)
		}
	}
	if dirs := binStoreDirs(t, memdir); len(dirs) != 0 {
		t.Errorf("memory stores left behind: %q", dirs)
	}

	// Empty items are ignored.
	p := binStart(t, nil, "mount", "--memdir", memdir, "-o", ",,,size=16m,,", mnt)
	binWaitMounted(t, p, mnt)
	p.binSignal(syscall.SIGTERM)
	if code := p.binWait(); code != 0 {
		t.Errorf("-o ,,,size=16m,,: exit status %d; output:\n%s", code, p.output)
	}
}

// TestHostileMountpoint: as mount(8) with tmpfs, a symlink to a directory
// mounts on the directory, a path with a trailing slash on the directory;
// a dangling symlink and a symlink to a file are one-line errors.
func TestHostileMountpoint(t *testing.T) {
	bin := binBuild(t)
	t.Parallel()
	memdir := binMemDir(t)
	for _, c := range []struct {
		name string
		arg  func(dir string) string
	}{
		{"symlink-to-dir", func(dir string) string {
			l := filepath.Join(filepath.Dir(dir), "link")
			noErr(t, os.Symlink(dir, l), "symlink")
			return l
		}},
		{"relative-symlink-to-dir", func(dir string) string {
			l := filepath.Join(filepath.Dir(dir), "rlink")
			noErr(t, os.Symlink(filepath.Base(dir), l), "symlink")
			return l
		}},
		{"trailing-slash", func(dir string) string { return dir + "/" }},
		{"dot-dot", func(dir string) string { return dir + "/../" + filepath.Base(dir) }},
	} {
		t.Run(c.name, func(t *testing.T) {
			mnt := binMountpoint(t)
			arg := c.arg(mnt)
			p := binStart(t, nil, "mount", "--memdir", memdir, arg)
			binWaitMounted(t, p, mnt)
			binReadWrite(t, arg)
			if _, err := os.Stat(filepath.Join(mnt, "file")); err != nil {
				t.Errorf("the file written through %s is not in %s: %v", arg, mnt, err)
			}
			// fusermount3 refuses a symlink (EINVAL) and umount(8)
			// would follow it: unmount by the directory.
			noErr(t, binUnmount(t, mnt), "fusermount3 -u %s", mnt)
			if code := p.binWait(); code != 0 {
				t.Errorf("exit status %d; output:\n%s", code, p.output)
			}
			binWaitUnmounted(t, mnt)
		})
	}
	dir := t.TempDir()
	dangling := filepath.Join(dir, "dangling")
	noErr(t, os.Symlink(filepath.Join(dir, "nowhere"), dangling), "symlink")
	file := filepath.Join(dir, "file")
	writeFile(t, file, nil)
	flink := filepath.Join(dir, "flink")
	noErr(t, os.Symlink(file, flink), "symlink")
	loop := filepath.Join(dir, "loop")
	noErr(t, os.Symlink(loop, loop), "symlink")
	for _, c := range []struct{ arg, want string }{
		{dangling, "mmapfs: mount point " + dangling + ": no such file or directory\n"},
		{flink, "mmapfs: mount point " + flink + ": not a directory\n"},
		{file + "/", "mmapfs: mount point " + file + "/: not a directory\n"},
		{loop, "mmapfs: mount point " + loop + ": too many levels of symbolic links\n"},
		{"", "mmapfs: "},
	} {
		code, stdout, stderr, _ := hstRun(t, bin, "", "mount", "--memdir", memdir, c.arg)
		if code == 0 || strings.Count(stderr, "\n") != 1 || !strings.HasPrefix(stderr, c.want) || stdout != "" {
			t.Errorf("mount on %q: exit status %d, stderr %q; want non-zero and %q", c.arg, code, stderr, c.want)
		}
	}
	if dirs := binStoreDirs(t, memdir); len(dirs) != 0 {
		t.Errorf("memory stores left behind: %q", dirs)
	}
}
