package metrics

import (
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"mmapfs/control"
)

// fakeOp returns the figures of an operation that served one request in
// each of the buckets listed (indexes in control.LatencyBounds, or past
// them), one of them failed.
func fakeOp(buckets ...int) control.OpStats {
	s := control.OpStats{Buckets: make([]uint64, len(control.LatencyBounds)+1), Errors: 1}
	for _, b := range buckets {
		s.Buckets[b]++
		s.Count++
		s.Seconds += 0.001
	}
	return s
}

// fakeStats are the figures of a persistent store with limits.
func fakeStats() control.Stats {
	return control.Stats{
		Started:    time.Unix(1700000000, 0),
		Mountpoint: "/mnt/data",
		Store:      "/var/lib/mmapfs/data",
		Persistent: true,
		Ops: map[string]control.OpStats{
			"CREATE": fakeOp(0, 1, 4, 5, len(control.LatencyBounds)),
			"LOOKUP": fakeOp(2),
		},
		ReadBytes:      4096,
		WriteBytes:     8192,
		StoreUsed:      1 << 20,
		StoreAllocated: 2 << 20,
		SizeLimit:      1 << 30,
		Resident:       3 << 20,
		Inodes:         17,
		InodeLimit:     1000,
		Lent:           2,
		Windows:        3,
		MappedBytes:    4 << 20,
		OpenFDs:        5,
		JournalBytes:   12345,
		Compactions:    1,
		LastCompaction: time.Unix(1700000100, 500000000),
		CompactionTook: 0.25,
	}
}

func TestCollectorOutput(t *testing.T) {
	c := NewCollector(fakeStats)
	want := `
# HELP mmapfs_requests_total FUSE requests served, by operation.
# TYPE mmapfs_requests_total counter
mmapfs_requests_total{operation="CREATE"} 5
mmapfs_requests_total{operation="LOOKUP"} 1
# HELP mmapfs_request_errors_total FUSE requests answered with an error, by operation.
# TYPE mmapfs_request_errors_total counter
mmapfs_request_errors_total{operation="CREATE"} 1
mmapfs_request_errors_total{operation="LOOKUP"} 1
# HELP mmapfs_info The mount a server serves: its mount point, its store directory and whether the store persists (always 1).
# TYPE mmapfs_info gauge
mmapfs_info{mountpoint="/mnt/data",persistent="true",store="/var/lib/mmapfs/data"} 1
# HELP mmapfs_read_bytes_total Bytes of file data the server read for READ replies (what passthrough serves is not counted).
# TYPE mmapfs_read_bytes_total counter
mmapfs_read_bytes_total 4096
# HELP mmapfs_written_bytes_total Bytes of file data the server wrote for WRITE requests (what passthrough serves is not counted).
# TYPE mmapfs_written_bytes_total counter
mmapfs_written_bytes_total 8192
# HELP mmapfs_store_limit_bytes The size limit of file data (size=); absent when there is none.
# TYPE mmapfs_store_limit_bytes gauge
mmapfs_store_limit_bytes 1.073741824e+09
# HELP mmapfs_inodes_limit The inode limit (nr_inodes=); absent when there is none.
# TYPE mmapfs_inodes_limit gauge
mmapfs_inodes_limit 1000
# HELP mmapfs_journal_last_compaction_timestamp_seconds When the last compaction of the journal ended, in seconds since the epoch; absent before the first.
# TYPE mmapfs_journal_last_compaction_timestamp_seconds gauge
mmapfs_journal_last_compaction_timestamp_seconds 1.7000001005e+09
`
	if err := testutil.CollectAndCompare(c, strings.NewReader(want),
		"mmapfs_requests_total", "mmapfs_request_errors_total", "mmapfs_info",
		"mmapfs_read_bytes_total", "mmapfs_written_bytes_total", "mmapfs_store_limit_bytes",
		"mmapfs_inodes_limit", "mmapfs_journal_last_compaction_timestamp_seconds"); err != nil {
		t.Error(err)
	}
	// Every figure is there once: 21 metric names, 2 operations with
	// three each.
	if n := testutil.CollectAndCount(c); n != 18+2*3 {
		t.Errorf("%d metrics, want %d", n, 18+2*3)
	}
}

