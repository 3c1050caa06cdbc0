#!/bin/sh
# Makes subjects.tsv: real RFC 2047 encoded words, the bytes made by
# iconv (not by the golang.org/x/text decoders under test), each with
# the UTF-8 text it must decode to. Run from this folder:
#   sh mkfixtures.sh > subjects.tsv
# Columns: charset, B or Q, the encoded subject, the decoded subject.
set -eu
b() { # charset text
	printf '%s\tB\t=?%s?B?%s?=\t%s\n' "$1" "$1" "$(printf '%s' "$2" | iconv -f UTF-8 -t "$1" | base64 -w0)" "$2"
}
q() { # charset text: Q encoding (RFC 2047 4.2), space as _
	printf '%s\tQ\t=?%s?Q?%s?=\t%s\n' "$1" "$1" "$(printf '%s' "$2" | iconv -f UTF-8 -t "$1" |
		perl -0777 -pe 's/([^A-Za-z0-9!*+\-\/ ])/sprintf("=%02X", ord $1)/ge; s/ /_/g')" "$2"
}
for f in b q; do
	$f windows-1251 'Скидки до 90% только сегодня'
	$f KOI8-R 'Ваш заказ 12345 ожидает оплаты'
	$f GB2312 '恭喜您获得免费礼品'
	$f Big5 '恭喜您獲得免費禮品'
	$f ISO-2022-JP '【重要】アカウントの確認'
	$f Shift_JIS 'お得な情報をお届けします'
	$f windows-1252 '“Special” offer – 50 € off'
	$f EUC-KR '무료 선물을 받으세요'
	$f ISO-8859-2 'Zażółć gęślą jaźń'
	$f UTF-8 'Grüße – 限时优惠'
done
