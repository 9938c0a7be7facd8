package tests

// A model-based crash test of persistence (`mmapfs mount --store DIR`).
//
// Round after round, on one store directory: mount, compare the whole tree
// with a model, run a seeded random workload (one op at a time, from this
// process) and update the model with each op that returns success, then
// kill the server with SIGKILL, at a random moment (a timer) or after a
// random number of ops, and detach the dead mount. Every op that returned
// success was acknowledged, so the next mount must show it. The op in
// flight when the kill landed (it fails, with ENOTCONN as a rule) is
// ambiguous: the next mount may show the tree before it or after it, and
// for a data op each byte of its range may be old or new and the size
// either. (A write the kernel sent in several requests can return a short
// count instead: the bytes it counts were acknowledged, and only the rest
// is ambiguous.) The model takes whichever the mount shows and the
// workload goes on from there. Some rounds end with a clean unmount
// instead. At the end: a clean unmount, a mount that must show the model
// exactly, and `mmapfs fsck --store DIR`, which must exit 0.
//
// The server uses passthrough (as root), except on a quarter of the mounts;
// half of the writes keep their descriptor open for later writes of the
// path, so the kill often finds files open for writing, which the kernel
// writes without the server.
//
// Times are not compared (tests/persist_test.go does, for clean unmounts
// and a kill). No file of the mount is mapped from this process: a process
// that touches a mapping of a FUSE mount whose server is killed can crash.
//
//	MMAPFS_CRASH_ROUNDS=N   rounds (default crashDefaultRounds)
//	MMAPFS_CRASH_SEED=S     seed (default: from the clock; always printed)
//	MMAPFS_CRASH_SYNC=1     kill only between ops, never with a timer: a
//	                        seed then replays the same ops and kills
//	MMAPFS_CRASH_SKIP=K,..  leave out these op kinds (to see past a known bug)
//	scripts/crashtest       many rounds over a range of seeds

import (
	"errors"
	"fmt"
	"math/rand"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"mmapfs/internal/fsmodel"
)

const (
	crashDefaultRounds = 20      // CI's share: 10-30 s with -race
	crashMaxSize       = 3 << 20 // files grow up to this (crossing the 2 MiB store windows)
	crashMaxWrite      = 64 << 10
	crashMaxEntries    = 70   // above it, the workload removes more than it adds
	crashMaxRoundOps   = 2500 // ops in a round at most (the kill comes before)
	crashMaxTimer      = 300 * time.Millisecond
	crashFinalOps      = 150 // ops of the last mount, before the clean unmount
)

var (
	crashNames      = []string{"a", "b", "c", "d", "e", "f", "g", "h"}
	crashXattrNames = []string{"user.a", "user.b", "user.c", "user.a.rather.longer.attribute.name"}
	crashIDs        = []int{0, 1, 1000, 4242, 65534}
)

func crashEnvInt(name string, def int64) int64 {
	if v := os.Getenv(name); v != "" {
		n, err := strconv.ParseInt(v, 0, 64)
		if err == nil {
			return n
		}
	}
	return def
}

// ---------------------------------------------------------------- ops

// crashOp is one operation; paths are relative to the mount.
type crashOp struct {
	Kind   string
	Path   string
	Path2  string // rename, link: the new name
	Off    int64
	Len    int64
	Mode   uint32 // create, mkdir, mknod, chmod: permission bits; falloc: fallocate mode
	Uid    int
	Gid    int
	Name   string // xattr name
	Seed   uint32 // of the data written or the xattr value
	Skip   int64  // write: the data is bytes Skip.. of the stream of Seed
	Target string // symlink
	Sec    int64  // utimes
}

