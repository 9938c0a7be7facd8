package main

import (
	"errors"
	"fmt"
	"time"

	"go.uber.org/zap"

	"mmapfs/journal"
	"mmapfs/mapstore"
)

// persistentStore is a store directory given with --store: its metadata
// and its store files.
type persistentStore struct {
	Meta  *journal.Meta
	Store *mapstore.Store
}

// openPersistentStore opens (or creates) the store in dir and loads its
// tree. The state is returned apart, so that nothing keeps it once the
// filesystem has built its nodes from it.
func openPersistentStore(dir string, size int64, log *zap.Logger) (*persistentStore, *journal.State, error) {
	start := time.Now()
	meta, state, rep, err := journal.Open(dir, journal.Options{Logger: log.Named("journal")})
	if err != nil {
		if errors.Is(err, journal.ErrInUse) {
			return nil, nil, err
		}
		return nil, nil, fmt.Errorf("%v", err)
	}
	st, err := mapstore.Open(mapstore.Options{Dir: meta.BlobsPath(), SizeLimit: size, Logger: log.Named("store")})
	if err != nil {
		meta.Close()
		return nil, nil, fmt.Errorf("store %s: %v", dir, err)
	}
	for _, n := range rep.Notes {
		log.Info("store: " + n)
	}
	if rep.Fresh {
		log.Info("made a new store", zap.String("store", dir))
	} else {
		log.Info("loaded the store",
			zap.String("store", dir),
			zap.Int("inodes", len(state.Inodes)),
			zap.Int("journal_frames", rep.Frames),
			zap.String("metadata", formatBytes(rep.Bytes)),
			zap.Duration("took", time.Since(start).Round(time.Millisecond)))
	}
	return &persistentStore{Meta: meta, Store: st}, state, nil
}

// Close closes the store files and lets go of the store's lock; the
// filesystem has written its last snapshot already.
func (p *persistentStore) Close() {
	p.Store.Close()
	p.Meta.Close()
}
