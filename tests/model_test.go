package tests

// A model-based random tester: random sequences of operations are applied
// to the mount and to an in-memory model of tmpfs, and after every step the
// whole state of the mount is compared with the model (see modelWorker.check).
// Failures are shrunk (delta debugging on fresh mounts) and printed with the
// seed that reproduces them.
//
//	go test ./tests/ -run TestModel -model.seed=N    one seed
//	MMAPFS_MODEL_SEED=N MMAPFS_MODEL_OPS=2000        same, from the environment
//	MMAPFS_MODEL_SEEDS=K MMAPFS_MODEL_SEED_BASE=B    seeds B..B+K-1 (default 1..3)
//	MMAPFS_MODEL_SHRINK=SECONDS                      shrinking budget (default 60)
//	scripts/modeltest 10m                            long run over many seeds

import (
	"bytes"
	"errors"
	"flag"
	"fmt"
	"math/rand"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"mmapfs/internal/fsmodel"
)

var modelSeedFlag = flag.Int64("model.seed", -1, "model tester: run only this seed (also MMAPFS_MODEL_SEED)")

// modelStrict (MMAPFS_MODEL_STRICT=1) keeps a tmpfs behaviour that mmapfs
// departs from on purpose; by default an op that would show it is skipped
// (on the mount and the model alike): copy_file_range on tmpfs goes
// through splice, which writes zeros for the source's holes, so every
// destination page becomes data. mmapfs copies holes as holes
// (mapstore.Blob.CopyFrom). (Fallocating a page an earlier fallocate
// reserved makes it data on tmpfs and on mmapfs alike.)
var modelStrict = os.Getenv("MMAPFS_MODEL_STRICT") == "1"

const (
	modelPageSize = 4096
	modelWindow   = 2 << 20 // a store window: writes are made to cross it
	modelMaxFds   = 4       // descriptors a worker keeps open at most
	modelFullRead = 256 << 10

	modelDefaultOps = 250 // per seed and mode: CI (-race) stays well under 60 s
)

// modelEnvInt reads an integer environment variable, def when unset.
func modelEnvInt(name string, def int64) int64 {
	if v := os.Getenv(name); v != "" {
		if n, err := strconv.ParseInt(v, 0, 64); err == nil {
			return n
		}
	}
	return def
}

// modelBytes returns n deterministic pseudo-random bytes for seed.
func modelBytes(seed uint32, n int) []byte { return fsmodel.Bytes(seed, n) }

// ---------------------------------------------------------------- ops

// modelOp is one operation. Paths are relative to the worker's directory.
type modelOp struct {
	Kind  string
	P, Q  string // paths
	Fd    int    // descriptor slot (fd ops, open/create that keep one)
	Off   int64
	Off2  int64
	Len   int64
	Mode  uint32 // permission bits, or fallocate mode
	Flags int    // rename / xattr flags; open: O_TRUNC; create: keep the fd
	Name  string // xattr name
	Val   string // xattr value, symlink target
	Seed  uint32 // data
	Sec   int64  // utimes
	Nsec  int64
}

func modelFallocName(mode uint32) string {
	switch mode {
	case 0:
		return "0"
	case unix.FALLOC_FL_KEEP_SIZE:
		return "KEEP_SIZE"
	case unix.FALLOC_FL_PUNCH_HOLE | unix.FALLOC_FL_KEEP_SIZE:
		return "PUNCH_HOLE|KEEP_SIZE"
	case unix.FALLOC_FL_PUNCH_HOLE:
		return "PUNCH_HOLE"
	}
	return fmt.Sprintf("%#x", mode)
}

func modelRenameName(f int) string {
	switch f {
	case 0:
		return "0"
	case unix.RENAME_NOREPLACE:
		return "RENAME_NOREPLACE"
	case unix.RENAME_EXCHANGE:
		return "RENAME_EXCHANGE"
	}
	return fmt.Sprint(f)
}

func modelXattrFlagName(f int) string {
	switch f {
	case 0:
		return "0"
	case unix.XATTR_CREATE:
		return "XATTR_CREATE"
	case unix.XATTR_REPLACE:
		return "XATTR_REPLACE"
	}
	return fmt.Sprint(f)
}

// String is the readable form printed for a failing sequence.
func (o modelOp) String() string {
	switch o.Kind {
	case "create":
		keep := ""
		if o.Flags != 0 {
			keep = fmt.Sprintf(" keep-as fd%d", o.Fd)
		}
		return fmt.Sprintf("create %q mode=%#o (O_CREAT|O_EXCL|O_RDWR)%s", o.P, o.Mode, keep)
	case "open":
		tr := ""
		if o.Flags != 0 {
			tr = "|O_TRUNC"
		}
		return fmt.Sprintf("fd%d = open %q O_RDWR|O_NOFOLLOW%s", o.Fd, o.P, tr)
	case "close":
		return fmt.Sprintf("close fd%d", o.Fd)
	case "write":
		return fmt.Sprintf("pwrite %q off=%d len=%d data=seed%d", o.P, o.Off, o.Len, o.Seed)
	case "fwrite":
		return fmt.Sprintf("pwrite fd%d off=%d len=%d data=seed%d", o.Fd, o.Off, o.Len, o.Seed)
	case "append":
		return fmt.Sprintf("append (O_APPEND) %q len=%d data=seed%d", o.P, o.Len, o.Seed)
	case "read":
		return fmt.Sprintf("pread %q off=%d len=%d", o.P, o.Off, o.Len)
	case "fread":
		return fmt.Sprintf("pread fd%d off=%d len=%d", o.Fd, o.Off, o.Len)
	case "truncate":
		return fmt.Sprintf("truncate %q %d", o.P, o.Len)
	case "ftruncate":
		return fmt.Sprintf("ftruncate fd%d %d", o.Fd, o.Len)
	case "fallocate":
		return fmt.Sprintf("fallocate %q mode=%s off=%d len=%d", o.P, modelFallocName(o.Mode), o.Off, o.Len)
	case "ffallocate":
		return fmt.Sprintf("fallocate fd%d mode=%s off=%d len=%d", o.Fd, modelFallocName(o.Mode), o.Off, o.Len)
	case "copy":
		return fmt.Sprintf("copy_file_range %q off=%d -> %q off=%d len=%d", o.P, o.Off, o.Q, o.Off2, o.Len)
	case "mmap":
		return fmt.Sprintf("mmap-write (other process, MAP_SHARED, msync, munmap) %q off=%d len=%d data=seed%d", o.P, o.Off, o.Len, o.Seed)
	case "rename":
		return fmt.Sprintf("renameat2 %q -> %q flags=%s", o.P, o.Q, modelRenameName(o.Flags))
	case "link":
		return fmt.Sprintf("link %q -> new name %q", o.P, o.Q)
	case "unlink":
		return fmt.Sprintf("unlink %q", o.P)
	case "mkdir":
		return fmt.Sprintf("mkdir %q mode=%#o", o.P, o.Mode)
	case "rmdir":
		return fmt.Sprintf("rmdir %q", o.P)
	case "symlink":
		return fmt.Sprintf("symlink %q -> target %q", o.P, o.Val)
	case "setxattr":
		return fmt.Sprintf("lsetxattr %q %s len=%d flags=%s", o.P, o.Name, len(o.Val), modelXattrFlagName(o.Flags))
	case "removexattr":
		return fmt.Sprintf("lremovexattr %q %s", o.P, o.Name)
	case "getxattr":
		return fmt.Sprintf("lgetxattr %q %s", o.P, o.Name)
	case "chmod":
		return fmt.Sprintf("chmod %q %#o", o.P, o.Mode)
	case "utimes":
		return fmt.Sprintf("utimensat %q atime=mtime=%d.%09d AT_SYMLINK_NOFOLLOW", o.P, o.Sec, o.Nsec)
	}
	return "unknown op " + o.Kind
}

