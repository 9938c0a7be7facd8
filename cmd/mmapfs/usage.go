package main

import (
	"fmt"
	"io"
	"strings"

	"mmapfs/store"
)

// manual is the text of --help. {{SIZE}} and {{INODES}} are the defaults
// on this machine.
const manual = `NAME
    mmapfs - a tmpfs in userspace: a FUSE filesystem whose file data lives
    in memory-mapped store files

SYNOPSIS
    mmapfs mount [OPTIONS] [SOURCE] MOUNTPOINT
    mmapfs SOURCE MOUNTPOINT [-o KEY[=VALUE],...]     (as mount(8) runs it)
    mmapfs fsck [--repair] [--quiet] --store DIR
    mmapfs stats [--json] [--watch[=INTERVAL]] MOUNTPOINT
    mmapfs resize MOUNTPOINT [SIZE] [--inodes N]
    mmapfs version
    mmapfs help [--man]

DESCRIPTION
    mmapfs mount serves a new, empty filesystem on MOUNTPOINT and stays in
    the foreground until it is unmounted. File data is kept in store files
    on a private directory of a tmpfs (/dev/shm by default), mapped into
    the server's memory; the directory is created at mount and removed at
    unmount, so nothing persists, as with tmpfs. Sizes, inode counts, the
    mode and owner of the root work as tmpfs's size=, nr_inodes=, mode=,
    uid= and gid= do, and df(1) reports them.

    An ordinary user can mount it (fusermount3 does the mount); root mounts
    directly. Every option can also be given with -o, so that
    mount -t fuse.mmapfs and /etc/fstab lines work as for other FUSE
    filesystems. Started that way (SOURCE MOUNTPOINT, no command), mmapfs
    goes to the background once the filesystem is mounted, unless -f is
    given; it then logs to the system log (syslog or journald, through
    /dev/log: journalctl -t mmapfs shows it), or to --log-file, and only
    a failure is printed on the terminal of mount(8).

    mount -o remount,OPTIONS MOUNTPOINT changes a live mount, as for tmpfs
    (see REMOUNT).

COMMANDS
    mount      mount and serve in the foreground (see OPTIONS)
    fsck       check a persistent store that no mmapfs serves, and with
               --repair repair it (see mmapfs fsck --help)
    stats      print the live figures of the server of MOUNTPOINT: store
               bytes used, allocated and resident, inodes, requests and
               their latency per FUSE operation; --json as one JSON
               object, --watch refreshing like top(1) until Ctrl-C; only
               the mount's owner and root may ask (see mmapfs stats --help)
    resize     change the size limit (SIZE, as size= takes it; 0 = none)
               and with --inodes N the inode limit of a live mount, as
               mount -o remount,size=...,nr_inodes=... does (see REMOUNT);
               only the mount's owner and root may
    version    print the version of mmapfs and of go-fuse
    help       print this manual (also --help, mount --help); with --man,
               as the man page mmapfs(8) in roff

OPTIONS
    Flags take their value as --flag VALUE or --flag=VALUE; -flag works
    as well as --flag. The -o key of each is given after it.

    --size SIZE, -o size=SIZE
        Bytes of file data at most; writes past it fail with ENOSPC.
        SIZE is a number with an optional suffix k, m, g, t, p, e (also
        K, KiB, KB ...; all powers of 1024, as tmpfs has them; a fraction
        such as 1.5G is allowed), or a percentage of RAM such as 25%.
        Rounded up to whole pages. 0 means no limit but the tmpfs under
        the store. Default: 50% of RAM ({{SIZE}} here).

    --inodes N, -o inodes=N, -o nr_inodes=N
        Files, directories and other inodes at most, the root included;
        creating more fails with ENOSPC. Suffixes k, m, g as for SIZE.
        0 means no limit. Default: half the pages of RAM ({{INODES}}
        here), as tmpfs.

    --mode MODE, -o mode=MODE
        Permission bits of the root directory, in octal. Default: 1777.

    --uid UID, -o uid=UID
    --gid GID, -o gid=GID
        Owner and group of the root directory, as numbers or names.
        Default: the user and group that run mmapfs.

    --allow-other, -o allow_other
        Let other users than the one who mounted use the filesystem (for
        users other than root, /etc/fuse.conf must say user_allow_other).
        Permissions are enforced by the kernel (default_permissions).

    --store DIR, -o store=DIR
        Keep the filesystem in DIR: file data, names, attributes, xattrs
        and links survive unmounting, and a later mount of DIR shows the
        same tree. Every change a program was told succeeded survives the
        server being killed; what fsync(2) or fdatasync(2) covered also
        survives a power loss. DIR is created (mode 0700) if missing; one
        mmapfs at a time serves it. With --store, SIZE defaults to no
        limit but the free space of DIR's filesystem. Check a store with
        "mmapfs fsck --store DIR".

    --memdir DIR, -o memdir=DIR
        Directory under which the memory store's private directory
        (mmapfs-XXXX, mode 0700) is created. It should be on a tmpfs with
        room for SIZE: if it has less free space, a warning says so and
        files can hold only what it has. Default: /dev/shm, else
        $XDG_RUNTIME_DIR, else $TMPDIR or /tmp.

    --passthrough MODE, -o passthrough=MODE
        auto, on or off. With passthrough the kernel reads, writes and
        maps an open file's store file itself (FUSE passthrough): file
        I/O runs at the speed of the tmpfs under the store, and a program
        storing into a full store through a mapping gets SIGBUS, as on a
        tmpfs. It needs Linux 6.9 or later and CAP_SYS_ADMIN; with a
        size limit, the memory store gets a tmpfs of its own of that
        size (mounted on its private directory), which keeps the limit.
        With --store, a file open for writing is recorded as such, and
        after a crash of the server its size, data and times are taken
        from its store file, so nothing the kernel wrote is lost; there
        the kernel's writes would not keep size=, so auto means off with
        --store and size=, and on refuses that pair. auto uses it where
        it works and says once at start when it does not; on refuses to
        mount without it. Default: auto.

    --huge WHEN, -o huge=WHEN
    --noswap, -o noswap
        tmpfs's huge= (never, always, within_size or advise: when the
        store's tmpfs uses transparent huge pages) and noswap (its pages
        are never swapped out; Linux 6.4 or later), as tmpfs(5) has them,
        for the tmpfs mmapfs mounts for its store: a memory store with a
        size limit and passthrough (not off), mounted by root. Where there
        is no such tmpfs (--store, --passthrough=off, size=0, not root) or
        the kernel refuses them, mmapfs stops at start with one line and
        exit status 1; set them on the tmpfs under the store instead
        (mount -o remount,huge=WHEN /dev/shm; noswap only when a tmpfs is
        mounted: mount -t tmpfs -o noswap,size=SIZE tmpfs DIR, then
        --memdir DIR). Default: neither, the kernel's default.

    --fsname NAME, -o fsname=NAME
        The source shown in /proc/mounts and by df(1). Default: SOURCE if
        given, else mmapfs.

    --metrics ADDR, -o metrics=ADDR
        Serve the server's figures (requests, latency, bytes, the store)
        to Prometheus over HTTP at http://ADDR/metrics. ADDR is PORT or
        :PORT, which listen on 127.0.0.1 only, or HOST:PORT (also
        [IPv6]:PORT), taken as given: 0.0.0.0:9100 serves the network.
        A malformed ADDR is a usage error; one that cannot be listened on
        (a port in use) stops mmapfs before it mounts, with status 1.
        Default: off.

    --log-level LEVEL, -o log_level=LEVEL
        debug, info, warn or error. Default: info.

    --log-format FORMAT, -o log_format=FORMAT
        console (readable lines) or json (one object a line). Logs go to
        standard error (in the mount(8) form, to the system log, without
        the time, which the system log adds). Default: console.

    --log-file FILE, -o log_file=FILE
        Log to FILE instead, appending (created with mode 0640 if
        missing); a failure to start is printed on standard error as
        well. On SIGHUP the server opens FILE anew, so that logrotate(8)
        can move it away and then signal the server. Without a log file
        SIGHUP reconnects to the system log, or is ignored.

    --debug, -d, -o debug
        Log every FUSE request and reply (very verbose).

    -f, --foreground
        Stay in the foreground. mmapfs mount always does; this matters only
        in the mount(8) form.

    -o KEY[=VALUE],...
        Options as mount(8) and fstab pass them: the keys above, and:
          ro, rw, nosuid, suid, nodev, dev, noexec, exec, noatime, atime,
          nodiratime, diratime, strictatime, nostrictatime, relatime,
          norelatime
              mount flags, as for tmpfs; the default is rw,suid,dev,exec,
              relatime. Mounted by a user other than root (through
              fusermount3) the mount is always nosuid,nodev.
              ro: every change fails with EROFS, reads change no atime,
              and mmapfs writes nothing to the journal of a --store.
              Reads, executions, directory listings and symlink reads
              update atime: under relatime when it is not later than
              mtime or ctime, or a day old; under strictatime always;
              under noatime never; nodiratime keeps directories' atime.
              strictatime wins over noatime, which wins over relatime.
              A read the kernel answers from its page cache does not
              reach mmapfs: an open drops the file's cache when its next
              read is to update atime (under strictatime always), unless
              another open of the file exists; so under strictatime a
              read the cache still answers (a page read again in one
              open, or while the file is open elsewhere) leaves atime
              as it is. With strictatime, passthrough is off (auto) or
              refused (on): reads passed through would not reach mmapfs;
          async, auto, noauto, user, nouser, users, owner, group,
          defaults, _netdev, nofail, silent, loud, default_permissions,
          x-*, comment=...
              accepted and ignored: they mean something only to mount(8),
              fstab or systemd, or are always on.
        An unknown key or a bad value stops mmapfs with one line on
        standard error and exit status 2.

    -h, --help
        Print this manual.

UNMOUNTING
    fusermount3 -u MOUNTPOINT (or umount MOUNTPOINT as root), Ctrl-C, or
    SIGTERM to the server: each unmounts, removes the memory store and
    exits with status 0. If files on the mount are still open, a signal
    detaches the mount lazily (it disappears at once; the server stops
    when the last of those files is closed); a second signal stops the
    server without waiting.

REMOUNT
    mount -o remount,OPTIONS MOUNTPOINT (as root) changes a live mount, as
    for tmpfs: size= and nr_inodes= set new limits (0: none), huge= that
    of the tmpfs a memory store mounted for itself, and ro, rw, nosuid,
    nodev, noexec, noatime, nodiratime and strictatime the mount's flags.
    mount(8) runs mmapfs with remount among the options; it asks the live
    server, over its control socket, and remounts the kernel's side itself.
    A limit below what is in use is refused, as is ro while a file is open
    for writing (busy), with one line and exit status 32, and nothing
    changes. Other options (mode=, uid=, store=, ...) are those of the
    mount, as fstab gives them again, and are ignored. A --store with
    passthrough and no size= keeps no limit (the kernel's writes do not
    reach the server), and strictatime cannot come or go while passthrough
    is on. The limits of a persistent store are not recorded in it: the
    size= of each mount sets them. mmapfs resize does the same for the
    limits from the command line.

EXAMPLES
    Mount 1 GiB on ~/scratch, in the foreground:
        mkdir -p ~/scratch && mmapfs mount --size 1G ~/scratch

    The same with mount(8), as root, mmapfs being on root's PATH:
        mount -t fuse.mmapfs -o size=1G mmapfs /mnt/scratch

    An /etc/fstab line:
        mmapfs  /mnt/scratch  fuse.mmapfs  size=1G,mode=1777,nofail  0  0

    Grow it to 2 GiB, then make it read-only, while it is in use:
        mount -o remount,size=2G /mnt/scratch
        mount -o remount,ro /mnt/scratch

    Unmount:
        fusermount3 -u ~/scratch

EXIT STATUS
    0   the filesystem was mounted and later unmounted cleanly; help and
        version.
    1   it could not be mounted (mount point missing, not a directory,
        already a FUSE mount, no /dev/fuse, the memory store could not be
        created), or the server was stopped with requests outstanding.
    2   wrong usage: unknown command or option, bad option value.
    32  a remount was refused (see REMOUNT).

FILES
    /dev/fuse                     the FUSE device
    /dev/log                      the system log of the mount(8) form
    /dev/shm/mmapfs-NNNN/         the memory store of one mount (0700),
                                  removed at unmount
    /etc/fuse.conf                user_allow_other, mount_max
    /sys/fs/fuse/connections/     used to abort a connection on a second
                                  signal, if mounted

NOTES
    Nothing persists: the memory store is removed at unmount. A killed
    server cannot remove it; the next mmapfs started on the same memory
    directory does (each server holds a lock on its own store). A killed
    server also leaves a dead mount point ("Transport endpoint is not
    connected") until fusermount3 -u -z.
    File data counts against the tmpfs under the store (and so against
    RAM and swap), not against the server's heap. The store never lets a
    full tmpfs kill the server: writes fail with ENOSPC instead.

SEE ALSO
    tmpfs(5), fuse(8), mount.fuse3(8), fusermount3(1), mount(8), fstab(5)
`

func writeUsage(w io.Writer) {
	env := currentSysEnv()
	d := defaultOptions(env)
	text := strings.NewReplacer(
		"{{SIZE}}", store.FormatBytes(d.Size),
		"{{INODES}}", fmt.Sprint(d.Inodes),
	).Replace(manual)
	fmt.Fprint(w, text)
}
