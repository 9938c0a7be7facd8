package main

import (
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"golang.org/x/sys/unix"

	"mmapfs/store"
)

// Exit statuses of fsck, as e2fsck's.
const (
	fsckClean      = 0 // no problems
	fsckRepaired   = 1 // problems found, all repaired
	fsckUnrepaired = 4 // problems left: not asked to repair, or cannot be
	fsckFailed     = 8 // the store could not be checked
)

const fsckUsage = `usage: mmapfs fsck [--repair] [--quiet] --store DIR

Checks a persistent store that no mmapfs is serving: the metadata (snapshot
and journal), the tree (every entry names an inode, every inode is reached
from the root, link counts), and every file's data in the store against
what the metadata recorded. Without --repair nothing is changed.

    --store DIR      the store directory (also the first argument)
    --repair, -y     repair what can be repaired safely: cut a torn journal
                     tail, remove entries that name nothing, free inodes that
                     nothing reaches (after damage they go to /lost+found),
                     remove store files that no file owns, record what the
                     store really holds; then rewrite the metadata
    --quiet, -q      print problems only

Exit status: 0 clean; 1 problems found and all repaired; 4 problems left
unrepaired; 8 the store could not be checked (missing, in use, a newer
format, unreadable).
`

// fscker is one run of `mmapfs fsck`: its arguments and where it prints.
type fscker struct {
	dir      string
	repair   bool
	quiet    bool
	out, err io.Writer
}

func cmdFsck(args []string, stdout, stderr io.Writer) int {
	c := &fscker{out: stdout, err: stderr}
	for i := 0; i < len(args); i++ {
		a := args[i]
		switch {
		case a == "--repair" || a == "-y" || a == "--yes":
			c.repair = true
		case a == "--quiet" || a == "-q":
			c.quiet = true
		case a == "--help" || a == "-h" || a == "help":
			fmt.Fprint(stdout, fsckUsage)
			return 0
		case a == "--store" || a == "-store":
			if i+1 >= len(args) {
				fmt.Fprintf(stderr, "mmapfs fsck: --store needs a directory\n%s", fsckUsage)
				return 2
			}
			i++
			c.dir = args[i]
		case strings.HasPrefix(a, "--store="):
			c.dir = strings.TrimPrefix(a, "--store=")
		case strings.HasPrefix(a, "-"):
			fmt.Fprintf(stderr, "mmapfs fsck: unknown option %q\n%s", a, fsckUsage)
			return 2
		case c.dir == "":
			c.dir = a
		default:
			fmt.Fprintf(stderr, "mmapfs fsck: too many arguments\n%s", fsckUsage)
			return 2
		}
	}
	if c.dir == "" {
		fmt.Fprintf(stderr, "mmapfs fsck: which store? (--store DIR)\n%s", fsckUsage)
		return 2
	}
	return c.run()
}

func (c *fscker) say(format string, args ...any) {
	if !c.quiet {
		fmt.Fprintf(c.out, format+"\n", args...)
	}
}

// run checks the store (store.Check does the work) and prints what it
// found and did.
func (c *fscker) run() int {
	var bar *progress
	r, err := store.Check(c.dir, store.CheckOptions{
		Repair: c.repair,
		Progress: func(label string, done, total int) {
			if bar == nil {
				bar = newProgress(c.err, label, total)
			}
			if done < total {
				bar.at(done)
				return
			}
			bar.done()
			bar = nil
		},
	})
	if err != nil {
		if errors.Is(err, store.ErrInUse) {
			fmt.Fprintf(c.err, "mmapfs fsck: %v: unmount it first\n", err)
		} else {
			fmt.Fprintf(c.err, "mmapfs fsck: %v\n", err)
		}
		return fsckFailed
	}
	c.say("mmapfs fsck: store %s", r.Dir)
	for _, n := range r.Tidied {
		c.say("  tidied: %s", n)
	}
	for _, p := range r.Problems {
		fmt.Fprintf(c.out, "  problem: %s\n", p.What)
		switch {
		case p.Repair == "":
			fmt.Fprintf(c.out, "    cannot be repaired by fsck\n")
		case !c.repair:
			fmt.Fprintf(c.out, "    --repair would %s\n", p.Repair)
		case p.Err != nil:
			fmt.Fprintf(c.out, "    repair failed: %v\n", p.Err)
		default:
			fmt.Fprintf(c.out, "    repaired: %s\n", p.Repair)
		}
	}
	for _, w := range r.Warnings {
		fmt.Fprintf(c.out, "  note: %s\n", w)
	}
	if r.RewriteErr != nil {
		fmt.Fprintf(c.err, "mmapfs fsck: rewriting the metadata: %v\n", r.RewriteErr)
		return fsckFailed
	}
	c.say("  %d directories, %d files, %d symlinks, %d other; %s of file data; checked in %v",
		r.Dirs, r.Files, r.Symlinks, r.Other, store.FormatBytes(r.Data), r.Took.Round(time.Millisecond))
	unrepaired := r.Unrepaired()
	switch {
	case len(r.Problems) == 0:
		c.say("  clean")
		return fsckClean
	case unrepaired == 0:
		fmt.Fprintf(c.out, "  %d problems found, all repaired\n", len(r.Problems))
		return fsckRepaired
	case !c.repair:
		fmt.Fprintf(c.out, "  %d problems found; run with --repair to repair them\n", len(r.Problems))
	default:
		fmt.Fprintf(c.out, "  %d problems found, %d left unrepaired\n", len(r.Problems), unrepaired)
	}
	return fsckUnrepaired
}

// progress draws a progress bar on a terminal for long checks.
type progress struct {
	w     io.Writer
	label string
	total int
	last  time.Time
	on    bool
}

func newProgress(w io.Writer, label string, total int) *progress {
	p := &progress{w: w, label: label, total: total}
	if f, ok := w.(*os.File); ok && total >= 10000 {
		_, err := unix.IoctlGetTermios(int(f.Fd()), unix.TCGETS)
		p.on = err == nil
	}
	return p
}

func (p *progress) at(i int) {
	if !p.on || time.Since(p.last) < 100*time.Millisecond {
		return
	}
	p.last = time.Now()
	const width = 30
	filled := width * i / p.total
	fmt.Fprintf(p.w, "\r  %s [%s%s] %d/%d", p.label, strings.Repeat("#", filled), strings.Repeat(" ", width-filled), i, p.total)
}

func (p *progress) done() {
	if p.on {
		fmt.Fprintf(p.w, "\r%s\r", strings.Repeat(" ", 80))
	}
}
