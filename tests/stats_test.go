package tests

// mmapfs stats: the figures of a live server, asked for on its control
// socket, by the program (TestBinaryStats*) and in process (TestStats*).

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"mmapfs/control"
)

// binStats runs `mmapfs stats ARGS` (as cred if not nil) and returns its
// standard output, standard error and exit status.
func binStats(t *testing.T, cred *syscall.Credential, args ...string) (stdout, stderr string, code int) {
	t.Helper()
	return binRunCmd(t, cred, append([]string{"stats"}, args...)...)
}

// binStatsJSON runs `mmapfs stats --json MNT` and decodes its one object.
func binStatsJSON(t *testing.T, mnt string) *control.Stats {
	t.Helper()
	out, errs, code := binStats(t, nil, "--json", mnt)
	if code != 0 || errs != "" {
		t.Fatalf("mmapfs stats --json: exit %d, stderr %q", code, errs)
	}
	dec := json.NewDecoder(strings.NewReader(out))
	var st control.Stats
	if err := dec.Decode(&st); err != nil {
		t.Fatalf("mmapfs stats --json: %v in %q", err, out)
	}
	if dec.More() {
		t.Fatalf("mmapfs stats --json printed more than one object: %q", out)
	}
	return &st
}

// binCheckOneError checks that a failed `mmapfs stats` printed one line
// "mmapfs: ..." with all of words, nothing on standard output, and exited
// with status 1.
func binCheckOneError(t *testing.T, what, stdout, stderr string, code int, words ...string) {
	t.Helper()
	if code != 1 || stdout != "" || !strings.HasPrefix(stderr, "mmapfs: ") || strings.Count(stderr, "\n") != 1 {
		t.Errorf("%s: exit %d, stdout %q, stderr %q: want status 1 and one line mmapfs: ...", what, code, stdout, stderr)
	}
	for _, w := range words {
		if !strings.Contains(stderr, w) {
			t.Errorf("%s: %q does not say %q", what, stderr, w)
		}
	}
}

// stats --json on a live mount: the counts grow with the requests, and the
// bytes with what the server read and wrote (passthrough off: every read
// and write reaches it).
func TestBinaryStatsJSON(t *testing.T) {
	needRootBin(t)
	_, mnt, _ := binMount(t, "--size", "64M", "--passthrough=off")
	before := binStatsJSON(t, mnt)
	if before.Mountpoint != mnt || before.PID == 0 || before.Persistent || before.SizeLimit != 64<<20 {
		t.Errorf("stats: mount point %q, pid %d, persistent %v, size limit %d: want %q, a pid, false, %d",
			before.Mountpoint, before.PID, before.Persistent, before.SizeLimit, mnt, 64<<20)
	}

	const n = 25
	for i := 0; i < n; i++ {
		f, err := os.Create(filepath.Join(mnt, fmt.Sprintf("f%d", i)))
		if err != nil {
			t.Fatal(err)
		}
		f.Close()
	}
	data := bytes.Repeat([]byte("stats"), 20000) // 100 kB
	name := filepath.Join(mnt, "data")
	if err := os.WriteFile(name, data, 0o644); err != nil {
		t.Fatal(err)
	}
	// Drop the file's pages from the page cache, so that the read below
	// reaches the server.
	f, err := os.Open(name)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if err := unix.Fadvise(int(f.Fd()), 0, 0, unix.FADV_DONTNEED); err != nil {
		t.Fatal(err)
	}
	if got, err := os.ReadFile(name); err != nil || !bytes.Equal(got, data) {
		t.Fatalf("read back: %d bytes, %v", len(got), err)
	}

	after := binStatsJSON(t, mnt)
	if c0, c1 := before.Ops["CREATE"].Count, after.Ops["CREATE"].Count; c1 < c0+n {
		t.Errorf("CREATE count %d after %d creates, was %d", c1, n, c0)
	}
	if after.Ops["LOOKUP"].Count == 0 {
		t.Errorf("no LOOKUP counted: %v", after.Ops)
	}
	for name, op := range after.Ops {
		if len(op.Buckets) != len(control.LatencyBounds)+1 || op.P50 > op.P90 || op.P90 > op.P99 {
			t.Errorf("%s: %d buckets, p50 %v p90 %v p99 %v", name, len(op.Buckets), op.P50, op.P90, op.P99)
		}
	}
	if after.WriteBytes < before.WriteBytes+uint64(len(data)) {
		t.Errorf("write bytes %d after writing %d, was %d", after.WriteBytes, len(data), before.WriteBytes)
	}
	if after.ReadBytes <= before.ReadBytes {
		t.Errorf("read bytes %d after a read, was %d", after.ReadBytes, before.ReadBytes)
	}
	if after.Inodes < n+2 || after.StoreUsed < int64(len(data)) || after.Windows < 1 || after.MappedBytes <= 0 || after.OpenFDs < 1 {
		t.Errorf("inodes %d, used %d, windows %d (%d bytes), fds %d: want at least %d, %d, 1, some, 1",
			after.Inodes, after.StoreUsed, after.Windows, after.MappedBytes, after.OpenFDs, n+2, len(data))
	}
	if !after.Time.After(before.Time) || after.Started.IsZero() || after.Started.After(after.Time) {
		t.Errorf("times: started %v, before %v, after %v", after.Started, before.Time, after.Time)
	}
}

