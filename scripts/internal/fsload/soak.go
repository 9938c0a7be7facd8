package main

import (
	"bufio"
	"encoding/binary"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/sys/unix"
)

type soakSample struct {
	T        time.Duration
	Ops      float64 // per second over the interval
	MiBps    float64
	SrvCPU   float64 // % of one core
	HostBusy float64 // % of all cores
	procSample
}

type workerProc struct {
	cmd    *exec.Cmd
	stdin  io.WriteCloser
	ops    atomic.Uint64
	bytes  atomic.Uint64
	ready  chan struct{}
	result *workerResult
	done   chan struct{}
}

func soakMain(args []string) int {
	fl := flag.NewFlagSet("soak", flag.ExitOnError)
	duration := fl.Duration("duration", 5*time.Minute, "how long to load the mount")
	interval := fl.Duration("interval", 10*time.Second, "sampling interval")
	nworkers := fl.Int("workers", 8, "worker processes")
	pid := fl.Int("pid", 0, "server process id (required)")
	store := fl.String("store", "", "store directory of the server")
	seed := fl.Uint64("seed", uint64(time.Now().UnixNano()), "random seed")
	_ = fl.Parse(args)
	if fl.NArg() != 1 || *pid == 0 {
		fmt.Fprintln(os.Stderr, "usage: fsload soak -pid PID [-store DIR] [-duration 5m] [-workers 8] MOUNTDIR")
		return 2
	}
	mnt := fl.Arg(0)
	self, err := os.Executable()
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	fmt.Printf("soak: %d workers, %v, sampled every %v, seed %d\n", *nworkers, *duration, *interval, *seed)

	var failMu sync.Mutex
	var failLines []string
	workers := make([]*workerProc, *nworkers)
	for i := range workers {
		wp := &workerProc{ready: make(chan struct{}), done: make(chan struct{})}
		wp.cmd = exec.Command(self, "worker", "-id", strconv.Itoa(i), "-seed", strconv.FormatUint(*seed, 10), mnt)
		wp.cmd.Stderr = os.Stderr
		wp.stdin, _ = wp.cmd.StdinPipe()
		out, _ := wp.cmd.StdoutPipe()
		if err := wp.cmd.Start(); err != nil {
			fmt.Fprintln(os.Stderr, "start worker:", err)
			return 1
		}
		workers[i] = wp
		go func() {
			defer close(wp.done)
			sc := bufio.NewScanner(out)
			sc.Buffer(make([]byte, 1<<20), 1<<20)
			readyOnce := sync.OnceFunc(func() { close(wp.ready) })
			defer readyOnce()
			for sc.Scan() {
				line := sc.Text()
				kind, rest, _ := strings.Cut(line, " ")
				switch kind {
				case "R":
					readyOnce()
				case "C":
					f := strings.Fields(rest)
					if len(f) == 2 {
						n, _ := strconv.ParseUint(f[0], 10, 64)
						b, _ := strconv.ParseUint(f[1], 10, 64)
						wp.ops.Store(n)
						wp.bytes.Store(b)
					}
				case "F":
					fmt.Fprintln(os.Stderr, "VERIFY FAILED:", rest)
					failMu.Lock()
					failLines = append(failLines, rest)
					failMu.Unlock()
				case "D":
					var r workerResult
					if json.Unmarshal([]byte(rest), &r) == nil {
						wp.result = &r
					}
				}
			}
		}()
	}
	killAll := func() {
		for _, wp := range workers {
			if wp != nil && wp.cmd.Process != nil {
				wp.cmd.Process.Kill()
			}
		}
	}
	for i, wp := range workers {
		select {
		case <-wp.ready:
		case <-time.After(3 * time.Minute):
			fmt.Fprintf(os.Stderr, "worker %d not ready after 3m\n", i)
			killAll()
			return 1
		}
	}

	sum := func() (ops, b uint64) {
		for _, wp := range workers {
			ops += wp.ops.Load()
			b += wp.bytes.Load()
		}
		return
	}
	base, err := sampleProc(*pid, *store)
	if err != nil {
		fmt.Fprintln(os.Stderr, "sample server:", err)
		killAll()
		return 1
	}
	fmt.Printf("populated (%d files per worker): server RSS %.1f MiB (anon %.1f MiB), %d fds, %d maps, store %.1f MiB\n",
		targetFiles, mib(base.RSS), mib(base.Anon), base.FDs, base.Maps, mib(base.StoreBytes))

	start := time.Now()
	deadline := start.Add(*duration)
	for _, wp := range workers {
		fmt.Fprintf(wp.stdin, "go %d\n", deadline.UnixNano())
	}
	hdr := fmt.Sprintf("%6s %9s %7s %7s %6s %8s %9s %5s %6s %5s %9s %6s",
		"t(s)", "ops/s", "MiB/s", "srvCPU%", "busy%", "RSS(MiB)", "anon(MiB)", "fds", "maps", "thr", "store(MiB)", "files")
	fmt.Println(hdr)
	var samples []soakSample
	prevOps, prevBytes := uint64(0), uint64(0)
	prevCPU := base.CPUTicks
	prevBusy, prevTotal := cpuTimes()
	prevT := time.Duration(0)
	serverGone := false
	workersOK := true
	for k := 1; ; k++ {
		at := start.Add(time.Duration(k) * *interval)
		if at.After(deadline) {
			at = deadline
		}
		time.Sleep(time.Until(at))
		if at == deadline {
			// Let the workers' last counts in.
			time.Sleep(300 * time.Millisecond)
		}
		t := at.Sub(start)
		ops, b := sum()
		ps, err := sampleProc(*pid, *store)
		if err != nil {
			fmt.Fprintln(os.Stderr, "sample server:", err)
			serverGone = true
			break
		}
		busy, total := cpuTimes()
		early := false
		for i, wp := range workers {
			select {
			case <-wp.done:
				if at != deadline {
					fmt.Fprintf(os.Stderr, "worker %d exited before the end\n", i)
					early = true
				}
			default:
			}
		}
		dt := (t - prevT).Seconds()
		s := soakSample{
			T:          t,
			Ops:        float64(ops-prevOps) / dt,
			MiBps:      float64(b-prevBytes) / dt / (1 << 20),
			SrvCPU:     float64(ps.CPUTicks-prevCPU) / clockTicks / dt * 100,
			procSample: ps,
		}
		if total > prevTotal {
			s.HostBusy = float64(busy-prevBusy) / float64(total-prevTotal) * 100
		}
		prevOps, prevBytes, prevCPU, prevBusy, prevTotal, prevT = ops, b, ps.CPUTicks, busy, total, t
		samples = append(samples, s)
		fmt.Println(s.row())
		if early {
			killAll()
			workersOK = false
			break
		}
		if at == deadline {
			break
		}
	}

	// Workers verify everything once more and exit.
	for i, wp := range workers {
		wp.stdin.Close()
		err := wp.cmd.Wait()
		<-wp.done
		if err != nil || wp.result == nil {
			fmt.Fprintf(os.Stderr, "worker %d: exit %v, result %v\n", i, err, wp.result != nil)
			workersOK = false
		}
	}
	if serverGone {
		fmt.Println("VERDICT: FAIL (the server went away)")
		return 1
	}

	totalOps := map[string]uint64{}
	var fails int
	var incs, allOps uint64
	for _, wp := range workers {
		if r := wp.result; r != nil {
			fails += r.Fails
			incs += r.FlockIncs
			for k, v := range r.Ops {
				totalOps[k] += v
				allOps += v
			}
		}
	}
	counter := uint64(0)
	if b, err := os.ReadFile(filepath.Join(mnt, "shared", "counter")); err == nil && len(b) == 8 {
		counter = binary.LittleEndian.Uint64(b)
	}

	// Remove everything; the store must then be empty.
	cleanStart := time.Now()
	ents, _ := os.ReadDir(mnt)
	for _, e := range ents {
		if err := os.RemoveAll(filepath.Join(mnt, e.Name())); err != nil {
			fmt.Fprintln(os.Stderr, "cleanup:", err)
		}
	}
	var after procSample
	var inodesUsed uint64
	for {
		after, _ = sampleProc(*pid, *store)
		var st unix.Statfs_t
		if unix.Statfs(mnt, &st) == nil {
			inodesUsed = st.Files - st.Ffree
		}
		if after.StoreBytes == 0 && after.StoreFiles == 0 && inodesUsed <= 1 || time.Since(cleanStart) > 10*time.Second {
			break
		}
		time.Sleep(200 * time.Millisecond)
	}

	fmt.Printf("\nops done in %v: %d (%.0f/s)\n", *duration, allOps, float64(allOps)/duration.Seconds())
	names := make([]string, 0, len(totalOps))
	for k := range totalOps {
		names = append(names, k)
	}
	sort.Strings(names)
	var parts []string
	for _, k := range names {
		parts = append(parts, fmt.Sprintf("%s %d", k, totalOps[k]))
	}
	fmt.Println("  " + strings.Join(parts, ", "))
	fmt.Printf("after removing everything: store %d bytes in %d files, %d inodes used, server RSS %.1f MiB (anon %.1f MiB), %d fds, %d maps\n",
		after.StoreBytes, after.StoreFiles, inodesUsed, mib(after.RSS), mib(after.Anon), after.FDs, after.Maps)

	return verdict(samples, fails, failLines, workersOK, counter, incs, after, inodesUsed)
}

