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
package main

import (
	"fmt"
	"os"
)

func main() {
	if len(os.Args) < 2 {
		usage()
	}
	cmd, args := os.Args[1], os.Args[2:]
	var code int
	switch cmd {
	case "bench":
		code = benchMain(args)
	case "soak":
		code = soakMain(args)
	case "worker":
		code = workerMain(args)
	case "scale":
		code = scaleMain(args)
	case "storescale":
		code = storescaleMain(args)
	default:
		usage()
	}
	os.Exit(code)
}

func usage() {
	fmt.Fprintln(os.Stderr, "usage: fsload bench|soak|worker|scale|storescale [flags] ...")
	os.Exit(2)
}
