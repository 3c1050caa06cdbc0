package main

import (
	"bufio"
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// sinkDump is what smtp-sink -d writes for m: its own header, then the
// content with CRs and stuffed dots removed, then the empty line of the
// final dot. With truncate > 0 it stops that many bytes early, as a killed
// sink leaves it.
func sinkDump(t *testing.T, m *message, truncate int) []byte {
	t.Helper()
	var data bytes.Buffer
	w := bufio.NewWriter(&data)
	if _, _, err := m.writeData(w, -1); err != nil {
		t.Fatal(err)
	}
	w.Flush()
	var b bytes.Buffer
	b.WriteString("X-Client-Addr: 127.0.0.1\nX-Client-Proto: ESMTP\nX-Helo-Args: proxy.soak.test\nX-Mail-Args: <" + m.from + "> BODY=8BITMIME\n")
	for _, r := range m.rcpts {
		b.WriteString("X-Rcpt-Args: <" + r + ">\n")
	}
	b.WriteString("Received: from proxy.soak.test ([127.0.0.1])\n\tby smtp-sink (smtp-sink) with ESMTP id 1234abcd;\n\tWed,  2 Dec 2026 00:39:21 +0000 (UTC)\n")
	for _, line := range strings.SplitAfter(data.String(), "\r\n") {
		if line == "" {
			continue
		}
		line = strings.TrimSuffix(line, "\r\n")
		line = strings.TrimPrefix(line, ".") // unstuffing
		b.WriteString(line + "\n")
	}
	b.WriteString("\n")
	out := b.Bytes()
	return out[:len(out)-truncate]
}

func testMessage(id string, size int) *message {
	return &message{id: id, from: "s@source.soak.test", rcpts: []string{"a@smtp.soak.test", "b@smtp.soak.test"}, size: size, start: 5, spam: true}
}

func TestHarvester(t *testing.T) {
	dir := t.TempDir()
	write := func(name string, b []byte) {
		if err := os.WriteFile(filepath.Join(dir, name), b, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	write("m.00000001", sinkDump(t, testMessage("soak-smtp-1", 300<<10), 0))
	write("m.00000002", sinkDump(t, testMessage("soak-smtp-2", 5000), 1)) // dot not read yet
	bad := sinkDump(t, testMessage("soak-smtp-3", 5000), 0)
	bad[len(bad)/2] ^= 1
	write("m.00000003", bad)

	h := newHarvester(dir)
	if n := h.scan(false); n != 1 {
		t.Errorf("in progress: %d, want 1", n)
	}
	if m := h.get("soak-smtp-1"); m == nil || m.copies != 1 || m.bad != 0 || !m.idMatch || m.rcpts != 2 {
		t.Errorf("soak-smtp-1 at the sink: %+v, want one intact copy for 2 recipients", m)
	}
	if m := h.get("soak-smtp-2"); m != nil {
		t.Errorf("an unfinished dump was taken: %+v", m)
	}
	if m := h.get("soak-smtp-3"); m == nil || m.bad != 1 {
		t.Errorf("a changed byte was not noticed: %+v", m)
	}
	if _, err := os.Stat(filepath.Join(dir, "m.00000002")); err != nil {
		t.Errorf("the unfinished dump was removed while the sink runs: %v", err)
	}
	if n := h.scan(true); n != 1 {
		t.Errorf("orphans: %d, want 1", n)
	}
	if left, _ := filepath.Glob(filepath.Join(dir, "m.*")); len(left) != 0 {
		t.Errorf("files left: %v", left)
	}
}

func TestCheckDelivery(t *testing.T) {
	dir := t.TempDir()
	now := time.Now()
	l := &lane{name: "smtp", sink: &sink{modes: map[string]int{}, kills: []time.Time{now.Add(-time.Hour)}}, h: newHarvester(dir)}
	led := newLedger()
	add := func(id string, o outcome, dotSent bool, end time.Time, copies int, corrupt bool) {
		m := testMessage(id, 2000)
		led.add(&txRecord{id: id, lane: "smtp", outcome: o, dotSent: dotSent, rcpts: 2, rcptOK: 2, end: end})
		for i := 0; i < copies; i++ {
			b := sinkDump(t, m, 0)
			if corrupt {
				b[len(b)-100] ^= 1
			}
			l.h.take("x", b)
		}
	}
	add("soak-smtp-ok", acked, true, now, 1, false)
	add("soak-smtp-refused", tempfail, true, now, 0, false)
	add("soak-smtp-lost", acked, true, now, 0, false)
	add("soak-smtp-twice", acked, true, now, 2, false)
	add("soak-smtp-window", tempfail, true, now.Add(-time.Hour+2*time.Second), 1, false)
	add("soak-smtp-unacked", tempfail, true, now, 1, false)
	add("soak-smtp-nodot", dropped, false, now, 1, false)
	add("soak-smtp-changed", acked, true, now, 1, true)
	l.h.take("x", sinkDump(t, testMessage("soak-smtp-stranger", 100), 0))

	r := newReport(Config{}, []*lane{l}, nil, led, nil)
	r.checkDelivery()
	got := strings.Join(r.failures, "\n")
	for _, want := range []string{
		"1 messages acknowledged with 250 but not at the next hop (first: soak-smtp-lost)",
		"1 messages at the next hop more than once (first: soak-smtp-twice)",
		"1 messages changed on the way (length or CRC differ at the next hop) (first: soak-smtp-changed)",
		"1 messages at the next hop whose final dot the client never sent (first: soak-smtp-nodot)",
		"1 messages at the next hop without a 250 to the client and no next-hop kill just before (first: soak-smtp-unacked)",
		"1 messages at the next hop that no client sent (first: soak-smtp-stranger)",
	} {
		if !strings.Contains(got, want) {
			t.Errorf("no failure %q; got:\n%s", want, got)
		}
	}
	if len(r.failures) != 6 {
		t.Errorf("%d failures, want 6:\n%s", len(r.failures), got)
	}
	if a := r.ambiguous["smtp"]; len(a) != 1 || !strings.HasPrefix(a[0], "soak-smtp-window") {
		t.Errorf("kill window: %v, want soak-smtp-window only", a)
	}
}
