package main

import (
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"runtime/pprof"
	"strconv"
	"strings"
	"time"

	"go.uber.org/zap"
	"golang.org/x/sys/unix"

	"mmapfs/control"
	"mmapfs/fs"
	"mmapfs/metrics"
	"mmapfs/store"
)

// How long a forced stop (second signal) waits for the server to finish
// before the process exits anyway.
const forceGrace = 3 * time.Second

// cmdMount runs `mmapfs mount`: it parses the arguments and serves in the
// foreground until the filesystem is unmounted.
func cmdMount(args []string, stdout, stderr io.Writer) int {
	o, err := parseMountArgs(args, currentSysEnv())
	if err != nil {
		fmt.Fprintf(stderr, "mmapfs: %v\n", err)
		return 2
	}
	if o.Help {
		writeUsage(stdout)
		return 0
	}
	return serveMount(o, stderr, nil)
}

// serveMount mounts, serves until the filesystem is unmounted, and cleans
// up. ready, if not nil, is called once the filesystem is mounted.
func serveMount(o *mountOptions, stderr io.Writer, ready func()) int {
	logs, err := openServerLog(o, stderr, ready != nil)
	if err != nil {
		fmt.Fprintf(stderr, "mmapfs: %v\n", err)
		return 1
	}
	defer logs.close()
	defer logs.handleHangup()()
	log, stderr := logs.log, logs.stderr
	if p := os.Getenv("MMAPFS_CPUPROFILE"); p != "" {
		// For development: a CPU profile of the server, from start to
		// exit, for go tool pprof.
		if stop, err := startCPUProfile(p); err != nil {
			log.Warn("MMAPFS_CPUPROFILE: "+err.Error(), zap.String("file", p))
		} else {
			defer stop()
		}
	}
	// go-fuse logs with the standard logger: its messages (and with
	// --debug every request) become lines of this log.
	defer zap.RedirectStdLog(log.Named("fuse"))()

	// Take the signals before anything exists that would need cleaning up;
	// a signal that arrives while mounting is acted on once mounted.
	sigs := make(chan os.Signal, 4)
	signal.Notify(sigs, unix.SIGINT, unix.SIGTERM)
	defer signal.Stop(sigs)

	fail := func(err error) int {
		fmt.Fprintf(stderr, "mmapfs: %v\n", err)
		return 1
	}

	onAbandon := func() {}
	if err := checkMountpoint(o.Mountpoint); err != nil {
		return fail(err)
	}
	// --metrics: the address is taken before anything is mounted, so that
	// a port in use stops the mount before it starts.
	var mx *metrics.Server
	if o.Metrics != "" {
		if mx, err = metrics.Listen(o.Metrics, log.Named("metrics")); err != nil {
			return fail(err)
		}
		defer mx.Close()
	}
	mnt := o.Mountpoint
	if !isFuseFdPath(mnt) {
		abs, err := filepath.Abs(mnt)
		if err != nil {
			return fail(fmt.Errorf("mount point %s: %v", mnt, err))
		}
		mnt = abs
	}
	var (
		st *store.Store
		// passthroughOff says why passthrough is off before the
		// kernel is asked.
		passthroughOff error
	)
	loadStart := time.Now()
	if o.Store != "" {
		s, err := store.Open(o.Store, store.Options{SizeLimit: o.Size, Huge: o.Huge, NoSwap: o.NoSwap, Logger: log})
		if err != nil {
			return fail(err)
		}
		defer s.Close()
		st = s
		if o.Passthrough == "auto" && o.Size > 0 {
			// The kernel's writes to the store files would not keep
			// the limit (with --passthrough=on, size= is refused).
			passthroughOff = errors.New("with --store and size= the server must see every write to keep the limit (leave size= out to have passthrough: the store's filesystem is then the limit)")
		}
	} else {
		memdir := o.MemDir
		if memdir == "" {
			memdir = store.DefaultMemDir()
		}
		s, err := store.OpenMemory(memdir, store.Options{SizeLimit: o.Size, OwnFS: o.Passthrough != "off", Huge: o.Huge, NoSwap: o.NoSwap, Logger: log})
		if err != nil {
			return fail(err)
		}
		if fsErr := s.OwnFSErr(); fsErr != nil {
			if o.Passthrough == "on" {
				s.Close()
				return fail(fmt.Errorf("--passthrough=on: %v", fsErr))
			}
			passthroughOff = fsErr
		}
		abandoned := false
		defer func() {
			// Also on a panic: the memory store must not outlive the process.
			if abandoned {
				s.Abandon()
			} else {
				s.Close()
			}
		}()
		st = s
		onAbandon = func() { abandoned = true }
	}

	fsName := o.Source
	if fsName == "" {
		fsName = "mmapfs"
	}
	m, err := fs.Mount(mnt, fs.Config{
		Store:      st,
		MaxInodes:  o.Inodes,
		RootMode:   unix.S_IFDIR | o.Mode, // with the type bit, mode=0 is not "default"
		RootUID:    o.UID,
		RootGID:    o.GID,
		AllowOther: o.AllowOther,
		Debug:      o.Debug,
		FsName:     fsName,
		MountFlags: o.MountFlags,
		Logger:     log,
		// A development knob: measuring what counting requests costs.
		NoCounting: os.Getenv("MMAPFS_NOCOUNT") == "1",

		Passthrough: o.Passthrough != "off" && passthroughOff == nil,
	})
	if err != nil {
		return fail(mountError(o.Mountpoint, err))
	}
	// A server started on the store is refused while this mount is there.
	st.Serving(mnt)
	switch {
	case o.Passthrough == "off":
	case passthroughOff == nil && m.PassthroughErr == nil:
		log.Info("passthrough on: the kernel reads and writes open files' store files itself")
	case o.Passthrough == "on":
		m.Server.Unmount()
		m.Server.Wait()
		st.Exiting()
		m.Close()
		return fail(fmt.Errorf("--passthrough=on: %v", m.PassthroughErr))
	case passthroughOff != nil:
		log.Info("passthrough off: " + passthroughOff.Error())
	default:
		log.Info("passthrough off: " + m.PassthroughErr.Error())
	}
	started := time.Now()
	if st.Persistent() {
		log.Info("store ready: tree built", zap.Duration("took", started.Sub(loadStart).Round(time.Millisecond)))
	}
	inodes := "unlimited"
	if o.Inodes > 0 {
		inodes = strconv.FormatUint(o.Inodes, 10)
	}
	size := "unlimited"
	if o.Size > 0 {
		size = store.FormatBytes(o.Size)
	}
	log.Info("mounted "+mnt,
		zap.String("size", size),
		zap.String("inodes", inodes),
		zap.String("mode", fmt.Sprintf("%04o", o.Mode)),
		zap.String("store", st.Dir()))
	ctl := listenControl(m, mnt, log)
	if mx != nil {
		mx.Start(m.Stats)
	}
	if ready != nil {
		ready()
	}

	code, how := waitUnmount(m, mnt, sigs, log)
	// No request of mmapfs stats, resize or a scrape may ask a closed
	// store.
	if ctl != nil {
		ctl.Close()
	}
	if mx != nil {
		mx.Close()
	}
	// The mount is gone: a server started on the store from now on
	// waits for this one to finish instead of being refused.
	st.Exiting()
	if code != 0 && how == "abandoned" {
		onAbandon()
	}
	if err := m.Close(); err != nil {
		log.Error("closing the store failed: the next mount replays its journal", zap.Error(err))
	}
	log.Info("unmounted "+mnt,
		zap.String("how", how),
		zap.Duration("uptime", time.Since(started).Round(time.Millisecond)),
		zap.String("used", store.FormatBytes(st.Used())))
	return code
}

