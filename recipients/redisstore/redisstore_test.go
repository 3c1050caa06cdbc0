package redisstore

import (
	"bufio"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	mrand "math/rand/v2"
	"net"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/rueidis"

	"github.com/spamsurge/spamsurge/addr"
	"github.com/spamsurge/spamsurge/internal/testkit"
	"github.com/spamsurge/spamsurge/recipients"
	"github.com/spamsurge/spamsurge/store"
)

var t0 = time.Date(2026, 3, 2, 0, 0, 0, 0, time.UTC)

// target is a Redis to test against: a standalone URL or cluster nodes.
type target struct {
	url     string
	cluster []string
}

func (tg target) open(t testing.TB, o Options) *Store {
	t.Helper()
	o.URL, o.Cluster = tg.url, tg.cluster
	if o.Space == ([8]byte{}) {
		rand.Read(o.Space[:]) // every test its own key space
	}
	if o.Timeout == 0 {
		o.Timeout = 5 * time.Second // a loaded 2-core machine under -race
	}
	s, err := Open(context.Background(), o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.Close)
	return s
}

func standalone(t *testing.T) target { return target{url: "redis://" + testkit.Redis(t)} }

var clients = []string{"rueidis", "go-redis"}

// The suite, run against a standalone Redis here and against a 3-node
// cluster in TestCluster.
func suite(t *testing.T, tg target) {
	for _, c := range clients {
		t.Run(c, func(t *testing.T) {
			t.Run("Differential", func(t *testing.T) { testDifferential(t, tg, c, 0) })
			if tg.cluster != nil && c == clients[0] {
				// One call per group touched: 256 of them, not 16.
				t.Run("Differential256Groups", func(t *testing.T) { testDifferential(t, tg, c, 256) })
			}
			t.Run("RaceFirstSpam", func(t *testing.T) { testRace(t, tg, c) })
			t.Run("Forget", func(t *testing.T) { testForget(t, tg, c) })
			t.Run("Journal", func(t *testing.T) { testJournal(t, tg, c) })
			t.Run("Claim", func(t *testing.T) { testClaim(t, tg, c) })
			t.Run("Snapshot", func(t *testing.T) { testSnapshot(t, tg, c) })
		})
	}
}

func TestStandalone(t *testing.T) { suite(t, standalone(t)) }

func TestCluster(t *testing.T) {
	suite(t, target{cluster: testkit.RedisCluster(t, 3)})
}

func randID(r *mrand.Rand) addr.ID {
	var id addr.ID
	for i := 0; i < 16; i += 8 {
		v := r.Uint64()
		for j := range 8 {
			id[i+j] = byte(v >> (8 * j))
		}
	}
	return id
}

func hourOf(t time.Time) int64 { return t.Unix() / 3600 }

