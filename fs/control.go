package fs

import (
	"errors"
	"os"
	"time"

	"mmapfs/control"
)

// Stats returns the figures of the live mount, for `mmapfs stats` and
// the metrics (package control).
func (m *Mounted) Stats() control.Stats {
	fsys := m.Root.fsys
	st := control.Stats{
		Time:       time.Now(),
		Started:    m.started,
		Mountpoint: m.mountpoint,
		Store:      fsys.storeDir.Dir(),
		Persistent: fsys.storeDir.Persistent(),
		ReadOnly:   fsys.readOnly,
		PID:        os.Getpid(),
		StoreUsed:  fsys.storeDir.Used(),
		Inodes:     uint64(fsys.inodes.Load()),
		InodeLimit: fsys.maxInodes,
	}
	return st
}

// Change applies a change of the mount's limits or flags (`mount -o
// remount`, `mmapfs resize`): all of it, or nothing and an error that says
// why in one line.
func (m *Mounted) Change(c control.Change) error {
	return errors.New("this server cannot change a live mount yet")
}
