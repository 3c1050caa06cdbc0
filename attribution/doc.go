// Package attribution says where a leaked list came from and whom to tell.
//
// It loads the operator's source lists — tag files (one per source: webmail
// logins, address book, sent-to...), canary files (addresses planted in one
// system) and an optional list of known sub-address details — normalising
// and hashing every address with the store key at load, so that only keyed
// hashes stay in memory (Lists). Set holds the current Lists and reloads
// them on SIGHUP, keeping the old ones when a file cannot be read.
//
// The statistics are pure functions: Rank compares each tag's share among
// an incident's recipients with its share of the at-risk population
// (lift, with a binomial tail significance), TopDetails picks the
// sub-address details concentrated in an incident, Sentence words the top
// tag for people.
//
// This package never logs, stores or exports a plaintext address: problems
// in a list file are reported by file and line, and a sub-address detail
// appears in plaintext only if the operator listed it as known.
package attribution
