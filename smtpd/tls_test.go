package smtpd

import (
	"bufio"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"math/big"
	"net"
	"strings"
	"testing"
	"time"
)

// testCert makes a CA and a certificate for 127.0.0.1 / "hop.test".
func testCert(t *testing.T) (serverCfg *tls.Config, roots *x509.CertPool) {
	t.Helper()
	caKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	caTmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "test CA"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IsCA: true, KeyUsage: x509.KeyUsageCertSign, BasicConstraintsValid: true,
	}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	ca, _ := x509.ParseCertificate(caDER)
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(2), Subject: pkix.Name{CommonName: "hop.test"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		DNSNames: []string{"hop.test"}, IPAddresses: []net.IP{net.ParseIP("127.0.0.1")},
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, &key.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	roots = x509.NewCertPool()
	roots.AddCert(ca)
	return &tls.Config{Certificates: []tls.Certificate{{Certificate: [][]byte{der}, PrivateKey: key}}}, roots
}

func TestInboundSTARTTLS(t *testing.T) {
	hop := newFakeHop(t, false)
	srvCfg, roots := testCert(t)
	p := newTestProxy(t, hop.addr(), func(o *Options) { o.TLSConfig = srvCfg })
	c := dial(t, p.addr)
	kws := c.ehloKeywordsAfterGreeting("EHLO")
	if !contains(kws, "STARTTLS") {
		t.Fatalf("EHLO keywords %q lack STARTTLS", kws)
	}
	c.expect("STARTTLS", "220 ")
	tc := tls.Client(c.c, &tls.Config{RootCAs: roots, ServerName: "hop.test"})
	if err := tc.Handshake(); err != nil {
		t.Fatal(err)
	}
	c.c, c.r = tc, bufio.NewReader(tc)
	c.expect("EHLO client.test", "250 ")
	sendTxn(c, "b@isp.example")
	c.expect("", "250 ")
}

// A client that pipelines commands after STARTTLS (CVE-2011-0411 style
// injection) must not have them executed inside the TLS session.
func TestSTARTTLSPipelinedInjectionIsDropped(t *testing.T) {
	hop := newFakeHop(t, false)
	srvCfg, roots := testCert(t)
	p := newTestProxy(t, hop.addr(), func(o *Options) { o.TLSConfig = srvCfg })
	c := dial(t, p.addr)
	c.hello("EHLO")
	c.send("STARTTLS\r\nMAIL FROM:<injected@evil.example>\r\n")
	c.expect("", "220 ")
	tc := tls.Client(c.c, &tls.Config{RootCAs: roots, ServerName: "hop.test"})
	if err := tc.Handshake(); err != nil {
		// Refusing the session outright is also safe.
		t.Logf("handshake failed after injection: %v", err)
		return
	}
	c.c, c.r = tc, bufio.NewReader(tc)
	c.expect("EHLO client.test", "250 ")
	// Had the injected MAIL been executed, this would be 502 (nested MAIL).
	c.expect("MAIL FROM:<real@example.org>", "250 ")
	c.expect("RSET", "250 ")
	for _, tx := range hop.transactions() {
		if strings.Contains(tx.Mail, "injected") {
			t.Fatalf("injected MAIL reached the next hop: %q", tx.Mail)
		}
	}
}

func TestDownstreamTLSLevels(t *testing.T) {
	srvCfg, roots := testCert(t)
	cases := []struct {
		level    string
		hopTLS   bool
		roots    bool
		wantMail string
		wantTLS  bool
	}{
		{"none", true, false, "250 ", false},
		{"may", false, false, "250 ", false},
		{"may", true, false, "250 ", true},
		{"encrypt", false, false, "451 4.7.5 ", false},
		{"encrypt", true, false, "250 ", true},
		{"verify", true, false, "451 4.7.5 ", false}, // untrusted certificate
		{"verify", true, true, "250 ", true},
	}
	for _, tc := range cases {
		name := tc.level
		if tc.hopTLS {
			name += "/hop-offers-tls"
		}
		if tc.roots {
			name += "/trusted"
		}
		t.Run(name, func(t *testing.T) {
			hop := newFakeHop(t, false)
			if tc.hopTLS {
				hop.setTLS(srvCfg)
			}
			p := newTestProxy(t, hop.addr(), func(o *Options) {
				o.Downstream.TLS = tc.level
				if tc.roots {
					o.Downstream.TLSConfig = &tls.Config{RootCAs: roots}
				} else {
					o.Downstream.TLSConfig = &tls.Config{RootCAs: x509.NewCertPool()}
				}
			})
			c := dial(t, p.addr)
			c.hello("EHLO")
			c.expect("MAIL FROM:<a@example.org>", tc.wantMail)
			if tc.wantMail != "250 " {
				return
			}
			c.expect("RCPT TO:<b@isp.example>", "250 ")
			c.expect("DATA", "354 ")
			c.send("Subject: x\r\n\r\nbody\r\n.\r\n")
			c.expect("", "250 ")
			txs := hop.completed()
			if len(txs) != 1 || txs[0].TLS != tc.wantTLS {
				t.Errorf("transactions %+v, want one with TLS=%v", txs, tc.wantTLS)
			}
		})
	}
}
