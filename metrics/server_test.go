package metrics

import (
	"errors"
	"io"
	"net"
	"net/http"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	"go.uber.org/zap"
	"go.uber.org/zap/zaptest/observer"
)

func TestParseAddr(t *testing.T) {
	for _, c := range []struct {
		in       string
		want     string
		portOnly bool
		err      string
	}{
		{in: "9100", want: "127.0.0.1:9100", portOnly: true},
		{in: ":9100", want: "127.0.0.1:9100", portOnly: true},
		{in: "0", want: "127.0.0.1:0", portOnly: true},
		{in: "09100", want: "127.0.0.1:9100", portOnly: true},
		{in: "localhost:9100", want: "localhost:9100"},
		{in: "127.0.0.1:9100", want: "127.0.0.1:9100"},
		{in: "[::1]:9100", want: "[::1]:9100"},
		{in: "0.0.0.0:9100", want: "0.0.0.0:9100"},
		{in: "192.168.1.5:9100", want: "192.168.1.5:9100"},
		{in: "[::]:9100", want: "[::]:9100"},
		{in: "", err: "empty"},
		{in: "localhost", err: "want PORT, HOST:PORT"},
		{in: "localhost:", err: "no port"},
		{in: "::1:9100", err: "IPv6 address needs brackets"},
		{in: "65536", err: "0 to 65535"},
		{in: "localhost:http", err: "0 to 65535"},
		{in: "localhost:-1", err: "0 to 65535"},
		{in: "localhost:+80", err: "0 to 65535"},
	} {
		got, portOnly, err := ParseAddr(c.in)
		switch {
		case c.err != "" && (err == nil || !strings.Contains(err.Error(), c.err)):
			t.Errorf("ParseAddr(%q): %q, %v; want an error with %q", c.in, got, err, c.err)
		case c.err == "" && (err != nil || got != c.want || portOnly != c.portOnly):
			t.Errorf("ParseAddr(%q): %q, %v, %v; want %q, %v", c.in, got, portOnly, err, c.want, c.portOnly)
		}
	}
}

// serveTest serves fakeStats on addr and returns the server and its log.
func serveTest(t *testing.T, addr string) (*Server, *observer.ObservedLogs) {
	t.Helper()
	core, logs := observer.New(zap.InfoLevel)
	s, err := Serve(addr, fakeStats, zap.New(core))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s, logs
}

// get fetches path from s and returns the response and its body.
func get(t *testing.T, s *Server, path, accept string) (*http.Response, string) {
	t.Helper()
	req, err := http.NewRequest("GET", "http://"+s.Addr().String()+path, nil)
	if err != nil {
		t.Fatal(err)
	}
	if accept != "" {
		req.Header.Set("Accept", accept)
	}
	resp, err := (&http.Client{Timeout: 30 * time.Second}).Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp, string(b)
}

