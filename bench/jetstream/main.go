// jsbench: the peer side of Skiff's benchmarks. Loads a NATS JetStream server (file storage,
// one replica) the way bench/run.mjs loads Skiff with rdkafka_performance, and prints one JSON
// line with the result on stdout; progress goes to stderr once a second.
//
// Built by bench/build.sh from Debian's golang-go and golang-github-nats-io-go-nats-dev
// (GOPATH=/usr/share/gocode, GO111MODULE=off); no module download.
//
// Modes:
//
//	pub-async  publish with PublishAsync, at most -max-pending unacknowledged (throughput)
//	pub-sync   publish with Publish, each waiting for its ack, -workers at once (throughput)
//	latency    PublishAsync at a fixed -rate; ack latency per message (publish -> PubAck) and
//	           end-to-end latency (publish -> delivery to a push consumer in this process)
//	consume    read the stream from its first message with an ordered consumer (throughput)
//
// Every mode is bounded by -duration and by -max-bytes.
package main

import (
	"encoding/binary"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
)

type result struct {
	Mode        string             `json:"mode"`
	Size        int                `json:"size"`
	Msgs        int64              `json:"msgs"`
	Bytes       int64              `json:"bytes"`
	Seconds     float64            `json:"seconds"`
	MsgsPerSec  float64            `json:"msgs_per_sec"`
	MBPerSec    float64            `json:"mb_per_sec"`
	Errors      int64              `json:"errors"`
	TargetRate  float64            `json:"target_rate,omitempty"`
	AckLatency  map[string]float64 `json:"ack_latency_ms,omitempty"`
	E2ELatency  map[string]float64 `json:"e2e_latency_ms,omitempty"`
	E2EReceived int64              `json:"e2e_received,omitempty"`
}

var (
	url        = flag.String("url", "nats://127.0.0.1:4222", "server URL")
	mode       = flag.String("mode", "pub-async", "pub-async | pub-sync | latency | consume")
	stream     = flag.String("stream", "BENCH", "stream name")
	subject    = flag.String("subject", "bench.1", "subject")
	size       = flag.Int("size", 1024, "message size in bytes")
	duration   = flag.Duration("duration", 8*time.Second, "longest run")
	maxBytes   = flag.Int64("max-bytes", 2<<30, "stop after this many payload bytes")
	maxPending = flag.Int("max-pending", 4096, "pub-async/latency: unacknowledged publishes in flight")
	workers    = flag.Int("workers", 1, "pub-sync: concurrent synchronous publishers")
	rate       = flag.Float64("rate", 1000, "latency: messages per second")
	create     = flag.Bool("create", true, "create (or recreate) the stream first")
	warmup     = flag.Duration("warmup", time.Second, "latency: samples in the first part of the run are dropped")
	expect     = flag.Int64("expect", 0, "consume: messages to read (0: the stream's message count)")
	quiet      = flag.Bool("quiet", false, "no progress on stderr")
)

func die(format string, args ...interface{}) {
	fmt.Fprintf(os.Stderr, "jsbench: "+format+"\n", args...)
	os.Exit(1)
}

func main() {
	flag.Parse()
	nc, err := nats.Connect(*url, nats.Name("skiff-bench"), nats.ReconnectBufSize(64<<20))
	if err != nil {
		die("connect: %v", err)
	}
	defer nc.Close()
	js, err := nc.JetStream(nats.PublishAsyncMaxPending(*maxPending))
	if err != nil {
		die("jetstream: %v", err)
	}
	if *create && *mode != "consume" {
		_ = js.DeleteStream(*stream)
		_, err = js.AddStream(&nats.StreamConfig{
			Name:     *stream,
			Subjects: []string{*subject},
			Storage:  nats.FileStorage,
			Replicas: 1,
		})
		if err != nil {
			die("add stream: %v", err)
		}
	}
	var r result
	switch *mode {
	case "pub-async":
		r = pubAsync(js)
	case "pub-sync":
		r = pubSync(js)
	case "latency":
		r = latency(nc, js)
	case "consume":
		r = consume(js)
	default:
		die("unknown mode %q", *mode)
	}
	r.Mode = *mode
	r.Size = *size
	if r.Seconds > 0 {
		r.MsgsPerSec = float64(r.Msgs) / r.Seconds
		r.MBPerSec = float64(r.Bytes) / r.Seconds / 1e6
	}
	out, _ := json.Marshal(r)
	fmt.Println(string(out))
}