func (o crashOp) String() string {
	switch o.Kind {
	case "create", "mkdir", "mknod":
		return fmt.Sprintf("%s %s %04o", o.Kind, o.Path, o.Mode)
	case "write":
		if o.Skip != 0 {
			return fmt.Sprintf("write %s off=%d len=%d seed=%d skip=%d", o.Path, o.Off, o.Len, o.Seed, o.Skip)
		}
		return fmt.Sprintf("write %s off=%d len=%d seed=%d", o.Path, o.Off, o.Len, o.Seed)
	case "append":
		return fmt.Sprintf("append %s len=%d seed=%d", o.Path, o.Len, o.Seed)
	case "truncate":
		return fmt.Sprintf("truncate %s %d", o.Path, o.Len)
	case "falloc":
		return fmt.Sprintf("fallocate %s mode=%#x off=%d len=%d", o.Path, o.Mode, o.Off, o.Len)
	case "punch":
		return fmt.Sprintf("punch %s off=%d len=%d", o.Path, o.Off, o.Len)
	case "rename", "link":
		return fmt.Sprintf("%s %s %s", o.Kind, o.Path, o.Path2)
	case "symlink":
		return fmt.Sprintf("symlink %s -> %q", o.Path, o.Target)
	case "chmod":
		return fmt.Sprintf("chmod %s %04o", o.Path, o.Mode)
	case "chown":
		return fmt.Sprintf("chown %s %d:%d", o.Path, o.Uid, o.Gid)
	case "utimes":
		return fmt.Sprintf("utimes %s %d", o.Path, o.Sec)
	case "setxattr":
		return fmt.Sprintf("setxattr %s %s len=%d seed=%d", o.Path, o.Name, o.Len, o.Seed)
	case "removexattr":
		return fmt.Sprintf("removexattr %s %s", o.Path, o.Name)
	}
	return o.Kind + " " + o.Path
}

// crashData is the data a write, an append or a setxattr of op carries.
func crashData(op crashOp) []byte { return modelBytes(op.Seed, int(op.Skip+op.Len))[op.Skip:] }

// crashShort is a write or an append that wrote only N bytes. The kernel
// sends a write to the server in several requests (it splits it at page
// boundaries); when the server is killed between two, write(2) returns
// what the requests before answered: those bytes were acknowledged.
type crashShort struct{ N int64 }

func (e *crashShort) Error() string { return fmt.Sprintf("short write: %d bytes", e.N) }

// split divides a write or an append that wrote n bytes into the part
// acknowledged (done to the model) and the rest (ambiguous), a write at
// the offset where it would have gone. size is the file's size before op.
func (o crashOp) split(n, size int64) (done, rest crashOp) {
	done, rest = o, o
	done.Len = n
	off := o.Off
	if o.Kind == "append" {
		off = size
	}
	rest.Kind, rest.Off, rest.Skip, rest.Len = "write", off+n, o.Skip+n, o.Len-n
	return done, rest
}

// isData reports whether op changes a file's data or size (and so, when
// ambiguous, may have done so in part).
func (o crashOp) isData() bool {
	switch o.Kind {
	case "write", "append", "truncate", "falloc", "punch":
		return true
	}
	return false
}

// ---------------------------------------------------------------- model

// crashApply does op to the model m; op is one the generator made for
// this state, so the model must accept it (an errno is a generator bug).
// If hedge, the file a data op changes is marked ambiguous first: each
// byte of it may then be as before op or as after it, and the size either.
func crashApply(m *fsmodel.FS, op crashOp, hedge bool) error {
	var e unix.Errno
	file := func() *fsmodel.Node {
		n := m.Lookup(op.Path)
		if n == nil || n.Type != fsmodel.File {
			e = unix.ENOENT
			return nil
		}
		if hedge {
			n.MarkAmbiguous()
		}
		return n
	}
	switch op.Kind {
	case "create":
		_, e = m.Create(op.Path, op.Mode)
	case "mkdir":
		_, e = m.Mkdir(op.Path, op.Mode)
	case "mknod":
		_, e = m.Mkfifo(op.Path, op.Mode)
	case "symlink":
		_, e = m.Symlink(op.Target, op.Path)
	case "write", "append":
		if n := file(); n != nil {
			off := op.Off
			if op.Kind == "append" {
				off = n.Size
			}
			n.WriteAt(crashData(op), off)
		}
	case "truncate":
		if n := file(); n != nil {
			e = n.Truncate(op.Len)
		}
	case "falloc", "punch":
		if n := file(); n != nil {
			e = n.Fallocate(op.Mode, op.Off, op.Len)
		}
	case "unlink":
		e = m.Unlink(op.Path)
	case "rmdir":
		e = m.Rmdir(op.Path)
	case "rename":
		e = m.Rename(op.Path, op.Path2, 0)
	case "link":
		e = m.Link(op.Path, op.Path2)
	case "chmod":
		e = m.Chmod(op.Path, op.Mode)
	case "chown":
		e = m.Lchown(op.Path, uint32(op.Uid), uint32(op.Gid))
	case "setxattr":
		e = m.Setxattr(op.Path, op.Name, crashData(op), 0)
	case "removexattr":
		e = m.Removexattr(op.Path, op.Name)
	case "utimes", "fsync", "syncfs":
		// Times are not compared (see the top of the file).
	default:
		return fmt.Errorf("crash model: unknown op %q", op.Kind)
	}
	if e != 0 {
		return fmt.Errorf("the model refuses %s: %v (a generator bug)", op, errName(e))
	}
	return nil
}

