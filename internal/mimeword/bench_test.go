package mimeword

import (
	"mime"
	"testing"
)

// BenchmarkSubject: the decode a first spam's campaign key costs, against
// mime.WordDecoder's on the same words (which knows UTF-8 natively).
func BenchmarkSubject(b *testing.B) {
	const s = "=?UTF-8?Q?Votre_colis_est_en_attente_=E2=80=93_confirmez?= =?UTF-8?Q?_la_livraison?="
	b.Run("mimeword", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			Subject(s)
		}
	})
	b.Run("mime.WordDecoder", func(b *testing.B) {
		d := &mime.WordDecoder{CharsetReader: CharsetReader}
		b.ReportAllocs()
		for b.Loop() {
			d.DecodeHeader(s)
		}
	})
	b.Run("windows-1251", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			Subject("=?windows-1251?B?0ero5OroIOTuIDkwJSDy7uv86u4g8eXj7uTt/w==?=")
		}
	})
}
