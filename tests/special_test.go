package tests

import (
	"bytes"
	"io"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// TestFIFO: a named pipe on the mount passes data between its two ends.
func TestFIFO(t *testing.T) {
	t.Parallel()
	mnt, _, _ := mountFS(t)
	p := filepath.Join(mnt, "fifo")
	noErr(t, unix.Mkfifo(p, 0o640), "mkfifo")
	st := lstat(t, p)
	if st.Mode != unix.S_IFIFO|0o640 || st.Size != 0 {
		t.Errorf("fifo: mode %o size %d", st.Mode, st.Size)
	}
	// Opening the write end without a reader, non-blocking: ENXIO.
	_, err := unix.Open(p, unix.O_WRONLY|unix.O_NONBLOCK, 0)
	wantErrno(t, err, unix.ENXIO, "open a fifo for writing, non-blocking, no reader")

	pass := func(path string) {
		t.Helper()
		data := pattern(200<<10, 9) // more than a pipe buffer
		errc := make(chan error, 1)
		go func() {
			w, err := os.OpenFile(path, os.O_WRONLY, 0)
			if err != nil {
				errc <- err
				return
			}
			_, err = w.Write(data)
			w.Close()
			errc <- err
		}()
		r, err := os.OpenFile(path, os.O_RDONLY, 0)
		noErr(t, err, "open fifo for reading")
		defer r.Close()
		got, err := io.ReadAll(r)
		noErr(t, err, "read fifo")
		if err := <-errc; err != nil {
			t.Errorf("writer: %v", err)
		}
		if !bytes.Equal(got, data) {
			t.Errorf("through %s: got %d bytes, want %d, differ at %d", path, len(got), len(data), firstDiff(got, data))
		}
	}
	pass(p)
	// Renamed and hard-linked, it is the same pipe.
	q := filepath.Join(mnt, "renamed")
	noErr(t, unix.Rename(p, q), "rename")
	pass(q)
	noErr(t, os.Link(q, p), "link")
	if n := lstat(t, q).Nlink; n != 2 {
		t.Errorf("fifo nlink %d after link", n)
	}
	// One end through each name.
	errc := make(chan error, 1)
	go func() {
		w, err := os.OpenFile(p, os.O_WRONLY, 0)
		if err == nil {
			_, err = w.Write([]byte("across names"))
			w.Close()
		}
		errc <- err
	}()
	r, err := os.Open(q)
	noErr(t, err, "open")
	got, _ := io.ReadAll(r)
	r.Close()
	if err := <-errc; err != nil || string(got) != "across names" {
		t.Errorf("writer on one link, reader on the other: %q, %v", got, err)
	}
	// Nothing was stored: the size stays 0.
	if st := lstat(t, q); st.Size != 0 {
		t.Errorf("fifo size %d after use", st.Size)
	}
	// mknod with S_IFIFO is the same as mkfifo.
	noErr(t, unix.Mknod(filepath.Join(mnt, "viamknod"), unix.S_IFIFO|0o600, 0), "mknod S_IFIFO")
	pass(filepath.Join(mnt, "viamknod"))
}

// TestUnixSocket: a unix socket bound on the mount accepts connections,
// also after the socket file is renamed.
func TestUnixSocket(t *testing.T) {
	t.Parallel()
	mnt, _, _ := mountFS(t)
	p := filepath.Join(mnt, "sock")
	if len(p) >= 108 {
		t.Fatalf("socket path %q too long", p)
	}
	l, err := net.Listen("unix", p)
	noErr(t, err, "listen on %s", p)
	acceptDone := make(chan struct{})
	defer func() {
		l.Close()
		<-acceptDone
	}()
	go func() {
		defer close(acceptDone)
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				io.Copy(c, c)
			}()
		}
	}()
	st := lstat(t, p)
	if st.Mode&unix.S_IFMT != unix.S_IFSOCK {
		t.Errorf("socket file mode %o", st.Mode)
	}
	echo := func(path string) {
		t.Helper()
		c, err := net.DialTimeout("unix", path, 5*time.Second)
		if err != nil {
			t.Errorf("connect to %s: %v", path, err)
			return
		}
		defer c.Close()
		c.SetDeadline(time.Now().Add(10 * time.Second))
		msg := pattern(100<<10, 4)
		go c.Write(msg)
		got := make([]byte, len(msg))
		if _, err := io.ReadFull(c, got); err != nil || !bytes.Equal(got, msg) {
			t.Errorf("echo through %s: %v", path, err)
		}
	}
	echo(p)
	q := filepath.Join(mnt, "moved")
	noErr(t, unix.Rename(p, q), "rename socket")
	echo(q)
	noErr(t, os.Link(q, p), "link socket")
	echo(p)
	// A socket created with mknod is not bound: connect is refused.
	np := filepath.Join(mnt, "mknodsock")
	noErr(t, unix.Mknod(np, unix.S_IFSOCK|0o644, 0), "mknod S_IFSOCK")
	_, err = net.DialTimeout("unix", np, 5*time.Second)
	wantErrno(t, err, unix.ECONNREFUSED, "connect to an unbound socket file")
	// A regular file is not a socket.
	writeFile(t, filepath.Join(mnt, "f"), nil)
	_, err = net.DialTimeout("unix", filepath.Join(mnt, "f"), 5*time.Second)
	wantErrno(t, err, unix.ECONNREFUSED, "connect to a regular file")
	// Binding over an existing name: EADDRINUSE.
	_, err = net.Listen("unix", filepath.Join(mnt, "f"))
	wantErrno(t, err, unix.EADDRINUSE, "bind over an existing file")
}

