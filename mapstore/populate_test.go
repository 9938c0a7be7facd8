package mapstore

import "testing"

// TestFillBits compares the chunk bits of populate with a count page by
// page, for windows of every shape (a power of two, or cut short at the
// mappable limit) and ranges at page boundaries.
func TestFillBits(t *testing.T) {
	for _, pages := range []int64{1, 3, 31, 32, 33, 64, 100, 512, 513} {
		n := pages * PageSize
		cs := fillShift(n)
		if chunks := (n + 1<<cs - 1) >> cs; chunks > 32 {
			t.Fatalf("window of %d pages: %d chunks", pages, chunks)
		}
		for sp := int64(0); sp < pages; sp += 1 + sp/7 {
			for ep := sp + 1; ep <= pages; ep += 1 + (ep-sp)/5 {
				start, end := sp*PageSize, ep*PageSize
				var touched, whole uint64
				for c := int64(0); c<<cs < n; c++ {
					cStart, cEnd := c<<cs, min((c+1)<<cs, n)
					if cStart < end && cEnd > start {
						touched |= 1 << c
					}
					if cStart >= start && cEnd <= end {
						whole |= 1 << c
					}
				}
				gt, gw := fillBits(n, start, end)
				if gt != touched || gw != whole {
					t.Fatalf("window of %d pages, pages [%d, %d): touched %b whole %b, want %b and %b", pages, sp, ep, gt, gw, touched, whole)
				}
			}
		}
	}
}
