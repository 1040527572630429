package profile

// Kind is the type of a profile field value.
type Kind uint8

// Field kinds. KindNone marks an absent value.
const (
	KindNone Kind = iota
	KindString
	KindNumber
	KindBool
	KindDate
	KindList
)

// String returns the name used in definitions documents.
func (k Kind) String() string {
	switch k {
	case KindString:
		return "string"
	case KindNumber:
		return "number"
	case KindBool:
		return "bool"
	case KindDate:
		return "date"
	case KindList:
		return "list"
	}
	return "none"
}

// Value is one typed field value. Exactly the member that matches Kind is
// meaningful: Str for strings, Num for numbers and bools (1 or 0), Time for
// dates (unix seconds, UTC), List for lists.
type Value struct {
	Kind Kind
	Str  string
	Num  float64
	Time int64
	List []string
}

// Field is an explicit profile field with the time it was last set, so that
// merges can let the newer value win.
type Field struct {
	Value Value
	At    int64 // unix seconds
}

// Source says who set an interest.
type Source uint8

// Interest sources.
const (
	SourceVisitor Source = iota + 1 // the visitor, e.g. a preference centre
	SourceShop                      // the shop, through the API
	SourceScoring                   // a scoring rule
)

// Interest is a tag on a profile. On is false when it was explicitly switched
// off (kept so that a scoring rule does not switch it on again... until the
// visitor does).
type Interest struct {
	On     bool
	Source Source
	At     int64
}

// Consent is the state of one consent purpose.
type Consent struct {
	Granted bool
	At      int64
}

// CartItem is one line in the cart.
type CartItem struct {
	SKU      string
	Category string
	Price    float64
	Quantity int
	Gift     bool
}

// Cart is the visitor's current cart. UpdatedAt is the last change, so that
// "abandoned for 30 minutes" can be evaluated as now-UpdatedAt while Items is
// not empty.
type Cart struct {
	Items     []CartItem
	UpdatedAt int64
}

// Value returns the sum of price times quantity over the items.
func (c *Cart) Value() float64 {
	var v float64
	for i := range c.Items {
		q := c.Items[i].Quantity
		if q <= 0 {
			q = 1
		}
		v += c.Items[i].Price * float64(q)
	}
	return v
}

// Key is the set of dimensions one behaviour counter is kept for: the values
// rule filters can select on (url_contains/url_prefix on URL, category, sku,
// campaign, form, target). Unused dimensions are empty.
type Key struct {
	URL      string
	Category string
	SKU      string
	Campaign string
	Form     string
	Target   string
}

// DayCount is the number of events on one day (days since the unix epoch, UTC).
type DayCount struct {
	Day int32
	N   uint32
}

// Counter counts the events of one type with one Key. Total counts every
// event kept in the profile; Days holds day buckets, ascending, so that
// windows like "within 14d" can be answered for behaviour recorded before the
// rule existed. For purchases, the counter with an empty SKU counts orders and
// the others count order lines.
type Counter struct {
	Type  EventType
	Key   Key
	Total uint32
	First int64 // unix seconds of the first event counted
	Last  int64 // unix seconds of the last event counted
	Days  []DayCount
}

// Order is a purchase already counted, kept so that an order id counts once.
type Order struct {
	ID    string
	At    int64
	Value float64
	// Counted names the purchase counters the order added one to in this
	// profile on the day of At (keyHash of each line's Key, and of Key{}
	// for the order itself); empty when none, as when its lines went to a
	// seasonal profile. A merge that meets the order id in both profiles
	// takes these off again, so the order counts once.
	Counted []uint64
}

// Profile is one primary or seasonal profile. A seasonal profile has the
// same structure with Season set to the season id and Cycle to the year its
// collect window opened.
type Profile struct {
	ID         string // profile id: 32 lower-case hex characters
	Season     string // "" for a primary profile
	Cycle      int    // seasonal profiles: the year the collect window opened
	Known      bool   // linked to a contact
	Email      string // normalised: trimmed, lower-cased
	CustomerID string
	Aliases    []string // visitor ids merged into this profile (bounded)
	FirstSeen  int64    // unix seconds
	LastSeen   int64
	Visits     uint32
	Fields     map[string]Field
	Interests  map[string]Interest
	Consents   map[string]Consent
	Score      float64
	Cart       Cart
	Orders     []Order   // bounded, oldest dropped first
	Behaviour  []Counter // bounded, least recently used dropped first
	// Experiments are the experiments (and the holdout) the visitor was
	// exposed to, with their variants: bounded by MaxAssignments.
	Experiments []Assignment
}

// HasInterest reports whether the interest is set and on.
func (p *Profile) HasInterest(name string) bool {
	in, ok := p.Interests[name]
	return ok && in.On
}

// HasConsent reports whether the purpose was granted and not withdrawn.
func (p *Profile) HasConsent(purpose string) bool {
	c, ok := p.Consents[purpose]
	return ok && c.Granted
}
