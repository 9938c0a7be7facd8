package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"text/tabwriter"
	"time"
	"unicode/utf8"

	"mmapfs/control"
	"mmapfs/internal/mountinfo"
	"mmapfs/store"
)

const statsUsage = `usage: mmapfs stats [--json] [--watch[=INTERVAL]] MOUNTPOINT

Prints the figures of the live server of an mmapfs mount: its store (bytes
used, allocated, the limit, and how much is resident in RAM), inodes, files
lent to passthrough, mapped windows, open store files, the journal and the
last compaction of a persistent store, and per FUSE operation the requests
served, the failed ones and their latency. Only root and the user who
mounted it may ask.

    --json              print one JSON object instead of the table
    --watch[=INTERVAL], -w
                        print the figures again every INTERVAL (default
                        1s; 500ms, 2s, 1m or a number of seconds), with the
                        rates of requests since the last, until Ctrl-C;
                        with --json one object a line

Exit status: 0; 1 no figures (not an mmapfs mount, no server answers, not
allowed to ask); 2 wrong usage.
`

// statsArgs are the arguments of `mmapfs stats`.
type statsArgs struct {
	path     string
	json     bool
	interval time.Duration // 0: once
}

func cmdStats(args []string, stdout, stderr io.Writer) int {
	a, err := parseStatsArgs(args)
	if errors.Is(err, errHelp) {
		fmt.Fprint(stdout, statsUsage)
		return 0
	}
	if err != nil {
		fmt.Fprintf(stderr, "mmapfs stats: %v\n%s", err, statsUsage)
		return 2
	}
	m, err := findStatsMount(a.path)
	if err != nil {
		fmt.Fprintf(stderr, "mmapfs: %v\n", err)
		return 1
	}
	if a.interval == 0 {
		st, err := askStats(m)
		if err == nil {
			err = printStats(stdout, a, st, nil)
		}
		if err != nil {
			fmt.Fprintf(stderr, "mmapfs: %v\n", err)
			return 1
		}
		return 0
	}
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, syscall.SIGINT, syscall.SIGTERM)
	defer signal.Stop(sigs)
	tick := time.NewTicker(a.interval)
	defer tick.Stop()
	var prev *control.Stats
	for {
		st, err := askStats(m)
		if err == nil {
			err = printStats(stdout, a, st, prev)
		}
		if err != nil {
			fmt.Fprintf(stderr, "mmapfs: %v\n", err)
			return 1
		}
		prev = st
		select {
		case <-sigs:
			return 0
		case <-tick.C:
		}
	}
}

// errHelp is what parseStatsArgs returns for --help.
var errHelp = errors.New("help")

func parseStatsArgs(args []string) (statsArgs, error) {
	var a statsArgs
	for _, arg := range args {
		switch {
		case arg == "--help" || arg == "-h" || arg == "-help" || arg == "help":
			return a, errHelp
		case arg == "--json" || arg == "-json":
			a.json = true
		case arg == "--watch" || arg == "-watch" || arg == "-w":
			a.interval = time.Second
		case strings.HasPrefix(arg, "--watch=") || strings.HasPrefix(arg, "-watch="):
			_, v, _ := strings.Cut(arg, "=")
			d, err := parseInterval(v)
			if err != nil {
				return a, err
			}
			a.interval = d
		case strings.HasPrefix(arg, "-") && arg != "-":
			return a, fmt.Errorf("unknown option %q", arg)
		case a.path == "":
			a.path = arg
		default:
			return a, errors.New("too many arguments: one mount point")
		}
	}
	if a.path == "" {
		return a, errors.New("missing MOUNTPOINT")
	}
	return a, nil
}

// parseInterval reads the INTERVAL of --watch: a Go duration ("500ms",
// "2s", "1m") or a number of seconds ("2", "0.5"), at least 10ms.
func parseInterval(v string) (time.Duration, error) {
	d, err := time.ParseDuration(v)
	if err != nil {
		f, ferr := strconv.ParseFloat(v, 64)
		if ferr != nil {
			return 0, fmt.Errorf("--watch=%s: not an interval (500ms, 2s, 1m, or seconds)", v)
		}
		d = time.Duration(f * float64(time.Second))
	}
	if d < 10*time.Millisecond {
		return 0, fmt.Errorf("--watch=%s: the interval must be at least 10ms", v)
	}
	return d, nil
}

