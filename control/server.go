package control

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"sync"
	"time"

	"go.uber.org/zap"
	"golang.org/x/sys/unix"

	"mmapfs/internal/mountinfo"
)

// ioTimeout bounds how long one connection may take to send its request
// and take its response.
const ioTimeout = 10 * time.Second

// maxRequest is the longest request line the server reads.
const maxRequest = 64 << 10

// Handler serves the requests of a server's control socket.
type Handler interface {
	// Stats returns the figures of the server now.
	Stats() Stats
	// Change applies c, all of it or nothing, and says in one line why
	// not.
	Change(c Change) error
}

// Address is the name of the abstract unix socket of the server of the
// mount of device dev ("@" stands for the leading NUL).
func Address(dev uint64) string {
	return "@mmapfs/control/" + mountinfo.DevString(dev)
}

// Server answers on the control socket of one mount.
type Server struct {
	ln    *net.UnixListener
	owner uint32
	h     Handler
	log   *zap.Logger
	wg    sync.WaitGroup
}

// Listen starts answering on the control socket of the mount of device
// dev, whose owner is the user owner: only root and that user are served.
func Listen(dev uint64, owner uint32, h Handler, log *zap.Logger) (*Server, error) {
	ln, err := net.ListenUnix("unix", &net.UnixAddr{Name: Address(dev), Net: "unix"})
	if err != nil {
		return nil, fmt.Errorf("control socket %s: %w", Address(dev), err)
	}
	s := &Server{ln: ln, owner: owner, h: h, log: log}
	s.wg.Add(1)
	go s.serve()
	return s, nil
}

// Close stops answering and waits for the requests being served.
func (s *Server) Close() error {
	err := s.ln.Close()
	s.wg.Wait()
	return err
}

func (s *Server) serve() {
	defer s.wg.Done()
	for {
		c, err := s.ln.AcceptUnix()
		if err != nil {
			if !errors.Is(err, net.ErrClosed) {
				s.log.Warn("control socket: accept failed; no more requests are served", zap.Error(err))
			}
			return
		}
		s.wg.Add(1)
		go func() {
			defer s.wg.Done()
			s.handle(c)
		}()
	}
}

// handle serves the one request of connection c.
func (s *Server) handle(c *net.UnixConn) {
	defer c.Close()
	c.SetDeadline(time.Now().Add(ioTimeout))
	var resp Response
	cred, err := peerCred(c)
	switch {
	case err != nil:
		resp.Error = "cannot tell who is asking: " + err.Error()
	case cred.Uid != 0 && cred.Uid != s.owner:
		s.log.Info("control socket: refused a request of a user who does not own the mount",
			zap.Uint32("uid", cred.Uid), zap.Int32("pid", cred.Pid), zap.Uint32("owner", s.owner))
		resp.Error = fmt.Sprintf("permission denied: only root and the mount's owner (uid %d) may ask its server", s.owner)
	default:
		resp = s.serveRequest(c, cred)
	}
	json.NewEncoder(c).Encode(&resp)
}

func (s *Server) serveRequest(c *net.UnixConn, cred *unix.Ucred) Response {
	line, err := bufio.NewReaderSize(&limitedReader{c, maxRequest}, 4096).ReadBytes('\n')
	if err != nil {
		return Response{Error: "reading the request: " + err.Error()}
	}
	var req Request
	if err := json.Unmarshal(line, &req); err != nil {
		return Response{Error: "malformed request: " + err.Error()}
	}
	switch req.Op {
	case ReqStats:
		st := s.h.Stats()
		return Response{Stats: &st}
	case ReqChange:
		if req.Change == nil {
			return Response{Error: "malformed request: no change"}
		}
		if err := s.h.Change(*req.Change); err != nil {
			s.log.Info("control socket: change refused", zap.Uint32("uid", cred.Uid), zap.Error(err))
			return Response{Error: err.Error()}
		}
		return Response{}
	}
	return Response{Error: fmt.Sprintf("unknown request %q (a command newer than the server?)", req.Op)}
}

// peerCred returns who is at the other end of c.
func peerCred(c *net.UnixConn) (*unix.Ucred, error) {
	raw, err := c.SyscallConn()
	if err != nil {
		return nil, err
	}
	var (
		cred *unix.Ucred
		cerr error
	)
	if err := raw.Control(func(fd uintptr) {
		cred, cerr = unix.GetsockoptUcred(int(fd), unix.SOL_SOCKET, unix.SO_PEERCRED)
	}); err != nil {
		return nil, err
	}
	return cred, cerr
}

// limitedReader reads at most n bytes of r, then fails.
type limitedReader struct {
	r interface{ Read([]byte) (int, error) }
	n int
}

func (l *limitedReader) Read(p []byte) (int, error) {
	if l.n <= 0 {
		return 0, errors.New("request too long")
	}
	if len(p) > l.n {
		p = p[:l.n]
	}
	n, err := l.r.Read(p)
	l.n -= n
	return n, err
}
