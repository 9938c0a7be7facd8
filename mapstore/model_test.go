package mapstore

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"math"
	"math/rand/v2"
	"slices"
	"testing"
)

// The shadow model: each blob is a size, its contents by page (sparse, so
// that a blob may reach math.MaxInt64) and two page sets, allocated and
// data, kept by the plainest code possible. Random operations go to the store and to the model, and after
// each one the two must agree on results, contents, size, seeks and
// allocation. The model states the semantics: tmpfs's, plus the store's
// rules for ZeroRange, CopyFrom and the size limit.

const (
	modelBlobs = 3
	modelSpan  = 40 * pg // offsets mostly fall below this
	// Ops at low offsets stay below modelLow; some ops pick offsets in
	// the last modelTopSpan bytes below math.MaxInt64 instead, and stay
	// there.
	modelLow     = modelSpan + 16*pg + 3*win
	modelTopSpan = 8 * pg
	modelTop     = math.MaxInt64 - modelTopSpan - pg
)

type mblob struct {
	sz    int64
	pages map[int64][]byte // contents of page q, pg bytes; none = zeros
	alloc map[int64]bool
	dpg   map[int64]bool
}

func newMblob() *mblob {
	return &mblob{pages: map[int64][]byte{}, alloc: map[int64]bool{}, dpg: map[int64]bool{}}
}

func (m *mblob) size() int64 { return m.sz }

func (m *mblob) grow(size int64) { m.sz = max(m.sz, size) }

// read returns the n bytes at off.
func (m *mblob) read(off, n int64) []byte {
	p := make([]byte, n)
	for i := int64(0); i < n; {
		pos := off + i
		q, o := pos/pg, pos%pg
		c := min(n-i, pg-o)
		if pgb := m.pages[q]; pgb != nil {
			copy(p[i:i+c], pgb[o:])
		}
		i += c
	}
	return p
}

// put writes p at off.
func (m *mblob) put(p []byte, off int64) {
	for i := int64(0); i < int64(len(p)); {
		pos := off + i
		q, o := pos/pg, pos%pg
		if m.pages[q] == nil {
			m.pages[q] = make([]byte, pg)
		}
		i += int64(copy(m.pages[q][o:], p[i:]))
	}
}

// clearBytes zeroes the bytes [off, end).
func (m *mblob) clearBytes(off, end int64) {
	for pos := off; pos < end; {
		q, o := pos/pg, pos%pg
		c := min(end-pos, pg-o)
		if pgb := m.pages[q]; pgb != nil {
			clear(pgb[o : o+c])
		}
		pos += c
	}
}

// setSize shrinks or grows the blob; bytes past a smaller size are gone.
func (m *mblob) setSize(size int64) {
	if size < m.sz {
		for q := range m.pages {
			if pgOff(q) >= size {
				delete(m.pages, q)
			}
		}
		m.clearBytes(size, min(m.sz, pgOff(ceilPage(size))))
	}
	m.sz = size
}

// pgOff is q*pg, or math.MaxInt64 past the last page.
func pgOff(q int64) int64 {
	if q > math.MaxInt64/pg {
		return math.MaxInt64
	}
	return q * pg
}

type mstore struct {
	blobs   []*mblob
	limit   int64 // bytes, 0 = none
	maxFile int64
}

func (m *mstore) usedPages() int64 {
	var n int64
	for _, b := range m.blobs {
		n += int64(len(b.alloc))
	}
	return n
}

// freePages returns how many pages the limit still allows, or -1.
func (m *mstore) freePages() int64 {
	if m.limit == 0 {
		return -1
	}
	return max(0, m.limit/pg-m.usedPages())
}

// ceilPage returns the first page at or after off, without overflow.
func ceilPage(off int64) int64 {
	if off%pg != 0 {
		return off/pg + 1
	}
	return off / pg
}

func (m *mstore) missing(b *mblob, ps, pe int64) []int64 {
	var miss []int64
	for p := ps; p < pe; p++ {
		if !b.alloc[p] {
			miss = append(miss, p)
		}
	}
	return miss
}

