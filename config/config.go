// Package config reads spamsurge's YAML configuration file.
//
// Every key has a working default (Default), so an empty file or no file at
// all gives a usable daemon. Decoding is strict: an unknown key or a value of
// the wrong type is an error that names the key and its line. Validate checks
// values that YAML alone cannot (addresses, enums, ranges) and names the key.
//
// This package never touches the network, the store or the key file; it only
// describes what the operator asked for.
package config

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"net/url"
	"os"
	"regexp"
	"strconv"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"
)

// Config is the whole configuration file.
type Config struct {
	SMTP        SMTP        `yaml:"smtp"`
	Downstream  Downstream  `yaml:"downstream"`
	Verdict     Verdict     `yaml:"verdict"`
	Store       Store       `yaml:"store"`
	HTTP        HTTP        `yaml:"http"`
	Detector    Detector    `yaml:"detector"`
	Alerting    Alerting    `yaml:"alerting"`
	Attribution Attribution `yaml:"attribution"`
	Sources     Sources     `yaml:"sources"`
}

// Sources are observation sources besides the proxy.
type Sources struct {
	// Tail follows growing filter logs (rspamd, amavisd-new, spamd).
	Tail []TailSource `yaml:"tail"`
}

// TailSource is one log file serve follows.
type TailSource struct {
	Path string `yaml:"path"`
	// Format is rspamd, amavis, spamd, jsonl, or auto (detected from
	// the file's verdict lines; the default).
	Format string `yaml:"format"`
	// Name is the source's label in metrics and logs (default: Path).
	Name string `yaml:"name"`
	// Backfill reads the file from its start on the first run (default:
	// from its end); later runs resume where the last one stopped.
	Backfill bool `yaml:"backfill"`
	// Timezone is the zone of time stamps without one (default: the
	// local zone), an IANA name such as Europe/Berlin.
	Timezone string `yaml:"timezone"`
	// Domain is appended to spamd users without "@".
	Domain string `yaml:"domain"`
}

// Label is the source's name in metrics and logs: Name, or Path.
func (t TailSource) Label() string {
	if t.Name != "" {
		return t.Name
	}
	return t.Path
}

// SMTP is the listening side of the proxy.
type SMTP struct {
	Listen          string   `yaml:"listen"`
	Protocol        string   `yaml:"protocol"` // smtp | lmtp
	Hostname        string   `yaml:"hostname"`
	MaxMessageBytes int64    `yaml:"max_message_bytes"`
	MaxRecipients   int      `yaml:"max_recipients"`
	MaxConnections  int      `yaml:"max_connections"`
	MaxLineLength   int      `yaml:"max_line_length"`
	AllowFrom       []string `yaml:"allow_from"`
	TLS             TLSFiles `yaml:"tls"`
	BareNewline     string   `yaml:"bare_newline"` // normalize | reject
	NUL             string   `yaml:"nul"`          // reject | strip
	// ReadTimeout bounds each command and, as in go-smtp, a whole DATA
	// body; WriteTimeout bounds each reply.
	ReadTimeout  Duration `yaml:"read_timeout"`
	WriteTimeout Duration `yaml:"write_timeout"`
	// ShutdownTimeout is how long in-flight transactions get on SIGTERM.
	ShutdownTimeout Duration `yaml:"shutdown_timeout"`
	// MaxHeaderBytes bounds how much of the header block is parsed for
	// the verdict; the rest of the message is streamed without looking.
	MaxHeaderBytes int `yaml:"max_header_bytes"`
}

// TLSFiles names a certificate and key in PEM files.
type TLSFiles struct {
	CertFile string `yaml:"cert_file"`
	KeyFile  string `yaml:"key_file"`
}

// Downstream is the next hop.
type Downstream struct {
	Address  string `yaml:"address"`
	Protocol string `yaml:"protocol"` // smtp | lmtp
	TLS      string `yaml:"tls"`      // none | may | encrypt | verify
	// TLSServerName overrides the name checked with tls: verify.
	TLSServerName string `yaml:"tls_server_name"`
	// TLSCAFile adds a CA bundle for tls: verify (default: system roots).
	TLSCAFile string `yaml:"tls_ca_file"`
	XForward  bool   `yaml:"xforward"`
	// Timeouts on the downstream side. They must stay below the 100 s an
	// upstream Postfix waits for a before-queue proxy, or a late reply
	// duplicates mail.
	ConnectTimeout Duration `yaml:"connect_timeout"`
	CommandTimeout Duration `yaml:"command_timeout"`
	DataTimeout    Duration `yaml:"data_timeout"`
}

