package main

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"golang.org/x/sys/unix"
)

// A soak worker owns the directory w<ID> of the mount and keeps a model of
// it in memory (the full contents and xattrs of each file), so that every
// read can be checked byte for byte. Shared files: each worker writes only
// its own region of shared/s<K> and checks it; shared/counter is a counter
// incremented under flock by all workers; shared/dir holds names of all
// workers, each checking only its own.
//
// Protocol on stdout: "R" when populated; then, after "go DEADLINE_UNIXNANO"
// on stdin, "C OPS BYTES" every half second; "F MESSAGE" for each failure;
// "D JSON" (workerResult) at the end.

const (
	nSubdirs     = 4
	targetFiles  = 100
	sharedFiles  = 4
	regionSize   = 64 << 10
	maxFailLines = 20
)

var opNames = []string{
	"create", "write", "append", "read", "pread", "mmapread", "mmapwrite",
	"stat", "readdir", "rename", "unlink", "truncate", "fallocate", "xattr",
	"mkdirtree", "copyrange", "link", "symlink", "shared", "flock", "shareddir", "fsync",
}

const (
	opCreate = iota
	opWrite
	opAppend
	opRead
	opPread
	opMmapRead
	opMmapWrite
	opStat
	opReaddir
	opRename
	opUnlink
	opTruncate
	opFallocate
	opXattr
	opMkdirTree
	opCopyRange
	opLink
	opSymlink
	opShared
	opFlock
	opSharedDir
	opFsync
	nOps
)

// weights of the ops when the file count is at its target.
var opWeights = [nOps]int{
	opCreate: 8, opWrite: 10, opAppend: 4, opRead: 10, opPread: 8, opMmapRead: 3, opMmapWrite: 2,
	opStat: 8, opReaddir: 3, opRename: 5, opUnlink: 8, opTruncate: 4, opFallocate: 4, opXattr: 6,
	opMkdirTree: 2, opCopyRange: 3, opLink: 2, opSymlink: 2, opShared: 5, opFlock: 3, opSharedDir: 3,
	opFsync: 1,
}

// noZeroRange leaves out FALLOC_FL_ZERO_RANGE, which tmpfs lacks, so that a
// worker can be run on tmpfs to check the worker itself.
var noZeroRange = os.Getenv("FSLOAD_NO_ZERO_RANGE") == "1"

type wfile struct {
	rel    string
	data   []byte
	xattrs map[string][]byte
	idx    int
}

type worker struct {
	id     int
	root   string
	shared string
	rng    *rand.Rand
	xs     uint64

	files  []*wfile
	byName map[string]*wfile
	seq    int

	sharedData [sharedFiles][]byte
	sharedDir  map[string]bool

	mu        sync.Mutex
	ops       [nOps]uint64
	bytes     uint64
	fails     int
	flockIncs uint64
	out       *bufio.Writer
	outMu     sync.Mutex
}

type workerResult struct {
	ID        int               `json:"id"`
	Ops       map[string]uint64 `json:"ops"`
	Bytes     uint64            `json:"bytes"`
	Fails     int               `json:"fails"`
	FlockIncs uint64            `json:"flock_incs"`
}

func workerMain(args []string) int {
	fl := flag.NewFlagSet("worker", flag.ExitOnError)
	id := fl.Int("id", 0, "worker number")
	seed := fl.Uint64("seed", 1, "random seed")
	_ = fl.Parse(args)
	if fl.NArg() != 1 {
		fmt.Fprintln(os.Stderr, "usage: fsload worker -id N MOUNTDIR")
		return 2
	}
	mnt := fl.Arg(0)
	w := &worker{
		id:        *id,
		root:      filepath.Join(mnt, fmt.Sprintf("w%d", *id)),
		shared:    filepath.Join(mnt, "shared"),
		rng:       rand.New(rand.NewPCG(*seed, uint64(*id))),
		xs:        *seed*0x9e3779b97f4a7c15 + uint64(*id) + 1,
		byName:    map[string]*wfile{},
		sharedDir: map[string]bool{},
		out:       bufio.NewWriter(os.Stdout),
	}
	if err := w.setup(); err != nil {
		w.fail("setup: %v", err)
		w.finish()
		return 1
	}
	w.say("R")

	line, err := bufio.NewReader(os.Stdin).ReadString('\n')
	if err != nil {
		return 1
	}
	f := strings.Fields(line)
	if len(f) != 2 || f[0] != "go" {
		return 1
	}
	ns, _ := strconv.ParseInt(f[1], 10, 64)
	deadline := time.Unix(0, ns)

	stop := make(chan struct{})
	done := make(chan struct{})
	go func() {
		defer close(done)
		t := time.NewTicker(500 * time.Millisecond)
		defer t.Stop()
		for {
			select {
			case <-stop:
				return
			case <-t.C:
				ops, b := w.counts()
				w.say(fmt.Sprintf("C %d %d", ops, b))
			}
		}
	}()
	for time.Now().Before(deadline) {
		for i := 0; i < 50; i++ {
			w.step()
		}
	}
	close(stop)
	<-done
	ops, b := w.counts()
	w.say(fmt.Sprintf("C %d %d", ops, b))
	w.verifyAll()
	w.finish()
	return 0
}