// The histogram merges bucketStep buckets into one and keeps every request.
func TestCollectorHistogram(t *testing.T) {
	reg := prometheus.NewPedanticRegistry()
	reg.MustRegister(NewCollector(fakeStats))
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != "mmapfs_request_duration_seconds" {
			continue
		}
		for _, m := range mf.GetMetric() {
			if m.GetLabel()[0].GetValue() != "CREATE" {
				continue
			}
			h := m.GetHistogram()
			if h.GetSampleCount() != 5 || h.GetSampleSum() != 0.005 {
				t.Errorf("count %d sum %g, want 5 and 0.005", h.GetSampleCount(), h.GetSampleSum())
			}
			if h.GetCreatedTimestamp().AsTime().Unix() != 1700000000 {
				t.Errorf("created %v, want the mount's start", h.GetCreatedTimestamp().AsTime())
			}
			// Requests in buckets 0, 1, 4, 5 and past the last: at
			// 1 µs one, at 4 µs three, at 16 µs four, ... at the last
			// bound four still.
			b := h.GetBucket()
			if len(b) != len(histBounds) {
				t.Fatalf("%d buckets, want %d", len(b), len(histBounds))
			}
			want := map[float64]uint64{1e-6: 1, 4e-6: 3, 16e-6: 4, control.LatencyBounds[len(control.LatencyBounds)-1].Seconds(): 4}
			for _, bk := range b {
				if w, ok := want[bk.GetUpperBound()]; ok && bk.GetCumulativeCount() != w {
					t.Errorf("bucket le=%g: %d, want %d", bk.GetUpperBound(), bk.GetCumulativeCount(), w)
				}
			}
			return
		}
	}
	t.Fatal("no histogram for CREATE")
}

// Names, units, types and help texts pass promlint, the checker of the
// Prometheus naming conventions.
func TestCollectorLint(t *testing.T) {
	problems, err := testutil.CollectAndLint(NewCollector(fakeStats))
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range problems {
		t.Errorf("%s: %s", p.Metric, p.Text)
	}
}

// A server with nothing counted yet (or figures not filled in) still gives
// a valid scrape: no limits, no journal of a memory store, no histograms.
func TestCollectorEmpty(t *testing.T) {
	c := NewCollector(func() control.Stats { return control.Stats{Mountpoint: "/mnt"} })
	reg := prometheus.NewPedanticRegistry()
	reg.MustRegister(c)
	if _, err := reg.Gather(); err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"mmapfs_store_limit_bytes", "mmapfs_inodes_limit", "mmapfs_journal_bytes", "mmapfs_requests_total", "mmapfs_request_duration_seconds"} {
		if n := testutil.CollectAndCount(c, name); n != 0 {
			t.Errorf("%s: %d series, want none", name, n)
		}
	}
	if n := testutil.CollectAndCount(c, "mmapfs_info", "mmapfs_store_used_bytes", "mmapfs_inodes"); n != 3 {
		t.Errorf("%d of info, used bytes and inodes, want 3", n)
	}
}

// Figures with buckets of another length (a server of another version)
// keep their counts and lose only the histogram.
func TestCollectorOtherBuckets(t *testing.T) {
	c := NewCollector(func() control.Stats {
		return control.Stats{Ops: map[string]control.OpStats{"READ": {Count: 3, Buckets: []uint64{1, 2}}}}
	})
	if n := testutil.CollectAndCount(c, "mmapfs_request_duration_seconds"); n != 0 {
		t.Errorf("%d histograms, want none", n)
	}
	if v := testutil.CollectAndCount(c, "mmapfs_requests_total"); v != 1 {
		t.Errorf("%d request counters, want 1", v)
	}
}
