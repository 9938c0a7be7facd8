package main

import (
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strconv"

	"golang.org/x/sys/unix"
)

// readyEnv names the descriptor on which a background server reports that
// the filesystem is mounted. It is set only between the two processes of
// startBackground.
const readyEnv = "_MMAPFS_READY_FD"

const readyMsg = "ready\n"

// startBackground starts this program again with the same arguments, in a
// new session, and waits until it has mounted the filesystem (exit 0) or
// failed (its exit status; it has said why on standard error). This is
// what mount(8) expects of a helper: to return once the mount is there.
func startBackground(stderr io.Writer) int {
	exe, err := os.Executable()
	if err != nil {
		fmt.Fprintf(stderr, "mmapfs: cannot start in the background: %v\n", err)
		return 1
	}
	r, w, err := os.Pipe()
	if err != nil {
		fmt.Fprintf(stderr, "mmapfs: cannot start in the background: %v\n", err)
		return 1
	}
	defer r.Close()
	cmd := exec.Command(exe)
	cmd.Args = os.Args
	cmd.Env = append(os.Environ(), readyEnv+"=3")
	cmd.ExtraFiles = []*os.File{w} // descriptor 3
	cmd.Stdout = os.Stdout
	cmd.Stderr = os.Stderr
	cmd.SysProcAttr = &unix.SysProcAttr{Setsid: true}
	err = cmd.Start()
	w.Close()
	if err != nil {
		fmt.Fprintf(stderr, "mmapfs: cannot start in the background: %v\n", err)
		return 1
	}
	msg, _ := io.ReadAll(r) // until the server reports or exits
	if string(msg) == readyMsg {
		_ = cmd.Process.Release()
		return 0
	}
	err = cmd.Wait()
	var ee *exec.ExitError
	if errors.As(err, &ee) && ee.ExitCode() > 0 {
		return ee.ExitCode()
	}
	fmt.Fprintf(stderr, "mmapfs: the background server ended before mounting: %v\n", err)
	return 1
}

// takeReadyFD returns, in the background server started by
// startBackground, the function that reports the mount done; elsewhere nil.
// It takes the variable out of the environment so that no other program
// started from here sees it.
func takeReadyFD() func() {
	v, ok := os.LookupEnv(readyEnv)
	if !ok {
		return nil
	}
	os.Unsetenv(readyEnv)
	fd, err := strconv.Atoi(v)
	if err != nil || fd < 3 {
		return nil
	}
	unix.CloseOnExec(fd) // not for fusermount3 or any other child
	f := os.NewFile(uintptr(fd), "ready")
	return func() {
		_, _ = f.WriteString(readyMsg)
		f.Close()
		// Detach from the terminal or the mount(8) that started us: from
		// now on there is nobody to read standard output or error.
		if null, err := os.OpenFile(os.DevNull, os.O_RDWR, 0); err == nil {
			for fd := 0; fd <= 2; fd++ {
				_ = unix.Dup3(int(null.Fd()), fd, 0)
			}
			null.Close()
		}
		_ = os.Chdir("/")
	}
}
