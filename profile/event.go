package profile

// EventType is the type of a behavioural or identity event.
type EventType uint8

// Event types, as named in the HTTP API.
const (
	EventUnknown EventType = iota
	PageView
	Click
	CartAdd
	CartRemove
	Purchase
	EmailOpen
	EmailClick
	FormSubmit
	Identify
	InterestEvent
	ConsentEvent

	// dropClaim removes an unproven claim of Email or Customer (erasure);
	// never decoded from outside.
	dropClaim EventType = 255
)

var eventNames = [...]string{
	EventUnknown:  "",
	PageView:      "page_view",
	Click:         "click",
	CartAdd:       "cart_add",
	CartRemove:    "cart_remove",
	Purchase:      "purchase",
	EmailOpen:     "email_open",
	EmailClick:    "email_click",
	FormSubmit:    "form_submit",
	Identify:      "identify",
	InterestEvent: "interest",
	ConsentEvent:  "consent",
}

// String returns the event's name in the API ("page_view").
func (t EventType) String() string {
	if int(t) < len(eventNames) {
		return eventNames[t]
	}
	return ""
}

// ParseEventType returns the type named s, or EventUnknown.
func ParseEventType(s string) EventType {
	for i, n := range eventNames {
		if i > 0 && n == s {
			return EventType(i)
		}
	}
	return EventUnknown
}

// Item is one order line of a purchase.
type Item struct {
	SKU      string
	Category string
	Price    float64
	Quantity int
	Gift     bool
}

// Event is one decoded and validated event. Only the members that belong to
// Type are set.
type Event struct {
	Type     EventType
	TS       int64  // unix seconds; 0 means "now" (only API-key callers may send a past ts)
	Season   string // explicit routing to a seasonal profile
	Gift     bool   // cart_add: routes to a season that routes gifts
	URL      string // page_view, email_click (path only), click (the page it happened on)
	Target   string // click
	SKU      string // cart_add, cart_remove
	Category string // page_view, cart_add
	Price    float64
	Quantity int
	OrderID  string           // purchase
	Items    []Item           // purchase
	Campaign string           // email_open, email_click
	Form     string           // form_submit
	Fields   map[string]Value // form_submit, identify
	Email    string           // identify (normalised)
	Customer string           // identify: shop customer id
	Name     string           // interest
	On       bool             // interest
	Purposes map[string]bool  // consent
	Trusted  bool             // sent by a server-side caller with the API key
	// Token is identify's identity token as sent (a JWT the shop backend
	// issued); edge verifies it. The decoder keeps it and nothing else
	// reads it.
	Token string
	// Proven says an identify really is the person it names: edge sets it
	// for an API-key caller or a verified identity token, never the
	// decoder. Only a proven identify links a contact, merges profiles or
	// moves the visitor; an unproven one only stores its claim and fields
	// on the caller's own profile.
	Proven bool
}
