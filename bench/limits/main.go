// limits: the machine's raw limits that Skiff's benchmarks are compared with. Prints one JSON
// line on stdout. Built by bench/build.sh with Debian's golang-go (no dependencies).
//
//	limits loopback -duration 5s -buf 262144 -conns 1
//	    TCP over 127.0.0.1: a sink and a blaster in this process; bytes the sink read per second.
//	limits fsync -dir D -total 1073741824 -chunk 4194304
//	    Sequential writes of -chunk bytes to one new file in D, fdatasync after each chunk
//	    (what a durable append costs when every flush must reach the disk). -chunk equal to
//	    -total is one sync at the end, like dd conv=fdatasync.
//	limits syncrate -dir D -duration 3s -chunk 4096
//	    Appends of -chunk bytes each followed by fdatasync: syncs per second and their latency.
//	limits paced -dir D -rate 150000000 -tick 10ms -duration 8s
//	    Durable writes at a fixed byte rate, the way the embedded store writes a WAL object:
//	    every tick, a new file opened O_DSYNC and written with its tick's bytes, the directory
//	    fsync'd alongside. Latency runs from the tick (when the bytes were due) to both syncs
//	    done, so a write that falls behind delays the next ones. What no server can beat for
//	    acknowledging durable writes at this rate on this disk.
package main

import (
	"encoding/json"
	"flag"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"sort"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

func die(format string, args ...interface{}) {
	fmt.Fprintf(os.Stderr, "limits: "+format+"\n", args...)
	os.Exit(1)
}

func emit(v interface{}) {
	out, _ := json.Marshal(v)
	fmt.Println(string(out))
}

func main() {
	if len(os.Args) < 2 {
		die("usage: limits loopback|fsync|syncrate|paced [flags]")
	}
	fs := flag.NewFlagSet(os.Args[1], flag.ExitOnError)
	duration := fs.Duration("duration", 5*time.Second, "how long")
	buf := fs.Int("buf", 256<<10, "loopback: bytes per write/read")
	conns := fs.Int("conns", 1, "loopback: connections")
	dir := fs.String("dir", os.TempDir(), "fsync/syncrate: directory (same filesystem as the data dir)")
	total := fs.Int64("total", 1<<30, "fsync: bytes to write")
	chunk := fs.Int("chunk", 4<<20, "fsync/syncrate: bytes per write+fdatasync")
	rate := fs.Float64("rate", 100e6, "paced: bytes per second")
	tick := fs.Duration("tick", 10*time.Millisecond, "paced: one file per tick")
	_ = fs.Parse(os.Args[2:])
	switch os.Args[1] {
	case "loopback":
		loopback(*duration, *buf, *conns)
	case "fsync":
		fsyncWrite(*dir, *total, *chunk)
	case "syncrate":
		syncRate(*dir, *duration, *chunk)
	case "paced":
		paced(*dir, *duration, *rate, *tick)
	default:
		die("unknown command %q", os.Args[1])
	}
}

func loopback(d time.Duration, bufSize, conns int) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		die("listen: %v", err)
	}
	var received int64
	var wg sync.WaitGroup
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			wg.Add(1)
			go func(c net.Conn) {
				defer wg.Done()
				b := make([]byte, bufSize)
				for {
					n, err := c.Read(b)
					atomic.AddInt64(&received, int64(n))
					if err != nil {
						return
					}
				}
			}(c)
		}
	}()
	start := time.Now()
	deadline := start.Add(d)
	var senders sync.WaitGroup
	for i := 0; i < conns; i++ {
		senders.Add(1)
		go func() {
			defer senders.Done()
			c, err := net.Dial("tcp", ln.Addr().String())
			if err != nil {
				die("dial: %v", err)
			}
			b := make([]byte, bufSize)
			for time.Now().Before(deadline) {
				if _, err := c.Write(b); err != nil {
					break
				}
			}
			c.Close()
		}()
	}
	senders.Wait()
	wg.Wait()
	secs := time.Since(start).Seconds()
	ln.Close()
	emit(map[string]interface{}{
		"test": "loopback", "bytes": received, "seconds": secs, "conns": conns, "buf": bufSize,
		"mb_per_sec": float64(received) / secs / 1e6,
	})
}