func (s soakSample) row() string {
	return fmt.Sprintf("%6.0f %9.0f %7.1f %7.0f %6.0f %8.1f %9.1f %5d %6d %5d %10.1f %6d",
		s.T.Seconds(), s.Ops, s.MiBps, s.SrvCPU, s.HostBusy, mib(s.RSS), mib(s.Anon), s.FDs, s.Maps, s.Threads, mib(s.StoreBytes), s.StoreFiles)
}

func thirds(samples []soakSample) (first, last []soakSample) {
	n := len(samples) / 3
	if n == 0 {
		n = 1
	}
	return samples[:n], samples[len(samples)-n:]
}

func maxOf(s []soakSample, f func(soakSample) float64) float64 {
	m := f(s[0])
	for _, x := range s[1:] {
		m = max(m, f(x))
	}
	return m
}

func meanOf(s []soakSample, f func(soakSample) float64) float64 {
	var t float64
	for _, x := range s {
		t += f(x)
	}
	return t / float64(len(s))
}

func verdict(samples []soakSample, fails int, failLines []string, workersOK bool, counter, incs uint64, after procSample, inodesUsed uint64) int {
	ok := true
	check := func(pass bool, format string, a ...any) {
		mark := "ok  "
		if !pass {
			mark = "FAIL"
			ok = false
		}
		fmt.Printf("  %s %s\n", mark, fmt.Sprintf(format, a...))
	}
	fmt.Println("\nverdict (first third vs last third of the samples):")
	if len(samples) == 0 {
		check(false, "no samples")
		return 1
	}
	first, last := thirds(samples)
	bounded := func(what string, f func(soakSample) float64, slack float64, unit string) {
		a, b := maxOf(first, f), maxOf(last, f)
		lim := 1.2*a + slack
		check(b <= lim, "%s bounded: last max %.1f%s ≤ 1.2 × first max %.1f%s + %.0f%s = %.1f%s",
			what, b, unit, a, unit, slack, unit, lim, unit)
	}
	bounded("server RSS", func(s soakSample) float64 { return mib(s.RSS) }, 32, " MiB")
	bounded("server RssAnon (heap)", func(s soakSample) float64 { return mib(s.Anon) }, 16, " MiB")
	bounded("open fds", func(s soakSample) float64 { return float64(s.FDs) }, 16, "")
	bounded("mappings", func(s soakSample) float64 { return float64(s.Maps) }, 64, "")
	bounded("store size", func(s soakSample) float64 { return mib(s.StoreBytes) }, 64, " MiB")
	a, b := meanOf(first, func(s soakSample) float64 { return s.Ops }), meanOf(last, func(s soakSample) float64 { return s.Ops })
	check(b >= 0.8*a, "throughput steady: last mean %.0f ops/s ≥ 0.8 × first mean %.0f ops/s = %.0f", b, a, 0.8*a)
	check(fails == 0, "verification: %d failures", fails)
	check(workersOK, "all workers finished and reported")
	check(counter == incs, "flock counter: %d in the file, %d increments made", counter, incs)
	check(after.StoreBytes == 0 && after.StoreFiles == 0, "store empty after removing everything: %d bytes, %d files", after.StoreBytes, after.StoreFiles)
	check(inodesUsed == 1, "inodes used after removing everything: %d (root only)", inodesUsed)
	_ = failLines
	if ok {
		fmt.Println("VERDICT: PASS")
		return 0
	}
	fmt.Println("VERDICT: FAIL")
	return 1
}