// modelRes is the outcome of an op: an errno, a count, bytes read.
type modelRes struct {
	err  unix.Errno
	n    int64
	data []byte
	skip bool // not applicable in the current state: done on neither side
}

func (r modelRes) String() string {
	if r.skip {
		return "skipped"
	}
	if r.err != 0 {
		return errName(r.err)
	}
	if r.data != nil {
		return fmt.Sprintf("ok, %d bytes", len(r.data))
	}
	return fmt.Sprintf("ok n=%d", r.n)
}

// ---------------------------------------------------------------- model

// modelState models one worker's directory tree as tmpfs keeps it
// (fsmodel.FS), and the descriptors the worker holds.
type modelState struct {
	*fsmodel.FS
	fds map[int]*fsmodel.Node // slot -> the file open there
}

func newModelState(rootPerm, umask uint32) *modelState {
	return &modelState{FS: fsmodel.New(rootPerm, umask), fds: map[int]*fsmodel.Node{}}
}

// apply runs op on the model and returns what the mount must answer.
func (m *modelState) apply(op *modelOp) modelRes {
	fdNode := func() *fsmodel.Node { return m.fds[op.Fd] }
	// file is the file op works on: its descriptor's, or op.P opened.
	file := func(byFd bool) (*fsmodel.Node, modelRes, bool) {
		if byFd {
			if n := fdNode(); n != nil {
				return n, modelRes{}, true
			}
			return nil, modelRes{skip: true}, false
		}
		n, e := m.OpenFile(op.P)
		if e != 0 {
			return nil, modelRes{err: e}, false
		}
		return n, modelRes{}, true
	}
	switch op.Kind {
	case "create":
		if op.Flags != 0 {
			if _, used := m.fds[op.Fd]; used {
				return modelRes{skip: true}
			}
		}
		f, e := m.Create(op.P, op.Mode)
		if e == 0 && op.Flags != 0 {
			m.fds[op.Fd] = f
		}
		return modelRes{err: e}
	case "open":
		if _, used := m.fds[op.Fd]; used {
			return modelRes{skip: true}
		}
		n, e := m.OpenFile(op.P)
		if e != 0 {
			return modelRes{err: e}
		}
		if op.Flags != 0 {
			n.Truncate(0)
		}
		m.fds[op.Fd] = n
		return modelRes{}
	case "close":
		if fdNode() == nil {
			return modelRes{skip: true}
		}
		delete(m.fds, op.Fd)
		return modelRes{}
	case "write", "fwrite", "append":
		n, res, ok := file(op.Kind == "fwrite")
		if !ok {
			return res
		}
		off := op.Off
		if op.Kind == "append" {
			off = n.Size
		}
		n.WriteAt(modelBytes(op.Seed, int(op.Len)), off)
		return modelRes{n: op.Len}
	case "read", "fread":
		n, res, ok := file(op.Kind == "fread")
		if !ok {
			return res
		}
		return modelRes{data: n.Read(op.Off, op.Len)}
	case "truncate":
		return modelRes{err: m.Truncate(op.P, op.Len)}
	case "ftruncate":
		n := fdNode()
		if n == nil {
			return modelRes{skip: true}
		}
		return modelRes{err: n.Truncate(op.Len)}
	case "fallocate", "ffallocate":
		n, res, ok := file(op.Kind == "ffallocate")
		if !ok {
			return res
		}
		return modelRes{err: n.Fallocate(op.Mode, op.Off, op.Len)}
	case "copy":
		// The source is opened O_RDONLY, which a directory allows;
		// copy_file_range then says EISDIR.
		src, e := m.OpenFile(op.P)
		if e != 0 && e != unix.EISDIR {
			return modelRes{err: e}
		}
		dst, e2 := m.OpenFile(op.Q)
		if e2 != 0 {
			return modelRes{err: e2}
		}
		if e != 0 {
			return modelRes{err: e}
		}
		cnt := max(0, min(op.Len, src.Size-op.Off))
		if !modelStrict && !src.AllData(op.Off, op.Off+cnt) {
			return modelRes{skip: true}
		}
		if src == dst && op.Off2+cnt > op.Off && op.Off2 < op.Off+cnt {
			return modelRes{err: unix.EINVAL}
		}
		if cnt > 0 {
			dst.WriteAt(src.ReadAt(op.Off, cnt), op.Off2)
		}
		return modelRes{n: cnt}
	case "mmap":
		n := m.Lookup(op.P)
		if n == nil || n.Type != fsmodel.File || op.Len <= 0 || op.Off < 0 || op.Off+op.Len > n.Size {
			return modelRes{skip: true}
		}
		n.WriteAt(modelBytes(op.Seed, int(op.Len)), op.Off)
		return modelRes{}
	case "rename":
		return modelRes{err: m.Rename(op.P, op.Q, op.Flags)}
	case "link":
		return modelRes{err: m.Link(op.P, op.Q)}
	case "unlink":
		return modelRes{err: m.Unlink(op.P)}
	case "mkdir":
		_, e := m.Mkdir(op.P, op.Mode&0o777)
		return modelRes{err: e}
	case "rmdir":
		return modelRes{err: m.Rmdir(op.P)}
	case "symlink":
		_, e := m.Symlink(op.Val, op.P)
		return modelRes{err: e}
	case "setxattr":
		return modelRes{err: m.Setxattr(op.P, op.Name, []byte(op.Val), op.Flags)}
	case "removexattr":
		return modelRes{err: m.Removexattr(op.P, op.Name)}
	case "getxattr":
		v, e := m.Getxattr(op.P, op.Name)
		if e != 0 {
			return modelRes{err: e}
		}
		return modelRes{data: v}
	case "chmod":
		return modelRes{err: m.Chmod(op.P, op.Mode&0o777)}
	case "utimes":
		return modelRes{err: m.SetMtime(op.P, unix.Timespec{Sec: op.Sec, Nsec: op.Nsec})}
	}
	panic("unknown model op " + op.Kind)
}

// paths lists every name below the root, parents before children.
func (m *modelState) paths() []fsmodel.Entry { return m.Entries()[1:] }

// ---------------------------------------------------------------- generator

var modelNames = []string{"a", "b", "c", "d", "e", "f"}

var modelXattrNames = []string{"user.a", "user.b", "user.c", "user.long.attribute.name"}

type modelGen struct {
	r *rand.Rand
	m *modelState
}

func (g *modelGen) pick(n int) int { return g.r.Intn(n) }

func (g *modelGen) chance(p float64) bool { return g.r.Float64() < p }

// newPath: a name in a random directory (it may exist), sometimes under a
// file (ENOTDIR) or a missing directory (ENOENT).
func (g *modelGen) newPath(ps []fsmodel.Entry) string {
	dirs := []string{""}
	var others []string
	for _, p := range ps {
		if p.Node.Type == fsmodel.Dir {
			dirs = append(dirs, p.Path+"/")
		} else {
			others = append(others, p.Path+"/")
		}
	}
	name := modelNames[g.pick(len(modelNames))]
	switch {
	case g.chance(0.03) && len(others) > 0:
		return others[g.pick(len(others))] + name
	case g.chance(0.02):
		return "nx/" + name
	}
	return dirs[g.pick(len(dirs))] + name
}

