// Command redis measures the Redis recipient store (recipients/redisstore)
// on loopback against the in-memory recipients.Population in the same run:
// recipient observations per second per instance with one and with two
// instances (each its own client and connections, concurrent Apply calls
// as a hop's SMTP sessions make them), Redis bytes per address from INFO
// memory (used_memory before and after loading the addresses), and round
// trips per message (writes on the client's sockets and script calls at
// the server, counted over a sequential run). See bench/README.md, "Redis
// store".
package main

import (
	"context"
	"crypto/rand"
	"flag"
	"fmt"
	mrand "math/rand/v2"
	"net"
	"os"
	"runtime"
	"runtime/pprof"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/redis/rueidis"

	"github.com/spamsurge/spamsurge/addr"
	"github.com/spamsurge/spamsurge/internal/testkit"
	"github.com/spamsurge/spamsurge/recipients"
	"github.com/spamsurge/spamsurge/recipients/redisstore"
)

var (
	n        = flag.Int("n", 1_000_000, "addresses loaded before the measurements")
	dur      = flag.Duration("d", 10*time.Second, "length of each throughput run")
	workers  = flag.Int("workers", 32, "concurrent Apply calls per instance (a hop's SMTP sessions)")
	clientsF = flag.String("clients", "rueidis,go-redis", "clients to measure, comma-separated")
	cluster  = flag.Int("cluster", 0, "run against a Redis Cluster of this many masters started here (0: one standalone redis-server)")
	spamPct  = flag.Int("spam", 30, "percentage of messages that are spam")
	newPct   = flag.Int("new", 5, "percentage of recipients that are new addresses")
	redisBin = flag.String("redis-server", "redis-server", "redis-server binary")
	cliBin   = flag.String("redis-cli", "redis-cli", "redis-cli binary (for -cluster)")
	at       = flag.Duration("at", warmup+2*time.Hour, "time of the measured messages after the addresses' first mails (past the warm-up: spam to them is a first spam once; the same day: no last-mail writes)")
	groupsF  = flag.Int("groups", 0, "redisstore Options.Groups (0: its default)")
	flushers = flag.Int("flushers", 0, "redisstore Options.Flushers (0: its default)")
	cpuProf  = flag.String("cpuprofile", "", "write a CPU profile of the client side (the whole run) to this file")
)

var t0 = time.Date(2026, 3, 2, 0, 0, 0, 0, time.UTC)

const warmup = 168 * time.Hour

func main() {
	flag.Parse()
	tm = t0.Add(*at)
	if *cpuProf != "" {
		f, err := os.Create(*cpuProf)
		must(err)
		must(pprof.StartCPUProfile(f))
		defer pprof.StopCPUProfile()
	}
	dir, err := os.MkdirTemp("", "redisbench")
	must(err)
	cleanup = append(cleanup, func() { os.RemoveAll(dir) })
	defer func() {
		// A panic too stops the servers before it is printed.
		if r := recover(); r != nil {
			runCleanup()
			panic(r)
		}
		runCleanup()
	}()
	fmt.Printf("GOMAXPROCS %d, %d CPUs; %d addresses; %d workers per instance; %d %% spam, %d %% new recipients; 1-4 recipients a message\n",
		runtime.GOMAXPROCS(0), runtime.NumCPU(), *n, *workers, *spamPct, *newPct)

	ids := make([]addr.ID, *n)
	for i := range ids {
		rand.Read(ids[i][:])
	}
	mem := memoryRun(ids)

	for _, client := range strings.Split(*clientsF, ",") {
		fmt.Printf("\n== %s ==\n", client)
		target := startRedis(dir + "/" + client)
		cleanup = append(cleanup, target.stop)
		redisRun(client, target, ids, mem)
		target.stop()
		cleanup = cleanup[:len(cleanup)-1]
	}
}

type target struct {
	url   string
	nodes []string
	stop  func()
}

func startRedis(dir string) target {
	must(os.MkdirAll(dir, 0o755))
	if *cluster > 0 {
		nodes, stop, err := testkit.StartRedisCluster(*redisBin, *cliBin, dir, *cluster)
		must(err)
		fmt.Printf("Redis Cluster of %d masters: %v\n", *cluster, nodes)
		return target{nodes: nodes, stop: stop}
	}
	a, stop, err := testkit.StartRedis(*redisBin, dir)
	must(err)
	return target{url: "redis://" + a, nodes: []string{a}, stop: stop}
}

