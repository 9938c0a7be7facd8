package control

import (
	"errors"
	"math/rand/v2"
	"os"
	"strings"
	"testing"
	"time"

	"go.uber.org/zap"
)

type fakeHandler struct{ changes []Change }

func (f *fakeHandler) Stats() Stats {
	return Stats{Mountpoint: "/x", Ops: map[string]OpStats{"LOOKUP": {Count: 3}}}
}

func (f *fakeHandler) Change(c Change) error {
	if c.Size != nil && *c.Size < 0 {
		return errors.New("negative size")
	}
	f.changes = append(f.changes, c)
	return nil
}

func TestRoundTrip(t *testing.T) {
	dev := uint64(1<<40 | rand.Uint64N(1<<20)) // a device no mount has
	h := &fakeHandler{}
	s, err := Listen(dev, 0, h, zap.NewNop())
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	m := &Mount{Mountpoint: "/x", Dev: dev}
	resp, err := Ask(m, Request{Op: ReqStats})
	if err != nil || resp.Error != "" || resp.Stats == nil || resp.Stats.Ops["LOOKUP"].Count != 3 {
		t.Fatalf("stats: %+v, %v", resp, err)
	}
	size := int64(-1)
	resp, err = Ask(m, Request{Op: ReqChange, Change: &Change{Size: &size}})
	if err != nil || resp.Error != "negative size" {
		t.Fatalf("refused change: %+v, %v", resp, err)
	}
	size = 4096
	if resp, err = Ask(m, Request{Op: ReqChange, Change: &Change{Size: &size}}); err != nil || resp.Error != "" {
		t.Fatalf("change: %+v, %v", resp, err)
	}
	if len(h.changes) != 1 || *h.changes[0].Size != 4096 {
		t.Fatalf("changes: %+v", h.changes)
	}
	if resp, err = Ask(m, Request{Op: "nonsense"}); err != nil || !strings.Contains(resp.Error, "unknown request") {
		t.Fatalf("unknown: %+v, %v", resp, err)
	}
	s.Close()
	if _, err := Ask(m, Request{Op: ReqStats}); err == nil || !strings.Contains(err.Error(), "does not answer") {
		t.Fatalf("closed server: %v", err)
	}
}

func TestRefusesStranger(t *testing.T) {
	dev := uint64(1<<41 | rand.Uint64N(1<<20))
	// The server's owner is a user this process is not; root is let in
	// anyway, so this runs only as another user.
	s, err := Listen(dev, 4242, &fakeHandler{}, zap.NewNop())
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	resp, err := Ask(&Mount{Mountpoint: "/x", Dev: dev, Owner: 4242}, Request{Op: ReqStats})
	if err != nil {
		t.Fatal(err)
	}
	if os.Geteuid() == 0 {
		if resp.Error != "" {
			t.Fatalf("root refused: %s", resp.Error)
		}
		return
	}
	if !strings.Contains(resp.Error, "permission denied") {
		t.Fatalf("stranger served: %+v", resp)
	}
}

func TestBuckets(t *testing.T) {
	for i, b := range LatencyBounds {
		if got := bucketOf(b); got != i {
			t.Errorf("bucketOf(%v) = %d, want %d", b, got, i)
		}
		if got := bucketOf(b + 1); got != i+1 {
			t.Errorf("bucketOf(%v+1) = %d, want %d", b, got, i+1)
		}
	}
	if got := bucketOf(time.Hour); got != len(LatencyBounds) {
		t.Errorf("bucketOf(1h) = %d", got)
	}
	var c Counter
	for i := 0; i < 100; i++ {
		c.Observe(time.Duration(i+1)*time.Microsecond, i%10 == 0)
	}
	s := c.Snapshot()
	if s.Count != 100 || s.Errors != 10 || s.P50 < 50e-6 || s.P50 > 72e-6 || s.P99 < 99e-6 || s.P99 > 142e-6 {
		t.Fatalf("snapshot: %+v", s)
	}
}
