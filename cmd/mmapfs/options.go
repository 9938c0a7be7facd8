package main

import (
	"errors"
	"fmt"
	"path/filepath"
	"slices"
	"strconv"
	"strings"

	"go.uber.org/zap/zapcore"
	"golang.org/x/sys/unix"

	"mmapfs/metrics"
	"mmapfs/store"
)

// mountOptions is everything `mmapfs mount` is told, on the command line or
// with -o.
type mountOptions struct {
	Source     string // first field of /proc/mounts; "" = "mmapfs"
	Mountpoint string

	Size     int64  // bytes of file data at most; 0 = no limit
	SizeSpec string // Size as the user wrote it (or the default), for messages
	Inodes   uint64 // inodes at most; 0 = no limit
	Mode     uint32 // permission bits of the root
	UID, GID uint32 // owner of the root

	AllowOther bool
	Debug      bool // log every FUSE request
	LogLevel   zapcore.Level
	LogFormat  string // "console" or "json"
	LogFile    string // absolute; "" = standard error (the system log in the mount(8) form)
	MemDir     string // "" = default (/dev/shm, $XDG_RUNTIME_DIR, os.TempDir())
	// Store is the directory of a persistent store; "" = a memory store
	// that goes at exit.
	Store     string
	sizeGiven bool
	// Passthrough is "auto", "on" or "off": whether the kernel reads and
	// writes open files' store files itself (FUSE passthrough).
	Passthrough string
	// Metrics is the address of --metrics, checked by metrics.ParseAddr;
	// "" = no metrics.
	Metrics string
	// Huge and NoSwap are tmpfs's huge= and noswap, for the tmpfs a
	// memory store mounts for itself (store.Options.Huge, NoSwap).
	Huge   string
	NoSwap bool

	// MountFlags are the per-mount flags (MS_RDONLY, MS_NOSUID, MS_NODEV,
	// MS_NOEXEC, MS_NOATIME...) the mount is made with. As for tmpfs, the
	// default is none of them.
	MountFlags uintptr
	Foreground bool // -f: accepted; `mmapfs mount` always serves in the foreground
	Help       bool
}

// sysEnv is what the defaults depend on; tests replace it.
type sysEnv struct {
	RAM      uint64 // bytes of physical memory
	PageSize int64
	UID, GID uint32
}

func currentSysEnv() sysEnv {
	env := sysEnv{PageSize: int64(unix.Getpagesize()), UID: uint32(unix.Geteuid()), GID: uint32(unix.Getegid())}
	var si unix.Sysinfo_t
	if unix.Sysinfo(&si) == nil {
		env.RAM = uint64(si.Totalram) * uint64(si.Unit)
	}
	return env
}

// defaultOptions are the tmpfs defaults: size=50%, nr_inodes = half the
// pages of RAM, mode=1777, owned by the caller.
func defaultOptions(env sysEnv) *mountOptions {
	o := &mountOptions{
		Mode:      0o1777,
		UID:       env.UID,
		GID:       env.GID,
		LogLevel:  zapcore.InfoLevel,
		LogFormat: "console",
		// Passthrough: on where the kernel allows it.
		Passthrough: "auto",
	}
	o.Size, _ = percentOfRAM(50, env)
	o.SizeSpec = "50%"
	if env.PageSize > 0 {
		o.Inodes = env.RAM / uint64(env.PageSize) / 2
	}
	return o
}

// usageError is a mistake on the command line: exit status 2.
type usageError struct{ msg string }

func (e *usageError) Error() string { return e.msg }

func usagef(format string, args ...any) error {
	return &usageError{fmt.Sprintf(format, args...)}
}

// optDef is one option. Every option that has a flag also has an -o key
// (and the other way round, but for -o-only generic mount options), so that
// the command line, mount(8) and /etc/fstab accept the same things.
type optDef struct {
	flag  string   // long flag, used as --flag or -flag; "" = none
	short string   // one-letter flag, used as -x; "" = none
	keys  []string // -o keys
	value bool     // takes a value (--flag=V, --flag V, key=V)
	set   func(o *mountOptions, env sysEnv, v string) error
}

