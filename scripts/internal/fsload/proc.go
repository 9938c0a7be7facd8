package main

import (
	"bufio"
	"bytes"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
)

// procSample is what /proc tells about a server process, and the size of
// its store directory.
type procSample struct {
	RSS        int64 // bytes (VmRSS)
	Anon       int64 // bytes (RssAnon: heap and stacks, without the mapped store)
	FDs        int   // entries of /proc/PID/fd
	Maps       int   // lines of /proc/PID/maps
	Threads    int   // Threads: of /proc/PID/status
	CPUTicks   int64 // utime+stime, clock ticks
	StoreBytes int64 // allocated bytes under the store directory (du)
	StoreFiles int   // regular files under the store directory
}

func sampleProc(pid int, store string) (procSample, error) {
	var s procSample
	status, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return s, err
	}
	for _, line := range strings.Split(string(status), "\n") {
		f := strings.Fields(line)
		if len(f) < 2 {
			continue
		}
		switch f[0] {
		case "VmRSS:":
			kb, _ := strconv.ParseInt(f[1], 10, 64)
			s.RSS = kb << 10
		case "RssAnon:":
			kb, _ := strconv.ParseInt(f[1], 10, 64)
			s.Anon = kb << 10
		case "Threads:":
			s.Threads, _ = strconv.Atoi(f[1])
		}
	}
	d, err := os.Open(fmt.Sprintf("/proc/%d/fd", pid))
	if err != nil {
		return s, err
	}
	names, err := d.Readdirnames(-1)
	d.Close()
	if err != nil {
		return s, err
	}
	s.FDs = len(names)
	maps, err := os.ReadFile(fmt.Sprintf("/proc/%d/maps", pid))
	if err != nil {
		return s, err
	}
	s.Maps = bytes.Count(maps, []byte("\n"))
	stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return s, err
	}
	// Fields after the command name, which ends at the last ')'.
	if i := bytes.LastIndexByte(stat, ')'); i >= 0 {
		f := strings.Fields(string(stat[i+1:]))
		if len(f) > 12 {
			ut, _ := strconv.ParseInt(f[11], 10, 64)
			st, _ := strconv.ParseInt(f[12], 10, 64)
			s.CPUTicks = ut + st
		}
	}
	if store != "" {
		s.StoreBytes, s.StoreFiles = du(store)
	}
	return s, nil
}

// du returns the allocated bytes (st_blocks) and the number of regular files
// under dir, as du(1) counts them.
func du(dir string) (int64, int) {
	var total int64
	files := 0
	_ = filepath.WalkDir(dir, func(path string, e fs.DirEntry, err error) error {
		if err != nil {
			return nil // a store file removed while we walk
		}
		info, err := e.Info()
		if err != nil {
			return nil
		}
		if st, ok := info.Sys().(*syscall.Stat_t); ok {
			total += st.Blocks * 512
		}
		if info.Mode().IsRegular() {
			files++
		}
		return nil
	})
	return total, files
}

// cpuTimes returns the busy and total jiffies of the machine (/proc/stat).
func cpuTimes() (busy, total int64) {
	f, err := os.Open("/proc/stat")
	if err != nil {
		return 0, 0
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	if !sc.Scan() {
		return 0, 0
	}
	fields := strings.Fields(sc.Text())
	if len(fields) < 5 || fields[0] != "cpu" {
		return 0, 0
	}
	for i, v := range fields[1:] {
		n, _ := strconv.ParseInt(v, 10, 64)
		if i >= 8 { // guest times are already in user and nice
			break
		}
		total += n
		if i != 3 && i != 4 { // idle, iowait
			busy += n
		}
	}
	return busy, total
}

// clockTicks is USER_HZ, 100 on every Linux architecture Go supports.
const clockTicks = 100

func mib(b int64) float64 { return float64(b) / (1 << 20) }
