package fs

import (
	"log"
	"strings"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
)

// fuseLogger returns the *log.Logger go-fuse writes to, as lines of zl:
// at ERROR level (go-fuse only logs what went wrong), or with debug (every
// request and reply, MountOptions.Debug) at DEBUG level.
func fuseLogger(zl *zap.Logger, debug bool) *log.Logger {
	lvl := zapcore.ErrorLevel
	if debug {
		lvl = zapcore.DebugLevel
	}
	return log.New(&fuseLogWriter{log: zl.Named("fuse"), level: lvl}, "", 0)
}

type fuseLogWriter struct {
	log   *zap.Logger
	level zapcore.Level
}

func (w *fuseLogWriter) Write(p []byte) (int, error) {
	line := strings.TrimSpace(string(p))
	msg := "go-fuse"
	if w.level >= zapcore.ErrorLevel && strings.Contains(line, "opcode: READ") && strings.Contains(line, "bad address") {
		// A reply is written to the kernel from the store's mappings
		// (File.Read): a page the store file no longer has fails it,
		// and the reader gets EIO.
		msg = "a read's reply could not be written from the store's mapping: its store file was cut short or removed behind the server's back; the reader got EIO"
	}
	w.log.Log(w.level, msg, zap.String("go-fuse", line))
	return len(p), nil
}