// The human form: the header and a row per operation, the most requested
// first.
func TestBinaryStatsTable(t *testing.T) {
	needRootBin(t)
	_, mnt, _ := binMount(t, "--passthrough=off")
	for i := 0; i < 5; i++ {
		if err := os.WriteFile(filepath.Join(mnt, fmt.Sprintf("f%d", i)), []byte("x"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	out, errs, code := binStats(t, nil, mnt)
	if code != 0 || errs != "" {
		t.Fatalf("mmapfs stats: exit %d, stderr %q", code, errs)
	}
	for _, w := range []string{"mmapfs on " + mnt, "store ", "memory store", "data ", "used ", "resident ",
		"inodes ", "store files ", "OPERATION", "COUNT", "ERRORS", "P50", "P99", "TOTAL", "\nCREATE ", "\nLOOKUP "} {
		if !strings.Contains(out, w) {
			t.Errorf("the table lacks %q:\n%s", w, out)
		}
	}
	// Rows sorted by count: each row's count is at most the one above.
	_, rows, _ := strings.Cut(out, "OPERATION")
	last := int64(-1)
	for _, line := range strings.Split(strings.TrimSpace(rows), "\n")[1:] {
		f := strings.Fields(line)
		n, err := strconv.ParseInt(f[1], 10, 64)
		if err != nil {
			t.Fatalf("row %q: %v", line, err)
		}
		if last >= 0 && n > last {
			t.Errorf("row %q comes after a row of count %d:\n%s", line, last, out)
		}
		last = n
	}
}

// --watch prints the table again and again, with rates, until SIGINT.
func TestBinaryStatsWatch(t *testing.T) {
	needRootBin(t)
	_, mnt, _ := binMount(t)
	p := binStart(t, nil, "stats", "--watch=50ms", mnt)
	deadline := time.Now().Add(binMountTimeout)
	for strings.Count(p.output.String(), "\x1b[2J") < 3 {
		if time.Now().After(deadline) || !p.binRunning() {
			t.Fatalf("no third table from stats --watch; output:\n%s", p.output)
		}
		time.Sleep(20 * time.Millisecond)
	}
	p.binSignal(syscall.SIGINT)
	if code := p.binWait(); code != 0 {
		t.Errorf("stats --watch: exit %d after SIGINT; output:\n%s", code, p.output)
	}
	if out := p.output.String(); !strings.Contains(out, "PER SEC") || strings.Contains(out, "mmapfs: ") {
		t.Errorf("stats --watch output:\n%s", out)
	}
}

// A user who does not own the mount is refused, whether the mount lets
// others in (the server refuses) or not (the kernel does).
func TestBinaryStatsRefused(t *testing.T) {
	needRootBin(t)
	if _, err := user.LookupId(strconv.Itoa(binUserID)); err != nil {
		t.Skipf("no user with uid %d: %v", binUserID, err)
	}
	t.Run("private", func(t *testing.T) {
		mnt := binStatsOpenMount(t)
		out, errs, code := binStats(t, binUserCred, mnt)
		binCheckOneError(t, "stats as another user", out, errs, code, "permission denied", "only root and the owner", "uid 0")
	})
	t.Run("allow_other", func(t *testing.T) {
		mnt := binStatsOpenMount(t, "--allow-other")
		out, errs, code := binStats(t, binUserCred, "--json", mnt)
		binCheckOneError(t, "stats as another user", out, errs, code, "refused", "permission denied", "owner (uid 0)")
		// The owner still gets the figures.
		if st := binStatsJSON(t, mnt); st.Mountpoint != mnt {
			t.Errorf("root's stats: mount point %q", st.Mountpoint)
		}
	})
}

// binStatsOpenMount mounts mmapfs as root with args on a mount point that
// other users can reach (its parent is 0755), and returns it.
func binStatsOpenMount(t *testing.T, args ...string) string {
	t.Helper()
	base, err := os.MkdirTemp("", "mmapfs-stats-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(base) })
	mnt := filepath.Join(base, "mnt")
	for _, d := range []string{base, mnt} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	t.Cleanup(func() { binForceUnmount(t, mnt) })
	memdir := binMemDir(t)
	p := binStart(t, nil, append(append([]string{"mount", "--memdir", memdir}, args...), mnt)...)
	binWaitMounted(t, p, mnt)
	return mnt
}

// stats on a path that is not on an mmapfs mount, or is missing, says so.
func TestBinaryStatsNotMmapfs(t *testing.T) {
	binBuild(t)
	dir := t.TempDir()
	out, errs, code := binStats(t, nil, dir)
	binCheckOneError(t, "stats on a plain directory", out, errs, code, dir, "not on an mmapfs mount")
	out, errs, code = binStats(t, nil, filepath.Join(dir, "missing"))
	binCheckOneError(t, "stats on a missing path", out, errs, code, "no such file or directory")
	out, errs, code = binStats(t, nil)
	if code != 2 || !strings.Contains(errs, "usage: mmapfs stats") || out != "" {
		t.Errorf("stats without a mount point: exit %d, stdout %q, stderr %q", code, out, errs)
	}
}

// Mounted.Stats in process: the figures of the store follow what the
// files hold.
func TestStatsFigures(t *testing.T) {
	tm := mountTest(t)
	if tm.m == nil {
		t.Skip("tmpfs mode")
	}
	const size = 1 << 20
	name := filepath.Join(tm.dir, "data")
	if err := os.WriteFile(name, bytes.Repeat([]byte{7}, size), 0o644); err != nil {
		t.Fatal(err)
	}
	f, err := os.Open(name)
	noErr(t, err, "open")
	defer f.Close()

	st := tm.m.Stats()
	if st.Mountpoint != tm.dir || st.Inodes != 2 || st.StoreUsed < size || st.Persistent != storeMode {
		t.Errorf("mount point %q, inodes %d, used %d, persistent %v: want %q, 2, %d, %v",
			st.Mountpoint, st.Inodes, st.StoreUsed, st.Persistent, tm.dir, size, storeMode)
	}
	lending := passthroughMode && tm.m.PassthroughErr == nil
	if st.Ops["CREATE"].Count == 0 || !lending && st.WriteBytes < size {
		t.Errorf("counts: %v, %d bytes written", st.Ops, st.WriteBytes)
	}
	if lending && st.Lent < 1 {
		t.Errorf("a file open with passthrough: %d lent", st.Lent)
	}
	if storeMode && st.JournalBytes <= 0 {
		t.Errorf("journal %d bytes after a create", st.JournalBytes)
	}
	// The store files' figures come from a walk in the background.
	deadline := time.Now().Add(20 * time.Second)
	for st.StoreAllocated < size || !st.ResidentMappedOnly && st.Resident < size {
		if time.Now().After(deadline) {
			t.Fatalf("allocated %d, resident %d (mapped only: %v): want at least %d",
				st.StoreAllocated, st.Resident, st.ResidentMappedOnly, size)
		}
		time.Sleep(50 * time.Millisecond)
		st = tm.m.Stats()
	}

	if !storeMode {
		return
	}
	// Enough changes to pass the journal's compaction threshold (256 KiB
	// in store mode): a compaction is counted, with its time.
	long := strings.Repeat("n", 200)
	for i := 0; st.Compactions == 0; i++ {
		if i%100 == 0 {
			st = tm.m.Stats()
			if time.Now().After(deadline.Add(20 * time.Second)) {
				t.Fatalf("no compaction counted after %d renames; journal %d bytes", i, st.JournalBytes)
			}
		}
		old, nw := filepath.Join(tm.dir, "data"), filepath.Join(tm.dir, long)
		if i%2 == 1 {
			old, nw = nw, old
		}
		noErr(t, os.Rename(old, nw), "rename")
	}
	if st.LastCompaction.IsZero() || st.LastCompaction.After(st.Time) || st.CompactionTook <= 0 {
		t.Errorf("compactions %d, the last at %v (now %v), took %v s", st.Compactions, st.LastCompaction, st.Time, st.CompactionTook)
	}
}
