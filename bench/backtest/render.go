package main

import (
	"fmt"
	"hash/fnv"
	"io"
	"strings"
	"time"

	"github.com/spamsurge/spamsurge/ingest"
)

// The formats the renderer writes.
const (
	fmtRspamd     = "rspamd"           // rspamd 3.4's default task line, in its own log file
	fmtRspamdOurs = "rspamd-spamsurge" // the same with spamsurge's log_format (logs.RspamdLogFormat)
	fmtAmavis     = "amavis"           // amavisd-new 2.13's main log line, via syslog (RFC 3164)
)

var formats = []string{fmtRspamd, fmtRspamdOurs, fmtAmavis}

// renderer writes observations as one filter's log lines, one line per
// observation, shaped exactly like the lines ingest/logs/testdata and
// docs/logs.md quote from the real programs. What varies in a real line
// and the detector does not read (pids, queue ids, digests, scores, sizes,
// times) is made up, deterministically from the observation.
type renderer struct {
	format string
	w      io.Writer
	host   string
	// amavis: child processes, each with its own message counter.
	pids [8]int
	seq  [8]int
	n    int
	// Skipped counts observations without a recipient (only refused
	// ones): these logs have no line for them.
	Skipped int
	Last    time.Time
}

func newRenderer(format string, w io.Writer) (*renderer, error) {
	r := &renderer{format: format, w: w, host: "mx1"}
	switch format {
	case fmtRspamd, fmtRspamdOurs, fmtAmavis:
	default:
		return nil, fmt.Errorf("unknown format %q (%s)", format, strings.Join(formats, ", "))
	}
	for i := range r.pids {
		r.pids[i] = 41000 + 37*i
	}
	return r, nil
}

// mix is a deterministic hash of the observation, for the made-up fields.
func mix(o *ingest.Observation, salt string) uint64 {
	h := fnv.New64a()
	fmt.Fprint(h, salt, o.Time.UnixNano(), o.MessageID, o.From)
	for _, r := range o.Rcpt {
		io.WriteString(h, r)
	}
	return h.Sum64()
}

func (r *renderer) write(o *ingest.Observation) error {
	if len(o.Rcpt) == 0 {
		r.Skipped++
		return nil
	}
	r.n++
	r.Last = o.Time
	var line string
	switch r.format {
	case fmtRspamd:
		line = r.rspamd(o)
	case fmtRspamdOurs:
		line = r.rspamdOurs(o)
	case fmtAmavis:
		line = r.amavis(o)
	}
	_, err := io.WriteString(r.w, line+"\n")
	return err
}

// rspamd's own log file: "2026-12-02 03:08:19 #28563(normal) <6aceb0>; task; ".
func (r *renderer) rspamdPrefix(o *ingest.Observation, h uint64) string {
	return fmt.Sprintf("%s #%d(normal) <%06x>; task; rspamd_task_write_log: ", o.Time.UTC().Format("2006-01-02 15:04:05"), 28000+int(h%4000), h>>40&0xffffff)
}

func rspamdAction(o *ingest.Observation, h uint64) (letter, action, score, symbols string) {
	if !o.Spam {
		s := float64(h%300) / 100
		return "F", "no action", fmt.Sprintf("%.2f/15.00", s), "[ARC_NA(0.00){},MIME_GOOD(-0.10){text/plain;},R_SPF_ALLOW(-0.20){+ip4:192.0.2.0/24;}]"
	}
	if h%5 == 0 {
		return "T", "reject", fmt.Sprintf("%.2f/15.00", 15+float64(h%900)/100), "[BAYES_SPAM(5.10){99.99%;},RBL_SPAMHAUS_SBL(4.00){},MIME_HTML_ONLY(0.20){}]"
	}
	return "T", "add header", fmt.Sprintf("%.2f/15.00", 6+float64(h%800)/100), "[BAYES_SPAM(5.10){99.99%;},MIME_HTML_ONLY(0.20){}]"
}

// rspamdRcpts is rspamd 3.4's list: the first 8, then "..." (its
// task_max_elts, not configurable there).
func rspamdRcpts(rcpt []string) string {
	if len(rcpt) > 8 {
		return strings.Join(rcpt[:8], ",") + ",..."
	}
	return strings.Join(rcpt, ",")
}

func trimAngles(s string) string { return strings.TrimSuffix(strings.TrimPrefix(s, "<"), ">") }