// Random histories applied to a recipients.Population and to the Redis
// store give the same outcomes (kind, id, detail, dormancy) and the same
// at-risk count after every message, the detector's way: hours matured
// as the clock reaches them, first spams Spent.
func testDifferential(t *testing.T, tg target, client string, groups int) {
	o := recipients.Options{Warmup: 6 * time.Hour, Dormant: 3 * 24 * time.Hour, ForgetAfter: 10 * 24 * time.Hour}
	for seed := range uint64(2) {
		r := mrand.New(mrand.NewPCG(seed, 42))
		s := tg.open(t, Options{Warmup: o.Warmup, Dormant: o.Dormant, ForgetAfter: o.ForgetAfter, Client: client, Groups: groups})
		pop := recipients.New(o, s.o.Space)
		mem := store.NewMemory()
		pool := make([]addr.ID, 150+r.IntN(150))
		for i := range pool {
			pool[i] = randID(r)
		}
		// A few ids share their first two bytes (one bucket) and even
		// their group only: the layout must keep them apart.
		pool[1][0], pool[1][1] = pool[0][0], pool[0][1]
		pool[2][0] = pool[0][0]
		ctx := context.Background()
		now := t0
		hr := int64(-1)
		day := now.Unix() / 86400
		var po, ro []recipients.Outcome
		// A tally fed Redis's outcomes and hours keeps the Population's
		// counts (until the first forgetting, which the tally learns of
		// from the fleet's journal instead).
		to := o
		to.Tally = true
		tal := recipients.New(to, s.o.Space)
		var hours []int64
		forgot := false
		var err error
		for m := range 1200 {
			switch x := r.IntN(100); {
			case x < 2:
				now = now.Add(time.Duration(2+r.IntN(5)) * 24 * time.Hour) // dormancy, forgetting
			case x < 40:
				now = now.Add(time.Duration(r.IntN(120)) * time.Minute)
			}
			if h := hourOf(now); h != hr {
				pop.Mature(h)
				tal.Mature(h)
				if _, err := s.Mature(ctx, h); err != nil {
					t.Fatal(err)
				}
				hr = h
			}
			// Forgetting is daily in the detector; here every 15th day or
			// more (a scan is 65536 buckets).
			if d := now.Unix() / 86400; d >= day+15 {
				day = d
				if err := mem.Commit(pop.Batch(), false); err != nil {
					t.Fatal(err)
				}
				pop.Batch().Reset()
				pf, err := pop.Forget(mem, now)
				if err != nil {
					t.Fatal(err)
				}
				if err := mem.Commit(pop.Batch(), false); err != nil {
					t.Fatal(err)
				}
				pop.Batch().Reset()
				rf, err := s.Forget(ctx, now)
				if err != nil {
					t.Fatal(err)
				}
				forgot = forgot || pf > 0
				if pf != rf {
					t.Fatalf("seed %d: forgot %d in memory, %d in Redis", seed, pf, rf)
				}
				if pop.AtRisk() != s.AtRisk() {
					t.Fatalf("seed %d after forgetting: at risk %d in memory, %d in Redis", seed, pop.AtRisk(), s.AtRisk())
				}
			}
			size := 1 + r.IntN(6)
			if r.IntN(100) < 3 {
				size = 20 + r.IntN(60) // many groups in one message
			}
			rc := make([]recipients.Rcpt, size)
			for i := range rc {
				rc[i] = recipients.Rcpt{ID: pool[r.IntN(len(pool))], Detail: strconv.Itoa(r.IntN(3))}
			}
			spam := r.IntN(100) < 35
			po = pop.Apply(now, rc, spam, po[:0])
			ro, hours, err = s.ApplyHours(ctx, now, rc, spam, ro[:0], hours[:0])
			if err == nil && len(hours) != len(ro) {
				t.Fatalf("%d hours for %d outcomes", len(hours), len(ro))
			}
			if err != nil {
				t.Fatal(err)
			}
			if len(po) != len(ro) {
				t.Fatalf("seed %d msg %d: %d outcomes in memory, %d in Redis", seed, m, len(po), len(ro))
			}
			for i := range po {
				a, b := po[i], ro[i]
				if a.Kind != b.Kind || a.ID != b.ID || a.Detail != b.Detail || a.Dormant != b.Dormant {
					t.Fatalf("seed %d msg %d rcpt %d (spam %v, %s): memory %+v, Redis %+v", seed, m, i, spam, now, a, b)
				}
				tal.Tally(now, &ro[i], "", hours[i])
				pop.Spent(&po[i])
				s.Spent(&ro[i])
				tal.Spent(&ro[i])
			}
			if !forgot && (tal.AtRisk() != pop.AtRisk() || tal.Tracked() != pop.Tracked()) {
				t.Fatalf("seed %d msg %d: at risk %d tracked %d in memory, %d %d in a tally of Redis's outcomes", seed, m, pop.AtRisk(), pop.Tracked(), tal.AtRisk(), tal.Tracked())
			}
			if pop.AtRisk() != s.AtRisk() {
				t.Fatalf("seed %d msg %d: at risk %d in memory, %d in Redis", seed, m, pop.AtRisk(), s.AtRisk())
			}
		}
		// Another instance reads the same fleet count.
		other := tg.open(t, Options{Space: s.o.Space, Warmup: o.Warmup, Client: client, Groups: groups})
		if n, err := other.Mature(ctx, hr); err != nil || n != pop.AtRisk() {
			t.Fatalf("seed %d: another instance reads %d at risk (%v), want %d", seed, n, err, pop.AtRisk())
		}
		if seed == 0 {
			t.Logf("at risk at the end: %d of %d addresses", pop.AtRisk(), pop.Tracked())
		}
	}
}

