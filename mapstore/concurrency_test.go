package mapstore

import (
	"bytes"
	"io"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"testing"
)

// TestConcurrent runs many goroutines at once under -race: some on blobs of
// their own, each checked against its own model; some on one shared blob,
// each on a stripe of it (stripes share pages and windows); readers,
// copiers, syncs, Stats and Check across them. Windows and descriptors are
// few, so eviction races with everything.
func TestConcurrent(t *testing.T) {
	o := smallOpts()
	o.MaxWindows, o.MaxFDs = 4, 3
	s := newStore(t, o)
	shared := mustCreate(t, s)
	const (
		private  = 6
		stripes  = 4
		stripeSz = 3*pg + 100 // unaligned: neighbours share a page
		steps    = 150
	)
	// bounded runs a fixed number of steps; open runs until done.
	var bounded, open sync.WaitGroup
	var done atomic.Bool
	for g := range private {
		bounded.Go(func() {
			r := rand.New(rand.NewPCG(uint64(g), 99))
			m := &mstore{maxFile: s.MaxFileSize()}
			blobs := []*Blob{mustCreate(t, s), mustCreate(t, s)}
			m.blobs = []*mblob{newMblob(), newMblob()}
			for i, op := range randomOps(r, steps) {
				op.blob %= 2
				op.src %= 2
				err := stepModel(s, m, blobs, op)
				if err == nil && i%5 == 0 {
					err = compareModel(s, m, blobs, false)
				}
				if err != nil {
					t.Errorf("goroutine %d op %d %v: %v", g, i, op, err)
					return
				}
			}
		})
	}
	for j := range stripes {
		bounded.Go(func() {
			off := int64(j) * stripeSz
			for i := range steps {
				p := pattern(stripeSz, byte(i+j))
				if n, err := shared.WriteAt(p, off); n != len(p) || err != nil {
					t.Errorf("stripe %d: WriteAt = %d, %v", j, n, err)
					return
				}
				got := make([]byte, stripeSz)
				if n, err := shared.ReadAt(got, off); n != len(got) || (err != nil && n != len(got)) {
					t.Errorf("stripe %d: ReadAt = %d, %v", j, n, err)
					return
				}
				if !bytes.Equal(got, p) {
					t.Errorf("stripe %d step %d: read back differs", j, i)
					return
				}
				if i%10 == 0 {
					// Zero the stripe's whole pages and write them again.
					if err := shared.ZeroRange(off, stripeSz, true); err != nil {
						t.Errorf("stripe %d: ZeroRange: %v", j, err)
						return
					}
				}
			}
		})
	}
	// Readers of the shared blob, a copier out of it, syncs, stats, checks.
	open.Go(func() {
		buf := make([]byte, stripes*stripeSz)
		for !done.Load() {
			if _, err := shared.ReadAt(buf, 0); err != nil && err != io.EOF {
				t.Errorf("reader: %v", err)
				return
			}
			if d, err := shared.SeekData(0); err == nil {
				shared.SeekHole(d)
			}
		}
	})
	open.Go(func() {
		dst := mustCreate(t, s)
		for !done.Load() {
			if _, err := dst.CopyFrom(shared, 0, 5, stripes*stripeSz); err != nil {
				t.Errorf("copier: %v", err)
				return
			}
			if _, err := shared.CopyFrom(dst, 0, 10*stripes*stripeSz, 2*pg); err != nil {
				t.Errorf("copier back: %v", err)
				return
			}
		}
	})
	open.Go(func() {
		for i := 0; !done.Load(); i++ {
			if err := shared.Sync(0, 0); err != nil {
				t.Errorf("Sync: %v", err)
				return
			}
			st := s.Stats()
			if st.Used < 0 || st.Blobs < 1 {
				t.Errorf("Stats: %+v", st)
				return
			}
			if i%20 == 0 {
				if err := s.Check(); err != nil {
					t.Errorf("Check while running: %v", err)
					return
				}
			}
		}
	})
	bounded.Wait()
	done.Store(true)
	open.Wait()
	for j := range stripes {
		got := readRange(t, shared, int64(j)*stripeSz, stripeSz)
		if !bytes.Equal(got, pattern(stripeSz, byte(steps-1+j))) {
			t.Errorf("stripe %d: final contents differ", j)
		}
	}
}
