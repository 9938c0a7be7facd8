package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func runArgs(args ...string) (code int, stdout, stderr string) {
	var out, errb bytes.Buffer
	code = run(append([]string{"mmapfs"}, args...), &out, &errb, nil)
	return code, out.String(), errb.String()
}

func TestHelp(t *testing.T) {
	for _, args := range [][]string{{"help"}, {"--help"}, {"-h"}, {"mount", "--help"}, {"mount", "-h"}} {
		code, out, errs := runArgs(args...)
		if code != 0 || errs != "" {
			t.Errorf("%q: exit %d, stderr %q", args, code, errs)
		}
		for _, section := range []string{"NAME", "SYNOPSIS", "DESCRIPTION", "COMMANDS", "OPTIONS",
			"EXAMPLES", "EXIT STATUS", "FILES", "NOTES", "--size", "-o size=", "fusermount3 -u", "fuse.mmapfs"} {
			if !strings.Contains(out, section) {
				t.Errorf("%q: help lacks %q", args, section)
			}
		}
		if strings.Contains(out, "{{") {
			t.Errorf("%q: unreplaced placeholder in help", args)
		}
	}
}

// Every option in the table appears in the manual.
func TestHelpDocumentsEveryOption(t *testing.T) {
	_, out, _ := runArgs("--help")
	for _, d := range optDefs {
		if d.flag != "" && !strings.Contains(out, "--"+d.flag) {
			t.Errorf("help lacks --%s", d.flag)
		}
		for _, k := range d.keys {
			if !strings.Contains(out, k) {
				t.Errorf("help lacks -o %s", k)
			}
		}
	}
}

func TestVersion(t *testing.T) {
	for _, arg := range []string{"version", "--version"} {
		code, out, errs := runArgs(arg)
		if code != 0 || errs != "" || !strings.HasPrefix(out, "mmapfs ") || !strings.Contains(out, "go-fuse ") {
			t.Errorf("%s: exit %d, stdout %q, stderr %q", arg, code, out, errs)
		}
	}
}

func TestUsageErrors(t *testing.T) {
	for _, c := range []struct {
		args []string
		want string
	}{
		{nil, "missing command"},
		{[]string{"frobnicate"}, `unknown command "frobnicate"`},
		{[]string{"none"}, `unknown command "none"`},
		{[]string{"--size", "1G"}, "missing command"},
		{[]string{"--bogus"}, "unknown option --bogus"},
		{[]string{"mount"}, "missing mount point"},
		{[]string{"mount", "-o", "bogus", "/mnt"}, `unknown mount option "bogus"`},
		{[]string{"none", "/mnt", "-o", "size=lots"}, "invalid mount option size=lots"},
		{[]string{"none", "/mnt", "-o", "rw,bogus"}, `unknown mount option "bogus"`},
		{[]string{"none", "/mnt", "--bogus"}, "unknown option --bogus"},
	} {
		code, out, errs := runArgs(c.args...)
		if code != 2 {
			t.Errorf("%q: exit %d, want 2", c.args, code)
		}
		if out != "" {
			t.Errorf("%q: stdout %q", c.args, out)
		}
		if !strings.HasPrefix(errs, "mmapfs: ") || !strings.Contains(errs, c.want) || strings.Count(errs, "\n") != 1 {
			t.Errorf("%q: stderr %q, want one line with %q", c.args, errs, c.want)
		}
	}
}

func TestBadMountpoint(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "file")
	if err := os.WriteFile(file, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	missing := filepath.Join(dir, "missing")
	for _, c := range []struct {
		mnt, want string
	}{
		{missing, "mmapfs: mount point " + missing + ": no such file or directory\n"},
		{file, "mmapfs: mount point " + file + ": not a directory\n"},
	} {
		code, _, errs := runArgs("mount", "--memdir", dir, c.mnt)
		if code != 1 || errs != c.want {
			t.Errorf("mount %s: exit %d, stderr %q; want 1, %q", c.mnt, code, errs, c.want)
		}
	}
	if entries, _ := os.ReadDir(dir); len(entries) != 1 {
		t.Errorf("memdir has %d entries, want only the file: a store was created", len(entries))
	}
}

func TestHelperFormNeedsTwoArguments(t *testing.T) {
	var out, errb bytes.Buffer
	code := run([]string{"/sbin/mount.fuse.mmapfs", "/mnt"}, &out, &errb, nil)
	if code != 2 || !strings.Contains(errb.String(), "SOURCE MOUNTPOINT") {
		t.Errorf("exit %d, stderr %q", code, errb.String())
	}
}
