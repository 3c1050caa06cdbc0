package e2e

import (
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/spamsurge/spamsurge/internal/testkit"
)

// postfix is a private Postfix instance with its own config directory on
// loopback ports: `postfix -c DIR`, run as root, never touches the
// system's /etc/postfix service.
type postfix struct {
	dir     string
	submit  string // where swaks submits
	maillog string
}

// startPostfix runs Postfix with the shipped deploy/postfix snippets: its
// content_filter sends mail to proxy, and its re-injection listener passes
// it on to sink.
func startPostfix(t *testing.T, proxy, reinject, sink string) *postfix {
	t.Helper()
	return startPostfixWith(t, proxy, reinject, sink, "main.cf", "master.cf", true, "", nil)
}

// startPostfixWith runs Postfix with the snippets mainSnippet and
// masterSnippet of deploy/postfix (proxy and reinject substituted for
// their ports, and 127.0.0.1:2525 / :10026 in them). submitLine adds the
// plain submission smtpd on p.submit; extra goes at the end of master.cf
// as it is; edits are replacements made in the snippets (a test's own
// restriction, say), and edits["main.cf"] is added to main.cf.
func startPostfixWith(t *testing.T, proxy, reinject, sink, mainSnippet, masterSnippet string, submitLine bool, extra string, edits map[string]string) *postfix {
	t.Helper()
	bin := need(t, "postfix", "/usr/sbin/postfix")
	if os.Geteuid() != 0 {
		msg := "\n\n*** the Postfix test needs root (a private instance with its own queue) ***\n"
		if os.Getenv("CI") == "true" {
			t.Fatal(msg)
		}
		t.Skip(msg)
	}
	if _, err := user.Lookup("postfix"); err != nil {
		t.Fatalf("postfix user missing (apt-get install postfix creates it): %v", err)
	}
	// Not t.TempDir: its parent is 0700 and Postfix's daemons, running
	// as the postfix user, must reach their data directory.
	dir, err := os.MkdirTemp("", "spamsurge-postfix-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	os.Chmod(dir, 0o755)
	p := &postfix{dir: dir, submit: testkit.FreePort(t), maillog: filepath.Join(dir, "maillog")}
	queue := filepath.Join(dir, "queue")
	data := filepath.Join(dir, "data")
	for _, d := range []string{queue, data} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	// data_directory must belong to postfix, or master fails on its lock.
	pu, _ := user.Lookup("postfix")
	uid, _ := strconv.Atoi(pu.Uid)
	gid, _ := strconv.Atoi(pu.Gid)
	os.Chown(data, uid, gid)

	_, proxyPort, _ := net.SplitHostPort(proxy)
	_, reinjectPort, _ := net.SplitHostPort(reinject)
	snippet := func(name string) string {
		b, err := os.ReadFile(filepath.Join("..", "deploy", "postfix", name))
		if err != nil {
			t.Fatal(err)
		}
		s := string(b)
		for from, to := range edits {
			s = strings.ReplaceAll(s, from, to)
		}
		s = strings.ReplaceAll(s, "127.0.0.1]:2525", "127.0.0.1]:"+proxyPort)
		s = strings.ReplaceAll(s, "smtpd_proxy_filter=127.0.0.1:2525", "smtpd_proxy_filter=127.0.0.1:"+proxyPort)
		// The public smtpd of a before-queue snippet listens where the
		// test submits.
		s = strings.Replace(s, "\nsmtp      inet", "\n127.0.0.1:"+portOf(p.submit)+" inet", 1)
		return strings.ReplaceAll(s, "127.0.0.1:10026", "127.0.0.1:"+reinjectPort)
	}
	mainExtra := edits["main.cf"]
	if mainSnippet != "" {
		mainExtra += "\n" + snippet(mainSnippet)
	}
	submit := ""
	if submitLine {
		submit = "127.0.0.1:" + portOf(p.submit) + " inet n - n - - smtpd"
	}
	mainCF := fmt.Sprintf(`compatibility_level = 3.6
queue_directory = %s
data_directory = %s
mail_owner = postfix
setgid_group = postdrop
shlib_directory = /usr/lib/postfix
daemon_directory = /usr/lib/postfix/sbin
command_directory = /usr/sbin
meta_directory = /etc/postfix
inet_interfaces = 127.0.0.1
inet_protocols = ipv4
myhostname = mx.test
mydestination =
relay_domains = isp.example
mynetworks = 127.0.0.0/8
transport_maps = inline:{ isp.example=smtp:[127.0.0.1]:%s }
alias_maps =
alias_database =
smtpd_relay_restrictions = permit_mynetworks, reject_unauth_destination
maillog_file = %s
maillog_file_prefixes = %s
disable_dns_lookups = yes
smtp_dns_support_level = disabled
queue_run_delay = 1s
minimal_backoff_time = 1s
maximal_backoff_time = 2s
%s`, queue, data, portOf(sink), p.maillog, dir, mainExtra)
	masterCF := fmt.Sprintf(`%s
pickup    unix  n       -       n       60      1       pickup
cleanup   unix  n       -       n       -       0       cleanup
qmgr      unix  n       -       n       300     1       qmgr
rewrite   unix  -       -       n       -       -       trivial-rewrite
bounce    unix  -       -       n       -       0       bounce
defer     unix  -       -       n       -       0       bounce
trace     unix  -       -       n       -       0       bounce
verify    unix  -       -       n       -       1       verify
flush     unix  n       -       n       1000?   0       flush
proxymap  unix  -       -       n       -       -       proxymap
proxywrite unix -       -       n       -       1       proxymap
smtp      unix  -       -       n       -       -       smtp
relay     unix  -       -       n       -       -       smtp
showq     unix  n       -       n       -       -       showq
error     unix  -       -       n       -       -       error
retry     unix  -       -       n       -       -       error
discard   unix  -       -       n       -       -       discard
local     unix  -       n       n       -       -       local
lmtp      unix  -       -       n       -       -       lmtp
anvil     unix  -       -       n       -       1       anvil
scache    unix  -       -       n       -       1       scache
postlog   unix-dgram n  -       n       -       1       postlogd
%s
%s`, submit, snippet(masterSnippet), extra)
	for name, body := range map[string]string{"main.cf": mainCF, "master.cf": masterCF} {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	run := func(args ...string) error {
		out, err := exec.Command(bin, append([]string{"-c", dir}, args...)...).CombinedOutput()
		if err != nil {
			log, _ := os.ReadFile(p.maillog)
			return fmt.Errorf("postfix %s: %v\n%s\nmaillog:\n%s", strings.Join(args, " "), err, out, log)
		}
		return nil
	}
	if err := run("check"); err != nil {
		t.Fatal(err)
	}
	if err := run("start"); err != nil {
		// Seen once in CI with three test binaries on two cores:
		// "mail system startup failed" (master not up in time, or a
		// free port taken meanwhile). One more try, after a stop.
		t.Logf("postfix start failed, trying once more: %v", err)
		run("stop")
		time.Sleep(time.Second)
		if err := run("start"); err != nil {
			t.Fatal(err)
		}
	}
	t.Cleanup(func() {
		run("stop")
		if t.Failed() {
			log, _ := os.ReadFile(p.maillog)
			t.Logf("postfix maillog:\n%s", log)
		}
	})
	testkit.WaitListening(t, p.submit)
	testkit.WaitListening(t, reinject)
	return p
}

func portOf(addr string) string {
	_, port, _ := net.SplitHostPort(addr)
	return port
}

// The shipped Postfix snippets, for real: swaks → Postfix → content_filter
// → spamsurge → Postfix re-injection → smtp-sink. The message arrives once,
// and XFORWARD carried the original client's HELO through spamsurge.
func TestPostfixContentFilterEndToEnd(t *testing.T) {
	sk := startSink(t)
	reinject := testkit.FreePort(t)
	d := startDaemon(t, reinject, conf{})
	pf := startPostfix(t, d.smtp, reinject, sk.addr)
	// spamsurge started before Postfix's re-injection port was up; wait
	// until its re-probe has seen the next hop (and its XFORWARD).
	deadline := time.Now().Add(15 * time.Second)
	for !strings.Contains(d.out.String(), "next hop extensions") {
		if time.Now().After(deadline) {
			t.Fatal("spamsurge never saw the re-injection port come up")
		}
		time.Sleep(50 * time.Millisecond)
	}

	out, err := swaks(t, pf.submit, "--helo", "original-client.test", "--from", "sender@example.org", "--to", "alice@isp.example", "--data", writeMessage(t))
	if err != nil {
		t.Fatalf("swaks: %v\n%s", err, out)
	}
	msgs := sk.delivered(t)
	if len(msgs) != 1 {
		t.Fatalf("sink got %d copies, want exactly 1", len(msgs))
	}
	if !strings.Contains(msgs[0], "Message-ID: <e2e-1@example.org>") || !strings.Contains(msgs[0], "..two dots") {
		t.Errorf("message altered on the way: %q", msgs[0])
	}
	// The re-injection smtpd wrote its Received header from the XFORWARD
	// attributes: the original HELO, not spamsurge's.
	// XFORWARD reached the re-injection smtpd: it logs the original
	// client's queue id and address (orig_queue_id, orig_client) and counts
	// the XFORWARD commands it got from spamsurge.
	log, _ := os.ReadFile(pf.maillog)
	if !strings.Contains(string(log), "orig_queue_id=") || !strings.Contains(string(log), "orig_client=localhost[127.0.0.1]") ||
		!strings.Contains(string(log), " xforward=") {
		t.Errorf("XFORWARD did not reach the re-injection smtpd (no orig_client / xforward= in the maillog)")
	}
	if v := d.metric(t, `spamsurge_messages_total{result="relayed"}`); v != 1 {
		t.Errorf("relayed = %v, want 1", v)
	}
	if v := d.metric(t, `spamsurge_verdicts_total{verdict="spam"}`); v != 1 {
		t.Errorf("spam verdicts = %v, want 1", v)
	}
}