// workload draws messages: 1-4 recipients from the loaded addresses or
// new ones, spam or not.
type workload struct {
	r    *mrand.Rand
	ids  []addr.ID
	rc   []recipients.Rcpt
	sent int
}

func (w *workload) next() ([]recipients.Rcpt, bool) {
	w.rc = w.rc[:0]
	for range 1 + w.r.IntN(4) {
		var id addr.ID
		if w.r.IntN(100) < *newPct {
			v := w.r.Uint64()
			for j := range 8 {
				id[j] = byte(v >> (8 * j))
			}
			id[8] = 0xff // apart from the loaded ids' space (random; a clash is harmless)
		} else {
			id = w.ids[w.r.IntN(len(w.ids))]
		}
		w.rc = append(w.rc, recipients.Rcpt{ID: id})
	}
	return w.rc, w.r.IntN(100) < *spamPct
}

// The message time: after the warm-up, so that spam to loaded addresses
// is a first spam once.
var tm time.Time

func memoryRun(ids []addr.ID) float64 {
	p := recipients.New(recipients.Options{Warmup: warmup, Dormant: 30 * 24 * time.Hour}, [8]byte{1})
	var out []recipients.Outcome
	for i := 0; i < len(ids); i += 100 {
		rc := make([]recipients.Rcpt, 0, 100)
		for _, id := range ids[i:min(len(ids), i+100)] {
			rc = append(rc, recipients.Rcpt{ID: id})
		}
		out = p.Apply(t0, rc, false, out[:0])
	}
	p.Mature(tm.Unix() / 3600)
	w := &workload{r: mrand.New(mrand.NewPCG(1, 1)), ids: ids}
	obs := 0
	start := time.Now()
	for time.Since(start) < *dur {
		for range 1000 {
			rc, spam := w.next()
			out = p.Apply(tm, rc, spam, out[:0])
			for i := range out {
				p.Spent(&out[i])
			}
			obs += len(rc)
		}
	}
	rate := float64(obs) / time.Since(start).Seconds()
	fmt.Printf("in-memory Population: %.0f observations/s (one goroutine, as the detector calls it)\n", rate)
	return rate
}

// counter counts writes on the client's sockets.
type counter struct{ writes, bytes atomic.Int64 }

type countConn struct {
	net.Conn
	c *counter
}

func (c countConn) Write(b []byte) (int, error) {
	c.c.writes.Add(1)
	c.c.bytes.Add(int64(len(b)))
	return c.Conn.Write(b)
}

func (c *counter) dial(ctx context.Context, network, a string) (net.Conn, error) {
	var d net.Dialer
	conn, err := d.DialContext(ctx, network, a)
	if err != nil {
		return nil, err
	}
	return countConn{conn, c}, nil
}

func open(client string, tg target, space [8]byte, cnt *counter) *redisstore.Store {
	o := redisstore.Options{URL: tg.url, Space: space, Warmup: warmup, Dormant: 30 * 24 * time.Hour, Client: client, Timeout: 5 * time.Second, Flushers: *flushers, Groups: *groupsF}
	if tg.url == "" {
		o.Cluster = tg.nodes
	}
	if cnt != nil {
		o.Dial = cnt.dial
	}
	if client == "go-redis" {
		o.PoolSize = *workers + 4
	}
	s, err := redisstore.Open(context.Background(), o)
	must(err)
	return s
}

