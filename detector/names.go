package detector

// Incident kinds: Incident.Kind, and the kind label of the metrics.
const (
	KindSurge      = "surge"      // first spams among never-spammed addresses, out of line
	KindDictionary = "dictionary" // a burst to never-seen or refused addresses
	KindCanary     = "canary"     // mail to a planted canary address
)

// kinds are the statistical kinds, one open incident each at most (canary
// incidents are one per source).
var kinds = []string{KindSurge, KindDictionary}

// Incident states (Incident.State).
const (
	StateOpen     = "open"
	StateResolved = "resolved"
)

// Event names (Event.Event).
const (
	EventOpened   = "opened"
	EventUpdated  = "updated"
	EventResolved = "resolved"
)

// Triggers: the test that opened an incident (Incident.Trigger).
const (
	TriggerCUSUM           = "cusum"            // the CUSUM of all counted first spams
	TriggerCUSUMNovel      = "cusum_novel"      // the CUSUM of novel campaigns' first spams
	TriggerCUSUMShare      = "cusum_share"      // the CUSUM of all first spams per spam to known addresses
	TriggerCUSUMDomain     = "cusum_domain"     // a recipient domain's CUSUM (Incident.Scope)
	TriggerCUSUMTag        = "cusum_tag"        // a source tag's CUSUM (Incident.Scope)
	TriggerWindow10m       = "window_10m"       // the 10-minute window's Poisson tail
	TriggerWindow24h       = "window_24h"       // the 24-hour window against a margin
	TriggerDictionaryBurst = "dictionary_burst" // dictionary evidence in 10 minutes
	TriggerCanary          = "canary"           // mail to a canary
)
