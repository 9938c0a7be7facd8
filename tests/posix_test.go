package tests

import (
	"os"
	"sort"
	"testing"

	"github.com/hanwen/go-fuse/v2/posixtest"
)

// TestPosix runs every test of go-fuse's posixtest suite, each on a fresh
// mount.
func TestPosix(t *testing.T) {
	names := make([]string, 0, len(posixtest.All))
	for name := range posixtest.All {
		names = append(names, name)
	}
	sort.Strings(names)
	for _, name := range names {
		fn := posixtest.All[name]
		t.Run(name, func(t *testing.T) {
			if name == "FcntlFlockLocksFile" && os.Getenv("MMAPFS_TEST_ALL_POSIX") != "1" {
				// It expects a second F_SETLK by the same process on another
				// descriptor to conflict, but a process never conflicts with
				// its own POSIX locks: it fails on tmpfs too (upstream skips
				// it as well). MMAPFS_TEST_ALL_POSIX=1 runs it anyway.
				t.Skip("fails on tmpfs too: a process never conflicts with its own POSIX locks")
			}
			if name == "FdLeak" && passthroughMode {
				// The server runs in the test process and holds a
				// descriptor for each file open with passthrough,
				// until the asynchronous RELEASE: files open in the
				// tests running alongside count as leaks.
				t.Skip("counts the in-process server's passthrough descriptors as leaks")
			}
			t.Parallel()
			mnt, _, _ := mountFS(t)
			fn(t, mnt)
		})
	}
}
