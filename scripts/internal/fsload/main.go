// Command fsload is the Go side of the scripts in scripts/: the load it
// drives on a mounted filesystem and the figures it reports, for
// scripts/bench, scripts/soak, scripts/scale and scripts/storescale. The
// scripts build and mount mmapfs themselves, then call a subcommand. It is
// not part of mmapfs.
//
//	fsload bench meta|fio|report ...      the steps of scripts/bench (bench.go)
//	fsload soak  [flags] MOUNTDIR         mixed load from worker processes, sampled
//	fsload worker ...                     one soak worker (started by soak)
//	fsload scale [flags] DIR              create/stat/readdir/unlink N files
//	fsload storescale STEP [flags] ...    the steps of scripts/storescale (storescale.go)
//	fsload requests [-n N] DIR            the FUSE requests of each common call (requests.go)
package main

import (
	"fmt"
	"os"
	"strings"
)

// A command is a subcommand: its name and its main, which returns the
// exit status.
type command struct {
	name string
	main func(args []string) int
}

func main() {
	os.Exit(dispatch("fsload", []command{
		{"bench", benchMain},
		{"soak", soakMain},
		{"worker", workerMain},
		{"scale", scaleMain},
		{"storescale", storescaleMain},
		{"requests", requestsMain},
	}, os.Args[1:]))
}

// dispatch runs the command of cmds that args[0] names with the rest of
// args, and returns its exit status; without one, it prints the usage of
// prog and returns 2.
func dispatch(prog string, cmds []command, args []string) int {
	names := make([]string, len(cmds))
	for i, c := range cmds {
		if len(args) > 0 && args[0] == c.name {
			return c.main(args[1:])
		}
		names[i] = c.name
	}
	fmt.Fprintf(os.Stderr, "usage: %s %s [flags] ...\n", prog, strings.Join(names, "|"))
	return 2
}