func (w *worker) counts() (uint64, uint64) {
	w.mu.Lock()
	defer w.mu.Unlock()
	var n uint64
	for _, c := range w.ops {
		n += c
	}
	return n, w.bytes
}

func (w *worker) done(op int, nbytes int) {
	w.mu.Lock()
	w.ops[op]++
	w.bytes += uint64(nbytes)
	w.mu.Unlock()
}

func (w *worker) say(s string) {
	w.outMu.Lock()
	defer w.outMu.Unlock()
	w.out.WriteString(s)
	w.out.WriteByte('\n')
	w.out.Flush()
}

func (w *worker) fail(format string, a ...any) {
	w.mu.Lock()
	w.fails++
	n := w.fails
	w.mu.Unlock()
	if n <= maxFailLines {
		w.say("F w" + strconv.Itoa(w.id) + ": " + fmt.Sprintf(format, a...))
	}
}

func (w *worker) finish() {
	r := workerResult{ID: w.id, Ops: map[string]uint64{}, Bytes: w.bytes, Fails: w.fails, FlockIncs: w.flockIncs}
	for i, c := range w.ops {
		r.Ops[opNames[i]] = c
	}
	j, _ := json.Marshal(r)
	w.say("D " + string(j))
}

func (w *worker) setup() error {
	for i := 0; i < nSubdirs; i++ {
		if err := os.MkdirAll(filepath.Join(w.root, fmt.Sprintf("d%d", i)), 0o755); err != nil {
			return err
		}
	}
	if err := os.MkdirAll(filepath.Join(w.shared, "dir"), 0o777); err != nil {
		return err
	}
	for k := 0; k < sharedFiles; k++ {
		f, err := os.OpenFile(w.sharedPath(k), os.O_RDWR|os.O_CREATE, 0o666)
		if err != nil {
			return err
		}
		f.Close()
	}
	if f, err := os.OpenFile(filepath.Join(w.shared, "counter"), os.O_RDWR|os.O_CREATE, 0o666); err != nil {
		return err
	} else {
		f.Close()
	}
	for len(w.files) < targetFiles {
		w.opCreate()
	}
	w.ops = [nOps]uint64{}
	w.bytes = 0
	return nil
}

func (w *worker) sharedPath(k int) string {
	return filepath.Join(w.shared, fmt.Sprintf("s%d", k))
}

func (w *worker) abs(rel string) string { return filepath.Join(w.root, rel) }

// fill fills b with pseudo-random bytes (xorshift64).
func (w *worker) fill(b []byte) {
	x := w.xs
	i := 0
	for ; i+8 <= len(b); i += 8 {
		x ^= x << 13
		x ^= x >> 7
		x ^= x << 17
		binary.LittleEndian.PutUint64(b[i:], x)
	}
	for ; i < len(b); i++ {
		x ^= x << 13
		x ^= x >> 7
		x ^= x << 17
		b[i] = byte(x)
	}
	w.xs = x
}

func (w *worker) randBytes(n int) []byte {
	b := make([]byte, n)
	w.fill(b)
	return b
}

func (w *worker) randSize() int {
	switch p := w.rng.IntN(100); {
	case p < 5:
		return 0
	case p < 70:
		return w.rng.IntN(64 << 10)
	case p < 95:
		return 64<<10 + w.rng.IntN(960<<10)
	default:
		return 1<<20 + w.rng.IntN(3<<20)
	}
}

func (w *worker) pick() *wfile {
	if len(w.files) == 0 {
		return nil
	}
	return w.files[w.rng.IntN(len(w.files))]
}

func (w *worker) add(f *wfile) {
	f.idx = len(w.files)
	w.files = append(w.files, f)
	w.byName[f.rel] = f
}

func (w *worker) remove(f *wfile) {
	last := w.files[len(w.files)-1]
	w.files[f.idx] = last
	last.idx = f.idx
	w.files = w.files[:len(w.files)-1]
	delete(w.byName, f.rel)
}

