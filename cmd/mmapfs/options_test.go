package main

import (
	"errors"
	"strings"
	"testing"

	"go.uber.org/zap/zapcore"
	"golang.org/x/sys/unix"
)

// testEnv is a machine with 8 GiB of RAM and 4 KiB pages, run by 1000:1000.
var testEnv = sysEnv{RAM: 8 << 30, PageSize: 4096, UID: 1000, GID: 1000}

func TestParseSize(t *testing.T) {
	for _, c := range []struct {
		in   string
		want int64
	}{
		{"0", 0},
		{"1", 4096}, // rounded up to a page, as tmpfs
		{"4096", 4096},
		{"4097", 8192},
		{"64k", 64 << 10},
		{"64K", 64 << 10},
		{"64KiB", 64 << 10},
		{"64kib", 64 << 10},
		{"64KB", 64 << 10},
		{"12m", 12 << 20},
		{"12M", 12 << 20},
		{"12MiB", 12 << 20},
		{"1g", 1 << 30},
		{"1G", 1 << 30},
		{"1GiB", 1 << 30},
		{"1.5G", 3 << 29},
		{"2t", 2 << 40},
		{"2T", 2 << 40},
		{"1p", 1 << 50},
		{"100b", 4096},
		{"50%", 4 << 30},
		{"100%", 8 << 30},
		{"200%", 16 << 30},
		{"1%", ((8<<30)/100 + 4095) / 4096 * 4096},
		{"0%", 0},
	} {
		got, err := parseSize(c.in, testEnv)
		if err != nil || got != c.want {
			t.Errorf("parseSize(%q) = %d, %v; want %d", c.in, got, err, c.want)
		}
	}
}

func TestParseSizeGarbage(t *testing.T) {
	for _, in := range []string{
		"", "x", "-1", "+1", "1x", "1gg", "1 G", "1.2.3", ".", "1e3", "0x10",
		"1Gb2", "1bb", "1ib", "50%%", "50.5%", "-5%", "%", "1g%",
		"8e", "99999999999999999999", "16777216T",
	} {
		if n, err := parseSize(in, testEnv); err == nil {
			t.Errorf("parseSize(%q) = %d, want an error", in, n)
		}
	}
}

func TestParseCount(t *testing.T) {
	for _, c := range []struct {
		in   string
		want uint64
	}{
		{"0", 0}, {"1", 1}, {"1000", 1000}, {"10k", 10240}, {"2M", 2 << 20}, {"1g", 1 << 30},
	} {
		got, err := parseCount(c.in)
		if err != nil || got != c.want {
			t.Errorf("parseCount(%q) = %d, %v; want %d", c.in, got, err, c.want)
		}
	}
	for _, in := range []string{"", "-1", "k", "1x", "10%"} {
		if _, err := parseCount(in); err == nil {
			t.Errorf("parseCount(%q): want an error", in)
		}
	}
}

func TestParseMode(t *testing.T) {
	for in, want := range map[string]uint32{"1777": 0o1777, "0755": 0o755, "755": 0o755, "0": 0, "7777": 0o7777} {
		got, err := parseMode(in)
		if err != nil || got != want {
			t.Errorf("parseMode(%q) = %o, %v; want %o", in, got, err, want)
		}
	}
	for _, in := range []string{"", "8", "0o755", "17777", "rwx", "-1"} {
		if _, err := parseMode(in); err == nil {
			t.Errorf("parseMode(%q): want an error", in)
		}
	}
}

func TestParseID(t *testing.T) {
	if id, err := parseID("1234", false); err != nil || id != 1234 {
		t.Errorf("parseID(1234) = %d, %v", id, err)
	}
	if id, err := parseID("root", false); err != nil || id != 0 {
		t.Errorf("parseID(root) = %d, %v", id, err)
	}
	if id, err := parseID("root", true); err != nil || id != 0 {
		t.Errorf("parseID(root, group) = %d, %v", id, err)
	}
	for _, in := range []string{"", "4294967295", "-1", "no-such-user-xyzzy"} {
		if _, err := parseID(in, false); err == nil {
			t.Errorf("parseID(%q): want an error", in)
		}
	}
}

