package main

import (
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"golang.org/x/sys/unix"
)

// newLogger logs to w (standard error) at level, as readable lines
// ("console") or one JSON object per line ("json").
func newLogger(w io.Writer, level zapcore.Level, format string) *zap.Logger {
	core := zapcore.NewCore(newEncoder(format, false), zapcore.Lock(zapcore.AddSync(w)), level)
	return newLoggerOf(core)
}

// newLoggerOf makes the server's logger of core.
func newLoggerOf(core zapcore.Core) *zap.Logger {
	return zap.New(core, zap.AddStacktrace(zapcore.DPanicLevel)).Named("mmapfs")
}

// newEncoder returns the encoder of a log format: "console" (readable
// lines) or "json" (one object a line). forSyslog leaves out the time,
// which the system log stamps on every message itself, and separates the
// fields of a console line with spaces (syslog daemons escape tabs).
func newEncoder(format string, forSyslog bool) zapcore.Encoder {
	cfg := zapcore.EncoderConfig{
		TimeKey:        "time",
		LevelKey:       "level",
		NameKey:        "logger",
		MessageKey:     "msg",
		StacktraceKey:  "stacktrace",
		LineEnding:     zapcore.DefaultLineEnding,
		EncodeTime:     zapcore.ISO8601TimeEncoder,
		EncodeDuration: zapcore.StringDurationEncoder,
		EncodeName:     zapcore.FullNameEncoder,
	}
	if forSyslog {
		cfg.TimeKey = zapcore.OmitKey
		cfg.ConsoleSeparator = " "
	}
	if format == "json" {
		cfg.EncodeLevel = zapcore.LowercaseLevelEncoder
		return zapcore.NewJSONEncoder(cfg)
	}
	cfg.EncodeLevel = zapcore.CapitalLevelEncoder
	return zapcore.NewConsoleEncoder(cfg)
}

// serverLog is where a server logs: standard error, a file (--log-file),
// or, in the background server of the mount(8) form, the system log.
type serverLog struct {
	log *zap.Logger
	// stderr is where failures are reported: standard error, and the log
	// too where the log is not standard error.
	stderr io.Writer
	file   *logFile    // nil unless the log is a file
	sys    *syslogConn // nil unless the log is the system log
}

// openServerLog sets up the log of a server started with o. background
// says that it is the background server of the mount(8) form, whose
// standard error is the terminal of mount(8) until the filesystem is
// mounted and nothing after: it logs to the system log unless given a
// file, and only failures reach that terminal.
func openServerLog(o *mountOptions, stderr io.Writer, background bool) (*serverLog, error) {
	l := &serverLog{stderr: stderr}
	switch {
	case o.LogFile != "":
		f, err := openLogFile(o.LogFile)
		if err != nil {
			return nil, err
		}
		l.file = f
		l.log = newLoggerOf(zapcore.NewCore(newEncoder(o.LogFormat, false), f, o.LogLevel))
	case background:
		l.sys = newSyslogConn()
		l.log = newLoggerOf(l.sys.core(newEncoder(o.LogFormat, true), o.LogLevel))
	default:
		l.log = newLogger(stderr, o.LogLevel, o.LogFormat)
		return l, nil
	}
	l.stderr = &failureWriter{out: stderr, log: l.log}
	return l, nil
}

// reopen acts on SIGHUP: it reopens the log file (which logrotate has
// moved away) or reconnects to the system log.
func (l *serverLog) reopen() {
	switch {
	case l.file != nil:
		if err := l.file.reopen(); err != nil {
			l.log.Error("SIGHUP: cannot reopen the log file; logging on to the old one", zap.Error(err))
			return
		}
		l.log.Info("SIGHUP: log file reopened", zap.String("file", l.file.path))
	case l.sys != nil:
		l.sys.close()
		l.log.Info("SIGHUP: reconnected to the system log")
	default:
		l.log.Info("SIGHUP: nothing to reopen (the log goes to standard error)")
	}
}

// handleHangup reopens the log on every SIGHUP until the function it
// returns is called. A server so does not die of the SIGHUP that
// logrotate's postrotate (or a closed terminal) sends it.
func (l *serverLog) handleHangup() (stop func()) {
	hup := make(chan os.Signal, 1)
	done := make(chan struct{})
	signal.Notify(hup, unix.SIGHUP)
	go func() {
		for {
			select {
			case <-hup:
				l.reopen()
			case <-done:
				return
			}
		}
	}()
	return func() {
		signal.Stop(hup)
		close(done)
	}
}

// close flushes and closes the log.
func (l *serverLog) close() {
	_ = l.log.Sync()
	if l.file != nil {
		l.file.close()
	}
	if l.sys != nil {
		l.sys.close()
	}
}

// failureWriter passes what a server writes on standard error (the lines
// "mmapfs: ..." of a failure) on to it, and logs each line as an error,
// for the log is then the only trace of a failure once the terminal is
// gone.
type failureWriter struct {
	out io.Writer
	log *zap.Logger
}

func (w *failureWriter) Write(p []byte) (int, error) {
	for _, line := range strings.Split(strings.TrimRight(string(p), "\n"), "\n") {
		if line = strings.TrimPrefix(line, "mmapfs: "); line != "" {
			w.log.Error(line)
		}
	}
	n, err := w.out.Write(p)
	if err != nil {
		return n, fmt.Errorf("standard error: %w", err)
	}
	return n, nil
}
