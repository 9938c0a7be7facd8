package control

import (
	"math"
	"math/bits"
	"sync/atomic"
	"time"
)

// LatencyBounds are the upper bounds of the buckets of request latency:
// half an octave apart, from 1 µs to about 8 s. A request longer than the
// last falls in one more bucket.
var LatencyBounds = func() []time.Duration {
	b := make([]time.Duration, 0, 2*23+1)
	for i := 0; i <= 2*23; i++ {
		b = append(b, time.Duration(math.Round(1000*math.Pow(2, float64(i)/2))))
	}
	return b
}()

// bucketOf returns the index of the bucket of d in LatencyBounds (or
// len(LatencyBounds) past the last), with no loop over the bounds.
func bucketOf(d time.Duration) int {
	if d <= LatencyBounds[0] {
		return 0
	}
	// 2^(k/2) µs ≥ d: k = ceil(2·log2(d/1µs)), from the bit length and
	// one comparison for the half step.
	k := 2 * (bits.Len64(uint64(d-1)/1000) - 1)
	k = max(0, min(k, len(LatencyBounds)))
	for k < len(LatencyBounds) && LatencyBounds[k] < d {
		k++
	}
	return k
}

// Counter counts the requests of one operation: how many, how many
// failed, and how long they took. Its methods may be called concurrently;
// they take no lock.
type Counter struct {
	count   atomic.Uint64
	errors  atomic.Uint64
	nanos   atomic.Uint64
	buckets [2*23 + 2]atomic.Uint64
}

// Observe counts one request that took d, failed or not.
func (c *Counter) Observe(d time.Duration, failed bool) {
	c.count.Add(1)
	if failed {
		c.errors.Add(1)
	}
	if d < 0 {
		d = 0
	}
	c.nanos.Add(uint64(d))
	c.buckets[bucketOf(d)].Add(1)
}

// Count returns the number of requests counted.
func (c *Counter) Count() uint64 { return c.count.Load() }

// Snapshot returns the figures counted so far, percentiles included.
func (c *Counter) Snapshot() OpStats {
	s := OpStats{
		Count:   c.count.Load(),
		Errors:  c.errors.Load(),
		Seconds: float64(c.nanos.Load()) / 1e9,
		Buckets: make([]uint64, len(c.buckets)),
	}
	var total uint64
	for i := range c.buckets {
		s.Buckets[i] = c.buckets[i].Load()
		total += s.Buckets[i]
	}
	s.P50 = percentile(s.Buckets, total, 0.50)
	s.P90 = percentile(s.Buckets, total, 0.90)
	s.P99 = percentile(s.Buckets, total, 0.99)
	return s
}

// percentile returns the upper bound, in seconds, of the bucket that holds
// the q-th quantile of total requests (the last bound past it: JSON has no
// infinity; 0 for none).
func percentile(buckets []uint64, total uint64, q float64) float64 {
	if total == 0 {
		return 0
	}
	rank := uint64(math.Ceil(q * float64(total)))
	var seen uint64
	for i, n := range buckets {
		seen += n
		if seen >= rank {
			return LatencyBounds[min(i, len(LatencyBounds)-1)].Seconds()
		}
	}
	return LatencyBounds[len(LatencyBounds)-1].Seconds()
}
