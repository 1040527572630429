package profile

import "time"

// Bounds keep every profile finite whatever a visitor sends: a visitor who
// sends a million distinct URLs keeps at most MaxCounters counters, the
// least recently used dropped first. README.md documents these figures.
const (
	MaxCounters    = 512  // behaviour counters (distinct type + URL/category/sku/campaign/form/target)
	MaxDays        = 92   // day buckets per counter: "within" windows reach back this far
	MaxOrders      = 100  // order ids remembered for counting an order once
	MaxCartItems   = 100  // lines in the cart
	MaxFields      = 64   // explicit fields
	MaxInterests   = 64   // interests
	MaxConsents    = 16   // consent purposes
	MaxAliases     = 16   // visitor ids merged into one profile
	MaxListItems   = 32   // items in a list field
	MaxEvents      = 100  // events in one request
	MaxItems       = 100  // lines in one purchase
	MaxTokenLen    = 2048 // bytes of an identify's identity token
	maxURL         = 512  // bytes of a URL path kept (longer paths are cut)
	maxValue       = 1024
	maxName        = 64
	maxIdent       = 254
	visitGap       = 30 * time.Minute // a new visit starts after this much inactivity
	defaultAnonTTL = 90 * 24 * time.Hour
	defaultKnown   = 400 * 24 * time.Hour
)
