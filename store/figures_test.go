package store

import (
	"bytes"
	"testing"
	"time"
)

// Figures adds up the store files: their allocated and resident bytes,
// from one walk that later calls reuse until it is a second old; a closed
// store has none.
func TestFigures(t *testing.T) {
	memdir := "/dev/shm"
	if !isDir(memdir) {
		memdir = t.TempDir()
	}
	s, err := OpenMemory(memdir, Options{SizeLimit: 64 << 20})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	const n, size = 8, 256 << 10
	for i := 0; i < n; i++ {
		b, err := s.Blobs().Create()
		if err != nil {
			t.Fatal(err)
		}
		if _, err := b.WriteAt(bytes.Repeat([]byte{byte(i + 1)}, size), 0); err != nil {
			t.Fatal(err)
		}
	}
	// The first call starts the walk and waits for it (a few files take
	// far less than walkWait); poll in case the machine is slow.
	var f Figures
	for deadline := time.Now().Add(20 * time.Second); ; {
		if f = s.Figures(); !f.Walked.IsZero() || time.Now().After(deadline) {
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	if f.Walked.IsZero() {
		t.Fatal("no walk of the store files finished")
	}
	if f.Allocated < n*size {
		t.Errorf("allocated %d bytes, want at least the %d written", f.Allocated, n*size)
	}
	if f.ResidentMapped {
		t.Logf("no cachestat(2): resident %d bytes of the mapped windows", f.Resident)
	} else if f.Resident < n*size {
		t.Errorf("resident %d bytes, want at least the %d written (a store on a tmpfs, no swap used)", f.Resident, n*size)
	}
	if f.SizeLimit != 64<<20 || f.JournalBytes != 0 {
		t.Errorf("size limit %d, journal %d bytes: want %d and 0", f.SizeLimit, f.JournalBytes, 64<<20)
	}
	// Within a second, the same walk.
	if g := s.Figures(); time.Since(f.Walked) < walkEvery/2 && !g.Walked.Equal(f.Walked) {
		t.Errorf("a second call %v after the walk walked again", time.Since(f.Walked))
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if g := s.Figures(); g != (Figures{}) {
		t.Errorf("figures of a closed store: %+v", g)
	}
}

// A walk whose figures are older than walkEvery (and than walkDuty times
// it took) is made again.
func TestFiguresRefresh(t *testing.T) {
	var c figureCache
	dir := t.TempDir()
	var first walkFigures
	for deadline := time.Now().Add(20 * time.Second); first.at.IsZero() && time.Now().Before(deadline); {
		first = c.get(dir)
	}
	if first.at.IsZero() {
		t.Fatal("no walk")
	}
	if again := c.get(dir); time.Since(first.at) < walkEvery/2 && !again.at.Equal(first.at) {
		t.Errorf("walked again at once")
	}
	c.mu.Lock()
	c.last.at = c.last.at.Add(-walkEvery)
	c.mu.Unlock()
	var again walkFigures
	for deadline := time.Now().Add(20 * time.Second); !again.at.After(first.at) && time.Now().Before(deadline); {
		again = c.get(dir)
	}
	if !again.at.After(first.at) {
		t.Errorf("not walked again after %v", walkEvery)
	}
	c.stop()
	c.mu.Lock()
	c.last.at = time.Time{}
	c.mu.Unlock()
	if w := c.get(dir); !w.at.IsZero() {
		t.Errorf("walked after stop")
	}
}