// crashCompareOptions are what the crash test compares: all but times and
// page allocation.
var crashCompareOptions = &fsmodel.Options{Perm: true, Owner: true}

// crashDiffs lists how the mount at mnt differs from the model m.
func crashDiffs(mnt string, m *fsmodel.FS) []fsmodel.Diff {
	return fsmodel.Compare(mnt, m, crashCompareOptions)
}

// ---------------------------------------------------------------- generator

type crashGen struct {
	r     *rand.Rand
	m     *fsmodel.FS
	chown bool            // root: chown to other users
	skip  map[string]bool // kinds left out
	seed  uint32
}

func (g *crashGen) pick(n int) int { return g.r.Intn(n) }

func (g *crashGen) chance(p float64) bool { return g.r.Float64() < p }

// newPath returns a free name in a directory not deeper than 2.
func (g *crashGen) newPath(es []fsmodel.Entry) (string, bool) {
	var dirs []fsmodel.Entry
	for _, e := range es {
		if e.Node.Type == fsmodel.Dir && e.Depth <= 2 {
			dirs = append(dirs, e)
		}
	}
	for try := 0; try < 8; try++ {
		d := dirs[g.pick(len(dirs))]
		name := crashNames[g.pick(len(crashNames))]
		if d.Node.Kids[name] == nil {
			return fsmodel.Join(d.Path, name), true
		}
	}
	return "", false
}

func (g *crashGen) some(es []fsmodel.Entry, keep func(fsmodel.Entry) bool) (fsmodel.Entry, bool) {
	var c []fsmodel.Entry
	for _, e := range es {
		if keep(e) {
			c = append(c, e)
		}
	}
	if len(c) == 0 {
		return fsmodel.Entry{}, false
	}
	return c[g.pick(len(c))], true
}

func (g *crashGen) length() int64 {
	switch x := g.r.Float64(); {
	case x < 0.3:
		return 1 + g.r.Int63n(512)
	case x < 0.8:
		return 1 + g.r.Int63n(8192)
	default:
		return 1 + g.r.Int63n(crashMaxWrite)
	}
}

// offset returns a write offset in a file of size sz: mostly within it,
// sometimes past its end (a hole), sometimes anywhere.
func (g *crashGen) offset(sz int64) int64 {
	switch x := g.r.Float64(); {
	case x < 0.65:
		return g.r.Int63n(sz + 1)
	case x < 0.85:
		return sz + g.r.Int63n(256<<10)
	default:
		return g.r.Int63n(crashMaxSize)
	}
}

func (g *crashGen) nextSeed() uint32 {
	g.seed++
	return g.seed
}

var crashWeights = []struct {
	kind string
	w    int
}{
	{"write", 20}, {"append", 6}, {"truncate", 5}, {"falloc", 3}, {"punch", 4},
	{"create", 10}, {"mkdir", 5}, {"rmdir", 3}, {"unlink", 6}, {"rename", 9},
	{"link", 4}, {"symlink", 4}, {"mknod", 2}, {"chmod", 4}, {"chown", 3},
	{"utimes", 2}, {"setxattr", 7}, {"removexattr", 3}, {"fsync", 2}, {"syncfs", 1},
}

// crashSkip is the set of op kinds MMAPFS_CRASH_SKIP leaves out.
func crashSkip() map[string]bool {
	skip := map[string]bool{}
	for _, k := range strings.Split(os.Getenv("MMAPFS_CRASH_SKIP"), ",") {
		if k = strings.TrimSpace(k); k != "" {
			skip[k] = true
		}
	}
	return skip
}

func (g *crashGen) next() crashOp {
	total := 0
	for _, w := range crashWeights {
		if !g.skip[w.kind] {
			total += w.w
		}
	}
	for {
		x := g.pick(total)
		kind := ""
		for _, w := range crashWeights {
			if g.skip[w.kind] {
				continue
			}
			if x < w.w {
				kind = w.kind
				break
			}
			x -= w.w
		}
		if op, ok := g.make(kind); ok {
			return op
		}
	}
}

