package main

import (
	"testing"

	"golang.org/x/sys/unix"
)

func TestParseRemount(t *testing.T) {
	env := sysEnv{RAM: 8 << 30, PageSize: 4096}
	args := []string{"mmapfs", "/mnt/x", "-o", "ro,relatime,remount,nosuid,user_id=0,group_id=0,default_permissions,max_read=1048576,size=2G,mode=1777,dev,suid"}
	if !isRemount(args) || isRemount([]string{"mmapfs", "/mnt/x", "-o", "size=1G"}) {
		t.Fatal("isRemount")
	}
	r, err := parseRemount(args, env)
	if err != nil {
		t.Fatal(err)
	}
	if r.Mountpoint != "/mnt/x" || r.Flags != unix.MS_RDONLY {
		t.Errorf("mount point %q, flags %#x (suid after nosuid undoes it)", r.Mountpoint, r.Flags)
	}
	if r.Change.Size == nil || *r.Change.Size != 2<<30 || r.Change.Inodes != nil || r.Change.Huge != nil {
		t.Errorf("change: %+v", r.Change)
	}
	r, err = parseRemount([]string{"src", "/m", "-o", "rw,remount,nr_inodes=10k,huge=within_size,noatime"}, env)
	if err != nil {
		t.Fatal(err)
	}
	if r.Change.Size != nil || r.Change.Inodes == nil || *r.Change.Inodes != 10240 || *r.Change.Huge != "within_size" || r.Flags != unix.MS_NOATIME {
		t.Errorf("change: %+v, flags %#x", r.Change, r.Flags)
	}
	if _, err := parseRemount([]string{"src", "/m", "-o", "remount,size=lots"}, env); err == nil {
		t.Error("a bad size was taken")
	}
	if f := flagsOf("ro,nosuid,nodev,noexec,relatime"); f != unix.MS_RDONLY|unix.MS_NOSUID|unix.MS_NODEV|unix.MS_NOEXEC {
		t.Errorf("flagsOf: %#x", f)
	}
}
