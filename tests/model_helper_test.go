package tests

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// The model tester's shared-writable mmap writes run in another process:
// touching a mapping of a FUSE file from the process that serves the mount
// can deadlock the Go runtime (a stop-the-world waits for a thread stuck in
// a page fault that only the server, stopped, would answer). The test binary
// re-executed with MMAPFS_MODEL_HELPER=1 becomes a long-lived helper that
// reads one request per line on stdin and answers one line on stdout.

const modelHelperEnv = "MMAPFS_MODEL_HELPER"

// modelMmapReq asks the helper to map [Off, Off+Len) of Path shared and
// writable, store modelBytes(Seed, Len) there, msync and unmap.
type modelMmapReq struct {
	Path string
	Off  int64
	Len  int64
	Seed uint32
}

// TestModelHelper is not a test: it is the body of the mmap helper process.
func TestModelHelper(t *testing.T) {
	if os.Getenv(modelHelperEnv) != "1" {
		t.Skip("model helper process mode only")
	}
	sc := bufio.NewScanner(os.Stdin)
	sc.Buffer(make([]byte, 1<<16), 1<<20)
	for sc.Scan() {
		var req modelMmapReq
		res := "bad request"
		if err := json.Unmarshal(sc.Bytes(), &req); err == nil {
			res = modelDoMmap(req)
		}
		fmt.Fprintf(os.Stdout, "MODEL-MMAP:%s\n", res)
	}
	os.Exit(0)
}

// modelDoMmap performs one request; the result is "ok" or an errno name.
func modelDoMmap(req modelMmapReq) string {
	fd, err := unix.Open(req.Path, unix.O_RDWR|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	if err != nil {
		return errResult(err)
	}
	defer unix.Close(fd)
	start := req.Off &^ (modelPageSize - 1)
	mem, err := unix.Mmap(fd, start, int(req.Off+req.Len-start), unix.PROT_READ|unix.PROT_WRITE, unix.MAP_SHARED)
	if err != nil {
		return "mmap:" + errResult(err)
	}
	copy(mem[req.Off-start:], modelBytes(req.Seed, int(req.Len)))
	if err := unix.Msync(mem, unix.MS_SYNC); err != nil {
		unix.Munmap(mem)
		return "msync:" + errResult(err)
	}
	if err := unix.Munmap(mem); err != nil {
		return "munmap:" + errResult(err)
	}
	return "ok"
}

// modelHelper is the test side of one helper process.
type modelHelper struct {
	mu    sync.Mutex
	cmd   *exec.Cmd
	stdin io.WriteCloser
	out   *bufio.Reader
}

// modelStartHelper starts a helper process (the test binary itself).
func modelStartHelper() (*modelHelper, error) {
	self, err := os.Executable()
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(self, "-test.run=^TestModelHelper$", "-test.count=1", "-test.timeout=0")
	cmd.Env = append(os.Environ(), modelHelperEnv+"=1", "GORACE=atexit_sleep_ms=0")
	cmd.Dir = "/"
	cmd.Stderr = os.Stderr
	in, err := cmd.StdinPipe()
	if err != nil {
		return nil, err
	}
	outp, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	return &modelHelper{cmd: cmd, stdin: in, out: bufio.NewReader(outp)}, nil
}

// mmapWrite runs one request in the helper, waiting at most 30 s.
func (h *modelHelper) mmapWrite(req modelMmapReq) (string, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	b, _ := json.Marshal(req)
	if _, err := h.stdin.Write(append(b, '\n')); err != nil {
		return "", err
	}
	type line struct {
		s   string
		err error
	}
	ch := make(chan line, 1)
	go func() {
		for {
			s, err := h.out.ReadString('\n')
			if rest, ok := strings.CutPrefix(s, "MODEL-MMAP:"); ok {
				ch <- line{strings.TrimSpace(rest), nil}
				return
			}
			if err != nil {
				ch <- line{"", err}
				return
			}
		}
	}()
	select {
	case l := <-ch:
		return l.s, l.err
	case <-time.After(30 * time.Second):
		h.cmd.Process.Kill()
		return "", fmt.Errorf("mmap helper hung for 30s on %+v (killed)", req)
	}
}

// stop ends the helper: EOF on its stdin, then a kill if it lingers.
func (h *modelHelper) stop() {
	h.stdin.Close()
	done := make(chan struct{})
	go func() { h.cmd.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		h.cmd.Process.Kill()
		<-done
	}
}