// Verdict adds rules to the default spam verdict headers.
type Verdict struct {
	Headers []VerdictRule `yaml:"headers"`
}

// VerdictRule is either a pattern rule (name + pattern: the header's value
// matches the regular expression) or a score rule (name + threshold: the
// header's first number is at least the threshold).
type VerdictRule struct {
	Name      string   `yaml:"name"`
	Pattern   string   `yaml:"pattern"`
	Threshold *float64 `yaml:"threshold"`
}

// Store is where recipient state lives.
type Store struct {
	Path     string `yaml:"path"`
	RedisURL string `yaml:"redis_url"`
	// RedisCluster is the seed nodes (host:port) of a Redis Cluster,
	// instead of RedisURL.
	RedisCluster []string `yaml:"redis_cluster"`
	// RedisPasswordFile holds the Redis password (its first line), for a
	// URL without one or for the cluster.
	RedisPasswordFile string `yaml:"redis_password_file"`
	KeyFile           string `yaml:"key_file"`
}

// HTTP is the metrics and API listener.
type HTTP struct {
	Listen    string `yaml:"listen"`
	TokenFile string `yaml:"token_file"`
	// ExternalURL is where people reach the HTTP endpoints (behind a
	// proxy, or by a name): the base of the incident pages' links in
	// alerts (incident_url, generatorURL). Default: http:// and Listen.
	ExternalURL string `yaml:"external_url"`
}

// Detector tunes the surge detector.
type Detector struct {
	Warmup Duration `yaml:"warmup"`
	// QueueSize bounds the observations waiting for the detector; beyond
	// it they are dropped and counted, never blocking mail.
	QueueSize int `yaml:"queue_size"`
	// Dormant: an address with no mail for this long is dormant.
	Dormant Duration `yaml:"dormant"`
	// Learn is how long the baseline learns after warmup, on a new store
	// or a changed key, before incidents may open.
	Learn Duration `yaml:"learn"`
	// FoldLocalPart lowercases the local part of addresses.
	FoldLocalPart bool `yaml:"fold_local_part"`
	// SubaddressSeparators strips "user+detail" to "user" (empty: keep).
	SubaddressSeparators string `yaml:"subaddress_separators"`
	// FlushInterval bounds how long recipient state transitions wait in
	// memory before a synced write: what a crash can lose.
	FlushInterval Duration `yaml:"flush_interval"`
	// MaxClockSkew: in serve, an observation dated further ahead of the
	// wall clock is refused and never moves the detector's clock.
	MaxClockSkew Duration `yaml:"max_clock_skew"`
	// ForgetAfter: addresses without mail for this long are dropped from
	// the state (0: never).
	ForgetAfter Duration `yaml:"forget_after"`
	// PerDomain and PerTag run the first-spam test for every recipient
	// domain and every source tag on its own, besides the whole
	// population; an incident one of them opens names its scope.
	PerDomain bool `yaml:"per_domain"`
	PerTag    bool `yaml:"per_tag"`
}

// Alerting is where incidents are pushed.
type Alerting struct {
	AlertmanagerURL string `yaml:"alertmanager_url"`
}

// Attribution lists source tags and canaries.
type Attribution struct {
	Tags     []TagList    `yaml:"tags"`
	Canaries []CanaryList `yaml:"canaries"`
	// KnownDetails is a file of sub-address details ("shop") that
	// incidents may show in plaintext; others appear as keyed hashes.
	KnownDetails string `yaml:"known_details"`
}

// TagList is one source list of addresses.
type TagList struct {
	Name string `yaml:"name"`
	File string `yaml:"file"`
}

// CanaryList is a file of canary addresses planted in one source.
type CanaryList struct {
	Source string `yaml:"source"`
	File   string `yaml:"file"`
}

// Duration is a time.Duration written in Go syntax ("90s", "168h").
type Duration time.Duration

// D returns d as a time.Duration.
func (d Duration) D() time.Duration { return time.Duration(d) }

// UnmarshalYAML parses Go duration syntax.
func (d *Duration) UnmarshalYAML(n *yaml.Node) error {
	var s string
	if err := n.Decode(&s); err != nil {
		return err
	}
	v, err := time.ParseDuration(s)
	if err != nil {
		return fmt.Errorf("line %d: %q is not a duration (use Go syntax such as 90s or 168h)", n.Line, s)
	}
	*d = Duration(v)
	return nil
}

