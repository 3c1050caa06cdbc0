// Package logs reads the verdicts spam filters already log, as
// observations: rspamd's task line (rspamd.go), amavisd-new's main log line
// (amavis.go) and SpamAssassin spamd's result line (spamd.go), under the
// syslog, journald and the programs' own time stamps (stamp.go), from
// plain, gzip or zstd files put in time order (files.go). docs/logs.md is
// the users' spec; keep the two in step.
//
// A line gives at most one observation. Lines of the programs' other
// messages are ErrIgnored, verdict lines without recipients
// ErrNoRecipients; any other error is a malformed line. Rejected and
// blocked messages are spam observations: the addresses are on a list.
package logs
