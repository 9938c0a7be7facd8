package main

import (
	"errors"
	"fmt"
	"io"
	"path/filepath"
	"strings"

	"golang.org/x/sys/unix"

	"mmapfs/control"
)

// Remounting a live mount, as tmpfs's `mount -o remount,...` does: for a
// fuse.mmapfs mount, mount(8) runs the helper as for a mount, with
// `remount` among the options and the mount's present options (rw or ro,
// relatime, nosuid..., user_id=, group_id=, max_read=) before the new
// ones. The helper mounts nothing: it asks the live server to take the new
// limits (size=, nr_inodes=, huge=) and flags, and remounts the kernel's
// side itself (MS_REMOUNT), in the order that leaves nothing changed when
// either refuses. Options only a new mount takes (store=, mode=, uid=...)
// are those the mount was made with, as fstab gives them again: they are
// ignored, as tmpfs ignores what it cannot change.

// remountStatus is the exit status of a refused remount: mount(8)'s
// "mount failure", which mount(8) passes on, as for tmpfs.
const remountStatus = 32

// fuseKernelKeys are the options of the kernel's FUSE mount that mount(8)
// reads from the mount table and passes back at a remount.
var fuseKernelKeys = map[string]bool{
	"remount": true, "user_id": true, "group_id": true, "max_read": true,
	"allow_other": true, "blksize": true, "rootmode": true, "fd": true,
}

// isRemount reports whether args, as mount(8) runs the helper, ask for a
// remount.
func isRemount(args []string) bool {
	for i, a := range args {
		var o string
		switch {
		case a == "-o" && i+1 < len(args):
			o = args[i+1]
		case strings.HasPrefix(a, "-o") && !strings.HasPrefix(a, "--"):
			o = a[2:]
		default:
			continue
		}
		for _, kv := range strings.Split(o, ",") {
			if kv == "remount" {
				return true
			}
		}
	}
	return false
}

// withoutKernelKeys returns args with the options of fuseKernelKeys taken
// out of their -o values.
func withoutKernelKeys(args []string) []string {
	out := make([]string, 0, len(args))
	filter := func(o string) string {
		var keep []string
		for _, kv := range strings.Split(o, ",") {
			k, _, _ := strings.Cut(kv, "=")
			if !fuseKernelKeys[k] {
				keep = append(keep, kv)
			}
		}
		return strings.Join(keep, ",")
	}
	for i := 0; i < len(args); i++ {
		a := args[i]
		switch {
		case a == "-o" && i+1 < len(args):
			out = append(out, "-o", filter(args[i+1]))
			i++
		case strings.HasPrefix(a, "-o") && !strings.HasPrefix(a, "--"):
			out = append(out, "-o"+filter(a[2:]))
		default:
			out = append(out, a)
		}
	}
	return out
}

// remountRequest is what a remount asks for.
type remountRequest struct {
	Mountpoint string
	Change     control.Change
	Flags      uintptr // the per-mount flags after the remount
}

// parseRemount parses the arguments of the remount form.
func parseRemount(args []string, env sysEnv) (*remountRequest, error) {
	args = withoutKernelKeys(args)
	pos, items, err := scanArgs(args)
	if err != nil {
		return nil, err
	}
	o := defaultOptions(env)
	if err := applyItems(o, env, items); err != nil {
		return nil, err
	}
	if len(pos) != 2 {
		return nil, usagef("usage: mmapfs SOURCE MOUNTPOINT -o remount,OPTIONS (as mount(8) runs it)")
	}
	r := &remountRequest{Mountpoint: pos[1], Flags: o.MountFlags}
	flags := uint64(o.MountFlags)
	r.Change.MountFlags = &flags
	for _, it := range items {
		switch it.def.flag {
		case "size":
			r.Change.Size = &o.Size
		case "inodes":
			r.Change.Inodes = &o.Inodes
		case "huge":
			r.Change.Huge = &o.Huge
		}
	}
	return r, nil
}

// cmdRemount serves the remount form of the helper.
func cmdRemount(args []string, stderr io.Writer) int {
	r, err := parseRemount(args, currentSysEnv())
	if err != nil {
		fmt.Fprintf(stderr, "mmapfs: %v\n", err)
		return 2
	}
	if err := remount(r); err != nil {
		fmt.Fprintf(stderr, "mmapfs: remount %s: %v\n", r.Mountpoint, err)
		return remountStatus
	}
	return 0
}

// kernelFlags are the per-mount flags a remount sets in the kernel.
const kernelFlags = unix.MS_RDONLY | unix.MS_NOSUID | unix.MS_NODEV | unix.MS_NOEXEC |
	unix.MS_NOATIME | unix.MS_NODIRATIME | unix.MS_STRICTATIME

