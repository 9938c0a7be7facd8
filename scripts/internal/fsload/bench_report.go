package main

import (
	"bufio"
	"encoding/json"
	"flag"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
)

// A workload as the report shows it. Values are stored in Unit.
type workload struct {
	Key    string
	Label  string
	Unit   string
	Higher bool // a higher value is better (rates); else lower (times, memory)
	Cost   bool // a memory figure: its ratio is a cost, not a speed
}

var workloads = []workload{
	{"seq_write", "sequential write, 1 MiB blocks", "MiB/s", true, false},
	{"seq_read_cold", "sequential read, cold, 1 MiB", "MiB/s", true, false},
	{"seq_read_warm", "sequential read, warm, 1 MiB", "MiB/s", true, false},
	{"rand_read_j1", "random read 4 KiB, 1 job", "IOPS", true, false},
	{"rand_read_j2", "random read 4 KiB, 2 jobs", "IOPS", true, false},
	{"rand_write_j1", "random write 4 KiB, 1 job", "IOPS", true, false},
	{"rand_write_j2", "random write 4 KiB, 2 jobs", "IOPS", true, false},
	{"mmap_read", "mmap random read 4 KiB", "IOPS", true, false},
	{"mmap_write", "mmap random write 4 KiB", "IOPS", true, false},
	{"create", "create", "files/s", true, false},
	{"stat", "stat", "files/s", true, false},
	{"open_close", "open+close", "files/s", true, false},
	{"readdir", "readdir", "entries/s", true, false},
	{"rename", "rename", "files/s", true, false},
	{"unlink", "unlink", "files/s", true, false},
	{"tar_x", "tar -x Go source tree", "s", false, false},
	{"du_s", "du -s Go source tree", "s", false, false},
	{"rm_rf", "rm -rf Go source tree", "s", false, false},
	{"mem", "memory per byte of file data", "B/B", false, true},
}

type system struct {
	Key, Label string
}

// The systems of scripts/bench, in the order of the table's columns.
var systems = []system{
	{"tmpfs", "tmpfs"},
	{"loopback", "loopback"},
	{"loopback-pt", "loopback+pt"},
	{"mmapfs", "mmapfs"},
	{"mmapfs-mapped", "mmapfs pt=off"},
	{"mmapfs-nocount", "pt=off uncounted"},
	{"mmapfs-store", "mmapfs --store"},
	{"mmapfs-store-mapped", "--store pt=off"},
	{"mmapfs-user", "mmapfs user"},
	{"disk", "disk"},
	{"mmapfs-store-disk", "--store on disk"},
}

// pair is a ratio of the table: system A relative to system B.
type pair struct{ A, B string }

// The ratios of the table: mmapfs (memory store, defaults) to the systems
// it is compared with, then each other way of using mmapfs to what it
// should keep up with: --store to the memory store, each with and without
// passthrough; --store on a disk to a plain directory of that disk's
// filesystem; an ordinary user's mount to tmpfs; requests counted (for
// mmapfs stats) to not counted.
var pairs = []pair{
	{"mmapfs", "tmpfs"},
	{"mmapfs", "loopback"},
	{"mmapfs", "loopback-pt"},
	{"mmapfs-store", "mmapfs"},
	{"mmapfs-store-mapped", "mmapfs-mapped"},
	{"mmapfs-store-disk", "disk"},
	{"mmapfs-user", "tmpfs"},
	{"mmapfs-mapped", "mmapfs-nocount"},
}

// key is the name of the ratio in bench.json: "A/B".
func (p pair) key() string { return p.A + "/" + p.B }

// label is the heading of the ratio's column.
func (p pair) label() string { return labelOf(p.A) + " ÷ " + labelOf(p.B) }

type result struct {
	Median float64   `json:"median"`
	Runs   []float64 `json:"runs"`
}

