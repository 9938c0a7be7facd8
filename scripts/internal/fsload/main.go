// Command fsload drives the soak and scale runs of scripts/soak and
// scripts/scale against a mounted filesystem. It is not part of mmapfs.
//
//	fsload soak  [flags] MOUNTDIR      mixed load from worker processes, sampled
//	fsload scale [flags] DIR [REFDIR]  create/stat/readdir/unlink N files
//	fsload worker ...                  one soak worker (started by soak)
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
	fmt.Fprintln(os.Stderr, "usage: fsload soak|scale|worker [flags] ...")
	os.Exit(2)
}
