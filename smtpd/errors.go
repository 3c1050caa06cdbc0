package smtpd

import (
	"errors"

	"github.com/emersion/go-smtp"
)

// The replies we make up ourselves. Our own faults are always temporary
// (4xx, never 5xx): we have no queue, so the sender keeps the message and
// retries; a permanent reply would bounce mail for a fault that is ours.
var (
	errInternal = &smtp.SMTPError{Code: 451, EnhancedCode: smtp.EnhancedCode{4, 3, 0}, Message: "Temporary local problem, try again later"}
	errNextHop  = &smtp.SMTPError{Code: 451, EnhancedCode: smtp.EnhancedCode{4, 4, 1}, Message: "Next hop unavailable, try again later"}
	errTimeout  = &smtp.SMTPError{Code: 451, EnhancedCode: smtp.EnhancedCode{4, 4, 2}, Message: "Timeout talking to the next hop, try again later"}
	errTLS      = &smtp.SMTPError{Code: 451, EnhancedCode: smtp.EnhancedCode{4, 7, 5}, Message: "Cannot secure the connection to the next hop, try again later"}
	errNoExt    = &smtp.SMTPError{Code: 451, EnhancedCode: smtp.EnhancedCode{4, 5, 4}, Message: "Next hop no longer offers a requested extension, try again later"}
	errShutdown = &smtp.SMTPError{Code: 421, EnhancedCode: smtp.EnhancedCode{4, 3, 2}, Message: "Service shutting down, try again later"}
	errAborted  = &smtp.SMTPError{Code: 451, EnhancedCode: smtp.EnhancedCode{4, 4, 2}, Message: "Message transfer interrupted"}
	errBareLF   = &smtp.SMTPError{Code: 550, EnhancedCode: smtp.EnhancedCode{5, 6, 0}, Message: "Message contains bare CR or LF line ends (RFC 5321 section 2.3.8), refused"}
	errNUL      = &smtp.SMTPError{Code: 550, EnhancedCode: smtp.EnhancedCode{5, 6, 0}, Message: "Message contains NUL characters, refused"}
	errPathLong = &smtp.SMTPError{Code: 501, EnhancedCode: smtp.EnhancedCode{5, 1, 3}, Message: "Path too long (RFC 5321 section 4.5.3.1.3)"}
	errPathCtl  = &smtp.SMTPError{Code: 501, EnhancedCode: smtp.EnhancedCode{5, 1, 3}, Message: "Control characters in address, refused"}
	errLongLine = &smtp.SMTPError{Code: 500, EnhancedCode: smtp.EnhancedCode{5, 5, 6}, Message: "Line too long"}
)

// toSMTPError is the one boundary between our errors and SMTP replies.
// Replies from the next hop pass through unchanged; everything else becomes
// a generic temporary reply, never our internal error text.
func toSMTPError(err error) *smtp.SMTPError {
	if err == nil {
		return nil
	}
	var se *smtp.SMTPError
	if errors.As(err, &se) {
		return se
	}
	var re *ReplyError
	if errors.As(err, &re) {
		return replyToSMTP(re.Reply)
	}
	var de *downstreamError
	if errors.As(err, &de) {
		switch de.reason {
		case reasonTimeout:
			return errTimeout
		case reasonTLS:
			return errTLS
		default:
			return errNextHop
		}
	}
	return errInternal
}

// replyToSMTP turns a next-hop reply into what go-smtp writes. A reply
// without enhanced code gets the generic X.0.0 go-smtp would add anyway.
func replyToSMTP(r Reply) *smtp.SMTPError {
	ec := smtp.EnhancedCode(r.Enhanced)
	if r.Enhanced == [3]int{} {
		ec = smtp.EnhancedCodeNotSet
	}
	return &smtp.SMTPError{Code: r.Code, EnhancedCode: ec, Message: r.Text()}
}
