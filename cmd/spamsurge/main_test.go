package main

import (
	"bytes"
	"path/filepath"
	"strings"
	"testing"

	"github.com/spamsurge/spamsurge/internal/testkit"
)

// The runner's exit statuses and messages: 2 for a bad command line or
// config (with the usage when no message says more), 1 for a failure,
// every error printed once as "spamsurge NAME: ...".
func TestRunExitStatusesAndMessages(t *testing.T) {
	dir := t.TempDir()
	bad := testkit.WriteFile(t, dir, "bad.yaml", "bogus: 1\n")
	for _, c := range []struct {
		args         []string
		code         int
		stdout       string // prefix
		stderr       string // prefix
		stderrAlso   string // contained
		stderrLines1 bool   // exactly one line
	}{
		{args: nil, code: 2, stderr: "usage: spamsurge COMMAND [flags]"},
		{args: []string{"help"}, code: 0, stderr: "usage: spamsurge COMMAND [flags]", stderrAlso: "  serve      run the proxy"},
		{args: []string{"nope"}, code: 2, stderr: "spamsurge: unknown command \"nope\"\n\nusage:"},
		{args: []string{"version"}, code: 0, stdout: "spamsurge "},
		{args: []string{"version", "-x"}, code: 2, stderr: "flag provided but not defined: -x", stderrAlso: "usage: spamsurge version"},
		{args: []string{"serve", "--config", bad}, code: 2, stderr: "spamsurge serve: config " + bad + ": line 1: unknown key \"bogus\"", stderrLines1: true},
		{args: []string{"serve", "--log-format", "xml"}, code: 2, stderr: "spamsurge serve: --log-format: \"xml\" is not console or json", stderrLines1: true},
		{args: []string{"serve", "-h"}, code: 0, stderr: "usage: spamsurge serve [--config FILE]", stderrAlso: "(default \"info\")"},
		{args: []string{"replay"}, code: 2, stderr: "usage: spamsurge replay [--config FILE]"},
		{args: []string{"replay", "-h"}, code: 0, stderr: "usage: spamsurge replay", stderrAlso: "(default \"error\")"},
		{args: []string{"replay", "--format", "csv", "x"}, code: 2, stderr: "spamsurge replay: --format: unknown format \"csv\" (rspamd, amavis, spamd or jsonl)", stderrLines1: true},
		{args: []string{"replay", "--config", bad, "x"}, code: 2, stderr: "spamsurge replay: config ", stderrLines1: true},
		{args: []string{"replay", "--log-level", "loud", "x"}, code: 2, stderr: "spamsurge replay: --log-level: ", stderrLines1: true},
		{args: []string{"resolve", "--incident", "x"}, code: 2, stderr: "usage: spamsurge resolve --config FILE"},
		{args: []string{"resolve", "--incident", "x", "--addresses", "y", "--config", bad}, code: 2, stderr: "spamsurge resolve: config ", stderrLines1: true},
		{args: []string{"simulate", "--scenario", "baseline", "extra"}, code: 2, stderr: "usage: spamsurge simulate --scenario"},
		{args: []string{"simulate", "--scenario", "nope"}, code: 1, stderr: "spamsurge simulate: ", stderrLines1: true},
		{args: []string{"simulate", "--scenario", "baseline", "--addresses", "10", "--out", filepath.Join(dir, "no", "x")}, code: 1, stderr: "spamsurge simulate: open ", stderrLines1: true},
	} {
		var out, errb bytes.Buffer
		code := run(c.args, &out, &errb)
		se := errb.String()
		if code != c.code || !strings.HasPrefix(out.String(), c.stdout) || !strings.HasPrefix(se, c.stderr) ||
			!strings.Contains(se, c.stderrAlso) || (c.stderrLines1 && strings.Count(se, "\n") != 1) {
			t.Errorf("%q: exit %d (want %d)\nstdout %q\nstderr %q", c.args, code, c.code, out.String(), se)
		}
	}
}
