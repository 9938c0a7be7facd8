package mapstore

import (
	"bytes"
	"fmt"
	"testing"
)

// TestManyBlobs creates far more blobs than descriptors and windows: the
// caches must stay within their bounds (docs/design.md, hazard 4) while every
// blob keeps its data.
func TestManyBlobs(t *testing.T) {
	n := 20000
	if testing.Short() {
		n = 2000
	}
	const maxCached = 16
	s := newStore(t, Options{MaxFDs: maxCached, MaxWindows: maxCached, WindowSize: 64 << 10})
	blobs := make([]*Blob, n)
	data := func(i int) []byte { return []byte(fmt.Sprintf("blob %d", i)) }
	bounds := func() {
		t.Helper()
		if st := s.Stats(); st.FDs > maxCached || st.Windows > maxCached {
			t.Fatalf("caches over their bounds: %+v", st)
		}
	}
	for i := range blobs {
		blobs[i] = mustCreate(t, s)
		mustWrite(t, blobs[i], data(i), int64(i%7)*1000)
		if i%1000 == 0 {
			bounds()
		}
	}
	bounds()
	if st := s.Stats(); st.Blobs != n || st.Used != int64(n)*pg {
		t.Fatalf("stats %+v", st)
	}
	// Read every blob back, in an order that defeats the caches.
	for k := range blobs {
		i := (k * 7919) % n
		want := data(i)
		if got := readRange(t, blobs[i], int64(i%7)*1000, len(want)); !bytes.Equal(got, want) {
			t.Fatalf("blob %d: %q", i, got)
		}
	}
	bounds()
	for i := 0; i < n; i += 2 {
		if err := blobs[i].Free(); err != nil {
			t.Fatal(err)
		}
	}
	if st := s.Stats(); st.Blobs != n/2 || st.Used != int64(n/2)*pg {
		t.Fatalf("stats after freeing half %+v", st)
	}
	bounds()
}