// MarshalYAML writes Go duration syntax.
func (d Duration) MarshalYAML() (any, error) { return time.Duration(d).String(), nil }

// Default returns the configuration used when a key is absent.
func Default() Config {
	return Config{
		SMTP: SMTP{
			Listen:          "127.0.0.1:2525",
			Protocol:        "smtp",
			MaxMessageBytes: 50 << 20,
			MaxRecipients:   1000,
			MaxConnections:  1000,
			MaxLineLength:   64 << 10,
			AllowFrom:       []string{"127.0.0.0/8", "::1/128"},
			BareNewline:     "normalize",
			NUL:             "reject",
			ReadTimeout:     Duration(5 * time.Minute),
			WriteTimeout:    Duration(time.Minute),
			ShutdownTimeout: Duration(30 * time.Second),
			MaxHeaderBytes:  256 << 10,
		},
		Downstream: Downstream{
			Address:        "127.0.0.1:10026",
			Protocol:       "smtp",
			TLS:            "none",
			XForward:       true,
			ConnectTimeout: Duration(10 * time.Second),
			CommandTimeout: Duration(60 * time.Second),
			DataTimeout:    Duration(80 * time.Second),
		},
		Store: Store{Path: "./spamsurge-data"},
		HTTP:  HTTP{Listen: "127.0.0.1:9464"},
		Detector: Detector{
			Warmup:               Duration(168 * time.Hour),
			QueueSize:            10000,
			Dormant:              Duration(30 * 24 * time.Hour),
			Learn:                Duration(72 * time.Hour),
			FoldLocalPart:        true,
			SubaddressSeparators: "+",
			FlushInterval:        Duration(time.Second),
			MaxClockSkew:         Duration(5 * time.Minute),
			ForgetAfter:          Duration(400 * 24 * time.Hour),
			PerDomain:            true,
			PerTag:               true,
		},
	}
}

// Load reads and validates the file at path. An empty path gives Default.
func Load(path string) (Config, error) {
	if path == "" {
		c := Default()
		return c, c.Validate()
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return Config{}, fmt.Errorf("config: %w", err)
	}
	c, err := Parse(b)
	if err != nil {
		return Config{}, fmt.Errorf("config %s: %w", path, err)
	}
	return c, nil
}

// Parse decodes YAML over the defaults, strictly, and validates the result.
func Parse(b []byte) (Config, error) {
	c := Default()
	dec := yaml.NewDecoder(bytes.NewReader(b))
	dec.KnownFields(true)
	if err := dec.Decode(&c); err != nil && !errors.Is(err, io.EOF) {
		return Config{}, nameKeys(b, cleanYAMLError(err))
	}
	err := c.Validate()
	if err != nil {
		// Point at the line of each bad key, as the YAML decoder does.
		var root yaml.Node
		if yaml.Unmarshal(b, &root) == nil {
			lines := map[string]int{}
			keyLines(&root, "", lines)
			for _, e := range unjoin(err) {
				var ke *KeyError
				if errors.As(e, &ke) {
					ke.Line = lookupLine(lines, ke.Key)
				}
			}
		}
	}
	return c, err
}

// KeyError is a bad value, named by its dotted key.
type KeyError struct {
	Key  string
	Line int // 0 when the key is absent from the file (a bad default combination)
	Msg  string
}

func (e *KeyError) Error() string {
	if e.Line > 0 {
		return fmt.Sprintf("line %d: %s: %s", e.Line, e.Key, e.Msg)
	}
	return e.Key + ": " + e.Msg
}

func unjoin(err error) []error {
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		return j.Unwrap()
	}
	return []error{err}
}

// keyLines records the line of every mapping key and sequence item by its
// dotted path ("smtp.allow_from[1]").
func keyLines(n *yaml.Node, path string, out map[string]int) {
	switch n.Kind {
	case yaml.DocumentNode:
		for _, c := range n.Content {
			keyLines(c, path, out)
		}
	case yaml.MappingNode:
		for i := 0; i+1 < len(n.Content); i += 2 {
			p := n.Content[i].Value
			if path != "" {
				p = path + "." + p
			}
			out[p] = n.Content[i].Line
			keyLines(n.Content[i+1], p, out)
		}
	case yaml.SequenceNode:
		for i, c := range n.Content {
			p := fmt.Sprintf("%s[%d]", path, i)
			out[p] = c.Line
			keyLines(c, p, out)
		}
	}
}

