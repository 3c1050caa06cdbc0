// Package deploy holds no code: it is the home of spamsurge's deployment
// files (Prometheus rules and their promtool tests, the Grafana dashboard,
// Alertmanager, docker-compose, systemd, Postfix and Dovecot examples) and
// of the tests that keep them honest.
//
// deploy_test.go runs promtool and amtool on the shipped files, checks the
// alert conventions against RUNBOOK.md, and builds and scrapes the real
// spamsurge binary to prove that every metric a rule or a dashboard panel
// names is one the daemon exports (or a recording rule defines). It must
// never ship a query that silently matches nothing. docs_test.go checks
// docs/metrics.md, the metric reference for users, against the code and
// the running daemon: every metric listed, with its type and label values.
package deploy
