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
// workload goes on from there. Some rounds end with a clean unmount instead. At the end:
// a clean unmount, a mount that must show the model exactly, and
// `mmapfs fsck --store DIR`, which must exit 0.
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
	"bytes"
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

// crashNode is a file of the model. Hard links share the node.
type crashNode struct {
	typ      uint32 // unix.S_IFREG, S_IFDIR, S_IFLNK, S_IFIFO
	perm     uint32
	uid, gid uint32
	data     []byte
	target   string
	xattrs   map[string][]byte
	kids     map[string]*crashNode // directories

	// An ambiguous data op was applied (fuzzy): each byte may be as in
	// data or as in old, and the size either.
	fuzzy bool
	old   []byte
}

type crashModel struct {
	root  *crashNode
	umask uint32
	fuzzy bool // apply marks the nodes of data ops fuzzy
}

func (m *crashModel) clone() *crashModel {
	seen := map[*crashNode]*crashNode{}
	var cp func(n *crashNode) *crashNode
	cp = func(n *crashNode) *crashNode {
		if c, ok := seen[n]; ok {
			return c
		}
		c := *n
		c.data = bytes.Clone(n.data)
		c.old = bytes.Clone(n.old)
		c.xattrs = map[string][]byte{}
		for k, v := range n.xattrs {
			c.xattrs[k] = v
		}
		seen[n] = &c
		if n.kids != nil {
			c.kids = map[string]*crashNode{}
			for k, v := range n.kids {
				c.kids[k] = cp(v)
			}
		}
		return &c
	}
	return &crashModel{root: cp(m.root), umask: m.umask}
}

// lookup returns the directory that holds p, p's last name and the node
// there (nil if none). p == "" is the root.
func (m *crashModel) lookup(p string) (dir *crashNode, name string, n *crashNode) {
	if p == "" {
		return nil, "", m.root
	}
	parts := strings.Split(p, "/")
	d := m.root
	for _, c := range parts[:len(parts)-1] {
		d = d.kids[c]
		if d == nil || d.typ != unix.S_IFDIR {
			panic("crash model: no directory for " + p)
		}
	}
	name = parts[len(parts)-1]
	return d, name, d.kids[name]
}

// crashEnt is a path of the model.
type crashEnt struct {
	path  string
	n     *crashNode
	depth int
}

// entries lists every path, the root ("") first, in sorted walk order.
func (m *crashModel) entries() []crashEnt {
	var out []crashEnt
	var walk func(p string, n *crashNode, depth int)
	walk = func(p string, n *crashNode, depth int) {
		out = append(out, crashEnt{p, n, depth})
		if n.kids == nil {
			return
		}
		names := make([]string, 0, len(n.kids))
		for k := range n.kids {
			names = append(names, k)
		}
		sort.Strings(names)
		for _, k := range names {
			walk(pstJoin(p, k), n.kids[k], depth+1)
		}
	}
	walk("", m.root, 0)
	return out
}

func (m *crashModel) touchData(n *crashNode) {
	if m.fuzzy && !n.fuzzy {
		n.fuzzy = true
		n.old = bytes.Clone(n.data)
	}
}

func crashResize(b []byte, size int64) []byte {
	if int64(len(b)) >= size {
		return b[:size]
	}
	return append(b, make([]byte, size-int64(len(b)))...)
}