// TestDeviceNodes: mknod makes character and block devices with the given
// numbers; the character device 1,3 behaves as /dev/null.
func TestDeviceNodes(t *testing.T) {
	needRoot(t)
	t.Parallel()
	mnt, _, _ := mountFS(t)
	c := filepath.Join(mnt, "null")
	noErr(t, unix.Mknod(c, unix.S_IFCHR|0o666, int(unix.Mkdev(1, 3))), "mknod char 1,3")
	noErr(t, unix.Chmod(c, 0o666), "chmod") // past the umask
	st := lstat(t, c)
	if st.Mode != unix.S_IFCHR|0o666 || st.Rdev != unix.Mkdev(1, 3) {
		t.Errorf("char device: mode %o rdev %d:%d", st.Mode, unix.Major(st.Rdev), unix.Minor(st.Rdev))
	}
	b := filepath.Join(mnt, "blk")
	noErr(t, unix.Mknod(b, unix.S_IFBLK|0o600, int(unix.Mkdev(259, 123456))), "mknod block 259,123456")
	st = lstat(t, b)
	if st.Mode != unix.S_IFBLK|0o600 || st.Rdev != unix.Mkdev(259, 123456) {
		t.Errorf("block device: mode %o rdev %d:%d", st.Mode, unix.Major(st.Rdev), unix.Minor(st.Rdev))
	}
	// Regular files through mknod.
	noErr(t, unix.Mknod(filepath.Join(mnt, "reg"), unix.S_IFREG|0o600, 0), "mknod S_IFREG")
	if st := lstat(t, filepath.Join(mnt, "reg")); st.Mode != unix.S_IFREG|0o600 || st.Size != 0 {
		t.Errorf("mknod S_IFREG: mode %o size %d", st.Mode, st.Size)
	}
	noErr(t, unix.Mknod(filepath.Join(mnt, "reg0"), 0o600, 0), "mknod with no type")
	if st := lstat(t, filepath.Join(mnt, "reg0")); st.Mode != unix.S_IFREG|0o600 {
		t.Errorf("mknod with no type: mode %o, want a regular file", st.Mode)
	}
	wantErrno(t, unix.Mknod(filepath.Join(mnt, "dir"), unix.S_IFDIR|0o755, 0), unix.EPERM, "mknod S_IFDIR")

	// It behaves as /dev/null: the mount must allow device access, as tmpfs
	// does when mounted without nodev.
	f, err := os.OpenFile(c, os.O_RDWR, 0)
	if err != nil {
		t.Fatalf("open the char device 1,3: %v", err)
	}
	defer f.Close()
	if n, err := f.Write([]byte("discarded")); n != 9 || err != nil {
		t.Errorf("write to the null device: %d, %v", n, err)
	}
	if n, err := f.Read(make([]byte, 10)); n != 0 || err != io.EOF {
		t.Errorf("read from the null device: %d, %v; want 0, EOF", n, err)
	}
	// Still a device node with size 0 after use, and a rename keeps rdev.
	noErr(t, unix.Rename(c, c+"2"), "rename")
	if st := lstat(t, c+"2"); st.Rdev != unix.Mkdev(1, 3) || st.Size != 0 {
		t.Errorf("after rename: rdev %d:%d size %d", unix.Major(st.Rdev), unix.Minor(st.Rdev), st.Size)
	}
}

