// Command bench.d is the helper of scripts/bench: the metadata workload, the
// reading of fio's JSON output, and the report (table, JSON and SVG chart).
// It is not part of mmapfs.
//
//	bench.d meta -n N DIR              create/stat/open/readdir/rename/unlink N files in DIR
//	bench.d fio FILE read|write bw|iops  one figure from a fio JSON output (MiB/s or IOPS)
//	bench.d report -raw FILE -info FILE -out DIR
//	                                   medians, table on stdout, DIR/bench.json, DIR/bench.svg
package main

import (
	"fmt"
	"os"
)

func main() {
	if len(os.Args) < 2 {
		usage()
	}
	var err error
	switch os.Args[1] {
	case "meta":
		err = metaMain(os.Args[2:])
	case "fio":
		err = fioMain(os.Args[2:])
	case "report":
		err = reportMain(os.Args[2:])
	default:
		usage()
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "bench.d "+os.Args[1]+":", err)
		os.Exit(1)
	}
}

func usage() {
	fmt.Fprintln(os.Stderr, "usage: bench.d meta|fio|report ...")
	os.Exit(2)
}
