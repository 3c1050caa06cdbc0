package detector

import (
	"maps"
	"net/netip"
	"regexp"
	"sort"
	"strings"
	"time"

	"github.com/spamsurge/spamsurge/addr"
	"github.com/spamsurge/spamsurge/ingest"
	"github.com/spamsurge/spamsurge/internal/mimeword"
)

// Incident is one detected excess of first spams (or of dictionary
// evidence). It holds no plaintext address: recipients are keyed hashes and
// subjects have embedded addresses masked.
type Incident struct {
	ID         string     `json:"id"`
	Kind       string     `json:"kind"`
	State      string     `json:"state"` // open | resolved
	StartedAt  time.Time  `json:"started_at"`
	OpenedAt   time.Time  `json:"opened_at"`
	UpdatedAt  time.Time  `json:"updated_at"`
	ResolvedAt *time.Time `json:"resolved_at,omitempty"`
	// Trigger is the test that opened it: cusum, cusum_novel, window_10m, window_24h,
	// cusum_domain, cusum_tag or dictionary_burst.
	Trigger string `json:"trigger"`
	// Scope is the recipient domain or source tag a surge is about, for
	// one a stratum's test opened (cusum_domain, cusum_tag); absent for
	// the whole population.
	Scope *Scope `json:"scope,omitempty"`
	// Recipients is the number of distinct recipients (RecipientIDs).
	Recipients int `json:"recipients"`
	// Observed and Expected count first spams among at-risk addresses
	// from StartedAt on (for a dictionary burst: dictionary evidence).
	Observed float64 `json:"observed"`
	Expected float64 `json:"expected"`
	// Score is the opening statistic over its threshold (≥ 1), updated
	// with the largest value seen while open.
	Score        float64 `json:"score"`
	DormantShare float64 `json:"dormant_share"`
	// DictionaryEvidence counts spam recipients never seen before or
	// rejected, in the campaigns that explain the incident.
	DictionaryEvidence int       `json:"dictionary_evidence"`
	Campaigns          Campaigns `json:"campaigns"`
	RecipientIDs       []addr.ID `json:"recipient_ids"`
	Attribution                  // inline: tags, top_tag, subaddress_details... (attribution.go)
	Forensics                    // inline: list_snapshot... (forensics.go)
	// Profile (surge) says what kind of list it is (profile.go).
	Profile *Profile `json:"profile,omitempty"`

	dormant int
	groups  [nDims]map[string]int
	// Profile counts (profile.go): long-dormant recipients, and
	// recipients by domain name.
	longDormant int
	domHits     map[string]int
	st          *stratum // a scoped incident's stratum (nil until attached)
}

// Campaigns are the first spams of an incident grouped four ways; each list
// holds the top groups, largest first.
type Campaigns struct {
	SenderDomain    []Group `json:"sender_domain"`
	ClientNetwork   []Group `json:"client_network"`
	Subject         []Group `json:"subject"`
	MessageIDDomain []Group `json:"message_id_domain"`
}

// Group is one campaign key with its count and share of the incident.
type Group struct {
	Key   string  `json:"key"`
	Count int     `json:"count"`
	Share float64 `json:"share"`
}

// Event is one change of an incident: opened, updated or resolved, with a
// snapshot of the incident. Its JSON is the `replay --json` line.
type Event struct {
	Event string    `json:"event"`
	At    time.Time `json:"at"`
	Incident
}

const (
	dimSender = iota
	dimNet
	dimSubject
	dimMsgID
	nDims
)

const topGroups = 5

// msgInfo is what a message contributes to campaign grouping; computed once
// per message, only for spam that matters.
type msgInfo struct {
	keys [nDims]string
	// dictKey groups dictionary evidence: sender domain and client network.
	dictKey string

	done           bool
	subject, msgID string
}

func newMsgInfo(o *ingest.Observation) *msgInfo {
	mi := &msgInfo{subject: o.Subject, msgID: o.MessageID}
	mi.keys[dimSender] = domainOf(o.From)
	mi.keys[dimNet] = network(o.ClientIP)
	mi.dictKey = mi.keys[dimSender] + "|" + mi.keys[dimNet]
	return mi
}

// complete fills the keys that cost more (subject decoding and
// normalisation); only messages that carry a first spam need them. The
// subject comes as the header has it (the mail path does not decode it),
// or already decoded (JSONL observations may be).
func (mi *msgInfo) complete() *msgInfo {
	if !mi.done {
		mi.done = true
		mi.keys[dimSubject] = normSubject(mimeword.Subject(mi.subject))
		mi.keys[dimMsgID] = domainOf(strings.Trim(strings.TrimSpace(mi.msgID), "<>"))
		mi.subject, mi.msgID = "", ""
	}
	return mi
}