// remount applies r: the kernel's flags and the server's change, each
// undone if the other refuses.
func remount(r *remountRequest) error {
	m, cur, err := findServer(r.Mountpoint)
	if err != nil {
		return err
	}
	mnt := m.Mountpoint
	if abs, err := filepath.Abs(r.Mountpoint); err == nil && abs != mnt {
		return fmt.Errorf("not a mount point (the mount is on %s)", mnt)
	}
	oldFlags := flagsOf(m.Entry.Options)
	kernel := func(flags uintptr) error {
		if err := unix.Mount("", mnt, "", unix.MS_REMOUNT|flags&kernelFlags, ""); err != nil {
			if errors.Is(err, unix.EBUSY) && flags&unix.MS_RDONLY != 0 {
				return errors.New("device or resource busy (a file is open for writing)")
			}
			return errors.New(errnoText(err))
		}
		return nil
	}
	undo := control.Change{MountFlags: ptr(uint64(oldFlags))}
	if r.Change.Size != nil {
		undo.Size = ptr(cur.SizeLimit)
	}
	if r.Change.Inodes != nil {
		undo.Inodes = ptr(cur.InodeLimit)
	}
	// Going read-only, the kernel first: it refuses while a file is open
	// for writing, and the server must not stop updating atime before
	// the mount is read-only. Otherwise the server first.
	kernelFirst := r.Flags&unix.MS_RDONLY != 0 && oldFlags&unix.MS_RDONLY == 0
	if kernelFirst {
		if err := kernel(r.Flags); err != nil {
			return err
		}
	}
	if err := change(m, r.Change); err != nil {
		if kernelFirst {
			kernel(oldFlags)
		}
		return err
	}
	if !kernelFirst {
		if err := kernel(r.Flags); err != nil {
			change(m, undo)
			return err
		}
	}
	return nil
}

// findServer returns the mmapfs mount of path and its server's figures.
func findServer(path string) (*control.Mount, *control.Stats, error) {
	m, err := control.FindMount(path)
	if err != nil {
		return nil, nil, err
	}
	resp, err := control.Ask(m, control.Request{Op: control.ReqStats})
	if err != nil {
		return nil, nil, err
	}
	if resp.Error != "" {
		return nil, nil, errors.New(resp.Error)
	}
	return m, resp.Stats, nil
}

// change asks the server of m to apply c.
func change(m *control.Mount, c control.Change) error {
	resp, err := control.Ask(m, control.Request{Op: control.ReqChange, Change: &c})
	if err != nil {
		return err
	}
	if resp.Error != "" {
		return errors.New(resp.Error)
	}
	return nil
}

// flagsOf reads the per-mount flags from the options of a mount table
// entry ("rw,nosuid,relatime").
func flagsOf(options string) uintptr {
	var f uintptr
	for _, o := range strings.Split(options, ",") {
		switch o {
		case "ro":
			f |= unix.MS_RDONLY
		case "nosuid":
			f |= unix.MS_NOSUID
		case "nodev":
			f |= unix.MS_NODEV
		case "noexec":
			f |= unix.MS_NOEXEC
		case "noatime":
			f |= unix.MS_NOATIME
		case "nodiratime":
			f |= unix.MS_NODIRATIME
		case "strictatime":
			f |= unix.MS_STRICTATIME
		}
	}
	return f
}

func ptr[T any](v T) *T { return &v }

// cmdResize runs `mmapfs resize MOUNTPOINT [SIZE] [--inodes N]`.
func cmdResize(args []string, stdout, stderr io.Writer) int {
	env := currentSysEnv()
	var (
		pos    []string
		c      control.Change
		usage  = "usage: mmapfs resize MOUNTPOINT [SIZE] [--inodes N]"
		failed = func(err error) int { fmt.Fprintf(stderr, "mmapfs: %v\n", err); return 2 }
	)
	for i := 0; i < len(args); i++ {
		a := args[i]
		switch {
		case a == "-h" || a == "--help" || a == "-help":
			fmt.Fprintln(stdout, usage)
			return 0
		case a == "--inodes" || a == "-inodes" || strings.HasPrefix(a, "--inodes=") || strings.HasPrefix(a, "-inodes="):
			_, v, ok := strings.Cut(a, "=")
			if !ok {
				if i+1 == len(args) {
					return failed(errors.New("--inodes needs a value"))
				}
				i++
				v = args[i]
			}
			n, err := parseCount(v)
			if err != nil {
				return failed(fmt.Errorf("invalid value %q for --inodes: %v", v, err))
			}
			c.Inodes = &n
		case strings.HasPrefix(a, "-") && a != "-":
			return failed(fmt.Errorf("unknown option %s (%s)", a, usage))
		default:
			pos = append(pos, a)
		}
	}
	switch {
	case len(pos) == 2:
		n, err := parseSize(pos[1], env)
		if err != nil {
			return failed(fmt.Errorf("invalid size %q: %v", pos[1], err))
		}
		c.Size = &n
	case len(pos) == 1 && c.Inodes != nil:
	default:
		return failed(errors.New(usage))
	}
	m, _, err := findServer(pos[0])
	if err == nil {
		err = change(m, c)
	}
	if err != nil {
		fmt.Fprintf(stderr, "mmapfs: resize %s: %v\n", pos[0], err)
		return 1
	}
	return 0
}