func (w *worker) newName() string {
	w.seq++
	return fmt.Sprintf("d%d/f%d", w.rng.IntN(nSubdirs), w.seq)
}

func (w *worker) step() {
	weights := opWeights
	switch n := len(w.files); {
	case n < targetFiles/2:
		weights[opCreate] *= 4
		weights[opUnlink] = 0
	case n < targetFiles:
		weights[opCreate] *= 2
	case n > targetFiles*3/2:
		weights[opCreate] = 0
		weights[opUnlink] *= 4
	case n > targetFiles:
		weights[opUnlink] *= 2
	}
	sum := 0
	for _, x := range weights {
		sum += x
	}
	r := w.rng.IntN(sum)
	op := 0
	for ; op < nOps; op++ {
		if r < weights[op] {
			break
		}
		r -= weights[op]
	}
	if op != opCreate && op != opMkdirTree && op != opShared && op != opFlock && op != opSharedDir && w.pick() == nil {
		op = opCreate
	}
	switch op {
	case opCreate:
		w.opCreate()
	case opWrite:
		w.opWrite()
	case opAppend:
		w.opAppend()
	case opRead:
		w.opRead()
	case opPread:
		w.opPread()
	case opMmapRead:
		w.opMmapRead()
	case opMmapWrite:
		w.opMmapWrite()
	case opStat:
		w.opStat()
	case opReaddir:
		w.opReaddir()
	case opRename:
		w.opRename()
	case opUnlink:
		w.opUnlink()
	case opTruncate:
		w.opTruncate()
	case opFallocate:
		w.opFallocate()
	case opXattr:
		w.opXattr()
	case opMkdirTree:
		w.opMkdirTree()
	case opCopyRange:
		w.opCopyRange()
	case opLink:
		w.opLink()
	case opSymlink:
		w.opSymlink()
	case opShared:
		w.opShared()
	case opFlock:
		w.opFlock()
	case opSharedDir:
		w.opSharedDir()
	case opFsync:
		w.opFsync()
	}
}

// check compares got with the model of f; on a mismatch it reports and
// adopts what the file holds, so that one fault is reported once.
func (w *worker) check(f *wfile, what string, off int, got []byte) {
	if len(got) == 0 {
		return
	}
	if off+len(got) > len(f.data) {
		w.fail("%s %s: %d bytes at %d, past the end %d", what, f.rel, len(got), off, len(f.data))
		w.reload(f)
		return
	}
	want := f.data[off : off+len(got)]
	if bytes.Equal(got, want) {
		return
	}
	i := 0
	for i < len(got) && got[i] == want[i] {
		i++
	}
	w.fail("%s %s: %d bytes at %d differ from byte %d (got %#x want %#x, size %d)",
		what, f.rel, len(got), off, off+i, got[i], want[i], len(f.data))
	w.reload(f)
}

func (w *worker) reload(f *wfile) {
	if b, err := os.ReadFile(w.abs(f.rel)); err == nil {
		f.data = b
	}
}

func (w *worker) opCreate() {
	f := &wfile{rel: w.newName(), xattrs: map[string][]byte{}}
	f.data = w.randBytes(w.randSize())
	fd, err := unix.Open(w.abs(f.rel), unix.O_CREAT|unix.O_EXCL|unix.O_WRONLY|unix.O_CLOEXEC, 0o644)
	if err != nil {
		w.fail("create %s: %v", f.rel, err)
		return
	}
	for off := 0; off < len(f.data); {
		n := min(len(f.data)-off, 4<<10+w.rng.IntN(256<<10))
		m, err := unix.Write(fd, f.data[off:off+n])
		if err != nil || m != n {
			w.fail("write %s at %d: %d, %v", f.rel, off, m, err)
			unix.Close(fd)
			w.add(f)
			w.reload(f)
			return
		}
		off += n
	}
	if err := unix.Close(fd); err != nil {
		w.fail("close %s: %v", f.rel, err)
	}
	w.add(f)
	w.done(opCreate, len(f.data))
}

func grow(f *wfile, end int) {
	if end > len(f.data) {
		f.data = append(f.data, make([]byte, end-len(f.data))...)
	}
}

func (w *worker) opWrite() {
	f := w.pick()
	off := w.rng.IntN(len(f.data) + 64<<10)
	n := 1 + w.rng.IntN(128<<10)
	b := w.randBytes(n)
	fd, err := unix.Open(w.abs(f.rel), unix.O_WRONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		w.fail("open %s: %v", f.rel, err)
		return
	}
	defer unix.Close(fd)
	m, err := unix.Pwrite(fd, b, int64(off))
	if err != nil || m != n {
		w.fail("pwrite %s %d at %d: %d, %v", f.rel, n, off, m, err)
		w.reload(f)
		return
	}
	grow(f, off+n)
	copy(f.data[off:], b)
	w.done(opWrite, n)
}