// progress prints the running count once a second until stop is closed.
func progress(label string, count *int64, start time.Time, stop <-chan struct{}) {
	if *quiet {
		return
	}
	t := time.NewTicker(time.Second)
	defer t.Stop()
	for {
		select {
		case <-stop:
			return
		case now := <-t.C:
			n := atomic.LoadInt64(count)
			secs := now.Sub(start).Seconds()
			fmt.Fprintf(os.Stderr, "%% %s %d msgs in %.1fs: %.0f msgs/s %.2f MB/s\n", label, n, secs,
				float64(n)/secs, float64(n)*float64(*size)/secs/1e6)
		}
	}
}

func payload() []byte {
	b := make([]byte, *size)
	for i := range b {
		b[i] = byte('a' + i%26)
	}
	return b
}

func pubAsync(js nats.JetStreamContext) result {
	data := payload()
	limit := *maxBytes / int64(*size)
	var acked, errs int64
	start := time.Now()
	stop := make(chan struct{})
	go progress("pub-async acked", &acked, start, stop)
	deadline := start.Add(*duration)
	futures := make(chan nats.PubAckFuture, *maxPending*2)
	done := make(chan struct{})
	go func() {
		for f := range futures {
			select {
			case <-f.Ok():
				atomic.AddInt64(&acked, 1)
			case <-f.Err():
				atomic.AddInt64(&errs, 1)
			}
		}
		close(done)
	}()
	var sent int64
	for sent < limit && (sent&1023 != 0 || time.Now().Before(deadline)) {
		f, err := js.PublishAsync(*subject, data)
		if err != nil {
			// stalled: too many in flight for longer than the stall wait; try again
			atomic.AddInt64(&errs, 1)
			continue
		}
		futures <- f
		sent++
	}
	close(futures)
	<-done
	elapsed := time.Since(start).Seconds()
	close(stop)
	return result{Msgs: acked, Bytes: acked * int64(*size), Seconds: elapsed, Errors: errs}
}

func pubSync(js nats.JetStreamContext) result {
	data := payload()
	limit := *maxBytes / int64(*size)
	var acked, errs, claimed int64
	start := time.Now()
	stop := make(chan struct{})
	go progress("pub-sync acked", &acked, start, stop)
	deadline := start.Add(*duration)
	var wg sync.WaitGroup
	for w := 0; w < *workers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for atomic.AddInt64(&claimed, 1) <= limit && time.Now().Before(deadline) {
				if _, err := js.Publish(*subject, data); err != nil {
					atomic.AddInt64(&errs, 1)
				} else {
					atomic.AddInt64(&acked, 1)
				}
			}
		}()
	}
	wg.Wait()
	elapsed := time.Since(start).Seconds()
	close(stop)
	return result{Msgs: acked, Bytes: acked * int64(*size), Seconds: elapsed, Errors: errs}
}

func percentiles(samples []float64) map[string]float64 {
	if len(samples) == 0 {
		return nil
	}
	sort.Float64s(samples)
	at := func(q float64) float64 {
		i := int(q*float64(len(samples))+0.5) - 1
		if i < 0 {
			i = 0
		}
		if i >= len(samples) {
			i = len(samples) - 1
		}
		return samples[i]
	}
	sum := 0.0
	for _, s := range samples {
		sum += s
	}
	return map[string]float64{
		"p50": at(0.50), "p90": at(0.90), "p99": at(0.99), "p999": at(0.999),
		"max": samples[len(samples)-1], "mean": sum / float64(len(samples)), "count": float64(len(samples)),
	}
}

