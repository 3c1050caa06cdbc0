package e2e

import (
	"bytes"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/spamsurge/spamsurge/internal/testkit"
)

const gtube = "XJS*C4JDBQADN1.NSBN3*2IDNEN*GTUBE-STANDARD-ANTI-UBE-TEST-EMAIL*C.34X"

// TestRealRspamdPush: Debian's rspamd 3.4 with deploy/rspamd's
// metadata_exporter rule (its URL pointed at the test's spamsurge, the
// token as its password) posts every scanned message to a real `spamsurge
// serve` with the proxy off and a token file. A message a test rule scores
// as spam (to 3 recipients) and a clean one (to 12: more than rspamd's log
// line names) arrive with all their recipients; GTUBE does not (rspamd
// skips the task, and metadata_exporter exports no skipped task); a scan
// without recipients is a no-op. rspamd logs no failed post.
func TestRealRspamdPush(t *testing.T) {
	bin := testkit.Need(t, "rspamd", "rspamd", "/usr/bin/rspamd")
	// Debian's rspamd package keeps its plugins here.
	plugin := "/usr/share/rspamd/plugins/metadata_exporter.lua"
	if _, err := os.Stat(plugin); err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("rspamd's metadata_exporter plugin: %v (install Debian's rspamd package)", err)
		}
		t.Skipf("*** SKIPPED: rspamd's metadata_exporter plugin: %v (install Debian's rspamd package) ***", err)
	}
	dir := t.TempDir()
	addr := testkit.FreePort(t)
	token := "t0ken-for-rspamd"
	tokenFile := testkit.WriteFile(t, dir, "token", token+"\n")
	d := startServeOnly(t, dir, addr, fmt.Sprintf("smtp:\n  listen: \"\"\nhttp:\n  listen: %s\n  token_file: %s\nstore:\n  path: %s\n",
		addr, tokenFile, filepath.Join(dir, "data")))

	// The documented rule, pointed at this spamsurge.
	snippet, err := os.ReadFile("../deploy/rspamd/local.d/metadata_exporter.conf")
	if err != nil {
		t.Fatal(err)
	}
	rule := string(snippet)
	for _, r := range [][2]string{
		{"http://127.0.0.1:9464/api/v1/rspamd", "http://" + addr + "/api/v1/rspamd"},
		{`# user = "rspamd";`, `user = "rspamd";`},
		{`# password = "TOKEN";`, fmt.Sprintf("password = %q;", token)},
	} {
		if !strings.Contains(rule, r[0]) {
			t.Fatalf("deploy/rspamd/local.d/metadata_exporter.conf no longer has %s", r[0])
		}
		rule = strings.Replace(rule, r[0], r[1], 1)
	}
	testkit.WriteFile(t, dir, "metadata_exporter.conf", rule)
	// A rule that scores what the test marks as spam: GTUBE cannot be
	// the spam here, rspamd does not export it.
	testkit.WriteFile(t, dir, "test.lua", `rspamd_config.SPAMSURGE_TEST_SPAM = {
  callback = function(task) return task:get_header('X-Test-Spam') ~= nil end,
  score = 20.0,
  description = 'spamsurge e2e: marked as spam',
}
`)
	normal := testkit.FreePort(t)
	conf := testkit.WriteFile(t, dir, "rspamd.conf", fmt.Sprintf(`options {
  pidfile = "%[1]s/rspamd.pid";
  dns { nameserver = ["127.0.0.1:9"]; timeout = 0.1s; retransmits = 1; }
}
logging { type = "file"; filename = "%[1]s/rspamd.log"; level = "info"; }
worker "normal" { bind_socket = "%[2]s"; count = 1; }
actions { reject = 15; add_header = 6; greylist = 4; }
lua = "%[1]s/test.lua";
modules { path = "%[3]s"; }
# As /etc/rspamd/modules.d/metadata_exporter.conf includes local.d's.
metadata_exporter { .include "%[1]s/metadata_exporter.conf" }
`, dir, normal, plugin))
	args := []string{"-f", "-c", conf}
	if os.Geteuid() == 0 {
		args = append(args, "-i", "-u", "root", "-g", "root")
	}
	testkit.StartGroup(t, nil, bin, args...)
	testkit.WaitRspamd(t, normal)

	scan := func(id string, hdr string, body string, rcpt ...string) string {
		t.Helper()
		msg := "From: Anna <anna@example.org>\r\nTo: team@example.net\r\nSubject: minutes " + id + "\r\n" + hdr +
			"Message-ID: <" + id + "@example.org>\r\nDate: " + time.Now().UTC().Format(time.RFC1123Z) + "\r\n\r\n" + body + "\r\n"
		for i := 0; ; i++ {
			req, _ := http.NewRequest("POST", "http://"+normal+"/checkv2", strings.NewReader(msg))
			req.Header.Set("From", "sender@example.org")
			req.Header.Set("IP", "203.0.113.9")
			for _, r := range rcpt {
				req.Header.Add("Rcpt", r)
			}
			resp, err := http.DefaultClient.Do(req)
			if err == nil {
				b, _ := io.ReadAll(resp.Body)
				resp.Body.Close()
				if resp.StatusCode == 200 {
					return string(b)
				}
				err = fmt.Errorf("%s: %s", resp.Status, b)
			}
			if i == 50 { // the worker may still be starting
				t.Fatal(err)
			}
			time.Sleep(100 * time.Millisecond)
		}
	}
	accepted := `spamsurge_rspamd_messages_total{result="accepted"}`
	if r := scan("gtube1", "", gtube, "g1@example.net", "g2@example.net"); !strings.Contains(r, `"is_skipped":true`) {
		t.Fatalf("GTUBE not skipped by rspamd: %s", r)
	}
	if r := scan("spam1", "X-Test-Spam: yes\r\n", "Buy now.", "s1@example.net", "s2+shop@example.net", "s3@example.net"); !strings.Contains(r, `"action":"reject"`) {
		t.Fatalf("the test spam was not rejected: %s", r)
	}
	var many []string
	for i := 1; i <= 12; i++ {
		many = append(many, fmt.Sprintf("list%02d@example.net", i))
	}
	if r := scan("clean1", "", "Hello, the minutes are attached.", many...); !strings.Contains(r, `"action":"no action"`) {
		t.Fatalf("the clean message was not passed: %s", r)
	}
	scan("norcpt1", "", "No envelope.")
	// rspamd answers after its post (the task waits for it).
	d.waitMetric(t, accepted, 2)
	for r, want := range map[string]float64{"skipped": 1, "invalid": 0, "dropped": 0} {
		if v := d.metric(t, `spamsurge_rspamd_messages_total{result="`+r+`"}`); v != want {
			t.Errorf("rspamd_messages_total{result=%q} = %v, want %v", r, v, want)
		}
	}
	// The detector counted them: the 3 spam recipients are all new.
	d.waitMetric(t, "spamsurge_dictionary_recipients_total", 3)

	// Every recipient came (the daemon's debug line per observation).
	for _, want := range []string{`"rcpt":3,"rejected":0,"spam":true`, `"rcpt":12,"rejected":0,"spam":false`} {
		if !strings.Contains(d.out.String(), want) {
			t.Errorf("no observation with %s in the daemon's log", want)
		}
	}
	for _, l := range strings.Split(d.out.String(), "\n") {
		if strings.Contains(l, "@example.net") {
			t.Errorf("an address in the daemon's log: %s", l)
		}
	}

	rlog, _ := os.ReadFile(filepath.Join(dir, "rspamd.log"))
	for _, bad := range []string{"unexpected http status", "in http callback", "No push backend", "invalid"} {
		if bytes.Contains(rlog, []byte(bad)) {
			t.Errorf("rspamd logged %q:\n%s", bad, rlog)
		}
	}
	if !bytes.Contains(rlog, []byte("init lua module metadata_exporter")) {
		t.Errorf("rspamd did not load metadata_exporter:\n%s", rlog)
	}
}