// listenControl starts answering `mmapfs stats`, `mmapfs resize` and
// `mount -o remount` on the control socket of the mount (package control).
// Without it the mount still serves: it says so and goes on.
func listenControl(m *fs.Mounted, mnt string, log *zap.Logger) *control.Server {
	if isFuseFdPath(mnt) {
		log.Info("no control socket: the mount point is not known (mounted through " + mnt + ")")
		return nil
	}
	dev := mountDev(mnt)
	if dev == 0 {
		log.Warn("no control socket: cannot stat the mount point", zap.String("mountpoint", mnt))
		return nil
	}
	ctl, err := control.Listen(dev, uint32(os.Geteuid()), m, log.Named("control"))
	if err != nil {
		log.Warn("no control socket: mmapfs stats and resize will not reach this server", zap.Error(err))
		return nil
	}
	return ctl
}

// waitUnmount serves until the filesystem is unmounted: from outside
// (fusermount3 -u, umount), or here on SIGINT or SIGTERM. If the mount is
// busy, it is detached lazily: programs that have files open keep them
// until they close them, and the server stops after the last close. A
// second signal stops the server without waiting for them.
func waitUnmount(m *fs.Mounted, mnt string, sigs <-chan os.Signal, log *zap.Logger) (code int, how string) {
	done := make(chan struct{})
	go func() {
		m.Wait()
		close(done)
	}()
	var (
		dev         = mountDev(mnt)
		unmountErr  chan error // set while an unmount is in progress
		unmounting  bool
		detached    bool
		graceTimer  <-chan time.Time
		forced      bool
		description = "unmounted from outside"
	)
	for {
		select {
		case <-done:
			if forced {
				return 0, "forced"
			}
			return 0, description
		case sig := <-sigs:
			if !unmounting {
				unmounting = true
				description = "unmounted on " + sigName(sig)
				log.Info("unmounting "+mnt, zap.String("signal", sigName(sig)))
				unmountErr = make(chan error, 1)
				go func() { unmountErr <- m.Server.Unmount() }()
				continue
			}
			if forced {
				continue
			}
			forced = true
			log.Warn("stopping without waiting for open files ("+sigName(sig)+" again)", zap.String("mountpoint", mnt))
			if !detached {
				detach(mnt, log)
				detached = true
			}
			grace := forceGrace
			if !abortConnection(dev, log) {
				// Nothing will make the server stop soon but files
				// being closed: give them a moment, no more.
				grace = forceGrace / 6
			}
			graceTimer = time.After(grace)
		case err := <-unmountErr:
			unmountErr = nil
			if err == nil || detached {
				continue // done follows
			}
			log.Warn(mnt+" is busy: detached it lazily; the server stops when the last file open on it is closed (send the signal again to stop now)",
				zap.String("unmount", firstLine(err.Error())))
			detach(mnt, log)
			detached = true
		case <-graceTimer:
			log.Error("the server did not stop; exiting with requests outstanding", zap.String("mountpoint", mnt))
			return 1, "abandoned"
		}
	}
}