// establish gives n new addresses their first mail and matures them.
func establish(t *testing.T, s *Store, n int, r *mrand.Rand) []recipients.Rcpt {
	rc := make([]recipients.Rcpt, n)
	for i := range rc {
		rc[i].ID = randID(r)
	}
	ctx := context.Background()
	for i := 0; i < n; i += 100 {
		if _, err := s.Apply(ctx, t0, rc[i:min(n, i+100)], false, nil); err != nil {
			t.Fatal(err)
		}
	}
	if got, err := s.Mature(ctx, hourOf(t0.Add(s.o.Warmup+2*time.Hour))); err != nil || got != n {
		t.Fatalf("at risk %d (%v), want %d", got, err, n)
	}
	return rc
}

// Many goroutines on two instances (two clients, their own connections)
// send the first spam of the same addresses at the same instant: each
// address is exactly one instance's FirstSpam, and the fleet's at-risk
// count drops by exactly the number of addresses.
func testRace(t *testing.T, tg target, client string) {
	const n, workers = 300, 8
	a := tg.open(t, Options{Warmup: time.Hour, Client: client})
	b := tg.open(t, Options{Space: a.o.Space, Warmup: time.Hour, Client: client})
	rc := establish(t, a, n, mrand.New(mrand.NewPCG(7, 7)))
	at := t0.Add(3 * time.Hour)
	var first sync.Map
	var firsts, spams atomic.Int64
	var wg sync.WaitGroup
	start := make(chan struct{})
	for w := range 2 * workers {
		st := a
		if w%2 == 1 {
			st = b
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			r := mrand.New(mrand.NewPCG(uint64(w), 1))
			order := r.Perm(n)
			<-start
			var out []recipients.Outcome
			for i := 0; i < n; i += 3 {
				var msg []recipients.Rcpt
				for _, j := range order[i:min(n, i+3)] {
					msg = append(msg, rc[j])
				}
				var err error
				out, err = st.Apply(context.Background(), at, msg, true, out[:0])
				if err != nil {
					t.Error(err)
					return
				}
				for _, oc := range out {
					switch oc.Kind {
					case recipients.FirstSpam:
						firsts.Add(1)
						if _, dup := first.LoadOrStore(oc.ID, w); dup {
							t.Errorf("second FirstSpam for %s (worker %d)", oc.ID, w)
						}
					case recipients.Spam:
						spams.Add(1)
					default:
						t.Errorf("outcome %d in the race", oc.Kind)
					}
				}
			}
		}()
	}
	close(start)
	wg.Wait()
	if firsts.Load() != n || spams.Load() != int64(2*workers-1)*n {
		t.Fatalf("%d first spams and %d spams, want %d and %d", firsts.Load(), spams.Load(), n, (2*workers-1)*n)
	}
	if got, err := b.Mature(context.Background(), hourOf(at)); err != nil || got != 0 {
		t.Fatalf("at risk after the race: %d (%v), want 0", got, err)
	}
}

// Forget drops silent addresses from the state and the at-risk count,
// and one that comes back is new.
func testForget(t *testing.T, tg target, client string) {
	ctx := context.Background()
	s := tg.open(t, Options{Warmup: time.Hour, ForgetAfter: 5 * 24 * time.Hour, Client: client})
	rc := establish(t, s, 40, mrand.New(mrand.NewPCG(3, 3)))
	later := t0.Add(3 * 24 * time.Hour)
	if _, err := s.Apply(ctx, later, rc[:10], false, nil); err != nil {
		t.Fatal(err)
	}
	gone := t0.Add(6 * 24 * time.Hour)
	n, err := s.Forget(ctx, gone)
	if err != nil || n != 30 || s.AtRisk() != 10 {
		t.Fatalf("forgot %d (%v), at risk %d; want 30 and 10", n, err, s.AtRisk())
	}
	out, err := s.Apply(ctx, gone, rc[9:11], true, nil)
	if err != nil || out[0].Kind != recipients.FirstSpam || out[1].Kind != recipients.NewSpam {
		t.Fatalf("after forgetting: %+v (%v)", out, err)
	}
}

