// Package metrics serves the figures of a live mmapfs server (the
// control.Stats that `mmapfs stats` shows) to Prometheus, with the official
// Go client: its registry, its text and OpenMetrics encoding, and its HTTP
// handler. It is off unless the mount is given --metrics ADDR.
package metrics

import (
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"mmapfs/control"
)

// namespace is the prefix of every metric of mmapfs.
const namespace = "mmapfs"

// bucketStep is how many of control.LatencyBounds make one bucket of the
// request duration histogram: 4 makes buckets a factor of 4 apart (1 µs,
// 4 µs, 16 µs, ... 4.2 s, and the last bound, 8.4 s), 14 series per
// operation rather than 49.
const bucketStep = 4

// histBounds are the indexes in control.LatencyBounds of the upper bounds
// of the histogram's buckets: every bucketStep-th, and the last.
var histBounds = func() []int {
	var b []int
	for i := 0; i < len(control.LatencyBounds); i += bucketStep {
		b = append(b, i)
	}
	if last := len(control.LatencyBounds) - 1; b[len(b)-1] != last {
		b = append(b, last)
	}
	return b
}()

func newDesc(name, help string, labels ...string) *prometheus.Desc {
	return prometheus.NewDesc(namespace+"_"+name, help, labels, nil)
}

// The metrics of a server, with Prometheus's names: base units in the name,
// _total for counters.
var (
	descInfo = newDesc("info", "The mount a server serves: its mount point, its store directory and whether the store persists (always 1).",
		"mountpoint", "store", "persistent")
	descReadOnly = newDesc("read_only", "1 while the server is read-only (mounted or remounted ro), else 0.")

	descRequests = newDesc("requests_total", "FUSE requests served, by operation.", "operation")
	descErrors   = newDesc("request_errors_total", "FUSE requests answered with an error, by operation.", "operation")
	descDuration = newDesc("request_duration_seconds", "Time the server took to serve a FUSE request, by operation.", "operation")

	descReadBytes    = newDesc("read_bytes_total", "Bytes of file data the server read for READ replies (what passthrough serves is not counted).")
	descWrittenBytes = newDesc("written_bytes_total", "Bytes of file data the server wrote for WRITE requests (what passthrough serves is not counted).")

	descStoreUsed      = newDesc("store_used_bytes", "Bytes of file data in the store, as statfs counts them.")
	descStoreAllocated = newDesc("store_allocated_bytes", "Bytes allocated to store files.")
	descStoreLimit     = newDesc("store_limit_bytes", "The size limit of file data (size=); absent when there is none.")
	descStoreResident  = newDesc("store_resident_bytes", "Bytes of store files resident in RAM.")

	descInodes     = newDesc("inodes", "Inodes in use, the root included.")
	descInodeLimit = newDesc("inodes_limit", "The inode limit (nr_inodes=); absent when there is none.")

	descLent        = newDesc("lent_files", "Files lent to FUSE passthrough now.")
	descWindows     = newDesc("mapped_windows", "Windows of store files mapped into the server's memory.")
	descMappedBytes = newDesc("mapped_bytes", "Bytes of store files mapped into the server's memory.")
	descOpenFDs     = newDesc("store_open_fds", "Store files the server holds open.")

	descJournalBytes     = newDesc("journal_bytes", "Size of the journal of a persistent store.")
	descCompactions      = newDesc("journal_compactions_total", "Compactions of the journal of a persistent store since the mount.")
	descLastCompaction   = newDesc("journal_last_compaction_timestamp_seconds", "When the last compaction of the journal ended, in seconds since the epoch; absent before the first.")
	descCompactionLength = newDesc("journal_last_compaction_duration_seconds", "How long the last compaction of the journal took; absent before the first.")
)

// allDescs are every metric a Collector may emit.
var allDescs = []*prometheus.Desc{
	descInfo, descReadOnly, descRequests, descErrors, descDuration,
	descReadBytes, descWrittenBytes,
	descStoreUsed, descStoreAllocated, descStoreLimit, descStoreResident,
	descInodes, descInodeLimit, descLent, descWindows, descMappedBytes, descOpenFDs,
	descJournalBytes, descCompactions, descLastCompaction, descCompactionLength,
}

