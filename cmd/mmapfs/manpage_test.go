package main

import (
	"os/exec"
	"strings"
	"testing"
)

// helpSection returns the body of a section of --help.
func helpSection(t *testing.T, title string) string {
	t.Helper()
	_, out, _ := runArgs("--help")
	for _, s := range manSections(out) {
		if s.title == title {
			return strings.Join(s.lines, "\n") + "\n"
		}
	}
	t.Fatalf("help has no section %s", title)
	return ""
}

// SYNOPSIS and COMMANDS name every command, and each is one.
func TestHelpListsEveryCommand(t *testing.T) {
	synopsis := helpSection(t, "SYNOPSIS")
	commands := helpSection(t, "COMMANDS")
	for _, cmd := range []string{"mount", "fsck", "version", "help"} {
		if !strings.Contains(synopsis, "mmapfs "+cmd) {
			t.Errorf("SYNOPSIS lacks mmapfs %s", cmd)
		}
		if !strings.Contains("\n"+commands, "\n"+cmd+" ") {
			t.Errorf("COMMANDS lacks %s", cmd)
		}
		_, _, errs := runArgs(cmd, "--help")
		if strings.Contains(errs, "unknown command") {
			t.Errorf("%s: %s", cmd, errs)
		}
	}
	_, _, errs := runArgs("frobnicate")
	if !strings.Contains(errs, "commands: mount, fsck, stats, resize, version, help") {
		t.Errorf("unknown command: %q", errs)
	}
}

// The man page is the text of --help: every heading a section, every line
// of text in it, nothing of this machine's figures, no line that roff
// would take for a request.
func TestManPage(t *testing.T) {
	code, man, errs := runArgs("help", "--man")
	if code != 0 || errs != "" {
		t.Fatalf("exit %d, stderr %q", code, errs)
	}
	if !strings.HasPrefix(man, ".TH MMAPFS 8 ") {
		t.Errorf("no .TH: %q", man[:min(len(man), 80)])
	}
	_, help, _ := runArgs("--help")
	for _, s := range manSections(help) {
		if !strings.Contains(man, "\n.SH "+roffEscape(s.title)+"\n") {
			t.Errorf("man page lacks section %s", s.title)
		}
	}
	for _, want := range []string{
		"\nmmapfs \\- a tmpfs in userspace: a FUSE filesystem whose file data lives in memory\\-mapped store files\n",
		"\n\\-\\-log\\-file FILE, \\-o log_file=FILE\n",
		"\nmmapfs fsck [\\-\\-repair] [\\-\\-quiet] \\-\\-store DIR\n",
		"Default: 50% of RAM.\n",
	} {
		if !strings.Contains(man, want) {
			t.Errorf("man page lacks %q", want)
		}
	}
	if strings.Contains(man, "{{") || strings.Contains(man, " here)") {
		t.Errorf("man page has this machine's defaults")
	}
	for _, line := range strings.Split(man, "\n") {
		if (strings.HasPrefix(line, ".") || strings.HasPrefix(line, "'")) &&
			!strings.HasPrefix(line, ".TH ") && !strings.HasPrefix(line, ".SH ") &&
			line != ".nf" && line != ".fi" && !strings.HasPrefix(line, `.\"`) {
			t.Errorf("line taken for a request: %q", line)
		}
	}
	// groff, where there is one, renders it without a warning.
	if _, err := exec.LookPath("groff"); err == nil {
		cmd := exec.Command("groff", "-man", "-Tutf8", "-ww", "-z")
		cmd.Stdin = strings.NewReader(man)
		if out, err := cmd.CombinedOutput(); err != nil || len(out) != 0 {
			t.Errorf("groff: %v: %s", err, out)
		}
	}
}
