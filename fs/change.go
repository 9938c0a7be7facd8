package fs

import (
	"errors"

	"mmapfs/control"
)

// Change applies a change of the mount's limits or flags (`mount -o
// remount`, `mmapfs resize`): all of it, or nothing and an error that says
// why in one line.
func (m *Mounted) Change(c control.Change) error {
	return errors.New("this server cannot change a live mount yet")
}
