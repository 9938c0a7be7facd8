package mountinfo

import (
	"os"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

func TestUnescape(t *testing.T) {
	for in, want := range map[string]string{
		`/mnt/a\040b`:   "/mnt/a b",
		`/plain`:        "/plain",
		`/x\011y\012z`:  "/x\ty\nz",
		`/back\134lash`: `/back\lash`,
		`/a\011\134x`:   "/a\t\\x",
		`/trail\04`:     `/trail\04`,
		`/end\04`:       `/end\04`,
	} {
		if got := Unescape(in); got != want {
			t.Errorf("Unescape(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestEscape(t *testing.T) {
	for in, want := range map[string]string{
		"/mnt/a b":     `/mnt/a\040b`,
		"/plain":       `/plain`,
		"/x\ty\nz":     `/x\011y\012z`,
		`/back\lash`:   `/back\134lash`,
		"/ünïcode dir": `/ünïcode\040dir`,
	} {
		got := Escape(in)
		if got != want {
			t.Errorf("Escape(%q) = %q, want %q", in, got, want)
		}
		if back := Unescape(got); back != in {
			t.Errorf("Unescape(Escape(%q)) = %q", in, back)
		}
	}
}

func TestParse(t *testing.T) {
	text := `22 1 8:1 / / rw,relatime shared:1 - ext4 /dev/sda1 rw
43 22 0:40 /sub /mnt/my\040dir rw,nosuid,nodev,relatime shared:5 master:1 - fuse.mmapfs none rw,user_id=0,group_id=0
`
	es, err := Parse(strings.NewReader(text))
	if err != nil {
		t.Fatal(err)
	}
	if len(es) != 2 {
		t.Fatalf("%d entries", len(es))
	}
	e := es[1]
	if e.ID != "43" || e.Root != "/sub" || e.Mountpoint != "/mnt/my dir" || e.Options != "rw,nosuid,nodev,relatime" ||
		e.FsType != "fuse.mmapfs" || e.Source != "none" || e.Dev != "0:40" || e.SuperOpts != "rw,user_id=0,group_id=0" {
		t.Errorf("entry %+v", e)
	}
	if v, ok := e.SuperOption("user_id"); !ok || v != "0" {
		t.Errorf("user_id = %q, %v", v, ok)
	}
	if _, ok := e.SuperOption("noswap"); ok {
		t.Error("noswap found")
	}
	if _, err := Parse(strings.NewReader("garbage\n")); err == nil {
		t.Error("malformed mountinfo: no error")
	}
}

// The mount of a directory's device is found in this process's table.
func TestOfDev(t *testing.T) {
	var st unix.Stat_t
	if err := unix.Stat("/proc", &st); err != nil {
		t.Fatal(err)
	}
	e, ok, err := OfDev(st.Dev)
	if err != nil || !ok {
		t.Fatalf("OfDev(/proc) = %+v, %v, %v", e, ok, err)
	}
	if e.FsType != "proc" || e.Dev != DevString(st.Dev) {
		t.Errorf("OfDev(/proc) = %+v", e)
	}
	if _, err := Read("/nonexistent/mountinfo"); !os.IsNotExist(err) {
		t.Errorf("Read of a missing file: %v", err)
	}
}
