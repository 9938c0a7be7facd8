package main

import (
	"bytes"
	"errors"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"go.uber.org/zap/zapcore"
	"golang.org/x/sys/unix"
)

// --log-file and -o log_file take the same file, made absolute (the
// background server changes to /).
func TestLogFileOption(t *testing.T) {
	wd, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	for _, args := range [][]string{
		{"--log-file", "x.log", "/mnt"},
		{"--log-file=x.log", "/mnt"},
		{"-log-file", "x.log", "/mnt"},
		{"-o", "log_file=x.log", "/mnt"},
		{"none", "/mnt", "-o", "rw,log_file=x.log"},
	} {
		o, err := parseMountArgs(args, testEnv)
		if err != nil {
			t.Errorf("%q: %v", args, err)
			continue
		}
		if want := filepath.Join(wd, "x.log"); o.LogFile != want {
			t.Errorf("%q: log file %q, want %q", args, o.LogFile, want)
		}
	}
	o, err := parseMountArgs([]string{"/mnt"}, testEnv)
	if err != nil || o.LogFile != "" {
		t.Errorf("default log file %q, %v; want none", o.LogFile, err)
	}
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"--log-file", "", "/mnt"}, `invalid value "" for --log-file: empty file name`},
		{[]string{"/mnt", "--log-file"}, "option --log-file needs a value"},
		{[]string{"-o", "log_file", "/mnt"}, "mount option log_file needs a value (log_file=...)"},
		{[]string{"-o", "log_file=", "/mnt"}, "invalid mount option log_file=: empty file name"},
	} {
		_, err := parseMountArgs(c.args, testEnv)
		var ue *usageError
		if !errors.As(err, &ue) || err.Error() != c.want {
			t.Errorf("%q: %v; want usage error %q", c.args, err, c.want)
		}
	}
}

// pollFile waits until the file at path holds want, and returns its text.
func pollFile(t *testing.T, path, want string) string {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		b, _ := os.ReadFile(path)
		if strings.Contains(string(b), want) {
			return string(b)
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: no %q within 10s; it holds:\n%s", path, want, b)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// A log file gets the log and nothing goes to standard error; on SIGHUP
// the server opens the path anew, as logrotate needs: what follows goes
// to the new file, the moved one keeps what came before.
func TestLogFileReopenOnSIGHUP(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "mmapfs.log")
	o := defaultOptions(testEnv)
	o.LogFile = path
	var stderr bytes.Buffer
	logs, err := openServerLog(o, &stderr, false)
	if err != nil {
		t.Fatal(err)
	}
	defer logs.close()
	stop := logs.handleHangup()
	defer stop()

	logs.log.Info("before the rotation")
	logs.log.Debug("not at level info")
	if err := os.Rename(path, path+".1"); err != nil {
		t.Fatal(err)
	}
	if err := unix.Kill(os.Getpid(), unix.SIGHUP); err != nil {
		t.Fatal(err)
	}
	pollFile(t, path, "SIGHUP: log file reopened")
	logs.log.Warn("after the rotation")
	logs.close()

	old, _ := os.ReadFile(path + ".1")
	cur, _ := os.ReadFile(path)
	if !strings.Contains(string(old), "\tINFO\tmmapfs\tbefore the rotation\n") || strings.Contains(string(old), "after") {
		t.Errorf("moved file:\n%s", old)
	}
	if strings.Contains(string(old)+string(cur), "not at level info") {
		t.Errorf("a debug line was logged at level info")
	}
	if !strings.Contains(string(cur), "\tWARN\tmmapfs\tafter the rotation\n") || strings.Contains(string(cur), "before") {
		t.Errorf("new file:\n%s", cur)
	}
	if fi, err := os.Stat(path); err != nil || fi.Mode().Perm()&^logFileMode != 0 {
		t.Errorf("new file: %v, %v; want at most mode %o", fi.Mode(), err, logFileMode)
	}
	if stderr.Len() != 0 {
		t.Errorf("standard error: %q", stderr.String())
	}
}

// A log file that cannot be opened stops the server before it mounts.
func TestLogFileUnwritable(t *testing.T) {
	o := defaultOptions(testEnv)
	o.LogFile = filepath.Join(t.TempDir(), "missing", "mmapfs.log")
	if _, err := openServerLog(o, &bytes.Buffer{}, true); err == nil || !strings.Contains(err.Error(), "log file: open "+o.LogFile) {
		t.Errorf("error %v", err)
	}
}

// A failure of a server that logs elsewhere than standard error is both
// printed there and logged as an error.
func TestFailureReachesLogAndStderr(t *testing.T) {
	o := defaultOptions(testEnv)
	o.LogFile = filepath.Join(t.TempDir(), "mmapfs.log")
	var stderr bytes.Buffer
	logs, err := openServerLog(o, &stderr, false)
	if err != nil {
		t.Fatal(err)
	}
	logs.stderr.Write([]byte("mmapfs: mount point /x: no such file or directory\n"))
	logs.close()
	if stderr.String() != "mmapfs: mount point /x: no such file or directory\n" {
		t.Errorf("standard error %q", stderr.String())
	}
	b, _ := os.ReadFile(o.LogFile)
	if !strings.Contains(string(b), "\tERROR\tmmapfs\tmount point /x: no such file or directory\n") {
		t.Errorf("log file:\n%s", b)
	}
}

// syslogListener is a system log of the test's own: a unix datagram
// socket that syslogTestSocket points at while the test runs.
func syslogListener(t *testing.T) (*net.UnixConn, string) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "log")
	conn, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: path, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	syslogTestSocket = path
	t.Cleanup(func() { syslogTestSocket = "" })
	return conn, path
}

