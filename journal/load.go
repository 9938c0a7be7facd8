package journal

import (
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"

	"go.uber.org/zap"
)

// Loading: the newest snapshot that reads whole, and the journals after
// it replayed frame by frame onto it.

// metaFile is a snapshot or journal file of the directory.
type metaFile struct {
	name string
	kind uint32
	gen  uint64
}

// load reads the snapshot and journals into a state and opens the journal
// for appending.
func (m *Meta) load(rep *Report, salvage bool) (*State, error) {
	names, err := readNames(m.dir)
	if err != nil {
		return nil, err
	}
	var snaps, jrnls []metaFile
	for _, n := range names {
		var mf metaFile
		var rest string
		switch {
		case strings.HasSuffix(n, tmpSuffix):
			// A snapshot that compaction did not finish.
			rep.Notes = append(rep.Notes, m.removing()+" the unfinished snapshot "+n)
			if !m.ro {
				_ = os.Remove(filepath.Join(m.dir, n))
			}
			continue
		case strings.HasPrefix(n, snapName):
			mf.kind, rest = kindSnapshot, n[len(snapName):]
		case strings.HasPrefix(n, jrnlName):
			mf.kind, rest = kindJournal, n[len(jrnlName):]
		default:
			rep.Notes = append(rep.Notes, m.rel(n)+" is not a file mmapfs writes; it is left alone")
			continue
		}
		g, err := strconv.ParseUint(rest, 16, 64)
		if err != nil || len(rest) != 16 {
			rep.Notes = append(rep.Notes, m.rel(n)+" is not a file mmapfs writes; it is left alone")
			continue
		}
		mf.name, mf.gen = n, g
		if mf.kind == kindSnapshot {
			snaps = append(snaps, mf)
		} else {
			jrnls = append(jrnls, mf)
		}
	}
	byGen := func(a, b metaFile) int { return cmpU64(a.gen, b.gen) }
	slices.SortFunc(snaps, byGen)
	slices.SortFunc(jrnls, byGen)

	// The newest snapshot that reads whole; older ones are the fallback
	// of a compaction that did not finish removing them.
	var st, partial *State
	var gen, partialGen uint64
	for i := len(snaps) - 1; i >= 0; i-- {
		s, n, err := m.readSnapshot(snaps[i])
		rep.Bytes += n
		if err == nil {
			st, gen = s, snaps[i].gen
			break
		}
		if errors.Is(err, ErrVersion) {
			return nil, fmt.Errorf("%s: %w", m.rel(snaps[i].name), err)
		}
		rep.Damage = append(rep.Damage, fmt.Sprintf("snapshot %s is damaged: %v", m.rel(snaps[i].name), err))
		if partial == nil {
			partial, partialGen = s, snaps[i].gen
		}
	}
	switch {
	case st != nil:
	case partial != nil:
		// Every snapshot is damaged: what could be read of the newest
		// (salvage uses it; otherwise the load fails below).
		st, gen = partial, partialGen
	default:
		st, gen = NewState(), 1
		if len(jrnls) > 0 && jrnls[0].gen != 1 {
			rep.Damage = append(rep.Damage, "the snapshot is missing: only later journals are there")
			gen = jrnls[0].gen
		}
	}
	// The journals from gen on, in order; older ones are stale.
	var use []metaFile
	for _, j := range jrnls {
		if j.gen < gen {
			rep.Notes = append(rep.Notes, m.removing()+" the compacted journal "+j.name)
			if !m.ro {
				_ = os.Remove(filepath.Join(m.dir, j.name))
			}
			continue
		}
		if len(use) > 0 && j.gen != use[len(use)-1].gen+1 || len(use) == 0 && j.gen != gen {
			rep.Damage = append(rep.Damage, fmt.Sprintf("journal %s does not follow on from generation %d", m.rel(j.name), gen))
		}
		use = append(use, j)
	}
	for i, j := range use {
		last := i == len(use)-1
		valid, size, seq, err := m.replay(j, st, rep, salvage)
		if err != nil {
			if errors.Is(err, ErrVersion) {
				return nil, fmt.Errorf("%s: %w", m.rel(j.name), err)
			}
			return nil, err
		}
		if valid < size {
			dropped := size - valid
			if !last {
				rep.Damage = append(rep.Damage, fmt.Sprintf("journal %s is damaged after byte %d (%d bytes unreadable); later journals follow it", m.rel(j.name), valid, dropped))
			} else {
				rep.Dropped += dropped
				m.log.Warn("dropped a torn or damaged journal tail: a change being written when the server stopped",
					zap.String("journal", filepath.Join(m.dir, j.name)),
					zap.Int64("at", valid), zap.Int64("bytes", dropped))
			}
		}
		if last {
			gen = j.gen
			m.off, m.seq = valid, seq
			if valid < headerSize {
				m.off, m.seq = 0, 1 // the header itself is rewritten
			}
		}
	}
	if len(rep.Damage) > 0 && !salvage {
		return nil, fmt.Errorf("%w: %s", ErrDamaged, strings.Join(rep.Damage, "; "))
	}
	rep.Generation = gen
	m.gen = gen
	if m.ro {
		return st, nil
	}
	return st, m.openJournal(len(use) > 0 && use[len(use)-1].gen == gen)
}