type workloadOut struct {
	Key    string `json:"key"`
	Label  string `json:"label"`
	Unit   string `json:"unit"`
	Better string `json:"better"`
	// Per system: the median and every run.
	Results map[string]*result `json:"results"`
	// mmapfs relative to each system it is compared with (the pairs with
	// A "mmapfs", keyed by B): a speed ratio (rates: mmapfs / reference,
	// times: reference / mmapfs; above 1 is faster) or, for memory,
	// mmapfs / reference (above 1 uses more).
	MmapfsRatio map[string]float64 `json:"mmapfs_ratio"`
	// Every pair's ratio, the same way, keyed "A/B".
	Ratios map[string]float64 `json:"ratios"`
	// Every system relative to tmpfs, the same way (the chart).
	RatioToTmpfs map[string]float64 `json:"ratio_to_tmpfs"`
	// Median CPU seconds the FUSE server used during the workload.
	ServerCPU map[string]float64 `json:"server_cpu_seconds,omitempty"`
}

type reportOut struct {
	Run       map[string]string `json:"run"`
	Systems   []string          `json:"systems"`
	Workloads []*workloadOut    `json:"workloads"`
}

func reportMain(args []string) error {
	fl := flag.NewFlagSet("report", flag.ContinueOnError)
	rawPath := fl.String("raw", "", "raw results: SYSTEM KEY REP VALUE per line, tab-separated")
	infoPath := fl.String("info", "", "run information: KEY VALUE per line, tab-separated")
	outDir := fl.String("out", "", "directory for bench.json and bench.svg")
	if err := fl.Parse(args); err != nil {
		return err
	}
	if *rawPath == "" || *outDir == "" {
		return fmt.Errorf("usage: report -raw FILE [-info FILE] -out DIR")
	}
	runs := map[string]map[string][]float64{} // key → system → values
	err := readTSV(*rawPath, 4, func(f []string) error {
		v, err := strconv.ParseFloat(f[3], 64)
		if err != nil {
			return err
		}
		if runs[f[1]] == nil {
			runs[f[1]] = map[string][]float64{}
		}
		runs[f[1]][f[0]] = append(runs[f[1]][f[0]], v)
		return nil
	})
	if err != nil {
		return err
	}
	info := map[string]string{}
	if *infoPath != "" {
		if err := readTSV(*infoPath, 2, func(f []string) error { info[f[0]] = f[1]; return nil }); err != nil {
			return err
		}
	}

	out := reportOut{Run: info}
	for _, s := range systems {
		out.Systems = append(out.Systems, s.Key)
	}
	for _, w := range workloads {
		wo := &workloadOut{Key: w.Key, Label: w.Label, Unit: w.Unit, Better: "higher",
			Results: map[string]*result{}, MmapfsRatio: map[string]float64{},
			Ratios: map[string]float64{}, RatioToTmpfs: map[string]float64{}}
		if !w.Higher {
			wo.Better = "lower"
		}
		for _, s := range systems {
			if vs := runs[w.Key][s.Key]; len(vs) > 0 {
				wo.Results[s.Key] = &result{Median: median(vs), Runs: vs}
			}
			if vs := runs["cpu."+w.Key][s.Key]; len(vs) > 0 {
				if wo.ServerCPU == nil {
					wo.ServerCPU = map[string]float64{}
				}
				wo.ServerCPU[s.Key] = round(median(vs), 3)
			}
		}
		for _, p := range pairs {
			if v, ok := ratio(w, wo.Results[p.A], wo.Results[p.B]); ok {
				wo.Ratios[p.key()] = round(v, 4)
				if p.A == "mmapfs" {
					wo.MmapfsRatio[p.B] = round(v, 4)
				}
			}
		}
		for _, s := range systems {
			if v, ok := ratio(w, wo.Results[s.Key], wo.Results["tmpfs"]); ok {
				wo.RatioToTmpfs[s.Key] = round(v, 4)
			}
		}
		out.Workloads = append(out.Workloads, wo)
	}

	if err := os.MkdirAll(*outDir, 0o755); err != nil {
		return err
	}
	js, err := json.MarshalIndent(out, "", "  ")
	if err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(*outDir, "bench.json"), append(js, '\n'), 0o644); err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(*outDir, "bench.svg"), drawSVG(&out), 0o644); err != nil {
		return err
	}
	printTable(os.Stdout, &out)
	return nil
}

