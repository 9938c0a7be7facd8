package main

// fsload bench: the steps of scripts/bench, which mounts each system itself
// and calls these for the metadata workload, the reading of fio's JSON
// output, and the report (table, JSON and SVG chart).
//
//	bench meta -n N DIR                create/stat/open/readdir/rename/unlink N files in DIR
//	bench fio FILE read|write bw|iops  one figure from a fio JSON output (MiB/s or IOPS)
//	bench report -raw FILE -info FILE -out DIR
//	                                   medians, table on stdout, DIR/bench.json, DIR/bench.svg

import (
	"fmt"
	"os"
)

// benchMain runs one step of the benchmark; a failed step prints its error
// and exits 1.
func benchMain(args []string) int {
	if len(args) < 1 {
		fmt.Fprintln(os.Stderr, "usage: fsload bench meta|fio|report ...")
		return 2
	}
	sub, args := args[0], args[1:]
	var err error
	switch sub {
	case "meta":
		err = metaMain(args)
	case "fio":
		err = fioMain(args)
	case "report":
		err = reportMain(args)
	default:
		fmt.Fprintln(os.Stderr, "usage: fsload bench meta|fio|report ...")
		return 2
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "fsload bench "+sub+":", err)
		return 1
	}
	return 0
}
