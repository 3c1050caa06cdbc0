package smtpd

import "testing"

// TestObservationSubjectIsRaw: the mail path passes the Subject on as
// written (unfolded, trimmed), encoded words and all: decoding is the
// detector's, for first spams only.
func TestObservationSubjectIsRaw(t *testing.T) {
	hop := newFakeHop(t, false)
	p := newTestProxy(t, hop.addr(), nil)
	c := dial(t, p.addr)
	c.hello("EHLO")
	c.expect("MAIL FROM:<sender@example.org>", "250 ")
	c.expect("RCPT TO:<alice@isp.example>", "250 ")
	c.expect("DATA", "354 ")
	c.send(msg("Subject:  =?KOI8-R?B?98HbINrBy8HaIDEyMzQ1IM/WycTBxdQgz9DMwdTZ?=\n =?x-klingon?B?AAAA?=\nX-Spam-Flag: YES\n", "body\n") + ".\r\n")
	c.expect("", "250 ")
	c.expect("QUIT", "221 ")
	eventually(t, "observation", func() bool { return len(p.rec.all()) == 1 })
	if got, want := p.rec.all()[0].Subject, "=?KOI8-R?B?98HbINrBy8HaIDEyMzQ1IM/WycTBxdQgz9DMwdTZ?= =?x-klingon?B?AAAA?="; got != want {
		t.Errorf("observation subject %q, want %q", got, want)
	}
}