// findStatsMount returns the mmapfs mount that path is on. A user who may
// not look into the mount (it is another's, without allow_other) is told
// that only its owner and root may ask its server, not merely "permission
// denied".
func findStatsMount(path string) (*control.Mount, error) {
	m, err := control.FindMount(path)
	if err == nil || !errors.Is(err, syscall.EACCES) {
		return m, err
	}
	abs, aerr := filepath.Abs(path)
	entries, rerr := mountinfo.Read("/proc/self/mountinfo")
	if aerr != nil || rerr != nil {
		return nil, err
	}
	var best *mountinfo.Entry
	for i, e := range entries {
		if e.Mountpoint == abs || strings.HasPrefix(abs, strings.TrimSuffix(e.Mountpoint, "/")+"/") {
			if best == nil || len(e.Mountpoint) >= len(best.Mountpoint) {
				best = &entries[i]
			}
		}
	}
	if best == nil || best.FsType != "fuse.mmapfs" {
		return nil, err
	}
	owner, _ := best.SuperOption("user_id")
	return nil, fmt.Errorf("%s: permission denied: only root and the owner of the mount on %s (uid %s) may ask its server", path, best.Mountpoint, owner)
}

// askStats asks the server of m for its figures.
func askStats(m *control.Mount) (*control.Stats, error) {
	resp, err := control.Ask(m, control.Request{Op: control.ReqStats})
	if err != nil {
		return nil, err
	}
	if resp.Error != "" {
		return nil, fmt.Errorf("the server of %s refused: %s", m.Mountpoint, resp.Error)
	}
	if resp.Stats == nil {
		return nil, fmt.Errorf("the server of %s sent no figures", m.Mountpoint)
	}
	return resp.Stats, nil
}

// printStats prints st as a.json asks; with a.interval, the table
// replaces the screen and gives the rates since prev (if not nil).
func printStats(w io.Writer, a statsArgs, st, prev *control.Stats) error {
	if a.json {
		return json.NewEncoder(w).Encode(st)
	}
	var buf bytes.Buffer
	if a.interval > 0 {
		buf.WriteString("\x1b[H\x1b[2J") // home, clear screen
	}
	writeStatsTable(&buf, st, prev, a.interval > 0)
	_, err := w.Write(buf.Bytes())
	return err
}

