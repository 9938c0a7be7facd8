package fs

import (
	"errors"
	"fmt"
	"sync"
	"syscall"
	"time"

	gofs "github.com/hanwen/go-fuse/v2/fs"
	"github.com/hanwen/go-fuse/v2/fuse"
	"go.uber.org/zap"
	"golang.org/x/sys/unix"

	"mmapfs/journal"
	"mmapfs/store"
)

// Config says what a mount serves and how.
type Config struct {
	// Store is the store directory; required. It holds the file data;
	// a persistent one also the metadata and the tree recovered from it,
	// which Mount takes (Store.TakeTree). With a memory store the
	// filesystem starts empty and is forgotten at exit.
	Store      *store.Store
	MaxInodes  uint64      // inodes at most, root included; 0 = no limit
	RootMode   uint32      // permission bits of the root; 0 = 01777 (as tmpfs)
	RootUID    uint32      // owner of the root
	RootGID    uint32      // group of the root
	AllowOther bool        // let other users in (permissions are enforced)
	Debug      bool        // log every FUSE request and reply
	FsName     string      // source field in /proc/mounts; "" = "mmapfs"
	MountFlags uintptr     // MS_NOSUID, MS_NODEV, MS_NOEXEC, MS_NOATIME, MS_RDONLY… (Mount)
	Logger     *zap.Logger // nil = zap.NewNop()
	// NoCounting leaves requests uncounted (Mounted.Stats has no Ops):
	// for measuring what counting costs.
	NoCounting bool

	// Passthrough asks for FUSE passthrough: an open regular file's
	// reads, writes and mmaps go from the kernel straight to its store
	// file. It needs Linux 6.9 or later, CAP_SYS_ADMIN, and a store with
	// no size limit of its own (mapstore.Store.CanLend); without them
	// files are served through the mappings (Mounted.PassthroughErr says
	// why).
	Passthrough bool
}

// Mounted is a live mount.
type Mounted struct {
	Server *fuse.Server
	Root   *Dir
	// PassthroughErr says why passthrough is off when Config.Passthrough
	// asked for it; nil when it is on (or was not asked for).
	PassthroughErr error

	mountpoint string    // as given to Mount
	started    time.Time // when it was mounted
	closeOnce  sync.Once
}

// Unmount asks the kernel to unmount and waits for the server to stop.
// With a persistent store it then writes the last snapshot and closes the
// journal (Close); the caller closes the store.
func (m *Mounted) Unmount() error {
	err := m.Server.Unmount()
	m.Server.Wait()
	if err != nil {
		return err
	}
	return m.Close()
}

// Close, once the server has stopped, writes the last snapshot of a
// persistent store and closes its journal; the caller then closes the
// store (which lets go of its lock). It does nothing the second time, or
// with a memory store.
func (m *Mounted) Close() error {
	var err error
	m.closeOnce.Do(func() { err = m.Root.fsys.closePersist() })
	return err
}

// Wait blocks until the filesystem is unmounted.
func (m *Mounted) Wait() { m.Server.Wait() }