// lookupLine finds the key's line, or its nearest parent's.
func lookupLine(lines map[string]int, key string) int {
	for key != "" {
		if l, ok := lines[key]; ok {
			return l
		}
		i := strings.LastIndexAny(key, ".[")
		if i < 0 {
			return 0
		}
		key = key[:i]
	}
	return 0
}

var fieldNotFound = regexp.MustCompile(`field (\S+) not found in type config\.(\w+)`)

// cleanYAMLError turns yaml.v3's Go type names into config key names.
// lineRef is "line N: " at the start of a line of a decoder error.
var lineRef = regexp.MustCompile(`(?m)^(\s*)line (\d+): (unknown key )?`)

// nameKeys adds the dotted key to each "line N:" of a decoding error (a
// value of the wrong type, a bad duration) that does not name one: the
// key of that line in the file, so every error says where and what.
func nameKeys(b []byte, err error) error {
	var root yaml.Node
	if yaml.Unmarshal(b, &root) != nil {
		return err
	}
	lines := map[string]int{}
	keyLines(&root, "", lines)
	byLine := map[int]string{}
	for k, l := range lines {
		if cur, ok := byLine[l]; !ok || len(k) > len(cur) {
			byLine[l] = k
		}
	}
	msg := lineRef.ReplaceAllStringFunc(err.Error(), func(m string) string {
		sub := lineRef.FindStringSubmatch(m)
		n, _ := strconv.Atoi(sub[2])
		if k, ok := byLine[n]; ok && sub[3] == "" { // an unknown key names itself
			return fmt.Sprintf("%sline %s: %s: ", sub[1], sub[2], k)
		}
		return m
	})
	return errors.New(msg)
}

func cleanYAMLError(err error) error {
	msg := err.Error()
	msg = strings.TrimPrefix(msg, "yaml: unmarshal errors:\n  ")
	msg = fieldNotFound.ReplaceAllStringFunc(msg, func(m string) string {
		sub := fieldNotFound.FindStringSubmatch(m)
		return fmt.Sprintf("unknown key %q in section %s", sub[1], sectionName(sub[2]))
	})
	return errors.New(msg)
}

func sectionName(goType string) string {
	switch goType {
	case "Config":
		return "(top level)"
	case "TLSFiles":
		return "smtp.tls"
	case "VerdictRule":
		return "verdict.headers[]"
	case "TagList":
		return "attribution.tags[]"
	case "CanaryList":
		return "attribution.canaries[]"
	case "TailSource":
		return "sources.tail[]"
	}
	return strings.ToLower(goType)
}