func (g *crashGen) make(kind string) (crashOp, bool) {
	es := g.m.Entries()
	crowded := len(es) > crashMaxEntries
	op := crashOp{Kind: kind}
	isReg := func(e fsmodel.Entry) bool { return e.Node.Type == fsmodel.File }
	nonRoot := func(e fsmodel.Entry) bool { return e.Path != "" }
	nonDir := func(e fsmodel.Entry) bool { return e.Node.Type != fsmodel.Dir }
	switch kind {
	case "create", "mkdir", "mknod", "symlink", "link":
		if crowded {
			return op, false
		}
		p, ok := g.newPath(es)
		if !ok {
			return op, false
		}
		switch kind {
		case "create", "mknod":
			op.Path, op.Mode = p, []uint32{0o644, 0o600, 0o755, 0o640, 0o444, 0o000, 0o777}[g.pick(7)]
		case "mkdir":
			op.Path, op.Mode = p, []uint32{0o755, 0o700, 0o750, 0o777, 0o555}[g.pick(5)]
		case "symlink":
			op.Path = p
			switch g.pick(3) {
			case 0:
				op.Target = crashNames[g.pick(len(crashNames))]
			case 1:
				op.Target = "../" + crashNames[g.pick(len(crashNames))] + "/x"
			default:
				op.Target = strings.Repeat("t", 1+g.pick(300))
			}
		case "link":
			src, ok := g.some(es, nonDir)
			if !ok {
				return op, false
			}
			op.Path, op.Path2 = src.Path, p
		}
	case "write", "append", "truncate", "falloc", "punch":
		e, ok := g.some(es, isReg)
		if !ok {
			return op, false
		}
		op.Path = e.Path
		sz := e.Node.Size
		switch kind {
		case "write":
			op.Off, op.Len = g.offset(sz), g.length()
			if op.Off+op.Len > crashMaxSize {
				op.Off = crashMaxSize - op.Len
			}
			op.Seed = g.nextSeed()
		case "append":
			op.Len = g.length()
			if sz+op.Len > crashMaxSize {
				return op, false
			}
			op.Seed = g.nextSeed()
		case "truncate":
			switch x := g.r.Float64(); {
			case x < 0.5:
				op.Len = g.r.Int63n(sz + 1)
			case x < 0.8:
				op.Len = min(sz+g.r.Int63n(256<<10), crashMaxSize)
			default:
				op.Len = g.r.Int63n(crashMaxSize + 1)
			}
		case "falloc":
			op.Mode = 0
			if g.chance(0.5) {
				op.Mode = unix.FALLOC_FL_KEEP_SIZE
			}
			op.Off, op.Len = g.offset(sz), 1+g.r.Int63n(256<<10)
			if op.Off+op.Len > crashMaxSize {
				op.Off = crashMaxSize - op.Len
			}
		case "punch":
			if sz == 0 {
				return op, false
			}
			op.Mode = unix.FALLOC_FL_PUNCH_HOLE | unix.FALLOC_FL_KEEP_SIZE
			op.Off, op.Len = g.r.Int63n(sz), 1+g.r.Int63n(128<<10)
		}
	case "rmdir":
		e, ok := g.some(es, func(e fsmodel.Entry) bool { return nonRoot(e) && e.Node.Type == fsmodel.Dir && len(e.Node.Kids) == 0 })
		if !ok {
			return op, false
		}
		op.Path = e.Path
	case "unlink":
		e, ok := g.some(es, func(e fsmodel.Entry) bool { return nonRoot(e) && nonDir(e) })
		if !ok {
			return op, false
		}
		op.Path = e.Path
	case "rename":
		src, ok := g.some(es, nonRoot)
		if !ok {
			return op, false
		}
		op.Path = src.Path
		inside := func(p string) bool { return p == src.Path || strings.HasPrefix(p, src.Path+"/") }
		if g.chance(0.4) { // over an existing entry
			var dst fsmodel.Entry
			if src.Node.Type == fsmodel.Dir {
				dst, ok = g.some(es, func(e fsmodel.Entry) bool {
					return nonRoot(e) && e.Node.Type == fsmodel.Dir && len(e.Node.Kids) == 0 && !inside(e.Path)
				})
			} else {
				dst, ok = g.some(es, func(e fsmodel.Entry) bool { return nonRoot(e) && nonDir(e) && e.Path != src.Path })
			}
			if !ok {
				return op, false
			}
			op.Path2 = dst.Path
		} else {
			p, ok := g.newPath(es)
			if !ok || (src.Node.Type == fsmodel.Dir && inside(p)) {
				return op, false
			}
			op.Path2 = p
		}
	case "chmod":
		e, ok := g.some(es, func(e fsmodel.Entry) bool { return nonRoot(e) && e.Node.Type != fsmodel.Symlink })
		if !ok {
			return op, false
		}
		// No set-ID bits: chown and write would clear them, which the
		// model leaves to tests/attr_test.go.
		op.Path, op.Mode = e.Path, uint32(g.pick(0o1000))
	case "chown":
		if !g.chown {
			return op, false
		}
		e, ok := g.some(es, nonRoot)
		if !ok {
			return op, false
		}
		op.Path, op.Uid, op.Gid = e.Path, crashIDs[g.pick(len(crashIDs))], crashIDs[g.pick(len(crashIDs))]
	case "utimes":
		e := es[g.pick(len(es))]
		op.Path, op.Sec = e.Path, 1e9+g.r.Int63n(1e9)
	case "setxattr", "removexattr":
		e, ok := g.some(es, func(e fsmodel.Entry) bool {
			if e.Node.Type != fsmodel.File && e.Node.Type != fsmodel.Dir {
				return false // user.* only on files and directories
			}
			return kind == "setxattr" || len(e.Node.Xattrs) > 0
		})
		if !ok {
			return op, false
		}
		op.Path = e.Path
		if kind == "setxattr" {
			op.Name = crashXattrNames[g.pick(len(crashXattrNames))]
			op.Len, op.Seed = int64(g.pick(300)), g.nextSeed()
		} else {
			var names []string
			for k := range e.Node.Xattrs {
				names = append(names, k)
			}
			sort.Strings(names)
			op.Name = names[g.pick(len(names))]
		}
	case "fsync":
		e, ok := g.some(es, func(e fsmodel.Entry) bool { return isReg(e) || e.Node.Type == fsmodel.Dir })
		if !ok {
			return op, false
		}
		op.Path = e.Path
	case "syncfs":
	default:
		panic("unknown kind " + kind)
	}
	return op, true
}

