package mapstore

import (
	"testing"
)

func TestFileNames(t *testing.T) {
	for _, id := range []uint64{1, 0xa7, 1 << 63, ^uint64(0)} {
		name := FileName(id)
		if got, ok := ParseFileName(name); !ok || got != id || len(name) != 16 {
			t.Errorf("FileName(%#x) = %q, parsed back as %#x, %v", id, name, got, ok)
		}
	}
	for _, name := range []string{"", "1", "00000000000000A7", "00000000000000a7.bad", "0000000000000g01", "lock"} {
		if id, ok := ParseFileName(name); ok {
			t.Errorf("ParseFileName(%q) = %#x, true", name, id)
		}
	}
}
