package main

import (
	"fmt"
	"os"
	"sync"
)

// logFileMode is the mode a new log file is created with (less the umask).
const logFileMode = 0o640

// logFile is the log file of --log-file, a zapcore.WriteSyncer that can be
// reopened: logrotate moves the file away and sends SIGHUP, and the server
// goes on at a new file of the same name. It is appended to, never
// truncated.
type logFile struct {
	path string // absolute

	mu sync.Mutex
	// f is the open file. Protected by mu.
	f *os.File
}

// openLogFile opens path for appending, creating it if missing.
func openLogFile(path string) (*logFile, error) {
	f, err := openAppend(path)
	if err != nil {
		return nil, err
	}
	return &logFile{path: path, f: f}, nil
}

func openAppend(path string) (*os.File, error) {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND|os.O_CREATE, logFileMode)
	if err != nil {
		return nil, fmt.Errorf("log file: %w", err)
	}
	return f, nil
}

// Write writes one encoded entry.
func (l *logFile) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.f.Write(p)
}

// Sync flushes the file to its disk, as zap asks before an exit.
func (l *logFile) Sync() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.f.Sync()
}

// reopen opens the path anew and closes the old file once no entry is
// being written to it. If the path cannot be opened, the old file stays.
func (l *logFile) reopen() error {
	f, err := openAppend(l.path)
	if err != nil {
		return err
	}
	l.mu.Lock()
	old := l.f
	l.f = f
	l.mu.Unlock()
	return old.Close()
}

// close closes the file; nothing may be written after.
func (l *logFile) close() {
	l.mu.Lock()
	defer l.mu.Unlock()
	_ = l.f.Close()
}