const none = "(none)"

func domainOf(a string) string {
	i := strings.LastIndexByte(a, '@')
	if i < 0 || i == len(a)-1 {
		return none
	}
	d := strings.ToLower(strings.TrimSuffix(strings.TrimSpace(a[i+1:]), ">"))
	if len(d) > 255 || strings.ContainsAny(d, " \t\r\n<>@\"") || d == "" {
		return none
	}
	return strings.TrimSuffix(d, ".")
}

// network is the client's /24 (IPv4) or /48 (IPv6): spam campaigns rotate
// addresses within a network more often than across.
func network(ip string) string {
	a, err := netip.ParseAddr(strings.Trim(ip, "[]"))
	if err != nil {
		return none
	}
	a = a.Unmap()
	bits := 24
	if a.Is6() {
		bits = 48
	}
	p, _ := a.Prefix(bits)
	return p.String()
}

var (
	emailInText = regexp.MustCompile(`[^\s<>"'()]+@[^\s<>"'()]+`)
	digitsRun   = regexp.MustCompile(`[0-9]+`)
)

// normSubject folds the per-recipient variations spammers use: case, digit
// runs, whitespace; and masks anything shaped like an address, so incident
// JSON carries no plaintext address.
func normSubject(s string) string {
	if s == "" {
		return none
	}
	if len(s) > 512 {
		s = s[:512]
	}
	s = strings.ToLower(s)
	s = emailInText.ReplaceAllString(s, "<address>")
	s = digitsRun.ReplaceAllString(s, "#")
	s = strings.Join(strings.Fields(s), " ")
	if r := []rune(s); len(r) > 80 {
		s = string(r[:80])
	}
	if s == "" {
		return none
	}
	return s
}

func (in *Incident) add(id addr.ID, mi *msgInfo, dormant bool) {
	in.RecipientIDs = append(in.RecipientIDs, id)
	in.Recipients = len(in.RecipientIDs)
	if dormant {
		in.dormant++
	}
	in.DormantShare = float64(in.dormant) / float64(in.Recipients)
	for d := 0; d < nDims; d++ {
		if in.groups[d] == nil {
			in.groups[d] = map[string]int{}
		}
		k := none
		if mi != nil {
			k = mi.keys[d]
		}
		in.groups[d][k]++
	}
}

func (in *Incident) summarise() {
	top := func(m map[string]int) []Group {
		gs := make([]Group, 0, len(m))
		total := 0
		for k, c := range m {
			gs = append(gs, Group{Key: k, Count: c})
			total += c
		}
		sort.Slice(gs, func(i, j int) bool {
			if gs[i].Count != gs[j].Count {
				return gs[i].Count > gs[j].Count
			}
			return gs[i].Key < gs[j].Key
		})
		if len(gs) > topGroups {
			gs = gs[:topGroups]
		}
		for i := range gs {
			gs[i].Share = float64(gs[i].Count) / float64(total)
		}
		return gs
	}
	in.Campaigns = Campaigns{
		SenderDomain:    top(in.groups[dimSender]),
		ClientNetwork:   top(in.groups[dimNet]),
		Subject:         top(in.groups[dimSubject]),
		MessageIDDomain: top(in.groups[dimMsgID]),
	}
}

// restoreGroups rebuilds the grouping counts of an incident loaded from the
// store from its top lists (the tail beyond the top is lost).
func (in *Incident) restoreGroups() {
	for d, gs := range [nDims][]Group{in.Campaigns.SenderDomain, in.Campaigns.ClientNetwork, in.Campaigns.Subject, in.Campaigns.MessageIDDomain} {
		in.groups[d] = map[string]int{}
		for _, g := range gs {
			in.groups[d][g.Key] = g.Count
		}
	}
	in.dormant = int(in.DormantShare*float64(in.Recipients) + 0.5)
	in.restoreProfile()
}

func (in *Incident) snapshot(event string, at time.Time) Event {
	in.summarise()
	c := *in
	c.RecipientIDs = in.RecipientIDs[:len(in.RecipientIDs):len(in.RecipientIDs)]
	// The snapshot is read by other goroutines (the API) while the
	// detector goes on counting into these.
	c.HitsFirstSeen, c.HitsAt = maps.Clone(in.HitsFirstSeen), maps.Clone(in.HitsAt)
	return Event{Event: event, At: at, Incident: c}
}