func TestDefaults(t *testing.T) {
	o, err := parseMountArgs([]string{"/mnt"}, testEnv)
	if err != nil {
		t.Fatal(err)
	}
	want := mountOptions{
		Mountpoint: "/mnt",
		Size:       4 << 30, // 50% of RAM
		SizeSpec:   "50%",
		Inodes:     (8 << 30) / 4096 / 2, // half the pages of RAM
		Mode:       0o1777,
		UID:        1000,
		GID:        1000,
		LogLevel:   zapcore.InfoLevel,
		LogFormat:  "console",

		Passthrough: "auto",
	}
	if *o != want {
		t.Errorf("defaults:\n got %+v\nwant %+v", *o, want)
	}
}

func TestFlagsAndOEquivalent(t *testing.T) {
	flags := []string{"--size", "1G", "--inodes=10k", "--mode", "0755", "--uid", "12", "--gid=34",
		"--allow-other", "--debug", "--log-level", "debug", "--log-format=json", "--memdir", "/dev/shm",
		"--fsname", "scratch", "/mnt"}
	opts := []string{"-o", "size=1G,inodes=10k,mode=0755,uid=12,gid=34,allow_other,debug,log_level=debug,log_format=json,memdir=/dev/shm,fsname=scratch", "/mnt"}
	a, err := parseMountArgs(flags, testEnv)
	if err != nil {
		t.Fatal(err)
	}
	b, err := parseMountArgs(opts, testEnv)
	if err != nil {
		t.Fatal(err)
	}
	if *a != *b {
		t.Errorf("flags and -o differ:\nflags %+v\n   -o %+v", *a, *b)
	}
	if a.Size != 1<<30 || a.Inodes != 10240 || a.Mode != 0o755 || a.UID != 12 || a.GID != 34 ||
		!a.AllowOther || !a.Debug || a.LogLevel != zapcore.DebugLevel || a.LogFormat != "json" ||
		a.MemDir != "/dev/shm" || a.Source != "scratch" || a.Mountpoint != "/mnt" {
		t.Errorf("parsed %+v", *a)
	}
}

func TestSingleDashAndShortFlags(t *testing.T) {
	o, err := parseMountArgs([]string{"-size=2m", "-d", "-f", "-osize=4m,nr_inodes=5", "/mnt"}, testEnv)
	if err != nil {
		t.Fatal(err)
	}
	if o.Size != 4<<20 || o.Inodes != 5 || !o.Debug || !o.Foreground {
		t.Errorf("parsed %+v", *o)
	}
}

func TestLastOptionWins(t *testing.T) {
	o, err := parseMountArgs([]string{"--size", "1m", "-o", "size=2m", "/mnt", "--size=3m"}, testEnv)
	if err != nil {
		t.Fatal(err)
	}
	if o.Size != 3<<20 || o.SizeSpec != "3m" {
		t.Errorf("size = %d (%s), want 3 MiB", o.Size, o.SizeSpec)
	}
}

// The form mount.fuse3 uses: SOURCE MOUNTPOINT -o OPTIONS, with the generic
// options mount(8) and mount.fuse3 add.
func TestMountHelperForm(t *testing.T) {
	o, err := parseMountArgs([]string{"none", "/mnt/x", "-o", "rw,size=64m,dev,suid,nofail,_netdev,noauto,user,nouser,users,auto,defaults,exec,async,relatime,x-systemd.automount,x-gvfs-hide,comment=foo,default_permissions"}, testEnv)
	if err != nil {
		t.Fatal(err)
	}
	if o.Source != "none" || o.Mountpoint != "/mnt/x" || o.Size != 64<<20 || o.MountFlags != 0 {
		t.Errorf("parsed %+v", *o)
	}
	// fsname= wins over SOURCE.
	o, err = parseMountArgs([]string{"none", "/mnt/x", "-o", "fsname=data"}, testEnv)
	if err != nil || o.Source != "data" {
		t.Errorf("fsname: %+v, %v", o, err)
	}
}

