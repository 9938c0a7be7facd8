package tests

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// Another process, possibly as another user, is the test binary itself run
// in helper mode: TestHelperProcess does a list of operations given in the
// environment and prints one result per operation as JSON.

const helperEnv = "MMAPFS_TEST_HELPER_OPS"

// helperOp is one operation for the helper process: Op and its arguments.
type helperOp []string

// TestHelperProcess is not a test: it is the body of the helper process.
func TestHelperProcess(t *testing.T) {
	spec := os.Getenv(helperEnv)
	if spec == "" {
		t.Skip("helper process mode only")
	}
	var ops []helperOp
	if err := json.Unmarshal([]byte(spec), &ops); err != nil {
		fmt.Fprintf(os.Stderr, "bad ops: %v\n", err)
		os.Exit(2)
	}
	unix.Umask(0)
	results := make([]string, len(ops))
	for i, op := range ops {
		results[i] = runHelperOp(op)
	}
	out, _ := json.Marshal(results)
	os.Stdout.Write(append([]byte("HELPER-RESULT:"), out...))
	os.Stdout.Write([]byte("\n"))
	os.Exit(0)
}

// errResult is the errno name of err, or "ok".
func errResult(err error) string {
	if err == nil {
		return "ok"
	}
	if en, ok := err.(syscall.Errno); ok {
		return errName(en)
	}
	return err.Error()
}

