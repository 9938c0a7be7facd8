package mapstore

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"testing"

	"golang.org/x/sys/unix"
)

// lendModel is the bytes of a blob: what every path, lent or not, must show.
type lendModel []byte

func (m *lendModel) setSize(n int64) {
	if n <= int64(len(*m)) {
		*m = (*m)[:n]
		return
	}
	*m = append(*m, make([]byte, n-int64(len(*m)))...)
}

func (m *lendModel) put(p []byte, off int64) {
	if e := off + int64(len(p)); e > int64(len(*m)) {
		m.setSize(e)
	}
	copy((*m)[off:], p)
}

func (m *lendModel) zero(off, end int64) {
	end = min(end, int64(len(*m)))
	if off < end {
		clear((*m)[off:end])
	}
}

// checkBlob compares the blob's size and bytes with the model.
func checkBlob(b *Blob, m lendModel) error {
	if got := b.Size(); got != int64(len(m)) {
		return fmt.Errorf("size %d, model %d", got, len(m))
	}
	got := make([]byte, len(m)+10)
	n, err := b.ReadAt(got, 0)
	if len(m) > 0 && (n != len(m) || !errors.Is(err, io.EOF)) {
		return fmt.Errorf("ReadAt = %d, %v; want %d, EOF", n, err, len(m))
	}
	if !bytes.Equal(got[:n], m) {
		at := 0
		for at < n && got[at] == m[at] {
			at++
		}
		return fmt.Errorf("bytes differ at %d", at)
	}
	if vn, vb, verr := readView(b, len(m)+10, 0); vn != n || verr != err || !bytes.Equal(vb, m) {
		return fmt.Errorf("ReadView = %d, %v; ReadAt %d, %v (or bytes differ)", vn, verr, n, err)
	}
	return nil
}

// TestLendRandom runs random operations on two blobs, through the store and,
// while a blob is lent, straight on its store file as the kernel would,
// lending and taking back at random, and compares the bytes with a model
// after every step. Check runs whenever neither blob is lent.
func TestLendRandom(t *testing.T) {
	for round := range 6 {
		t.Run(fmt.Sprint(round), func(t *testing.T) {
			s := newStore(t, smallOpts())
			r := rand.New(rand.NewPCG(uint64(round), 99))
			blobs := []*Blob{mustCreate(t, s), mustCreate(t, s)}
			models := []lendModel{nil, nil}
			fds := []int{-1, -1}
			const span = 40 * PageSize
			for step := range 400 {
				i := r.IntN(2)
				b, m := blobs[i], &models[i]
				off := r.Int64N(span)
				n := r.Int64N(3*PageSize) + 1
				var what string
				var err error
				switch k := r.IntN(10); {
				case k == 0:
					what = "lend/return"
					if fds[i] < 0 {
						fds[i], err = b.Lend(true)
					} else {
						err = b.Return()
						unix.Close(fds[i])
						fds[i] = -1
					}
				case k == 1 && fds[i] >= 0:
					what = "kernel pwrite"
					p := pattern(int(n), byte(step))
					_, err = unix.Pwrite(fds[i], p, off)
					m.put(p, off)
				case k <= 3:
					what = "write"
					p := pattern(int(n), byte(step))
					_, err = b.WriteAt(p, off)
					m.put(p, off)
				case k == 4:
					what = "truncate"
					err = b.Truncate(off)
					m.setSize(off)
				case k == 5:
					what = "punch"
					err = b.PunchHole(off, n)
					m.zero(off, off+n)
				case k == 6:
					keep := r.IntN(2) == 0
					what = fmt.Sprintf("zero keep=%v", keep)
					err = b.ZeroRange(off, n, keep)
					m.zero(off, off+n)
					if !keep && off+n > int64(len(*m)) {
						m.setSize(off + n)
					}
				case k == 7:
					keep := r.IntN(2) == 0
					what = fmt.Sprintf("allocate keep=%v", keep)
					err = b.Allocate(off, n, keep)
					if !keep && off+n > int64(len(*m)) {
						m.setSize(off + n)
					}
				case k == 8:
					what = "copy from the other"
					src, sm := blobs[1-i], models[1-i]
					soff := r.Int64N(span)
					var c int64
					c, err = b.CopyFrom(src, soff, off, n)
					want := max(0, min(n, int64(len(sm))-soff))
					if err == nil && c != want {
						err = fmt.Errorf("copied %d, want %d", c, want)
					}
					if want > 0 {
						m.put(append([]byte(nil), sm[soff:soff+want]...), off)
					}
				default:
					what = "sync"
					err = b.Sync(0, 0)
				}
				if err == nil {
					err = checkBlob(b, *m)
				}
				if err == nil && fds[0] < 0 && fds[1] < 0 {
					err = s.Check()
				}
				if u, a := s.Stats().Used, blobs[0].Allocated()+blobs[1].Allocated(); err == nil && s.tmpfs && u != a {
					err = fmt.Errorf("store Used %d, blobs hold %d", u, a)
				}
				if err != nil {
					t.Fatalf("step %d, blob %d (lent %v), %s off %d n %d: %v", step, i, fds[i] >= 0, what, off, n, err)
				}
			}
			if n := rereads.Load(); n != 0 && s.tmpfs {
				t.Errorf("%d returns found pages the loan did not follow", n)
			}
			for i := range blobs {
				if fds[i] >= 0 {
					if err := blobs[i].Return(); err != nil {
						t.Fatal(err)
					}
					unix.Close(fds[i])
				}
				if err := checkBlob(blobs[i], models[i]); err != nil {
					t.Fatalf("blob %d after return: %v", i, err)
				}
			}
		})
	}
}