// existing: a path of the wanted type (any type if typ is 0), sometimes
// any path at all.
func (g *modelGen) existing(ps []fsmodel.Entry, typ fsmodel.Type) string {
	var c []string
	for _, p := range ps {
		if typ == 0 || p.Node.Type == typ {
			c = append(c, p.Path)
		}
	}
	if len(c) == 0 || g.chance(0.08) {
		if len(ps) > 0 && g.chance(0.5) {
			return ps[g.pick(len(ps))].Path
		}
		return g.newPath(ps)
	}
	return c[g.pick(len(c))]
}

// offset in a file of size sz: inside, at page and window boundaries,
// past EOF, sometimes far past it.
func (g *modelGen) offset(sz int64) int64 {
	switch g.pick(10) {
	case 0:
		return 0
	case 1, 2:
		return g.r.Int63n(sz + 1)
	case 3, 4:
		return max(0, int64(g.pick(6))*modelPageSize+int64(g.pick(64))-32)
	case 5:
		return max(0, int64(1+g.pick(2))*modelWindow+int64(g.pick(8192))-4096)
	case 6:
		return sz + g.r.Int63n(3*modelPageSize)
	case 7:
		if g.chance(0.3) {
			return 1<<30 + g.r.Int63n(3*modelPageSize)
		}
		return g.r.Int63n(sz + 1)
	}
	return g.r.Int63n(sz/2 + 1)
}

func (g *modelGen) length() int64 {
	switch g.pick(10) {
	case 0, 1, 2:
		return 1 + g.r.Int63n(100)
	case 3, 4:
		return modelPageSize + g.r.Int63n(64) - 32
	case 5, 6:
		return 1 + g.r.Int63n(5*modelPageSize)
	case 7, 8:
		return 1 + g.r.Int63n(100<<10)
	}
	if g.chance(0.3) {
		return modelWindow + g.r.Int63n(modelWindow/2)
	}
	return 1 + g.r.Int63n(600<<10)
}

func (g *modelGen) sizeOf(p string) int64 {
	if n := g.m.Lookup(p); n != nil {
		return n.Size
	}
	return 0
}

func (g *modelGen) freeSlot() (int, bool) {
	for s := 0; s < modelMaxFds; s++ {
		if _, used := g.m.fds[s]; !used {
			return s, true
		}
	}
	return 0, false
}

func (g *modelGen) usedSlot() (int, bool) {
	var s []int
	for k := range g.m.fds {
		s = append(s, k)
	}
	if len(s) == 0 {
		return 0, false
	}
	sort.Ints(s)
	return s[g.pick(len(s))], true
}

var modelOpWeights = []struct {
	kind string
	w    int
}{
	{"write", 14}, {"fwrite", 6}, {"append", 3}, {"read", 5}, {"fread", 3},
	{"truncate", 5}, {"ftruncate", 3}, {"fallocate", 7}, {"ffallocate", 3},
	{"copy", 6}, {"mmap", 3}, {"create", 8}, {"open", 3}, {"close", 3},
	{"rename", 7}, {"link", 3}, {"unlink", 5}, {"mkdir", 4}, {"rmdir", 3},
	{"symlink", 2}, {"setxattr", 5}, {"removexattr", 2}, {"getxattr", 2},
	{"chmod", 2}, {"utimes", 3},
}

// next generates a random op fitting the model's current state.
func (g *modelGen) next() modelOp {
	tot := 0
	for _, w := range modelOpWeights {
		tot += w.w
	}
	x := g.pick(tot)
	kind := ""
	for _, w := range modelOpWeights {
		if x < w.w {
			kind = w.kind
			break
		}
		x -= w.w
	}
	ps := g.m.paths()
	op := modelOp{Kind: kind, Seed: g.r.Uint32()}
	slot := func() bool {
		s, ok := g.usedSlot()
		op.Fd = s
		return ok
	}
	fdSize := func() int64 {
		if n := g.m.fds[op.Fd]; n != nil {
			return n.Size
		}
		return 0
	}
	// fileSize picks op's file, by path or (byPath false) by a slot in
	// use, and returns its size; false: no slot is in use.
	fileSize := func(byPath bool) (int64, bool) {
		if byPath {
			op.P = g.existing(ps, fsmodel.File)
			return g.sizeOf(op.P), true
		}
		if !slot() {
			return 0, false
		}
		return fdSize(), true
	}
	switch kind {
	case "create":
		op.P = g.newPath(ps)
		op.Mode = 0o600 | uint32(g.pick(0o200))
		if s, ok := g.freeSlot(); ok && g.chance(0.4) {
			op.Fd, op.Flags = s, 1
		}
	case "open":
		s, ok := g.freeSlot()
		if !ok {
			return g.next()
		}
		op.Fd, op.P = s, g.existing(ps, fsmodel.File)
		if g.chance(0.15) {
			op.Flags = 1
		}
	case "close":
		if !slot() {
			return g.next()
		}
	case "write", "append", "fwrite", "read", "fread":
		sz, ok := fileSize(kind != "fwrite" && kind != "fread")
		if !ok {
			return g.next()
		}
		op.Off, op.Len = g.offset(sz), g.length()
	case "truncate", "ftruncate":
		sz, ok := fileSize(kind == "truncate")
		if !ok {
			return g.next()
		}
		switch g.pick(8) {
		case 0:
			op.Len = 0
		case 1, 2:
			op.Len = g.r.Int63n(sz + 1)
		case 3:
			op.Len = sz + g.r.Int63n(3*modelPageSize)
		case 4:
			op.Len = int64(g.pick(8)) * modelPageSize
		case 5:
			op.Len = max(0, modelWindow+g.r.Int63n(8192)-4096)
		case 6:
			if g.chance(0.2) {
				op.Len = -1
			} else {
				op.Len = 1<<30 + g.r.Int63n(8192)
			}
		default:
			op.Len = sz
		}
	case "fallocate", "ffallocate":
		sz, ok := fileSize(kind == "fallocate")
		if !ok {
			return g.next()
		}
		op.Mode = []uint32{0, unix.FALLOC_FL_KEEP_SIZE, unix.FALLOC_FL_PUNCH_HOLE | unix.FALLOC_FL_KEEP_SIZE}[g.pick(3)]
		op.Off, op.Len = g.offset(sz), g.length()
		if op.Len > 1<<20 && g.chance(0.7) {
			op.Len = 1 + g.r.Int63n(1<<20)
		}
		if g.chance(0.02) {
			op.Len = 0
		}
	case "copy":
		op.P, op.Q = g.existing(ps, fsmodel.File), g.existing(ps, fsmodel.File)
		if g.chance(0.2) {
			op.Q = op.P
		}
		sz := g.sizeOf(op.P)
		op.Off = g.r.Int63n(sz + 1)
		if g.chance(0.1) {
			op.Off = g.offset(sz)
		}
		op.Len = g.length()
		if sn := g.m.Lookup(op.P); !modelStrict && sn != nil && sn.Type == fsmodel.File && g.chance(0.9) {
			// Mostly from data: copies reading holes are skipped.
			if ext := sn.DataExtents(); len(ext) > 0 {
				x := ext[g.pick(len(ext))]
				op.Off = x[0] + g.r.Int63n(x[1]-x[0])
				op.Len = 1 + g.r.Int63n(x[1]-op.Off)
			}
		}
		op.Off2 = g.offset(g.sizeOf(op.Q))
		if op.Q == op.P && g.chance(0.8) {
			// Mostly ranges that do not overlap.
			op.Len = min(op.Len, max(1, sz-op.Off))
			op.Off2 = op.Off + op.Len + g.r.Int63n(3*modelPageSize)
		}
	case "mmap":
		op.P = g.existing(ps, fsmodel.File)
		sz := g.sizeOf(op.P)
		if sz == 0 {
			return g.next()
		}
		op.Off = g.r.Int63n(sz)
		op.Len = 1 + g.r.Int63n(min(sz-op.Off, 3*modelPageSize))
	case "rename":
		op.P = g.existing(ps, 0)
		if g.chance(0.5) {
			op.Q = g.existing(ps, 0)
		} else {
			op.Q = g.newPath(ps)
		}
		op.Flags = []int{0, 0, unix.RENAME_NOREPLACE, unix.RENAME_EXCHANGE}[g.pick(4)]
	case "link":
		op.P, op.Q = g.existing(ps, 0), g.newPath(ps)
		if g.chance(0.7) {
			op.P = g.existing(ps, fsmodel.File)
		}
	case "unlink":
		op.P = g.existing(ps, 0)
	case "mkdir":
		op.P = g.newPath(ps)
		op.Mode = 0o700 | uint32(g.pick(0o100))
	case "rmdir":
		op.P = g.existing(ps, fsmodel.Dir)
	case "symlink":
		op.P = g.newPath(ps)
		op.Val = fmt.Sprintf("/nonexistent-mmapfs-model/%x", g.r.Uint32()>>uint(g.pick(32)))
	case "setxattr", "removexattr", "getxattr":
		op.P = g.existing(ps, 0)
		op.Name = modelXattrNames[g.pick(len(modelXattrNames))]
		if kind != "setxattr" && g.chance(0.7) {
			// Mostly names that exist.
			var have []fsmodel.Entry
			for _, p := range ps {
				if len(p.Node.Xattrs) > 0 {
					have = append(have, p)
				}
			}
			if len(have) > 0 {
				p := have[g.pick(len(have))]
				names := make([]string, 0, len(p.Node.Xattrs))
				for nm := range p.Node.Xattrs {
					names = append(names, nm)
				}
				sort.Strings(names)
				op.P, op.Name = p.Path, names[g.pick(len(names))]
			}
		}
		if kind == "setxattr" {
			n := g.pick(48)
			if g.chance(0.05) {
				n = 1000 + g.pick(1000)
			}
			op.Val = string(bytes.Map(func(r rune) rune { return 'a' + r%26 }, modelBytes(g.r.Uint32(), n)))
			op.Flags = []int{0, 0, unix.XATTR_CREATE, unix.XATTR_REPLACE}[g.pick(4)]
		}
	case "chmod":
		op.P = g.existing(ps, 0)
		op.Mode = uint32(g.pick(0o1000))
		if n := g.m.Lookup(op.P); n != nil && n.Type == fsmodel.Dir {
			op.Mode |= 0o700
		}
	case "utimes":
		op.P = g.existing(ps, 0)
		op.Sec = 1_000_000_000 + g.r.Int63n(1_000_000_000)
		op.Nsec = g.r.Int63n(1_000_000_000)
	}
	return op
}

