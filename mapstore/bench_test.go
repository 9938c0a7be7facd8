package mapstore

import (
	"testing"
)

// benchBlob returns a blob whose first size bytes are written, so that the
// benchmarks run on the hot path: pages allocated, windows mapped.
func benchBlob(b *testing.B, size int64) *Blob {
	s := newStore(b, Options{})
	blob := mustCreate(b, s)
	chunk := pattern(1<<20, 1)
	for off := int64(0); off < size; off += int64(len(chunk)) {
		mustWrite(b, blob, chunk, off)
	}
	return blob
}

// benchOp runs op over a written blob of span bytes, n bytes at a time,
// at offsets that cycle through the blob.
func benchOp(b *testing.B, n int, span int64, op func(blob *Blob, p []byte, off int64) error) {
	blob := benchBlob(b, span)
	p := pattern(n, 2)
	slots := span / int64(n)
	b.SetBytes(int64(n))
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; b.Loop(); i++ {
		if err := op(blob, p, int64(i)%slots*int64(n)); err != nil {
			b.Fatal(err)
		}
	}
}

func benchWrite(b *testing.B, n int, span int64) {
	benchOp(b, n, span, func(blob *Blob, p []byte, off int64) error {
		_, err := blob.WriteAt(p, off)
		return err
	})
}

func benchRead(b *testing.B, n int, span int64) {
	benchOp(b, n, span, func(blob *Blob, p []byte, off int64) error {
		_, err := blob.ReadAt(p, off)
		return err
	})
}

// benchView reads as benchRead does, with ReadView: the view is released
// without its bytes being touched, as a reply written by the kernel would.
func benchView(b *testing.B, n int, span int64) {
	benchOp(b, n, span, func(blob *Blob, p []byte, off int64) error {
		v, err := blob.ReadView(p, off)
		if err != nil {
			return err
		}
		v.Release()
		return nil
	})
}

func BenchmarkReadView4K(b *testing.B) { benchView(b, 4<<10, 16<<20) }
func BenchmarkReadView1M(b *testing.B) { benchView(b, 1<<20, 64<<20) }

func BenchmarkWriteAt4K(b *testing.B) { benchWrite(b, 4<<10, 16<<20) }
func BenchmarkReadAt4K(b *testing.B)  { benchRead(b, 4<<10, 16<<20) }
func BenchmarkWriteAt1M(b *testing.B) { benchWrite(b, 1<<20, 64<<20) }
func BenchmarkReadAt1M(b *testing.B)  { benchRead(b, 1<<20, 64<<20) }

// BenchmarkReadAtHole4K reads a hole: zeros without touching the mapping.
func BenchmarkReadAtHole4K(b *testing.B) {
	s := newStore(b, Options{})
	blob := mustCreate(b, s)
	if err := blob.Truncate(1 << 30); err != nil {
		b.Fatal(err)
	}
	p := make([]byte, 4<<10)
	b.SetBytes(int64(len(p)))
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		if _, err := blob.ReadAt(p, int64(i%4096)*4096); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkPunch measures the cold path: each iteration writes a page into
// a hole (fallocate, then copy) and punches it out again.
func BenchmarkPunch(b *testing.B) {
	s := newStore(b, Options{})
	blob := mustCreate(b, s)
	p := pattern(4<<10, 3)
	mustWrite(b, blob, p, 16<<20) // map the windows once
	b.SetBytes(int64(len(p)))
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		off := int64(i%4096) * 4096
		if _, err := blob.WriteAt(p, off); err != nil {
			b.Fatal(err)
		}
		if err := blob.PunchHole(off, int64(len(p))); err != nil {
			b.Fatal(err)
		}
	}
}

// TestHotPathAllocs: reads and writes of allocated, mapped pages, and reads
// of holes, allocate nothing.
func TestHotPathAllocs(t *testing.T) {
	s := newStore(t, Options{})
	blob := mustCreate(t, s)
	mustWrite(t, blob, pattern(4<<20, 1), 0)
	if err := blob.Truncate(8 << 20); err != nil {
		t.Fatal(err)
	}
	p := make([]byte, 64<<10)
	for name, f := range map[string]func(){
		"WriteAt":      func() { blob.WriteAt(p, 12345) },
		"WriteAt span": func() { blob.WriteAt(p, 2<<20-100) },
		"ReadAt":       func() { blob.ReadAt(p, 4096) },
		"ReadAt hole":  func() { blob.ReadAt(p, 5<<20) },
		"ReadAt mixed": func() { blob.ReadAt(p, 4<<20-100) },
		"SeekData":     func() { blob.SeekData(5 << 20) },
	} {
		if n := testing.AllocsPerRun(100, f); n != 0 {
			t.Errorf("%s: %v allocations per run", name, n)
		}
	}
}