func TestMountFlagOptions(t *testing.T) {
	o, err := parseMountArgs([]string{"-o", "ro,noexec,noatime,nodiratime", "/mnt"}, testEnv)
	if err != nil {
		t.Fatal(err)
	}
	want := uintptr(unix.MS_RDONLY | unix.MS_NOEXEC | unix.MS_NOATIME | unix.MS_NODIRATIME)
	if o.MountFlags != want {
		t.Errorf("MountFlags = %#x, want %#x", o.MountFlags, want)
	}
}

// The atime flags combine as the kernel combines them for tmpfs (checked
// with mount -t tmpfs): strictatime wins over noatime, relatime changes
// nothing, atime and nostrictatime undo noatime and strictatime.
func TestAtimeFlagOptions(t *testing.T) {
	for _, c := range []struct {
		opts string
		want uintptr
	}{
		{"relatime", 0},
		{"norelatime", 0},
		{"noatime", unix.MS_NOATIME},
		{"noatime,relatime", unix.MS_NOATIME},
		{"relatime,noatime", unix.MS_NOATIME},
		{"noatime,atime", 0},
		{"strictatime", unix.MS_STRICTATIME},
		{"strictatime,relatime", unix.MS_STRICTATIME},
		{"strictatime,noatime", unix.MS_STRICTATIME | unix.MS_NOATIME},
		{"strictatime,nostrictatime", 0},
		{"nodiratime", unix.MS_NODIRATIME},
		{"nodiratime,diratime", 0},
		{"strictatime,nodiratime", unix.MS_STRICTATIME | unix.MS_NODIRATIME},
		{"ro,strictatime", unix.MS_RDONLY | unix.MS_STRICTATIME},
	} {
		o, err := parseMountArgs([]string{"-o", c.opts, "/mnt"}, testEnv)
		if err != nil {
			t.Errorf("-o %s: %v", c.opts, err)
			continue
		}
		if o.MountFlags != c.want {
			t.Errorf("-o %s: MountFlags = %#x, want %#x", c.opts, o.MountFlags, c.want)
		}
	}
}

// Under strictatime every read must reach the server: passthrough=on is
// refused, auto is left to the mount to turn off; on a read-only mount
// strictatime means nothing, and passthrough stays allowed.
func TestStrictatimePassthrough(t *testing.T) {
	_, err := parseMountArgs([]string{"-o", "strictatime,passthrough=on", "/mnt"}, testEnv)
	if err == nil || !strings.Contains(err.Error(), "strictatime") {
		t.Errorf("strictatime,passthrough=on: %v, want a usage error", err)
	}
	var ue *usageError
	if !errors.As(err, &ue) {
		t.Errorf("strictatime,passthrough=on: %T, want a usage error", err)
	}
	for _, opts := range []string{"strictatime", "strictatime,passthrough=auto", "ro,strictatime,passthrough=on", "strictatime,nostrictatime,passthrough=on"} {
		if _, err := parseMountArgs([]string{"-o", opts, "/mnt"}, testEnv); err != nil {
			t.Errorf("-o %s: %v", opts, err)
		}
	}
}

func TestBoolFlagValues(t *testing.T) {
	o, err := parseMountArgs([]string{"--debug=false", "--allow-other=true", "/mnt"}, testEnv)
	if err != nil {
		t.Fatal(err)
	}
	if o.Debug || !o.AllowOther {
		t.Errorf("parsed %+v", *o)
	}
}