// readSyslog returns the next message the listener got.
func readSyslog(t *testing.T, conn *net.UnixConn) string {
	t.Helper()
	buf := make([]byte, 64<<10)
	if err := conn.SetReadDeadline(time.Now().Add(10 * time.Second)); err != nil {
		t.Fatal(err)
	}
	n, err := conn.Read(buf)
	if err != nil {
		t.Fatalf("reading the system log: %v", err)
	}
	return string(buf[:n])
}

// In the background server the log goes to the system log: one message
// an entry, with the daemon facility, the severity of the entry's level
// and the tag mmapfs; the text is that of the log format without the time.
// Nothing reaches standard error but failures.
func TestSyslog(t *testing.T) {
	conn, _ := syslogListener(t)
	for _, format := range []string{"console", "json"} {
		o := defaultOptions(testEnv)
		o.LogFormat = format
		var stderr bytes.Buffer
		logs, err := openServerLog(o, &stderr, true)
		if err != nil {
			t.Fatal(err)
		}
		logs.log.Debug("not at level info")
		logs.log.Info("mounted /mnt")
		logs.log.Warn("a warning")
		logs.log.Error("an error")
		logs.stderr.Write([]byte("mmapfs: it failed\n"))
		tag := " mmapfs[" + strconv.Itoa(os.Getpid()) + "]: "
		for _, want := range []struct{ pri, level, msg string }{
			{"<30>", "INFO", "mounted /mnt"},
			{"<28>", "WARN", "a warning"},
			{"<27>", "ERROR", "an error"},
			{"<27>", "ERROR", "it failed"},
		} {
			got := readSyslog(t, conn)
			text := want.level + " mmapfs " + want.msg
			if format == "json" {
				text = `{"level":"` + strings.ToLower(want.level) + `","logger":"mmapfs","msg":"` + want.msg + `"}`
			}
			if !strings.HasPrefix(got, want.pri) || !strings.HasSuffix(got, tag+text+"\n") {
				t.Errorf("%s: message %q; want %s...%s%s", format, got, want.pri, tag, text)
			}
		}
		if stderr.String() != "mmapfs: it failed\n" {
			t.Errorf("%s: standard error %q; want only the failure", format, stderr.String())
		}
		logs.close()
	}
}

// With no system log listening, entries are lost without a word on
// standard error; once one listens, the next entry reaches it.
func TestSyslogLateListener(t *testing.T) {
	conn, path := syslogListener(t)
	conn.Close()
	os.Remove(path)
	var stderr bytes.Buffer
	o := defaultOptions(testEnv)
	o.LogLevel = zapcore.DebugLevel
	logs, err := openServerLog(o, &stderr, true)
	if err != nil {
		t.Fatal(err)
	}
	defer logs.close()
	logs.log.Info("lost")
	conn, err = net.ListenUnixgram("unixgram", &net.UnixAddr{Name: path, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	logs.log.Debug("found")
	if got := readSyslog(t, conn); !strings.HasPrefix(got, "<31>") || !strings.HasSuffix(got, "DEBUG mmapfs found\n") {
		t.Errorf("message %q", got)
	}
	if stderr.Len() != 0 {
		t.Errorf("standard error %q", stderr.String())
	}
}

// In the foreground and without a log file the log goes to standard
// error, as readable lines with the time.
func TestLogStderr(t *testing.T) {
	var stderr bytes.Buffer
	logs, err := openServerLog(defaultOptions(testEnv), &stderr, false)
	if err != nil {
		t.Fatal(err)
	}
	logs.log.Info("mounted /mnt")
	logs.stderr.Write([]byte("mmapfs: it failed\n"))
	logs.close()
	lines := strings.Split(stderr.String(), "\n")
	if len(lines) != 3 || !strings.HasSuffix(lines[0], "\tINFO\tmmapfs\tmounted /mnt") || lines[1] != "mmapfs: it failed" {
		t.Errorf("standard error %q", stderr.String())
	}
	if _, err := time.Parse("2006-01-02T15:04:05.000Z0700", strings.Split(lines[0], "\t")[0]); err != nil {
		t.Errorf("no time: %v", err)
	}
}
