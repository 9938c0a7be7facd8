package mapstore

import (
	"strconv"
)

// The files of a store directory, for the code that checks or recovers a
// store without opening it: how store files are named, and where a store
// file holds data.

// FileName returns the name of the store file of blob id: the id in 16
// lower-case hex digits.
func FileName(id uint64) string { return storeName(id) }

// ParseFileName returns the blob id a store file name stands for, and
// whether name is one (16 lower-case hex digits).
func ParseFileName(name string) (uint64, bool) {
	if len(name) != nameLen {
		return 0, false
	}
	for _, c := range name {
		if (c < '0' || c > '9') && (c < 'a' || c > 'f') {
			return 0, false
		}
	}
	id, err := strconv.ParseUint(name, 16, 64)
	return id, err == nil
}

// DataRanges calls fn for each range of data in the file open as fd below
// size, as lseek SEEK_DATA/SEEK_HOLE report them, in order.
func DataRanges(fd int, size int64, fn func(start, end int64)) error {
	return dataRanges(fd, size, fn)
}