// writeBytes writes p at off with the partial-progress rule of the size
// limit. It does not check the maximum file size.
func (m *mstore) writeBytes(b *mblob, p []byte, off int64) (int64, error) {
	n := int64(len(p))
	var short error
	miss := m.missing(b, off/pg, ceilPage(off+n))
	if free := m.freePages(); free >= 0 && int64(len(miss)) > free {
		if free == 0 {
			return 0, ErrNoSpace
		}
		n = min(n, pgOff(miss[free-1]+1)-off)
		short = ErrNoSpace
	}
	for q := off / pg; q < ceilPage(off+n); q++ {
		b.alloc[q] = true
		b.dpg[q] = true
	}
	b.grow(off + n)
	b.put(p[:n], off)
	return n, short
}

func (m *mstore) write(b *mblob, p []byte, off int64) (int64, error) {
	switch {
	case off < 0:
		return 0, ErrInvalid
	case len(p) == 0:
		return 0, nil
	case off >= m.maxFile:
		return 0, ErrTooBig
	}
	var short error
	if int64(len(p)) > m.maxFile-off {
		p = p[:m.maxFile-off]
		short = ErrTooBig
	}
	n, err := m.writeBytes(b, p, off)
	if err != nil {
		return n, err
	}
	return n, short
}

// zeroBytes makes [off, end) read as zeros: whole pages are freed.
func (m *mstore) zeroBytes(b *mblob, off, end int64) {
	for q := ceilPage(off); q < end/pg; q++ {
		delete(b.alloc, q)
		delete(b.dpg, q)
	}
	b.clearBytes(off, min(end, b.size()))
}

func (m *mstore) truncate(b *mblob, size int64) error {
	switch {
	case size < 0:
		return ErrInvalid
	case size > m.maxFile:
		return ErrTooBig
	case size > b.size():
		b.grow(size)
		return nil
	}
	b.setSize(size)
	for q := range b.alloc {
		if q >= ceilPage(size) {
			delete(b.alloc, q)
			delete(b.dpg, q)
		}
	}
	return nil
}

func (m *mstore) rangeArgs(off, n int64) error {
	switch {
	case off < 0 || n <= 0:
		return ErrInvalid
	case off > m.maxFile-n:
		return ErrTooBig
	}
	return nil
}

func (m *mstore) punch(b *mblob, off, n int64) error {
	if err := m.rangeArgs(off, n); err != nil {
		return err
	}
	m.zeroBytes(b, off, off+n)
	return nil
}

func (m *mstore) allocAll(b *mblob, ps, pe int64) error {
	miss := m.missing(b, ps, pe)
	if free := m.freePages(); free >= 0 && int64(len(miss)) > free {
		return ErrNoSpace
	}
	for _, q := range miss {
		b.alloc[q] = true
	}
	return nil
}

func (m *mstore) allocate(b *mblob, off, n int64, keep bool) error {
	if err := m.rangeArgs(off, n); err != nil {
		return err
	}
	// Pages an earlier allocate reserved become data, as on tmpfs.
	var again []int64
	for q := off / pg; q < ceilPage(off+n); q++ {
		if b.alloc[q] && !b.dpg[q] {
			again = append(again, q)
		}
	}
	if err := m.allocAll(b, off/pg, ceilPage(off+n)); err != nil {
		return err
	}
	for _, q := range again {
		b.dpg[q] = true
	}
	if !keep {
		b.grow(off + n)
	}
	return nil
}

func (m *mstore) zero(b *mblob, off, n int64, keep bool) error {
	if err := m.rangeArgs(off, n); err != nil {
		return err
	}
	end := off + n
	if err := m.allocAll(b, off/pg, ceilPage(end)); err != nil {
		return err
	}
	for q := ceilPage(off); q < end/pg; q++ {
		delete(b.dpg, q)
	}
	b.clearBytes(off, min(end, b.size()))
	if !keep {
		b.grow(end)
	}
	return nil
}

