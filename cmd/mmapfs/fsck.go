package main

import (
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/schollz/progressbar/v3"
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
	var bar *progressbar.ProgressBar
	r, err := store.Check(c.dir, store.CheckOptions{
		Repair: c.repair,
		Progress: func(label string, done, total int) {
			if bar == nil {
				bar = newProgress(c.err, label, total)
			}
			if done < total {
				_ = bar.Set(done) // a failed write to the terminal does not stop the check
				return
			}
			_ = bar.Finish()
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

// progressMin is the fewest items a part of the check must have to get a
// progress bar: shorter parts are over before one would help.
const progressMin = 10000

// newProgress returns the progress bar of one long part of the check,
// drawn on w when w is a terminal and the part has at least progressMin
// items: "  LABEL [####      ] (DONE/TOTAL)", redrawn at most every 100 ms
// and cleared when the part is done (Finish). Elsewhere it draws nothing.
func newProgress(w io.Writer, label string, total int) *progressbar.ProgressBar {
	on := false
	if f, ok := w.(*os.File); ok && total >= progressMin {
		_, err := unix.IoctlGetTermios(int(f.Fd()), unix.TCGETS)
		on = err == nil
	}
	return progressbar.NewOptions(total,
		progressbar.OptionSetVisibility(on),
		progressbar.OptionSetWriter(w),
		progressbar.OptionSetDescription("  "+label),
		progressbar.OptionSetWidth(30),
		progressbar.OptionSetTheme(progressbar.Theme{Saucer: "#", SaucerPadding: " ", BarStart: "[", BarEnd: "]"}),
		progressbar.OptionShowCount(),
		progressbar.OptionSetPredictTime(false),
		progressbar.OptionSetElapsedTime(false),
		progressbar.OptionThrottle(100*time.Millisecond),
		progressbar.OptionClearOnFinish(),
	)
}
