package fs

import (
	"testing"
	"unsafe"

	"mmapfs/mapstore"
)

// What each inode costs the server is mostly these structs: a million
// empty files are a million Files and Blobs. Their sizes stay within the
// allocator's size classes they were fitted to (288, 256 and 176 bytes;
// go-fuse's Inode, 128 of the File's bytes, included).
func TestNodeSizes(t *testing.T) {
	for _, c := range []struct {
		name      string
		size, max uintptr
	}{
		{"File", unsafe.Sizeof(File{}), 288},
		{"Dir", unsafe.Sizeof(Dir{}), 256},
		{"mapstore.Blob", unsafe.Sizeof(mapstore.Blob{}), 176},
	} {
		if c.size > c.max {
			t.Errorf("%s: %d bytes, more than the %d it was fitted to", c.name, c.size, c.max)
		}
	}
}