// Collector is a prometheus.Collector of the figures of one server: each
// scrape asks for them anew. Figures a server does not have (the limits
// where there is none, the journal of a memory store) are left out.
type Collector struct {
	stats func() control.Stats
}

// NewCollector returns the collector of the figures stats returns.
func NewCollector(stats func() control.Stats) *Collector {
	return &Collector{stats: stats}
}

// Describe sends the descriptions of every metric Collect may send.
func (c *Collector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range allDescs {
		ch <- d
	}
}

// Collect sends the figures of the server now.
func (c *Collector) Collect(ch chan<- prometheus.Metric) {
	st := c.stats()
	gauge := func(d *prometheus.Desc, v float64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v, labels...)
	}
	// Counters carry the time of the mount, when they started from 0.
	counter := func(d *prometheus.Desc, v float64, labels ...string) {
		if st.Started.IsZero() {
			ch <- prometheus.MustNewConstMetric(d, prometheus.CounterValue, v, labels...)
			return
		}
		ch <- prometheus.MustNewConstMetricWithCreatedTimestamp(d, prometheus.CounterValue, v, st.Started, labels...)
	}

	gauge(descInfo, 1, st.Mountpoint, st.Store, strconv.FormatBool(st.Persistent))
	gauge(descReadOnly, boolValue(st.ReadOnly))

	for op, s := range st.Ops {
		counter(descRequests, float64(s.Count), op)
		counter(descErrors, float64(s.Errors), op)
		if m := histogram(s, st.Started, op); m != nil {
			ch <- m
		}
	}
	counter(descReadBytes, float64(st.ReadBytes))
	counter(descWrittenBytes, float64(st.WriteBytes))

	gauge(descStoreUsed, float64(st.StoreUsed))
	gauge(descStoreAllocated, float64(st.StoreAllocated))
	if st.SizeLimit > 0 {
		gauge(descStoreLimit, float64(st.SizeLimit))
	}
	gauge(descStoreResident, float64(st.Resident))
	gauge(descInodes, float64(st.Inodes))
	if st.InodeLimit > 0 {
		gauge(descInodeLimit, float64(st.InodeLimit))
	}
	gauge(descLent, float64(st.Lent))
	gauge(descWindows, float64(st.Windows))
	gauge(descMappedBytes, float64(st.MappedBytes))
	gauge(descOpenFDs, float64(st.OpenFDs))

	if st.Persistent {
		gauge(descJournalBytes, float64(st.JournalBytes))
		counter(descCompactions, float64(st.Compactions))
		if !st.LastCompaction.IsZero() {
			gauge(descLastCompaction, float64(st.LastCompaction.UnixNano())/1e9)
			gauge(descCompactionLength, st.CompactionTook)
		}
	}
}

// histogram returns the request duration histogram of one operation, its
// buckets merged bucketStep to one; nil if the figures do not have one
// bucket per bound of control.LatencyBounds and one past them.
func histogram(s control.OpStats, started time.Time, op string) prometheus.Metric {
	if len(s.Buckets) != len(control.LatencyBounds)+1 {
		return nil
	}
	buckets := make(map[float64]uint64, len(histBounds))
	var cum uint64
	next := 0 // index in s.Buckets of the first not yet added
	for _, b := range histBounds {
		for ; next <= b; next++ {
			cum += s.Buckets[next]
		}
		buckets[control.LatencyBounds[b].Seconds()] = cum
	}
	for ; next < len(s.Buckets); next++ {
		cum += s.Buckets[next]
	}
	// The count is that of the buckets, which a snapshot read after
	// s.Count: the +Inf bucket must hold every request of the others.
	if started.IsZero() {
		return prometheus.MustNewConstHistogram(descDuration, cum, s.Seconds, buckets, op)
	}
	return prometheus.MustNewConstHistogramWithCreatedTimestamp(descDuration, cum, s.Seconds, buckets, started, op)
}

func boolValue(b bool) float64 {
	if b {
		return 1
	}
	return 0
}