// Two processes (this test binary run twice) race on the first spams of
// the same addresses: each address is exactly one process's FirstSpam.
func TestTwoProcesses(t *testing.T) {
	if os.Getenv("REDISSTORE_CHILD") != "" {
		t.Skip("in a child")
	}
	tg := standalone(t)
	const n = 500
	a := tg.open(t, Options{Warmup: time.Hour})
	rc := establish(t, a, n, mrand.New(mrand.NewPCG(9, 9)))
	var ids []string
	for _, r := range rc {
		ids = append(ids, r.ID.String())
	}
	spec := fmt.Sprintf("%s %x %s", tg.url, a.o.Space, strings.Join(ids, ","))
	startAt := time.Now().Add(2 * time.Second).UnixNano()
	var cmds []*exec.Cmd
	var outs []io.Reader
	for i := range 2 {
		cmd := exec.Command(os.Args[0], "-test.run=^TestChildSpam$", "-test.v")
		cmd.Env = append(os.Environ(), "REDISSTORE_CHILD="+spec, "REDISSTORE_START="+strconv.FormatInt(startAt, 10),
			"REDISSTORE_CLIENT="+clients[i])
		stdout, err := cmd.StdoutPipe()
		if err != nil {
			t.Fatal(err)
		}
		cmd.Stderr = os.Stderr
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		cmds = append(cmds, cmd)
		outs = append(outs, stdout)
	}
	got := map[string]int{}
	perChild := make([]int, 2)
	for i, o := range outs {
		sc := bufio.NewScanner(o)
		for sc.Scan() {
			if id, ok := strings.CutPrefix(sc.Text(), "FIRSTSPAM "); ok {
				got[id]++
				perChild[i]++
			}
		}
	}
	for i, c := range cmds {
		if err := c.Wait(); err != nil {
			t.Fatalf("child %d: %v", i, err)
		}
	}
	for _, id := range ids {
		if got[id] != 1 {
			t.Errorf("address %s: %d first spams", id, got[id])
		}
	}
	if len(got) != n {
		t.Errorf("%d addresses had first spams, want %d", len(got), n)
	}
	t.Logf("first spams seen by each process: %v", perChild)
}

// TestChildSpam is the child of TestTwoProcesses.
func TestChildSpam(t *testing.T) {
	spec := os.Getenv("REDISSTORE_CHILD")
	if spec == "" {
		t.Skip("only as TestTwoProcesses's child")
	}
	f := strings.Fields(spec)
	var o Options
	o.URL, o.Warmup, o.Timeout, o.Client = f[0], time.Hour, 10*time.Second, os.Getenv("REDISSTORE_CLIENT")
	if _, err := hex.Decode(o.Space[:], []byte(f[1])); err != nil {
		t.Fatal(err)
	}
	var rc []recipients.Rcpt
	for _, h := range strings.Split(f[2], ",") {
		id, err := addr.ParseID(h)
		if err != nil {
			t.Fatal(err)
		}
		rc = append(rc, recipients.Rcpt{ID: id})
	}
	s, err := Open(context.Background(), o)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	startAt, _ := strconv.ParseInt(os.Getenv("REDISSTORE_START"), 10, 64)
	time.Sleep(time.Until(time.Unix(0, startAt)))
	var wg sync.WaitGroup
	var mu sync.Mutex
	w := bufio.NewWriter(os.Stdout)
	for g := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := g; i < len(rc); i += 4 {
				out, err := s.Apply(context.Background(), t0.Add(3*time.Hour), rc[i:i+1], true, nil)
				if err != nil {
					t.Error(err)
					return
				}
				if out[0].Kind == recipients.FirstSpam {
					mu.Lock()
					fmt.Fprintf(w, "FIRSTSPAM %s\n", out[0].ID)
					mu.Unlock()
				}
			}
		}()
	}
	wg.Wait()
	w.Flush()
}

// freezer is a TCP proxy to Redis that can stop forwarding: a Redis that
// hangs.
type freezer struct {
	l      net.Listener
	frozen atomic.Bool
}

