// Package fleet makes several spamsurge instances on one Redis (or Redis
// Cluster) one detector: one population, one baseline, one incident.
//
// # How
//
// Each instance's Node applies the instance's own messages to the shared
// recipient state (recipients/redisstore: first mail and first spam are
// decided atomically in Redis) and appends what they did to one journal,
// a Redis stream: per recipient its outcome, keyed hash, domain and
// detail, and the campaign fields, with the envelope sender cut to its
// domain (no address). It also journals a tick of its clock every second,
// a little behind the wall clock, except while it holds messages Redis
// has not taken yet. Every Node reads the whole journal in the one order
// Redis keeps and feeds it to its own detector in shared mode
// (detector.ObserveApplied; recipients.Population in tally mode keeps the
// at-risk counts from the outcomes).
//
// # Why not a leader
//
// The detector is deterministic: the same entries in the same order give
// the same state, the same incidents, the same ids. So every instance
// evaluates, and they agree without talking to each other: no lease, no
// handover when one dies, and no way for two leaders to open one
// incident twice. Alertmanager receives the same alert (same labels) from
// every instance and shows one. The cost is that each instance runs the
// statistics over the whole fleet's traffic, which is small next to the
// recipient state (the state is in Redis; a detector step is a few
// microseconds); and every instance reads every entry.
//
// # Faults
//
// Relaying never waits: the proxy hands observations to a queue, and the
// Node's Redis calls are time-boxed. While Redis is away the Node holds
// observations (bounded, Options.Buffer) and journal entries, and writes
// them when it answers; beyond the bound they are counted as lost. See
// docs/redis.md.
//
// # Not yet
//
// A snapshot in Redis for an instance that joins after the journal was
// trimmed (it reads from the oldest entry kept, and is out of step);
// replay into Redis; forgetting journaled. Entries from an instance that
// lags its peers by more than a few seconds are counted at the fleet's
// clock (late), as a single detector counts late observations.
package fleet
