// Package redisstore keeps the recipient state of a fleet of spamsurge
// instances (many mail hops, one detector) in one Redis or Redis Cluster:
// the same state as a recipients.Population, and the same outcomes for the
// same history, but shared, so that the fleet behaves as one detector.
//
// # What it guarantees
//
//   - First mail and first spam are decided in Redis, by a Lua script that
//     reads and writes an address's record in one step; Redis runs one
//     script at a time (per node), so of two hops that receive an
//     address's first spam in the same millisecond, exactly one gets
//     FirstSpam and the other Spam (TestStandalone, TestCluster: 16
//     goroutines on two clients; TestTwoProcesses: two processes).
//   - At most one round trip per message: Apply's recipients go in one
//     script call, together with those of the Apply calls running at the
//     same moment on the same Store (Options.Flushers batches in flight).
//     In a cluster, one call per hash-tag group touched, pipelined: each
//     node gets its calls in one write, the nodes in parallel.
//   - Every call is time-boxed: by the context's deadline, or
//     Options.Timeout without one. A timed-out message is not observed;
//     the scripts are never retried (a repeated first spam would be a
//     Spam), so a timeout can lose at most that message's outcomes.
//   - Nothing in Redis reveals an address: keys are the key fingerprint
//     and bytes of the keyed hash (addr.ID), fields more bytes of it,
//     values times (TestKeysHoldNoAddress).
//
// # Key layout
//
// An address's id (addr.ID, a keyed PRF output) picks its place: bytes
// 0-1 its bucket b (65 536 buckets), bytes 2-7 its field; the bucket's top
// bits its hash-tag group g (Options.Groups, 16 by default, at most 256).
// The 64 bits are the ones the in-memory table keys on (addr.ID.Key64),
// so the two have the same (negligible) collisions.
//
//	ss{S:g}bbbb  hash, one of 65 536 buckets: field = 6 id bytes,
//	             value = first mail (4 bytes, minutes), last mail day
//	             (2 bytes), and once spammed first spam (4 bytes, minutes)
//	ss{S:g}r     hash, the group's at-risk accounting: "m" = matured
//	             never-spammed addresses, "<hour>" = never-spammed
//	             addresses maturing in that hour (epoch hours)
//
// S is the key fingerprint in hex (the state of another key is apart, as
// in the embedded store), g and b in hex. The hash tag {S:g} puts a
// group's buckets and its risk hash in one cluster slot, so one script may
// update an address and its group's counters. A message's recipients fall
// in several groups, so in a cluster Apply sends one script call per group
// touched (pipelined: one write per node, the nodes in parallel); on a
// standalone server one call holds them all. A script call costs Redis
// about as much as five recipients, so fewer groups batch better; more
// groups spread better over many masters (a group is one slot): 16 suits
// up to about 8 masters, 256 is the most.
//
// At 1 M addresses a bucket holds about 15 fields, a listpack of 250
// bytes: 24.6 bytes an address in used_memory (bench/README.md). Redis
// must keep the buckets as listpacks as they grow: set
// hash-max-listpack-entries to 1024 (a bucket reaches 128, the default,
// at about 8 M addresses; 1024 is 65 M) and hash-max-listpack-value to at
// least 16 (values are 6 or 10 bytes; the default 64 is fine). See
// docs/redis.md.
//
// # At-risk counting
//
// The script puts a new, not-spam address into its group's bucket for the
// hour it matures (first mail + warm-up, rounded up to the hour, as
// recipients.Population does), and takes it out again at its first spam,
// early or not, or when Forget drops it. Mature(h), which any instance may
// call at any time (the detector does at every hour), folds the buckets of
// hours up to h into "m" and returns the fleet's at-risk count; a Store's
// AtRisk is that count less the first spams it has Spent since, which is
// what a Population's AtRisk is for one instance. Folding is idempotent,
// so instances need no coordination; a first spam's decrement that lands
// in an already-folded hour is folded at the next Mature.
//
// Established ("at risk") is decided with the message's own time: the
// address's maturation hour is at most the message's hour. The in-memory
// detector matures hours as its clock reaches them, before the message is
// applied, which is the same rule (the differential test drives a
// Population that way). Instances' clocks differ a little: near an hour
// boundary, one instance may call a first spam early spam that another
// would have called first spam a second later.
//
// # Plugging in
//
// Package fleet plugs a Store into a serving instance: its workers call
// ApplyHours from several goroutines (so that the flushers batch them),
// journal the outcomes (Append; every instance Reads the whole journal
// and feeds it to its own detector, which keeps the at-risk counts from
// the outcomes: recipients.Population's tally mode). The at-risk hashes
// above (Mature, AtRisk) are then not what the detector reads; they stay
// as the fleet's own check of its count. Not yet: Forget's dropped
// addresses are not journaled (the fleet's tally keeps them at risk).
//
// # Clients
//
// Two drivers: rueidis (the default) and go-redis v9, chosen by
// Options.Client, measured on the hot path in bench/README.md.
package redisstore