// ---------------------------------------------------------------- running ops

// crashExec does op on the mount at mnt. The error is that of the call
// that does the op's change (an open before it changes nothing; a close
// after it fails on a dead mount without undoing the change).
func crashExec(mnt string, op crashOp, held *crashFDs) error {
	p := filepath.Join(mnt, op.Path)
	p2 := filepath.Join(mnt, op.Path2)
	openDo := func(flags int, do func(fd int) error) error {
		fd, err := unix.Open(p, flags|unix.O_CLOEXEC|unix.O_NOFOLLOW, 0)
		if err != nil {
			return fmt.Errorf("open: %w", err)
		}
		defer unix.Close(fd)
		return do(fd)
	}
	// Writes go through a descriptor kept open from an earlier write of
	// the path, if there is one, and half of them keep theirs open for
	// later ones: so the server is killed now and then while files are
	// open for writing (with passthrough, written by the kernel alone).
	heldDo := func(flags int, do func(fd int) error) error {
		key := fmt.Sprintf("%s|%d", op.Path, flags)
		if fd, ok := held.fds[key]; ok {
			return do(fd)
		}
		fd, err := unix.Open(p, flags|unix.O_CLOEXEC|unix.O_NOFOLLOW, 0)
		if err != nil {
			return fmt.Errorf("open: %w", err)
		}
		err = do(fd)
		if op.Seed%2 == 0 {
			held.add(key, fd)
		} else {
			unix.Close(fd)
		}
		return err
	}
	switch op.Kind {
	case "unlink", "rmdir", "rename":
		// A held descriptor must keep naming the file of its path.
		held.closeAll()
	}
	switch op.Kind {
	case "create":
		fd, err := unix.Open(p, unix.O_CREAT|unix.O_EXCL|unix.O_WRONLY|unix.O_CLOEXEC, op.Mode)
		if err == nil {
			unix.Close(fd)
		}
		return err
	case "mkdir":
		return unix.Mkdir(p, op.Mode)
	case "mknod":
		return unix.Mknod(p, unix.S_IFIFO|op.Mode, 0)
	case "symlink":
		return unix.Symlink(op.Target, p)
	case "write":
		return heldDo(unix.O_WRONLY, func(fd int) error {
			b := crashData(op)
			n, err := unix.Pwrite(fd, b, op.Off)
			if err == nil && n != len(b) {
				return &crashShort{N: int64(n)}
			}
			return err
		})
	case "append":
		return heldDo(unix.O_WRONLY|unix.O_APPEND, func(fd int) error {
			b := crashData(op)
			n, err := unix.Write(fd, b)
			if err == nil && n != len(b) {
				return &crashShort{N: int64(n)}
			}
			return err
		})
	case "truncate":
		return unix.Truncate(p, op.Len)
	case "falloc", "punch":
		return openDo(unix.O_WRONLY, func(fd int) error { return unix.Fallocate(fd, op.Mode, op.Off, op.Len) })
	case "unlink":
		return unix.Unlink(p)
	case "rmdir":
		return unix.Rmdir(p)
	case "rename":
		return unix.Rename(p, p2)
	case "link":
		return unix.Linkat(unix.AT_FDCWD, p, unix.AT_FDCWD, p2, 0)
	case "chmod":
		return unix.Chmod(p, op.Mode)
	case "chown":
		return unix.Lchown(p, op.Uid, op.Gid)
	case "utimes":
		ts := []unix.Timespec{{Sec: op.Sec, Nsec: op.Sec % 1e9}, {Sec: op.Sec + 1, Nsec: (op.Sec / 3) % 1e9}}
		return unix.UtimesNanoAt(unix.AT_FDCWD, p, ts, unix.AT_SYMLINK_NOFOLLOW)
	case "setxattr":
		return unix.Lsetxattr(p, op.Name, crashData(op), 0)
	case "removexattr":
		return unix.Lremovexattr(p, op.Name)
	case "fsync":
		return openDo(unix.O_RDONLY, unix.Fsync)
	case "syncfs":
		fd, err := unix.Open(mnt, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
		if err != nil {
			return fmt.Errorf("open: %w", err)
		}
		defer unix.Close(fd)
		return unix.Syncfs(fd)
	}
	return fmt.Errorf("unknown op %q", op.Kind)
}

// crashFDs are the descriptors the workload keeps open for writing
// (crashExec), by path and open flags, at most crashMaxHeld of them.
type crashFDs struct {
	fds   map[string]int
	order []string
}

const crashMaxHeld = 4

func (h *crashFDs) add(key string, fd int) {
	if h.fds == nil {
		h.fds = make(map[string]int)
	}
	if len(h.order) == crashMaxHeld {
		unix.Close(h.fds[h.order[0]])
		delete(h.fds, h.order[0])
		h.order = h.order[1:]
	}
	h.fds[key] = fd
	h.order = append(h.order, key)
}

// closeAll closes the descriptors (on a killed server's mount too).
func (h *crashFDs) closeAll() {
	for _, fd := range h.fds {
		unix.Close(fd)
	}
	h.fds, h.order = nil, nil
}

// crashKillErr reports whether err is what an op gets from a mount whose
// server was killed.
func crashKillErr(err error) bool {
	for _, e := range []unix.Errno{unix.ENOTCONN, unix.ECONNABORTED, unix.EIO, unix.EINTR} {
		if errors.Is(err, e) {
			return true
		}
	}
	return false
}

// ---------------------------------------------------------------- the test

type crashStats struct {
	rounds, kills, timerKills, cleanRounds, ops, ambiguous, ambiguousApplied, fscks, shortWrites int
}

type crashRun struct {
	t     *testing.T
	seed  int64
	sync  bool
	store string
	mnt   string
	r     *rand.Rand
	m     *fsmodel.FS
	gen   *crashGen
	st    crashStats
	log   []string
	round int
	p     *binProc // the current server
	// logFile is where writeLog wrote the op log, once it has.
	logFile string
	// pending is the op in flight at the kill, if one was.
	pending *crashOp
	// held are the descriptors kept open for writing across ops.
	held crashFDs
}

func (c *crashRun) logf(format string, args ...any) {
	c.log = append(c.log, fmt.Sprintf("r%d ", c.round)+fmt.Sprintf(format, args...))
}

// writeLog writes the whole op log to a file in os.TempDir() (left there)
// and returns its name.
func (c *crashRun) writeLog() string {
	if c.logFile != "" {
		return c.logFile
	}
	c.logFile = filepath.Join(os.TempDir(), fmt.Sprintf("mmapfs-crash-seed%d-%d.log", c.seed, os.Getpid()))
	if err := os.WriteFile(c.logFile, []byte(strings.Join(c.log, "\n")+"\n"), 0o644); err != nil {
		c.logFile = "(not written: " + err.Error() + ")"
	}
	return c.logFile
}

// fail reports the seed, the op log and the server's output, and stops.
func (c *crashRun) fail(format string, args ...any) {
	c.t.Helper()
	msg := fmt.Sprintf(format, args...)
	tail := c.log
	if len(tail) > 300 {
		tail = tail[len(tail)-300:]
	}
	logFile := c.writeLog()
	out := ""
	if c.p != nil {
		out = c.p.output.String()
		if len(out) > 4000 {
			out = "…" + out[len(out)-4000:]
		}
	}
	c.t.Fatalf("seed %d, round %d: %s\n\nrerun: MMAPFS_CRASH_SEED=%d MMAPFS_CRASH_ROUNDS=%d go test -count=1 -run '^TestPersistCrash$' ./tests/ (timer kills make a rerun differ; MMAPFS_CRASH_SYNC=1 kills only between ops)\n"+
		"full op log: %s\nlast %d ops:\n%s\n\nserver output (last mount):\n%s",
		c.seed, c.round, msg, c.seed, crashEnvInt("MMAPFS_CRASH_ROUNDS", crashDefaultRounds), logFile, len(tail), strings.Join(tail, "\n"), out)
}

// mount starts a server on the store and checks the tree against the
// model (resolving the pending op).
func (c *crashRun) mount() {
	c.t.Helper()
	// Passthrough by default (as root), and now and then without it: the
	// store goes from one to the other.
	var extra []string
	if c.r.Intn(4) == 0 {
		extra = append(extra, "--passthrough=off")
	}
	c.p = pstMount(c.t, c.store, c.mnt, c.r.Intn(4) == 0, extra...)
	if c.m == nil { // the first mount of a new store
		var st unix.Stat_t
		if err := unix.Lstat(c.mnt, &st); err != nil {
			c.fail("lstat of the mount's root: %v", err)
		}
		if ents, err := os.ReadDir(c.mnt); err != nil || len(ents) != 0 {
			c.fail("a new store shows %d entries (%v), want only the root", len(ents), err)
		}
		c.m = fsmodel.New(st.Mode&0o7777, modelUmask())
		c.m.Root().Uid, c.m.Root().Gid = st.Uid, st.Gid
		c.gen = &crashGen{r: c.r, m: c.m, chown: os.Geteuid() == 0, skip: crashSkip()}
		return
	}
	if c.pending == nil {
		if d := crashDiffs(c.mnt, c.m); len(d) > 0 {
			c.fail("the mount differs from the model (no op was in flight at the kill, so all of them were acknowledged):\n  %s", crashLimit(d))
		}
		return
	}
	op := *c.pending
	c.pending = nil
	dBefore := crashDiffs(c.mnt, c.m)
	if len(dBefore) == 0 {
		c.logf("   ambiguous op %s: not done", op)
		return
	}
	after := c.m.Clone()
	if err := crashApply(after, op, op.isData()); err != nil {
		c.fail("%v", err)
	}
	dAfter := crashDiffs(c.mnt, after)
	if len(dAfter) > 0 {
		c.fail("the mount differs from the model both without and with the op in flight at the kill (%s)\nwithout it:\n  %s\nwith it:\n  %s",
			op, crashLimit(dBefore), crashLimit(dAfter))
	}
	if err := after.Settle(c.mnt); err != nil {
		c.fail("%v", err)
	}
	c.m = after
	c.gen.m = after
	c.st.ambiguousApplied++
	c.logf("   ambiguous op %s: done", op)
}

func crashLimit(d []fsmodel.Diff) string { return fsmodel.Summary(d, 40, "\n  ") }

// work runs up to n ops. If killed is not nil, the server may be killed
// under it: the first op that fails once killed is set becomes pending
// and work returns. Any other failure fails the test.
func (c *crashRun) work(n int, killed *atomic.Bool) {
	c.t.Helper()
	for i := 0; i < n; i++ {
		op := c.gen.next()
		err := crashExec(c.mnt, op, &c.held)
		if err == nil {
			if err := crashApply(c.m, op, false); err != nil {
				c.fail("%v", err)
			}
			c.st.ops++
			c.logf("%s", op)
			if killed != nil && killed.Load() {
				return // acknowledged; the next op would find the server gone
			}
			continue
		}
		var short *crashShort
		if killed != nil && killed.Load() && errors.As(err, &short) {
			done, rest := op.split(short.N, c.m.Lookup(op.Path).Size)
			if err := crashApply(c.m, done, false); err != nil {
				c.fail("%v", err)
			}
			c.st.ops++
			c.st.shortWrites++
			c.logf("%s -> %v (killed: %d bytes acknowledged, the rest ambiguous: %s)", op, err, short.N, rest)
			c.pending = &rest
			c.st.ambiguous++
			return
		}
		if killed != nil && killed.Load() && crashKillErr(err) {
			c.logf("%s -> %v (killed: ambiguous)", op, err)
			c.pending = &op
			c.st.ambiguous++
			return
		}
		c.logf("%s -> %v", op, err)
		c.fail("%s: %v (the server was not killed)", op, errString(err))
	}
}

// killNow kills the server (SIGKILL) and detaches the dead mount. Now and
// then it runs `mmapfs fsck --repair` on the store left behind: it may
// repair (exit status 1) but must find nothing it cannot repair, and the
// next mount must still show everything acknowledged.
func (c *crashRun) killNow() {
	c.t.Helper()
	pstKill(c.t, c.p, c.mnt)
	c.held.closeAll() // open for writing while the server was killed
	c.st.kills++
	if c.r.Intn(5) == 0 {
		code, out := pstFsck(c.t, c.store, "--repair")
		c.st.fscks++
		c.logf("-- mmapfs fsck --repair: exit status %d", code)
		if code != 0 && code != 1 {
			c.fail("mmapfs fsck --store %s --repair after a kill: exit status %d, want 0 or 1; output:\n%s", c.store, code, out)
		}
	}
}

func TestPersistCrash(t *testing.T) {
	pstSetup(t)
	rounds := int(crashEnvInt("MMAPFS_CRASH_ROUNDS", crashDefaultRounds))
	seed := crashEnvInt("MMAPFS_CRASH_SEED", time.Now().UnixNano()%1000000)
	c := &crashRun{
		t:     t,
		seed:  seed,
		sync:  os.Getenv("MMAPFS_CRASH_SYNC") == "1",
		store: pstStoreDir(t),
		mnt:   binMountpoint(t),
		r:     rand.New(rand.NewSource(seed)),
	}
	t.Logf("seed %d, %d rounds (MMAPFS_CRASH_SEED=%d MMAPFS_CRASH_ROUNDS=%d to run it again)", seed, rounds, seed, rounds)
	if s := os.Getenv("MMAPFS_CRASH_SKIP"); s != "" {
		t.Logf("leaving out the ops %s (MMAPFS_CRASH_SKIP)", s)
	}
	start := time.Now()
	defer func() {
		if t.Failed() && c.logFile == "" { // failed outside c.fail (a mount that did not come up, ...)
			t.Logf("seed %d, round %d; op log: %s", seed, c.round, c.writeLog())
		}
		s := c.st
		t.Logf("CRASH-SUMMARY seed=%d rounds=%d kills=%d timer_kills=%d clean=%d ops=%d ambiguous=%d ambiguous_done=%d short_writes=%d fsck_after_kill=%d secs=%.1f",
			seed, s.rounds, s.kills, s.timerKills, s.cleanRounds, s.ops, s.ambiguous, s.ambiguousApplied, s.shortWrites, s.fscks, time.Since(start).Seconds())
	}()

	for c.round = 1; c.round <= rounds; c.round++ {
		c.mount()
		c.st.rounds++
		switch x := c.r.Intn(100); {
		case x < 10: // a clean unmount
			c.work(c.r.Intn(200), nil)
			c.logf("-- clean unmount")
			c.held.closeAll()
			pstUnmount(t, c.p, c.mnt)
			c.st.cleanRounds++
		case x < 45 || c.sync: // kill between two ops
			c.work(c.r.Intn(400), nil)
			c.logf("-- SIGKILL between ops")
			c.killNow()
		default: // kill at a random moment
			d := time.Millisecond + time.Duration(c.r.Int63n(int64(crashMaxTimer)))
			var killed atomic.Bool
			var once sync.Once
			p := c.p
			kill := func() {
				once.Do(func() {
					killed.Store(true)
					_ = p.cmd.Process.Kill()
				})
			}
			timer := time.AfterFunc(d, kill)
			c.work(crashMaxRoundOps, &killed)
			if timer.Stop() {
				c.logf("-- SIGKILL after the round's ops (timer of %v not fired)", d)
			} else {
				c.st.timerKills++
				c.logf("-- SIGKILL by a timer after %v", d)
			}
			kill()
			c.killNow()
		}
	}

	// The last mount: a workload, a clean unmount, and the tree again.
	c.round = rounds + 1
	c.mount()
	c.work(crashFinalOps, nil)
	c.logf("-- clean unmount")
	c.held.closeAll()
	pstUnmount(t, c.p, c.mnt)
	c.round++
	c.mount()
	pstUnmount(t, c.p, c.mnt)
	if code, out := pstFsck(t, c.store); code != 0 {
		c.fail("mmapfs fsck --store %s after the last clean unmount: exit status %d, want 0; output:\n%s", c.store, code, out)
	}
	if m := binFindMount(c.mnt); m != nil {
		t.Errorf("still mounted: %+v", *m)
	}
}
