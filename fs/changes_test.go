package fs

import (
	"go/ast"
	"go/parser"
	"go/printer"
	"go/token"
	"reflect"
	"strings"
	"testing"

	"github.com/hanwen/go-fuse/v2/fuse"
)

// readOnlyOps are the operations of fuse.RawFileSystem that need no
// wrapper in changes.go, reviewed one by one. Most change nothing a
// snapshot records. (Read and Readlink update atime, which is not
// journaled: a snapshot takes it under the node's lock. Lookup and
// ReadDirPlus add nothing to go-fuse's tree of persistent Inodes. Locks are
// the kernel's.) Release and Fsync commit a change of one node and of no
// name (the end of an unlinked file, times a lent store file got): the
// commit and the change it records are made under the node's lock, which
// compaction's walk takes too, so a snapshot holds all of such a change or
// none of it, and the frame goes to the journal that follows it. They must
// not hold the quiesce lock while they free or sync a file: a compaction
// waiting for it would hold up every change meanwhile.
var readOnlyOps = map[string]bool{
	"String": true, "SetDebug": true, "Init": true, "OnUnmount": true,
	"Lookup": true, "Forget": true, "GetAttr": true, "Statx": true, "Access": true,
	"Readlink": true, "GetXAttr": true, "ListXAttr": true,
	"Read": true, "Lseek": true, "Flush": true, "Ioctl": true,
	"GetLk": true, "SetLk": true, "SetLkw": true,
	"OpenDir": true, "ReadDir": true, "ReadDirPlus": true, "ReleaseDir": true, "FsyncDir": true,
	"StatFs":  true,
	"Release": true, "Fsync": true,
}

// TestEveryChangeIsWrapped fails for an operation of fuse.RawFileSystem
// that is neither wrapped in changes.go (holding the quiesce lock for
// reading, as its first statement) nor reviewed as read-only.
func TestEveryChangeIsWrapped(t *testing.T) {
	fset := token.NewFileSet()
	f, err := parser.ParseFile(fset, "changes.go", nil, 0)
	if err != nil {
		t.Fatal(err)
	}
	wrapped := map[string]bool{}
	for _, decl := range f.Decls {
		fn, ok := decl.(*ast.FuncDecl)
		if !ok || fn.Recv == nil || len(fn.Recv.List) != 1 {
			continue
		}
		if star, ok := fn.Recv.List[0].Type.(*ast.StarExpr); !ok || star.X.(*ast.Ident).Name != "wireFS" {
			continue
		}
		name := fn.Name.Name
		wrapped[name] = true
		first := ""
		if len(fn.Body.List) > 0 {
			var b strings.Builder
			printer.Fprint(&b, fset, fn.Body.List[0])
			first = b.String()
		}
		if first != "defer w.fsys.changing()()" {
			t.Errorf("changes.go: %s does not start with `defer w.fsys.changing()()` (it starts with %q)", name, first)
		}
	}
	raw := reflect.TypeOf((*fuse.RawFileSystem)(nil)).Elem()
	ops := map[string]bool{}
	for i := 0; i < raw.NumMethod(); i++ {
		name := raw.Method(i).Name
		ops[name] = true
		switch {
		case wrapped[name] && readOnlyOps[name]:
			t.Errorf("%s is wrapped in changes.go and listed as read-only", name)
		case !wrapped[name] && !readOnlyOps[name]:
			t.Errorf("fuse.RawFileSystem.%s is neither wrapped in changes.go nor reviewed as read-only (readOnlyOps): add one", name)
		}
	}
	for name := range wrapped {
		if !ops[name] {
			t.Errorf("changes.go wraps %s, which fuse.RawFileSystem does not have", name)
		}
	}
	for name := range readOnlyOps {
		if !ops[name] {
			t.Errorf("readOnlyOps lists %s, which fuse.RawFileSystem does not have", name)
		}
	}
}
