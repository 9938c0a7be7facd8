package main

// A soak worker owns the directory w<ID> of the mount and keeps a model of
// it in memory (an fsmodel.FS: the names, the full contents and the xattrs
// of each file), so that every read can be checked byte for byte. Shared files: each worker writes only
// its own region of shared/s<K> and checks it; shared/counter is a counter
// incremented under flock by all workers; shared/dir holds names of all
// workers, each checking only its own.
//
// Protocol on stdout: "R" when populated; then, after "go DEADLINE_UNIXNANO"
// on stdin, "C OPS BYTES" every half second; "F MESSAGE" for each failure;
// "D JSON" (workerResult) at the end.
//
// This file is the worker process: its protocol, its counts and its
// randomness. The operations are in ops*.go, the model in model.go, the
// checks in check.go.

import (
	"bufio"
	"encoding/binary"
	"encoding/json"
	"flag"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"
)

const (
	nSubdirs     = 4        // directories d0..d3 of the worker's files
	targetFiles  = 100      // files the worker keeps, about
	sharedFiles  = 4        // shared/s0..s3
	regionSize   = 64 << 10 // each worker's region of a shared file
	maxFailLines = 20       // failures a worker reports in full
)

// A worker is one soak worker process: its directory, its randomness, its
// model and its counts.
type worker struct {
	id     int
	root   string     // MOUNTDIR/w<ID>
	shared string     // MOUNTDIR/shared
	rng    *rand.Rand // the choices
	xs     uint64     // the state of fill's xorshift

	model     // what the worker owns on the mount
	seq   int // the last number used in a new name

	// mu guards the counts, which the reporting goroutine reads.
	mu        sync.Mutex
	ops       [nOps]uint64 // Protected by mu.
	bytes     uint64       // Protected by mu.
	fails     int          // Protected by mu.
	flockIncs uint64       // increments of shared/counter done

	outMu sync.Mutex
	out   *bufio.Writer // standard output. Protected by outMu.
}

// A workerResult is what a worker reports at its end ("D JSON").
type workerResult struct {
	ID        int               `json:"id"`
	Ops       map[string]uint64 `json:"ops"`
	Bytes     uint64            `json:"bytes"`
	Fails     int               `json:"fails"`
	FlockIncs uint64            `json:"flock_incs"`
}

// workerMain runs one worker: it populates its directory, says "R", waits
// for "go DEADLINE", runs operations until the deadline and checks
// everything once more.
func workerMain(args []string) int {
	fl := flag.NewFlagSet("worker", flag.ExitOnError)
	id := fl.Int("id", 0, "worker number")
	seed := fl.Uint64("seed", 1, "random seed")
	_ = fl.Parse(args)
	if fl.NArg() != 1 {
		fmt.Fprintln(os.Stderr, "usage: fsload worker -id N MOUNTDIR")
		return 2
	}
	mnt := fl.Arg(0)
	w := &worker{
		id:     *id,
		root:   filepath.Join(mnt, fmt.Sprintf("w%d", *id)),
		shared: filepath.Join(mnt, "shared"),
		rng:    rand.New(rand.NewPCG(*seed, uint64(*id))),
		xs:     *seed*0x9e3779b97f4a7c15 + uint64(*id) + 1,
		model:  newModel(processUmask()),
		out:    bufio.NewWriter(os.Stdout),
	}
	if err := w.setup(); err != nil {
		w.fail("setup: %v", err)
		w.finish()
		return 1
	}
	w.say("R")

	line, err := bufio.NewReader(os.Stdin).ReadString('\n')
	if err != nil {
		return 1
	}
	f := strings.Fields(line)
	if len(f) != 2 || f[0] != "go" {
		return 1
	}
	ns, _ := strconv.ParseInt(f[1], 10, 64)
	deadline := time.Unix(0, ns)

	stop := make(chan struct{})
	done := make(chan struct{})
	go func() {
		defer close(done)
		t := time.NewTicker(500 * time.Millisecond)
		defer t.Stop()
		for {
			select {
			case <-stop:
				return
			case <-t.C:
				ops, b := w.counts()
				w.say(fmt.Sprintf("C %d %d", ops, b))
			}
		}
	}()
	for time.Now().Before(deadline) {
		for i := 0; i < 50; i++ {
			w.step()
		}
	}
	close(stop)
	<-done
	ops, b := w.counts()
	w.say(fmt.Sprintf("C %d %d", ops, b))
	w.verifyAll()
	w.finish()
	return 0
}

