package smtpd

// xforwardAttrs are the XFORWARD attributes to pass on for this session.
// go-smtp has no XFORWARD server support, so none are known yet.
func (s *session) xforwardAttrs() []xforwardAttr { return nil }
