package store

import "testing"

func TestFormatBytes(t *testing.T) {
	for n, want := range map[int64]string{
		0: "0 B", 1023: "1023 B", 1024: "1 KiB", 1536: "1.5 KiB", 64 << 20: "64 MiB",
		12 << 30: "12 GiB", 3 << 39: "1.5 TiB",
	} {
		if got := FormatBytes(n); got != want {
			t.Errorf("FormatBytes(%d) = %q, want %q", n, got, want)
		}
	}
}

func TestIsStoreName(t *testing.T) {
	for name, want := range map[string]bool{
		"mmapfs-123": true, "mmapfs-": false, "mmapfs-bintest": false, "mmapfs-12a": false,
		".mmapfs-new-123": false, "xmmapfs-1": false,
	} {
		if got := isStoreName(name); got != want {
			t.Errorf("isStoreName(%q) = %v", name, got)
		}
	}
}