// counts returns the operations and bytes done so far.
func (w *worker) counts() (uint64, uint64) {
	w.mu.Lock()
	defer w.mu.Unlock()
	var n uint64
	for _, c := range w.ops {
		n += c
	}
	return n, w.bytes
}

// done counts one operation op that moved nbytes.
func (w *worker) done(op int, nbytes int) {
	w.mu.Lock()
	w.ops[op]++
	w.bytes += uint64(nbytes)
	w.mu.Unlock()
}

// say writes one line of the protocol.
func (w *worker) say(s string) {
	w.outMu.Lock()
	defer w.outMu.Unlock()
	w.out.WriteString(s)
	w.out.WriteByte('\n')
	w.out.Flush()
}

// fail counts a failure and reports the first maxFailLines of them.
func (w *worker) fail(format string, a ...any) {
	w.mu.Lock()
	w.fails++
	n := w.fails
	w.mu.Unlock()
	if n <= maxFailLines {
		w.say("F w" + strconv.Itoa(w.id) + ": " + fmt.Sprintf(format, a...))
	}
}

// finish reports the worker's result.
func (w *worker) finish() {
	r := workerResult{ID: w.id, Ops: map[string]uint64{}, Bytes: w.bytes, Fails: w.fails, FlockIncs: w.flockIncs}
	for i, c := range w.ops {
		r.Ops[opNames[i]] = c
	}
	j, _ := json.Marshal(r)
	w.say("D " + string(j))
}

// setup makes the directories and the shared files, and the worker's
// first targetFiles files (whose operations are not counted).
func (w *worker) setup() error {
	for i := 0; i < nSubdirs; i++ {
		d := fmt.Sprintf("d%d", i)
		if err := os.MkdirAll(filepath.Join(w.root, d), 0o755); err != nil {
			return err
		}
		if _, e := w.m.Mkdir(d, 0o755); e != 0 {
			return fmt.Errorf("model: mkdir %s: %w", d, e)
		}
	}
	if err := os.MkdirAll(filepath.Join(w.shared, "dir"), 0o777); err != nil {
		return err
	}
	for k := 0; k < sharedFiles; k++ {
		f, err := os.OpenFile(w.sharedPath(k), os.O_RDWR|os.O_CREATE, 0o666)
		if err != nil {
			return err
		}
		f.Close()
	}
	if f, err := os.OpenFile(filepath.Join(w.shared, "counter"), os.O_RDWR|os.O_CREATE, 0o666); err != nil {
		return err
	} else {
		f.Close()
	}
	for len(w.files) < targetFiles {
		w.opCreate()
	}
	w.ops = [nOps]uint64{}
	w.bytes = 0
	return nil
}

// sharedPath returns the path of shared file k.
func (w *worker) sharedPath(k int) string {
	return filepath.Join(w.shared, fmt.Sprintf("s%d", k))
}

// abs returns the path of rel under the worker's directory.
func (w *worker) abs(rel string) string { return filepath.Join(w.root, rel) }

// fill fills b with pseudo-random bytes (xorshift64).
func (w *worker) fill(b []byte) {
	x := w.xs
	i := 0
	for ; i+8 <= len(b); i += 8 {
		x ^= x << 13
		x ^= x >> 7
		x ^= x << 17
		binary.LittleEndian.PutUint64(b[i:], x)
	}
	for ; i < len(b); i++ {
		x ^= x << 13
		x ^= x >> 7
		x ^= x << 17
		b[i] = byte(x)
	}
	w.xs = x
}

// randBytes returns n pseudo-random bytes.
func (w *worker) randBytes(n int) []byte {
	b := make([]byte, n)
	w.fill(b)
	return b
}

// randSize returns the size of a new file: mostly under 64 KiB, some up to
// 1 MiB, a few up to 4 MiB, and empty.
func (w *worker) randSize() int {
	switch p := w.rng.IntN(100); {
	case p < 5:
		return 0
	case p < 70:
		return w.rng.IntN(64 << 10)
	case p < 95:
		return 64<<10 + w.rng.IntN(960<<10)
	default:
		return 1<<20 + w.rng.IntN(3<<20)
	}
}

// pick returns a random file of the worker, or nil if it has none.
func (w *worker) pick() *wfile {
	if len(w.files) == 0 {
		return nil
	}
	return w.files[w.rng.IntN(len(w.files))]
}

// newName returns a new file name in a random one of the directories.
func (w *worker) newName() string {
	w.seq++
	return fmt.Sprintf("d%d/f%d", w.rng.IntN(nSubdirs), w.seq)
}