var optDefs = []optDef{
	{flag: "size", keys: []string{"size"}, value: true, set: setSize},
	{flag: "inodes", keys: []string{"inodes", "nr_inodes"}, value: true, set: func(o *mountOptions, _ sysEnv, v string) error {
		n, err := parseCount(v)
		o.Inodes = n
		return err
	}},
	{flag: "mode", keys: []string{"mode"}, value: true, set: func(o *mountOptions, _ sysEnv, v string) error {
		m, err := parseMode(v)
		o.Mode = m
		return err
	}},
	{flag: "uid", keys: []string{"uid"}, value: true, set: func(o *mountOptions, _ sysEnv, v string) error {
		id, err := parseID(v, false)
		o.UID = id
		return err
	}},
	{flag: "gid", keys: []string{"gid"}, value: true, set: func(o *mountOptions, _ sysEnv, v string) error {
		id, err := parseID(v, true)
		o.GID = id
		return err
	}},
	{flag: "allow-other", keys: []string{"allow_other"}, set: func(o *mountOptions, _ sysEnv, _ string) error {
		o.AllowOther = true
		return nil
	}},
	{flag: "debug", short: "d", keys: []string{"debug"}, set: func(o *mountOptions, _ sysEnv, _ string) error {
		o.Debug = true
		return nil
	}},
	{flag: "log-level", keys: []string{"log_level"}, value: true, set: func(o *mountOptions, _ sysEnv, v string) error {
		switch v {
		case "debug":
			o.LogLevel = zapcore.DebugLevel
		case "info":
			o.LogLevel = zapcore.InfoLevel
		case "warn", "warning":
			o.LogLevel = zapcore.WarnLevel
		case "error":
			o.LogLevel = zapcore.ErrorLevel
		default:
			return errors.New("want debug, info, warn or error")
		}
		return nil
	}},
	{flag: "log-format", keys: []string{"log_format"}, value: true, set: func(o *mountOptions, _ sysEnv, v string) error {
		if v != "console" && v != "json" {
			return errors.New("want console or json")
		}
		o.LogFormat = v
		return nil
	}},
	{flag: "log-file", keys: []string{"log_file"}, value: true, set: func(o *mountOptions, _ sysEnv, v string) error {
		if v == "" {
			return errors.New("empty file name")
		}
		abs, err := filepath.Abs(v) // the background server changes to /
		o.LogFile = abs
		return err
	}},
	{flag: "memdir", keys: []string{"memdir"}, value: true, set: func(o *mountOptions, _ sysEnv, v string) error {
		if v == "" {
			return errors.New("empty directory name")
		}
		abs, err := filepath.Abs(v)
		o.MemDir = abs
		return err
	}},
	{flag: "store", keys: []string{"store"}, value: true, set: func(o *mountOptions, _ sysEnv, v string) error {
		if v == "" {
			return errors.New("empty directory name")
		}
		abs, err := filepath.Abs(v)
		o.Store = abs
		return err
	}},
	{flag: "passthrough", keys: []string{"passthrough"}, value: true, set: func(o *mountOptions, _ sysEnv, v string) error {
		switch v {
		case "auto", "on", "off":
			o.Passthrough = v
			return nil
		}
		return errors.New("want auto, on or off")
	}},
	{flag: "metrics", keys: []string{"metrics"}, value: true, set: func(o *mountOptions, _ sysEnv, v string) error {
		_, _, err := metrics.ParseAddr(v)
		o.Metrics = v
		return err
	}},
	{flag: "huge", keys: []string{"huge"}, value: true, set: func(o *mountOptions, _ sysEnv, v string) error {
		if !slices.Contains(store.HugeValues, v) {
			return errors.New("want " + strings.Join(store.HugeValues, ", "))
		}
		o.Huge = v
		return nil
	}},
	{flag: "noswap", keys: []string{"noswap"}, set: func(o *mountOptions, _ sysEnv, _ string) error {
		o.NoSwap = true
		return nil
	}},
	{flag: "fsname", keys: []string{"fsname"}, value: true, set: func(o *mountOptions, _ sysEnv, v string) error {
		if v == "" {
			return errors.New("empty name")
		}
		o.Source = v
		return nil
	}},
	{flag: "foreground", short: "f", set: func(o *mountOptions, _ sysEnv, _ string) error {
		o.Foreground = true
		return nil
	}},
	{flag: "help", short: "h", set: func(o *mountOptions, _ sysEnv, _ string) error {
		o.Help = true
		return nil
	}},
	// Flags mount(8) passes to its helpers: -n (no mtab), -s (sloppy),
	// -v (verbose). Accepted and ignored.
	{short: "n", set: ignoreOpt},
	{short: "s", set: ignoreOpt},
	{short: "v", set: ignoreOpt},
	// Per-mount flags, as mount(8) takes them for tmpfs.
	{keys: []string{"ro"}, set: mountFlag(unix.MS_RDONLY, true)},
	{keys: []string{"rw"}, set: mountFlag(unix.MS_RDONLY, false)},
	{keys: []string{"nosuid"}, set: mountFlag(unix.MS_NOSUID, true)},
	{keys: []string{"suid"}, set: mountFlag(unix.MS_NOSUID, false)},
	{keys: []string{"nodev"}, set: mountFlag(unix.MS_NODEV, true)},
	{keys: []string{"dev"}, set: mountFlag(unix.MS_NODEV, false)},
	{keys: []string{"noexec"}, set: mountFlag(unix.MS_NOEXEC, true)},
	{keys: []string{"exec"}, set: mountFlag(unix.MS_NOEXEC, false)},
	{keys: []string{"noatime"}, set: mountFlag(unix.MS_NOATIME, true)},
	{keys: []string{"atime"}, set: mountFlag(unix.MS_NOATIME, false)},
	{keys: []string{"nodiratime"}, set: mountFlag(unix.MS_NODIRATIME, true)},
	{keys: []string{"diratime"}, set: mountFlag(unix.MS_NODIRATIME, false)},
	// As the kernel reads them for tmpfs: strictatime wins over noatime,
	// which wins over relatime, the default; so relatime and norelatime
	// change nothing (strictatime,relatime is strictatime, noatime,relatime
	// noatime), and nostrictatime and atime undo the others.
	{keys: []string{"strictatime"}, set: mountFlag(unix.MS_STRICTATIME, true)},
	{keys: []string{"nostrictatime"}, set: mountFlag(unix.MS_STRICTATIME, false)},
	{keys: []string{"relatime", "norelatime"}, set: ignoreOpt},
	// Generic options that only mean something to mount(8), fstab or
	// systemd, or are always on (default_permissions).
	{keys: []string{"async", "auto", "noauto", "user", "nouser", "users", "owner",
		"group", "defaults", "_netdev", "nofail", "silent", "loud", "default_permissions"},
		set: ignoreOpt},
}