func (m *mstore) copyFrom(dst, src *mblob, srcOff, dstOff, n int64) (int64, error) {
	const maxInt64 = 1<<63 - 1
	switch {
	case srcOff < 0 || dstOff < 0 || n < 0:
		return 0, ErrInvalid
	case srcOff > maxInt64-n || dstOff > maxInt64-n:
		return 0, ErrTooBig
	}
	n = max(0, min(n, src.size()-srcOff))
	if dstOff >= m.maxFile {
		return 0, ErrTooBig
	}
	n = min(n, m.maxFile-dstOff)
	if src == dst && dstOff+n > srcOff && dstOff < srcOff+n {
		return 0, ErrInvalid
	}
	var done int64
	var err error
	for done < n && err == nil {
		sp, dp := srcOff+done, dstOff+done
		q := sp / pg
		end := q + 1
		for pgOff(end) < srcOff+n && src.dpg[end] == src.dpg[q] {
			end++
		}
		c := min(n-done, pgOff(end)-sp)
		if src.dpg[q] {
			c, err = m.writeBytes(dst, src.read(sp, c), dp)
		} else {
			m.zeroBytes(dst, dp, dp+c)
		}
		done += c
	}
	if done > 0 {
		dst.grow(dstOff + done)
	}
	return done, err
}

func (m *mstore) seekData(b *mblob, off int64) (int64, error) {
	if off < 0 || off >= b.size() {
		return 0, ErrNoData
	}
	// The first data page at or after off's (data pages lie below size).
	first := int64(-1)
	for q := range b.dpg {
		if q >= off/pg && (first < 0 || q < first) {
			first = q
		}
	}
	if first < 0 || first*pg >= b.size() {
		return 0, ErrNoData
	}
	return max(off, first*pg), nil
}

func (m *mstore) seekHole(b *mblob, off int64) (int64, error) {
	if off < 0 || off >= b.size() {
		return 0, ErrNoData
	}
	for q := off / pg; ; q++ {
		if !b.dpg[q] || pgOff(q) >= b.size() {
			return min(b.size(), max(off, pgOff(q))), nil
		}
	}
}

// An op is one step of a model run.
type op struct {
	kind      int
	blob, src int
	off, off2 int64
	n         int64
	keep      bool
	seed      byte
}

const (
	opWrite = iota
	opRead
	opTruncate
	opPunch
	opZero
	opAllocate
	opCopy
	opSync
	opFree
	nOps
)

func (o op) String() string {
	names := [...]string{"write", "read", "truncate", "punch", "zero", "allocate", "copy", "sync", "free"}
	return fmt.Sprintf("%s(blob %d, src %d, off %d, off2 %d, n %d, keep %v)", names[o.kind], o.blob, o.src, o.off, o.off2, o.n, o.keep)
}

// offset picks an offset from a few bytes: near page and window
// boundaries, anywhere in the span, occasionally far or negative, or near
// math.MaxInt64.
func offset(sel, a, b byte) int64 {
	v := int64(a)<<8 | int64(b)
	if sel%8 == 7 && a&1 == 0 {
		return topOffset(a, b)
	}
	switch sel % 8 {
	case 0, 1, 2:
		return v % modelSpan
	case 3:
		return (v%40)*pg + int64(int8(b))%3 // near a page boundary
	case 4:
		return (v%20)*win + int64(int8(a))%3 // near a window boundary
	case 5:
		return (v % 40) * pg
	case 6:
		if b%16 == 0 {
			return -1 - int64(a)
		}
		return v % (modelSpan + 8*pg)
	default:
		return v % 64
	}
}

// topOffset picks an offset in the last modelTopSpan bytes: near the end,
// at the last pages' boundaries, anywhere, or near the last mappable byte.
func topOffset(a, b byte) int64 {
	const last = math.MaxInt64 &^ (pg - 1) // start of the last page
	v := int64(a)<<8 | int64(b)
	switch b % 4 {
	case 0:
		return math.MaxInt64 - int64(b>>2)
	case 1:
		return last - (v%7)*pg
	case 2:
		return math.MaxInt64 - v%modelTopSpan
	default:
		return last + int64(int8(a))%3
	}
}