// writeStatsTable writes the human form of st: a header, then a row per
// FUSE operation, the most frequent first. With rates, a column gives the
// requests per second since prev (none for the first table).
func writeStatsTable(w io.Writer, st, prev *control.Stats, rates bool) {
	kind := "memory store"
	if st.Persistent {
		kind = "persistent store"
	}
	ro := ""
	if st.ReadOnly {
		ro = ", read-only"
	}
	fmt.Fprintf(w, "mmapfs on %s (pid %d%s), up %s\n", st.Mountpoint, st.PID, ro,
		st.Time.Sub(st.Started).Round(time.Second))
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintf(tw, "store\t%s (%s)\n", st.Store, kind)
	limit := "none"
	if st.SizeLimit > 0 {
		limit = store.FormatBytes(st.SizeLimit)
	}
	resident := store.FormatBytes(st.Resident)
	if st.ResidentMappedOnly {
		resident += " (of the mapped windows)"
	}
	fmt.Fprintf(tw, "data\tused %s, allocated %s, limit %s, resident %s\n",
		store.FormatBytes(st.StoreUsed), store.FormatBytes(st.StoreAllocated), limit, resident)
	inodes := "no limit"
	if st.InodeLimit > 0 {
		inodes = fmt.Sprintf("limit %d", st.InodeLimit)
	}
	fmt.Fprintf(tw, "inodes\t%d, %s\n", st.Inodes, inodes)
	fmt.Fprintf(tw, "store files\t%d lent, %d windows mapped (%s), %d open\n",
		st.Lent, st.Windows, store.FormatBytes(st.MappedBytes), st.OpenFDs)
	if st.Persistent {
		last := "none since the mount"
		if !st.LastCompaction.IsZero() {
			last = fmt.Sprintf("%d since the mount, the last %s ago (took %s)", st.Compactions,
				st.Time.Sub(st.LastCompaction).Round(time.Second), fmtSeconds(st.CompactionTook))
		}
		fmt.Fprintf(tw, "journal\t%s; compactions: %s\n", store.FormatBytes(st.JournalBytes), last)
	}
	data := fmt.Sprintf("read %s, written %s", store.FormatBytes(int64(st.ReadBytes)), store.FormatBytes(int64(st.WriteBytes)))
	if secs := elapsed(st, prev); rates && secs > 0 {
		data += fmt.Sprintf(" (%s/s, %s/s)",
			store.FormatBytes(int64(float64(st.ReadBytes-prev.ReadBytes)/secs)),
			store.FormatBytes(int64(float64(st.WriteBytes-prev.WriteBytes)/secs)))
	}
	fmt.Fprintf(tw, "file data\t%s by the server\n", data)
	tw.Flush()
	fmt.Fprintln(w)

	head := []string{"OPERATION", "COUNT", "ERRORS", "P50", "P90", "P99", "TOTAL"}
	if rates {
		head = slices.Insert(head, 2, "PER SEC")
	}
	rows := [][]string{head}
	for _, name := range opsByCount(st.Ops) {
		op := st.Ops[name]
		row := []string{name, strconv.FormatUint(op.Count, 10), strconv.FormatUint(op.Errors, 10),
			fmtSeconds(op.P50), fmtSeconds(op.P90), fmtSeconds(op.P99), fmtSeconds(op.Seconds)}
		if rates {
			rate := "-"
			if secs := elapsed(st, prev); secs > 0 {
				rate = strconv.FormatFloat(float64(op.Count-prev.Ops[name].Count)/secs, 'f', 0, 64)
			}
			row = slices.Insert(row, 2, rate)
		}
		rows = append(rows, row)
	}
	writeColumns(w, rows)
	if len(st.Ops) == 0 {
		fmt.Fprintln(w, "(no requests counted: none served yet, or the server counts none)")
	}
}

// writeColumns writes rows as a table: the first column aligned left, the
// others (figures) right, two spaces apart.
func writeColumns(w io.Writer, rows [][]string) {
	var widths []int
	for _, r := range rows {
		for i, c := range r {
			if i >= len(widths) {
				widths = append(widths, 0)
			}
			widths[i] = max(widths[i], utf8.RuneCountInString(c))
		}
	}
	for _, r := range rows {
		var line strings.Builder
		for i, c := range r {
			pad := strings.Repeat(" ", widths[i]-utf8.RuneCountInString(c))
			if i == 0 {
				line.WriteString(c + pad)
			} else {
				line.WriteString("  " + pad + c)
			}
		}
		fmt.Fprintln(w, line.String())
	}
}

// elapsed returns the seconds from prev to st; 0 without prev.
func elapsed(st, prev *control.Stats) float64 {
	if prev == nil {
		return 0
	}
	return st.Time.Sub(prev.Time).Seconds()
}

// opsByCount returns the names of ops, the most requested first (ties in
// name order).
func opsByCount(ops map[string]control.OpStats) []string {
	names := make([]string, 0, len(ops))
	for n := range ops {
		names = append(names, n)
	}
	slices.SortFunc(names, func(a, b string) int {
		if ca, cb := ops[a].Count, ops[b].Count; ca != cb {
			if ca > cb {
				return -1
			}
			return 1
		}
		return strings.Compare(a, b)
	})
	return names
}

// fmtSeconds writes a time in seconds with three significant digits and a
// unit that fits: "1.41µs", "362µs", "12.5ms", "3.20s".
func fmtSeconds(s float64) string {
	d := time.Duration(s * float64(time.Second))
	switch {
	case d == 0:
		return "0"
	case d < time.Millisecond:
		return sig3(float64(d)/float64(time.Microsecond)) + "µs"
	case d < time.Second:
		return sig3(float64(d)/float64(time.Millisecond)) + "ms"
	}
	return sig3(s) + "s"
}

// sig3 writes v (≥ 1) with three significant digits, more for large v.
func sig3(v float64) string {
	switch {
	case v < 10:
		return strconv.FormatFloat(v, 'f', 2, 64)
	case v < 100:
		return strconv.FormatFloat(v, 'f', 1, 64)
	}
	return strconv.FormatFloat(v, 'f', 0, 64)
}
