package tests

// End-to-end tests of --metrics: the program serves Prometheus metrics on
// the address it is given, and a port in use stops it before it mounts.

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
)

// binFreePort returns 127.0.0.1:PORT for a port nothing listens on now.
func binFreePort(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// binScrape fetches url and returns its status and body.
func binScrape(t *testing.T, url string) (int, string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), binCmdTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, "GET", url, nil)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	return resp.StatusCode, string(b)
}

// binMetricValue returns the value of the counter or gauge of mf whose
// labels include want, and whether there is one.
func binMetricValue(mf *dto.MetricFamily, want map[string]string) (float64, bool) {
	if mf == nil {
		return 0, false
	}
metrics:
	for _, m := range mf.GetMetric() {
		have := map[string]string{}
		for _, l := range m.GetLabel() {
			have[l.GetName()] = l.GetValue()
		}
		for k, v := range want {
			if have[k] != v {
				continue metrics
			}
		}
		switch {
		case m.Counter != nil:
			return m.GetCounter().GetValue(), true
		case m.Gauge != nil:
			return m.GetGauge().GetValue(), true
		case m.Histogram != nil:
			return float64(m.GetHistogram().GetSampleCount()), true
		}
	}
	return 0, false
}

func TestBinaryMetrics(t *testing.T) {
	addr := binFreePort(t)
	p, mnt, memdir := binMount(t, "--size", "16M", "--metrics", addr)
	const creates = 5
	for i := range creates {
		f, err := os.Create(filepath.Join(mnt, fmt.Sprintf("f%d", i)))
		if err != nil {
			t.Fatal(err)
		}
		f.Close()
	}
	if _, err := os.Stat(filepath.Join(mnt, "missing")); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("stat of a missing file: %v", err)
	}

	code, body := binScrape(t, "http://"+addr+"/metrics")
	if code != http.StatusOK {
		t.Fatalf("/metrics: status %d: %s", code, body)
	}
	parser := expfmt.NewTextParser(model.UTF8Validation)
	mfs, err := parser.TextToMetricFamilies(strings.NewReader(body))
	if err != nil {
		t.Fatalf("/metrics is not Prometheus text: %v\n%s", err, body)
	}
	req := mfs["mmapfs_requests_total"]
	if n, ok := binMetricValue(req, map[string]string{"operation": "CREATE"}); !ok || n < creates {
		t.Errorf("mmapfs_requests_total{operation=CREATE} = %v (%v), want at least %d", n, ok, creates)
	}
	if n, ok := binMetricValue(req, map[string]string{"operation": "LOOKUP"}); !ok || n < 1 {
		t.Errorf("mmapfs_requests_total{operation=LOOKUP} = %v (%v), want at least 1", n, ok)
	}
	if n, ok := binMetricValue(mfs["mmapfs_request_errors_total"], map[string]string{"operation": "CREATE"}); !ok || n != 0 {
		t.Errorf("mmapfs_request_errors_total{operation=CREATE} = %v (%v), want 0", n, ok)
	}
	if n, ok := binMetricValue(mfs["mmapfs_request_duration_seconds"], map[string]string{"operation": "CREATE"}); !ok || n < creates {
		t.Errorf("mmapfs_request_duration_seconds{operation=CREATE} counts %v (%v), want at least %d", n, ok, creates)
	}
	if v, ok := binMetricValue(mfs["mmapfs_info"], map[string]string{"mountpoint": mnt, "persistent": "false"}); !ok || v != 1 {
		t.Errorf("no mmapfs_info{mountpoint=%q,persistent=false} 1 in\n%s", mnt, body)
	}
	for _, name := range []string{"mmapfs_inodes", "mmapfs_store_used_bytes", "go_goroutines", "process_resident_memory_bytes"} {
		if mfs[name] == nil {
			t.Errorf("/metrics lacks %s", name)
		}
	}
	if code, body := binScrape(t, "http://"+addr+"/"); code != http.StatusOK || strings.Count(body, "\n") != 1 || !strings.Contains(body, "/metrics") {
		t.Errorf("/: status %d, %q; want one line pointing to /metrics", code, body)
	}
	if out := p.output.String(); !strings.Contains(out, "metrics at http://"+addr+"/metrics: loopback only") {
		t.Errorf("the log does not say where the metrics are:\n%s", out)
	}

	if err := binUnmount(t, mnt); err != nil {
		t.Fatal(err)
	}
	if code := p.binWait(); code != 0 {
		t.Fatalf("exit status %d, want 0; output:\n%s", code, p.output)
	}
	binCheckGone(t, mnt, memdir)
	if c, err := net.Dial("tcp", addr); err == nil {
		c.Close()
		t.Errorf("%s still listens after the server exited", addr)
	}

	// A port in use: one line, status 1, nothing mounted, no store.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	busy := ln.Addr().String()
	bin := binBuild(t)
	for _, c := range []struct {
		name string
		args []string
	}{
		{"port-in-use", []string{"mount", "--memdir", memdir, "--metrics", busy, mnt}},
		{"port-in-use-helper-form", []string{"mmapfs", mnt, "-o", "memdir=" + memdir + ",metrics=" + busy}},
	} {
		t.Run(c.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), binCmdTimeout)
			defer cancel()
			cmd := exec.CommandContext(ctx, bin, c.args...)
			cmd.WaitDelay = 5 * time.Second
			var stdout, stderr bytes.Buffer
			cmd.Stdout, cmd.Stderr = &stdout, &stderr
			err := cmd.Run()
			var ee *exec.ExitError
			if !errors.As(err, &ee) || ee.ExitCode() != 1 {
				t.Fatalf("mmapfs %q: %v, want exit status 1; stderr %q", c.args, err, stderr.String())
			}
			want := "mmapfs: metrics address " + busy + ": address already in use (another program listens on that port)\n"
			if errs := stderr.String(); errs != want {
				t.Errorf("stderr %q, want %q", errs, want)
			}
			if stdout.Len() != 0 {
				t.Errorf("stdout %q", stdout.String())
			}
			if m := binFindMount(mnt); m != nil {
				t.Errorf("%s mounted: %+v", mnt, *m)
			}
			if dirs := binStoreDirs(t, memdir); len(dirs) != 0 {
				t.Errorf("a memory store was left behind: %q", dirs)
			}
		})
	}
}