func sigName(s os.Signal) string {
	if sig, ok := s.(unix.Signal); ok {
		return unix.SignalName(sig)
	}
	return s.String()
}

// detach unmounts mnt lazily (MNT_DETACH): it disappears from the
// namespace now, and the filesystem ends when nothing uses it any more.
func detach(mnt string, log *zap.Logger) {
	err := unix.Unmount(mnt, unix.MNT_DETACH)
	if err == nil || errors.Is(err, unix.EINVAL) {
		return // EINVAL: no longer a mount point
	}
	out, err2 := exec.Command("fusermount3", "-u", "-z", mnt).CombinedOutput()
	if err2 != nil {
		log.Error("lazy unmount failed", zap.String("mountpoint", mnt), zap.Error(err), zap.ByteString("fusermount3", out))
	}
}

// mountDev is the device number of the filesystem mounted on mnt: its
// FUSE connection is /sys/fs/fuse/connections/DEV.
func mountDev(mnt string) uint64 {
	var st unix.Stat_t
	if err := unix.Stat(mnt, &st); err != nil {
		return 0
	}
	return st.Dev
}

// abortConnection aborts the FUSE connection of device dev, so that
// programs waiting on the filesystem get ENOTCONN at once. It needs the
// fusectl filesystem on /sys/fs/fuse/connections and write access to it;
// without them, exiting closes the connection just the same.
func abortConnection(dev uint64, log *zap.Logger) bool {
	if dev == 0 || unix.Major(dev) != 0 {
		return false
	}
	p := fmt.Sprintf("/sys/fs/fuse/connections/%d/abort", unix.Minor(dev))
	if err := os.WriteFile(p, []byte("1"), 0); err != nil {
		log.Debug("cannot abort the FUSE connection", zap.String("file", p), zap.Error(err))
		return false
	}
	return true
}

// mountError turns an error of fs.Mount into one line.
func mountError(mnt string, err error) error {
	if _, statErr := os.Stat("/dev/fuse"); statErr != nil {
		return fmt.Errorf("/dev/fuse: %s (load the fuse module: modprobe fuse)", errnoText(statErr))
	}
	switch {
	case errors.Is(err, unix.EBUSY):
		return fmt.Errorf("mount point %s: device or resource busy", mnt)
	case errors.Is(err, unix.EPERM), errors.Is(err, unix.EACCES):
		return fmt.Errorf("mount point %s: %s (is fusermount3 installed? see fuse(8))", mnt, errnoText(err))
	}
	return err
}

func firstLine(s string) string {
	s, _, _ = strings.Cut(strings.TrimSpace(s), "\n")
	return s
}

// startCPUProfile starts a CPU profile written to path; the function it
// returns stops it.
func startCPUProfile(path string) (func(), error) {
	f, err := os.Create(path)
	if err != nil {
		return nil, err
	}
	if err := pprof.StartCPUProfile(f); err != nil {
		f.Close()
		return nil, err
	}
	return func() {
		pprof.StopCPUProfile()
		f.Close()
	}, nil
}
