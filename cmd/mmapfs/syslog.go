package main

import (
	"log/syslog"
	"strings"
	"sync"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
)

// syslogTag is the tag (SYSLOG_IDENTIFIER to journald) of every message:
// journalctl -t mmapfs shows them.
const syslogTag = "mmapfs"

// syslogTestSocket, when not empty, is a unix datagram socket that
// replaces the system log (/dev/log). Only tests set it; the messages then
// have the network framing of log/syslog (RFC 3339 time and host name)
// instead of the local one, with the same priority, tag and text.
var syslogTestSocket string

// syslogConn is a connection to the system log, made when the first
// message is written and made again after it failed: a server mounted
// from fstab may start before the syslog daemon or journald listens, and
// logs from the time one does. Messages written while none listens are
// lost.
type syslogConn struct {
	mu sync.Mutex
	// w is the connection; nil until one is made. Protected by mu.
	w *syslog.Writer
}

func newSyslogConn() *syslogConn { return &syslogConn{} }

// write sends one message with severity sev (of the daemon facility).
func (c *syslogConn) write(sev syslog.Priority, msg string) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.w == nil {
		w, err := dialSyslog()
		if err != nil {
			return err
		}
		c.w = w
	}
	// log/syslog reconnects once by itself if the write fails.
	var err error
	switch sev {
	case syslog.LOG_DEBUG:
		err = c.w.Debug(msg)
	case syslog.LOG_INFO:
		err = c.w.Info(msg)
	case syslog.LOG_WARNING:
		err = c.w.Warning(msg)
	case syslog.LOG_ERR:
		err = c.w.Err(msg)
	default:
		err = c.w.Crit(msg)
	}
	return err
}

func dialSyslog() (*syslog.Writer, error) {
	prio := syslog.LOG_DAEMON | syslog.LOG_INFO
	if syslogTestSocket != "" {
		return syslog.Dial("unixgram", syslogTestSocket, prio, syslogTag)
	}
	return syslog.New(prio, syslogTag)
}

// close drops the connection; the next message makes a new one.
func (c *syslogConn) close() {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.w != nil {
		_ = c.w.Close()
		c.w = nil
	}
}

// syslogSeverities maps zap's levels to syslog severities.
var syslogSeverities = []struct {
	level zapcore.Level
	sev   syslog.Priority
}{
	{zapcore.DebugLevel, syslog.LOG_DEBUG},
	{zapcore.InfoLevel, syslog.LOG_INFO},
	{zapcore.WarnLevel, syslog.LOG_WARNING},
	{zapcore.ErrorLevel, syslog.LOG_ERR},
	{zapcore.DPanicLevel, syslog.LOG_CRIT},
	{zapcore.PanicLevel, syslog.LOG_CRIT},
	{zapcore.FatalLevel, syslog.LOG_CRIT},
}

// core returns a zap core that sends entries of level min and above to
// the system log, each with the severity of its level: a tee of one core
// per level, each writing with that level's severity.
func (c *syslogConn) core(enc zapcore.Encoder, min zapcore.Level) zapcore.Core {
	var cores []zapcore.Core
	for _, s := range syslogSeverities {
		if s.level < min {
			continue
		}
		level := s.level
		enabled := zap.LevelEnablerFunc(func(l zapcore.Level) bool { return l == level })
		cores = append(cores, zapcore.NewCore(enc.Clone(), &syslogSink{conn: c, sev: s.sev}, enabled))
	}
	return zapcore.NewTee(cores...)
}

// syslogSink is a zapcore.WriteSyncer that sends each entry written to it
// as one message of severity sev.
type syslogSink struct {
	conn *syslogConn
	sev  syslog.Priority
}

// Write never fails: an entry that finds no system log is lost, for zap
// would report the failure on standard error, which in the mount(8) form
// is the terminal of mount(8) that only failures may reach.
func (s *syslogSink) Write(p []byte) (int, error) {
	_ = s.conn.write(s.sev, strings.TrimSuffix(string(p), "\n"))
	return len(p), nil
}

// Sync does nothing: each message is sent as it is written.
func (s *syslogSink) Sync() error { return nil }