func newFreezer(t *testing.T, to string) *freezer {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	f := &freezer{l: l}
	t.Cleanup(func() { l.Close() })
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			up, err := net.Dial("tcp", to)
			if err != nil {
				c.Close()
				continue
			}
			pump := func(dst, src net.Conn) {
				defer dst.Close()
				defer src.Close()
				buf := make([]byte, 32<<10)
				for {
					n, err := src.Read(buf)
					for f.frozen.Load() {
						time.Sleep(5 * time.Millisecond)
					}
					if n > 0 {
						if _, err := dst.Write(buf[:n]); err != nil {
							return
						}
					}
					if err != nil {
						return
					}
				}
			}
			go pump(up, c)
			go pump(c, up)
		}
	}()
	return f
}

// A Redis that stops answering holds a message no longer than the
// deadline: the context's, or Options.Timeout without one.
func TestDeadline(t *testing.T) {
	raddr := testkit.Redis(t)
	for _, c := range clients {
		t.Run(c, func(t *testing.T) {
			f := newFreezer(t, raddr)
			s := target{url: "redis://" + f.l.Addr().String()}.open(t, Options{Warmup: time.Hour, Client: c, Timeout: 300 * time.Millisecond})
			rc := []recipients.Rcpt{{ID: randID(mrand.New(mrand.NewPCG(1, 2)))}}
			if _, err := s.Apply(context.Background(), t0, rc, false, nil); err != nil {
				t.Fatal(err)
			}
			f.frozen.Store(true)
			prev := []recipients.Outcome{{Kind: recipients.Mail}}
			for _, tc := range []struct {
				name string
				ctx  func() (context.Context, context.CancelFunc)
				max  time.Duration
			}{
				{"context deadline", func() (context.Context, context.CancelFunc) {
					return context.WithTimeout(context.Background(), 100*time.Millisecond)
				}, 90 * time.Millisecond},
				{"Options.Timeout", func() (context.Context, context.CancelFunc) { return context.Background(), func() {} }, 290 * time.Millisecond},
			} {
				ctx, cancel := tc.ctx()
				begin := time.Now()
				out, err := s.Apply(ctx, t0.Add(time.Minute), rc, true, prev)
				took := time.Since(begin)
				cancel()
				if err == nil || len(out) != 1 {
					t.Fatalf("%s: Apply against a frozen Redis: %v, %d outcomes", tc.name, err, len(out))
				}
				// Never longer than the deadline (a client may fail
				// sooner: rueidis, its connection broken by the last
				// timeout, does).
				if took > tc.max+time.Second {
					t.Fatalf("%s: returned after %s: %v", tc.name, took, err)
				}
				t.Logf("%s: %v after %s", tc.name, err, took.Round(time.Millisecond))
			}
			// Once Redis answers again, so does the store.
			f.frozen.Store(false)
			deadline := time.Now().Add(10 * time.Second)
			for {
				out, err := s.Apply(context.Background(), t0.Add(2*time.Minute), rc, false, nil)
				if err == nil {
					// The frozen calls may or may not have run.
					if k := out[0].Kind; k != recipients.Mail && k != recipients.Spam {
						t.Fatalf("after the freeze: %v", k)
					}
					break
				}
				if time.Now().After(deadline) {
					t.Fatalf("Redis answers again, the store does not: %v", err)
				}
				time.Sleep(50 * time.Millisecond)
			}
		})
	}
}

func TestParseURL(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want URL
		err  string
	}{
		{"redis://127.0.0.1:6380/2", URL{Addr: "127.0.0.1:6380", DB: 2}, ""},
		{"redis://redis.example", URL{Addr: "redis.example:6379"}, ""},
		{"rediss://u:s3cret@[::1]:7000", URL{Addr: "[::1]:7000", User: "u", Password: "s3cret", TLS: true}, ""},
		{"redis://spamsurge@h:1", URL{Addr: "h:1", User: "spamsurge"}, ""},
		{"redis://:s3cret@h:1", URL{Addr: "h:1", Password: "s3cret"}, ""},
		{"http://h:1", URL{}, "scheme"},
		{"redis://:s3cret@/0", URL{}, "no host"},
		{"redis://h:1/x", URL{}, "database"},
	} {
		got, err := ParseURL(tc.in)
		if tc.err != "" {
			if err == nil || !strings.Contains(err.Error(), tc.err) || strings.Contains(err.Error(), "s3cret") {
				t.Errorf("%s: error %v, want one about %q without the password", tc.in, err, tc.err)
			}
			continue
		}
		if err != nil || got != tc.want {
			t.Errorf("%s: %+v (%v), want %+v", tc.in, got, err, tc.want)
		}
	}
}

