package main

// The soak worker's operation set: the names, the weights and the choice
// of the next operation. Each operation is in ops_data.go (file contents),
// ops_names.go (names, attributes and trees) or ops_shared.go (what all
// workers share).

import "os"

// opNames are the names of the operations in the worker's result.
var opNames = []string{
	"create", "write", "append", "read", "pread", "mmapread", "mmapwrite",
	"stat", "readdir", "rename", "unlink", "truncate", "fallocate", "xattr",
	"mkdirtree", "copyrange", "link", "symlink", "shared", "flock", "shareddir", "fsync",
}

// The operations.
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

// step runs one operation, chosen by weight; the weights of create and
// unlink move so that the number of files stays near targetFiles.
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
