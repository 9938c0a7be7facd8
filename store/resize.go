package store

import (
	"errors"
	"fmt"
	"slices"
	"strings"

	"golang.org/x/sys/unix"

	"mmapfs/mapstore"
)

// Resize changes the size limit of a live store to size bytes (0: no
// limit), as tmpfs's `mount -o remount,size=` does, and with a non-empty
// huge the huge= of the tmpfs a memory store mounted for itself. A limit
// below what the store holds is refused, and nothing changes on error.
// The limit of a persistent store is not recorded: the size= of each
// mount sets it.
func (s *Store) Resize(size int64, huge string) error {
	if size < 0 {
		return errors.New("a negative size")
	}
	if huge != "" && !slices.Contains(HugeValues, huge) {
		return fmt.Errorf("huge=%s: want %s", huge, strings.Join(HugeValues, ", "))
	}
	if s.OwnFS() {
		return s.resizeOwnFS(size, huge)
	}
	if huge != "" {
		return errors.New("huge= applies only to the tmpfs mmapfs mounts for a memory store with size= and passthrough, and this store has none: set it on the tmpfs under the store (mount -o remount,huge=… on it)")
	}
	if size == 0 && s.blobs.Stats().Limit == 0 {
		return nil
	}
	err := s.blobs.SetLimit(size)
	switch {
	case errors.Is(err, mapstore.ErrLimitInUse):
		return fmt.Errorf("size=%s is less than the %s the files hold", FormatBytes(size), FormatBytes(s.blobs.Stats().Used))
	case errors.Is(err, mapstore.ErrNoLend):
		return errors.New("files are lent to passthrough, whose writes the server does not see, so it cannot keep a size limit (mount with size= to have one: passthrough is then off)")
	}
	return err
}

// resizeOwnFS remounts the store's own tmpfs with size (and huge); the
// kernel refuses a size below what the tmpfs holds (EINVAL), which is said
// in words first.
func (s *Store) resizeOwnFS(size int64, huge string) error {
	var st unix.Statfs_t
	if err := unix.Statfs(s.dir, &st); err != nil {
		return fmt.Errorf("the store's tmpfs: %s", errnoText(err))
	}
	used := int64(st.Blocks-st.Bfree) * st.Bsize
	if size > 0 && used > size {
		return fmt.Errorf("size=%s is less than the %s the files hold", FormatBytes(size), FormatBytes(used))
	}
	opts := fmt.Sprintf("size=%d", size)
	if huge != "" {
		opts += ",huge=" + huge
	}
	if err := unix.Mount("mmapfs-store", s.dir, "tmpfs", unix.MS_REMOUNT|unix.MS_NOSUID|unix.MS_NODEV|unix.MS_NOEXEC, opts); err != nil {
		return fmt.Errorf("remounting the store's tmpfs with %s: %s", opts, errnoText(err))
	}
	return nil
}