func latency(nc *nats.Conn, js nats.JetStreamContext) result {
	if *size < 8 {
		die("latency mode needs -size >= 8")
	}
	data := payload()
	start := time.Now()
	warmEnd := start.Add(*warmup)
	deadline := start.Add(*duration)

	// End-to-end: a push consumer that only sees new messages, no acks to send back.
	var e2eMu sync.Mutex
	var e2e []float64
	var received int64
	sub, err := js.Subscribe(*subject, func(m *nats.Msg) {
		now := time.Now().UnixNano()
		sentAt := int64(binary.LittleEndian.Uint64(m.Data[:8]))
		atomic.AddInt64(&received, 1)
		if time.Unix(0, sentAt).After(warmEnd) {
			e2eMu.Lock()
			e2e = append(e2e, float64(now-sentAt)/1e6)
			e2eMu.Unlock()
		}
	}, nats.DeliverNew(), nats.AckNone())
	if err != nil {
		die("subscribe: %v", err)
	}
	_ = sub.SetPendingLimits(-1, -1)
	if err := nc.Flush(); err != nil {
		die("flush: %v", err)
	}

	type sent struct {
		f  nats.PubAckFuture
		at time.Time
	}
	futures := make(chan sent, 1<<16)
	var acks []float64
	var acked, errs int64
	done := make(chan struct{})
	go func() {
		for s := range futures {
			select {
			case <-s.f.Ok():
				now := time.Now()
				atomic.AddInt64(&acked, 1)
				if s.at.After(warmEnd) {
					acks = append(acks, float64(now.Sub(s.at).Nanoseconds())/1e6)
				}
			case <-s.f.Err():
				atomic.AddInt64(&errs, 1)
			}
		}
		close(done)
	}()
	stop := make(chan struct{})
	go progress("latency acked", &acked, start, stop)

	// Paced by the clock: each pass sends what is due, then sleeps a little (no busy loop).
	var n int64
	limit := *maxBytes / int64(*size)
	for n < limit {
		now := time.Now()
		if !now.Before(deadline) {
			break
		}
		due := int64(now.Sub(start).Seconds() * *rate)
		for n < due && n < limit {
			at := time.Now()
			binary.LittleEndian.PutUint64(data[:8], uint64(at.UnixNano()))
			f, err := js.PublishAsync(*subject, data)
			if err != nil {
				atomic.AddInt64(&errs, 1)
				continue
			}
			futures <- sent{f, at}
			n++
		}
		time.Sleep(100 * time.Microsecond)
	}
	sendSecs := time.Since(start).Seconds()
	close(futures)
	<-done
	// let the last deliveries arrive
	for i := 0; i < 200 && atomic.LoadInt64(&received) < acked; i++ {
		time.Sleep(10 * time.Millisecond)
	}
	close(stop)
	_ = sub.Unsubscribe()
	e2eMu.Lock()
	defer e2eMu.Unlock()
	return result{
		Msgs: acked, Bytes: acked * int64(*size), Seconds: sendSecs, Errors: errs, TargetRate: *rate,
		AckLatency: percentiles(acks), E2ELatency: percentiles(e2e), E2EReceived: atomic.LoadInt64(&received),
	}
}

func consume(js nats.JetStreamContext) result {
	want := *expect
	if want == 0 {
		info, err := js.StreamInfo(*stream)
		if err != nil {
			die("stream info: %v", err)
		}
		want = int64(info.State.Msgs)
	}
	var got, bytes int64
	var first time.Time
	finished := make(chan struct{})
	var once sync.Once
	start := time.Now()
	stop := make(chan struct{})
	go progress("consume", &got, start, stop)
	sub, err := js.Subscribe(*subject, func(m *nats.Msg) {
		if first.IsZero() {
			first = time.Now()
		}
		bytes += int64(len(m.Data))
		if atomic.AddInt64(&got, 1) >= want {
			once.Do(func() { close(finished) })
		}
	}, nats.OrderedConsumer(), nats.DeliverAll())
	if err != nil {
		die("subscribe: %v", err)
	}
	_ = sub.SetPendingLimits(-1, -1)
	select {
	case <-finished:
	case <-time.After(*duration):
	}
	end := time.Now()
	close(stop)
	_ = sub.Unsubscribe()
	if first.IsZero() {
		first = start
	}
	return result{Msgs: atomic.LoadInt64(&got), Bytes: bytes, Seconds: end.Sub(first).Seconds()}
}
