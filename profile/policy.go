package profile

import "time"

// ScoreHit is what a scoring rule adds when an event matches it.
type ScoreHit struct {
	Points   float64
	Interest string // "" when the rule adds no interest
}

// Scorer matches events against the scoring rules of the current definitions.
// rules.Set implements it; profile never imports rules.
type Scorer interface {
	// Score appends to dst what the rules matching ev add, and returns it.
	Score(ev *Event, dst []ScoreHit) []ScoreHit
}

// Policy is everything from the definitions and the configuration that
// changes how events are applied. It is immutable once built.
type Policy struct {
	Seasons       []Season
	Scorer        Scorer          // may be nil
	Fields        map[string]Kind // declared custom fields; values are coerced to these kinds
	ConsentNeeded bool            // --consent required: no behaviour before "profiling" consent
	AnonymousTTL  time.Duration   // default 90 days of inactivity
	KnownTTL      time.Duration   // default 400 days of inactivity
	Watcher       Watcher         // may be nil: no webhooks watch segments
	Goals         Goals           // experiments' and the holdout's goals; may be nil
}