func (w *worker) opAppend() {
	f := w.pick()
	n := 1 + w.rng.IntN(32<<10)
	b := w.randBytes(n)
	fd, err := unix.Open(w.abs(f.rel), unix.O_WRONLY|unix.O_APPEND|unix.O_CLOEXEC, 0)
	if err != nil {
		w.fail("open %s: %v", f.rel, err)
		return
	}
	defer unix.Close(fd)
	m, err := unix.Write(fd, b)
	if err != nil || m != n {
		w.fail("append %s %d: %d, %v", f.rel, n, m, err)
		w.reload(f)
		return
	}
	f.data = append(f.data, b...)
	w.done(opAppend, n)
}

func (w *worker) opRead() {
	f := w.pick()
	got, err := os.ReadFile(w.abs(f.rel))
	if err != nil {
		w.fail("read %s: %v", f.rel, err)
		return
	}
	if len(got) != len(f.data) {
		w.fail("read %s: %d bytes, want %d", f.rel, len(got), len(f.data))
		f.data = got
		return
	}
	w.check(f, "read", 0, got)
	w.done(opRead, len(got))
}

func (w *worker) opPread() {
	f := w.pick()
	fd, err := unix.Open(w.abs(f.rel), unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		w.fail("open %s: %v", f.rel, err)
		return
	}
	defer unix.Close(fd)
	total := 0
	for i := 0; i < 4; i++ {
		off := w.rng.IntN(len(f.data) + 4096)
		n := 1 + w.rng.IntN(64<<10)
		b := make([]byte, n)
		m, err := unix.Pread(fd, b, int64(off))
		if err != nil {
			w.fail("pread %s %d at %d: %v", f.rel, n, off, err)
			return
		}
		want := max(0, min(n, len(f.data)-off))
		if m != want {
			w.fail("pread %s %d at %d: %d bytes, want %d", f.rel, n, off, m, want)
			w.reload(f)
			return
		}
		w.check(f, "pread", off, b[:m])
		total += m
	}
	w.done(opPread, total)
}

func (w *worker) opMmapRead() {
	f := w.pick()
	if len(f.data) == 0 {
		w.done(opMmapRead, 0)
		return
	}
	fd, err := unix.Open(w.abs(f.rel), unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		w.fail("open %s: %v", f.rel, err)
		return
	}
	defer unix.Close(fd)
	m, err := unix.Mmap(fd, 0, len(f.data), unix.PROT_READ, unix.MAP_SHARED)
	if err != nil {
		w.fail("mmap %s: %v", f.rel, err)
		return
	}
	got := bytes.Clone(m)
	unix.Munmap(m)
	w.check(f, "mmap read", 0, got)
	w.done(opMmapRead, len(got))
}

func (w *worker) opMmapWrite() {
	f := w.pick()
	if len(f.data) == 0 {
		w.done(opMmapWrite, 0)
		return
	}
	fd, err := unix.Open(w.abs(f.rel), unix.O_RDWR|unix.O_CLOEXEC, 0)
	if err != nil {
		w.fail("open %s: %v", f.rel, err)
		return
	}
	defer unix.Close(fd)
	m, err := unix.Mmap(fd, 0, len(f.data), unix.PROT_READ|unix.PROT_WRITE, unix.MAP_SHARED)
	if err != nil {
		w.fail("mmap %s: %v", f.rel, err)
		return
	}
	off := w.rng.IntN(len(f.data))
	n := 1 + w.rng.IntN(min(len(f.data)-off, 64<<10))
	b := w.randBytes(n)
	copy(m[off:], b)
	if err := unix.Msync(m, unix.MS_SYNC); err != nil {
		w.fail("msync %s: %v", f.rel, err)
	}
	unix.Munmap(m)
	copy(f.data[off:], b)
	// Read back through read(2): shared mappings are coherent with it.
	got := make([]byte, n)
	if k, err := unix.Pread(fd, got, int64(off)); err != nil || k != n {
		w.fail("pread after mmap write %s: %d, %v", f.rel, k, err)
		return
	}
	w.check(f, "read after mmap write", off, got)
	w.done(opMmapWrite, n)
}

