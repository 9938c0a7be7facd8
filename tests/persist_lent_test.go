package tests

import (
	"bytes"
	"path/filepath"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// TestPersistLentKill: with passthrough on a persistent store, the kernel
// writes the store files of files open for writing without the server. A
// SIGKILL of the server while they are open loses nothing acknowledged:
// after the next mount each file has the size, data and mtime the kernel
// gave it (store/loans.go), and fsck finds the store clean.
func TestPersistLentKill(t *testing.T) {
	pstSetup(t)
	needPassthrough(t)
	store := pstStoreDir(t)
	mnt := binMountpoint(t)
	j := func(rel string) string { return filepath.Join(mnt, rel) }
	p := pstMount(t, store, mnt, false)
	binWaitOutput(t, p, "mounted ")
	if !bytes.Contains([]byte(p.output.String()), []byte("passthrough on")) {
		t.Fatalf("passthrough is not on with --store:\n%s", p.output)
	}
	past := []unix.Timespec{{Sec: 1500000000, Nsec: 7}, {Sec: 1500000001, Nsec: 8}}
	var fds []int
	defer func() {
		for _, fd := range fds {
			unix.Close(fd)
		}
	}()
	open := func(name string, flags int) int {
		t.Helper()
		fd, err := unix.Open(j(name), flags|unix.O_CLOEXEC, 0o644)
		noErr(t, err, "open %s", name)
		fds = append(fds, fd)
		return fd
	}
	pwrite := func(fd int, b []byte, off int64) {
		t.Helper()
		n, err := unix.Pwrite(fd, b, off)
		noErr(t, err, "pwrite")
		if n != len(b) {
			t.Fatalf("pwrite: %d of %d bytes", n, len(b))
		}
	}
	want := map[string][]byte{}

	// Grown by the kernel and never looked at by the server: no stat,
	// no fsync, no close before the kill.
	grown := open("grown", unix.O_RDWR|unix.O_CREAT|unix.O_EXCL)
	want["grown"] = append(modelBytes(1, 300<<10), make([]byte, 5<<20)...)
	want["grown"] = append(want["grown"], "the end"...)
	pwrite(grown, modelBytes(1, 300<<10), 0)
	pwrite(grown, []byte("the end"), 300<<10+5<<20)

	// An existing file opened again for writing, appended to.
	pstWriteAt(t, j("appended"), 0, []byte("line 1\n"))
	app := open("appended", unix.O_WRONLY|unix.O_APPEND)
	for i := 0; i < 100; i++ {
		_, err := unix.Write(app, []byte("line n\n"))
		noErr(t, err, "append")
	}
	want["appended"] = append([]byte("line 1\n"), bytes.Repeat([]byte("line n\n"), 100)...)

	// Times set while open for writing, then not written again: the
	// times set stand.
	set := open("set", unix.O_RDWR|unix.O_CREAT|unix.O_EXCL)
	pwrite(set, []byte("before the times were set"), 0)
	noErr(t, unix.UtimesNanoAt(unix.AT_FDCWD, j("set"), past, 0), "utimensat")
	want["set"] = []byte("before the times were set")

	// Times set, then written by the kernel: the write's mtime.
	later := open("later", unix.O_RDWR|unix.O_CREAT|unix.O_EXCL)
	pwrite(later, []byte("first"), 0)
	noErr(t, unix.UtimesNanoAt(unix.AT_FDCWD, j("later"), past, 0), "utimensat")
	time.Sleep(20 * time.Millisecond) // past the kernel's timestamp granularity
	pwrite(later, []byte("second write, after the times were set"), 5)
	want["later"] = []byte("firstsecond write, after the times were set")

	// Stored through a shared mapping and msync'd, mapping still there.
	mapped := open("mapped", unix.O_RDWR|unix.O_CREAT|unix.O_EXCL)
	noErr(t, unix.Ftruncate(mapped, 64<<10), "ftruncate")
	mem, err := unix.Mmap(mapped, 0, 64<<10, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_SHARED)
	noErr(t, err, "mmap")
	copy(mem[1000:], "stored through a mapping")
	noErr(t, unix.Msync(mem, unix.MS_SYNC), "msync")
	want["mapped"] = make([]byte, 64<<10)
	copy(want["mapped"][1000:], "stored through a mapping")

	// Written and fsync'd.
	synced := open("synced", unix.O_RDWR|unix.O_CREAT|unix.O_EXCL)
	pwrite(synced, modelBytes(2, 70000), 0)
	noErr(t, unix.Fsync(synced), "fsync")
	want["synced"] = modelBytes(2, 70000)

	// What the live mount shows, times included (stat goes to the
	// server, which takes what the kernel wrote); "grown" is not looked
	// at before the kill.
	before := map[string]unix.Stat_t{}
	for name := range want {
		if name == "grown" {
			continue
		}
		var st unix.Stat_t
		noErr(t, unix.Stat(j(name), &st), "stat %s", name)
		before[name] = st
	}
	if st := before["set"]; st.Mtim != past[1] {
		t.Fatalf("set: mtime %v on the live mount, want %v", st.Mtim, past[1])
	}
	if st := before["later"]; st.Mtim == past[1] {
		t.Fatalf("later: mtime is still the one set before the write")
	}

	pstKill(t, p, mnt)
	noErr(t, unix.Munmap(mem), "munmap")
	for _, fd := range fds {
		unix.Close(fd)
	}
	fds = nil

	p = pstMount(t, store, mnt, false)
	for name, data := range want {
		var st unix.Stat_t
		noErr(t, unix.Stat(j(name), &st), "stat %s after the kill", name)
		if st.Size != int64(len(data)) {
			t.Errorf("%s: size %d after the kill, want %d", name, st.Size, len(data))
		}
		got := readFile(t, j(name))
		if !bytes.Equal(got, data) {
			t.Errorf("%s: data differs after the kill: %s", name, pstDataDiff(data, got))
		}
		if b, ok := before[name]; ok && (st.Mtim != b.Mtim || st.Ctim != b.Ctim) {
			t.Errorf("%s: mtime %v ctime %v after the kill, want %v %v as the live mount showed", name, st.Mtim, st.Ctim, b.Mtim, b.Ctim)
		}
	}
	pstUnmount(t, p, mnt)
	pstRequireFsckClean(t, store)
	// And once more, after a clean unmount: the recovered state stands.
	p = pstMount(t, store, mnt, false)
	for name, data := range want {
		if got := readFile(t, j(name)); !bytes.Equal(got, data) {
			t.Errorf("%s: data differs after a second mount", name)
		}
	}
	pstUnmount(t, p, mnt)
}
