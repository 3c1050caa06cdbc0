package logs

// Tests against the real filters (Debian's rspamd, spamd, amavisd-new):
// each is started on free 127.0.0.1 ports in a temporary directory with a
// config written here, scans messages written here, and what it really
// logs is parsed and checked against what was sent. Without the programs
// they skip loudly, and fail under CI=true (testkit.Need).

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/smtp"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/spamsurge/spamsurge/ingest"
	"github.com/spamsurge/spamsurge/internal/testkit"
)

const gtube = "XJS*C4JDBQADN1.NSBN3*2IDNEN*GTUBE-STANDARD-ANTI-UBE-TEST-EMAIL*C.34X"

// message writes a message the filters accept as well-formed; spam
// carries GTUBE.
func message(id string, spam bool) []byte {
	body := "Hello,\r\n\r\nthe minutes of Tuesday's meeting are attached below.\r\nRegards,\r\nAnna\r\n"
	if spam {
		body = gtube + "\r\n"
	}
	return []byte("Date: " + time.Now().UTC().Format(time.RFC1123Z) + "\r\n" +
		"From: Anna <anna@example.org>\r\nTo: team@example.net\r\nSubject: minutes\r\n" +
		"Message-ID: <" + id + "@example.org>\r\nMIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n" + body)
}