// A port alone listens on loopback and says so; /metrics parses as
// Prometheus text with mmapfs's figures, the Go runtime's and the
// process's; / is one line; Close stops it.
func TestServe(t *testing.T) {
	s, logs := serveTest(t, "0")
	a := s.Addr().(*net.TCPAddr)
	if !a.IP.Equal(net.IPv4(127, 0, 0, 1)) {
		t.Errorf("listening on %v, want 127.0.0.1", a)
	}
	if l := logs.All(); len(l) != 1 || !strings.Contains(l[0].Message, "http://"+a.String()+"/metrics: loopback only (give a host") {
		t.Errorf("log: %+v", l)
	}

	resp, body := get(t, s, "/metrics", "")
	if resp.StatusCode != 200 || !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/plain") {
		t.Fatalf("/metrics: %s, %s", resp.Status, resp.Header.Get("Content-Type"))
	}
	p := expfmt.NewTextParser(model.UTF8Validation)
	mfs, err := p.TextToMetricFamilies(strings.NewReader(body))
	if err != nil {
		t.Fatalf("/metrics does not parse: %v\n%s", err, body)
	}
	for _, name := range []string{"mmapfs_info", "mmapfs_requests_total", "mmapfs_request_duration_seconds",
		"go_goroutines", "process_open_fds", "promhttp_metric_handler_requests_total"} {
		if mfs[name] == nil {
			t.Errorf("/metrics lacks %s", name)
		}
	}

	resp, body = get(t, s, "/metrics", "application/openmetrics-text")
	if !strings.HasPrefix(resp.Header.Get("Content-Type"), "application/openmetrics-text") || !strings.HasSuffix(body, "# EOF\n") {
		t.Errorf("OpenMetrics: %s, ending %q", resp.Header.Get("Content-Type"), body[max(0, len(body)-20):])
	}

	if resp, body := get(t, s, "/", ""); resp.StatusCode != 200 || body != rootText {
		t.Errorf("/: %s %q", resp.Status, body)
	}
	if resp, _ := get(t, s, "/nothing", ""); resp.StatusCode != 404 {
		t.Errorf("/nothing: %s, want 404", resp.Status)
	}

	if err := s.Close(); err != nil {
		t.Errorf("Close: %v", err)
	}
	s.Close() // again: nothing
	if c, err := net.Dial("tcp", a.String()); err == nil {
		c.Close()
		t.Errorf("still listening after Close")
	}
}

// An address with a host is taken as given; the log says who can reach it.
func TestServeReach(t *testing.T) {
	for _, c := range []struct{ addr, want string }{
		{"127.0.0.1:0", ": loopback only"},
		{"localhost:0", ": loopback only"},
		{"0.0.0.0:0", "reachable from the network, on every interface"},
	} {
		s, logs := serveTest(t, c.addr)
		l := logs.All()
		if len(l) != 1 || !strings.HasSuffix(l[0].Message, c.want) {
			t.Errorf("%s: log %+v, want a line ending %q", c.addr, l, c.want)
		}
		s.Close()
	}
	// ::1 where this machine has it.
	if ln, err := net.Listen("tcp", "[::1]:0"); err == nil {
		ln.Close()
		s, logs := serveTest(t, "[::1]:0")
		if l := logs.All(); !strings.HasPrefix(s.Addr().String(), "[::1]:") || len(l) != 1 || !strings.HasSuffix(l[0].Message, ": loopback only") {
			t.Errorf("[::1]: listening on %v, log %+v", s.Addr(), l)
		}
	}
}

// A port in use, an address this machine does not have or a malformed
// one: one line that says so, and nothing listens.
func TestListenErrors(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	busy := ln.Addr().String()
	for _, c := range []struct{ addr, want string }{
		{busy, "metrics address " + busy + ": address already in use (another program listens on that port)"},
		{"192.0.2.1:0", "metrics address 192.0.2.1:0: cannot assign requested address (no interface of this machine has that address)"},
		{"::1:9100", `metrics address "::1:9100": an IPv6 address needs brackets`},
	} {
		s, err := Listen(c.addr, zap.NewNop())
		if err == nil {
			s.Close()
			t.Errorf("Listen(%q): no error", c.addr)
			continue
		}
		if !strings.HasPrefix(err.Error(), c.want) || strings.Contains(err.Error(), "\n") {
			t.Errorf("Listen(%q): %q, want %q", c.addr, err, c.want)
		}
	}
	_, err = Listen(busy, zap.NewNop())
	if !errors.Is(err, syscall.EADDRINUSE) {
		t.Errorf("port in use: %v is not EADDRINUSE", err)
	}
}

// A server taken with Listen and closed without Start lets the port go.
func TestListenClose(t *testing.T) {
	s, err := Listen("0", zap.NewNop())
	if err != nil {
		t.Fatal(err)
	}
	addr := s.Addr().String()
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		t.Fatalf("port not let go: %v", err)
	}
	ln.Close()
}
