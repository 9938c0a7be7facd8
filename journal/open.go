package journal

import (
	"errors"
	"fmt"
	"path/filepath"
	"sync"
	"sync/atomic"

	"go.uber.org/zap"

	"mmapfs/internal/dirs"
)

// Names of the files in the journal's directory.
const (
	snapName  = "snapshot-"
	jrnlName  = "journal-"
	tmpSuffix = ".tmp"
)

// ErrDamaged is returned by Open when the metadata is damaged beyond a torn
// journal tail; fsck --repair salvages what is left.
var ErrDamaged = errors.New("metadata damaged")

// Options configure Open.
type Options struct {
	// ReadOnly opens without changing anything: torn tails and stale
	// files stay, nothing is written. For fsck.
	ReadOnly bool
	// Salvage loads what can be read of damaged metadata instead of
	// failing with ErrDamaged. For fsck --repair.
	Salvage bool
	// CompactBytes is the journal size past which ShouldCompact says
	// yes; 0 = 64 MiB.
	CompactBytes int64
	Logger       *zap.Logger
}

// Report says what Open found on the way.
type Report struct {
	Generation uint64   // of the snapshot and journal now in use
	Frames     int      // journal frames replayed
	Bytes      int64    // bytes of snapshot and journal read
	Dropped    int64    // bytes of torn journal tail dropped
	Damage     []string // damage found, in plain words
	Notes      []string // things tidied up (stale files)
}

// Meta is the metadata of an open store: the snapshot and journals of its
// directory, and the journal that changes are committed to. Its methods are
// safe for concurrent use. Whoever opens it keeps other processes away from
// the directory (package store locks the store).
type Meta struct {
	dir     string // the journal's directory
	log     *zap.Logger
	ro      bool
	compact int64

	compacting atomic.Bool
	over       atomic.Bool // the journal is past the compaction threshold
	batches    sync.Pool   // of *Batch: handed out by Batch, put back by Commit

	// syncMu is held by Sync while it syncs the journal file without mu
	// (so that commits go on meanwhile), and by what closes or replaces
	// that file (BeginCompact, Close). Lock order: syncMu, then mu.
	syncMu sync.Mutex

	mu       sync.Mutex
	f        *jfile // Protected by mu: the journal being appended to.
	gen      uint64 // Protected by mu.
	off      int64  // Protected by mu: where the next frame goes.
	seq      uint64 // Protected by mu: the next frame's sequence number.
	unsynced bool   // Protected by mu: frames written since the last Sync.
	dirSync  bool   // Protected by mu: meta/ needs an fsync.
	err      error  // Protected by mu: a failure that stops all commits.
	snapSize int64  // Protected by mu: bytes of the last snapshot.
	reserved int64  // Protected by mu: room kept for reserved batches (reserve.go).

	// older is set by load when a file it read is of an older format
	// version; Open then rewrites the metadata.
	older bool
}

// Open loads the snapshot and journals in dir, the journal's directory,
// which must exist, and opens the journal for appending (not with
// ReadOnly). The State is the tree as the last committed change left it;
// Report says what was found. Errors do not name dir: the caller says
// whose metadata it is.
func Open(dir string, opts Options) (*Meta, *State, *Report, error) {
	log := opts.Logger
	if log == nil {
		log = zap.NewNop()
	}
	m := &Meta{dir: dir, log: log, ro: opts.ReadOnly, compact: opts.CompactBytes}
	if m.compact == 0 {
		m.compact = 64 << 20
	}
	rep := &Report{}
	st, err := m.load(rep, opts.Salvage)
	if err != nil {
		return nil, nil, nil, err
	}
	if m.older && !m.ro && len(rep.Damage) == 0 {
		// Before any change: an older mmapfs then refuses the store by
		// its version rather than take records it does not know for a
		// damaged tail. (Damaged metadata is rewritten by fsck --repair
		// anyway.)
		if err := m.Rewrite(st); err != nil {
			m.Close()
			return nil, nil, nil, fmt.Errorf("journal: rewriting the metadata in format version %d: %w", Version, err)
		}
		rep.Generation = m.gen
		rep.Notes = append(rep.Notes, fmt.Sprintf("rewrote the metadata in format version %d", Version))
	}
	return m, st, rep, nil
}

// removing says what load does with a stale file: removes it, or, read
// only, would.
func (m *Meta) removing() string {
	if m.ro {
		return "would remove"
	}
	return "removed"
}

// rel names a file of the directory in messages: meta/NAME.
func (m *Meta) rel(name string) string { return filepath.Base(m.dir) + "/" + name }

// Close syncs and closes the journal.
func (m *Meta) Close() error {
	m.syncMu.Lock()
	defer m.syncMu.Unlock()
	m.mu.Lock()
	err := m.syncLocked()
	if m.f != nil {
		if cerr := m.f.close(m.off); err == nil {
			err = cerr
		}
		m.f = nil
	}
	m.mu.Unlock()
	return err
}

func genHex(g uint64) string { return fmt.Sprintf("%016x", g) }

func cmpU64(a, b uint64) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

// readNames returns the names in dir, sorted.
func readNames(dir string) ([]string, error) { return dirs.Names(dir) }

// syncDir makes the entries of dir durable.
func syncDir(dir string) error { return dirs.Sync(dir) }
