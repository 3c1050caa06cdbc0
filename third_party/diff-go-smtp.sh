#!/usr/bin/env bash
# Prints the diff of third_party/go-smtp against go-smtp v0.25.1 as
# released (from the module cache), in the form `patch -p1` applies.
set -euo pipefail
cd "$(dirname "$0")/go-smtp"
upstream=$(go mod download -json github.com/emersion/go-smtp@v0.25.1 | sed -n 's/^\t"Dir": "\(.*\)",$/\1/p')
# testdata/ holds the fuzz corpus (scripts/fuzz.sh), not part of the patch.
# Upstream's files and ours (files the patch adds, such as its tests).
for f in $( ( (cd "$upstream" && find . -type f); find . -type f -not -path './testdata/*') | sed 's|^\./||' | sort -u); do
	diff -uN --label "a/$f" --label "b/$f" "$upstream/$f" "$f" || true
done