// A password from the URL or from Options.Password (the password file)
// opens a Redis that requires one; a wrong one fails at Open.
func TestPassword(t *testing.T) {
	bin := testkit.Need(t, "redis-server", "redis-server", "/usr/bin/redis-server")
	raddr, stop, err := testkit.StartRedis(bin, t.TempDir(), "--requirepass", "s3cret")
	if err != nil {
		t.Fatal(err)
	}
	defer stop()
	pwFile := t.TempDir() + "/pw"
	os.WriteFile(pwFile, []byte("s3cret\n"), 0o600)
	pw, err := ReadPasswordFile(pwFile)
	if err != nil || pw != "s3cret" {
		t.Fatalf("password file: %q, %v", pw, err)
	}
	for _, c := range clients {
		target{url: "redis://:s3cret@" + raddr}.open(t, Options{Client: c})
		target{url: "redis://" + raddr}.open(t, Options{Client: c, Password: pw})
		_, err := Open(context.Background(), Options{URL: "redis://:wrong@" + raddr, Client: c, Timeout: 2 * time.Second})
		if err == nil {
			t.Fatalf("%s: wrong password accepted", c)
		}
	}
}

// Nothing in Redis reveals an address: keys are the key fingerprint and
// hash bytes, fields 6 bytes of the keyed hash, values times.
func TestKeysHoldNoAddress(t *testing.T) {
	tg := standalone(t)
	k, err := addr.NewKey([]byte(strings.Repeat("k", 32)))
	if err != nil {
		t.Fatal(err)
	}
	s := tg.open(t, Options{Space: k.Fingerprint(), Warmup: time.Hour})
	plain := []string{"alice@example.org", "bob@shop.example"}
	var rc []recipients.Rcpt
	for _, p := range plain {
		rc = append(rc, recipients.Rcpt{ID: k.Hash(p), Detail: "shop", Domain: "example.org"})
	}
	if _, err := s.Apply(context.Background(), t0, rc, false, nil); err != nil {
		t.Fatal(err)
	}
	c, err := rueidis.NewClient(rueidis.ClientOption{InitAddress: []string{strings.TrimPrefix(tg.url, "redis://")}, ForceSingleClient: true, DisableCache: true})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	ctx := context.Background()
	keys, err := c.Do(ctx, c.B().Keys().Pattern("*").Build()).AsStrSlice()
	if err != nil {
		t.Fatal(err)
	}
	var dump strings.Builder
	for _, key := range keys {
		dump.WriteString(key)
		m, err := c.Do(ctx, c.B().Hgetall().Key(key).Build()).AsStrMap()
		if err != nil {
			t.Fatal(err)
		}
		for f, v := range m {
			dump.WriteString(f + v)
			if strings.HasSuffix(key, "r") {
				continue
			}
			if len(f) != fieldLen || len(v) != 6 {
				t.Errorf("bucket %s: field of %d bytes, value of %d", key, len(f), len(v))
			}
		}
	}
	for _, p := range append(plain, "alice", "example", "shop") {
		if strings.Contains(dump.String(), p) {
			t.Errorf("Redis holds %q", p)
		}
	}
	if want := 2 + 2; len(keys) > want {
		t.Errorf("%d keys for 2 addresses: %v", len(keys), keys)
	}
}