func TestDoubleDash(t *testing.T) {
	o, err := parseMountArgs([]string{"--size", "1m", "--", "-weird"}, testEnv)
	if err != nil {
		t.Fatal(err)
	}
	if o.Mountpoint != "-weird" {
		t.Errorf("mountpoint %q", o.Mountpoint)
	}
}

func TestHelpFlag(t *testing.T) {
	for _, args := range [][]string{{"--help"}, {"-h"}, {"/mnt", "--help"}} {
		o, err := parseMountArgs(args, testEnv)
		if err != nil || !o.Help {
			t.Errorf("%q: %+v, %v", args, o, err)
		}
	}
}

// Every bad argument gives one line that names what is wrong.
func TestParseErrors(t *testing.T) {
	for _, c := range []struct {
		args []string
		want string
	}{
		{nil, "missing mount point"},
		{[]string{"a", "b", "c"}, "too many arguments"},
		{[]string{"--bogus", "/mnt"}, "unknown option --bogus"},
		{[]string{"--bogus=1", "/mnt"}, "unknown option --bogus"},
		{[]string{"-x", "/mnt"}, "unknown option -x"},
		{[]string{"/mnt", "--size"}, "option --size needs a value"},
		{[]string{"/mnt", "-o"}, "option -o needs a value"},
		{[]string{"--size", "12x", "/mnt"}, `invalid value "12x" for --size`},
		{[]string{"--size=12x", "/mnt"}, `invalid value "12x" for --size`},
		{[]string{"-o", "size=12x", "/mnt"}, "invalid mount option size=12x"},
		{[]string{"-o", "size", "/mnt"}, "mount option size needs a value"},
		{[]string{"-o", "allow_other=1", "/mnt"}, "mount option allow_other takes no value"},
		{[]string{"-o", "bogus", "/mnt"}, `unknown mount option "bogus"`},
		{[]string{"-o", "bogus=1", "/mnt"}, `unknown mount option "bogus=1"`},
		{[]string{"-o", "sync", "/mnt"}, `unknown mount option "sync"`},
		{[]string{"-o", "mode=8", "/mnt"}, "invalid mount option mode=8"},
		{[]string{"-o", "uid=-3", "/mnt"}, "invalid mount option uid=-3"},
		{[]string{"-o", "inodes=lots", "/mnt"}, "invalid mount option inodes=lots"},
		{[]string{"--log-level", "loud", "/mnt"}, `invalid value "loud" for --log-level`},
		{[]string{"--log-format", "xml", "/mnt"}, `invalid value "xml" for --log-format`},
		{[]string{"--memdir=", "/mnt"}, "invalid value"},
		{[]string{"--debug=maybe", "/mnt"}, "option --debug takes no value"},
		{[]string{""}, "empty mount point"},
	} {
		_, err := parseMountArgs(c.args, testEnv)
		if err == nil {
			t.Errorf("%q: no error, want %q", c.args, c.want)
			continue
		}
		if _, ok := err.(*usageError); !ok {
			t.Errorf("%q: %T is not a usage error", c.args, err)
		}
		if !strings.Contains(err.Error(), c.want) || strings.Contains(err.Error(), "\n") {
			t.Errorf("%q: error %q, want one line containing %q", c.args, err, c.want)
		}
	}
}

func TestIsFuseFdPath(t *testing.T) {
	if !isFuseFdPath("/dev/fd/3") || isFuseFdPath("/dev/fd/x") || isFuseFdPath("/mnt") {
		t.Error("isFuseFdPath")
	}
}

