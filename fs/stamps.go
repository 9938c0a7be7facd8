package fs

import "time"

// The times of a node, by index into stamps.
const (
	tAtime = iota
	tMtime
	tCtime
	tBtime
	numTimes
)

// stamps holds a node's four times as seconds and nanoseconds apart: 48
// bytes where four time.Time take 96, every second a time.Time can hold
// kept (tmpfs takes any 64-bit second), none of its monotonic clock or
// location (attribute replies carry neither).
type stamps struct {
	sec  [numTimes]int64
	nsec [numTimes]uint32
}

// get returns time i.
func (s *stamps) get(i int) time.Time { return time.Unix(s.sec[i], int64(s.nsec[i])) }

// set sets time i to t.
func (s *stamps) set(i int, t time.Time) {
	s.sec[i], s.nsec[i] = t.Unix(), uint32(t.Nanosecond())
}

// setAll sets every time to t.
func (s *stamps) setAll(t time.Time) {
	for i := range numTimes {
		s.set(i, t)
	}
}
