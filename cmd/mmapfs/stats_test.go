package main

import (
	"bytes"
	"strings"
	"testing"
	"time"

	"mmapfs/control"
)

func TestParseStatsArgs(t *testing.T) {
	for _, c := range []struct {
		args []string
		want statsArgs
		err  string
	}{
		{[]string{"/m"}, statsArgs{path: "/m"}, ""},
		{[]string{"--json", "/m"}, statsArgs{path: "/m", json: true}, ""},
		{[]string{"--watch", "/m"}, statsArgs{path: "/m", interval: time.Second}, ""},
		{[]string{"-w", "/m"}, statsArgs{path: "/m", interval: time.Second}, ""},
		{[]string{"--watch=250ms", "/m"}, statsArgs{path: "/m", interval: 250 * time.Millisecond}, ""},
		{[]string{"--watch=2", "/m"}, statsArgs{path: "/m", interval: 2 * time.Second}, ""},
		{[]string{"--watch=0", "/m"}, statsArgs{}, "at least"},
		{[]string{"--watch=soon", "/m"}, statsArgs{}, "not an interval"},
		{[]string{}, statsArgs{}, "missing MOUNTPOINT"},
		{[]string{"/m", "/n"}, statsArgs{}, "too many"},
		{[]string{"--frob", "/m"}, statsArgs{}, "unknown option"},
	} {
		got, err := parseStatsArgs(c.args)
		switch {
		case c.err != "" && (err == nil || !strings.Contains(err.Error(), c.err)):
			t.Errorf("%q: error %v, want one saying %q", c.args, err, c.err)
		case c.err == "" && (err != nil || got != c.want):
			t.Errorf("%q: %+v, %v; want %+v", c.args, got, err, c.want)
		}
	}
}

func TestStatsTable(t *testing.T) {
	now := time.Date(2025, 1, 2, 3, 4, 5, 0, time.UTC)
	prev := &control.Stats{Time: now.Add(-2 * time.Second), Ops: map[string]control.OpStats{
		"LOOKUP": {Count: 100}, "CREATE": {Count: 10},
	}}
	st := &control.Stats{
		Time: now, Started: now.Add(-time.Hour - 2*time.Second), Mountpoint: "/mnt/x",
		Store: "/srv/store", Persistent: true, PID: 42,
		StoreUsed: 3 << 20, StoreAllocated: 4 << 20, SizeLimit: 1 << 30, Resident: 2 << 20,
		Inodes: 7, ReadBytes: 1 << 20, WriteBytes: 2 << 20,
		JournalBytes: 10 << 10, Compactions: 2, LastCompaction: now.Add(-time.Minute), CompactionTook: 0.0125,
		Ops: map[string]control.OpStats{
			"LOOKUP": {Count: 300, P50: 2e-6, P90: 4e-6, P99: 16e-6, Seconds: 0.001},
			"CREATE": {Count: 20, Errors: 1, P50: 32e-6, P90: 64e-6, P99: 724e-6, Seconds: 0.5},
			"STATFS": {Count: 1, P50: 1.5, P90: 1.5, P99: 1.5, Seconds: 1.5},
		},
	}
	var b bytes.Buffer
	writeStatsTable(&b, st, prev, true)
	out := b.String()
	for _, w := range []string{
		"mmapfs on /mnt/x (pid 42), up 1h0m2s",
		"/srv/store (persistent store)",
		"used 3 MiB, allocated 4 MiB, limit 1 GiB, resident 2 MiB",
		"inodes       7, no limit",
		"10 KiB; compactions: 2 since the mount, the last 1m0s ago (took 12.5ms)",
		"OPERATION  COUNT  PER SEC  ERRORS     P50     P90     P99   TOTAL\n",
		"LOOKUP       300      100       0  2.00µs  4.00µs  16.0µs  1.00ms\n",
		"CREATE        20        5       1  32.0µs  64.0µs   724µs   500ms\n",
		"STATFS         1        0       0   1.50s   1.50s   1.50s   1.50s\n",
	} {
		if !strings.Contains(out, w) {
			t.Errorf("table lacks %q:\n%s", w, out)
		}
	}
	if strings.Index(out, "LOOKUP") > strings.Index(out, "CREATE") || strings.Index(out, "CREATE") > strings.Index(out, "STATFS") {
		t.Errorf("rows not by count:\n%s", out)
	}
}
