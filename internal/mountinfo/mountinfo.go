// Package mountinfo reads the mount table of a process, as proc(5) gives
// it in /proc/PID/mountinfo.
package mountinfo

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

// Entry is one line of a mountinfo file.
type Entry struct {
	ID         string // mount ID
	Dev        string // MAJOR:MINOR of the filesystem
	Root       string // the directory of the filesystem mounted here
	Mountpoint string
	Options    string // per-mount options: "rw,nosuid,relatime"
	FsType     string // "fuse.mmapfs", "tmpfs", ...
	Source     string
	SuperOpts  string // per-filesystem options: "rw,user_id=0,group_id=0"
}

// SuperOption returns the value of key in the filesystem's options
// ("user_id" of a FUSE mount), and whether it is there.
func (e Entry) SuperOption(key string) (string, bool) {
	for _, kv := range strings.Split(e.SuperOpts, ",") {
		k, v, _ := strings.Cut(kv, "=")
		if k == key {
			return v, true
		}
	}
	return "", false
}

// Parse reads the format of a mountinfo file.
func Parse(r io.Reader) ([]Entry, error) {
	var out []Entry
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		// id parent major:minor root mountpoint options [optional...] - fstype source superoptions
		sep := -1
		for i := 6; i < len(f); i++ {
			if f[i] == "-" {
				sep = i
				break
			}
		}
		if len(f) < 6 || sep < 0 || sep+2 >= len(f) {
			return nil, fmt.Errorf("mountinfo: malformed line %q", sc.Text())
		}
		e := Entry{
			ID:         f[0],
			Dev:        f[2],
			Root:       Unescape(f[3]),
			Mountpoint: Unescape(f[4]),
			Options:    f[5],
			FsType:     f[sep+1],
			Source:     Unescape(f[sep+2]),
		}
		if sep+3 < len(f) {
			e.SuperOpts = f[sep+3]
		}
		out = append(out, e)
	}
	return out, sc.Err()
}

// Read reads the mountinfo file name ("/proc/self/mountinfo").
func Read(name string) ([]Entry, error) {
	data, err := os.ReadFile(name)
	if err != nil {
		return nil, err
	}
	return Parse(bytes.NewReader(data))
}

// OfDev returns the topmost mount of the filesystem of device dev in this
// process's mount table.
func OfDev(dev uint64) (Entry, bool, error) {
	entries, err := Read("/proc/self/mountinfo")
	if err != nil {
		return Entry{}, false, err
	}
	want := DevString(dev)
	for i := len(entries) - 1; i >= 0; i-- {
		if entries[i].Dev == want {
			return entries[i], true, nil
		}
	}
	return Entry{}, false, nil
}

// DevString is a device number as mountinfo writes it: "MAJOR:MINOR".
func DevString(dev uint64) string {
	return fmt.Sprintf("%d:%d", unix.Major(dev), unix.Minor(dev))
}

// Unescape undoes the octal escapes (\040 for a space, ...) the kernel
// writes into mountinfo.
func Unescape(s string) string {
	if !strings.Contains(s, `\`) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+4 <= len(s) {
			if n, err := strconv.ParseUint(s[i+1:i+4], 8, 8); err == nil {
				b.WriteByte(byte(n))
				i += 3
				continue
			}
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

// Escape writes path as the kernel writes it into mountinfo: a space, tab,
// newline and backslash as octal escapes (\040, \011, \012, \134), so
// that it is one field of a line. Unescape undoes it.
func Escape(path string) string {
	if !strings.ContainsAny(path, " \t\n\\") {
		return path
	}
	var b strings.Builder
	for i := 0; i < len(path); i++ {
		switch c := path[i]; c {
		case ' ', '\t', '\n', '\\':
			fmt.Fprintf(&b, "\\%03o", c)
		default:
			b.WriteByte(c)
		}
	}
	return b.String()
}
