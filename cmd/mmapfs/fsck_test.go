package main

import (
	"fmt"
	"os"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

// openPty returns both ends of a new pseudo-terminal.
func openPty(t *testing.T) (master, slave *os.File) {
	t.Helper()
	m, err := os.OpenFile("/dev/ptmx", os.O_RDWR|unix.O_NOCTTY, 0)
	if err != nil {
		t.Skipf("no pseudo-terminal: %v", err)
	}
	t.Cleanup(func() { m.Close() })
	if err := unix.IoctlSetPointerInt(int(m.Fd()), unix.TIOCSPTLCK, 0); err != nil {
		t.Fatal(err)
	}
	n, err := unix.IoctlGetInt(int(m.Fd()), unix.TIOCGPTN)
	if err != nil {
		t.Fatal(err)
	}
	s, err := os.OpenFile(fmt.Sprintf("/dev/pts/%d", n), os.O_RDWR|unix.O_NOCTTY, 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return m, s
}

// On a terminal a long part gets a bar with its figures, cleared at the
// end; a short part, or output that is no terminal, gets nothing.
func TestFsckProgress(t *testing.T) {
	master, slave := openPty(t)
	bar := newProgress(slave, "checking file data", 20000)
	_ = bar.Set(0)
	_ = bar.Finish()
	out := readUntil(t, master, slave, "MARK")
	if !strings.Contains(out, "  checking file data") || !strings.Contains(out, "[                              ] (0/20000)") ||
		!strings.HasSuffix(out, strings.Repeat(" ", 40)+"\r") {
		t.Errorf("bar drawn as %q", out)
	}

	for _, c := range []struct {
		name  string
		total int
		file  *os.File
	}{
		{"short", progressMin - 1, slave},
		{"file", 20000, nil},
	} {
		f := c.file
		if f == nil {
			var err error
			if f, err = os.CreateTemp(t.TempDir(), "out"); err != nil {
				t.Fatal(err)
			}
			defer f.Close()
		}
		bar := newProgress(f, "checking", c.total)
		_ = bar.Set(c.total / 2)
		_ = bar.Finish()
		if c.file == nil {
			if fi, _ := f.Stat(); fi.Size() != 0 {
				t.Errorf("%s: %d bytes written", c.name, fi.Size())
			}
		}
	}
	// Nothing more reached the terminal.
	if got := readUntil(t, master, slave, "end"); got != "" {
		t.Errorf("short part drew %q", got)
	}
}

// readUntil writes mark to the terminal's slave end and returns what the
// master end reads before it: a pty hands out what was written in as many
// reads as it likes.
func readUntil(t *testing.T, master, slave *os.File, mark string) string {
	t.Helper()
	if _, err := slave.WriteString(mark); err != nil {
		t.Fatal(err)
	}
	var out []byte
	buf := make([]byte, 4096)
	for !strings.HasSuffix(string(out), mark) {
		n, err := master.Read(buf)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, buf[:n]...)
	}
	return strings.TrimSuffix(string(out), mark)
}
