// Command mmapfs mounts a FUSE filesystem whose file data lives in
// memory-mapped store files: a tmpfs that an ordinary user can mount.
//
// Run `mmapfs --help` for the manual.
package main

import (
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
)

func main() {
	ready := takeReadyFD()
	os.Exit(run(os.Args, os.Stdout, os.Stderr, ready))
}

// run dispatches on the command. ready is not nil in the background
// process of a mount(8)-style invocation: it reports the mount done to the
// process that started it.
func run(argv []string, stdout, stderr io.Writer, ready func()) int {
	prog := filepath.Base(argv[0])
	args := argv[1:]
	// mount(8) runs /sbin/mount.fuse.mmapfs (or mount.mmapfs) SOURCE
	// MOUNTPOINT -o OPTIONS when that link exists.
	if prog == "mount.mmapfs" || strings.HasPrefix(prog, "mount.fuse.") || strings.HasPrefix(prog, "mount.fuseblk.") {
		return cmdHelper(args, stdout, stderr, ready)
	}
	if len(args) == 0 {
		fmt.Fprintln(stderr, "mmapfs: missing command (usage: mmapfs mount [options] MOUNTPOINT; see mmapfs --help)")
		return 2
	}
	switch args[0] {
	case "mount":
		return cmdMount(args[1:], stdout, stderr)
	case "fsck":
		return cmdFsck(args[1:], stdout, stderr)
	case "resize":
		return cmdResize(args[1:], stdout, stderr)
	case "stats":
		return cmdStats(args[1:], stdout, stderr)
	case "version", "--version", "-version", "-V":
		fmt.Fprint(stdout, versionText())
		return 0
	case "help", "--help", "-help", "-h":
		if len(args) == 2 && args[1] == "--man" {
			writeManPage(stdout)
			return 0
		}
		writeUsage(stdout)
		return 0
	}
	// mount.fuse3 runs `mmapfs SOURCE MOUNTPOINT -o OPTIONS` for
	// `mount -t fuse.mmapfs` and fstab lines of type fuse.mmapfs.
	// It puts SOURCE and MOUNTPOINT first; cmdHelper reports bad options.
	pos, _, err := scanArgs(args)
	if (err == nil && len(pos) == 2) || (len(args) >= 2 && !strings.HasPrefix(args[0], "-") && !strings.HasPrefix(args[1], "-")) {
		return cmdHelper(args, stdout, stderr, ready)
	}
	if strings.HasPrefix(args[0], "-") {
		if err != nil {
			fmt.Fprintf(stderr, "mmapfs: %v\n", err)
		} else {
			fmt.Fprintln(stderr, "mmapfs: missing command (usage: mmapfs mount [options] MOUNTPOINT; see mmapfs --help)")
		}
		return 2
	}
	fmt.Fprintf(stderr, "mmapfs: unknown command %q (commands: mount, fsck, stats, resize, version, help; see mmapfs --help)\n", args[0])
	return 2
}

// cmdHelper serves the mount(8) form: SOURCE MOUNTPOINT [-o OPTIONS]. Like
// other FUSE filesystems mounted this way it goes to the background once
// the filesystem is mounted, unless -f is given.
func cmdHelper(args []string, stdout, stderr io.Writer, ready func()) int {
	if isRemount(args) {
		return cmdRemount(args, stderr)
	}
	pos, _, err := scanArgs(args)
	if err == nil && len(pos) != 2 && !containsHelp(args) {
		fmt.Fprintln(stderr, "mmapfs: usage: mmapfs SOURCE MOUNTPOINT [-o OPTIONS] (as mount(8) runs it)")
		return 2
	}
	o, err := parseMountArgs(args, currentSysEnv())
	if err != nil {
		fmt.Fprintf(stderr, "mmapfs: %v\n", err)
		return 2
	}
	if o.Help {
		writeUsage(stdout)
		return 0
	}
	if o.Foreground || ready != nil {
		return serveMount(o, stderr, ready)
	}
	return startBackground(stderr)
}

func containsHelp(args []string) bool {
	for _, a := range args {
		if a == "-h" || a == "--help" || a == "-help" {
			return true
		}
	}
	return false
}