// The ACL of docs/redis.md is enough: a user with only those commands on
// keys ss{* can Apply, Mature and Forget, with either client.
func TestACL(t *testing.T) {
	raddr := testkit.Redis(t)
	admin, err := rueidis.NewClient(rueidis.ClientOption{InitAddress: []string{raddr}, ForceSingleClient: true, DisableCache: true})
	if err != nil {
		t.Fatal(err)
	}
	defer admin.Close()
	// docs/redis.md, Access control.
	acl := "spamsurge on >s3cret ~ss{* +evalsha +eval +hget +hset +hdel +hincrby +hgetall +ping +hello +cluster|slots +cluster|shards"
	ctx := context.Background()
	if err := admin.Do(ctx, admin.B().Arbitrary("ACL", "SETUSER").Args(strings.Fields(acl)...).Build()).Error(); err != nil {
		t.Fatal(err)
	}
	for _, c := range clients {
		s := target{url: "redis://spamsurge:s3cret@" + raddr}.open(t, Options{Client: c, Warmup: time.Hour, ForgetAfter: 48 * time.Hour})
		rc := []recipients.Rcpt{{ID: randID(mrand.New(mrand.NewPCG(5, 5)))}}
		if _, err := s.Apply(ctx, t0, rc, false, nil); err != nil {
			t.Fatalf("%s: Apply: %v", c, err)
		}
		if _, err := s.Forget(ctx, t0.Add(96*time.Hour)); err != nil {
			t.Fatalf("%s: Forget: %v", c, err)
		}
	}
	// And nothing else: another key is refused.
	u, err := rueidis.NewClient(rueidis.ClientOption{InitAddress: []string{raddr}, Username: "spamsurge", Password: "s3cret", ForceSingleClient: true, DisableCache: true})
	if err != nil {
		t.Fatal(err)
	}
	defer u.Close()
	if err := u.Do(ctx, u.B().Get().Key("other").Build()).Error(); err == nil || !strings.Contains(err.Error(), "NOPERM") {
		t.Fatalf("GET other as spamsurge: %v", err)
	}
}

// The journal: what one instance appends, another reads, in order and
// byte for byte (binary data included), from any position; a read with
// nothing new waits its block and returns empty.
func testJournal(t *testing.T, tg target, client string) {
	ctx := context.Background()
	a := tg.open(t, Options{Client: client})
	b := tg.open(t, Options{Space: a.o.Space, Client: client})
	var want [][]byte
	for i := range 300 {
		want = append(want, []byte("entry\x00\xff"+strconv.Itoa(i)))
	}
	if err := a.Append(ctx, want[:100], 0); err != nil {
		t.Fatal(err)
	}
	if err := b.Append(ctx, want[100:], 10000); err != nil {
		t.Fatal(err)
	}
	var got []Entry
	after := "0"
	for len(got) < len(want) {
		es, err := b.Read(ctx, after, 128, 0)
		if err != nil {
			t.Fatal(err)
		}
		if len(es) == 0 {
			t.Fatalf("read %d of %d entries, then nothing", len(got), len(want))
		}
		got = append(got, es...)
		after = es[len(es)-1].ID
	}
	for i := range want {
		if string(got[i].Data) != string(want[i]) {
			t.Fatalf("entry %d is %q, want %q", i, got[i].Data, want[i])
		}
	}
	start := time.Now()
	es, err := a.Read(ctx, after, 10, 200*time.Millisecond)
	if err != nil || len(es) != 0 {
		t.Fatalf("read past the end: %d entries, %v", len(es), err)
	}
	if time.Since(start) < 150*time.Millisecond {
		t.Fatalf("a blocking read with nothing to read returned after %v", time.Since(start))
	}
	// A read waiting when an entry comes returns it.
	done := make(chan []Entry, 1)
	go func() {
		es, _ := a.Read(ctx, after, 10, 3*time.Second)
		done <- es
	}()
	time.Sleep(50 * time.Millisecond)
	if err := b.Append(ctx, [][]byte{[]byte("late")}, 0); err != nil {
		t.Fatal(err)
	}
	if es := <-done; len(es) != 1 || string(es[0].Data) != "late" {
		t.Fatalf("the waiting read got %+v", es)
	}
}

// The fleet's key: the first instance records its fingerprint, the same
// key is accepted again, another is refused with an error that says why.
func testClaim(t *testing.T, tg target, client string) {
	ctx := context.Background()
	a := tg.open(t, Options{Client: client})
	if err := deleteKey(a, FleetKey); err != nil {
		t.Fatal(err)
	}
	if err := a.Claim(ctx); err != nil {
		t.Fatal(err)
	}
	if err := tg.open(t, Options{Space: a.o.Space, Client: client}).Claim(ctx); err != nil {
		t.Fatalf("the same key refused: %v", err)
	}
	err := tg.open(t, Options{Client: client}).Claim(ctx)
	if !errors.Is(err, ErrOtherKey) || !strings.Contains(err.Error(), "store.key_file") {
		t.Fatalf("another key: %v", err)
	}
	if err := deleteKey(a, FleetKey); err != nil {
		t.Fatal(err)
	}
}