func (w *worker) opStat() {
	f := w.pick()
	var st unix.Stat_t
	if err := unix.Lstat(w.abs(f.rel), &st); err != nil {
		w.fail("stat %s: %v", f.rel, err)
		return
	}
	if st.Size != int64(len(f.data)) || st.Mode&unix.S_IFMT != unix.S_IFREG || st.Nlink != 1 {
		w.fail("stat %s: size %d mode %o nlink %d, want size %d regular nlink 1", f.rel, st.Size, st.Mode, st.Nlink, len(f.data))
		w.reload(f)
	}
	w.done(opStat, 0)
}

func (w *worker) listDir(dir string) []string {
	names, err := readNames(w.abs(dir))
	if err != nil {
		w.fail("readdir %s: %v", dir, err)
		return nil
	}
	return names
}

func readNames(dir string) ([]string, error) {
	d, err := os.Open(dir)
	if err != nil {
		return nil, err
	}
	defer d.Close()
	names, err := d.Readdirnames(-1)
	sort.Strings(names)
	return names, err
}

func (w *worker) checkDir(k int) {
	dir := fmt.Sprintf("d%d", k)
	var want []string
	for _, f := range w.files {
		if strings.HasPrefix(f.rel, dir+"/") {
			want = append(want, f.rel[len(dir)+1:])
		}
	}
	sort.Strings(want)
	got := w.listDir(dir)
	if strings.Join(got, "/") != strings.Join(want, "/") {
		w.fail("readdir %s: %d names %v, want %d names %v", dir, len(got), trunc(got), len(want), trunc(want))
	}
}

func trunc(s []string) []string {
	if len(s) > 8 {
		return append(s[:8:8], "…")
	}
	return s
}

func (w *worker) opReaddir() {
	w.checkDir(w.rng.IntN(nSubdirs))
	w.done(opReaddir, 0)
}

func (w *worker) opRename() {
	f := w.pick()
	var to string
	var victim *wfile
	if w.rng.IntN(4) == 0 && len(w.files) > 1 {
		victim = w.pick() // replace an existing file
		if victim == f {
			victim = nil
		}
	}
	if victim != nil {
		to = victim.rel
		if w.rng.IntN(2) == 0 {
			err := unix.Renameat2(unix.AT_FDCWD, w.abs(f.rel), unix.AT_FDCWD, w.abs(to), unix.RENAME_NOREPLACE)
			if err != unix.EEXIST {
				w.fail("rename NOREPLACE %s onto %s: %v, want EEXIST", f.rel, to, err)
				return
			}
		}
	} else {
		to = w.newName()
	}
	if err := os.Rename(w.abs(f.rel), w.abs(to)); err != nil {
		w.fail("rename %s to %s: %v", f.rel, to, err)
		return
	}
	if victim != nil {
		w.remove(victim)
	}
	w.remove(f)
	f.rel = to
	w.add(f)
	if _, err := os.Lstat(w.abs(to)); err != nil {
		w.fail("stat after rename %s: %v", to, err)
	}
	w.done(opRename, 0)
}

func (w *worker) opUnlink() {
	f := w.pick()
	if err := unix.Unlink(w.abs(f.rel)); err != nil {
		w.fail("unlink %s: %v", f.rel, err)
		return
	}
	w.remove(f)
	var st unix.Stat_t
	if err := unix.Lstat(w.abs(f.rel), &st); err != unix.ENOENT {
		w.fail("stat after unlink %s: %v, want ENOENT", f.rel, err)
	}
	w.done(opUnlink, 0)
}

func (w *worker) opTruncate() {
	f := w.pick()
	var size int
	if w.rng.IntN(2) == 0 {
		size = w.rng.IntN(len(f.data) + 1)
	} else {
		size = len(f.data) + w.rng.IntN(256<<10)
	}
	if err := unix.Truncate(w.abs(f.rel), int64(size)); err != nil {
		w.fail("truncate %s to %d: %v", f.rel, size, err)
		return
	}
	if size < len(f.data) {
		f.data = f.data[:size:size]
	} else {
		grow(f, size)
	}
	w.done(opTruncate, 0)
}