// readSnapshot reads a whole snapshot. On an error it also returns what it
// could read.
func (m *Meta) readSnapshot(mf metaFile) (*State, int64, error) {
	data, err := os.ReadFile(filepath.Join(m.dir, mf.name))
	st := NewState()
	if err != nil {
		return st, 0, err
	}
	kind, gen, err := parseHeader(data)
	if err != nil {
		return st, int64(len(data)), err
	}
	if kind != kindSnapshot || gen != mf.gen {
		return st, int64(len(data)), fmt.Errorf("header says kind %d generation %d", kind, gen)
	}
	if headerVersion(data) < Version {
		m.older = true
	}
	ended := false
	_, _, err = decodeFrames(data, headerSize, 1, func(r *record) {
		if r.typ == recEnd {
			ended = uint64(len(st.Inodes)) == r.next1
			return
		}
		st.apply(r)
	})
	m.snapSize = int64(len(data))
	switch {
	case err != nil:
		return st, int64(len(data)), err
	case !ended:
		return st, int64(len(data)), errors.New("it is incomplete (no end record, or a wrong count)")
	}
	return st, int64(len(data)), nil
}

// replay applies a journal to st. It returns how many bytes of it are
// valid (a torn tail follows), its size, and the next sequence number.
// Damage in the middle (intact frames follow a bad one) is reported in
// rep; with salvage the intact frames after it are applied too.
func (m *Meta) replay(mf metaFile, st *State, rep *Report, salvage bool) (valid, size int64, seq uint64, err error) {
	data, err := os.ReadFile(filepath.Join(m.dir, mf.name))
	if err != nil {
		return 0, 0, 0, err
	}
	rep.Bytes += int64(len(data))
	if len(data) < headerSize {
		return 0, int64(len(data)), 1, nil // torn while being made
	}
	kind, gen, err := parseHeader(data)
	if errors.Is(err, ErrVersion) {
		return 0, 0, 0, err
	}
	if err != nil || kind != kindJournal || gen != mf.gen {
		rep.Damage = append(rep.Damage, fmt.Sprintf("journal %s has a damaged header", m.rel(mf.name)))
		if !salvage {
			return 0, int64(len(data)), 1, nil
		}
		// The frames after it may be intact.
	} else if headerVersion(data) < Version {
		m.older = true
	}
	off, seq := headerSize, uint64(1)
	for {
		n, frames, _ := decodeFrames(data, off, seq, func(r *record) { st.apply(r) })
		rep.Frames += frames
		off, seq = n, seq+uint64(frames)
		if off == len(data) || allZero(data[off:]) {
			// The end, or the end and the zeros of space allocated
			// ahead for frames to come.
			return int64(off), int64(off), seq, nil
		}
		at, next, ok := laterFrame(data[off:], seq)
		if !ok {
			return int64(off), int64(len(data)), seq, nil // a torn tail
		}
		rep.Damage = append(rep.Damage, fmt.Sprintf("journal %s is damaged at byte %d, and intact changes follow from byte %d", m.rel(mf.name), off, off+at))
		if !salvage {
			return int64(len(data)), int64(len(data)), seq, nil
		}
		off, seq = off+at, next
	}
}

// laterFrame looks in what follows the valid part of a journal for an
// intact frame with a later sequence number (up to 64 frames later): a
// write cut short by a crash leaves none; damage in the middle of a
// journal does. It returns the frame's offset in tail and its number.
func laterFrame(tail []byte, seq uint64) (int, uint64, bool) {
	for i := 1; i+frameHead <= len(tail); i++ {
		s := binary.LittleEndian.Uint64(tail[i+8:])
		if s <= seq || s > seq+64 {
			continue
		}
		if _, _, err := frameAt(tail[i:], s); err == nil {
			return i, s, true
		}
	}
	return 0, 0, false
}

// decodeFrames applies fn to every record of the intact frames of a meta
// file (after its header), in order, a frame at a time: a frame with a bad
// record is not applied at all. It returns the length of the valid prefix
// and the number of frames in it, and why it ended early.
func decodeFrames(data []byte, off int, seq uint64, fn func(*record)) (valid, frames int, err error) {
	var recs []record
	for ; off < len(data); seq++ {
		payload, n, err := frameAt(data[off:], seq)
		if err != nil {
			return off, frames, fmt.Errorf("at byte %d: %w", off, err)
		}
		recs = recs[:0]
		d := decoder{p: payload}
		var r record
		for d.next(&r) {
			recs = append(recs, r)
		}
		if d.err != nil {
			return off, frames, fmt.Errorf("at byte %d: %w", off, d.err)
		}
		for i := range recs {
			fn(&recs[i])
		}
		off += n
		frames++
	}
	return off, frames, nil
}

func allZero(p []byte) bool {
	for _, c := range p {
		if c != 0 {
			return false
		}
	}
	return true
}
