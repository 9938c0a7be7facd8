package control

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"strconv"
	"time"

	"golang.org/x/sys/unix"

	"mmapfs/internal/mountinfo"
)

// Mount is an mmapfs mount as a command finds it.
type Mount struct {
	Mountpoint string
	Dev        uint64
	Owner      uint32 // user_id of the FUSE mount
	Entry      mountinfo.Entry
}

// FindMount returns the mmapfs mount that path is on, or says in one line
// why path is not on one.
func FindMount(path string) (*Mount, error) {
	var st unix.Stat_t
	if err := unix.Stat(path, &st); err != nil {
		if errors.Is(err, unix.ENOTCONN) {
			return nil, fmt.Errorf("%s: the server of this mount is gone (unmount it with fusermount3 -u -z %s)", path, path)
		}
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	e, ok, err := mountinfo.OfDev(st.Dev)
	if err != nil {
		return nil, fmt.Errorf("reading the mount table: %w", err)
	}
	if !ok {
		return nil, fmt.Errorf("%s: no mount of its device %s in /proc/self/mountinfo", path, mountinfo.DevString(st.Dev))
	}
	if e.FsType != "fuse.mmapfs" {
		return nil, fmt.Errorf("%s is not on an mmapfs mount (it is on %s, a %s filesystem)", path, e.Mountpoint, e.FsType)
	}
	m := &Mount{Mountpoint: e.Mountpoint, Dev: st.Dev, Entry: e}
	if v, ok := e.SuperOption("user_id"); ok {
		if n, err := strconv.ParseUint(v, 10, 32); err == nil {
			m.Owner = uint32(n)
		}
	}
	return m, nil
}

// Ask sends req to the server of mount m and returns its response. An
// error says in one line why there is none; a response may still carry
// the server's refusal (Response.Error).
func Ask(m *Mount, req Request) (*Response, error) {
	addr := &net.UnixAddr{Name: Address(m.Dev), Net: "unix"}
	c, err := net.DialUnix("unix", nil, addr)
	if err != nil {
		if errors.Is(err, unix.ECONNREFUSED) || errors.Is(err, unix.ENOENT) {
			return nil, fmt.Errorf("the server of %s does not answer on its control socket (it is older than this command, or in another network namespace)", m.Mountpoint)
		}
		return nil, fmt.Errorf("the server of %s: %w", m.Mountpoint, err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(ioTimeout))
	// Anyone may listen on an abstract name: talk only to a server run by
	// root or by the mount's owner.
	cred, err := peerCred(c)
	if err != nil {
		return nil, fmt.Errorf("the server of %s: %w", m.Mountpoint, err)
	}
	if cred.Uid != 0 && cred.Uid != m.Owner {
		return nil, fmt.Errorf("the control socket of %s is held by uid %d (pid %d), who neither owns the mount nor is root: not asking it", m.Mountpoint, cred.Uid, cred.Pid)
	}
	if err := json.NewEncoder(c).Encode(&req); err != nil {
		return nil, fmt.Errorf("the server of %s: %w", m.Mountpoint, err)
	}
	line, err := bufio.NewReader(c).ReadBytes('\n')
	if err != nil {
		return nil, fmt.Errorf("the server of %s gave no answer: %w", m.Mountpoint, err)
	}
	var resp Response
	if err := json.Unmarshal(line, &resp); err != nil {
		return nil, fmt.Errorf("the server of %s: malformed answer: %w", m.Mountpoint, err)
	}
	return &resp, nil
}