// readLog parses a log file until want observations are there (or 60 s).
func readLog(t *testing.T, f Format, loc *time.Location, path string, want int, p *Parser) ([]ingest.Observation, []string) {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for {
		b, _ := os.ReadFile(path)
		*p = Parser{Format: f, Location: loc, Reference: time.Now(), Domain: p.Domain}
		var obs []ingest.Observation
		var lines []string
		for _, l := range bytes.Split(b, []byte("\n")) {
			o, err := p.Parse(l)
			if err == nil {
				obs = append(obs, o)
				lines = append(lines, string(l))
			} else if !errors.Is(err, ErrIgnored) && !errors.Is(err, ErrNoRecipients) && len(l) > 0 {
				t.Errorf("%s: %v: %q", path, err, l)
			}
		}
		if len(obs) >= want || time.Now().After(deadline) {
			if len(obs) != want {
				t.Fatalf("%s: %d observations, want %d; log:\n%s", path, len(obs), want, b)
			}
			return obs, lines
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// checkReal checks an observation against what was sent between t0 and
// t1.
func checkReal(t *testing.T, o ingest.Observation, t0, t1 time.Time, spam bool, mid string, rcpt ...string) {
	t.Helper()
	// Logs keep whole seconds.
	if o.Time.Before(t0.Truncate(time.Second)) || o.Time.After(t1.Add(time.Second)) {
		t.Errorf("%s: time %v not within %v .. %v", mid, o.Time, t0, t1)
	}
	if o.Spam != spam || !slices.Equal(o.Rcpt, rcpt) || len(o.Rejected) != 0 {
		t.Errorf("%s: spam=%v rcpt=%q rejected=%q, want spam=%v rcpt=%q", mid, o.Spam, o.Rcpt, o.Rejected, spam, rcpt)
	}
	if o.MessageID != "<"+mid+"@example.org>" {
		t.Errorf("%s: message id %q", mid, o.MessageID)
	}
}

// The programs run in Berlin time, and the parser is told so: the
// observations must come out at the real instant.
const progZone = "Europe/Berlin"

func zoneLoc(t *testing.T) *time.Location {
	l, err := time.LoadLocation(progZone)
	if err != nil {
		t.Skip("no tzdata:", err)
	}
	return l
}

func TestRealRspamd(t *testing.T) {
	bin := testkit.Need(t, "rspamd", "rspamd", "/usr/bin/rspamd")
	loc := zoneLoc(t)
	for _, ours := range []bool{false, true} {
		name := "default-log_format"
		if ours {
			name = "spamsurge-log_format"
		}
		t.Run(name, func(t *testing.T) {
			dir := t.TempDir()
			normal, controller := testkit.FreePort(t), testkit.FreePort(t)
			logging := ""
			if ours {
				// docs/logs.md: the log_format that logs every recipient.
				logging = "  log_format = \"" + RspamdLogFormat + "\";\n"
			}
			conf := testkit.WriteFile(t, dir, "rspamd.conf", fmt.Sprintf(`options {
  pidfile = "%[1]s/rspamd.pid";
  dns { nameserver = ["127.0.0.1:9"]; timeout = 0.1s; retransmits = 1; }
}
logging {
  type = "file";
  filename = "%[1]s/rspamd.log";
  level = "notice";
%[4]s}
worker "normal" { bind_socket = "%[2]s"; count = 1; }
worker "controller" { bind_socket = "%[3]s"; count = 1; password = "not-used"; }
actions { reject = 15; add_header = 6; greylist = 4; }
`, dir, normal, controller, logging))
			args := []string{"-f", "-c", conf}
			if os.Geteuid() == 0 {
				args = append(args, "-i", "-u", "root", "-g", "root")
			}
			testkit.StartGroup(t, []string{"TZ=" + progZone, "TMPDIR=" + dir}, bin, args...)
			testkit.WaitRspamd(t, normal)
			scan := func(id string, spam bool, ip string, rcpt ...string) string {
				req, _ := http.NewRequest("POST", "http://"+normal+"/checkv2", bytes.NewReader(message(id, spam)))
				req.Header.Set("From", "sender@example.org")
				req.Header.Set("Queue-Id", "Q"+id)
				if ip != "" {
					req.Header.Set("IP", ip)
				}
				for _, r := range rcpt {
					req.Header.Add("Rcpt", r)
				}
				// The workers may still be starting.
				for i := 0; ; i++ {
					resp, err := http.DefaultClient.Do(req)
					if err == nil {
						b, _ := io.ReadAll(resp.Body)
						resp.Body.Close()
						if resp.StatusCode == 200 {
							return string(b)
						}
						err = fmt.Errorf("%s: %s", resp.Status, b)
					}
					if i == 50 {
						t.Fatal(err)
					}
					time.Sleep(100 * time.Millisecond)
					req.Body = io.NopCloser(bytes.NewReader(message(id, spam)))
				}
			}
			var many []string
			for i := 1; i <= 12; i++ {
				many = append(many, fmt.Sprintf("list%02d@example.net", i))
			}
			t0 := time.Now()
			if r := scan("spam1", true, "203.0.113.9", "u1@example.net", "u2+shop@example.net"); !strings.Contains(r, `"action":"reject"`) {
				t.Fatalf("GTUBE not rejected: %s", r)
			}
			scan("clean1", false, "", many...)
			scan("idn1", false, "2001:db8::25", "ok@xn--bcher-kva.example", "ünï@bücher.example")
			t1 := time.Now()
			var p Parser
			obs, lines := readLog(t, Rspamd, loc, filepath.Join(dir, "rspamd.log"), 3, &p)
			for _, l := range lines {
				t.Logf("rspamd logged: %s", l)
			}
			checkReal(t, obs[0], t0, t1, true, "spam1", "u1@example.net", "u2+shop@example.net")
			if obs[0].From != "sender@example.org" || obs[0].ClientIP != "203.0.113.9" {
				t.Errorf("from %q ip %q", obs[0].From, obs[0].ClientIP)
			}
			if ours {
				checkReal(t, obs[1], t0, t1, false, "clean1", many...)
				if p.Truncated != 0 {
					t.Errorf("Truncated = %d with spamsurge's log_format", p.Truncated)
				}
			} else {
				// The default format logs 8 recipients and "...".
				checkReal(t, obs[1], t0, t1, false, "clean1", many[:8]...)
				if p.Truncated != 1 {
					t.Errorf("Truncated = %d, want 1", p.Truncated)
				}
			}
			// rspamd 3.4 refuses a UTF-8 Rcpt ("bad rcpt address") and scans
			// the message for the others: the observation has what it logged.
			b, _ := os.ReadFile(filepath.Join(dir, "rspamd.log"))
			want := []string{"ok@xn--bcher-kva.example", "ünï@bücher.example"}
			if bytes.Contains(b, []byte("bad rcpt address: 'ünï@bücher.example'")) {
				t.Log("rspamd refused the UTF-8 recipient (bad rcpt address); it is not in its log line")
				want = want[:1]
			}
			checkReal(t, obs[2], t0, t1, false, "idn1", want...)
			if obs[2].ClientIP != "2001:db8::25" {
				t.Errorf("ip %q", obs[2].ClientIP)
			}
		})
	}
}

func TestRealSpamd(t *testing.T) {
	bin := testkit.Need(t, "spamd", "spamd", "/usr/sbin/spamd")
	spamc := testkit.Need(t, "spamc", "spamc", "/usr/bin/spamc")
	loc := zoneLoc(t)
	dir := t.TempDir()
	addr := testkit.FreePort(t)
	_, port, _ := net.SplitHostPort(addr)
	logf := filepath.Join(dir, "spamd.log")
	args := []string{"--listen=" + addr, "-x", "-s", logf, "--pidfile=" + filepath.Join(dir, "spamd.pid"),
		"-m", "1", "--min-spare=1", "--max-spare=1", "--local"}
	if os.Geteuid() == 0 {
		args = append(args, "-u", "nobody")
	}
	testkit.StartGroup(t, []string{"TZ=" + progZone}, bin, args...)
	testkit.WaitListening(t, addr)
	scan := func(id string, spam bool, user string) {
		cmd := exec.Command(spamc, "-d", "127.0.0.1", "-p", port, "-u", user)
		cmd.Stdin = bytes.NewReader(message(id, spam))
		cmd.Env = append(os.Environ(), "LC_ALL=C.UTF-8")
		if out, err := cmd.CombinedOutput(); err != nil && !strings.Contains(string(out), "X-Spam") {
			t.Fatalf("spamc: %v: %s", err, out)
		}
	}
	t0 := time.Now()
	scan("spam1", true, "bob+news@example.net")
	scan("clean1", false, "ünï@bücher.example")
	scan("local1", false, "alice")
	t1 := time.Now()
	p := Parser{Domain: "example.net"}
	obs, lines := readLog(t, Spamd, loc, logf, 3, &p)
	for _, l := range lines {
		t.Logf("spamd logged: %s", l)
	}
	checkReal(t, obs[0], t0, t1, true, "spam1", "bob+news@example.net")
	checkReal(t, obs[1], t0, t1, false, "clean1", "ünï@bücher.example")
	checkReal(t, obs[2], t0, t1, false, "local1", "alice@example.net")
}

// sink is a minimal SMTP next hop for amavis: it takes every message
// (SMTPUTF8 included) and records the recipients.
type sink struct {
	mu    sync.Mutex
	rcpts []string
}

func (s *sink) serve(t *testing.T, l net.Listener) {
	for {
		c, err := l.Accept()
		if err != nil {
			return
		}
		go func() {
			defer c.Close()
			c.SetDeadline(time.Now().Add(time.Minute))
			r := bufio.NewReader(c)
			fmt.Fprintf(c, "220 sink ESMTP\r\n")
			for {
				line, err := r.ReadString('\n')
				if err != nil {
					return
				}
				cmd := strings.ToUpper(strings.TrimSpace(line))
				switch {
				case strings.HasPrefix(cmd, "EHLO") || strings.HasPrefix(cmd, "LHLO"):
					fmt.Fprintf(c, "250-sink\r\n250-8BITMIME\r\n250-SMTPUTF8\r\n250 PIPELINING\r\n")
				case strings.HasPrefix(cmd, "RCPT TO:"):
					s.mu.Lock()
					s.rcpts = append(s.rcpts, strings.TrimSpace(line)[8:])
					s.mu.Unlock()
					fmt.Fprintf(c, "250 ok\r\n")
				case cmd == "DATA":
					fmt.Fprintf(c, "354 go\r\n")
					for {
						l, err := r.ReadString('\n')
						if err != nil {
							return
						}
						if l == ".\r\n" {
							break
						}
					}
					fmt.Fprintf(c, "250 2.0.0 Ok: queued as SINK%d\r\n", time.Now().UnixNano()%100000)
				case cmd == "QUIT":
					fmt.Fprintf(c, "221 bye\r\n")
					return
				default:
					fmt.Fprintf(c, "250 ok\r\n")
				}
			}
		}()
	}
}

func TestRealAmavis(t *testing.T) {
	bin := testkit.Need(t, "amavisd-new", "amavisd", "/usr/sbin/amavisd", "/usr/sbin/amavisd-new")
	if os.Geteuid() != 0 {
		msg := "\n\n*** amavisd-new runs as its own user: this test needs root to start it as nobody. ***\n"
		if os.Getenv("CI") == "true" {
			t.Fatal(msg)
		}
		t.Skip(msg)
	}
	nobody, err := user.Lookup("nobody")
	if err != nil {
		t.Fatal(err)
	}
	uid, _ := strconv.Atoi(nobody.Uid)
	gid, _ := strconv.Atoi(nobody.Gid)
	loc := zoneLoc(t)
	dir := t.TempDir()
	// amavisd drops to nobody: it must reach its home (the test's temp
	// directory and its parent are 0700), and refuses a config in a
	// directory it could write.
	os.Chmod(filepath.Dir(dir), 0o755)
	os.Chmod(dir, 0o755)
	home := filepath.Join(dir, "home")
	for _, d := range []string{"home", "home/tmp", "home/db", "home/var", "home/quarantine"} {
		os.Mkdir(filepath.Join(dir, d), 0o755)
		os.Chown(filepath.Join(dir, d), uid, gid)
	}
	os.Mkdir(filepath.Join(dir, "etc"), 0o755)
	listen, next := testkit.FreePort(t), testkit.FreePort(t)
	_, lport, _ := net.SplitHostPort(listen)
	l, err := net.Listen("tcp", next)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	s := &sink{}
	go s.serve(t, l)
	logf := filepath.Join(home, "amavis.log")
	conf := testkit.WriteFile(t, filepath.Join(dir, "etc"), "amavisd.conf", fmt.Sprintf(`use strict;
$MYHOME = '%[1]s';
$TEMPBASE = '%[1]s/tmp';
$db_home = '%[1]s/db';
$QUARANTINEDIR = '%[1]s/quarantine';
$pid_file = '%[1]s/amavisd.pid';
$lock_file = '%[1]s/amavisd.lock';
$daemon_user = 'nobody'; $daemon_group = '%[6]s';
$myhostname = 'amavis.test';
$mydomain = 'example.net';
$max_servers = 1;
$inet_socket_bind = '127.0.0.1';
$inet_socket_port = %[2]s;
@inet_acl = qw(127.0.0.1);
$forward_method = 'smtp:[127.0.0.1]:%[3]s';
$notify_method = 'smtp:[127.0.0.1]:%[3]s';
$DO_SYSLOG = 0;
$LOGFILE = '%[4]s';
$log_level = 0;
$enable_db = 0; $enable_zmq = 0;
$nanny_details_level = 0;
$enable_dkim_verification = 0;
@bypass_virus_checks_maps = (1);
@av_scanners = (); @av_scanners_backup = ();
@local_domains_maps = (['.example.net', '.xn--bcher-kva.example', '.bücher.example']);
$sa_tag_level_deflt = -999;
$sa_tag2_level_deflt = 5.0;
$sa_kill_level_deflt = 20;
@spam_tag2_level_maps = ({'.spammy.example.net' => -100}, \$sa_tag2_level_deflt);
@spam_lovers_maps = (['lover@example.net']);
$sa_dsn_cutoff_level = 9999;
$sa_local_tests_only = 1;
$final_spam_destiny = D_DISCARD;
$spam_quarantine_to = undef; $virus_quarantine_to = undef; $banned_quarantine_to = undef; $bad_header_quarantine_to = undef;
$final_bad_header_destiny = D_PASS;
$warnbadhsender = 0;
1;
`, home, lport, strings.Split(next, ":")[1], logf, uid, groupName(gid)))
	os.Chmod(conf, 0o644)
	testkit.StartGroup(t, []string{"TZ=" + progZone}, bin, "-c", conf, "foreground")
	// amavisd loads SpamAssassin's rules before it listens.
	deadline := time.Now().Add(90 * time.Second)
	for testkit.WaitAddr(listen) != nil {
		if time.Now().After(deadline) {
			b, _ := os.ReadFile(logf)
			t.Fatalf("amavisd does not listen on %s; log:\n%s", listen, b)
		}
	}
	send := func(id string, spam bool, rcpt ...string) {
		c, err := smtp.Dial(listen)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		if err := c.Hello("client.example.org"); err != nil {
			t.Fatal(err)
		}
		if err := c.Mail("sender@example.org"); err != nil {
			t.Fatal(err)
		}
		for _, r := range rcpt {
			if err := c.Rcpt(r); err != nil {
				t.Fatalf("RCPT %s: %v", r, err)
			}
		}
		w, err := c.Data()
		if err != nil {
			t.Fatal(err)
		}
		w.Write(message(id, spam))
		if err := w.Close(); err != nil {
			t.Fatalf("%s: %v", id, err)
		}
		c.Quit()
	}
	t0 := time.Now()
	send("spam1", true, "u1@example.net", "u2+shop@example.net")
	send("spam2", true, "lover@example.net")
	send("clean1", false, "c1@example.net", "c2@example.net")
	send("spammy1", false, "s@spammy.example.net")
	send("idn1", false, "ok@xn--bcher-kva.example", "ünï@bücher.example")
	t1 := time.Now()
	var p Parser
	obs, lines := readLog(t, Amavis, loc, logf, 5, &p)
	for _, l := range lines {
		t.Logf("amavisd logged: %s", l)
	}
	for i, want := range []string{"Blocked SPAM", "Passed SPAM", "Passed CLEAN", "Passed SPAMMY", "Passed CLEAN"} {
		if !strings.Contains(lines[i], ") "+want+" {") {
			t.Errorf("line %d is not %s: %s", i, want, lines[i])
		}
	}
	// Blocked SPAM (discarded, never delivered) is still spam to these
	// addresses: they are on a list.
	checkReal(t, obs[0], t0, t1, true, "spam1", "u1@example.net", "u2+shop@example.net")
	checkReal(t, obs[1], t0, t1, true, "spam2", "lover@example.net")
	checkReal(t, obs[2], t0, t1, false, "clean1", "c1@example.net", "c2@example.net")
	checkReal(t, obs[3], t0, t1, true, "spammy1", "s@spammy.example.net")
	// amavisd logs an A-label domain as its U-label (docs/logs.md).
	checkReal(t, obs[4], t0, t1, false, "idn1", "ok@bücher.example", "ünï@bücher.example")
	if obs[0].From != "sender@example.org" || obs[0].ClientIP != "127.0.0.1" {
		t.Errorf("from %q ip %q", obs[0].From, obs[0].ClientIP)
	}
	// What reached the next hop: everything but the blocked message.
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, r := range []string{"<u1@example.net>", "<u2+shop@example.net>"} {
		if slices.Contains(s.rcpts, r) {
			t.Errorf("blocked spam reached the next hop for %s", r)
		}
	}
	if !slices.Contains(s.rcpts, "<c1@example.net>") {
		t.Errorf("clean mail did not reach the next hop: %q", s.rcpts)
	}
}

func groupName(gid int) string {
	g, err := user.LookupGroupId(strconv.Itoa(gid))
	if err != nil {
		return strconv.Itoa(gid)
	}
	return g.Name
}