func ignoreOpt(*mountOptions, sysEnv, string) error { return nil }

func mountFlag(flag uintptr, on bool) func(*mountOptions, sysEnv, string) error {
	return func(o *mountOptions, _ sysEnv, _ string) error {
		if on {
			o.MountFlags |= flag
		} else {
			o.MountFlags &^= flag
		}
		return nil
	}
}

func setSize(o *mountOptions, env sysEnv, v string) error {
	n, err := parseSize(v, env)
	o.Size, o.SizeSpec, o.sizeGiven = n, v, true
	return err
}

// ignoredKey reports whether an -o key without a definition is still
// accepted: x-* (userspace options of mount(8) and systemd) and comment=.
func ignoredKey(key string) bool {
	return strings.HasPrefix(key, "x-") || key == "comment"
}

func findFlag(name string, short bool) *optDef {
	for i := range optDefs {
		d := &optDefs[i]
		if (short && d.short == name) || (!short && d.flag != "" && d.flag == name) {
			return d
		}
	}
	return nil
}

func findKey(key string) *optDef {
	for i := range optDefs {
		for _, k := range optDefs[i].keys {
			if k == key {
				return &optDefs[i]
			}
		}
	}
	return nil
}

// optItem is one option found on the command line, not yet applied.
type optItem struct {
	def    *optDef
	value  string
	origin string // as written, for messages: "--size", "-o size=1x"
}

// scanArgs splits args into positional arguments and options. Options may
// come before, between and after positional arguments (mount.fuse3 puts
// -o last); "--" ends the options. It only checks the syntax: known names,
// values present where needed.
func scanArgs(args []string) (pos []string, items []optItem, err error) {
	for i := 0; i < len(args); i++ {
		a := args[i]
		switch {
		case a == "--":
			return append(pos, args[i+1:]...), items, nil
		case a == "-" || !strings.HasPrefix(a, "-"):
			pos = append(pos, a)
			continue
		case a == "-o":
			if i+1 == len(args) {
				return nil, nil, usagef("option -o needs a value (-o key=value,...)")
			}
			i++
			its, err := scanO(args[i])
			if err != nil {
				return nil, nil, err
			}
			items = append(items, its...)
			continue
		case strings.HasPrefix(a, "-o") && !strings.HasPrefix(a, "--"):
			// -okey=value,... as libfuse accepts it.
			its, err := scanO(a[2:])
			if err != nil {
				return nil, nil, err
			}
			items = append(items, its...)
			continue
		}
		name, value, hasValue := strings.Cut(strings.TrimLeft(a, "-"), "=")
		var d *optDef
		if !strings.HasPrefix(a, "--") && len(name) == 1 {
			d = findFlag(name, true)
		}
		if d == nil {
			d = findFlag(name, false)
		}
		if d == nil {
			return nil, nil, usagef("unknown option %s", strings.SplitN(a, "=", 2)[0])
		}
		flag := a
		if hasValue {
			flag = a[:len(a)-len(value)-1]
		}
		switch {
		case d.value && !hasValue:
			if i+1 == len(args) {
				return nil, nil, usagef("option %s needs a value", flag)
			}
			i++
			value = args[i]
		case !d.value && hasValue:
			b, err := strconv.ParseBool(value)
			if err != nil {
				return nil, nil, usagef("option %s takes no value", flag)
			}
			if !b {
				continue
			}
		}
		items = append(items, optItem{def: d, value: value, origin: flag})
	}
	return pos, items, nil
}

