package rules

import (
	"strings"
	"time"

	"github.com/etalage/etalage/profile"
)

// Problem is one validation error in a definitions document.
type Problem struct {
	Path    string `json:"path"`           // e.g. segments[3].rule.any[1].field
	Message string `json:"message"`        // for a marketer
	Line    int    `json:"line,omitempty"` // the document line the path leads to, 1-based; 0 when unknown
}

// ValidationError lists every problem found in a document.
type ValidationError struct {
	Problems []Problem
}

func (e *ValidationError) Error() string {
	if len(e.Problems) == 0 {
		return "invalid definitions"
	}
	return "invalid definitions: " + e.Problems[0].String()
}

// String is "path: message", or the message alone when the problem is the
// document's as a whole (a YAML syntax error has no path).
func (p Problem) String() string {
	if p.Path == "" {
		return p.Message
	}
	return p.Path + ": " + p.Message
}

// Context is the request context that rules can see under context.*.
type Context struct {
	Device   string // mobile, tablet, desktop or bot
	Browser  string // e.g. Chrome, Firefox, Safari
	OS       string // e.g. Android, iOS, Windows, macOS, Linux
	Bot      bool
	URL      string
	Referrer string
	Language string // primary language subtag, lower-case: "nl"
}

// Input is what a decision is made on. Seasonal is parallel to the Set's
// Seasons(); the Set itself hides seasonal profiles outside their active
// window at Now.
type Input struct {
	Profile  *profile.Profile
	Seasonal []*profile.Profile
	Context  Context
	Now      time.Time
	// Visitor is the profile id that experiments and the holdout hash;
	// Enter allows assigning a visitor who is not assigned yet (never for
	// bots, prefetches, visitors without consent or a degraded decide).
	// Stored assignments apply either way.
	Visitor string
	Enter   bool
}

// Block is a compiled content block.
type Block struct {
	ID       string
	Slot     string
	Segment  string // "" for everyone
	Priority int
	Data     []byte // the block's data as compact JSON, nil when none
	x        blockExtra
}

// Choice is the block chosen for one requested slot.
type Choice struct {
	Slot  string
	Block *Block // nil when no block is eligible
	HTML  []byte // the rendered html (escaped profile values), nil when the block has none
}

// Decision is the outcome for one request: the segments the visitor is in
// (in document order) and one Choice per requested slot, in request order.
// A Decision is reused between requests: Reset keeps its buffers.
type Decision struct {
	Segments []string
	Choices  []Choice
	// Exposures are the experiments of the requested slots the visitor is
	// in, in slot order.
	Exposures []Exposure
	// Holdout is the visitor's side of the holdout ("holdout" or
	// "personalised"), "" when there is no holdout or the visitor is not
	// assigned; HoldoutNew marks a visitor the holdout hashed just now,
	// which the caller records like a new exposure.
	Holdout    string
	HoldoutNew bool
	buf        []byte
	st         state // evaluation scratch, reused with the Decision
}

// Reset empties d, keeping its memory for the next decision.
func (d *Decision) Reset() {
	d.Segments = d.Segments[:0]
	d.Choices = d.Choices[:0]
	d.Exposures = d.Exposures[:0]
	d.Holdout, d.HoldoutNew = "", false
	d.buf = d.buf[:0]
}

// NewExposures appends the assignments the decision made for the first
// time (experiments and the holdout), to be recorded on the profile.
func (d *Decision) NewExposures(dst []profile.Assignment, at int64) []profile.Assignment {
	if d.HoldoutNew {
		dst = append(dst, profile.Assignment{Experiment: profile.HoldoutID, Variant: d.Holdout, At: at})
	}
	for _, x := range d.Exposures {
		if x.New {
			dst = append(dst, profile.Assignment{Experiment: x.Experiment.ID, Variant: x.Variant.ID, At: at})
		}
	}
	return dst
}

// StaticHTML returns the block's html and true when it is the same for every
// visitor (no profile fields in it), so that a caller can encode the block's
// answer once; "" and false otherwise. A block without html is static.
func (b *Block) StaticHTML() (string, bool) {
	var sb strings.Builder
	for _, p := range b.x.tmpl {
		if p.field != nil {
			return "", false
		}
		sb.WriteString(p.lit)
	}
	return sb.String(), true
}

// HasHTML reports whether the block has html.
func (b *Block) HasHTML() bool { return b.x.hasHTML }

// Blocks returns every block of the set, slot by slot.
func (s *Set) Blocks() []*Block {
	var out []*Block
	for _, bs := range s.slots {
		out = append(out, bs...)
	}
	return out
}