// TestLendFileLength checks that a lent blob's store file ends at its size,
// that loans nest, and that the file grows back to a window on return.
func TestLendFileLength(t *testing.T) {
	s := newStore(t, smallOpts())
	b := mustCreate(t, s)
	mustWrite(t, b, pattern(5000, 1), 0)
	fd, err := b.Lend(true)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(fd)
	fd2, err := b.Lend(true)
	if err != nil {
		t.Fatalf("second Lend: %v", err)
	}
	unix.Close(fd2) // the kernel would hold its own reference
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil || st.Size != 5000 {
		t.Fatalf("lent store file: size %d, %v; want 5000", st.Size, err)
	}
	if _, err := unix.Pwrite(fd, []byte("tail"), 9000); err != nil {
		t.Fatal(err)
	}
	if got := b.Size(); got != 9004 {
		t.Fatalf("Size while lent = %d, want 9004", got)
	}
	if fst, ok, err := b.FileStat(); !ok || err != nil || fst.Size != 9004 {
		t.Fatalf("FileStat = %d, %v, %v", fst.Size, ok, err)
	}
	if err := b.Return(); err != nil || !b.Lent() {
		t.Fatalf("first Return: %v, lent %v; want still lent", err, b.Lent())
	}
	if err := b.Return(); err != nil || b.Lent() {
		t.Fatalf("second Return: %v, lent %v", err, b.Lent())
	}
	if err := b.Return(); !errors.Is(err, ErrInvalid) {
		t.Fatalf("Return of a blob not lent = %v, want ErrInvalid", err)
	}
	if _, ok, _ := b.FileStat(); ok {
		t.Fatal("FileStat ok after return")
	}
	// The store file keeps its length after the loan (a crash before the
	// server records the size leaves it the truth), until the blob grows.
	if err := unix.Fstat(fd, &st); err != nil || st.Size != 9004 {
		t.Fatalf("store file taken back: size %d, %v; want 9004", st.Size, err)
	}
	got := make([]byte, 9004)
	if n, err := b.ReadAt(got, 0); n != 9004 || err != nil && err != io.EOF {
		t.Fatalf("ReadAt after return = %d, %v", n, err)
	}
	want := append(append(pattern(5000, 1), make([]byte, 4000)...), "tail"...)
	if !bytes.Equal(got, want) {
		t.Fatal("ReadAt after return: wrong bytes")
	}
	mustWrite(t, b, []byte("more"), 9004)
	if want := s.fileTarget(pageOff(pageUp(9008))); unix.Fstat(fd, &st) != nil || st.Size != want {
		t.Fatalf("store file after growing: size %d; want whole windows, %d", st.Size, want)
	}
	if err := s.Check(); err != nil {
		t.Fatal(err)
	}
	if got, want := b.Allocated(), int64(3*PageSize); got != want {
		t.Fatalf("Allocated after return = %d, want %d (pages 0, 1 and 2)", got, want)
	}
}

// TestLendLimit checks that a store with a size limit does not lend, and
// that a blob freed while lent ends its loan.
func TestLendLimit(t *testing.T) {
	o := smallOpts()
	o.SizeLimit = 1 << 20
	s := newStore(t, o)
	if s.CanLend() {
		t.Fatal("CanLend with a size limit")
	}
	if _, err := mustCreate(t, s).Lend(true); !errors.Is(err, ErrNoLend) {
		t.Fatalf("Lend = %v, want ErrNoLend", err)
	}
	s2 := newStore(t, smallOpts())
	b := mustCreate(t, s2)
	fd, err := b.Lend(true)
	if err != nil {
		t.Fatal(err)
	}
	if err := b.Free(); err != nil {
		t.Fatal(err)
	}
	unix.Close(fd)
	if st := s2.Stats(); st.Used != 0 || st.Blobs != 0 {
		t.Fatalf("stats after freeing a lent blob: %+v", st)
	}
	if _, err := b.Lend(true); !errors.Is(err, ErrClosed) {
		t.Fatalf("Lend after Free = %v", err)
	}
}
