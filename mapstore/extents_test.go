package mapstore

import (
	"math/rand/v2"
	"slices"
	"testing"
)

func ext(pairs ...int64) []extent {
	var es []extent
	for i := 0; i < len(pairs); i += 2 {
		es = append(es, extent{pairs[i], pairs[i+1]})
	}
	return es
}

func TestExtentsAddRemove(t *testing.T) {
	type step struct {
		add       bool
		s, e      int64
		changed   int64
		want      []extent
		wantPages int64
	}
	tests := []struct {
		name  string
		steps []step
	}{
		{"add to empty", []step{{true, 2, 5, 3, ext(2, 5), 3}}},
		{"empty range", []step{{true, 5, 5, 0, nil, 0}, {false, 5, 5, 0, nil, 0}}},
		{"merge touching left and right", []step{
			{true, 0, 2, 2, ext(0, 2), 2},
			{true, 4, 6, 2, ext(0, 2, 4, 6), 4},
			{true, 2, 4, 2, ext(0, 6), 6},
		}},
		{"overlap several", []step{
			{true, 0, 1, 1, ext(0, 1), 1},
			{true, 3, 4, 1, ext(0, 1, 3, 4), 2},
			{true, 6, 7, 1, ext(0, 1, 3, 4, 6, 7), 3},
			{true, 2, 10, 6, ext(0, 1, 2, 10), 9},
		}},
		{"add covered", []step{{true, 0, 10, 10, ext(0, 10), 10}, {true, 3, 5, 0, ext(0, 10), 10}}},
		{"remove middle splits", []step{
			{true, 0, 10, 10, ext(0, 10), 10},
			{false, 3, 5, 2, ext(0, 3, 5, 10), 8},
		}},
		{"remove across extents", []step{
			{true, 0, 3, 3, ext(0, 3), 3},
			{true, 5, 8, 3, ext(0, 3, 5, 8), 6},
			{true, 10, 12, 2, ext(0, 3, 5, 8, 10, 12), 8},
			{false, 2, 11, 5, ext(0, 2, 11, 12), 3},
		}},
		{"remove nothing", []step{
			{true, 0, 3, 3, ext(0, 3), 3},
			{false, 3, 9, 0, ext(0, 3), 3},
		}},
		{"remove all", []step{
			{true, 0, 3, 3, ext(0, 3), 3},
			{true, 5, 6, 1, ext(0, 3, 5, 6), 4},
			{false, 0, 1 << 50, 4, nil, 0},
		}},
		{"huge pages", []step{
			{true, 1 << 50, 1<<51 - 1, 1<<51 - 1 - 1<<50, ext(1<<50, 1<<51-1), 1<<51 - 1 - 1<<50},
			{false, 1<<51 - 2, 1<<51 - 1, 1, ext(1<<50, 1<<51-2), 1<<51 - 2 - 1<<50},
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var x extents
			for i, st := range tt.steps {
				var got int64
				if st.add {
					got = x.add(st.s, st.e)
				} else {
					got = x.remove(st.s, st.e)
				}
				if got != st.changed || !slices.Equal(x.es, st.want) || x.pages != st.wantPages {
					t.Fatalf("step %d: changed %d, set %v (%d pages); want %d, %v (%d)",
						i, got, x.es, x.pages, st.changed, st.want, st.wantPages)
				}
				if why := x.valid(); why != "" {
					t.Fatalf("step %d: %s", i, why)
				}
			}
		})
	}
}