// ---------------------------------------------------------------- running

// modelFail is a difference between the mount and the model.
type modelFail struct {
	step  int
	op    modelOp
	class string // what differed: errno, data, holes, blocks, names...
	msg   string
}

func (f *modelFail) sig() string { return f.op.Kind + "/" + f.class }

func (f *modelFail) Error() string {
	return fmt.Sprintf("step %d (%s): %s: %s", f.step, f.op, f.class, f.msg)
}

// modelWorker drives one model against one directory of the mount.
type modelWorker struct {
	dir    string // absolute
	m      *modelState
	fds    map[int]int // slot -> real descriptor
	helper *modelHelper
	rng    *rand.Rand // for sampling in checks
	ops    []modelOp  // applied so far
	checks int
}

func modelUmask() uint32 {
	b, err := os.ReadFile("/proc/self/status")
	if err == nil {
		for _, l := range strings.Split(string(b), "\n") {
			if v, ok := strings.CutPrefix(l, "Umask:"); ok {
				if n, err := strconv.ParseUint(strings.TrimSpace(v), 8, 32); err == nil {
					return uint32(n)
				}
			}
		}
	}
	return 0o022
}

func newModelWorker(dir string, seed int64) (*modelWorker, error) {
	if err := os.Mkdir(dir, 0o755); err != nil {
		return nil, err
	}
	um := modelUmask()
	return &modelWorker{
		dir: dir,
		m:   newModelState(0o755&^um, um),
		fds: map[int]int{},
		rng: rand.New(rand.NewSource(seed ^ 0x5eed)),
	}, nil
}

func (w *modelWorker) close() {
	for s, fd := range w.fds {
		unix.Close(fd)
		delete(w.fds, s)
	}
	if w.helper != nil {
		w.helper.stop()
		w.helper = nil
	}
}

func (w *modelWorker) abs(p string) string { return filepath.Join(w.dir, p) }

func modelErrno(err error) unix.Errno {
	if err == nil {
		return 0
	}
	var en unix.Errno
	if errors.As(err, &en) {
		return en
	}
	return unix.EIO
}