// TestLocks: flock and POSIX locks, within a process and across processes.
func TestLocks(t *testing.T) {
	t.Parallel()
	mnt, _, _ := mountFS(t)
	p := filepath.Join(mnt, "lockfile")
	writeFile(t, p, make([]byte, 1000))

	t.Run("flock", func(t *testing.T) {
		a := openFd(t, p, unix.O_RDWR, 0)
		defer closeFd(a)
		b := openFd(t, p, unix.O_RDWR, 0)
		defer closeFd(b)
		noErr(t, unix.Flock(a, unix.LOCK_EX|unix.LOCK_NB), "flock EX")
		wantErrno(t, unix.Flock(b, unix.LOCK_EX|unix.LOCK_NB), unix.EWOULDBLOCK, "second flock EX on another open file")
		wantErrno(t, unix.Flock(b, unix.LOCK_SH|unix.LOCK_NB), unix.EWOULDBLOCK, "flock SH against EX")
		noErr(t, unix.Flock(a, unix.LOCK_UN), "unlock")
		noErr(t, unix.Flock(b, unix.LOCK_SH|unix.LOCK_NB), "flock SH")
		noErr(t, unix.Flock(a, unix.LOCK_SH|unix.LOCK_NB), "second flock SH")
		wantErrno(t, unix.Flock(a, unix.LOCK_EX|unix.LOCK_NB), unix.EWOULDBLOCK, "upgrade against another SH")
		noErr(t, unix.Flock(b, unix.LOCK_UN), "unlock")
		noErr(t, unix.Flock(a, unix.LOCK_EX|unix.LOCK_NB), "upgrade once alone")
		// A blocking flock waits for the holder.
		done := make(chan error, 1)
		go func() { done <- unix.Flock(b, unix.LOCK_EX) }()
		select {
		case err := <-done:
			t.Errorf("blocking flock returned while held: %v", err)
		case <-time.After(100 * time.Millisecond):
		}
		noErr(t, unix.Flock(a, unix.LOCK_UN), "unlock")
		select {
		case err := <-done:
			noErr(t, err, "blocking flock")
		case <-time.After(10 * time.Second):
			t.Fatalf("blocking flock not granted after unlock")
		}
		// Closing the descriptor releases.
		unix.Flock(b, unix.LOCK_UN)
	})
	t.Run("OFD", func(t *testing.T) {
		a := openFd(t, p, unix.O_RDWR, 0)
		defer closeFd(a)
		b := openFd(t, p, unix.O_RDWR, 0)
		defer closeFd(b)
		lk := func(typ int16, start, n int64) *unix.Flock_t {
			return &unix.Flock_t{Type: typ, Start: start, Len: n}
		}
		noErr(t, unix.FcntlFlock(uintptr(a), unix.F_OFD_SETLK, lk(unix.F_WRLCK, 0, 100)), "OFD write lock")
		wantErrno(t, unix.FcntlFlock(uintptr(b), unix.F_OFD_SETLK, lk(unix.F_WRLCK, 50, 10)), unix.EAGAIN, "conflicting OFD lock")
		noErr(t, unix.FcntlFlock(uintptr(b), unix.F_OFD_SETLK, lk(unix.F_WRLCK, 100, 10)), "adjacent OFD lock")
		q := lk(unix.F_WRLCK, 0, 0)
		noErr(t, unix.FcntlFlock(uintptr(b), unix.F_OFD_GETLK, q), "OFD getlk")
		if q.Type != unix.F_WRLCK || q.Start != 0 || q.Len != 100 || q.Pid != -1 {
			t.Errorf("F_OFD_GETLK: %+v, want a write lock 0+100 with pid -1", *q)
		}
		noErr(t, unix.FcntlFlock(uintptr(a), unix.F_OFD_SETLK, lk(unix.F_UNLCK, 0, 0)), "OFD unlock")
		noErr(t, unix.FcntlFlock(uintptr(b), unix.F_OFD_SETLK, lk(unix.F_WRLCK, 50, 10)), "OFD lock after unlock")
	})
	t.Run("CrossProcess", func(t *testing.T) {
		bin := helperBinary(t)
		a := openFd(t, p, unix.O_RDWR, 0)
		defer closeFd(a)
		noErr(t, unix.FcntlFlock(uintptr(a), unix.F_SETLK, &unix.Flock_t{Type: unix.F_WRLCK, Start: 0, Len: 100}), "F_SETLK")
		res := runHelper(t, bin,
			hop("setlk", p, "w", 50, 10),
			hop("setlk", p, "r", 0, 1),
			hop("setlk", p, "w", 100, 10),
			hop("getlk", p, 0, 0),
		)
		want := []string{"EAGAIN", "EAGAIN", "ok", "ok:" + strconv.Itoa(unix.F_WRLCK) + ":" + strconv.Itoa(os.Getpid()) + ":0:100"}
		if strings.Join(res, " ") != strings.Join(want, " ") {
			t.Errorf("other process against our POSIX lock: %v, want %v", res, want)
		}
		// flock across processes.
		noErr(t, unix.Flock(a, unix.LOCK_EX|unix.LOCK_NB), "flock")
		if res := runHelper(t, bin, hop("flock", p)); res[0] != "EWOULDBLOCK" && res[0] != "EAGAIN" {
			t.Errorf("other process flock against ours: %s, want EWOULDBLOCK", res[0])
		}
		noErr(t, unix.Flock(a, unix.LOCK_UN), "unlock")
		// Our lock goes away when we unlock; theirs when they exit.
		noErr(t, unix.FcntlFlock(uintptr(a), unix.F_SETLK, &unix.Flock_t{Type: unix.F_UNLCK}), "unlock")
		if res := runHelper(t, bin, hop("setlk", p, "w", 0, 0), hop("flock", p)); res[0] != "ok" || res[1] != "ok" {
			t.Errorf("other process after unlock: %v", res)
		}
		q := &unix.Flock_t{Type: unix.F_WRLCK}
		noErr(t, unix.FcntlFlock(uintptr(a), unix.F_GETLK, q), "F_GETLK")
		if q.Type != unix.F_UNLCK {
			t.Errorf("lock of an exited process still there: %+v", *q)
		}
	})
}
