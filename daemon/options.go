package daemon

import (
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"net/netip"
	"os"
	"strings"

	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"

	"github.com/spamsurge/spamsurge/addr"
	"github.com/spamsurge/spamsurge/alert"
	"github.com/spamsurge/spamsurge/attribution"
	"github.com/spamsurge/spamsurge/config"
	"github.com/spamsurge/spamsurge/smtpd"
	"github.com/spamsurge/spamsurge/verdict"
)

// This file turns the configuration into the components' Options; the
// detector's own conversion is OpenDetector's (detector.go).

// smtpOptions turns the config into proxy options. It reads the
// certificate and CA files the config names.
func smtpOptions(cfg config.Config) (smtpd.Options, error) {
	host := cfg.SMTP.Hostname
	if host == "" {
		host, _ = os.Hostname()
	}
	var allow []netip.Prefix
	for _, p := range cfg.SMTP.AllowFrom {
		pp, _ := config.ParsePrefix(p) // validated
		allow = append(allow, pp)
	}
	o := smtpd.Options{
		Listen:            cfg.SMTP.Listen,
		LMTP:              cfg.SMTP.Protocol == "lmtp",
		Hostname:          host,
		MaxMessageBytes:   cfg.SMTP.MaxMessageBytes,
		MaxRecipients:     cfg.SMTP.MaxRecipients,
		MaxConnections:    cfg.SMTP.MaxConnections,
		MaxLineLength:     cfg.SMTP.MaxLineLength,
		MaxHeaderBytes:    cfg.SMTP.MaxHeaderBytes,
		AllowFrom:         allow,
		RejectBareNewline: cfg.SMTP.BareNewline == "reject",
		StripNUL:          cfg.SMTP.NUL == "strip",
		ReadTimeout:       cfg.SMTP.ReadTimeout.D(),
		WriteTimeout:      cfg.SMTP.WriteTimeout.D(),
		ShutdownTimeout:   cfg.SMTP.ShutdownTimeout.D(),
		XForward:          cfg.Downstream.XForward,
		Downstream: smtpd.DownstreamOptions{
			Address:        cfg.Downstream.Address,
			LMTP:           cfg.Downstream.Protocol == "lmtp",
			TLS:            cfg.Downstream.TLS,
			Hostname:       host,
			ConnectTimeout: cfg.Downstream.ConnectTimeout.D(),
			CommandTimeout: cfg.Downstream.CommandTimeout.D(),
			DataTimeout:    cfg.Downstream.DataTimeout.D(),
		},
	}
	if cfg.SMTP.TLS.CertFile != "" {
		cert, err := tls.LoadX509KeyPair(cfg.SMTP.TLS.CertFile, cfg.SMTP.TLS.KeyFile)
		if err != nil {
			return o, fmt.Errorf("smtp.tls: %w", err)
		}
		o.TLSConfig = &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}
	}
	if cfg.Downstream.TLS == "verify" {
		tc := &tls.Config{ServerName: cfg.Downstream.TLSServerName, MinVersion: tls.VersionTLS12}
		if cfg.Downstream.TLSCAFile != "" {
			pem, err := os.ReadFile(cfg.Downstream.TLSCAFile)
			if err != nil {
				return o, fmt.Errorf("downstream.tls_ca_file: %w", err)
			}
			pool := x509.NewCertPool()
			if !pool.AppendCertsFromPEM(pem) {
				return o, fmt.Errorf("downstream.tls_ca_file: no PEM certificates in %s", cfg.Downstream.TLSCAFile)
			}
			tc.RootCAs = pool
		}
		o.Downstream.TLSConfig = tc
	}
	cl, err := verdict.New(cfg.Verdict.Headers)
	if err != nil {
		return o, fmt.Errorf("verdict.headers: %w", err)
	}
	o.Classifier = cl
	return o, nil
}

// listsOptions turns attribution.tags and .canaries into the lists'
// options, hashed with the store key (created if missing, as the detector
// would).
func listsOptions(cfg config.Config, reg prometheus.Registerer, log *zap.Logger) (attribution.Options, error) {
	key, err := addr.LoadKey(KeyFile(cfg))
	if err != nil {
		return attribution.Options{}, err
	}
	return attribution.Options{Config: attribution.ConfigFrom(cfg, key), Registerer: reg, Logger: log}, nil
}

// alertOptions turns alerting.* into the pusher's options; its alerts link
// back to our own API.
func alertOptions(cfg config.Config, log *zap.Logger, reg prometheus.Registerer) alert.Options {
	return alert.Options{
		URL: cfg.Alerting.AlertmanagerURL, Logger: log, Registerer: reg,
		APIURL: ExternalURL(cfg),
	}
}

// ReadToken reads the API bearer token from http.token_file; an empty
// path means no token. resolve reads it too, to ask a running daemon.
func ReadToken(path string) (string, error) {
	if path == "" {
		return "", nil
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return "", fmt.Errorf("http.token_file: %w", err)
	}
	tok := strings.TrimSpace(string(b))
	if tok == "" {
		return "", fmt.Errorf("http.token_file: %s is empty", path)
	}
	return tok, nil
}

// ExternalURL is the base URL people reach the HTTP endpoints at:
// http.external_url, or http:// and http.listen.
func ExternalURL(cfg config.Config) string {
	if cfg.HTTP.ExternalURL != "" {
		return strings.TrimRight(cfg.HTTP.ExternalURL, "/")
	}
	return "http://" + cfg.HTTP.Listen
}
