package metrics

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"sync"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"go.uber.org/zap"

	"mmapfs/control"
)

// Bounds of the HTTP server: reading a request's header, a scrape, an idle
// connection, and how long Close waits for scrapes being served.
const (
	readHeaderTimeout = 10 * time.Second
	writeTimeout      = 30 * time.Second
	idleTimeout       = 2 * time.Minute
	closeTimeout      = 5 * time.Second
)

// rootText is the one line served at /.
const rootText = "mmapfs: Prometheus metrics at /metrics\n"

// Server serves the metrics of one mount over HTTP, at /metrics.
type Server struct {
	ln       net.Listener
	portOnly bool
	log      *zap.Logger

	srv   *http.Server  // nil until Start
	done  chan struct{} // closed when srv.Serve returned
	close sync.Once
}

// Serve listens on addr (see ParseAddr) and serves the figures stats
// returns there.
func Serve(addr string, stats func() control.Stats, log *zap.Logger) (*Server, error) {
	s, err := Listen(addr, log)
	if err != nil {
		return nil, err
	}
	s.Start(stats)
	return s, nil
}

// Listen takes addr (see ParseAddr) and returns a server that serves
// nothing until Start: a caller takes the address before it has figures to
// serve, and fails before it starts anything if the address is taken.
// Connections made before Start wait for it.
func Listen(addr string, log *zap.Logger) (*Server, error) {
	hostport, portOnly, err := ParseAddr(addr)
	if err != nil {
		return nil, fmt.Errorf("metrics address %q: %w", addr, err)
	}
	ln, err := net.Listen("tcp", hostport)
	if err != nil {
		return nil, listenError(hostport, err)
	}
	return &Server{ln: ln, portOnly: portOnly, log: log}, nil
}

// listenError says in one line why the metrics cannot listen on hostport.
func listenError(hostport string, err error) error {
	var errno syscall.Errno
	if !errors.As(err, &errno) {
		return fmt.Errorf("metrics address %s: %w", hostport, err)
	}
	hint := ""
	switch errno {
	case syscall.EADDRINUSE:
		hint = " (another program listens on that port)"
	case syscall.EADDRNOTAVAIL:
		hint = " (no interface of this machine has that address)"
	case syscall.EACCES:
		hint = " (ports below 1024 need root or CAP_NET_BIND_SERVICE)"
	}
	return fmt.Errorf("metrics address %s: %w%s", hostport, errno, hint)
}

// Addr returns the address the server listens on.
func (s *Server) Addr() net.Addr { return s.ln.Addr() }

// Start serves the figures stats returns, with the Go runtime's and the
// process's, at /metrics, and logs where. It is called once, and not at
// the same time as Close.
func (s *Server) Start(stats func() control.Stats) {
	reg := prometheus.NewRegistry()
	reg.MustRegister(
		NewCollector(stats),
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
	)
	handler := promhttp.InstrumentMetricHandler(reg, promhttp.HandlerFor(reg, promhttp.HandlerOpts{
		ErrorLog:          zap.NewStdLog(s.log),
		EnableOpenMetrics: true,
	}))
	mux := http.NewServeMux()
	mux.Handle("/metrics", handler)
	mux.HandleFunc("/{$}", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		io.WriteString(w, rootText)
	})
	httpLog, _ := zap.NewStdLogAt(s.log, zap.DebugLevel) // clients that go away are no news
	s.srv = &http.Server{
		Handler:           mux,
		ReadHeaderTimeout: readHeaderTimeout,
		WriteTimeout:      writeTimeout,
		IdleTimeout:       idleTimeout,
		ErrorLog:          httpLog,
	}
	s.done = make(chan struct{})
	go func() {
		defer close(s.done)
		if err := s.srv.Serve(s.ln); !errors.Is(err, http.ErrServerClosed) {
			s.log.Warn("metrics: no more scrapes are served", zap.Error(err))
		}
	}()
	s.log.Info(fmt.Sprintf("metrics at http://%s/metrics: %s", s.ln.Addr(), reach(s.ln.Addr(), s.portOnly)))
}

// Close stops serving. It waits for the scrapes being served (for
// closeTimeout at most), so that none asks for figures once it returns.
// Later calls do nothing.
func (s *Server) Close() error {
	var err error
	s.close.Do(func() {
		if s.srv == nil {
			err = s.ln.Close()
			return
		}
		ctx, cancel := context.WithTimeout(context.Background(), closeTimeout)
		defer cancel()
		if err = s.srv.Shutdown(ctx); err != nil {
			err = s.srv.Close()
		}
		<-s.done
	})
	return err
}
