package mapstore

import (
	"math"
	"slices"
)

// Page numbers: page p holds the bytes [p*PageSize, (p+1)*PageSize).

// pageUp returns the number of the page that starts at or after off ≥ 0,
// without overflow: pageUp(math.MaxInt64) is lastPage+1.
func pageUp(off int64) int64 {
	p := off >> pageShift
	if off&(PageSize-1) != 0 {
		p++
	}
	return p
}

// pageOff returns the offset of page p ≥ 0, or math.MaxInt64 for a page
// past lastPage (whose offset 2^63 does not fit): the end of the bytes of
// pages [0, p).
func pageOff(p int64) int64 {
	if p > lastPage {
		return math.MaxInt64
	}
	return p << pageShift
}

// extent is the half-open range of page numbers [start, end).
type extent struct {
	start, end int64
}

// extents is a set of pages kept as sorted, non-overlapping, non-adjacent
// extents. The zero value is the empty set.
//
// Lookups are binary searches and do not allocate; add and remove shift the
// slice, so they cost O(number of extents) in the worst case.
type extents struct {
	es    []extent
	pages int64 // total pages in the set
}

// search returns the index of the first extent that ends after page p, or
// len(x.es) if there is none.
func (x *extents) search(p int64) int {
	lo, hi := 0, len(x.es)
	for lo < hi {
		m := int(uint(lo+hi) >> 1)
		if x.es[m].end <= p {
			lo = m + 1
		} else {
			hi = m
		}
	}
	return lo
}

// covers reports whether every page of [s, e) is in the set.
func (x *extents) covers(s, e int64) bool {
	if s >= e {
		return true
	}
	i := x.search(s)
	return i < len(x.es) && x.es[i].start <= s && x.es[i].end >= e
}

// contains reports whether page p is in the set.
func (x *extents) contains(p int64) bool {
	return x.covers(p, p+1)
}

// count returns the number of pages of [s, e) in the set.
func (x *extents) count(s, e int64) int64 {
	var n int64
	for i := x.search(s); i < len(x.es) && x.es[i].start < e; i++ {
		n += min(e, x.es[i].end) - max(s, x.es[i].start)
	}
	return n
}

// nextIn returns the first page ≥ p that is in the set.
func (x *extents) nextIn(p int64) (int64, bool) {
	i := x.search(p)
	if i == len(x.es) {
		return 0, false
	}
	return max(p, x.es[i].start), true
}

// nextOut returns the first page ≥ p that is not in the set.
func (x *extents) nextOut(p int64) int64 {
	i := x.search(p)
	if i < len(x.es) && x.es[i].start <= p {
		return x.es[i].end
	}
	return p
}

// nextGap returns the first run of pages missing from the set within [s, e),
// or ok == false if [s, e) is covered.
func (x *extents) nextGap(s, e int64) (gs, ge int64, ok bool) {
	gs = x.nextOut(s)
	if gs >= e {
		return 0, 0, false
	}
	ge = e
	if n, ok := x.nextIn(gs); ok && n < e {
		ge = n
	}
	return gs, ge, true
}

// prefixEnd returns the smallest page q ≥ s such that [s, q) holds exactly k
// pages missing from the set, for 0 < k ≤ the number missing in [s, ∞).
func (x *extents) prefixEnd(s int64, k int64) int64 {
	p := s
	for {
		gs := x.nextOut(p)
		ge, ok := x.nextIn(gs)
		if !ok || ge-gs >= k {
			return gs + k
		}
		k -= ge - gs
		p = ge
	}
}

// last returns the end of the last extent, or 0 if the set is empty.
func (x *extents) last() int64 {
	if len(x.es) == 0 {
		return 0
	}
	return x.es[len(x.es)-1].end
}

// add puts [s, e) into the set and returns the number of pages added.
func (x *extents) add(s, e int64) int64 {
	if s >= e {
		return 0
	}
	added := (e - s) - x.count(s, e)
	if added == 0 {
		return 0
	}
	// Extents from i to j-1 overlap or touch [s, e) and merge with it.
	i := x.search(s - 1)
	j := i
	for j < len(x.es) && x.es[j].start <= e {
		j++
	}
	if i < j {
		s = min(s, x.es[i].start)
		e = max(e, x.es[j-1].end)
	}
	x.es = slices.Replace(x.es, i, j, extent{s, e})
	x.pages += added
	return added
}

// remove takes [s, e) out of the set and returns the number of pages removed.
func (x *extents) remove(s, e int64) int64 {
	if s >= e {
		return 0
	}
	removed := x.count(s, e)
	if removed == 0 {
		return 0
	}
	i := x.search(s)
	j := i
	for j < len(x.es) && x.es[j].start < e {
		j++
	}
	var keep [2]extent
	n := 0
	if x.es[i].start < s {
		keep[n] = extent{x.es[i].start, s}
		n++
	}
	if x.es[j-1].end > e {
		keep[n] = extent{e, x.es[j-1].end}
		n++
	}
	x.es = slices.Replace(x.es, i, j, keep[:n]...)
	x.pages -= removed
	return removed
}

// reset empties the set.
func (x *extents) reset() {
	x.es = nil
	x.pages = 0
}

// valid reports the first way in which x breaks its invariants, or "".
func (x *extents) valid() string {
	var n int64
	for i, e := range x.es {
		switch {
		case e.start < 0 || e.start >= e.end:
			return "empty or negative extent"
		case i > 0 && x.es[i-1].end >= e.start:
			return "extents unsorted, overlapping or adjacent"
		}
		n += e.end - e.start
	}
	if n != x.pages {
		return "page count disagrees with extents"
	}
	return ""
}