func fsyncWrite(dir string, total int64, chunk int) {
	f, err := os.CreateTemp(dir, "skiff-bench-fsync-*")
	if err != nil {
		die("create: %v", err)
	}
	defer os.Remove(f.Name())
	defer f.Close()
	b := make([]byte, chunk)
	for i := range b {
		b[i] = byte(i*7 + 3)
	}
	var syncs []float64
	start := time.Now()
	var written int64
	for written < total {
		n := int64(chunk)
		if total-written < n {
			n = total - written
		}
		if _, err := f.Write(b[:n]); err != nil {
			die("write: %v", err)
		}
		written += n
		t := time.Now()
		if err := syscall.Fdatasync(int(f.Fd())); err != nil {
			die("fdatasync: %v", err)
		}
		syncs = append(syncs, float64(time.Since(t).Microseconds())/1000)
	}
	secs := time.Since(start).Seconds()
	sort.Float64s(syncs)
	emit(map[string]interface{}{
		"test": "fsync", "dir": filepath.Clean(dir), "bytes": written, "chunk": chunk, "seconds": secs,
		"mb_per_sec": float64(written) / secs / 1e6, "syncs": len(syncs),
		"sync_ms_p50": syncs[len(syncs)/2], "sync_ms_max": syncs[len(syncs)-1],
	})
}

func syncRate(dir string, d time.Duration, chunk int) {
	f, err := os.CreateTemp(dir, "skiff-bench-syncrate-*")
	if err != nil {
		die("create: %v", err)
	}
	defer os.Remove(f.Name())
	defer f.Close()
	b := make([]byte, chunk)
	var lat []float64
	start := time.Now()
	deadline := start.Add(d)
	for time.Now().Before(deadline) {
		if _, err := f.Write(b); err != nil {
			die("write: %v", err)
		}
		t := time.Now()
		if err := syscall.Fdatasync(int(f.Fd())); err != nil {
			die("fdatasync: %v", err)
		}
		lat = append(lat, float64(time.Since(t).Microseconds())/1000)
	}
	secs := time.Since(start).Seconds()
	sort.Float64s(lat)
	pct := func(q float64) float64 { return lat[int(q*float64(len(lat)-1))] }
	emit(map[string]interface{}{
		"test": "syncrate", "chunk": chunk, "syncs": len(lat), "seconds": secs,
		"syncs_per_sec": float64(len(lat)) / secs, "sync_ms_p50": pct(0.5), "sync_ms_p99": pct(0.99),
		"mb_per_sec": float64(len(lat)*chunk) / secs / 1e6,
	})
}

func paced(dir string, d time.Duration, rate float64, tick time.Duration) {
	sub, err := os.MkdirTemp(dir, "skiff-bench-paced-*")
	if err != nil {
		die("mkdir: %v", err)
	}
	defer os.RemoveAll(sub)
	df, err := os.Open(sub)
	if err != nil {
		die("open dir: %v", err)
	}
	defer df.Close()
	chunk := int(rate * tick.Seconds())
	if chunk < 1 {
		die("rate %v over %v is less than a byte", rate, tick)
	}
	b := make([]byte, chunk)
	for i := range b {
		b[i] = byte(i*7 + 3)
	}
	name := func(i int) string { return filepath.Join(sub, fmt.Sprintf("%010d", i)) }
	var lat []float64
	start := time.Now()
	due := start
	for i := 0; due.Sub(start) < d; i++ {
		if wait := time.Until(due); wait > 0 {
			time.Sleep(wait)
		}
		f, err := os.OpenFile(name(i), os.O_CREATE|os.O_WRONLY|os.O_TRUNC|syscall.O_DSYNC, 0o644)
		if err != nil {
			die("create: %v", err)
		}
		dirSynced := make(chan error, 1)
		go func() { dirSynced <- syscall.Fsync(int(df.Fd())) }()
		if _, err := f.Write(b); err != nil {
			die("write: %v", err)
		}
		if err := <-dirSynced; err != nil {
			die("fsync dir: %v", err)
		}
		f.Close()
		lat = append(lat, float64(time.Since(due).Microseconds())/1000)
		// Keep the directory small, as the broker's WAL GC does.
		if i >= 64 {
			os.Remove(name(i - 64))
		}
		due = due.Add(tick)
	}
	secs := time.Since(start).Seconds()
	sort.Float64s(lat)
	pct := func(q float64) float64 { return lat[int(q*float64(len(lat)-1))] }
	emit(map[string]interface{}{
		"test": "paced", "rate": rate, "tick_ms": float64(tick.Microseconds()) / 1000, "chunk": chunk,
		"writes": len(lat), "seconds": secs, "mb_per_sec": float64(len(lat)*chunk) / secs / 1e6,
		"ms_p50": pct(0.5), "ms_p99": pct(0.99), "ms_p999": pct(0.999), "ms_max": lat[len(lat)-1],
	})
}
