package fs

import (
	"errors"
	"fmt"

	"go.uber.org/zap"

	"mmapfs/control"
	"mmapfs/store"
)

// Change applies a change of the mount's limits or flags (`mount -o
// remount`, `mmapfs resize`): all of it, or nothing and an error that says
// why in one line. As on tmpfs, a limit below what is in use is refused.
func (m *Mounted) Change(c control.Change) error {
	fsys := m.Root.fsys
	fsys.changeMu.Lock()
	defer fsys.changeMu.Unlock()
	var flags uintptr
	if c.MountFlags != nil {
		flags = uintptr(*c.MountFlags)
		strict := atimeRuleOf(flags).strict
		if strict != fsys.atime.Load().strict && fsys.passthrough.Load() {
			return errors.New("strictatime cannot be changed on a mount with passthrough (every read would have to reach the server): mount it again with the atime flag wanted")
		}
	}
	if c.Inodes != nil && *c.Inodes > 0 {
		if used := uint64(fsys.inodes.Load()); used > *c.Inodes {
			return fmt.Errorf("nr_inodes=%d is less than the %d inodes in use", *c.Inodes, used)
		}
	}
	if c.Size != nil || c.Huge != nil {
		size := fsys.storeDir.Figures().SizeLimit
		if c.Size != nil {
			size = *c.Size
		}
		huge := ""
		if c.Huge != nil {
			huge = *c.Huge
		}
		if fsys.passthrough.Load() && !fsys.storeDir.OwnFS() && size > 0 {
			return errors.New("size=: files are lent to passthrough, whose writes the server does not see, so it cannot keep a size limit (mount with size= to have one: passthrough is then off)")
		}
		if err := fsys.storeDir.Resize(size, huge); err != nil {
			return err
		}
	}
	// Nothing below can fail.
	if c.Inodes != nil {
		fsys.maxInodes.Store(*c.Inodes)
	}
	if c.MountFlags != nil {
		fsys.setMountFlags(flags)
	}
	fields := []zap.Field{zap.Bool("read_only", fsys.readOnly.Load())}
	if sp, ok := fsys.storeDir.Space(); ok {
		fields = append(fields, zap.String("size", store.FormatBytes(int64(sp.Blocks)*store.BlockSize)))
	}
	if n := fsys.maxInodes.Load(); n > 0 {
		fields = append(fields, zap.Uint64("inodes", n))
	}
	fsys.log.Info("remounted "+m.mountpoint, fields...)
	return nil
}
