package fs

import (
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
		Ops:        fsys.counts.snapshot(),
		ReadBytes:  fsys.counts.readBytes.Load(),
		WriteBytes: fsys.counts.writeBytes.Load(),
	}
	return st
}
