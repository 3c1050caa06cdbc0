package detector

import (
	"strings"
	"testing"

	"github.com/spamsurge/spamsurge/ingest"
)

// TestSubjectKeyDecodes: the campaign subject key is made from the
// decoded subject, in any charset, with what the mail path passes on (the
// Subject as written) or an already decoded one; an address inside an
// encoded word is masked like any other.
func TestSubjectKeyDecodes(t *testing.T) {
	tests := []struct{ subject, key string }{
		{"=?KOI8-R?B?98HbINrBy8HaIDEyMzQ1IM/WycTBxdQgz9DMwdTZ?=", "ваш заказ # ожидает оплаты"},
		{"Ваш заказ 12345 ожидает оплаты", "ваш заказ # ожидает оплаты"},
		{"=?Shift_JIS?B?gqiTvoLIj+6V8YLwgqiTzYKvgrWC3IK3?=", "お得な情報をお届けします"},
		{"=?GB2312?B?uafPssT6u/G1w8Pit9HA8ca3?= 2026", "恭喜您获得免费礼品 #"},
		{"=?windows-1251?B?z/Do4uXyIGFsaWNlQGV4YW1wbGUubmV0LCDi4Pgg8fe48iA0Mg==?=", "привет <address> ваш счёт #"},
		{"=?x-klingon?B?AAAA?=", "=?x-klingon?b?aaaa?="},
		{"=?UTF-8?B?R3LDvMOfZ?=\x01", "=?utf-#?b?r#ldvmofz?="},
		{"", none},
	}
	for _, tt := range tests {
		mi := newMsgInfo(&ingest.Observation{Subject: tt.subject}).complete()
		if got := mi.keys[dimSubject]; got != tt.key {
			t.Errorf("subject %q: key %q, want %q", tt.subject, got, tt.key)
		}
		if strings.Contains(mi.keys[dimSubject], "@") {
			t.Errorf("subject %q: an address in the key %q", tt.subject, mi.keys[dimSubject])
		}
	}
}