func (w *worker) opFallocate() {
	f := w.pick()
	var mode uint32
	off := w.rng.IntN(len(f.data) + 64<<10)
	n := 1 + w.rng.IntN(256<<10)
	switch w.rng.IntN(5) {
	case 0:
		mode = 0
	case 1:
		mode = unix.FALLOC_FL_KEEP_SIZE
	case 2, 3:
		mode = unix.FALLOC_FL_PUNCH_HOLE | unix.FALLOC_FL_KEEP_SIZE
	case 4:
		if noZeroRange {
			w.done(opFallocate, 0)
			return
		}
		mode = unix.FALLOC_FL_ZERO_RANGE
		if w.rng.IntN(2) == 0 {
			mode |= unix.FALLOC_FL_KEEP_SIZE
		}
	}
	fd, err := unix.Open(w.abs(f.rel), unix.O_RDWR|unix.O_CLOEXEC, 0)
	if err != nil {
		w.fail("open %s: %v", f.rel, err)
		return
	}
	defer unix.Close(fd)
	if err := unix.Fallocate(fd, mode, int64(off), int64(n)); err != nil {
		w.fail("fallocate %s mode %#x %d at %d: %v", f.rel, mode, n, off, err)
		w.reload(f)
		return
	}
	end := off + n
	if mode&(unix.FALLOC_FL_PUNCH_HOLE|unix.FALLOC_FL_ZERO_RANGE) != 0 {
		lim := min(end, len(f.data))
		for i := off; i < lim; i++ {
			f.data[i] = 0
		}
	}
	if mode&unix.FALLOC_FL_KEEP_SIZE == 0 {
		grow(f, end)
	}
	w.done(opFallocate, 0)
}

func (w *worker) opXattr() {
	f := w.pick()
	p := w.abs(f.rel)
	name := fmt.Sprintf("user.k%d", w.rng.IntN(6))
	switch w.rng.IntN(4) {
	case 0, 1:
		v := w.randBytes(w.rng.IntN(512))
		if err := unix.Setxattr(p, name, v, 0); err != nil {
			w.fail("setxattr %s %s: %v", f.rel, name, err)
			return
		}
		f.xattrs[name] = v
	case 2:
		err := unix.Removexattr(p, name)
		if _, ok := f.xattrs[name]; ok && err != nil || !ok && err != unix.ENODATA {
			w.fail("removexattr %s %s: %v (present %v)", f.rel, name, err, ok)
		}
		delete(f.xattrs, name)
	}
	w.checkXattrs(f)
	w.done(opXattr, 0)
}

func (w *worker) checkXattrs(f *wfile) {
	p := w.abs(f.rel)
	buf := make([]byte, 64<<10)
	n, err := unix.Listxattr(p, buf)
	if err != nil {
		w.fail("listxattr %s: %v", f.rel, err)
		return
	}
	var got, want []string
	for _, s := range strings.Split(string(buf[:n]), "\x00") {
		if strings.HasPrefix(s, "user.") {
			got = append(got, s)
		}
	}
	for k := range f.xattrs {
		want = append(want, k)
	}
	sort.Strings(got)
	sort.Strings(want)
	if strings.Join(got, ",") != strings.Join(want, ",") {
		w.fail("listxattr %s: %v, want %v", f.rel, got, want)
	}
	for k, v := range f.xattrs {
		n, err := unix.Getxattr(p, k, buf)
		if err != nil || !bytes.Equal(buf[:n], v) {
			w.fail("getxattr %s %s: %d bytes, %v; want %d bytes", f.rel, k, n, err, len(v))
		}
	}
}

func (w *worker) opMkdirTree() {
	w.seq++
	dir := w.abs(fmt.Sprintf("t%d", w.seq))
	if err := os.Mkdir(dir, 0o755); err != nil {
		w.fail("mkdir %s: %v", dir, err)
		return
	}
	sub := filepath.Join(dir, "sub")
	if err := os.Mkdir(sub, 0o755); err != nil {
		w.fail("mkdir %s: %v", sub, err)
		return
	}
	n := 1 + w.rng.IntN(16)
	for i := 0; i < n; i++ {
		if err := os.WriteFile(filepath.Join(sub, strconv.Itoa(i)), []byte(strconv.Itoa(i)), 0o644); err != nil {
			w.fail("create in %s: %v", sub, err)
			return
		}
	}
	names, err := readNames(sub)
	if err != nil || len(names) != n {
		w.fail("readdir %s: %d names, %v; want %d", sub, len(names), err, n)
	}
	if err := unix.Rmdir(sub); err != unix.ENOTEMPTY {
		w.fail("rmdir non-empty %s: %v, want ENOTEMPTY", sub, err)
	}
	if err := os.RemoveAll(dir); err != nil {
		w.fail("remove %s: %v", dir, err)
	}
	w.done(opMkdirTree, 0)
}