func length(sel, a, b byte) int64 {
	v := int64(a)<<8 | int64(b)
	switch sel % 6 {
	case 0:
		return v % 64
	case 1, 2:
		return v % (3 * pg)
	case 3:
		return (v%4 + 1) * pg
	case 4:
		if b%32 == 0 {
			return -int64(a)
		}
		return v % (3 * win)
	default:
		return v % 10
	}
}

// opKinds weighs the ops: writes and copies often, frees rarely.
var opKinds = [...]int{
	opWrite, opWrite, opWrite, opWrite, opRead, opRead, opTruncate, opTruncate,
	opPunch, opPunch, opZero, opZero, opAllocate, opCopy, opCopy, opCopy,
	opSync, opWrite, opPunch, opAllocate, opRead, opCopy, opTruncate, opFree,
}

// decodeOps turns bytes into ops, 9 bytes each.
func decodeOps(data []byte) []op {
	var ops []op
	for len(data) >= 9 {
		d := data[:9]
		data = data[9:]
		o := op{
			kind: opKinds[d[0]%uint8(len(opKinds))],
			blob: int(d[1]) % modelBlobs,
			src:  int(d[1]>>4) % modelBlobs,
			off:  offset(d[2], d[3], d[4]),
			off2: offset(d[2]>>3, d[5], d[4]),
			n:    length(d[6], d[7], d[8]),
			keep: d[6]&0x80 != 0,
			seed: d[8],
		}
		if o.kind == opTruncate {
			if o.off > math.MaxInt64-o.n/2 {
				o.off = math.MaxInt64
			} else {
				o.off = max(-1, o.off+o.n/2)
			}
		}
		ops = append(ops, o)
	}
	return ops
}

func randomOps(r *rand.Rand, n int) []op {
	data := make([]byte, 9*n)
	for i := range data {
		data[i] = byte(r.Uint32())
	}
	return decodeOps(data)
}

// runModel applies ops to a store and to the model and fails t at the
// first difference. With checkEach, Store.Check runs after every op too.
func runModel(t *testing.T, opts Options, ops []op, checkEach bool) {
	s := newStore(t, opts)
	m := &mstore{limit: opts.SizeLimit, maxFile: s.MaxFileSize()}
	blobs := make([]*Blob, modelBlobs)
	for i := range blobs {
		blobs[i] = mustCreate(t, s)
		m.blobs = append(m.blobs, newMblob())
	}
	for i, o := range ops {
		err := stepModel(s, m, blobs, o)
		if err == nil {
			err = compareModel(s, m, blobs, true)
		}
		if err == nil && checkEach {
			err = s.Check()
		}
		if err != nil {
			t.Fatalf("op %d %v: %v", i, o, err)
		}
		if modelTrace != nil {
			modelTrace(o)
		}
	}
}

