package main

// What the worker knows of what it owns on the mount. Its directory w<ID>
// is an fsmodel.FS, which holds the contents and xattrs of each file; the
// worker keeps its files in a slice as well, for the random picks. Its
// regions of the shared files and its names in the shared directory are
// its own. The operations change the model after the call on the mount
// succeeded; the checks compare what the mount returns with it.

import (
	"mmapfs/internal/fsmodel"

	"golang.org/x/sys/unix"
)

// A wfile is one of the worker's regular files.
type wfile struct {
	rel string        // path under the worker's directory
	n   *fsmodel.Node // its node in model.m
	idx int           // index in model.files
}

// A model is the state of everything a worker owns.
type model struct {
	m     *fsmodel.FS // the worker's directory
	files []*wfile    // the regular files of m, in no order

	sharedData [sharedFiles][]byte // the worker's region of each shared file; nil: never written
	sharedDir  map[string]bool     // the worker's names in shared/dir
}

// newModel returns the model of an empty directory in which files are
// created under umask.
func newModel(umask uint32) model {
	return model{m: fsmodel.New(0o755, umask), sharedDir: map[string]bool{}}
}

// processUmask returns the umask of the process, which it leaves as it
// was. It must be called before other goroutines create files.
func processUmask() uint32 {
	u := unix.Umask(0)
	unix.Umask(u)
	return uint32(u)
}

// create records the new empty file rel (mode 0644) and returns it.
func (s *model) create(rel string) (*wfile, unix.Errno) {
	n, e := s.m.Create(rel, 0o644)
	if e != 0 {
		return nil, e
	}
	f := &wfile{rel: rel, n: n}
	s.keep(f)
	return f, 0
}

// keep adds f to the files to pick.
func (s *model) keep(f *wfile) {
	f.idx = len(s.files)
	s.files = append(s.files, f)
}

// forget drops f from the files to pick.
func (s *model) forget(f *wfile) {
	last := s.files[len(s.files)-1]
	s.files[f.idx] = last
	last.idx = f.idx
	s.files = s.files[:len(s.files)-1]
}

// unlink removes the file f.
func (s *model) unlink(f *wfile) unix.Errno {
	e := s.m.Unlink(f.rel)
	if e == 0 {
		s.forget(f)
	}
	return e
}

// rename moves f to the path to, which replaced victim (nil if to was
// free). f moves to the end of the files to pick.
func (s *model) rename(f *wfile, to string, victim *wfile) unix.Errno {
	if e := s.m.Rename(f.rel, to, 0); e != 0 {
		return e
	}
	if victim != nil {
		s.forget(victim)
	}
	s.forget(f)
	f.rel = to
	s.keep(f)
	return 0
}

// region returns the model of the worker's region of shared file k, which
// starts as zeros when it is first written.
func (s *model) region(k int) []byte {
	if s.sharedData[k] == nil {
		s.sharedData[k] = make([]byte, regionSize)
	}
	return s.sharedData[k]
}

// writeRegion writes b at off of the worker's region of shared file k.
func (s *model) writeRegion(k, off int, b []byte) { copy(s.region(k)[off:], b) }

// addSharedName records the worker's new name in shared/dir.
func (s *model) addSharedName(name string) { s.sharedDir[name] = true }

// removeSharedName forgets the worker's name in shared/dir.
func (s *model) removeSharedName(name string) { delete(s.sharedDir, name) }