// do runs op on the mount.
func (w *modelWorker) do(op *modelOp) (modelRes, error) {
	openP := func(p string, flags int) (int, unix.Errno) {
		fd, err := unix.Open(w.abs(p), flags|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
		return fd, modelErrno(err)
	}
	pwrite := func(fd int, b []byte, off int64) modelRes {
		var done int64
		for len(b) > 0 {
			n, err := unix.Pwrite(fd, b, off)
			if err != nil {
				return modelRes{err: modelErrno(err), n: done}
			}
			if n == 0 {
				break
			}
			b, off, done = b[n:], off+int64(n), done+int64(n)
		}
		return modelRes{n: done}
	}
	pread := func(fd int, off, ln int64) modelRes {
		buf := make([]byte, ln)
		var got int64
		for got < ln {
			n, err := unix.Pread(fd, buf[got:], off+got)
			if err != nil {
				return modelRes{err: modelErrno(err)}
			}
			if n == 0 {
				break
			}
			got += int64(n)
		}
		return modelRes{data: buf[:got]}
	}
	switch op.Kind {
	case "create":
		fd, err := unix.Open(w.abs(op.P), unix.O_CREAT|unix.O_EXCL|unix.O_RDWR|unix.O_CLOEXEC, op.Mode)
		if err != nil {
			return modelRes{err: modelErrno(err)}, nil
		}
		if op.Flags != 0 {
			w.fds[op.Fd] = fd
		} else {
			unix.Close(fd)
		}
		return modelRes{}, nil
	case "open":
		fl := unix.O_RDWR
		if op.Flags != 0 {
			fl |= unix.O_TRUNC
		}
		fd, e := openP(op.P, fl)
		if e != 0 {
			return modelRes{err: e}, nil
		}
		w.fds[op.Fd] = fd
		return modelRes{}, nil
	case "close":
		err := unix.Close(w.fds[op.Fd])
		delete(w.fds, op.Fd)
		return modelRes{err: modelErrno(err)}, nil
	case "write", "append":
		fl := unix.O_WRONLY
		if op.Kind == "append" {
			fl |= unix.O_APPEND
		}
		fd, e := openP(op.P, fl)
		if e != 0 {
			return modelRes{err: e}, nil
		}
		defer unix.Close(fd)
		b := modelBytes(op.Seed, int(op.Len))
		if op.Kind == "append" {
			var done int64
			for len(b) > 0 {
				n, err := unix.Write(fd, b)
				if err != nil {
					return modelRes{err: modelErrno(err), n: done}, nil
				}
				b, done = b[n:], done+int64(n)
			}
			return modelRes{n: done}, nil
		}
		return pwrite(fd, b, op.Off), nil
	case "fwrite":
		return pwrite(w.fds[op.Fd], modelBytes(op.Seed, int(op.Len)), op.Off), nil
	case "read":
		fd, e := openP(op.P, unix.O_RDONLY)
		if e != 0 {
			return modelRes{err: e}, nil
		}
		defer unix.Close(fd)
		return pread(fd, op.Off, op.Len), nil
	case "fread":
		return pread(w.fds[op.Fd], op.Off, op.Len), nil
	case "truncate":
		return modelRes{err: modelErrno(unix.Truncate(w.abs(op.P), op.Len))}, nil
	case "ftruncate":
		return modelRes{err: modelErrno(unix.Ftruncate(w.fds[op.Fd], op.Len))}, nil
	case "fallocate":
		fd, e := openP(op.P, unix.O_RDWR)
		if e != 0 {
			return modelRes{err: e}, nil
		}
		defer unix.Close(fd)
		return modelRes{err: modelErrno(unix.Fallocate(fd, op.Mode, op.Off, op.Len))}, nil
	case "ffallocate":
		return modelRes{err: modelErrno(unix.Fallocate(w.fds[op.Fd], op.Mode, op.Off, op.Len))}, nil
	case "copy":
		src, e := openP(op.P, unix.O_RDONLY)
		if e != 0 {
			return modelRes{err: e}, nil
		}
		defer unix.Close(src)
		dst, e := openP(op.Q, unix.O_WRONLY)
		if e != 0 {
			return modelRes{err: e}, nil
		}
		defer unix.Close(dst)
		// One call: tmpfs copies all of it (up to the source's EOF); a
		// loop would go on reading what a copy within one inode appended.
		offIn, offOut := op.Off, op.Off2
		n, err := unix.CopyFileRange(src, &offIn, dst, &offOut, int(op.Len), 0)
		if err != nil {
			return modelRes{err: modelErrno(err)}, nil
		}
		return modelRes{n: int64(n)}, nil
	case "mmap":
		if w.helper == nil {
			h, err := modelStartHelper()
			if err != nil {
				return modelRes{}, fmt.Errorf("start mmap helper: %v", err)
			}
			w.helper = h
		}
		s, err := w.helper.mmapWrite(modelMmapReq{Path: w.abs(op.P), Off: op.Off, Len: op.Len, Seed: op.Seed})
		if err != nil {
			return modelRes{}, err
		}
		if s != "ok" {
			return modelRes{}, fmt.Errorf("mmap helper: %s", s)
		}
		return modelRes{}, nil
	case "rename":
		return modelRes{err: modelErrno(unix.Renameat2(unix.AT_FDCWD, w.abs(op.P), unix.AT_FDCWD, w.abs(op.Q), uint(op.Flags)))}, nil
	case "link":
		return modelRes{err: modelErrno(unix.Linkat(unix.AT_FDCWD, w.abs(op.P), unix.AT_FDCWD, w.abs(op.Q), 0))}, nil
	case "unlink":
		return modelRes{err: modelErrno(unix.Unlink(w.abs(op.P)))}, nil
	case "mkdir":
		return modelRes{err: modelErrno(unix.Mkdir(w.abs(op.P), op.Mode))}, nil
	case "rmdir":
		return modelRes{err: modelErrno(unix.Rmdir(w.abs(op.P)))}, nil
	case "symlink":
		return modelRes{err: modelErrno(unix.Symlink(op.Val, w.abs(op.P)))}, nil
	case "setxattr":
		return modelRes{err: modelErrno(unix.Lsetxattr(w.abs(op.P), op.Name, []byte(op.Val), op.Flags))}, nil
	case "removexattr":
		return modelRes{err: modelErrno(unix.Lremovexattr(w.abs(op.P), op.Name))}, nil
	case "getxattr":
		buf := make([]byte, 4096)
		n, err := unix.Lgetxattr(w.abs(op.P), op.Name, buf)
		if err != nil {
			return modelRes{err: modelErrno(err)}, nil
		}
		return modelRes{data: buf[:n]}, nil
	case "chmod":
		return modelRes{err: modelErrno(unix.Chmod(w.abs(op.P), op.Mode))}, nil
	case "utimes":
		ts := []unix.Timespec{{Sec: op.Sec, Nsec: op.Nsec}, {Sec: op.Sec, Nsec: op.Nsec}}
		return modelRes{err: modelErrno(unix.UtimesNanoAt(unix.AT_FDCWD, w.abs(op.P), ts, unix.AT_SYMLINK_NOFOLLOW))}, nil
	}
	return modelRes{}, fmt.Errorf("unknown op %q", op.Kind)
}

// step applies op to the model and the mount, compares the answers and,
// if check, the whole state.
func (w *modelWorker) step(op modelOp, check bool) *modelFail {
	idx := len(w.ops)
	w.ops = append(w.ops, op)
	fail := func(class, format string, args ...any) *modelFail {
		return &modelFail{step: idx, op: op, class: class, msg: fmt.Sprintf(format, args...)}
	}
	want := w.m.apply(&op)
	modelCount(op.Kind, want)
	if want.skip {
		return nil
	}
	got, err := w.do(&op)
	if err != nil {
		return fail("run", "%v", err)
	}
	if got.err != want.err {
		return fail("errno", "mount: %s, model (tmpfs): %s", got, want)
	}
	if got.n != want.n {
		return fail("count", "mount: %d bytes, model (tmpfs): %d", got.n, want.n)
	}
	if want.data != nil && !bytes.Equal(got.data, want.data) {
		return fail("data", "%s", fsmodel.DataDiff(want.data, got.data, op.Off))
	}
	if check {
		if f := w.check(); f != nil {
			f.step, f.op = idx, op
			return f
		}
	}
	return nil
}

// modelStats counts ops by kind: done and succeeded, done and failed as
// the model said, skipped.
var (
	modelStatsMu sync.Mutex
	modelStats   = map[string]*[3]int{}
)

func modelCount(kind string, r modelRes) {
	modelStatsMu.Lock()
	defer modelStatsMu.Unlock()
	c := modelStats[kind]
	if c == nil {
		c = new([3]int)
		modelStats[kind] = c
	}
	switch {
	case r.skip:
		c[2]++
	case r.err != 0:
		c[1]++
	default:
		c[0]++
	}
}

func modelStatsString() string {
	modelStatsMu.Lock()
	defer modelStatsMu.Unlock()
	var kinds []string
	for k := range modelStats {
		kinds = append(kinds, k)
	}
	sort.Strings(kinds)
	var b strings.Builder
	for _, k := range kinds {
		c := modelStats[k]
		fmt.Fprintf(&b, " %s=%d/%d/%d", k, c[0], c[1], c[2])
	}
	return b.String()
}

// checkOptions are what the model tester compares: everything tmpfs
// and the model agree on, user.* attributes only, large files in samples.
func (w *modelWorker) checkOptions() *fsmodel.Options {
	return &fsmodel.Options{
		Perm: true, Holes: true, XattrPrefix: "user.",
		SampleAbove: modelFullRead, Rand: w.rng, Limit: 1,
	}
}

// check compares the whole tree below w.dir, and every file open but
// unlinked, with the model.
func (w *modelWorker) check() *modelFail {
	w.checks++
	o := w.checkOptions()
	d := fsmodel.Compare(w.dir, w.m.FS, o)
	// Files open but unlinked: through their descriptor.
	seen := map[*fsmodel.Node]bool{}
	slots := make([]int, 0, len(w.m.fds))
	for s := range w.m.fds {
		slots = append(slots, s)
	}
	sort.Ints(slots)
	for _, s := range slots {
		n := w.m.fds[s]
		if len(d) > 0 || n.Nlink > 0 || seen[n] {
			continue
		}
		seen[n] = true
		d = fsmodel.CompareFD(w.fds[s], fmt.Sprintf("<unlinked, fd%d>", s), n, o)
	}
	if len(d) == 0 {
		return nil
	}
	return &modelFail{class: d[0].Class, msg: d[0].String()}
}

// ---------------------------------------------------------------- mounts

// modelTB runs one mount's life inside a test without tying it to the
// test's end: cleanups run at finish, fatal errors are recorded and end the
// run. Each shrinking candidate gets a fresh mount this way.
type modelTB struct {
	testing.TB
	mu       sync.Mutex
	cleanups []func()
	errs     []string
}

type modelAbort struct{}

func (tb *modelTB) Cleanup(f func()) {
	tb.mu.Lock()
	tb.cleanups = append(tb.cleanups, f)
	tb.mu.Unlock()
}

func (tb *modelTB) Errorf(format string, args ...any) {
	tb.mu.Lock()
	tb.errs = append(tb.errs, fmt.Sprintf(format, args...))
	tb.mu.Unlock()
}

func (tb *modelTB) Error(args ...any) { tb.Errorf("%s", fmt.Sprint(args...)) }
func (tb *modelTB) Fail()             { tb.Errorf("failed") }
func (tb *modelTB) FailNow()          { tb.Errorf("failed"); panic(modelAbort{}) }
func (tb *modelTB) Fatalf(format string, args ...any) {
	tb.Errorf(format, args...)
	panic(modelAbort{})
}
func (tb *modelTB) Fatal(args ...any) { tb.Errorf("%s", fmt.Sprint(args...)); panic(modelAbort{}) }
func (tb *modelTB) Skipf(format string, args ...any) {
	tb.Errorf("skip: "+format, args...)
	panic(modelAbort{})
}
func (tb *modelTB) Skip(args ...any) { tb.Errorf("skip: %s", fmt.Sprint(args...)); panic(modelAbort{}) }
func (tb *modelTB) SkipNow()         { tb.Errorf("skip"); panic(modelAbort{}) }
func (tb *modelTB) Failed() bool {
	tb.mu.Lock()
	defer tb.mu.Unlock()
	return len(tb.errs) > 0
}

func (tb *modelTB) errors() []string {
	tb.mu.Lock()
	defer tb.mu.Unlock()
	return append([]string(nil), tb.errs...)
}

// finish runs the cleanups, last first.
func (tb *modelTB) finish() {
	for {
		tb.mu.Lock()
		if len(tb.cleanups) == 0 {
			tb.mu.Unlock()
			return
		}
		f := tb.cleanups[len(tb.cleanups)-1]
		tb.cleanups = tb.cleanups[:len(tb.cleanups)-1]
		tb.mu.Unlock()
		func() {
			defer func() {
				if r := recover(); r != nil {
					if _, ok := r.(modelAbort); !ok {
						tb.Errorf("cleanup panicked: %v", r)
					}
				}
			}()
			f()
		}()
	}
}

// modelMount mounts a fresh filesystem and runs body on its directory;
// mount-level errors (store Check at unmount, watchdog) become a failure.
func modelMount(t testing.TB, body func(dir string) *modelFail) (res *modelFail) {
	tb := &modelTB{TB: t}
	defer func() {
		if r := recover(); r != nil {
			if _, ok := r.(modelAbort); !ok {
				tb.finish()
				panic(r)
			}
		}
		tb.finish()
		if errs := tb.errors(); len(errs) > 0 && res == nil {
			res = &modelFail{step: -1, class: "mount", msg: strings.Join(errs, "; ")}
		}
	}()
	tm := mountTest(tb, withTimeout(10*time.Minute))
	return body(tm.dir)
}

// modelReplay runs ops on a fresh mount in one worker directory.
func modelReplay(t testing.TB, ops []modelOp) *modelFail {
	return modelMount(t, func(dir string) *modelFail {
		w, err := newModelWorker(filepath.Join(dir, "w0"), 0)
		if err != nil {
			return &modelFail{step: -1, class: "setup", msg: err.Error()}
		}
		defer w.close()
		for _, op := range ops {
			if f := w.step(op, true); f != nil {
				return f
			}
		}
		return nil
	})
}

// modelShrink reduces ops to a shorter list that fails the same way (same
// op kind, same kind of difference), by delta debugging within budget.
func modelShrink(t testing.TB, ops []modelOp, first *modelFail, budget time.Duration) ([]modelOp, *modelFail, int) {
	deadline := time.Now().Add(budget)
	best, bestFail := ops, first
	if first.step >= 0 && first.step < len(best) {
		best = best[:first.step+1]
	}
	runs := 0
	try := func(cand []modelOp) bool {
		runs++
		f := modelReplay(t, cand)
		if f != nil && f.step >= 0 && f.sig() == first.sig() {
			best, bestFail = cand[:f.step+1], f
			return true
		}
		return false
	}
	for chunk := max(1, len(best)/2); chunk >= 1 && time.Now().Before(deadline); {
		progress := false
		for start := len(best) - chunk; start >= 0 && time.Now().Before(deadline); start -= chunk {
			if start >= len(best) {
				continue
			}
			end := min(len(best), start+chunk)
			cand := append(append([]modelOp(nil), best[:start]...), best[end:]...)
			if len(cand) > 0 && try(cand) {
				progress = true
			}
		}
		if !progress {
			if chunk == 1 {
				break
			}
			chunk /= 2
		} else {
			chunk = min(chunk, max(1, len(best)/2))
		}
	}
	// Simplify the surviving ops: smaller lengths.
	for i := 0; i < len(best) && time.Now().Before(deadline); i++ {
		for _, ln := range []int64{1, 100, modelPageSize} {
			if best[i].Len <= ln || best[i].Kind == "truncate" || best[i].Kind == "ftruncate" {
				break
			}
			cand := append([]modelOp(nil), best...)
			cand[i].Len = ln
			if try(cand) {
				break
			}
		}
	}
	return best, bestFail, runs
}

// modelReport shrinks a failure and fails t with the seed and the list.
func modelReport(t *testing.T, seed int64, what string, ops []modelOp, f *modelFail, shrinkable bool) {
	t.Helper()
	var b strings.Builder
	env := fmt.Sprintf("MMAPFS_MODEL_OPS=%d ", modelEnvInt("MMAPFS_MODEL_OPS", modelDefaultOps))
	if modelStrict {
		env += "MMAPFS_MODEL_STRICT=1 "
	}
	if tmpfsMode {
		env += "MMAPFS_TEST_TMPFS=1 "
	}
	sub := t.Name()
	if i := strings.Index(sub, "/"); i >= 0 {
		sub = sub[i+1:]
	}
	fmt.Fprintf(&b, "%s failed with seed %d (rerun: %sgo test ./tests/ -run 'TestModel/%s$' -model.seed=%d):\n  %v\n", what, seed, env, sub, seed, f)
	list, lf := ops, f
	if shrinkable && f.step >= 0 {
		budget := time.Duration(modelEnvInt("MMAPFS_MODEL_SHRINK", 60)) * time.Second
		start := time.Now()
		var runs int
		list, lf, runs = modelShrink(t, ops, f, budget)
		fmt.Fprintf(&b, "shrunk from %d to %d ops in %d runs (%v); the shortest sequence that still fails:\n", f.step+1, len(list), runs, time.Since(start).Round(time.Millisecond))
	} else {
		if f.step >= 0 && f.step < len(list) {
			list = list[:f.step+1]
		}
		fmt.Fprintf(&b, "not shrunk; the sequence (%d ops):\n", len(list))
	}
	for i, op := range list {
		fmt.Fprintf(&b, "  %3d. %s\n", i+1, op)
	}
	fmt.Fprintf(&b, "  => %s: %s\n", lf.class, lf.msg)
	t.Error(b.String())
}

// ---------------------------------------------------------------- tests

func modelSeeds() []int64 {
	if *modelSeedFlag >= 0 {
		return []int64{*modelSeedFlag}
	}
	if s := modelEnvInt("MMAPFS_MODEL_SEED", -1); s >= 0 {
		return []int64{s}
	}
	base, n := modelEnvInt("MMAPFS_MODEL_SEED_BASE", 1), modelEnvInt("MMAPFS_MODEL_SEEDS", 3)
	var out []int64
	for i := int64(0); i < n; i++ {
		out = append(out, base+i)
	}
	return out
}

// TestModel runs random operation sequences against the mount and a model
// of tmpfs: one worker; several workers on separate directories; several
// workers sharing files with order-independent operations.
func TestModel(t *testing.T) {
	nops := int(modelEnvInt("MMAPFS_MODEL_OPS", modelDefaultOps))
	var mu sync.Mutex
	totalOps, seeds := 0, 0
	count := func(n int) { mu.Lock(); totalOps += n; mu.Unlock() }
	for _, seed := range modelSeeds() {
		seeds++
		t.Run(fmt.Sprintf("single/seed=%d", seed), func(t *testing.T) {
			count(modelRunSingle(t, seed, nops))
		})
		t.Run(fmt.Sprintf("workers/seed=%d", seed), func(t *testing.T) {
			count(modelRunWorkers(t, seed, 3, nops/2))
		})
		t.Run(fmt.Sprintf("shared/seed=%d", seed), func(t *testing.T) {
			count(modelRunShared(t, seed, 3, max(4, nops/25), 8))
		})
	}
	t.Logf("MODEL-SUMMARY seeds=%d ops=%d tmpfs=%v strict=%v", seeds, totalOps, tmpfsMode, modelStrict)
	t.Logf("model ops by kind (ok/expected error/skipped, shrinking runs included):%s", modelStatsString())
}

// modelRunSingle: one worker, nops generated ops, checked after each.
func modelRunSingle(t *testing.T, seed int64, nops int) int {
	var ops []modelOp
	f := modelMount(t, func(dir string) *modelFail {
		w, err := newModelWorker(filepath.Join(dir, "w0"), seed)
		if err != nil {
			return &modelFail{step: -1, class: "setup", msg: err.Error()}
		}
		defer w.close()
		g := &modelGen{r: rand.New(rand.NewSource(seed)), m: w.m}
		for i := 0; i < nops; i++ {
			if f := w.step(g.next(), true); f != nil {
				ops = w.ops
				return f
			}
		}
		ops = w.ops
		return nil
	})
	if f != nil {
		modelReport(t, seed, "single worker", ops, f, true)
	}
	return len(ops)
}

// modelRunWorkers: n workers at once, each on its own directory with its
// own model and ops.
func modelRunWorkers(t *testing.T, seed int64, n, nops int) int {
	type result struct {
		ops []modelOp
		f   *modelFail
	}
	res := make([]result, n)
	mf := modelMount(t, func(dir string) *modelFail {
		var wg sync.WaitGroup
		for i := 0; i < n; i++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				ws := seed*1000 + int64(i)
				w, err := newModelWorker(filepath.Join(dir, fmt.Sprintf("w%d", i)), ws)
				if err != nil {
					res[i].f = &modelFail{step: -1, class: "setup", msg: err.Error()}
					return
				}
				defer w.close()
				g := &modelGen{r: rand.New(rand.NewSource(ws)), m: w.m}
				for k := 0; k < nops; k++ {
					if f := w.step(g.next(), true); f != nil {
						res[i].f = f
						break
					}
				}
				res[i].ops = w.ops
			}()
		}
		wg.Wait()
		return nil
	})
	total := 0
	for i, r := range res {
		total += len(r.ops)
		if r.f == nil {
			continue
		}
		// Replayed alone first: a failure that needs the others running
		// cannot be shrunk this way and is printed whole.
		alone := modelReplay(t, r.ops)
		shrinkable := alone != nil && alone.sig() == r.f.sig()
		what := fmt.Sprintf("worker %d of %d (its own seed %d; replayed alone it %s)", i, n, seed*1000+int64(i),
			map[bool]string{true: "fails too", false: "passes"}[shrinkable])
		modelReport(t, seed, what, r.ops, r.f, shrinkable)
	}
	if mf != nil {
		t.Errorf("seed %d: %v", seed, mf)
	}
	return total
}

