package logs

import (
	"fmt"
	"testing"
	"time"
)

// BenchmarkParse: lines per second (wall clock, and per CPU second of the
// process: run it with -cpu 1) on one core for each format, over a
// log of verdict lines (distinct stamps and recipients) and, one in four,
// the filter's other lines, as a real log has.
func BenchmarkParse(b *testing.B) {
	for _, tc := range []struct {
		f           Format
		line, other string
	}{
		{Rspamd, "2026-12-02 03:08:%02d #28563(normal) <6aceb0>; task; rspamd_task_write_log: id: <m%d@example.org>, qid: <4XyzQ%d>, ip: 203.0.113.9, from: <sender@example.org>, (default: F (no action): [1.20/15.00] [DMARC_NA(0.00){example.org;},MIME_GOOD(-0.10){text/plain;},R_SPF_ALLOW(-0.20){+ip4:203.0.113.0/24;}]), len: 2161, time: 15.123ms, dns req: 12, digest: <5e1d103d398e7f13e001890eea13869c> rcpts: <u%d@example.net,v@example.net>,  mime_rcpt: <u@example.net>, ",
			"2026-12-02 03:08:19 #28563(normal) <6aceb0>; lua; dmarc.lua:123: no DMARC record for example.org"},
		{Amavis, "Dec  2 03:10:%02d mx amavis[29093]: (29093-%d) Passed CLEAN {RelayedInbound}, [198.51.100.4]:41022 [198.51.100.4] <sender@example.org> -> <u%d@example.net>,<v%d@example.net>, Queue-ID: 4Xyz, Message-ID: <m@example.org>, mail_id: 56rdZ_Qk6hzJ, Hits: -1.2, size: 2163, queued_as: 4Abc, 118 ms",
			"Dec  2 03:10:36 mx amavis[29093]: (29093-01) Checking: ugMK3FAdV9xl [198.51.100.4] <sender@example.org> -> <u@example.net>"},
		{Spamd, "Dec  2 03:09:%02d mx spamd[28698]: spamd: result: . -1 - DKIM_SIGNED,DKIM_VALID,SPF_PASS scantime=0.1,size=2161,user=u%d@example.net,uid=65534,required_score=5.0,rhost=localhost,raddr=127.0.0.1,rport=%d,mid=<m%d@example.org>,autolearn=no autolearn_force=no",
			"Dec  2 03:09:17 mx spamd[28698]: spamd: connection from localhost [127.0.0.1]:55570 to port 783, fd 5"},
	} {
		const n = 4096
		lines := make([][]byte, n)
		for i := range lines {
			if i%4 == 3 {
				lines[i] = []byte(tc.other)
			} else {
				lines[i] = []byte(fmt.Sprintf(tc.line, i/256%60, i, i, i))
			}
		}
		b.Run(string(tc.f), func(b *testing.B) {
			p := &Parser{Format: tc.f, Location: time.UTC, Reference: time.Date(2026, 12, 3, 0, 0, 0, 0, time.UTC)}
			var bytes int64
			for _, l := range lines {
				bytes += int64(len(l)) + 1
			}
			b.SetBytes(bytes / n)
			b.ReportAllocs()
			obs := 0
			cpu0 := cpuTime()
			for i := 0; b.Loop(); i++ {
				if _, err := p.Parse(lines[i%n]); err == nil {
					obs++
				}
			}
			if obs == 0 {
				b.Fatal("no observations")
			}
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "lines/s")
			if cpu := cpuTime() - cpu0; cpu > 0 {
				b.ReportMetric(float64(b.N)/cpu.Seconds(), "lines/cpu-s")
			}
		})
	}
}