// stepModel applies o to the blobs and to the model, and says how their
// results differ.
func stepModel(s *Store, m *mstore, blobs []*Blob, o op) error {
	b, mb := blobs[o.blob], m.blobs[o.blob]
	sameErr := func(got, want error) bool {
		if want == nil || got == nil {
			return got == want
		}
		return errors.Is(got, want)
	}
	switch o.kind {
	case opWrite:
		p := pattern(int(max(0, o.n)), o.seed)
		n, err := b.WriteAt(p, o.off)
		wn, werr := m.write(mb, p, o.off)
		if int64(n) != wn || !sameErr(err, werr) {
			return fmt.Errorf("WriteAt = %d, %v; model %d, %v", n, err, wn, werr)
		}
	case opRead:
		p := bytes.Repeat([]byte{0xee}, int(max(0, o.n)))
		n, err := b.ReadAt(p, o.off)
		var want []byte
		var werr error
		switch {
		case o.off < 0:
			werr = ErrInvalid
		case len(p) == 0:
		case o.off >= mb.size():
			werr = io.EOF
		default:
			want = mb.read(o.off, min(mb.size()-o.off, int64(len(p))))
			if len(want) < len(p) {
				werr = io.EOF
			}
		}
		if n != len(want) || err != werr || !bytes.Equal(p[:n], want) {
			return fmt.Errorf("ReadAt = %d, %v; model %d, %v (or bytes differ)", n, err, len(want), werr)
		}
		vn, vb, verr := readView(b, int(max(0, o.n)), o.off)
		if vn != len(want) || verr != werr || !bytes.Equal(vb, want) {
			return fmt.Errorf("ReadView = %d, %v; model %d, %v (or bytes differ)", vn, verr, len(want), werr)
		}
	case opTruncate:
		if err, werr := b.Truncate(o.off), m.truncate(mb, o.off); !sameErr(err, werr) {
			return fmt.Errorf("Truncate = %v; model %v", err, werr)
		}
	case opPunch:
		if err, werr := b.PunchHole(o.off, o.n), m.punch(mb, o.off, o.n); !sameErr(err, werr) {
			return fmt.Errorf("PunchHole = %v; model %v", err, werr)
		}
	case opZero:
		if err, werr := b.ZeroRange(o.off, o.n, o.keep), m.zero(mb, o.off, o.n, o.keep); !sameErr(err, werr) {
			return fmt.Errorf("ZeroRange = %v; model %v", err, werr)
		}
	case opAllocate:
		if err, werr := b.Allocate(o.off, o.n, o.keep), m.allocate(mb, o.off, o.n, o.keep); !sameErr(err, werr) {
			return fmt.Errorf("Allocate = %v; model %v", err, werr)
		}
	case opCopy:
		src := o.src % len(blobs)
		n, err := b.CopyFrom(blobs[src], o.off2, o.off, o.n)
		wn, werr := m.copyFrom(mb, m.blobs[src], o.off2, o.off, o.n)
		if n != wn || !sameErr(err, werr) {
			return fmt.Errorf("CopyFrom = %d, %v; model %d, %v", n, err, wn, werr)
		}
	case opSync:
		if err := b.Sync(max(0, o.off), max(0, o.n)); err != nil {
			return fmt.Errorf("Sync = %v", err)
		}
	case opFree:
		if err := b.Free(); err != nil {
			return fmt.Errorf("Free = %v", err)
		}
		nb, err := s.Create()
		if err != nil {
			return err
		}
		blobs[o.blob] = nb
		m.blobs[o.blob] = newMblob()
	}
	return nil
}

// sameDataPages says how the data pages of b differ from the model's.
func sameDataPages(b *Blob, mb *mblob) error {
	var want extents
	for q := range mb.dpg {
		want.add(q, q+1)
	}
	b.mu.RLock()
	defer b.mu.RUnlock()
	if !slices.Equal(b.data.es, want.es) {
		return fmt.Errorf("data pages %v, model %v", clip(b.data.es), clip(want.es))
	}
	return nil
}

// seekOffsets returns the offsets compareModel seeks from: every half page
// where ops go, and around size.
func seekOffsets(size int64) []int64 {
	var offs []int64
	for off := int64(-1); off <= min(size, modelLow)+pg; off += pg / 2 {
		offs = append(offs, off)
	}
	if size > modelTop {
		for off := int64(max(modelLow, modelTop-pg)); off < size && off >= 0; off += pg / 2 {
			offs = append(offs, off) // stops at size, or if off wraps
		}
	}
	offs = append(offs, size-1, size)
	if size <= math.MaxInt64-pg {
		offs = append(offs, size+pg)
	}
	return offs
}

