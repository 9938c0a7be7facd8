package mapstore

import (
	"os"
	"unsafe"

	"golang.org/x/sys/unix"
)

// Figures are what the store holds now, for `mmapfs stats` and the
// metrics: the lent blobs and the caches of mappings and descriptors.
type Figures struct {
	Lent        int   // blobs lent now (Lend without its last Return)
	Windows     int   // mapped windows
	MappedBytes int64 // bytes of the mapped windows
	FDs         int   // open descriptors of store files
}

// Figures returns the store's figures now.
func (s *Store) Figures() Figures {
	s.mu.Lock()
	defer s.mu.Unlock()
	return Figures{Lent: len(s.loans), Windows: s.nwins, MappedBytes: s.mapped, FDs: s.nfds}
}

// span is the address range of a mapped window, as a number: a window
// may be unmapped while its residency is asked for, and no slice of it
// may outlive the mapping.
type span struct {
	addr uintptr
	len  int
}

// ResidentMapped returns the bytes of the mapped windows whose pages are
// resident in RAM (mincore(2)): what the server's mappings hold of the
// store files, not the pages of files only the kernel reads (passthrough)
// or no window maps. It takes Store.mu only to list the windows, at most
// MaxWindows of them; a window unmapped meanwhile counts nothing.
func (s *Store) ResidentMapped() int64 {
	s.mu.Lock()
	spans := make([]span, 0, s.nwins)
	for w := s.wins.next; w != &s.wins; w = w.next {
		if len(w.mem) > 0 {
			spans = append(spans, span{uintptr(unsafe.Pointer(&w.mem[0])), len(w.mem)})
		}
	}
	// Windows pinned outside the LRU list (mapped, not yet pushed) are
	// few and short-lived: they are left out.
	s.mu.Unlock()

	page := os.Getpagesize()
	var vec []byte
	var resident int64
	for _, sp := range spans {
		n := (sp.len + page - 1) / page
		if cap(vec) < n {
			vec = make([]byte, n)
		}
		vec = vec[:n]
		_, _, errno := unix.Syscall(unix.SYS_MINCORE, sp.addr, uintptr(sp.len), uintptr(unsafe.Pointer(&vec[0])))
		if errno != 0 {
			continue // unmapped meanwhile (ENOMEM)
		}
		for _, v := range vec {
			if v&1 != 0 {
				resident += int64(page)
			}
		}
	}
	return resident
}
