package store

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"go.uber.org/zap"

	"mmapfs/internal/dirs"
	"mmapfs/journal"
)

// metaStore is the metadata of a persistent store, open and locked: what
// Open, Load and Check share.
type metaStore struct {
	lock  *os.File // nil read only when nothing made a lock file
	meta  *journal.Meta
	state *journal.State
	rep   *Report
}

// close closes the metadata and lets go of the lock.
func (m *metaStore) close() error {
	err := m.meta.Close()
	if m.lock != nil {
		releaseLock(m.lock)
	}
	return err
}

// openMeta makes dir a store if it is not one (not read only), locks it,
// and loads its metadata. Read only changes nothing; salvage reads what it
// can of damaged metadata instead of failing.
func openMeta(dir string, ro, salvage bool, opts Options) (*metaStore, error) {
	log := logger(opts)
	rep := &Report{}
	if err := prepareDir(dir, ro, rep); err != nil {
		return nil, err
	}
	lock, err := takeLock(dir, ro, rep, log)
	if err != nil {
		return nil, err
	}
	meta, st, jrep, err := journal.Open(filepath.Join(dir, MetaDir), journal.Options{
		ReadOnly:     ro,
		Salvage:      salvage,
		CompactBytes: opts.CompactBytes,
		Logger:       log.Named("journal"),
	})
	if err != nil {
		if lock != nil {
			releaseLock(lock)
		}
		if errors.Is(err, journal.ErrDamaged) {
			return nil, fmt.Errorf("store %s: %w; run `mmapfs fsck --store %s --repair`", dir, err, dir)
		}
		return nil, fmt.Errorf("store %s: %w", dir, err)
	}
	rep.Report = *jrep
	return &metaStore{lock: lock, meta: meta, state: st, rep: rep}, nil
}

// prepareDir checks that dir is a store, or makes a new one (not read
// only).
func prepareDir(dir string, ro bool, rep *Report) error {
	// The directory itself may be reached through a symlink (the user's
	// choice); nothing inside it is.
	fi, err := os.Stat(dir)
	switch {
	case errors.Is(err, os.ErrNotExist) && !ro:
		if err := os.MkdirAll(dir, 0o700); err != nil {
			return fmt.Errorf("store %s: %w", dir, err)
		}
	case err != nil:
		return fmt.Errorf("store %s: %w", dir, err)
	case !fi.IsDir():
		return fmt.Errorf("store %s is not a directory", dir)
	}
	metaDir := filepath.Join(dir, MetaDir)
	if _, err := os.Lstat(metaDir); err == nil {
		return nil
	} else if !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("store %s: %w", dir, err)
	}
	names, err := dirs.Names(dir)
	if err != nil {
		return fmt.Errorf("store %s: %w", dir, err)
	}
	for _, n := range names {
		if n != LockName && n != BlobsDir && n != lostFoundName {
			return fmt.Errorf("store %s is not empty and is not an mmapfs store (it holds %q)", dir, n)
		}
	}
	if ro {
		return fmt.Errorf("store %s has no metadata: it is not an mmapfs store", dir)
	}
	if err := os.Mkdir(metaDir, 0o700); err != nil {
		return fmt.Errorf("store %s: %w", dir, err)
	}
	if err := os.Chmod(dir, 0o700); err != nil {
		return fmt.Errorf("store %s: %w", dir, err)
	}
	rep.Fresh = true
	return dirs.Sync(dir)
}

// Open opens the persistent store in dir, creating it if it does not
// exist: it takes the lock, loads the metadata, opens the store files and
// recovers the tree (TakeTree). opts.Huge and opts.NoSwap are refused.
func Open(dir string, opts Options) (*Store, error) {
	start := time.Now()
	log := logger(opts)
	if opts.wantsTmpfsOpts() {
		return nil, persistentTmpfsOptsErr(dir, opts)
	}
	ms, err := openMeta(dir, false, false, opts)
	if err != nil {
		return nil, err
	}
	blobs, err := openBlobs(blobsPath(dir), opts.SizeLimit, opts, log)
	if err != nil {
		ms.close()
		return nil, fmt.Errorf("store %s: %w", dir, err)
	}
	rep := ms.rep
	for _, n := range rep.Notes {
		log.Info("store: " + n)
	}
	if rep.Fresh {
		log.Info("made a new store", zap.String("store", dir))
	} else {
		log.Info("loaded the store",
			zap.String("store", dir),
			zap.Int("inodes", len(ms.state.Inodes)),
			zap.Int("journal_frames", rep.Frames),
			zap.String("metadata", FormatBytes(rep.Bytes)),
			zap.Duration("took", time.Since(start).Round(time.Millisecond)))
	}
	s := &Store{
		dir:      dir,
		files:    blobsPath(dir),
		blobs:    blobs,
		log:      log,
		lock:     ms.lock,
		meta:     ms.meta,
		report:   rep,
		spaceDir: blobsPath(dir),
	}
	tree, err := s.recoverTree(ms.state)
	if err != nil {
		s.Close()
		return nil, err
	}
	s.tree = tree
	return s, nil
}

// Load reads the metadata of the persistent store in dir without changing
// anything, and lets go of it: for looking at a store that nothing serves.
// With salvage, damaged metadata is read as far as it can be instead of
// failing.
func Load(dir string, salvage bool) (*journal.State, *Report, error) {
	ms, err := openMeta(dir, true, salvage, Options{})
	if err != nil {
		return nil, nil, err
	}
	ms.close()
	return ms.state, ms.rep, nil
}
