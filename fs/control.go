package fs

import (
	"os"
	"time"

	"mmapfs/control"
)

// Stats returns the figures of the live mount, for `mmapfs stats` and
// the metrics (package control). It takes no lock a request holds for
// long; the store files' allocated and resident bytes are those of the
// store's last look at them, at most a few seconds old
// (store.Store.Figures).
func (m *Mounted) Stats() control.Stats {
	fsys := m.Root.fsys
	dir := fsys.storeDir.Figures()
	blobs := fsys.store.Figures()
	st := control.Stats{
		Time:       time.Now(),
		Started:    m.started,
		Mountpoint: m.mountpoint,
		Store:      fsys.storeDir.Dir(),
		Persistent: fsys.storeDir.Persistent(),
		ReadOnly:   fsys.readOnly.Load(),
		PID:        os.Getpid(),
		Ops:        fsys.counts.snapshot(),
		ReadBytes:  fsys.counts.readBytes.Load(),
		WriteBytes: fsys.counts.writeBytes.Load(),

		StoreUsed:      fsys.storeDir.Used(),
		StoreAllocated: dir.Allocated,
		SizeLimit:      dir.SizeLimit,
		Resident:       dir.Resident,

		ResidentMappedOnly: dir.ResidentMapped,

		Inodes:     uint64(fsys.inodes.Load()),
		InodeLimit: fsys.maxInodes.Load(),

		Lent:        int64(blobs.Lent),
		Windows:     int64(blobs.Windows),
		MappedBytes: blobs.MappedBytes,
		OpenFDs:     int64(blobs.FDs),

		JournalBytes: dir.JournalBytes,
	}
	if p := fsys.persist; p != nil {
		st.Compactions = p.compactions.Load()
		if end := p.compactEnd.Load(); end != 0 {
			st.LastCompaction = time.Unix(0, end)
			st.CompactionTook = time.Duration(p.compactTook.Load()).Seconds()
		}
	}
	return st
}