// scanO splits an -o string: key[=value],...
func scanO(s string) ([]optItem, error) {
	var items []optItem
	for _, kv := range strings.Split(s, ",") {
		if kv == "" {
			continue
		}
		key, value, hasValue := strings.Cut(kv, "=")
		d := findKey(key)
		if d == nil {
			if ignoredKey(key) {
				continue
			}
			return nil, usagef("unknown mount option %q", kv)
		}
		if d.value && !hasValue {
			return nil, usagef("mount option %s needs a value (%s=...)", key, key)
		}
		if !d.value && hasValue {
			return nil, usagef("mount option %s takes no value", key)
		}
		items = append(items, optItem{def: d, value: value, origin: "-o " + kv})
	}
	return items, nil
}

// applyItems sets the options on o, in order: the last of repeated options
// wins.
func applyItems(o *mountOptions, env sysEnv, items []optItem) error {
	for _, it := range items {
		if err := it.def.set(o, env, it.value); err != nil {
			if o, ok := strings.CutPrefix(it.origin, "-o "); ok {
				return usagef("invalid mount option %s: %v", showOpt(o), err)
			}
			return usagef("invalid value %q for %s: %v", it.value, it.origin, err)
		}
	}
	return nil
}

// showOpt renders an option for a one-line message: as it is when it is
// plain text, quoted when it holds control characters or is not UTF-8, and
// cut short when it is long.
func showOpt(s string) string {
	const max = 120
	cut := len(s) > max
	if cut {
		s = s[:max]
	}
	if q := strconv.Quote(s); q[1:len(q)-1] != s {
		s = q
	}
	if cut {
		s += "…"
	}
	return s
}

// parseMountArgs parses the arguments of `mmapfs mount`: options and
// [SOURCE] MOUNTPOINT.
func parseMountArgs(args []string, env sysEnv) (*mountOptions, error) {
	pos, items, err := scanArgs(args)
	if err != nil {
		return nil, err
	}
	o := defaultOptions(env)
	if err := applyItems(o, env, items); err != nil {
		return nil, err
	}
	if o.Help {
		return o, nil
	}
	if o.Passthrough == "on" && o.MountFlags&unix.MS_STRICTATIME != 0 && o.MountFlags&unix.MS_RDONLY == 0 {
		return nil, usagef("--passthrough=on and strictatime exclude each other: every read must reach the server, which keeps atime (auto means off with strictatime)")
	}
	if o.Store != "" {
		if o.MemDir != "" {
			return nil, usagef("--store and --memdir exclude each other: a persistent store keeps its data in the store directory")
		}
		if !o.sizeGiven {
			// The data is on the store's filesystem, not in memory:
			// that filesystem is the limit.
			o.Size, o.SizeSpec = 0, "0"
		}
		if o.Passthrough == "on" && o.Size > 0 {
			return nil, usagef("--passthrough=on and size= exclude each other with --store: the kernel's writes to the store would not keep the limit (leave size= out: the store's filesystem is the limit)")
		}
	}
	switch len(pos) {
	case 0:
		return nil, usagef("missing mount point (usage: mmapfs mount [options] MOUNTPOINT)")
	case 1:
		o.Mountpoint = pos[0]
	case 2:
		if o.Source == "" { // fsname= wins over SOURCE
			o.Source = pos[0]
		}
		o.Mountpoint = pos[1]
	default:
		return nil, usagef("too many arguments: %q (usage: mmapfs mount [options] [SOURCE] MOUNTPOINT)", pos)
	}
	if o.Mountpoint == "" {
		return nil, usagef("empty mount point")
	}
	return o, nil
}