// Validate checks values and names the first bad key.
func (c *Config) Validate() error {
	var errs []error
	bad := func(key, format string, a ...any) {
		errs = append(errs, &KeyError{Key: key, Msg: fmt.Sprintf(format, a...)})
	}
	checkHostPort := func(key, v string) {
		if _, _, err := net.SplitHostPort(v); err != nil {
			bad(key, "%q is not host:port", v)
		}
	}
	// An empty smtp.listen turns the proxy off: observations come from
	// sources.tail and the API only.
	if c.SMTP.Listen != "" {
		checkHostPort("smtp.listen", c.SMTP.Listen)
	}
	if c.SMTP.Protocol != "smtp" && c.SMTP.Protocol != "lmtp" {
		bad("smtp.protocol", "%q is not smtp or lmtp", c.SMTP.Protocol)
	}
	if c.SMTP.MaxMessageBytes <= 0 {
		bad("smtp.max_message_bytes", "must be positive")
	}
	if c.SMTP.MaxRecipients <= 0 {
		bad("smtp.max_recipients", "must be positive")
	}
	if c.SMTP.MaxConnections <= 0 {
		bad("smtp.max_connections", "must be positive")
	}
	if c.SMTP.MaxLineLength < 1000 {
		bad("smtp.max_line_length", "must be at least 1000 (RFC 5321 §4.5.3.1.6)")
	}
	for i, p := range c.SMTP.AllowFrom {
		if _, err := ParsePrefix(p); err != nil {
			bad(fmt.Sprintf("smtp.allow_from[%d]", i), "%q is not an address or CIDR network", p)
		}
	}
	if (c.SMTP.TLS.CertFile == "") != (c.SMTP.TLS.KeyFile == "") {
		bad("smtp.tls", "set both cert_file and key_file, or neither")
	}
	if c.SMTP.BareNewline != "normalize" && c.SMTP.BareNewline != "reject" {
		bad("smtp.bare_newline", "%q is not normalize or reject", c.SMTP.BareNewline)
	}
	if c.SMTP.NUL != "reject" && c.SMTP.NUL != "strip" {
		bad("smtp.nul", "%q is not reject or strip", c.SMTP.NUL)
	}
	for key, d := range map[string]Duration{
		"smtp.read_timeout": c.SMTP.ReadTimeout, "smtp.write_timeout": c.SMTP.WriteTimeout,
		"smtp.shutdown_timeout": c.SMTP.ShutdownTimeout, "downstream.connect_timeout": c.Downstream.ConnectTimeout,
		"downstream.command_timeout": c.Downstream.CommandTimeout, "downstream.data_timeout": c.Downstream.DataTimeout,
		"detector.warmup": c.Detector.Warmup, "detector.dormant": c.Detector.Dormant,
		"detector.flush_interval": c.Detector.FlushInterval, "detector.max_clock_skew": c.Detector.MaxClockSkew,
	} {
		if d <= 0 {
			bad(key, "must be a positive duration")
		}
	}
	// A reply that arrives after the upstream gave up duplicates mail:
	// Postfix waits 100 s (smtp_data_done_timeout is longer, but a
	// before-queue proxy gets proxy_timeout, 100 s, in total).
	if c.Downstream.DataTimeout.D() >= 100*time.Second {
		bad("downstream.data_timeout", "%s must stay below the 100s an upstream Postfix waits", c.Downstream.DataTimeout.D())
	}
	if c.Downstream.CommandTimeout.D() >= 100*time.Second {
		bad("downstream.command_timeout", "%s must stay below the 100s an upstream Postfix waits", c.Downstream.CommandTimeout.D())
	}
	if c.SMTP.MaxHeaderBytes < 1024 {
		bad("smtp.max_header_bytes", "must be at least 1024")
	}
	checkHostPort("downstream.address", c.Downstream.Address)
	if c.Downstream.Protocol != "smtp" && c.Downstream.Protocol != "lmtp" {
		bad("downstream.protocol", "%q is not smtp or lmtp", c.Downstream.Protocol)
	}
	switch c.Downstream.TLS {
	case "none", "may", "encrypt", "verify":
	default:
		bad("downstream.tls", "%q is not none, may, encrypt or verify", c.Downstream.TLS)
	}
	for i, r := range c.Verdict.Headers {
		key := fmt.Sprintf("verdict.headers[%d]", i)
		if r.Name == "" || strings.ContainsAny(r.Name, ": \t") {
			bad(key+".name", "%q is not a header name", r.Name)
		}
		switch {
		case r.Pattern != "" && r.Threshold != nil:
			bad(key, "set pattern or threshold, not both")
		case r.Pattern == "" && r.Threshold == nil:
			bad(key, "set pattern (a regular expression) or threshold (a score)")
		case r.Pattern != "":
			if _, err := regexp.Compile(r.Pattern); err != nil {
				bad(key+".pattern", "%v", err)
			}
		}
	}
	checkHostPort("http.listen", c.HTTP.Listen)
	if u := c.HTTP.ExternalURL; u != "" {
		if pu, err := url.Parse(u); err != nil || (pu.Scheme != "http" && pu.Scheme != "https") || pu.Host == "" || pu.RawQuery != "" || pu.Fragment != "" {
			bad("http.external_url", "%q is not an http(s) base URL such as https://spamsurge.example.net/", u)
		}
	}
	if c.Store.Path == "" && c.Store.RedisURL == "" && len(c.Store.RedisCluster) == 0 {
		bad("store.path", "must be set when store.redis_url and store.redis_cluster are empty")
	}
	c.validateRedis(bad)
	if u := c.Alerting.AlertmanagerURL; u != "" {
		if pu, err := url.Parse(u); err != nil || (pu.Scheme != "http" && pu.Scheme != "https") || pu.Host == "" {
			bad("alerting.alertmanager_url", "%q is not an http(s) URL such as http://127.0.0.1:9093", u)
		}
	}
	if c.Detector.QueueSize <= 0 {
		bad("detector.queue_size", "must be positive")
	}
	if c.Detector.Learn < 0 {
		bad("detector.learn", "must not be negative")
	}
	if fa := c.Detector.ForgetAfter; fa < 0 {
		bad("detector.forget_after", "must not be negative (0: never forget)")
	} else if fa > 0 && (fa <= c.Detector.Dormant || fa <= c.Detector.Warmup) {
		bad("detector.forget_after", "%s must be longer than detector.dormant and detector.warmup (or 0: never forget)", fa.D())
	}
	if strings.ContainsAny(c.Detector.SubaddressSeparators, "@\" \t") {
		bad("detector.subaddress_separators", "%q must not contain @, quotes or spaces", c.Detector.SubaddressSeparators)
	}
	for i, t := range c.Attribution.Tags {
		if t.Name == "" || t.File == "" {
			bad(fmt.Sprintf("attribution.tags[%d]", i), "needs name and file")
		}
	}
	for i, t := range c.Attribution.Canaries {
		if t.Source == "" || t.File == "" {
			bad(fmt.Sprintf("attribution.canaries[%d]", i), "needs source and file")
		}
	}
	labels := map[string]int{}
	for i, t := range c.Sources.Tail {
		key := fmt.Sprintf("sources.tail[%d]", i)
		if t.Path == "" {
			bad(key+".path", "must be set (the log file to follow)")
		}
		switch t.Format {
		case "", "auto", "rspamd", "amavis", "spamd", "jsonl":
		default:
			bad(key+".format", "%q is not rspamd, amavis, spamd, jsonl or auto", t.Format)
		}
		if t.Timezone != "" {
			if _, err := time.LoadLocation(t.Timezone); err != nil {
				bad(key+".timezone", "%q is not a time zone (an IANA name such as Europe/Berlin)", t.Timezone)
			}
		}
		if l := t.Label(); l != "" {
			if j, dup := labels[l]; dup {
				bad(key, "source %q is also sources.tail[%d]: give each a distinct path or name", l, j)
			}
			labels[l] = i
		}
	}
	return errors.Join(errs...)
}

