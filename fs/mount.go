package fs

import (
	"fmt"
	"sync"
	"syscall"
	"time"

	gofs "github.com/hanwen/go-fuse/v2/fs"
	"github.com/hanwen/go-fuse/v2/fuse"
	"go.uber.org/zap"

	"mmapfs/journal"
	"mmapfs/mapstore"
)

// Config says what a mount serves and how.
type Config struct {
	Store      *mapstore.Store // file data; required
	MaxInodes  uint64          // inodes at most, root included; 0 = no limit
	RootMode   uint32          // permission bits of the root; 0 = 01777 (as tmpfs)
	RootUID    uint32          // owner of the root
	RootGID    uint32          // group of the root
	AllowOther bool            // let other users in (permissions are enforced)
	Debug      bool            // log every FUSE request and reply
	FsName     string          // source field in /proc/mounts; "" = "mmapfs"
	MountFlags uintptr         // MS_NOSUID, MS_NODEV, MS_NOEXEC, MS_NOATIME, MS_RDONLY…
	Logger     *zap.Logger     // nil = zap.NewNop()

	// Meta and State, with a persistent store: the store's metadata,
	// and the tree it holds (which Mount takes over). Without them the
	// filesystem starts empty and is forgotten at exit.
	Meta  *journal.Meta
	State *journal.State
}

// Mounted is a live mount.
type Mounted struct {
	Server *fuse.Server
	Root   *Dir

	closeOnce sync.Once
}

// Unmount asks the kernel to unmount and waits for the server to stop.
// With a persistent store it then closes the store (see Close).
func (m *Mounted) Unmount() error {
	err := m.Server.Unmount()
	m.Server.Wait()
	if err != nil {
		return err
	}
	return m.Close()
}

// Close, once the server has stopped, writes the last snapshot of a
// persistent store and lets go of its lock. It does nothing the second
// time, or without a store.
func (m *Mounted) Close() error {
	var err error
	m.closeOnce.Do(func() { err = m.Root.fsys.closePersist() })
	return err
}

// Wait blocks until the filesystem is unmounted.
func (m *Mounted) Wait() { m.Server.Wait() }

// Mount serves a new, empty filesystem on mountpoint. The caller closes
// cfg.Store after Wait or Unmount returns.
func Mount(mountpoint string, cfg Config) (*Mounted, error) {
	root, err := NewRoot(cfg)
	if err != nil {
		return nil, err
	}
	name := cfg.FsName
	if name == "" {
		name = "mmapfs"
	}
	// Names and attributes are only ever changed through the kernel, so
	// they may be cached; the server never changes them behind its back.
	timeout := time.Second
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
			// Without lock support in the server the kernel keeps
			// flock and POSIX locks itself, which is exactly right for
			// one host, and costs no round trip.
			EnableLocks:  false,
			MaxWrite:     1 << 20,
			DirectMount:  true,
			Options:      []string{"default_permissions"},
			MaxReadAhead: 1 << 20,
		},
		UID:            cfg.RootUID,
		GID:            cfg.RootGID,
		RootStableAttr: &gofs.StableAttr{Ino: 1, Mode: syscall.S_IFDIR},
	}
	// Mounted directly (as root), the flags are the caller's, as for a
	// tmpfs: devices and set-id bits work unless nodev/nosuid are asked
	// for. Through fusermount3 (other users) they are always off.
	// MS_RELATIME keeps the value non-zero, which go-fuse reads as "use
	// nosuid,nodev".
	opts.MountOptions.DirectMountFlags = cfg.MountFlags | syscall.MS_RELATIME
	opts.MountOptions.ExtraCapabilities |= fuse.CAP_HANDLE_KILLPRIV_V2
	raw := &wireFS{RawFileSystem: gofs.NewNodeFS(root, opts), fsys: root.fsys}
	server, err := fuse.NewServer(raw, mountpoint, &opts.MountOptions)
	if err != nil {
		return nil, fmt.Errorf("mount %s: %w", mountpoint, err)
	}
	go server.Serve()
	if err := server.WaitMount(); err != nil {
		server.Unmount()
		return nil, fmt.Errorf("mount %s: %w", mountpoint, err)
	}
	return &Mounted{Server: server, Root: root}, nil
}
