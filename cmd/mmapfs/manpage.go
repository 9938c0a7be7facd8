package main

import (
	"fmt"
	"io"
	"regexp"
	"runtime/debug"
	"strings"
)

// machineDefault matches the figures of this machine in the manual
// ("({{SIZE}} here)"), which a man page, made for any machine, leaves out.
var machineDefault = regexp.MustCompile(`\s*\(\{\{[A-Z]+\}\}\s+here\)`)

// manSection is one section of the manual: a heading and its lines, less
// the indent of the section's body.
type manSection struct {
	title string
	lines []string
}

// manSections splits the text of the manual at its headings: the lines
// that do not start with a space.
func manSections(text string) []manSection {
	var secs []manSection
	for _, line := range strings.Split(strings.TrimRight(text, "\n"), "\n") {
		if line != "" && line[0] != ' ' {
			secs = append(secs, manSection{title: line})
			continue
		}
		if len(secs) == 0 {
			continue
		}
		s := &secs[len(secs)-1]
		s.lines = append(s.lines, strings.TrimPrefix(line, "    "))
	}
	for i := range secs {
		s := &secs[i]
		for len(s.lines) > 0 && s.lines[len(s.lines)-1] == "" {
			s.lines = s.lines[:len(s.lines)-1]
		}
	}
	return secs
}

// writeManPage writes the manual as the man page mmapfs(8), in roff: the
// text of --help, each section under its heading and laid out as in
// --help (no fill), less the defaults of this machine. NAME is one line,
// "mmapfs \- ...", as whatis(1) and mandb(8) read it.
func writeManPage(w io.Writer) {
	bi, _ := debug.ReadBuildInfo()
	var b strings.Builder
	fmt.Fprintf(&b, ".TH MMAPFS 8 \"\" \"mmapfs %s\" \"System Administration\"\n", roffEscape(version(bi)))
	b.WriteString(".\\\" Made by `mmapfs help --man` from the text of `mmapfs --help`.\n")
	for _, s := range manSections(machineDefault.ReplaceAllString(manual, "")) {
		fmt.Fprintf(&b, ".SH %s\n", roffEscape(s.title))
		if s.title == "NAME" {
			var words []string
			for _, l := range s.lines {
				words = append(words, strings.Fields(l)...)
			}
			b.WriteString(roffLine(strings.Join(words, " ")))
			continue
		}
		b.WriteString(".nf\n")
		for _, l := range s.lines {
			b.WriteString(roffLine(l))
		}
		b.WriteString(".fi\n")
	}
	fmt.Fprint(w, b.String())
}

// roffEscape makes text print as itself: a backslash as \e, a hyphen as
// \- (a minus sign that copies as "-", as options need).
func roffEscape(s string) string {
	return strings.NewReplacer(`\`, `\e`, "-", `\-`).Replace(s)
}

// roffLine is one line of text: escaped, and with \& in front of a
// leading dot or apostrophe, which would make it a request.
func roffLine(s string) string {
	s = roffEscape(s)
	if strings.HasPrefix(s, ".") || strings.HasPrefix(s, "'") {
		s = `\&` + s
	}
	return s + "\n"
}
