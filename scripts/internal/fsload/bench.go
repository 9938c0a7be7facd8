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

// benchMain runs one step of the benchmark.
func benchMain(args []string) int {
	return dispatch("fsload bench", []command{
		benchStep("meta", metaMain),
		benchStep("fio", fioMain),
		benchStep("report", reportMain),
	}, args)
}

// benchStep makes a command of a step that returns an error: a failed step
// prints it and exits 1.
func benchStep(name string, run func(args []string) error) command {
	return command{name, func(args []string) int {
		if err := run(args); err != nil {
			fmt.Fprintln(os.Stderr, "fsload bench "+name+":", err)
			return 1
		}
		return 0
	}}
}