func (w *worker) opCopyRange() {
	src, dst := w.pick(), w.pick()
	if src == dst || len(src.data) == 0 {
		w.done(opCopyRange, 0)
		return
	}
	soff := w.rng.IntN(len(src.data))
	n := 1 + w.rng.IntN(min(len(src.data)-soff, 512<<10))
	doff := w.rng.IntN(len(dst.data) + 4096)
	in, err := unix.Open(w.abs(src.rel), unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		w.fail("open %s: %v", src.rel, err)
		return
	}
	defer unix.Close(in)
	out, err := unix.Open(w.abs(dst.rel), unix.O_WRONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		w.fail("open %s: %v", dst.rel, err)
		return
	}
	defer unix.Close(out)
	done := 0
	for done < n {
		so, do := int64(soff+done), int64(doff+done)
		m, err := unix.CopyFileRange(in, &so, out, &do, n-done, 0)
		if err != nil || m == 0 {
			w.fail("copy_file_range %s→%s %d at %d→%d: %d, %v", src.rel, dst.rel, n-done, soff+done, doff+done, m, err)
			w.reload(dst)
			return
		}
		done += m
	}
	grow(dst, doff+n)
	copy(dst.data[doff:], src.data[soff:soff+n])
	w.done(opCopyRange, n)
}

func (w *worker) opLink() {
	f := w.pick()
	w.seq++
	l := fmt.Sprintf("l%d", w.seq)
	if err := os.Link(w.abs(f.rel), w.abs(l)); err != nil {
		w.fail("link %s %s: %v", f.rel, l, err)
		return
	}
	var st unix.Stat_t
	if err := unix.Lstat(w.abs(l), &st); err != nil || st.Nlink != 2 || st.Size != int64(len(f.data)) {
		w.fail("stat link %s: nlink %d size %d, %v; want 2, %d", l, st.Nlink, st.Size, err, len(f.data))
	}
	got, err := os.ReadFile(w.abs(l))
	if err != nil || len(got) != len(f.data) {
		w.fail("read link %s: %d bytes, %v", l, len(got), err)
	} else {
		w.check(f, "read via link", 0, got)
	}
	if err := unix.Unlink(w.abs(l)); err != nil {
		w.fail("unlink %s: %v", l, err)
	}
	w.done(opLink, len(got))
}

func (w *worker) opSymlink() {
	w.seq++
	target := fmt.Sprintf("some/target/%d/%s", w.seq, strings.Repeat("x", w.rng.IntN(200)))
	l := w.abs(fmt.Sprintf("s%d", w.seq))
	if err := os.Symlink(target, l); err != nil {
		w.fail("symlink %s: %v", l, err)
		return
	}
	if got, err := os.Readlink(l); err != nil || got != target {
		w.fail("readlink %s: %q, %v", l, got, err)
	}
	if err := os.Remove(l); err != nil {
		w.fail("remove %s: %v", l, err)
	}
	w.done(opSymlink, 0)
}

// opShared writes the worker's region of a shared file, reads it back, and
// checks that the file is at least as long as the region's end.
func (w *worker) opShared() {
	k := w.rng.IntN(sharedFiles)
	fd, err := unix.Open(w.sharedPath(k), unix.O_RDWR|unix.O_CLOEXEC, 0)
	if err != nil {
		w.fail("open shared %d: %v", k, err)
		return
	}
	defer unix.Close(fd)
	base := int64(w.id * regionSize)
	if w.sharedData[k] != nil && w.rng.IntN(2) == 0 {
		got := make([]byte, regionSize)
		// The region may end the file: a short read is right if the
		// rest of the model is zeros.
		if n, err := unix.Pread(fd, got, base); err != nil || !regionEqual(got[:max(n, 0)], w.sharedData[k]) {
			w.fail("shared s%d region %d: %d bytes, %v", k, w.id, n, err)
		}
		w.done(opShared, regionSize)
		return
	}
	if w.sharedData[k] == nil {
		w.sharedData[k] = make([]byte, regionSize)
	}
	off := w.rng.IntN(regionSize)
	n := 1 + w.rng.IntN(regionSize-off)
	b := w.randBytes(n)
	if m, err := unix.Pwrite(fd, b, base+int64(off)); err != nil || m != n {
		w.fail("pwrite shared s%d: %d, %v", k, m, err)
		return
	}
	copy(w.sharedData[k][off:], b)
	got := make([]byte, n)
	if m, err := unix.Pread(fd, got, base+int64(off)); err != nil || m != n || !bytes.Equal(got, b) {
		w.fail("read back shared s%d region %d: %d, %v", k, w.id, m, err)
	}
	w.done(opShared, 2*n)
}