func runHelperOp(op helperOp) string {
	arg := func(i int) string {
		if i < len(op) {
			return op[i]
		}
		return ""
	}
	num := func(i int) int64 {
		n, _ := strconv.ParseInt(arg(i), 0, 64)
		return n
	}
	switch op[0] {
	case "write": // write PATH DATA: open O_WRONLY and write DATA at 0
		fd, err := unix.Open(arg(1), unix.O_WRONLY, 0)
		if err != nil {
			return errResult(err)
		}
		defer unix.Close(fd)
		_, err = unix.Write(fd, []byte(arg(2)))
		return errResult(err)
	case "append": // append PATH DATA
		fd, err := unix.Open(arg(1), unix.O_WRONLY|unix.O_APPEND, 0)
		if err != nil {
			return errResult(err)
		}
		defer unix.Close(fd)
		_, err = unix.Write(fd, []byte(arg(2)))
		return errResult(err)
	case "read": // read PATH: "ok:" + content
		b, err := os.ReadFile(arg(1))
		if err != nil {
			return errResult(unwrapErrno(err))
		}
		return "ok:" + string(b)
	case "open": // open PATH FLAGS
		fd, err := unix.Open(arg(1), int(num(2)), 0o644)
		if err == nil {
			unix.Close(fd)
		}
		return errResult(err)
	case "truncate": // truncate PATH SIZE
		return errResult(unix.Truncate(arg(1), num(2)))
	case "ftruncate": // ftruncate PATH SIZE
		fd, err := unix.Open(arg(1), unix.O_WRONLY, 0)
		if err != nil {
			return errResult(err)
		}
		defer unix.Close(fd)
		return errResult(unix.Ftruncate(fd, num(2)))
	case "create": // create PATH MODE
		fd, err := unix.Open(arg(1), unix.O_CREAT|unix.O_EXCL|unix.O_WRONLY, uint32(num(2)))
		if err == nil {
			unix.Close(fd)
		}
		return errResult(err)
	case "mkdir":
		return errResult(unix.Mkdir(arg(1), uint32(num(2))))
	case "unlink":
		return errResult(unix.Unlink(arg(1)))
	case "rmdir":
		return errResult(unix.Rmdir(arg(1)))
	case "rename":
		return errResult(unix.Rename(arg(1), arg(2)))
	case "chmod":
		return errResult(unix.Chmod(arg(1), uint32(num(2))))
	case "chown":
		return errResult(unix.Lchown(arg(1), int(num(2)), int(num(3))))
	case "utimes-now": // utimensat(PATH, NULL): needs write access or ownership
		return errResult(unix.UtimesNanoAt(unix.AT_FDCWD, arg(1), nil, 0))
	case "utimes-set": // explicit times: needs ownership
		ts := []unix.Timespec{{Sec: 1000}, {Sec: 1000}}
		return errResult(unix.UtimesNanoAt(unix.AT_FDCWD, arg(1), ts, 0))
	case "stat":
		var st unix.Stat_t
		if err := unix.Lstat(arg(1), &st); err != nil {
			return errResult(err)
		}
		return fmt.Sprintf("ok:%o", st.Mode)
	case "statfull": // statfull PATH: "ok:SIZE:MTIME_NS:CTIME_NS"
		var st unix.Stat_t
		if err := unix.Lstat(arg(1), &st); err != nil {
			return errResult(err)
		}
		return fmt.Sprintf("ok:%d:%d:%d", st.Size, st.Mtim.Nano(), st.Ctim.Nano())
	case "mmap-store": // mmap-store PATH DATA: store DATA at 0 through a shared mapping, msync
		fd, err := unix.Open(arg(1), unix.O_RDWR, 0)
		if err != nil {
			return errResult(err)
		}
		defer unix.Close(fd)
		mem, err := unix.Mmap(fd, 0, len(arg(2)), unix.PROT_READ|unix.PROT_WRITE, unix.MAP_SHARED)
		if err != nil {
			return errResult(err)
		}
		copy(mem, arg(2))
		err = unix.Msync(mem, unix.MS_SYNC)
		unix.Munmap(mem)
		return errResult(err)
	case "mmap-twice": // mmap-twice PATH: map, store, msync, unmap and fstat twice, through one descriptor: "ok:MTIME1:MTIME2"
		fd, err := unix.Open(arg(1), unix.O_RDWR, 0)
		if err != nil {
			return errResult(err)
		}
		defer unix.Close(fd)
		var m [2]int64
		for i := range m {
			time.Sleep(10 * time.Millisecond) // past a tick: the mtime moves
			// A new mapping each time: the first store into a
			// mapping is what sets the mtime (as on tmpfs).
			mem, err := unix.Mmap(fd, 0, 4096, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_SHARED)
			if err != nil {
				return errResult(err)
			}
			mem[i] = 'x'
			err = unix.Msync(mem, unix.MS_SYNC)
			unix.Munmap(mem)
			if err != nil {
				return errResult(err)
			}
			var st unix.Stat_t
			if err := unix.Fstat(fd, &st); err != nil {
				return errResult(err)
			}
			m[i] = st.Mtim.Nano()
		}
		return fmt.Sprintf("ok:%d:%d", m[0], m[1])
	case "setxattr":
		return errResult(unix.Setxattr(arg(1), arg(2), []byte(arg(3)), 0))
	case "getxattr":
		b := make([]byte, 1024)
		n, err := unix.Getxattr(arg(1), arg(2), b)
		if err != nil {
			return errResult(err)
		}
		return "ok:" + string(b[:n])
	case "setlk": // setlk PATH TYPE(r|w) START LEN: non-blocking F_SETLK
		fd, err := unix.Open(arg(1), unix.O_RDWR, 0)
		if err != nil {
			return errResult(err)
		}
		defer unix.Close(fd)
		typ := int16(unix.F_WRLCK)
		if arg(2) == "r" {
			typ = unix.F_RDLCK
		}
		lk := unix.Flock_t{Type: typ, Whence: 0, Start: num(3), Len: num(4)}
		return errResult(unix.FcntlFlock(uintptr(fd), unix.F_SETLK, &lk))
	case "getlk": // getlk PATH START LEN: "ok:TYPE:PID:START:LEN"
		fd, err := unix.Open(arg(1), unix.O_RDWR, 0)
		if err != nil {
			return errResult(err)
		}
		defer unix.Close(fd)
		lk := unix.Flock_t{Type: unix.F_WRLCK, Start: num(2), Len: num(3)}
		if err := unix.FcntlFlock(uintptr(fd), unix.F_GETLK, &lk); err != nil {
			return errResult(err)
		}
		return fmt.Sprintf("ok:%d:%d:%d:%d", lk.Type, lk.Pid, lk.Start, lk.Len)
	case "check": // check NAME DIR: one of mmapChecks
		return runCheck(arg(1), arg(2))
	case "flock": // flock PATH: non-blocking exclusive flock
		fd, err := unix.Open(arg(1), unix.O_RDONLY, 0)
		if err != nil {
			return errResult(err)
		}
		defer unix.Close(fd)
		return errResult(unix.Flock(fd, unix.LOCK_EX|unix.LOCK_NB))
	}
	return "unknown op " + op[0]
}

