package store

import (
	"go.uber.org/zap"

	"mmapfs/journal"
)

// recoverTree repairs what a crash leaves behind in the loaded tree st
// (files lent for writing, see loans.go; files unlinked while open, store
// files no inode names; and whatever Validate finds), commits the repairs, and sets the store's numbering
// above every id st holds. A new store's empty tree is returned as it is:
// the filesystem makes its root.
func (s *Store) recoverTree(st *journal.State) (*Tree, error) {
	if len(st.Inodes) == 0 {
		return &Tree{State: st}, nil
	}
	var b journal.Batch
	if settled := settleLoans(st, s.files, s.log); len(settled) > 0 {
		for _, in := range settled {
			b.Inode(in)
		}
		s.log.Info("recovered the store: files open for writing with passthrough when the server stopped take their size and times from their store files",
			zap.Int("files", len(settled)))
	}
	problems, nlink := st.Validate()
	st.Fix(problems, &b) // the data of freed inodes goes with the strays below
	freed := 0
	for _, pr := range problems {
		if pr.Orphan() {
			freed++
			continue
		}
		s.log.Warn("store repaired: "+pr.What, zap.String("repair", pr.Repair))
	}
	if len(problems) > freed {
		problems, nlink = st.Validate() // the root may be new
	}
	if err := s.meta.Commit(&b); err != nil {
		return nil, err
	}
	if err := s.meta.AllocateAhead(); err != nil {
		s.log.Warn("the store's filesystem is full: changes will fail with ENOSPC until there is room", zap.Error(err))
	}
	// The data of freed inodes goes; so do store files no inode names
	// (the server stopped between freeing an inode and its data).
	referenced := make(map[uint64]bool, len(st.Inodes))
	for _, in := range st.Inodes {
		if in.IsReg() {
			referenced[in.Blob] = true
		}
	}
	ids, err := s.blobs.Files()
	if err != nil {
		return nil, err
	}
	files := make(map[uint64]bool, len(ids))
	stray := 0
	for _, id := range ids {
		files[id] = true
		if !referenced[id] {
			if blob, err := s.blobs.OpenBlob(id, 0, nil); err == nil {
				blob.Free()
				stray++
			}
		}
	}
	if freed > 0 || stray > 0 {
		s.log.Info("recovered the store: freed files that were unlinked while open, and data no file named",
			zap.Int("inodes", freed), zap.Int("store_files", stray))
	}
	s.blobs.SetNextID(st.NextBlob)
	return &Tree{State: st, Nlink: nlink, Files: files}, nil
}
