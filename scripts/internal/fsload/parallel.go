package main

import (
	"sync"
	"sync/atomic"
	"time"
)

// maxFirstErrs is how many of a batch's errors it keeps to print.
const maxFirstErrs = 5

// A batch is what parallel did: its time, its number of errors and the
// first few of them.
type batch struct {
	dur    time.Duration
	errs   int64
	firsts []string
}

// first returns the batch's first error, or "".
func (b batch) first() string {
	if len(b.firsts) == 0 {
		return ""
	}
	return b.firsts[0]
}

// parallel runs fn(i, buf) for i in [0, count) on nw goroutines, each with
// a buffer of bufSize bytes of its own, and times it. The goroutines take
// the indexes in batches of 64: that keeps the counter cheap and each
// goroutine's names local (the files of one or two directories, as a build
// or an unpack would touch them).
func parallel(count, nw, bufSize int, fn func(i int, buf []byte) error) batch {
	var next, errs atomic.Int64
	var mu sync.Mutex
	var firsts []string // Protected by mu.
	var wg sync.WaitGroup
	start := time.Now()
	for g := 0; g < nw; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			buf := make([]byte, bufSize)
			for {
				lo := int(next.Add(64)) - 64
				if lo >= count {
					return
				}
				for i := lo; i < min(lo+64, count); i++ {
					if err := fn(i, buf); err != nil {
						errs.Add(1)
						mu.Lock()
						if len(firsts) < maxFirstErrs {
							firsts = append(firsts, err.Error())
						}
						mu.Unlock()
					}
				}
			}
		}()
	}
	wg.Wait()
	return batch{dur: time.Since(start), errs: errs.Load(), firsts: firsts}
}
