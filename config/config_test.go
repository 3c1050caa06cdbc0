package config

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestDefaultsAreValid(t *testing.T) {
	c, err := Load("")
	if err != nil {
		t.Fatal(err)
	}
	if c.SMTP.Listen != "127.0.0.1:2525" || c.Downstream.Address != "127.0.0.1:10026" || c.HTTP.Listen != "127.0.0.1:9464" {
		t.Errorf("defaults differ from docs/config.md: %+v", c)
	}
	if c.Detector.Warmup.D() != 168*time.Hour || c.SMTP.MaxMessageBytes != 52428800 || !c.Downstream.XForward {
		t.Errorf("defaults differ from docs/config.md: %+v", c)
	}
}

func TestParseOverridesDefaults(t *testing.T) {
	c, err := Parse([]byte(`
smtp:
  listen: 127.0.0.1:2600
  protocol: lmtp
  allow_from: [10.0.0.0/8, 192.0.2.1]
downstream:
  tls: verify
  data_timeout: 30s
verdict:
  headers:
    - {name: X-Score, threshold: 5}
    - {name: X-Verdict, pattern: "^spam"}
`))
	if err != nil {
		t.Fatal(err)
	}
	if c.SMTP.Protocol != "lmtp" || c.Downstream.TLS != "verify" || c.Downstream.DataTimeout.D() != 30*time.Second {
		t.Errorf("got %+v", c)
	}
	if c.SMTP.MaxRecipients != 1000 {
		t.Errorf("an absent key lost its default: max_recipients = %d", c.SMTP.MaxRecipients)
	}
	if len(c.Verdict.Headers) != 2 || *c.Verdict.Headers[0].Threshold != 5 {
		t.Errorf("verdict rules = %+v", c.Verdict.Headers)
	}
}

func TestBadConfigNamesKeyAndLine(t *testing.T) {
	cases := []struct {
		yaml string
		want []string
	}{
		{"smtp:\n  listn: x\n", []string{"line 2", `unknown key "listn"`, "smtp"}},
		{"bogus: 1\n", []string{"line 1", `unknown key "bogus"`}},
		{"smtp:\n  protocol: esmtp\n", []string{"line 2", "smtp.protocol", "esmtp"}},
		{"smtp:\n  bare_newline: ignore\n", []string{"line 2", "smtp.bare_newline"}},
		{"smtp:\n  nul: keep\n", []string{"line 2", "smtp.nul", "reject or strip"}},
		{"detector:\n  forget_after: 240h\n", []string{"detector.forget_after", "longer than detector.dormant"}},
		{"detector:\n  forget_after: -1h\n", []string{"detector.forget_after", "negative"}},
		{"downstream:\n  tls: sometimes\n", []string{"line 2", "downstream.tls"}},
		{"downstream:\n  data_timeout: 120s\n", []string{"line 2", "downstream.data_timeout", "100s"}},
		{"detector:\n  warmup: soon\n", []string{"line 2", "not a duration"}},
		{"smtp:\n  max_recipients: many\n", []string{"line 2", "smtp.max_recipients"}},
		{"detector:\n  warmup: 7d\n", []string{"line 2", "detector.warmup", "not a duration"}},
		{"smtp:\n  allow_from:\n    - 127.0.0.0/8\n    - not-a-net\n", []string{"line 4", "smtp.allow_from[1]"}},
		{"smtp:\n  tls: {cert_file: a.pem}\n", []string{"line 2", "smtp.tls"}},
		{"verdict:\n  headers:\n    - {name: X-A, pattern: \"(\"}\n", []string{"line 3", "verdict.headers[0].pattern"}},
		{"verdict:\n  headers:\n    - {name: X-A}\n", []string{"line 3", "verdict.headers[0]"}},
		{"http:\n  listen: nope\n", []string{"line 2", "http.listen"}},
		{"alerting:\n  alertmanager_url: 127.0.0.1:9093\n", []string{"line 2", "alerting.alertmanager_url"}},
		{"smtp: [1, 2]\n", []string{"line 1"}},
		{"sources:\n  tail:\n    - {format: rspamd}\n", []string{"line 3", "sources.tail[0].path"}},
		{"sources:\n  tail:\n    - {path: /a, format: postfix}\n", []string{"line 3", "sources.tail[0].format", "postfix"}},
		{"sources:\n  tail:\n    - {path: /a, timezone: Mars/Olympus}\n", []string{"line 3", "sources.tail[0].timezone"}},
		{"sources:\n  tail:\n    - {path: /a}\n    - {path: /b, name: /a}\n", []string{"line 4", "sources.tail[1]", "sources.tail[0]"}},
		{"sources:\n  tail:\n    - {path: /a, follow: true}\n", []string{"line 3", `unknown key "follow"`, "sources.tail[]"}},
		{"smtp:\n  listen: \"2525\"\n", []string{"line 2", "smtp.listen"}},
	}
	for _, tc := range cases {
		_, err := Parse([]byte(tc.yaml))
		if err == nil {
			t.Errorf("%q: no error", tc.yaml)
			continue
		}
		for _, w := range tc.want {
			if !strings.Contains(err.Error(), w) {
				t.Errorf("%q: error %q lacks %q", tc.yaml, err, w)
			}
		}
	}
}

func TestLoadMissingFile(t *testing.T) {
	_, err := Load(filepath.Join(t.TempDir(), "nope.yaml"))
	if err == nil || !strings.Contains(err.Error(), "nope.yaml") {
		t.Fatalf("err = %v", err)
	}
}

func TestEmptyFileIsDefaults(t *testing.T) {
	p := filepath.Join(t.TempDir(), "empty.yaml")
	os.WriteFile(p, nil, 0o600)
	c, err := Load(p)
	if err != nil || c.SMTP.Listen != "127.0.0.1:2525" {
		t.Fatalf("c=%+v err=%v", c.SMTP, err)
	}
}

func TestForgetAfterZeroMeansNever(t *testing.T) {
	c, err := Parse([]byte("detector:\n  forget_after: 0s\n"))
	if err != nil {
		t.Fatalf("forget_after: 0s refused: %v", err)
	}
	if c.Detector.ForgetAfter != 0 {
		t.Fatalf("forget_after = %v", c.Detector.ForgetAfter)
	}
}

// TestProxyOff: smtp.listen "" turns the proxy off (tail or push only); it
// is valid with or without sources.
func TestProxyOff(t *testing.T) {
	c, err := Parse([]byte("smtp:\n  listen: \"\"\nsources:\n  tail:\n    - {path: /var/log/rspamd/rspamd.log, format: rspamd}\n    - {path: /var/log/mail.log, name: amavis, backfill: true, timezone: Europe/Berlin}\n"))
	if err != nil {
		t.Fatal(err)
	}
	if c.SMTP.Listen != "" || len(c.Sources.Tail) != 2 {
		t.Fatalf("got %+v", c)
	}
	if got := c.Sources.Tail[0].Label(); got != "/var/log/rspamd/rspamd.log" {
		t.Errorf("label without name = %q", got)
	}
	if tl := c.Sources.Tail[1]; tl.Label() != "amavis" || !tl.Backfill || tl.Format != "" {
		t.Errorf("second source = %+v", tl)
	}
	if _, err := Parse([]byte("smtp:\n  listen: \"\"\n")); err != nil {
		t.Errorf("proxy off without sources (push only): %v", err)
	}
}