var delScript = newScript("redis.call('DEL', KEYS[1]) return {1}")

func deleteKey(s *Store, key string) error {
	return s.d.run(context.Background(), delScript, []call{{keys: []string{key}}}, make([][]int64, 1))
}

// The snapshot: absent, written, read back byte for byte (binary blobs,
// an empty one), never replaced by an older position; the journal's
// first and last entries and AppendOne's id.
func testSnapshot(t *testing.T, tg target, client string) {
	ctx := context.Background()
	a := tg.open(t, Options{Client: client})
	if snap, err := a.GetSnapshot(ctx); snap != nil || err != nil {
		t.Fatalf("no snapshot yet: %v, %v", snap, err)
	}
	if _, ok, err := a.Last(ctx); ok || err != nil {
		t.Fatalf("empty journal: last %v, %v", ok, err)
	}
	first, err := a.AppendOne(ctx, []byte("one"), 0)
	if err != nil {
		t.Fatal(err)
	}
	last, err := a.AppendOne(ctx, []byte("two"), 0)
	if err != nil || CompareIDs(last, first) <= 0 {
		t.Fatalf("ids %s then %s: %v", first, last, err)
	}
	if e, ok, err := a.First(ctx); !ok || err != nil || e.ID != first || string(e.Data) != "one" {
		t.Fatalf("first %+v %v %v", e, ok, err)
	}
	if e, ok, err := a.Last(ctx); !ok || err != nil || e.ID != last || string(e.Data) != "two" {
		t.Fatalf("last %+v %v %v", e, ok, err)
	}
	blob := []byte("\x00\xff{\"x\":1}")
	at := time.Now().Truncate(time.Millisecond)
	if ok, err := a.PutSnapshot(ctx, Snapshot{Position: first, Written: at, Blobs: map[string][]byte{"state": blob, "gone": nil}}); !ok || err != nil {
		t.Fatalf("first snapshot: %v %v", ok, err)
	}
	if ok, err := a.PutSnapshot(ctx, Snapshot{Position: "0", Blobs: map[string][]byte{"state": []byte("older")}}); ok || err != nil {
		t.Fatalf("an older snapshot replaced a newer: %v %v", ok, err)
	}
	if ok, err := a.PutSnapshot(ctx, Snapshot{Position: first, Blobs: map[string][]byte{"state": []byte("same")}}); ok || err != nil {
		t.Fatalf("a snapshot at the same position replaced it: %v %v", ok, err)
	}
	snap, err := a.GetSnapshot(ctx)
	if err != nil || snap.Position != first || string(snap.Blobs["state"]) != string(blob) || len(snap.Blobs["gone"]) != 0 || !snap.Written.Equal(at) {
		t.Fatalf("read back %+v, %v", snap, err)
	}
	if ok, err := a.PutSnapshot(ctx, Snapshot{Position: last, Blobs: map[string][]byte{"other": []byte("x")}}); !ok || err != nil {
		t.Fatalf("a newer snapshot: %v %v", ok, err)
	}
	if snap, _ = a.GetSnapshot(ctx); snap.Position != last || snap.Blobs["state"] != nil || string(snap.Blobs["other"]) != "x" {
		t.Fatalf("the newer snapshot did not replace the older whole: %+v", snap)
	}
}

func TestCompareIDs(t *testing.T) {
	for _, c := range []struct {
		a, b string
		want int
	}{{"0", "1-0", -1}, {"1-0", "0", 1}, {"5-1", "5-1", 0}, {"5-2", "5-10", -1}, {"10-0", "9-99", 1}, {"0", "0-0", 0}} {
		if got := CompareIDs(c.a, c.b); got != c.want {
			t.Errorf("CompareIDs(%s, %s) = %d, want %d", c.a, c.b, got, c.want)
		}
	}
}
