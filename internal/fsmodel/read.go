package fsmodel

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"golang.org/x/sys/unix"
)

// handle is how Compare reaches a real node: by path (not following a
// final symlink), or by descriptor when fd >= 0.
type handle struct {
	path string
	fd   int
}

func (h handle) listxattr(buf []byte) (int, error) {
	if h.fd >= 0 {
		return unix.Flistxattr(h.fd, buf)
	}
	return unix.Llistxattr(h.path, buf)
}

func (h handle) getxattr(name string, buf []byte) (int, error) {
	if h.fd >= 0 {
		return unix.Fgetxattr(h.fd, name, buf)
	}
	return unix.Lgetxattr(h.path, name, buf)
}

// readXattrs returns the extended attributes of h whose names begin with
// prefix, with their values.
func readXattrs(h handle, prefix string) (map[string][]byte, error) {
	list, err := sized(h.listxattr)
	if err != nil {
		return nil, fmt.Errorf("listxattr: %w", err)
	}
	x := map[string][]byte{}
	for _, name := range strings.Split(string(list), "\x00") {
		if name == "" || !strings.HasPrefix(name, prefix) {
			continue
		}
		v, err := sized(func(buf []byte) (int, error) { return h.getxattr(name, buf) })
		if err != nil {
			return nil, fmt.Errorf("getxattr %s: %w", name, err)
		}
		x[name] = v
	}
	return x, nil
}

// sized calls get, a listxattr or getxattr, with a buffer large enough:
// first one of 4 KiB (most answers fit, and a call is a round trip to the
// server), then, on ERANGE, one of the size get says, until it fits.
func sized(get func(buf []byte) (int, error)) ([]byte, error) {
	buf := make([]byte, 4096)
	for {
		n, err := get(buf)
		if err == nil {
			return buf[:n], nil
		}
		if !errors.Is(err, unix.ERANGE) {
			return nil, err
		}
		if n, err = get(nil); err != nil {
			return nil, err
		}
		buf = make([]byte, n)
	}
}

// extents lists the data ranges below size of the file open as fd, with
// SEEK_DATA and SEEK_HOLE.
func extents(fd int, size int64) ([][2]int64, error) {
	var got [][2]int64
	for off := int64(0); off < size; {
		d, err := unix.Seek(fd, off, unix.SEEK_DATA)
		if errors.Is(err, unix.ENXIO) {
			break
		}
		if err != nil {
			return got, fmt.Errorf("lseek(%d, SEEK_DATA): %w", off, err)
		}
		h, err := unix.Seek(fd, d, unix.SEEK_HOLE)
		if err != nil {
			return got, fmt.Errorf("lseek(%d, SEEK_HOLE): %w", d, err)
		}
		if h <= d || len(got) > 100000 {
			return got, fmt.Errorf("lseek: SEEK_DATA %d then SEEK_HOLE %d", d, h)
		}
		got = append(got, [2]int64{d, h})
		off = h
	}
	return got, nil
}

// preadFull reads up to ln bytes at off, stopping early only at the end
// of the file.
func preadFull(fd int, off, ln int64) ([]byte, error) {
	buf := make([]byte, ln)
	var got int64
	for got < ln {
		k, err := unix.Pread(fd, buf[got:], off+got)
		if err != nil {
			return buf[:got], fmt.Errorf("pread %d at %d: %w", ln-got, off+got, err)
		}
		if k == 0 {
			break
		}
		got += int64(k)
	}
	return buf[:got], nil
}

// Settle makes what the tree at dir shows the data of every ambiguous
// node of the model (once Compare found that it agrees with them).
func (m *FS) Settle(dir string) error {
	for _, e := range m.Entries() {
		if !e.Node.ambiguous {
			continue
		}
		b, err := os.ReadFile(filepath.Join(dir, e.Path))
		if err != nil {
			return fmt.Errorf("settle %s: %w", PathName(e.Path), err)
		}
		e.Node.Settle(b)
	}
	return nil
}