// ratio of a to b: a speed ratio (above 1: a is faster) for rates and
// times, a / b for memory.
func ratio(w workload, a, b *result) (float64, bool) {
	if a == nil || b == nil || a.Median <= 0 || b.Median <= 0 {
		return 0, false
	}
	if w.Higher || w.Cost {
		return a.Median / b.Median, true
	}
	return b.Median / a.Median, true
}

// printTable prints the medians and the ratios of pairs as a markdown table
// (the README's Performance table).
func printTable(f *os.File, out *reportOut) {
	head := []string{"workload", "unit"}
	for _, s := range systems {
		head = append(head, s.Label)
	}
	for _, p := range pairs {
		head = append(head, p.label())
	}
	rows := [][]string{head}
	for _, w := range out.Workloads {
		row := []string{w.Label, w.Unit}
		for _, s := range systems {
			if r := w.Results[s.Key]; r != nil {
				row = append(row, fmtValue(r.Median))
			} else {
				row = append(row, "—")
			}
		}
		for _, p := range pairs {
			if v, ok := w.Ratios[p.key()]; ok {
				row = append(row, fmtRatio(v))
			} else {
				row = append(row, "—")
			}
		}
		rows = append(rows, row)
	}
	width := make([]int, len(head))
	for _, row := range rows {
		for i, c := range row {
			width[i] = max(width[i], len([]rune(c)))
		}
	}
	line := func(row []string) {
		var b strings.Builder
		b.WriteString("|")
		for i, c := range row {
			pad := strings.Repeat(" ", width[i]-len([]rune(c)))
			if i < 2 {
				b.WriteString(" " + c + pad + " |")
			} else {
				b.WriteString(" " + pad + c + " |")
			}
		}
		fmt.Fprintln(f, b.String())
	}
	line(rows[0])
	sep := make([]string, len(head))
	for i := range sep {
		if i < 2 {
			sep[i] = strings.Repeat("-", width[i]+2)
		} else {
			sep[i] = strings.Repeat("-", width[i]+1) + ":"
		}
	}
	fmt.Fprintln(f, "|"+strings.Join(sep, "|")+"|")
	for _, row := range rows[1:] {
		line(row)
	}
}

func labelOf(key string) string {
	for _, s := range systems {
		if s.Key == key {
			return s.Label
		}
	}
	return key
}

// fmtValue prints 3 significant digits, whole numbers with thousands
// separators.
func fmtValue(v float64) string {
	switch {
	case v >= 1000:
		return thousands(int64(math.Round(v)))
	case v >= 100:
		return strconv.FormatFloat(v, 'f', 0, 64)
	case v >= 10:
		return strconv.FormatFloat(v, 'f', 1, 64)
	case v >= 1:
		return strconv.FormatFloat(v, 'f', 2, 64)
	default:
		return strconv.FormatFloat(v, 'f', 3, 64)
	}
}

func fmtRatio(v float64) string {
	if v >= 10 {
		return strconv.FormatFloat(v, 'f', 1, 64)
	}
	if v >= 0.1 {
		return strconv.FormatFloat(v, 'f', 2, 64)
	}
	return strconv.FormatFloat(v, 'f', 3, 64)
}

// median returns the middle value of vs (the mean of the two middle ones
// for an even count).
func median(vs []float64) float64 {
	s := append([]float64(nil), vs...)
	sort.Float64s(s)
	n := len(s)
	if n%2 == 1 {
		return s[n/2]
	}
	return (s[n/2-1] + s[n/2]) / 2
}

// round rounds v to digits decimals.
func round(v float64, digits int) float64 {
	p := math.Pow(10, float64(digits))
	return math.Round(v*p) / p
}

// readTSV calls fn with the fields of each non-empty line of the file at
// path, which must have the given number of tab-separated fields.
func readTSV(path string, fields int, fn func([]string) error) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for n := 1; sc.Scan(); n++ {
		if sc.Text() == "" {
			continue
		}
		parts := strings.SplitN(sc.Text(), "\t", fields)
		if len(parts) != fields {
			return fmt.Errorf("%s:%d: want %d tab-separated fields", path, n, fields)
		}
		if err := fn(parts); err != nil {
			return fmt.Errorf("%s:%d: %w", path, n, err)
		}
	}
	return sc.Err()
}