// validateRedis checks the Redis store keys. Errors never show a
// password: a URL is shown redacted, or not at all when it does not parse.
func (c *Config) validateRedis(bad func(key, format string, a ...any)) {
	st := &c.Store
	urlPassword := false
	if st.RedisURL != "" {
		u, err := url.Parse(st.RedisURL)
		switch {
		case err != nil:
			bad("store.redis_url", "is not a URL (redis://[user:password@]host:port/db or rediss://)")
		case u.Scheme != "redis" && u.Scheme != "rediss":
			bad("store.redis_url", "%q is not a redis:// or rediss:// URL", u.Redacted())
		case u.Hostname() == "":
			bad("store.redis_url", "%q has no host", u.Redacted())
		case u.RawQuery != "" || u.Fragment != "":
			bad("store.redis_url", "%q: options in the URL are not supported", u.Redacted())
		default:
			if db := strings.TrimPrefix(u.Path, "/"); db != "" {
				if n, err := strconv.Atoi(db); err != nil || n < 0 {
					bad("store.redis_url", "%q: the database %q is not a number", u.Redacted(), db)
				}
			}
			if u.User != nil {
				_, urlPassword = u.User.Password()
			}
		}
	}
	if len(st.RedisCluster) > 0 && st.RedisURL != "" {
		bad("store.redis_cluster", "set store.redis_url or store.redis_cluster, not both")
	}
	if (st.RedisURL != "" || len(st.RedisCluster) > 0) && st.Path == "" && st.KeyFile == "" {
		bad("store.key_file", "must be set with a Redis store when store.path is empty (every instance of a fleet needs the same key)")
	}
	for i, a := range st.RedisCluster {
		if _, port, err := net.SplitHostPort(a); err != nil || port == "" {
			bad(fmt.Sprintf("store.redis_cluster[%d]", i), "%q is not host:port", a)
		}
	}
	if st.RedisPasswordFile != "" {
		switch {
		case st.RedisURL == "" && len(st.RedisCluster) == 0:
			bad("store.redis_password_file", "needs store.redis_url or store.redis_cluster")
		case urlPassword:
			bad("store.redis_password_file", "store.redis_url has a password already: keep it in one place")
		}
	}
}

// ParsePrefix accepts a CIDR network or a single address.
func ParsePrefix(s string) (netip.Prefix, error) {
	if p, err := netip.ParsePrefix(s); err == nil {
		return p.Masked(), nil
	}
	a, err := netip.ParseAddr(s)
	if err != nil {
		return netip.Prefix{}, err
	}
	return netip.PrefixFrom(a, a.BitLen()), nil
}
