package main

// The steps of fsload storescale that watch the server and make the figures
// of the run: ready (the mount answers), logfield (a field of the server's
// JSON log) and report (the table and the JSON of the figures).

import (
	"bufio"
	"encoding/json"
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"

	"golang.org/x/sys/unix"
)

// fuseSuperMagic is the f_type statfs reports for a FUSE mount.
const fuseSuperMagic = 0x65735546

// ready waits until mnt is a FUSE mount whose root answers a stat, and
// prints the seconds since t0.
func ready(mnt string, t0 time.Time, pid int, timeout time.Duration) int {
	deadline := time.Now().Add(timeout)
	for {
		var sfs unix.Statfs_t
		if unix.Statfs(mnt, &sfs) == nil && sfs.Type == fuseSuperMagic {
			var st unix.Stat_t
			if err := unix.Lstat(mnt, &st); err == nil {
				fmt.Printf("%.3f\n", time.Since(t0).Seconds())
				return 0
			}
		}
		if pid != 0 && unix.Kill(pid, 0) != nil {
			fmt.Fprintf(os.Stderr, "storescale: the server (pid %d) is gone before %s answered\n", pid, mnt)
			return 1
		}
		if time.Now().After(deadline) {
			fmt.Fprintf(os.Stderr, "storescale: %s not mounted after %v\n", mnt, timeout)
			return 1
		}
		time.Sleep(time.Millisecond)
	}
}

// logField prints field of the last (or first) line of a JSON log whose
// msg starts with msg. A duration is printed in seconds; the field "time"
// with t0 as the seconds from t0 to the line. Nothing found: exit 1.
func logField(log, msg, field string, t0 time.Time, first bool) int {
	f, err := os.Open(log)
	if err != nil {
		fmt.Fprintln(os.Stderr, "storescale:", err)
		return 1
	}
	defer f.Close()
	var found any
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<20), 1<<24)
	for sc.Scan() {
		var rec map[string]any
		if json.Unmarshal(sc.Bytes(), &rec) != nil {
			continue
		}
		m, _ := rec["msg"].(string)
		v, ok := rec[field]
		if !strings.HasPrefix(m, msg) || !ok {
			continue
		}
		found = v
		if first {
			break
		}
	}
	switch v := found.(type) {
	case nil:
		fmt.Fprintf(os.Stderr, "storescale: no %q in a line %q of %s\n", field, msg, log)
		return 1
	case float64:
		fmt.Println(strconv.FormatFloat(v, 'f', -1, 64))
	case string:
		if field == "time" && !t0.IsZero() {
			tm, err := time.Parse("2006-01-02T15:04:05.000Z0700", v)
			if err != nil {
				fmt.Fprintln(os.Stderr, "storescale:", err)
				return 1
			}
			fmt.Printf("%.3f\n", tm.Sub(t0).Seconds())
		} else if d, err := time.ParseDuration(v); err == nil {
			fmt.Printf("%.3f\n", d.Seconds())
		} else {
			fmt.Println(v)
		}
	default:
		fmt.Println(v)
	}
	return 0
}

// storeReport prints the figures of FIGURES.tsv (key, value, unit, label
// a line) as a table, and writes them as JSON.
func storeReport(tsv, jsonOut string) int {
	data, err := os.ReadFile(tsv)
	if err != nil {
		fmt.Fprintln(os.Stderr, "storescale:", err)
		return 1
	}
	type figure struct {
		Key   string `json:"key"`
		Label string `json:"label"`
		Value any    `json:"value"`
		Unit  string `json:"unit,omitempty"`
	}
	var figs []figure
	values := map[string]any{}
	width := 0
	for _, line := range strings.Split(strings.TrimRight(string(data), "\n"), "\n") {
		f := strings.SplitN(line, "\t", 4)
		if len(f) < 4 {
			continue
		}
		var v any = f[1]
		if x, err := strconv.ParseFloat(f[1], 64); err == nil {
			v = x
		}
		figs = append(figs, figure{Key: f[0], Value: v, Unit: f[2], Label: f[3]})
		values[f[0]] = v
		width = max(width, len([]rune(f[3])))
	}
	fmt.Println()
	for _, g := range figs {
		val := fmt.Sprint(g.Value)
		if x, ok := g.Value.(float64); ok {
			val = humanNumber(x)
		}
		fmt.Printf("  %-*s %16s %s\n", width, g.Label, val, g.Unit)
	}
	if jsonOut == "" {
		return 0
	}
	out, _ := json.MarshalIndent(map[string]any{"figures": figs, "values": values}, "", "  ")
	if err := os.WriteFile(jsonOut, append(out, '\n'), 0o644); err != nil {
		fmt.Fprintln(os.Stderr, "storescale:", err)
		return 1
	}
	fmt.Printf("\nfigures written to %s\n", jsonOut)
	return 0
}