// apply does op to the model; op is one the generator made for this
// state, so it succeeds.
func (m *crashModel) apply(op crashOp) {
	dir, name, n := m.lookup(op.Path)
	switch op.Kind {
	case "create":
		dir.kids[name] = &crashNode{typ: unix.S_IFREG, perm: op.Mode &^ m.umask, data: []byte{}, xattrs: map[string][]byte{}}
	case "mkdir":
		dir.kids[name] = &crashNode{typ: unix.S_IFDIR, perm: op.Mode &^ m.umask, xattrs: map[string][]byte{}, kids: map[string]*crashNode{}}
	case "mknod":
		dir.kids[name] = &crashNode{typ: unix.S_IFIFO, perm: op.Mode &^ m.umask, xattrs: map[string][]byte{}}
	case "symlink":
		dir.kids[name] = &crashNode{typ: unix.S_IFLNK, perm: 0o777, target: op.Target, xattrs: map[string][]byte{}}
	case "write", "append":
		m.touchData(n)
		off := op.Off
		if op.Kind == "append" {
			off = int64(len(n.data))
		}
		b := crashData(op)
		if end := off + int64(len(b)); end > int64(len(n.data)) {
			n.data = crashResize(n.data, end)
		}
		copy(n.data[off:], b)
	case "truncate":
		m.touchData(n)
		n.data = crashResize(n.data, op.Len)
	case "falloc":
		m.touchData(n)
		if op.Mode&unix.FALLOC_FL_KEEP_SIZE == 0 && op.Off+op.Len > int64(len(n.data)) {
			n.data = crashResize(n.data, op.Off+op.Len)
		}
	case "punch":
		m.touchData(n)
		end := min(op.Off+op.Len, int64(len(n.data)))
		for i := op.Off; i < end; i++ {
			n.data[i] = 0
		}
	case "unlink", "rmdir":
		delete(dir.kids, name)
	case "rename":
		dir2, name2, n2 := m.lookup(op.Path2)
		if n2 == n {
			return // two links of one inode: rename does nothing
		}
		delete(dir.kids, name)
		dir2.kids[name2] = n
	case "link":
		dir2, name2, _ := m.lookup(op.Path2)
		dir2.kids[name2] = n
	case "chmod":
		n.perm = op.Mode
	case "chown":
		n.uid, n.gid = uint32(op.Uid), uint32(op.Gid)
	case "setxattr":
		n.xattrs[op.Name] = crashData(op)
	case "removexattr":
		delete(n.xattrs, op.Name)
	case "utimes", "fsync", "syncfs":
	default:
		panic("crash model: unknown op " + op.Kind)
	}
}

// ---------------------------------------------------------------- generator

type crashGen struct {
	r     *rand.Rand
	m     *crashModel
	chown bool            // root: chown to other users
	skip  map[string]bool // kinds left out
	seed  uint32
}

func (g *crashGen) pick(n int) int { return g.r.Intn(n) }

func (g *crashGen) chance(p float64) bool { return g.r.Float64() < p }

// newPath returns a free name in a directory not deeper than 2.
func (g *crashGen) newPath(es []crashEnt) (string, bool) {
	var dirs []crashEnt
	for _, e := range es {
		if e.n.typ == unix.S_IFDIR && e.depth <= 2 {
			dirs = append(dirs, e)
		}
	}
	for try := 0; try < 8; try++ {
		d := dirs[g.pick(len(dirs))]
		name := crashNames[g.pick(len(crashNames))]
		if d.n.kids[name] == nil {
			return pstJoin(d.path, name), true
		}
	}
	return "", false
}

