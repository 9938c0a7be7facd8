package fs

// Special is a FIFO, a socket or a device node. The kernel serves their
// I/O; the filesystem only keeps their attributes.
type Special struct {
	node
}