func (w *worker) opFlock() {
	fd, err := unix.Open(filepath.Join(w.shared, "counter"), unix.O_RDWR|unix.O_CLOEXEC, 0)
	if err != nil {
		w.fail("open counter: %v", err)
		return
	}
	defer unix.Close(fd)
	if err := unix.Flock(fd, unix.LOCK_EX); err != nil {
		w.fail("flock counter: %v", err)
		return
	}
	var b [8]byte
	n, err := unix.Pread(fd, b[:], 0)
	if err != nil || (n != 0 && n != 8) {
		w.fail("read counter: %d, %v", n, err)
	}
	v := binary.LittleEndian.Uint64(b[:]) + 1
	binary.LittleEndian.PutUint64(b[:], v)
	if n, err := unix.Pwrite(fd, b[:], 0); err != nil || n != 8 {
		w.fail("write counter: %d, %v", n, err)
	} else {
		w.flockIncs++
	}
	unix.Flock(fd, unix.LOCK_UN)
	w.done(opFlock, 16)
}

func (w *worker) opSharedDir() {
	dir := filepath.Join(w.shared, "dir")
	prefix := fmt.Sprintf("w%d-", w.id)
	if len(w.sharedDir) < 20 || w.rng.IntN(2) == 0 {
		w.seq++
		name := fmt.Sprintf("%s%d", prefix, w.seq)
		if err := os.WriteFile(filepath.Join(dir, name), nil, 0o644); err != nil {
			w.fail("create shared/dir/%s: %v", name, err)
			return
		}
		w.sharedDir[name] = true
	} else {
		for name := range w.sharedDir {
			if err := os.Remove(filepath.Join(dir, name)); err != nil {
				w.fail("remove shared/dir/%s: %v", name, err)
			}
			delete(w.sharedDir, name)
			break
		}
	}
	if w.rng.IntN(4) == 0 {
		names, err := readNames(dir)
		if err != nil {
			w.fail("readdir shared/dir: %v", err)
			return
		}
		own := 0
		for _, n := range names {
			if strings.HasPrefix(n, prefix) {
				own++
				if !w.sharedDir[n] {
					w.fail("readdir shared/dir: stray %s", n)
				}
			}
		}
		if own != len(w.sharedDir) {
			w.fail("readdir shared/dir: %d own names, want %d", own, len(w.sharedDir))
		}
	}
	w.done(opSharedDir, 0)
}

func (w *worker) opFsync() {
	f := w.pick()
	fd, err := unix.Open(w.abs(f.rel), unix.O_RDWR|unix.O_CLOEXEC, 0)
	if err != nil {
		w.fail("open %s: %v", f.rel, err)
		return
	}
	defer unix.Close(fd)
	if w.rng.IntN(2) == 0 {
		err = unix.Fsync(fd)
	} else {
		err = unix.Fdatasync(fd)
	}
	if err != nil {
		w.fail("fsync %s: %v", f.rel, err)
	}
	w.done(opFsync, 0)
}

// verifyAll checks every file, directory and shared region against the model.
func (w *worker) verifyAll() {
	for _, f := range w.files {
		got, err := os.ReadFile(w.abs(f.rel))
		if err != nil {
			w.fail("final read %s: %v", f.rel, err)
			continue
		}
		if len(got) != len(f.data) {
			w.fail("final read %s: %d bytes, want %d", f.rel, len(got), len(f.data))
			continue
		}
		w.check(f, "final read", 0, got)
		w.checkXattrs(f)
	}
	for k := 0; k < nSubdirs; k++ {
		w.checkDir(k)
	}
	top := w.listDir(".")
	if want := []string{"d0", "d1", "d2", "d3"}; strings.Join(top, ",") != strings.Join(want, ",") {
		w.fail("final readdir of w%d: %v, want %v (stray links, symlinks or trees)", w.id, trunc(top), want)
	}
	for k := 0; k < sharedFiles; k++ {
		if w.sharedData[k] == nil {
			continue
		}
		f, err := os.Open(w.sharedPath(k))
		if err != nil {
			w.fail("final open shared s%d: %v", k, err)
			continue
		}
		got := make([]byte, regionSize)
		n, err := io.ReadFull(io.NewSectionReader(f, int64(w.id*regionSize), regionSize), got)
		f.Close()
		if err != nil && !errors.Is(err, io.ErrUnexpectedEOF) && !errors.Is(err, io.EOF) || !regionEqual(got[:n], w.sharedData[k]) {
			w.fail("final shared s%d region %d differs (%v)", k, w.id, err)
		}
	}
}

// regionEqual reports whether got (possibly cut short by the end of the
// file) holds what want does, want's remainder being zeros.
func regionEqual(got, want []byte) bool {
	if len(got) > len(want) || !bytes.Equal(got, want[:len(got)]) {
		return false
	}
	for _, b := range want[len(got):] {
		if b != 0 {
			return false
		}
	}
	return true
}