// ---------------------------------------------------------------- shared

// In the shared mode the workers write the same files at once, but each in
// its own byte range (ranges share pages at their edges), with operations
// whose combined result does not depend on their order: writes, reads of
// their own bytes, fallocate (allocation only grows the file), punching
// holes in their own range, copies from their own range of one file to
// their own range of another, their own xattr names. After a barrier the
// model applies every worker's ops in turn and the whole state is compared.

const (
	modelSharedFiles = 3
	modelSharedRange = 3*modelPageSize + 1000 // not page-aligned: edges share pages
)

// modelSharedRangeOf is worker i's byte range in region reg.
func modelSharedRangeOf(i, reg int) (int64, int64) {
	base := []int64{0, modelWindow - 2*modelSharedRange, 1 << 30}[reg]
	return base + int64(i)*modelSharedRange, base + int64(i+1)*modelSharedRange
}

// modelSharedOwn is what a worker did to its own pages this round.
type modelSharedOwn struct {
	end      map[string]int64          // end of its writes and size-changing fallocates
	falloc   map[string]map[int64]bool // pages it fallocated
	punched  map[string]map[int64]bool // whole pages it punched
	lo, hi   int64                     // current range (for page ownership)
	roundMod *modelState               // the model as the round began
}

func (o *modelSharedOwn) mark(m map[string]map[int64]bool, f string, a, b int64) {
	if m[f] == nil {
		m[f] = map[int64]bool{}
	}
	for p := a / modelPageSize; p*modelPageSize < b; p++ {
		m[f][p] = true
	}
}