func (g *crashGen) some(es []crashEnt, keep func(crashEnt) bool) (crashEnt, bool) {
	var c []crashEnt
	for _, e := range es {
		if keep(e) {
			c = append(c, e)
		}
	}
	if len(c) == 0 {
		return crashEnt{}, false
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
	es := g.m.entries()
	crowded := len(es) > crashMaxEntries
	op := crashOp{Kind: kind}
	isReg := func(e crashEnt) bool { return e.n.typ == unix.S_IFREG }
	nonRoot := func(e crashEnt) bool { return e.path != "" }
	nonDir := func(e crashEnt) bool { return e.n.typ != unix.S_IFDIR }
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
			op.Path, op.Path2 = src.path, p
		}
	case "write", "append", "truncate", "falloc", "punch":
		e, ok := g.some(es, isReg)
		if !ok {
			return op, false
		}
		op.Path = e.path
		sz := int64(len(e.n.data))
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
		e, ok := g.some(es, func(e crashEnt) bool { return nonRoot(e) && e.n.typ == unix.S_IFDIR && len(e.n.kids) == 0 })
		if !ok {
			return op, false
		}
		op.Path = e.path
	case "unlink":
		e, ok := g.some(es, func(e crashEnt) bool { return nonRoot(e) && nonDir(e) })
		if !ok {
			return op, false
		}
		op.Path = e.path
	case "rename":
		src, ok := g.some(es, nonRoot)
		if !ok {
			return op, false
		}
		op.Path = src.path
		inside := func(p string) bool { return p == src.path || strings.HasPrefix(p, src.path+"/") }
		if g.chance(0.4) { // over an existing entry
			var dst crashEnt
			if src.n.typ == unix.S_IFDIR {
				dst, ok = g.some(es, func(e crashEnt) bool {
					return nonRoot(e) && e.n.typ == unix.S_IFDIR && len(e.n.kids) == 0 && !inside(e.path)
				})
			} else {
				dst, ok = g.some(es, func(e crashEnt) bool { return nonRoot(e) && nonDir(e) && e.path != src.path })
			}
			if !ok {
				return op, false
			}
			op.Path2 = dst.path
		} else {
			p, ok := g.newPath(es)
			if !ok || (src.n.typ == unix.S_IFDIR && inside(p)) {
				return op, false
			}
			op.Path2 = p
		}
	case "chmod":
		e, ok := g.some(es, func(e crashEnt) bool { return nonRoot(e) && e.n.typ != unix.S_IFLNK })
		if !ok {
			return op, false
		}
		// No set-ID bits: chown and write would clear them, which the
		// model leaves to tests/attr_test.go.
		op.Path, op.Mode = e.path, uint32(g.pick(0o1000))
	case "chown":
		if !g.chown {
			return op, false
		}
		e, ok := g.some(es, nonRoot)
		if !ok {
			return op, false
		}
		op.Path, op.Uid, op.Gid = e.path, crashIDs[g.pick(len(crashIDs))], crashIDs[g.pick(len(crashIDs))]
	case "utimes":
		e := es[g.pick(len(es))]
		op.Path, op.Sec = e.path, 1e9+g.r.Int63n(1e9)
	case "setxattr", "removexattr":
		e, ok := g.some(es, func(e crashEnt) bool {
			if e.n.typ != unix.S_IFREG && e.n.typ != unix.S_IFDIR {
				return false // user.* only on files and directories
			}
			return kind == "setxattr" || len(e.n.xattrs) > 0
		})
		if !ok {
			return op, false
		}
		op.Path = e.path
		if kind == "setxattr" {
			op.Name = crashXattrNames[g.pick(len(crashXattrNames))]
			op.Len, op.Seed = int64(g.pick(300)), g.nextSeed()
		} else {
			var names []string
			for k := range e.n.xattrs {
				names = append(names, k)
			}
			sort.Strings(names)
			op.Name = names[g.pick(len(names))]
		}
	case "fsync":
		e, ok := g.some(es, func(e crashEnt) bool { return isReg(e) || e.n.typ == unix.S_IFDIR })
		if !ok {
			return op, false
		}
		op.Path = e.path
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
func crashExec(mnt string, op crashOp) error {
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
		return openDo(unix.O_WRONLY, func(fd int) error {
			b := crashData(op)
			n, err := unix.Pwrite(fd, b, op.Off)
			if err == nil && n != len(b) {
				return &crashShort{N: int64(n)}
			}
			return err
		})
	case "append":
		return openDo(unix.O_WRONLY|unix.O_APPEND, func(fd int) error {
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

// ---------------------------------------------------------------- comparing

// crashSeen is what the mount shows of one path.
type crashSeen struct {
	mode     uint32
	uid, gid uint32
	size     int64
	nlink    uint64
	ino      uint64
	data     []byte
	target   string
	xattrs   map[string][]byte
}

// crashScan reads the whole tree of the mount.
func crashScan(mnt string) (map[string]*crashSeen, error) {
	seen := map[string]*crashSeen{}
	var walk func(rel string) error
	walk = func(rel string) error {
		p := filepath.Join(mnt, rel)
		var st unix.Stat_t
		if err := unix.Lstat(p, &st); err != nil {
			return fmt.Errorf("lstat %s: %w", pstPathName(rel), err)
		}
		s := &crashSeen{mode: st.Mode, uid: st.Uid, gid: st.Gid, size: st.Size, nlink: uint64(st.Nlink), ino: st.Ino}
		seen[rel] = s
		x, err := pstXattrs(p)
		if err != nil {
			return fmt.Errorf("%s: %w", pstPathName(rel), err)
		}
		s.xattrs = x
		switch st.Mode & unix.S_IFMT {
		case unix.S_IFREG:
			b, err := os.ReadFile(p)
			if err != nil {
				return fmt.Errorf("read %s: %w", pstPathName(rel), err)
			}
			s.data = b
		case unix.S_IFLNK:
			tg, err := os.Readlink(p)
			if err != nil {
				return fmt.Errorf("readlink %s: %w", pstPathName(rel), err)
			}
			s.target = tg
		case unix.S_IFDIR:
			ents, err := os.ReadDir(p)
			if err != nil {
				return fmt.Errorf("readdir %s: %w", pstPathName(rel), err)
			}
			for _, de := range ents {
				if err := walk(pstJoin(rel, de.Name())); err != nil {
					return err
				}
			}
		}
		return nil
	}
	return seen, walk("")
}

func crashTypeName(mode uint32) string {
	switch mode & unix.S_IFMT {
	case unix.S_IFREG:
		return "file"
	case unix.S_IFDIR:
		return "directory"
	case unix.S_IFLNK:
		return "symlink"
	case unix.S_IFIFO:
		return "fifo"
	case unix.S_IFSOCK:
		return "socket"
	case unix.S_IFCHR:
		return "char device"
	case unix.S_IFBLK:
		return "block device"
	}
	return fmt.Sprintf("type %#o", mode&unix.S_IFMT)
}

func crashAt(b []byte, i int) byte {
	if i < len(b) {
		return b[i]
	}
	return 0
}

// crashDataDiff compares a file's data with the model's: exactly, or for
// a fuzzy node each byte as in data or old, the size of either.
func crashDataDiff(n *crashNode, got []byte) string {
	if !n.fuzzy {
		if bytes.Equal(got, n.data) {
			return ""
		}
		return pstDataDiff(n.data, got)
	}
	var d []string
	if len(got) != len(n.data) && len(got) != len(n.old) {
		d = append(d, fmt.Sprintf("size %d, want %d (after the ambiguous op) or %d (before it)", len(got), len(n.data), len(n.old)))
	}
	bad, first := 0, -1
	for i := range got {
		if got[i] != crashAt(n.data, i) && got[i] != crashAt(n.old, i) {
			if first < 0 {
				first = i
			}
			bad++
		}
	}
	if first >= 0 {
		d = append(d, fmt.Sprintf("%d bytes are neither as before the ambiguous op nor as after it, the first at %d: %#02x, want %#02x (after) or %#02x (before)",
			bad, first, got[first], crashAt(n.data, first), crashAt(n.old, first)))
	}
	if len(d) > 0 && len(got) > len(n.old) {
		// Say how much of what lies past the old size is the new data.
		newBytes := 0
		for i := len(n.old); i < len(got); i++ {
			if got[i] == crashAt(n.data, i) {
				newBytes++
			}
		}
		d = append(d, fmt.Sprintf("of the %d bytes past the old size, %d are as after the op", len(got)-len(n.old), newBytes))
	}
	return strings.Join(d, "; ")
}

// crashCompare lists how the mount (seen) differs from the model m.
func crashCompare(seen map[string]*crashSeen, m *crashModel) []string {
	var d []string
	add := func(format string, args ...any) { d = append(d, fmt.Sprintf(format, args...)) }
	es := m.entries()
	links := map[*crashNode]int{}
	want := map[string]*crashEnt{}
	for i := range es {
		links[es[i].n]++
		want[es[i].path] = &es[i]
	}
	var paths []string
	for p := range seen {
		paths = append(paths, p)
	}
	sort.Strings(paths)
	for _, p := range paths {
		if want[p] == nil {
			s := seen[p]
			add("%s: unexpected %s (mode %07o, size %d)", pstPathName(p), crashTypeName(s.mode), s.mode, s.size)
		}
	}
	inoOf := map[*crashNode]uint64{}
	nodeOf := map[uint64]string{}
	for _, e := range es {
		s := seen[e.path]
		name := pstPathName(e.path)
		n := e.n
		if s == nil {
			add("%s: missing (want a %s)", name, crashTypeName(n.typ))
			continue
		}
		if s.mode&unix.S_IFMT != n.typ {
			add("%s: a %s, want a %s", name, crashTypeName(s.mode), crashTypeName(n.typ))
			continue
		}
		if s.mode&0o7777 != n.perm {
			add("%s: permissions %04o, want %04o", name, s.mode&0o7777, n.perm)
		}
		if s.uid != n.uid || s.gid != n.gid {
			add("%s: owner %d:%d, want %d:%d", name, s.uid, s.gid, n.uid, n.gid)
		}
		wantNlink := uint64(links[n])
		if n.typ == unix.S_IFDIR {
			wantNlink = 2
			for _, k := range n.kids {
				if k.typ == unix.S_IFDIR {
					wantNlink++
				}
			}
		}
		if s.nlink != wantNlink {
			add("%s: nlink %d, want %d", name, s.nlink, wantNlink)
		}
		switch n.typ {
		case unix.S_IFREG:
			if s.size != int64(len(s.data)) {
				add("%s: st_size %d but %d bytes read", name, s.size, len(s.data))
			}
			if diff := crashDataDiff(n, s.data); diff != "" {
				add("%s: data: %s", name, diff)
			}
		case unix.S_IFLNK:
			if s.target != n.target {
				add("%s: target %q, want %q", name, s.target, n.target)
			}
		}
		if diff := pstXattrDiff(n.xattrs, s.xattrs); diff != "" {
			add("%s: xattrs: %s", name, diff)
		}
		// Links of one node are one inode, and different nodes are
		// different inodes.
		if ino, ok := inoOf[n]; ok && ino != s.ino {
			add("%s: inode %d, but it is a link of an inode %d", name, s.ino, ino)
		}
		inoOf[n] = s.ino
		if other, ok := nodeOf[s.ino]; ok {
			if want[other].n != n {
				add("%s: same inode %d as %s, which is another file", name, s.ino, pstPathName(other))
			}
		} else {
			nodeOf[s.ino] = e.path
		}
	}
	return d
}

// resync makes the model's fuzzy nodes what the mount shows (once the
// mount was found to agree with them).
func (m *crashModel) resync(seen map[string]*crashSeen) {
	for _, e := range m.entries() {
		if e.n.fuzzy {
			e.n.data = bytes.Clone(seen[e.path].data)
			e.n.fuzzy, e.n.old = false, nil
		}
	}
	m.fuzzy = false
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
	m     *crashModel
	gen   *crashGen
	st    crashStats
	log   []string
	round int
	p     *binProc // the current server
	// logFile is where writeLog wrote the op log, once it has.
	logFile string
	// pending is the op in flight at the kill, if one was.
	pending *crashOp
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
	c.p = pstMount(c.t, c.store, c.mnt, c.r.Intn(4) == 0)
	seen, err := crashScan(c.mnt)
	if err != nil {
		c.fail("reading the tree after the mount: %v", err)
	}
	if c.m == nil { // the first mount of a new store
		root := seen[""]
		if len(seen) != 1 {
			c.fail("a new store shows %d entries, want only the root", len(seen))
		}
		c.m = &crashModel{umask: modelUmask(), root: &crashNode{
			typ: unix.S_IFDIR, perm: root.mode & 0o7777, uid: root.uid, gid: root.gid,
			xattrs: map[string][]byte{}, kids: map[string]*crashNode{},
		}}
		c.gen = &crashGen{r: c.r, m: c.m, chown: os.Geteuid() == 0, skip: crashSkip()}
		return
	}
	if c.pending == nil {
		if d := crashCompare(seen, c.m); len(d) > 0 {
			c.fail("the mount differs from the model (no op was in flight at the kill, so all of them were acknowledged):\n  %s", crashLimit(d))
		}
		return
	}
	op := *c.pending
	c.pending = nil
	dBefore := crashCompare(seen, c.m)
	if len(dBefore) == 0 {
		c.logf("   ambiguous op %s: not done", op)
		return
	}
	after := c.m.clone()
	after.fuzzy = op.isData()
	after.apply(op)
	dAfter := crashCompare(seen, after)
	if len(dAfter) > 0 {
		c.fail("the mount differs from the model both without and with the op in flight at the kill (%s)\nwithout it:\n  %s\nwith it:\n  %s",
			op, crashLimit(dBefore), crashLimit(dAfter))
	}
	after.resync(seen)
	c.m = after
	c.gen.m = after
	c.st.ambiguousApplied++
	c.logf("   ambiguous op %s: done", op)
}

func crashLimit(d []string) string {
	if len(d) > 40 {
		d = append(d[:40:40], fmt.Sprintf("… and %d more", len(d)-40))
	}
	return strings.Join(d, "\n  ")
}

// work runs up to n ops. If killed is not nil, the server may be killed
// under it: the first op that fails once killed is set becomes pending
// and work returns. Any other failure fails the test.
func (c *crashRun) work(n int, killed *atomic.Bool) {
	c.t.Helper()
	for i := 0; i < n; i++ {
		op := c.gen.next()
		err := crashExec(c.mnt, op)
		if err == nil {
			c.m.apply(op)
			c.st.ops++
			c.logf("%s", op)
			if killed != nil && killed.Load() {
				return // acknowledged; the next op would find the server gone
			}
			continue
		}
		var short *crashShort
		if killed != nil && killed.Load() && errors.As(err, &short) {
			_, _, n := c.m.lookup(op.Path)
			done, rest := op.split(short.N, int64(len(n.data)))
			c.m.apply(done)
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
