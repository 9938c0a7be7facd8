package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
)

type fioOutput struct {
	Jobs []struct {
		Error int    `json:"error"`
		Read  fioDir `json:"read"`
		Write fioDir `json:"write"`
	} `json:"jobs"`
}

type fioDir struct {
	BwBytes float64 `json:"bw_bytes"`
	IOPS    float64 `json:"iops"`
}

// fioMain prints one figure, summed over the jobs of a fio JSON output: the
// bandwidth in MiB/s (bw) or the operations per second (iops) of the read
// or write direction.
func fioMain(args []string) error {
	if len(args) != 3 {
		return fmt.Errorf("usage: fio FILE read|write bw|iops")
	}
	data, err := os.ReadFile(args[0])
	if err != nil {
		return err
	}
	// fio may print notes before the JSON document.
	if i := bytes.IndexByte(data, '{'); i > 0 {
		data = data[i:]
	}
	var out fioOutput
	if err := json.Unmarshal(data, &out); err != nil {
		return fmt.Errorf("%s: %w", args[0], err)
	}
	if len(out.Jobs) == 0 {
		return fmt.Errorf("%s: no jobs", args[0])
	}
	var sum float64
	for _, j := range out.Jobs {
		if j.Error != 0 {
			return fmt.Errorf("%s: job error %d", args[0], j.Error)
		}
		d := j.Read
		switch args[1] {
		case "read":
		case "write":
			d = j.Write
		default:
			return fmt.Errorf("direction %q: want read or write", args[1])
		}
		switch args[2] {
		case "bw":
			sum += d.BwBytes / (1 << 20)
		case "iops":
			sum += d.IOPS
		default:
			return fmt.Errorf("figure %q: want bw or iops", args[2])
		}
	}
	if sum <= 0 {
		return fmt.Errorf("%s: no %s %s", args[0], args[1], args[2])
	}
	fmt.Printf("%.3f\n", sum)
	return nil
}