func (o *modelSharedOwn) any(m map[string]map[int64]bool, f string, a, b int64) bool {
	for p := a / modelPageSize; p*modelPageSize < b; p++ {
		if m[f][p] {
			return true
		}
	}
	return false
}

func (g *modelGen) sharedOp(i int, start map[string]int64, own *modelSharedOwn) modelOp {
	ownEnd := own.end
	file := fmt.Sprintf("s%d", g.pick(modelSharedFiles))
	reg := g.pick(3)
	if reg == 2 && g.chance(0.7) {
		reg = g.pick(2)
	}
	lo, hi := modelSharedRangeOf(i, reg)
	sub := func() (int64, int64) {
		a := lo + g.r.Int63n(hi-lo)
		b := a + 1 + g.r.Int63n(hi-a)
		if g.chance(0.3) {
			a, b = lo, hi
		}
		return a, b
	}
	a, b := sub()
	op := modelOp{P: file, Off: a, Len: b - a, Seed: g.r.Uint32()}
	// Bytes below this are in the file whatever the others do.
	known := max(start[file], ownEnd[file])
	switch x := g.pick(10); {
	case x < 4:
		op.Kind = "write"
		ownEnd[file] = max(ownEnd[file], b)
	case x < 5:
		op.Kind = "fallocate"
		op.Mode = []uint32{0, unix.FALLOC_FL_KEEP_SIZE}[g.pick(2)]
		if !modelStrict {
			// Only pages of its own that are not fallocated yet:
			// fallocating one twice differs (see modelStrict).
			a = (a + modelPageSize - 1) &^ (modelPageSize - 1)
			b = min(b, (lo+modelSharedRange)&^(modelPageSize-1))
			if b <= a || own.any(own.falloc, file, a, b) {
				return g.sharedOp(i, start, own)
			}
			if own.roundMod.Lookup(file).AnyFalloc(a, b) {
				return g.sharedOp(i, start, own)
			}
			op.Off, op.Len = a, b-a
		}
		own.mark(own.falloc, file, a, b)
		if op.Mode == 0 {
			ownEnd[file] = max(ownEnd[file], b)
		}
	case x < 6:
		op.Kind = "fallocate"
		op.Mode = unix.FALLOC_FL_PUNCH_HOLE | unix.FALLOC_FL_KEEP_SIZE
		own.mark(own.punched, file, (a+modelPageSize-1)&^(modelPageSize-1), b&^(modelPageSize-1))
	case x < 8:
		op.Kind = "read"
		if b > known {
			if a >= known {
				return g.sharedOp(i, start, own)
			}
			op.Len = known - a
		}
	case x < 9:
		op.Kind = "copy"
		op.Q = fmt.Sprintf("s%d", g.pick(modelSharedFiles))
		if op.Q == op.P {
			op.Q = fmt.Sprintf("s%d", (g.pick(modelSharedFiles-1)+1+int(op.P[1]-'0'))%modelSharedFiles)
		}
		// Source bytes present since the round began; destination
		// in the worker's range of the same region.
		if a >= start[file] {
			return g.sharedOp(i, start, own)
		}
		op.Len = min(op.Len, start[file]-a)
		if !modelStrict {
			// From data only (see modelStrict): all data when the
			// round began and not punched since.
			if !own.roundMod.Lookup(file).AllData(a, a+op.Len) || own.any(own.punched, file, a, a+op.Len) {
				return g.sharedOp(i, start, own)
			}
		}
		op.Off2 = lo + g.r.Int63n(hi-lo-op.Len+1)
		ownEnd[op.Q] = max(ownEnd[op.Q], op.Off2+op.Len)
	default:
		op.Kind = "setxattr"
		op.Name = fmt.Sprintf("user.w%d.%d", i, g.pick(2))
		op.Val = fmt.Sprintf("v%x", g.r.Uint32())
		op.Off, op.Len = 0, 0
		if g.chance(0.3) {
			op.Kind = "removexattr"
			op.Val = ""
			// Removing a missing name fails the same in any order.
		}
	}
	return op
}