func TestStoreOption(t *testing.T) {
	o, err := parseMountArgs([]string{"--store", "/var/lib/s", "/mnt"}, testEnv)
	if err != nil {
		t.Fatal(err)
	}
	if o.Store != "/var/lib/s" || o.Size != 0 {
		t.Errorf("--store: Store %q Size %d; want /var/lib/s and no size limit", o.Store, o.Size)
	}
	o, err = parseMountArgs([]string{"-o", "store=/var/lib/s,size=1G", "/mnt"}, testEnv)
	if err != nil {
		t.Fatal(err)
	}
	if o.Store != "/var/lib/s" || o.Size != 1<<30 {
		t.Errorf("-o store=,size=1G: Store %q Size %d", o.Store, o.Size)
	}
	if _, err := parseMountArgs([]string{"--store", "/s", "--memdir", "/dev/shm", "/mnt"}, testEnv); err == nil || !strings.Contains(err.Error(), "exclude") {
		t.Errorf("--store with --memdir: %v; want an error", err)
	}
	if _, err := parseMountArgs([]string{"-o", "store=", "/mnt"}, testEnv); err == nil {
		t.Error("store= with no directory was accepted")
	}
}

func TestFsckArgs(t *testing.T) {
	var out, errb strings.Builder
	if code := cmdFsck(nil, &out, &errb); code != 2 || !strings.Contains(errb.String(), "which store") {
		t.Errorf("no store: exit %d, %q", code, errb.String())
	}
	errb.Reset()
	if code := cmdFsck([]string{"--frobnicate", "x"}, &out, &errb); code != 2 {
		t.Errorf("unknown flag: exit %d", code)
	}
	errb.Reset()
	dir := t.TempDir()
	if code := cmdFsck([]string{"--store", dir}, &out, &errb); code != fsckFailed || !strings.Contains(errb.String(), "not an mmapfs store") {
		t.Errorf("an empty directory: exit %d, %q", code, errb.String())
	}
	out.Reset()
	if code := cmdFsck([]string{"--help"}, &out, &errb); code != 0 || !strings.Contains(out.String(), "--repair") {
		t.Errorf("--help: exit %d", code)
	}
}

// huge= and noswap, as flags and -o keys, for the store's tmpfs.
func TestHugeNoswapOptions(t *testing.T) {
	for _, c := range []struct {
		args   []string
		huge   string
		noswap bool
	}{
		{[]string{"/mnt"}, "", false},
		{[]string{"-o", "huge=within_size", "/mnt"}, "within_size", false},
		{[]string{"--huge", "always", "/mnt"}, "always", false},
		{[]string{"--huge=advise", "/mnt"}, "advise", false},
		{[]string{"-o", "huge=never,noswap", "/mnt"}, "never", true},
		{[]string{"--noswap", "/mnt"}, "", true},
		{[]string{"--noswap=false", "/mnt"}, "", false},
		{[]string{"mmapfs", "/mnt", "-o", "rw,size=1g,huge=within_size,noswap"}, "within_size", true},
		{[]string{"--huge", "always", "-o", "huge=advise", "/mnt"}, "advise", false}, // the last wins
	} {
		o, err := parseMountArgs(c.args, testEnv)
		if err != nil {
			t.Errorf("%q: %v", c.args, err)
			continue
		}
		if o.Huge != c.huge || o.NoSwap != c.noswap {
			t.Errorf("%q: huge %q, noswap %v; want %q, %v", c.args, o.Huge, o.NoSwap, c.huge, c.noswap)
		}
	}
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"-o", "huge=sometimes", "/mnt"}, "invalid mount option huge=sometimes: want never, always, within_size, advise"},
		{[]string{"--huge", "yes", "/mnt"}, `invalid value "yes" for --huge`},
		{[]string{"-o", "huge", "/mnt"}, "mount option huge needs a value"},
		{[]string{"/mnt", "--huge"}, "option --huge needs a value"},
		{[]string{"-o", "noswap=1", "/mnt"}, "mount option noswap takes no value"},
		{[]string{"--noswap=perhaps", "/mnt"}, "option --noswap takes no value"},
	} {
		_, err := parseMountArgs(c.args, testEnv)
		var ue *usageError
		if !errors.As(err, &ue) || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%q: error %v, want a usage error with %q", c.args, err, c.want)
		}
	}
}
