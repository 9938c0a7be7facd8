package fs

import (
	"syscall"
	"testing"
	"time"
)

// The rule of each combination of flags, as tmpfs applies it (checked with
// mount -t tmpfs -o ...): strictatime wins over noatime, nodiratime holds
// under each, a read-only mount changes no atime.
func TestAtimeRule(t *testing.T) {
	now := time.Now()
	old := now.Add(-48 * time.Hour)
	fresh := now.Add(-time.Minute)   // later than mtime and ctime, less than a day old
	stale := now.Add(-2 * time.Hour) // mtime and ctime of the node
	for _, c := range []struct {
		flags     uintptr
		dir       bool
		fresh     bool // a read updates an atime later than mtime and ctime
		pastMtime bool // a read updates an atime not later than mtime
		dayOld    bool // a read updates an atime more than a day old
	}{
		{0, false, false, true, true},
		{0, true, false, true, true},
		{syscall.MS_RELATIME, false, false, true, true},
		{syscall.MS_NOATIME, false, false, false, false},
		{syscall.MS_NOATIME, true, false, false, false},
		{syscall.MS_NOATIME | syscall.MS_RELATIME, false, false, false, false},
		{syscall.MS_STRICTATIME, false, true, true, true},
		{syscall.MS_STRICTATIME | syscall.MS_NOATIME, true, true, true, true},
		{syscall.MS_NODIRATIME, false, false, true, true},
		{syscall.MS_NODIRATIME, true, false, false, false},
		{syscall.MS_NODIRATIME | syscall.MS_STRICTATIME, true, false, false, false},
		{syscall.MS_NODIRATIME | syscall.MS_STRICTATIME, false, true, true, true},
		{syscall.MS_RDONLY, false, false, false, false},
		{syscall.MS_RDONLY | syscall.MS_STRICTATIME, false, false, false, false},
	} {
		r := atimeRuleOf(c.flags)
		got := [3]bool{
			r.due(c.dir, fresh, stale, stale, now),
			r.due(c.dir, stale, stale, old, now),
			r.due(c.dir, old, old.Add(-time.Hour), old.Add(-time.Hour), now),
		}
		if want := [3]bool{c.fresh, c.pastMtime, c.dayOld}; got != want {
			t.Errorf("flags %#x dir %v: due (fresh, not past mtime, a day old) = %v, want %v", c.flags, c.dir, got, want)
		}
	}
}