// modelRunShared: n workers, rounds of perRound ops each on shared files.
func modelRunShared(t *testing.T, seed int64, n, rounds, perRound int) int {
	var log []string
	total := 0
	f := modelMount(t, func(dir string) *modelFail {
		w, err := newModelWorker(filepath.Join(dir, "shared"), seed)
		if err != nil {
			return &modelFail{step: -1, class: "setup", msg: err.Error()}
		}
		defer w.close()
		for k := 0; k < modelSharedFiles; k++ {
			op := modelOp{Kind: "create", P: fmt.Sprintf("s%d", k), Mode: 0o644}
			log = append(log, "setup: "+op.String())
			if f := w.step(op, false); f != nil {
				return f
			}
		}
		gens := make([]*modelGen, n)
		for i := range gens {
			gens[i] = &modelGen{r: rand.New(rand.NewSource(seed*1000 + int64(i))), m: w.m}
		}
		for r := 0; r < rounds; r++ {
			start := map[string]int64{}
			for k := 0; k < modelSharedFiles; k++ {
				start[fmt.Sprintf("s%d", k)] = w.m.Lookup(fmt.Sprintf("s%d", k)).Size
			}
			ops := make([][]modelOp, n)
			for i := 0; i < n; i++ {
				own := &modelSharedOwn{end: map[string]int64{}, falloc: map[string]map[int64]bool{},
					punched: map[string]map[int64]bool{}, roundMod: w.m}
				for k := 0; k < perRound; k++ {
					ops[i] = append(ops[i], gens[i].sharedOp(i, start, own))
				}
				for _, op := range ops[i] {
					log = append(log, fmt.Sprintf("round %d worker %d: %s", r, i, op))
				}
			}
			// The mount: all workers at once.
			got := make([][]modelRes, n)
			errs := make([]error, n)
			var wg sync.WaitGroup
			for i := 0; i < n; i++ {
				wg.Add(1)
				go func() {
					defer wg.Done()
					for k := range ops[i] {
						res, err := w.do(&ops[i][k])
						if err != nil {
							errs[i] = err
							return
						}
						got[i] = append(got[i], res)
					}
				}()
			}
			wg.Wait()
			// The model: one worker after the other.
			for i := 0; i < n; i++ {
				for k := range ops[i] {
					op := ops[i][k]
					total++
					want := w.m.apply(&op)
					modelCount(op.Kind, want)
					fail := func(class, format string, args ...any) *modelFail {
						return &modelFail{step: len(log), op: op, class: class, msg: fmt.Sprintf("round %d worker %d: ", r, i) + fmt.Sprintf(format, args...)}
					}
					if want.skip {
						return fail("model", "the model skips an op the mount ran (generator bug)")
					}
					if errs[i] != nil {
						return fail("run", "%v", errs[i])
					}
					g := got[i][k]
					if g.err != want.err || g.n != want.n {
						return fail("errno", "mount: %s, model (tmpfs): %s", g, want)
					}
					if want.data != nil && !bytes.Equal(g.data, want.data) {
						return fail("data", "%s", fsmodel.DataDiff(want.data, g.data, op.Off))
					}
				}
			}
			if f := w.check(); f != nil {
				f.step = len(log)
				f.op = modelOp{Kind: fmt.Sprintf("round-%d-check", r)}
				f.msg = fmt.Sprintf("after round %d: %s", r, f.msg)
				return f
			}
		}
		return nil
	})
	if f != nil {
		t.Errorf("shared files, seed %d: %v\nthe ops (each round's ops ran concurrently, checked after the round):\n  %s",
			seed, f, strings.Join(log, "\n  "))
	}
	return total
}