// The default log_format:
//
//	id: <MID>, qid: <QID>, ip: IP, from: <SENDER>, (default: S (reject): [15.00/15.00] [GTUBE(0.00){}]), len: 161, time: 115.123ms, dns req: 0, digest: <hex> rcpts: <A,B>,  mime_rcpt: <TO>,
func (r *renderer) rspamd(o *ingest.Observation) string {
	h := mix(o, "rspamd")
	var b strings.Builder
	b.WriteString(r.rspamdPrefix(o, h))
	mid := trimAngles(o.MessageID)
	if mid == "" {
		mid = "undef"
	}
	fmt.Fprintf(&b, "id: <%s>, qid: <%s>", mid, queueID(h))
	if o.ClientIP != "" {
		fmt.Fprintf(&b, ", ip: %s", o.ClientIP)
	}
	if o.From != "" {
		fmt.Fprintf(&b, ", from: <%s>", o.From)
	}
	l, a, s, sym := rspamdAction(o, h)
	fmt.Fprintf(&b, ", (default: %s (%s): [%s] %s), len: %d, time: %d.%03dms, dns req: %d, digest: <%016x%016x> rcpts: <%s>,  mime_rcpt: <%s>, ",
		l, a, s, sym, 900+h%40000, h%900, h>>20%1000, h%12, h, h*0x9e3779b97f4a7c15, rspamdRcpts(o.Rcpt), o.Rcpt[0])
	return b.String()
}

// spamsurge's log_format (docs/logs.md):
//
//	spamsurge: action=<reject> score=<15.00/15.00> qid=<QID> ip=<IP> rcpts=<A,B> from=<SENDER> mid=<MID>
func (r *renderer) rspamdOurs(o *ingest.Observation) string {
	h := mix(o, "rspamd")
	_, a, s, _ := rspamdAction(o, h)
	ip := o.ClientIP
	if ip == "" {
		ip = "undef"
	}
	mid := trimAngles(o.MessageID)
	if mid == "" {
		mid = "undef"
	}
	return r.rspamdPrefix(o, h) + fmt.Sprintf("spamsurge: action=<%s> score=<%s> qid=<%s> ip=<%s> rcpts=<%s> from=<%s> mid=<%s>",
		a, s, queueID(h), ip, strings.Join(o.Rcpt, ","), o.From, mid)
}

// queueID is a Postfix-like queue id.
func queueID(h uint64) string {
	const digits = "0123456789BCDFGHJKLMNPQRSTVWXYZbcdfghjklmnpqrstvwxyz"
	var b [10]byte
	for i := range b {
		b[i] = digits[h%uint64(len(digits))]
		h /= uint64(len(digits))
		if i == 0 {
			h ^= 0x5bd1e995
		}
	}
	return string(b[:])
}

// amavisd-new's main line through syslog (Debian's rsyslog, RFC 3164):
//
//	Dec  2 04:22:46 mx1 amavis[5172]: (05172-02) Blocked SPAM {DiscardedInbound}, [IP] <sender> -> <a>,<b>, Message-ID: <m>, mail_id: 3dHj2ECS2w5c, Hits: 999.999, size: 275, 107 ms
//	Dec  2 04:22:46 mx1 amavis[5172]: (05172-05) Passed SPAMMY {RelayedTaggedInbound}, [IP] <sender> -> <a>, Message-ID: <m>, mail_id: isisrD3MEV6f, Hits: -0.002, size: 287, queued_as: SINK67067, 84 ms
func (r *renderer) amavis(o *ingest.Observation) string {
	h := mix(o, "amavis")
	c := int(h % uint64(len(r.pids)))
	r.seq[c]++
	if r.seq[c] > 20 { // max_requests: the child is replaced
		r.pids[c] += 311
		r.seq[c] = 1
	}
	pid := r.pids[c]
	var b strings.Builder
	fmt.Fprintf(&b, "%s %s amavis[%d]: (%05d-%02d) ", o.Time.UTC().Format(time.Stamp), r.host, pid, pid%100000, r.seq[c])
	blocked := false
	switch {
	case !o.Spam:
		b.WriteString("Passed CLEAN {RelayedInbound}, ")
	case h%3 == 0:
		blocked = true
		b.WriteString("Blocked SPAM {DiscardedInbound}, ")
	default:
		b.WriteString("Passed SPAM {RelayedTaggedInbound}, ")
	}
	if o.ClientIP != "" {
		fmt.Fprintf(&b, "[%s] ", o.ClientIP)
	}
	fmt.Fprintf(&b, "<%s> -> ", o.From)
	for i, a := range o.Rcpt {
		if i > 0 {
			b.WriteByte(',')
		}
		fmt.Fprintf(&b, "<%s>", a)
	}
	if mid := trimAngles(o.MessageID); mid != "" {
		fmt.Fprintf(&b, ", Message-ID: <%s>", mid)
	}
	hits := -2 + float64(h%400)/100
	if o.Spam {
		hits = 6 + float64(h%2000)/100
	}
	fmt.Fprintf(&b, ", mail_id: %s, Hits: %.3f, size: %d, ", mailID(h), hits, 900+h%40000)
	if !blocked {
		fmt.Fprintf(&b, "queued_as: %s, ", queueID(h>>7))
	}
	fmt.Fprintf(&b, "%d ms", 60+h%400)
	return b.String()
}

// mailID is amavisd-new's 12-character mail_id.
func mailID(h uint64) string {
	const digits = "0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ-_"
	var b [12]byte
	x := h
	for i := range b {
		b[i] = digits[x&63]
		x >>= 5
		if i == 6 {
			x = h * 0x9e3779b97f4a7c15
		}
	}
	return string(b[:])
}