// compareModel says how the blobs differ from the model. With whole, the
// model covers the whole store: Used and the cache bounds are compared too.
func compareModel(s *Store, m *mstore, blobs []*Blob, whole bool) error {
	for i, b := range blobs {
		mb := m.blobs[i]
		if b.Size() != mb.size() {
			return fmt.Errorf("blob %d: size %d, model %d", i, b.Size(), mb.size())
		}
		if b.Allocated() != int64(len(mb.alloc))*pg {
			return fmt.Errorf("blob %d: allocated %d, model %d", i, b.Allocated(), int64(len(mb.alloc))*pg)
		}
		if err := sameDataPages(b, mb); err != nil {
			return fmt.Errorf("blob %d: %v", i, err)
		}
		// The contents where ops go: below modelLow and near the top.
		// Between them there is no data (sameDataPages), so zeros.
		size := mb.size()
		for _, r := range [][2]int64{{0, min(size, modelLow)}, {max(modelLow, modelTop), size}} {
			if r[0] >= r[1] {
				continue
			}
			got := bytes.Repeat([]byte{0xee}, int(r[1]-r[0]))
			if n, err := b.ReadAt(got, r[0]); n != len(got) || (err != nil && err != io.EOF) {
				return fmt.Errorf("blob %d: ReadAt(%d bytes, %d) = %d, %v", i, len(got), r[0], n, err)
			}
			if want := mb.read(r[0], r[1]-r[0]); !bytes.Equal(got, want) {
				at := 0
				for at < len(got) && got[at] == want[at] {
					at++
				}
				return fmt.Errorf("blob %d: contents differ at %d", i, r[0]+int64(at))
			}
		}
		for _, off := range seekOffsets(size) {
			d, err := b.SeekData(off)
			wd, werr := m.seekData(mb, off)
			if d != wd || err != werr {
				return fmt.Errorf("blob %d: SeekData(%d) = %d, %v; model %d, %v", i, off, d, err, wd, werr)
			}
			h, err := b.SeekHole(off)
			wh, werr := m.seekHole(mb, off)
			if h != wh || err != werr {
				return fmt.Errorf("blob %d: SeekHole(%d) = %d, %v; model %d, %v", i, off, h, err, wh, werr)
			}
		}
	}
	if !whole {
		return nil
	}
	st := s.Stats()
	if st.Used != m.usedPages()*pg {
		return fmt.Errorf("used %d, model %d", st.Used, m.usedPages()*pg)
	}
	if st.Windows > s.maxWins || st.FDs > s.maxFDs {
		return fmt.Errorf("caches over their bounds: %+v", st)
	}
	return nil
}

// modelOpts returns small windows and caches, with a size limit and with a
// maximum file size that cuts the last window short if asked.
func modelOpts(limit, smallMax bool) Options {
	o := smallOpts()
	if limit {
		o.SizeLimit = 24*pg + 100
	}
	if smallMax {
		o.MaxFileSize = 36*pg + 123
	}
	return o
}

func TestModel(t *testing.T) {
	rounds, steps := 12, 250
	if testing.Short() {
		rounds = 4
	}
	for round := range rounds {
		limit, smallMax := round%3 == 2, round%4 == 1
		t.Run(fmt.Sprintf("seed%d/limit=%v/smallmax=%v", round, limit, smallMax), func(t *testing.T) {
			r := rand.New(rand.NewPCG(uint64(round), 42))
			runModel(t, modelOpts(limit, smallMax), randomOps(r, steps), false)
		})
	}
}

// TestModelCheckEachStep runs Check after every step, so that the store
// files are compared with the page sets each time.
func TestModelCheckEachStep(t *testing.T) {
	for round := range 4 {
		t.Run(fmt.Sprint(round), func(t *testing.T) {
			r := rand.New(rand.NewPCG(7, uint64(round)))
			runModel(t, modelOpts(round%2 == 1, round == 2), randomOps(r, 150), true)
		})
	}
}

// modelTrace, if set, sees every op run by runModel.
var modelTrace func(op)

// FuzzModel runs the shadow model on ops decoded from the input (9 bytes
// an op, at most 48 ops), with Check after every op.
func FuzzModel(f *testing.F) {
	r := rand.New(rand.NewPCG(3, 4))
	for range 8 {
		data := make([]byte, 9*12)
		for i := range data {
			data[i] = byte(r.Uint32())
		}
		f.Add(data)
	}
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, data []byte) {
		if len(data) > 9*48 {
			data = data[:9*48]
		}
		limit := len(data) > 0 && data[0]&0x40 != 0
		smallMax := len(data) > 0 && data[0]&0x20 != 0
		runModel(t, modelOpts(limit, smallMax), decodeOps(data), true)
	})
}
