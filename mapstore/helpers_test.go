package mapstore

import (
	"bytes"
	"errors"
	"io"
	"os"
	"path/filepath"
	"testing"

	"go.uber.org/zap"
	"go.uber.org/zap/zaptest"
)

// testDir returns a store directory (not yet created) on /dev/shm if it is
// there, so that Check compares st_blocks exactly, or in the test's temp
// directory. MAPSTORE_TEST_NO_SHM=1 runs the tests on the temp directory's
// filesystem instead.
func testDir(t testing.TB) string {
	if st, err := os.Stat("/dev/shm"); err == nil && st.IsDir() && os.Getenv("MAPSTORE_TEST_NO_SHM") == "" {
		if d, err := os.MkdirTemp("/dev/shm", "mapstore-test-"); err == nil {
			t.Cleanup(func() { os.RemoveAll(d) })
			return filepath.Join(d, "store")
		}
	}
	return filepath.Join(t.TempDir(), "store")
}

// newStore opens a store for a test; at the end of the test it checks the
// store's invariants and closes it.
func newStore(t testing.TB, opts Options) *Store {
	t.Helper()
	if opts.Dir == "" {
		opts.Dir = testDir(t)
	}
	if opts.Logger == nil {
		opts.Logger = zaptest.NewLogger(t, zaptest.Level(zap.WarnLevel))
	}
	s, err := Open(opts)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(func() {
		if err := s.Check(); err != nil && !errors.Is(err, ErrClosed) {
			t.Errorf("Check at end of test: %v", err)
		}
		if err := s.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	return s
}

// smallOpts are options with small windows and caches, so that tests cross
// windows and evict.
func smallOpts() Options {
	return Options{WindowSize: 8 << 10, MaxWindows: 3, MaxFDs: 2}
}

func mustCreate(t testing.TB, s *Store) *Blob {
	t.Helper()
	b, err := s.Create()
	if err != nil {
		t.Fatalf("Create: %v", err)
	}
	return b
}

// pattern returns n bytes that differ with seed and position, never zero.
func pattern(n int, seed byte) []byte {
	p := make([]byte, n)
	for i := range p {
		p[i] = byte(i*7+int(seed)*13)%251 + 1
	}
	return p
}

func mustWrite(t testing.TB, b *Blob, p []byte, off int64) {
	t.Helper()
	if n, err := b.WriteAt(p, off); n != len(p) || err != nil {
		t.Fatalf("WriteAt(%d bytes, %d) = %d, %v", len(p), off, n, err)
	}
}

// readView reads n bytes at off with ReadView, into a buffer of its own
// filled with junk, and returns the view's length, its bytes joined and
// the error.
func readView(b *Blob, n int, off int64) (int, []byte, error) {
	buf := bytes.Repeat([]byte{0xdd}, n)
	v, err := b.ReadView(buf, off)
	if v == nil {
		return 0, nil, err
	}
	defer v.Release()
	return v.Len(), bytes.Join(v.Slices(), nil), err
}

// contents returns all of b, read with ReadAt.
func contents(t testing.TB, b *Blob) []byte {
	t.Helper()
	p := make([]byte, b.Size())
	for i := range p {
		p[i] = 0xee // holes must overwrite this
	}
	n, err := b.ReadAt(p, 0)
	if len(p) == 0 {
		return p
	}
	if n != len(p) || (err != nil && err != io.EOF) {
		t.Fatalf("ReadAt(all %d) = %d, %v", len(p), n, err)
	}
	return p
}

// readRange reads n bytes at off, which must all exist.
func readRange(t testing.TB, b *Blob, off int64, n int) []byte {
	t.Helper()
	p := make([]byte, n)
	for i := range p {
		p[i] = 0xee
	}
	if got, err := b.ReadAt(p, off); got != n || (err != nil && err != io.EOF) {
		t.Fatalf("ReadAt(%d, %d) = %d, %v", n, off, got, err)
	}
	return p
}

// maxFile is the maximum file size of a store made by newStore with
// MaxFileSize 0; TestMain sets it.
var maxFile int64

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "mapstore-main-")
	if err == nil && os.Getenv("MAPSTORE_TEST_NO_SHM") == "" {
		if d, err2 := os.MkdirTemp("/dev/shm", "mapstore-main-"); err2 == nil {
			os.RemoveAll(dir)
			dir = d
		}
	}
	if err != nil {
		panic(err)
	}
	s, err := Open(Options{Dir: filepath.Join(dir, "store")})
	if err != nil {
		panic(err)
	}
	maxFile = s.MaxFileSize()
	s.Close()
	os.RemoveAll(dir)
	os.Exit(m.Run())
}

// storePath returns the path of b's store file.
func storePath(s *Store, b *Blob) string { return filepath.Join(s.dir, b.name()) }

// fileSizeOf returns b's store file size as the blob records it.
func fileSizeOf(b *Blob) int64 {
	b.mu.RLock()
	defer b.mu.RUnlock()
	return b.fileSize
}
