package main

// The worker's model of what it owns on the mount: the full contents and
// xattrs of each of its files, its regions of the shared files and its
// names in the shared directory. The operations change the model only
// through the methods here, after the call on the mount succeeded; the
// checks compare what the mount returns with it.

import "strings"

// A wfile is the model of one of the worker's regular files.
type wfile struct {
	rel    string            // path under the worker's directory
	data   []byte            // the whole contents
	xattrs map[string][]byte // the user.* attributes
	idx    int               // index in model.files
}

// newWfile returns the model of a new file at rel holding data.
func newWfile(rel string, data []byte) *wfile {
	f := &wfile{rel: rel, xattrs: map[string][]byte{}}
	f.data = data
	return f
}

// A model is the state of everything a worker owns.
type model struct {
	files  []*wfile          // the regular files, in no order
	byName map[string]*wfile // the same by path

	sharedData [sharedFiles][]byte // the worker's region of each shared file; nil: never written
	sharedDir  map[string]bool     // the worker's names in shared/dir
}

// newModel returns the model of an empty directory.
func newModel() model {
	return model{byName: map[string]*wfile{}, sharedDir: map[string]bool{}}
}

// add records the new file f.
func (m *model) add(f *wfile) {
	f.idx = len(m.files)
	m.files = append(m.files, f)
	m.byName[f.rel] = f
}

// remove forgets the file f (unlinked, or renamed over).
func (m *model) remove(f *wfile) {
	last := m.files[len(m.files)-1]
	m.files[f.idx] = last
	last.idx = f.idx
	m.files = m.files[:len(m.files)-1]
	delete(m.byName, f.rel)
}

// rename moves f to the path to, which replaced victim (nil if to was free).
func (m *model) rename(f *wfile, to string, victim *wfile) {
	if victim != nil {
		m.remove(victim)
	}
	m.remove(f)
	f.rel = to
	m.add(f)
}

// namesIn returns the names of the files in the worker's directory dir, in
// no order.
func (m *model) namesIn(dir string) []string {
	var names []string
	for _, f := range m.files {
		if strings.HasPrefix(f.rel, dir+"/") {
			names = append(names, f.rel[len(dir)+1:])
		}
	}
	return names
}

// adopt makes data, what the file was found to hold, its model: after a
// mismatch is reported, so that one fault is reported once.
func (f *wfile) adopt(data []byte) { f.data = data }

// grow extends f with zeros to end bytes, if it is shorter.
func grow(f *wfile, end int) {
	if end > len(f.data) {
		f.data = append(f.data, make([]byte, end-len(f.data))...)
	}
}

// writeAt writes b at off, growing f as a write past its end does.
func (f *wfile) writeAt(off int, b []byte) {
	grow(f, off+len(b))
	copy(f.data[off:], b)
}

// append writes b at the end of f.
func (f *wfile) append(b []byte) { f.data = append(f.data, b...) }

// truncate makes f size bytes long.
func (f *wfile) truncate(size int) {
	if size < len(f.data) {
		f.data = f.data[:size:size]
	} else {
		grow(f, size)
	}
}

// fallocate is fallocate(2) of n bytes at off: zero (PUNCH_HOLE or
// ZERO_RANGE) zeros what of the range f has; without keepSize (KEEP_SIZE)
// f grows to the range's end.
func (f *wfile) fallocate(off, n int, zero, keepSize bool) {
	end := off + n
	if zero {
		lim := min(end, len(f.data))
		for i := off; i < lim; i++ {
			f.data[i] = 0
		}
	}
	if !keepSize {
		grow(f, end)
	}
}

// setXattr sets the attribute name of f to v.
func (f *wfile) setXattr(name string, v []byte) { f.xattrs[name] = v }

// removeXattr removes the attribute name of f.
func (f *wfile) removeXattr(name string) { delete(f.xattrs, name) }

// region returns the model of the worker's region of shared file k, which
// starts as zeros when it is first written.
func (m *model) region(k int) []byte {
	if m.sharedData[k] == nil {
		m.sharedData[k] = make([]byte, regionSize)
	}
	return m.sharedData[k]
}

// writeRegion writes b at off of the worker's region of shared file k.
func (m *model) writeRegion(k, off int, b []byte) { copy(m.region(k)[off:], b) }

// addSharedName records the worker's new name in shared/dir.
func (m *model) addSharedName(name string) { m.sharedDir[name] = true }

// removeSharedName forgets the worker's name in shared/dir.
func (m *model) removeSharedName(name string) { delete(m.sharedDir, name) }