func unwrapErrno(err error) error {
	if pe, ok := err.(*os.PathError); ok {
		return pe.Err
	}
	return err
}

// helperBinary returns a copy of the test binary that any user may run
// (the go build cache is private to its owner).
func helperBinary(t testing.TB) string {
	t.Helper()
	self, err := os.Executable()
	noErr(t, err, "os.Executable")
	dir, err := os.MkdirTemp("/tmp", "mfsbin")
	noErr(t, err, "MkdirTemp")
	t.Cleanup(func() { os.RemoveAll(dir) })
	noErr(t, os.Chmod(dir, 0o755), "chmod")
	dst := filepath.Join(dir, "tests.test")
	in, err := os.Open(self)
	noErr(t, err, "open self")
	defer in.Close()
	out, err := os.OpenFile(dst, os.O_CREATE|os.O_WRONLY, 0o755)
	noErr(t, err, "create copy")
	_, err = io.Copy(out, in)
	noErr(t, err, "copy")
	noErr(t, out.Close(), "close copy")
	return dst
}

// runAs runs ops in a helper process with the given uid and gid (and no
// supplementary groups) and returns one result per op: "ok", "ok:VALUE" or
// an errno name such as "EACCES".
func runAs(t testing.TB, bin string, uid, gid uint32, ops ...helperOp) []string {
	t.Helper()
	return runHelperCred(t, bin, &syscall.Credential{Uid: uid, Gid: gid, Groups: []uint32{}}, ops...)
}

// runHelper runs ops in a helper process with the test's own credentials.
func runHelper(t testing.TB, bin string, ops ...helperOp) []string {
	t.Helper()
	return runHelperCred(t, bin, nil, ops...)
}

func runHelperCred(t testing.TB, bin string, cred *syscall.Credential, ops ...helperOp) []string {
	t.Helper()
	spec, _ := json.Marshal(ops)
	cmd := exec.Command(bin, "-test.run=^TestHelperProcess$", "-test.count=1")
	cmd.Env = append(os.Environ(), helperEnv+"="+string(spec), "GORACE=atexit_sleep_ms=0")
	cmd.Dir = "/"
	if cred != nil {
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: cred}
	}
	var out bytes.Buffer
	cmd.Stdout = &out
	cmd.Stderr = &out
	if err := cmd.Start(); err != nil {
		t.Fatalf("start helper process: %v", err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	var err error
	select {
	case err = <-done:
	case <-time.After(45 * time.Second):
		cmd.Process.Kill()
		t.Fatalf("helper process %v hung for 45s (killed)", ops)
	}
	for _, line := range strings.Split(out.String(), "\n") {
		if rest, ok := strings.CutPrefix(line, "HELPER-RESULT:"); ok {
			var res []string
			if err := json.Unmarshal([]byte(rest), &res); err != nil {
				t.Fatalf("helper output %q: %v", rest, err)
			}
			return res
		}
	}
	t.Fatalf("helper process failed (%v): %s", err, out.String())
	return nil
}

// hop builds a helperOp.
func hop(name string, args ...any) helperOp {
	o := helperOp{name}
	for _, a := range args {
		o = append(o, fmt.Sprint(a))
	}
	return o
}