func redisRun(client string, tg target, ids []addr.ID, memRate float64) {
	ctx := context.Background()
	admin := make([]rueidis.Client, len(tg.nodes))
	for i, a := range tg.nodes {
		c, err := rueidis.NewClient(rueidis.ClientOption{InitAddress: []string{a}, ForceSingleClient: true, DisableCache: true})
		must(err)
		defer c.Close()
		admin[i] = c
	}
	info := func(section, field string) int64 {
		var sum int64
		for _, c := range admin {
			s, err := c.Do(ctx, c.B().Info().Section(section).Build()).ToString()
			must(err)
			for _, line := range strings.Split(s, "\r\n") {
				if v, ok := strings.CutPrefix(line, field+":"); ok {
					x, _ := strconv.ParseInt(v, 10, 64)
					sum += x
				}
			}
		}
		return sum
	}
	// redisCPU is the servers' CPU time so far (INFO cpu): what Redis
	// spends, whatever else the machine runs.
	redisCPU := func() float64 {
		var sum float64
		for _, c := range admin {
			s, err := c.Do(ctx, c.B().Info().Section("cpu").Build()).ToString()
			must(err)
			for _, line := range strings.Split(s, "\r\n") {
				for _, f := range []string{"used_cpu_user:", "used_cpu_sys:"} {
					if v, ok := strings.CutPrefix(line, f); ok {
						x, _ := strconv.ParseFloat(v, 64)
						sum += x
					}
				}
			}
		}
		return sum
	}
	// evalStats: script calls and the server's microseconds in them.
	evalStats := func() (int64, int64) {
		var sum, usec int64
		for _, c := range admin {
			s, err := c.Do(ctx, c.B().Info().Section("commandstats").Build()).ToString()
			must(err)
			for _, line := range strings.Split(s, "\r\n") {
				for _, cmd := range []string{"cmdstat_evalsha:calls=", "cmdstat_eval:calls="} {
					if v, ok := strings.CutPrefix(line, cmd); ok {
						calls, rest, _ := strings.Cut(v, ",")
						x, _ := strconv.ParseInt(calls, 10, 64)
						sum += x
						u, _, _ := strings.Cut(strings.TrimPrefix(rest, "usec="), ",")
						y, _ := strconv.ParseInt(u, 10, 64)
						usec += y
					}
				}
			}
		}
		return sum, usec
	}
	space := [8]byte{2}
	s := open(client, tg, space, nil)
	defer s.Close()

	// Load the addresses: first mails, 100 recipients a message, in
	// parallel; then the memory they take.
	before := info("memory", "used_memory")
	start := time.Now()
	var wg sync.WaitGroup
	var next atomic.Int64
	for range 16 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var out []recipients.Outcome
			rc := make([]recipients.Rcpt, 0, 100)
			for {
				i := int(next.Add(100)) - 100
				if i >= len(ids) {
					return
				}
				rc = rc[:0]
				for _, id := range ids[i:min(len(ids), i+100)] {
					rc = append(rc, recipients.Rcpt{ID: id})
				}
				var err error
				out, err = s.Apply(ctx, t0, rc, false, out[:0])
				must(err)
			}
		}()
	}
	wg.Wait()
	load := time.Since(start)
	after := info("memory", "used_memory")
	fmt.Printf("loaded %d addresses in %s (%.0f/s); used_memory %d -> %d: %.1f bytes/address\n",
		len(ids), load.Round(time.Millisecond), float64(len(ids))/load.Seconds(), before, after, float64(after-before)/float64(len(ids)))
	enc := map[string]int{}
	sample := admin[0]
	keys, err := sample.Do(ctx, sample.B().Randomkey().Build()).ToString()
	if err == nil {
		e, _ := sample.Do(ctx, sample.B().ObjectEncoding().Key(keys).Build()).ToString()
		enc[e]++
	}
	var dbsize int64
	for _, c := range admin {
		k, err := c.Do(ctx, c.B().Dbsize().Build()).AsInt64()
		must(err)
		dbsize += k
	}
	fmt.Printf("keys %d; a random key's encoding: %v\n", dbsize, enc)
	n, err := s.Mature(ctx, tm.Unix()/3600)
	must(err)
	fmt.Printf("at risk after maturing: %d\n", n)

	// Round trips: one instance, one goroutine, messages one after
	// another; the socket writes and script calls per message.
	cnt := &counter{}
	seq := open(client, tg, space, cnt)
	w := &workload{r: mrand.New(mrand.NewPCG(2, 2)), ids: ids}
	var out []recipients.Outcome
	w0 := cnt.writes.Load()
	e0, u0 := evalStats()
	c0 := cpuTime()
	r0 := redisCPU()
	msgs, obs := 0, 0
	start = time.Now()
	for time.Since(start) < *dur/2 {
		rc, spam := w.next()
		out, err = seq.Apply(ctx, tm, rc, spam, out[:0])
		must(err)
		msgs++
		obs += len(rc)
	}
	el := time.Since(start)
	e1, u1 := evalStats()
	fmt.Printf("sequential (1 goroutine): %.0f messages/s, %.0f observations/s, %.1f µs/message; %.3f socket writes/message, %.3f script calls/message; Redis %.2f µs (CPU %.2f µs), client CPU %.2f µs per observation\n",
		float64(msgs)/el.Seconds(), float64(obs)/el.Seconds(), el.Seconds()*1e6/float64(msgs),
		float64(cnt.writes.Load()-w0)/float64(msgs), float64(e1-e0)/float64(msgs),
		float64(u1-u0)/float64(obs), (redisCPU()-r0)*1e6/float64(obs), (cpuTime()-c0).Seconds()*1e6/float64(obs))
	seq.Close()

	for _, inst := range []int{1, 2} {
		stores := make([]*redisstore.Store, inst)
		cnts := make([]*counter, inst)
		for i := range stores {
			cnts[i] = &counter{}
			stores[i] = open(client, tg, space, cnts[i])
		}
		rates := make([]float64, inst)
		msgN := make([]int64, inst)
		var wg sync.WaitGroup
		e0, u0 := evalStats()
		c0 := cpuTime()
		r0 := redisCPU()
		obsAll := make([]int64, inst)
		begin := time.Now()
		for i, st := range stores {
			var obs, msgs atomic.Int64
			var iwg sync.WaitGroup
			for k := range *workers {
				iwg.Add(1)
				go func() {
					defer iwg.Done()
					w := &workload{r: mrand.New(mrand.NewPCG(uint64(10+i), uint64(k))), ids: ids}
					var out []recipients.Outcome
					for time.Since(begin) < *dur {
						rc, spam := w.next()
						var err error
						out, err = st.Apply(ctx, tm, rc, spam, out[:0])
						must(err)
						for j := range out {
							st.Spent(&out[j])
						}
						obs.Add(int64(len(rc)))
						msgs.Add(1)
					}
				}()
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				iwg.Wait()
				rates[i] = float64(obs.Load()) / time.Since(begin).Seconds()
				obsAll[i] = obs.Load()
				msgN[i] = msgs.Load()
			}()
		}
		wg.Wait()
		e1, u1 := evalStats()
		calls := e1 - e0
		cpu := cpuTime() - c0
		rcpu := redisCPU() - r0
		var total float64
		var allMsgs, writes int64
		for i := range stores {
			total += rates[i]
			allMsgs += msgN[i]
			writes += cnts[i].writes.Load()
			stores[i].Close()
		}
		var nobs int64
		for _, x := range obsAll {
			nobs += x
		}
		fmt.Printf("%d instance(s) × %d workers: %s observations/s per instance (%.0f in all); per instance / in-memory = %.3f; %.3f script calls/message, %.3f socket writes/message; Redis %.2f µs (CPU %.2f µs), client CPU %.2f µs per observation\n",
			inst, *workers, fmtRates(rates), total, total/float64(inst)/memRate, float64(calls)/float64(allMsgs), float64(writes)/float64(allMsgs),
			float64(u1-u0)/float64(nobs), rcpu*1e6/float64(nobs), cpu.Seconds()*1e6/float64(nobs))
	}
	used := info("memory", "used_memory")
	fmt.Printf("used_memory at the end: %d (%.1f bytes/address over %d loaded)\n", used, float64(used-before)/float64(len(ids)), len(ids))
}

// cpuTime is this process's user and system time so far.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	must(syscall.Getrusage(syscall.RUSAGE_SELF, &ru))
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

func fmtRates(r []float64) string {
	var s []string
	for _, x := range r {
		s = append(s, strconv.FormatFloat(x, 'f', 0, 64))
	}
	return strings.Join(s, " and ")
}

// cleanup stops the servers started and removes the work directory: on
// the way out, and before a failure exits.
var cleanup []func()

func runCleanup() {
	for i := len(cleanup) - 1; i >= 0; i-- {
		cleanup[i]()
	}
	cleanup = nil
}

func must(err error) {
	if err != nil {
		fmt.Fprintln(os.Stderr, "redis bench:", err)
		runCleanup()
		os.Exit(1)
	}
}