func TestExtentsQueries(t *testing.T) {
	var x extents
	x.add(2, 4)
	x.add(6, 9)
	x.add(20, 21)
	for _, c := range []struct {
		p       int64
		in      bool
		nextIn  int64
		inOK    bool
		nextOut int64
	}{
		{0, false, 2, true, 0},
		{2, true, 2, true, 4},
		{3, true, 3, true, 4},
		{4, false, 6, true, 4},
		{8, true, 8, true, 9},
		{9, false, 20, true, 9},
		{20, true, 20, true, 21},
		{21, false, 0, false, 21},
	} {
		if got := x.contains(c.p); got != c.in {
			t.Errorf("contains(%d) = %v", c.p, got)
		}
		if got, ok := x.nextIn(c.p); got != c.nextIn || ok != c.inOK {
			t.Errorf("nextIn(%d) = %d, %v", c.p, got, ok)
		}
		if got := x.nextOut(c.p); got != c.nextOut {
			t.Errorf("nextOut(%d) = %d", c.p, got)
		}
	}
	if !x.covers(6, 9) || x.covers(5, 7) || !x.covers(7, 7) || x.covers(3, 7) {
		t.Error("covers wrong")
	}
	if got := x.count(0, 100); got != 6 {
		t.Errorf("count = %d", got)
	}
	if got := x.count(3, 7); got != 2 {
		t.Errorf("count(3,7) = %d", got)
	}
	if gs, ge, ok := x.nextGap(2, 10); gs != 4 || ge != 6 || !ok {
		t.Errorf("nextGap(2,10) = %d %d %v", gs, ge, ok)
	}
	if _, _, ok := x.nextGap(6, 9); ok {
		t.Error("nextGap in covered range")
	}
	if gs, ge, ok := x.nextGap(9, 30); gs != 9 || ge != 20 || !ok {
		t.Errorf("nextGap(9,30) = %d %d %v", gs, ge, ok)
	}
	// Missing pages from 0: 0 1 4 5 9 10 ...
	for k, want := range map[int64]int64{1: 1, 2: 2, 3: 5, 4: 6, 5: 10, 15: 20, 16: 22} {
		if got := x.prefixEnd(0, k); got != want {
			t.Errorf("prefixEnd(0, %d) = %d, want %d", k, got, want)
		}
	}
	if x.last() != 21 {
		t.Errorf("last = %d", x.last())
	}
}

// TestExtentsRandom compares the set with a slice of booleans.
func TestExtentsRandom(t *testing.T) {
	const span = 200
	r := rand.New(rand.NewPCG(1, 2))
	for round := 0; round < 50; round++ {
		var x extents
		var ref [span]bool
		for i := 0; i < 200; i++ {
			s := r.Int64N(span)
			e := s + r.Int64N(min(20, span-s)+1)
			add := r.IntN(3) > 0
			var want int64
			for p := s; p < e; p++ {
				if ref[p] != add {
					want++
					ref[p] = add
				}
			}
			var got int64
			if add {
				got = x.add(s, e)
			} else {
				got = x.remove(s, e)
			}
			if got != want {
				t.Fatalf("round %d step %d: changed %d, want %d", round, i, got, want)
			}
			if why := x.valid(); why != "" {
				t.Fatalf("round %d step %d: %s: %v", round, i, why, x.es)
			}
			for p := int64(0); p < span; p++ {
				if x.contains(p) != ref[p] {
					t.Fatalf("round %d step %d: page %d: %v", round, i, p, x.contains(p))
				}
			}
			q := r.Int64N(span)
			wantIn, wantOut := int64(-1), q
			for p := q; p < span; p++ {
				if ref[p] {
					wantIn = p
					break
				}
			}
			for wantOut < span && ref[wantOut] {
				wantOut++
			}
			if got, ok := x.nextIn(q); (ok && got != wantIn) || (!ok && wantIn != -1) {
				t.Fatalf("nextIn(%d) = %d, %v; want %d", q, got, ok, wantIn)
			}
			if got := x.nextOut(q); got != wantOut {
				t.Fatalf("nextOut(%d) = %d; want %d", q, got, wantOut)
			}
		}
	}
}

func TestExtentsValid(t *testing.T) {
	for _, c := range []struct {
		x  extents
		ok bool
	}{
		{extents{}, true},
		{extents{es: ext(0, 2, 3, 4), pages: 3}, true},
		{extents{es: ext(0, 2, 2, 4), pages: 4}, false},
		{extents{es: ext(3, 4, 0, 2), pages: 3}, false},
		{extents{es: ext(0, 0), pages: 0}, false},
		{extents{es: ext(0, 2), pages: 3}, false},
	} {
		if got := c.x.valid() == ""; got != c.ok {
			t.Errorf("%v valid = %v", c.x, got)
		}
	}
}