// Mount serves the filesystem of cfg.Store on mountpoint: a new, empty one
// for a memory store. The caller closes cfg.Store after Wait or Unmount
// returns.
func Mount(mountpoint string, cfg Config) (*Mounted, error) {
	root, err := NewRoot(cfg)
	if err != nil {
		return nil, err
	}
	name := cfg.FsName
	if name == "" {
		name = "mmapfs"
	}
	// Names and attributes are only ever changed through the kernel, which
	// drops what a request changes: so they may be cached for long (but
	// those of files lent to passthrough: node.entryOut). Negative entries
	// too: only the kernel adds names.
	timeout := time.Hour
	opts := &gofs.Options{
		EntryTimeout:    &timeout,
		AttrTimeout:     &timeout,
		NegativeTimeout: &timeout,
		// Modes are exactly what was set: chmod 000 stays 000.
		NullPermissions: true,
		MountOptions: fuse.MountOptions{
			AllowOther: cfg.AllowOther,
			FsName:     name,
			Name:       "mmapfs",
			Debug:      cfg.Debug,
			Logger:     fuseLogger(root.fsys.log, cfg.Debug),
			// Without lock support in the server the kernel keeps
			// flock and POSIX locks itself, which is exactly right for
			// one host, and costs no round trip.
			EnableLocks:  false,
			MaxWrite:     1 << 20,
			DirectMount:  true,
			Options:      []string{"default_permissions"},
			MaxReadAhead: 1 << 20,
			// The kernel would drop a file's page cache whenever it
			// sees its mtime change (auto_inval_data), which races
			// with its own write-through: a write's pages are
			// unlocked before the server has the WRITE, so a read
			// in between can bring the old bytes back into the cache,
			// where they stay (a read after the write returns the
			// old data; TestConcurrentSameFile). Nothing changes the
			// data behind the kernel's back (File.opened), so
			// the kernel need not guess.
			ExplicitDataCacheControl: true,
		},
		UID:            cfg.RootUID,
		GID:            cfg.RootGID,
		RootStableAttr: &gofs.StableAttr{Ino: journal.RootIno, Mode: syscall.S_IFDIR},
		// The FUSE node ID is the inode number, so that file handles
		// outlive the kernel's inode cache and a remount (handles.go).
		ExternalNodeID: true,
	}
	// Mounted directly (as root), the flags are the caller's, as for a
	// tmpfs: devices and set-id bits work unless nodev/nosuid are asked
	// for. Through fusermount3 (other users) they are always off.
	// MS_RELATIME keeps the value non-zero, which go-fuse reads as "use
	// nosuid,nodev".
	//
	// The kernel applies MS_NOSUID, MS_NODEV and MS_NOEXEC, and on a
	// read-only mount fails every change with EROFS before it reaches
	// the server. It keeps no atime of a FUSE inode: the server applies
	// MS_NOATIME, MS_STRICTATIME and MS_NODIRATIME itself (atime.go),
	// changes no atime on a read-only mount, and writes no snapshot at
	// its unmount (closePersist).
	opts.MountOptions.DirectMountFlags = cfg.MountFlags | syscall.MS_RELATIME
	if cfg.MountFlags&syscall.MS_RDONLY != 0 {
		// Also as an option, which fusermount3 passes on too (and the
		// kernel takes in a direct mount's data).
		opts.MountOptions.Options = append(opts.MountOptions.Options, "ro")
	}
	opts.MountOptions.ExtraCapabilities |= fuse.CAP_HANDLE_KILLPRIV_V2 | fuse.CAP_EXPORT_SUPPORT
	// The server answers requests from the moment the kernel mounts it,
	// before the probe below. Opens in between lend their store file as
	// if passthrough works: go-fuse passes them through if the kernel
	// takes the file, and stops trying if it does not. Were they served
	// without, a later passthrough open of a file still open that way
	// would fail with EIO; and they cannot wait for the probe, which
	// comes after go-fuse's own first open of the mount (an early create
	// holds the root directory's lock that open needs).
	//
	// Under strictatime every read must update atime, and a read the
	// kernel passes through to a store file updates only the store
	// file's atime, by the rule of the store's own mount (relatime on a
	// tmpfs): stat could not tell each read. Files are not lent then.
	lend := cfg.Passthrough && !root.fsys.atime.Load().strict
	root.fsys.passthrough.Store(lend && root.fsys.store.CanLend())
	var raw fuse.RawFileSystem = &wireFS{RawFileSystem: gofs.NewNodeFS(root, opts), fsys: root.fsys}
	if !cfg.NoCounting {
		raw = &countFS{RawFileSystem: raw, c: &root.fsys.counts}
	}
	server, err := fuse.NewServer(raw, mountpoint, &opts.MountOptions)
	if err != nil {
		return nil, fmt.Errorf("mount %s: %w", mountpoint, err)
	}
	go server.Serve()
	if err := server.WaitMount(); err != nil {
		server.Unmount()
		return nil, fmt.Errorf("mount %s: %w", mountpoint, err)
	}
	m := &Mounted{Server: server, Root: root, mountpoint: mountpoint, started: time.Now()}
	switch {
	case cfg.Passthrough && !lend:
		m.PassthroughErr = errors.New("strictatime: every read must reach the server, which keeps atime")
	case cfg.Passthrough:
		m.PassthroughErr = root.fsys.probePassthrough(server)
		root.fsys.passthrough.Store(m.PassthroughErr == nil)
	}
	return m, nil
}

// probePassthrough lends the store file of a new blob to the kernel as a
// backing file, and says why that failed.
func (fsys *filesystem) probePassthrough(server *fuse.Server) error {
	if !fsys.store.CanLend() {
		return errors.New("the store has a size limit of its own, which the kernel's writes would not keep")
	}
	if server.KernelSettings().Flags64()&fuse.CAP_PASSTHROUGH == 0 {
		return errors.New("the kernel does not offer FUSE passthrough (it needs Linux 6.9 or later, built with CONFIG_FUSE_PASSTHROUGH)")
	}
	b, err := fsys.store.Create()
	if err != nil {
		return err
	}
	defer b.Free()
	fd, err := b.Lend(true)
	if err != nil {
		return err
	}
	if fd < 0 {
		return errors.New("no descriptor left for the store file")
	}
	defer unix.Close(fd)
	id, errno := server.RegisterBackingFd(&fuse.BackingMap{Fd: int32(fd)})
	if errno != 0 {
		return fmt.Errorf("the kernel refused a store file as a backing file: %w (passthrough needs CAP_SYS_ADMIN)", errno)
	}
	if errno := server.UnregisterBackingFd(id); errno != 0 {
		return fmt.Errorf("releasing a backing file: %w", errno)
	}
	return nil
}
