package rules

import (
	"math"
	"strings"
	"time"

	"github.com/etalage/etalage/profile"
)

// Experiment is a compiled A/B test on one slot: eligible visitors (those in
// Segment, when set) enter with probability Traffic/100 and are assigned a
// variant by weight. The first variant is the control and keeps the normal
// decision; each other variant's block wins the slot.
type Experiment struct {
	ID       string
	Slot     string
	Segment  string  // "" for everyone
	Traffic  float64 // percent of eligible visitors who enter, (0, 100]
	Variants []Variant
	seg      int // -1 for everyone
	goal     goal
	from, to time.Time // schedule; zero when open
}

// Variant is one arm of an experiment. Block is nil for the control.
type Variant struct {
	ID     string
	Weight float64
	Block  *Block
}

// Holdout is the global holdout: Percent of visitors see only blocks shown
// to everyone and enter no experiment, so that their outcome measures what
// personalisation adds.
type Holdout struct {
	Percent float64
	goal    goal
}

// goal is the event that converts an exposed visitor, within a window after
// the first exposure (0: no limit).
type goal struct {
	ev     profile.EventType
	filter filter
	within time.Duration
}

func (g *goal) matches(ev *profile.Event) bool {
	return g.ev == ev.Type && g.filter.matchesEvent(ev)
}

// Exposure is an experiment the decision exposed the visitor to, in slot
// order. New marks a first exposure, which the caller must record on the
// profile (profile.Service.Expose) so that it counts once.
type Exposure struct {
	Experiment *Experiment
	Variant    *Variant
	New        bool
}

// Experiments returns the experiments in document order.
func (s *Set) Experiments() []*Experiment { return s.experiments }

// Experiment returns the experiment id, or nil.
func (s *Set) Experiment(id string) *Experiment {
	if i, ok := s.expIdx[id]; ok {
		return s.experiments[i]
	}
	return nil
}

// Holdout returns the holdout, or nil when the document has none.
func (s *Set) Holdout() *Holdout { return s.holdout }

// Goal implements profile.Goals: the window of experiment id's (or the
// holdout's) goal when ev is a goal event of it.
func (s *Set) Goal(id string, ev *profile.Event) (time.Duration, bool) {
	var g *goal
	if id == profile.HoldoutID {
		if s.holdout == nil {
			return 0, false
		}
		g = &s.holdout.goal
	} else if e := s.Experiment(id); e != nil {
		g = &e.goal
	} else {
		return 0, false
	}
	return g.within, g.matches(ev)
}

// Running reports whether the experiment's schedule holds t.
func (e *Experiment) Running(t time.Time) bool {
	return (e.from.IsZero() || !t.Before(e.from)) && (e.to.IsZero() || t.Before(e.to))
}

// Variant returns the variant id, or nil.
func (e *Experiment) Variant(id string) *Variant {
	for i := range e.Variants {
		if e.Variants[i].ID == id {
			return &e.Variants[i]
		}
	}
	return nil
}

// Weights returns the variants' weights as fractions summing to 1.
func (e *Experiment) Weights() []float64 {
	var sum float64
	for _, v := range e.Variants {
		sum += v.Weight
	}
	out := make([]float64, len(e.Variants))
	for i, v := range e.Variants {
		out[i] = v.Weight / sum
	}
	return out
}

// Bucket is the uniform hash behind every assignment: a number in [0, 1)
// that depends only on salt (the experiment id, or "holdout") and the
// visitor id, the same on every node and after restarts. FNV-1a over both
// (separated by a zero byte), then the MurmurHash3 64-bit finaliser so
// that every output bit depends on every input bit; the top 53 bits make
// the fraction.
func Bucket(salt, visitor string) float64 {
	h := uint64(14695981039346656037)
	for i := 0; i < len(salt); i++ {
		h = (h ^ uint64(salt[i])) * 1099511628211
	}
	h *= 1099511628211 // the zero separator
	for i := 0; i < len(visitor); i++ {
		h = (h ^ uint64(visitor[i])) * 1099511628211
	}
	h ^= h >> 33
	h *= 0xff51afd7ed558ccd
	h ^= h >> 33
	h *= 0xc4ceb9fe1a85ec53
	h ^= h >> 33
	return float64(h>>11) / (1 << 53)
}

// Assign returns the variant a visitor who is not assigned yet gets, or nil
// when the visitor falls outside the experiment's traffic. Visitors inside
// the traffic share keep their bucket when the traffic grows.
func (e *Experiment) Assign(visitor string) *Variant {
	u := Bucket(e.ID, visitor)
	share := e.Traffic / 100
	if u >= share {
		return nil
	}
	u /= share
	var sum float64
	for _, v := range e.Variants {
		sum += v.Weight
	}
	acc := 0.0
	for i := range e.Variants {
		acc += e.Variants[i].Weight / sum
		if u < acc {
			return &e.Variants[i]
		}
	}
	return &e.Variants[len(e.Variants)-1]
}

// InHoldout reports whether a visitor not assigned yet falls in the holdout.
func (h *Holdout) InHoldout(visitor string) bool {
	return Bucket("holdout", visitor) < h.Percent/100
}

// holdoutState settles whether the visitor is held out: the stored
// assignment when there is one, else the hash for a visitor who may enter
// (recorded by the caller as d.HoldoutNew).
func (st *state) holdoutState(d *Decision) {
	st.heldOut = false
	h := st.set.holdout
	if h == nil {
		return
	}
	if p := st.in.Profile; p != nil {
		if a := p.Assignment(profile.HoldoutID); a != nil {
			st.heldOut = a.Variant == profile.VariantHoldout
			d.Holdout = a.Variant
			return
		}
	}
	if !st.in.Enter || st.in.Visitor == "" {
		return
	}
	st.heldOut = h.InHoldout(st.in.Visitor)
	d.HoldoutNew = true
	d.Holdout = profile.VariantPersonalised
	if st.heldOut {
		d.Holdout = profile.VariantHoldout
	}
}

// experiment finds the running experiment of slot this visitor is in (a
// stored assignment, or a new one for a visitor who may enter), or nil.
func (st *state) experiment(slot string) (*Experiment, *Variant, bool) {
	if st.heldOut {
		return nil, nil, false
	}
	for _, e := range st.set.expBySlot[slot] {
		if !e.Running(st.in.Now) {
			continue
		}
		if p := st.in.Profile; p != nil {
			if a := p.Assignment(e.ID); a != nil {
				if v := e.Variant(a.Variant); v != nil {
					return e, v, false
				}
				continue // a variant since removed: the normal decision
			}
		}
		if !st.in.Enter || st.in.Visitor == "" || (e.seg >= 0 && !st.segment(e.seg)) {
			continue
		}
		if v := e.Assign(st.in.Visitor); v != nil {
			return e, v, true
		}
	}
	return nil, nil, false
}

func (s *Set) compileHoldout(c *checker, n node) {
	m := c.fields(n, "percent", "goal")
	h := &Holdout{}
	if p, ok := m["percent"]; ok {
		if f, ok := c.number(p); ok {
			if f <= 0 || f >= 100 {
				c.add(p.path, "must be more than 0 and less than 100")
			}
			h.Percent = f
		}
	} else {
		c.add(n.at("percent"), "required")
	}
	h.goal = s.compileGoal(c, m["goal"].orMissing(c, n.at("goal")))
	s.holdout = h
}

// compileGoal compiles a goal: one event condition with its filters and an
// optional window, like {event: purchase, within: 14d}.
func (s *Set) compileGoal(c *checker, n node) goal {
	var g goal
	if n.Tag == "!!missing" {
		return g
	}
	if !n.isMap() {
		c.add(n.path, "a goal is an event condition like {event: purchase, within: 14d}")
		return g
	}
	keys := append([]string{"event", "within"}, filterKeys...)
	if _, ok := mapKey(n, "event"); !ok {
		c.add(n.path, "a goal is an event condition like {event: purchase, within: 14d}; it has no event")
		return g
	}
	m := c.fields(n, keys...)
	g.ev = c.eventType(m["event"])
	g.filter = c.filter(m)
	if w, ok := m["within"]; ok {
		g.within, _ = c.duration(w)
	}
	return g
}

func mapKey(n node, key string) (node, bool) {
	if !n.isMap() {
		return node{}, false
	}
	for i := 0; i+1 < len(n.Content); i += 2 {
		if n.Content[i].Value == key {
			return node{n.Content[i+1], n.at(key)}, true
		}
	}
	return node{}, false
}

// blockByID finds a compiled block of any slot.
func (s *Set) blockByID(id string) *Block {
	for _, bs := range s.slots {
		for _, b := range bs {
			if b.ID == id {
				return b
			}
		}
	}
	return nil
}

func (s *Set) compileExperiments(c *checker, n node) {
	for _, en := range c.list(n) {
		m := c.fields(en, "id", "name", "description", "slot", "segment", "traffic", "variants", "goal", "schedule")
		e := &Experiment{seg: -1, Traffic: 100}
		id, okID := c.id(m["id"].orMissing(c, en.at("id")))
		if okID {
			if _, dup := s.expIdx[id]; dup {
				c.add(en.at("id"), "experiment %q defined twice", id)
				okID = false
			}
			e.ID = id
		}
		e.Slot, _ = c.id(m["slot"].orMissing(c, en.at("slot")))
		if sg, ok := m["segment"]; ok {
			if sid, ok := c.str(sg); ok {
				if j, ok := s.segIdx[sid]; ok {
					e.seg, e.Segment = j, sid
				} else {
					c.add(sg.path, "unknown segment %q", sid)
				}
			}
		}
		if t, ok := m["traffic"]; ok {
			if f, ok := c.number(t); ok {
				if f <= 0 || f > 100 {
					c.add(t.path, "must be more than 0 and at most 100 (percent)")
				}
				e.Traffic = f
			}
		}
		s.compileVariants(c, e, m["variants"].orMissing(c, en.at("variants")))
		e.goal = s.compileGoal(c, m["goal"].orMissing(c, en.at("goal")))
		if sc, ok := m["schedule"]; ok {
			e.from, e.to = s.schedule(c, sc)
		}
		if okID {
			s.expIdx[id] = len(s.experiments)
			s.experiments = append(s.experiments, e)
			s.expNodes = append(s.expNodes, en)
		}
	}
	s.checkOverlaps(c)
	for _, e := range s.experiments {
		s.expBySlot[e.Slot] = append(s.expBySlot[e.Slot], e)
	}
}

func (s *Set) compileVariants(c *checker, e *Experiment, n node) {
	if n.Tag == "!!missing" {
		return
	}
	items := c.list(n)
	if n.isList() && len(items) < 2 {
		c.add(n.path, "an experiment needs at least two variants: the control first, then the blocks to test")
	}
	seen := map[string]bool{}
	for i, vn := range items {
		m := c.fields(vn, "id", "weight", "block")
		v := Variant{Weight: 1}
		if id, ok := c.id(m["id"].orMissing(c, vn.at("id"))); ok {
			if seen[id] {
				c.add(vn.at("id"), "variant %q given twice", id)
			}
			seen[id] = true
			v.ID = id
		}
		if w, ok := m["weight"]; ok {
			if f, ok := c.number(w); ok {
				if f <= 0 || math.IsInf(f, 0) {
					c.add(w.path, "must be more than 0")
				}
				v.Weight = f
			}
		}
		bn, hasBlock := m["block"]
		switch {
		case i == 0 && hasBlock:
			c.add(bn.path, "the first variant is the control: it keeps the normal decision and names no block")
		case i > 0 && !hasBlock:
			c.add(vn.at("block"), "required: the block that wins the slot in this variant")
		case hasBlock:
			if bid, ok := c.str(bn); ok {
				b := s.blockByID(bid)
				switch {
				case b == nil:
					c.add(bn.path, "unknown block %q", bid)
				case e.Slot != "" && b.Slot != e.Slot:
					c.add(bn.path, "block %q is for slot %q, not %q", bid, b.Slot, e.Slot)
				default:
					v.Block = b
				}
			}
		}
		e.Variants = append(e.Variants, v)
	}
}

// schedule compiles a block's or an experiment's {from, to}: a date alone
// runs to the end of that day.
func (s *Set) schedule(c *checker, sc node) (from, to time.Time) {
	sm := c.fields(sc, "from", "to")
	for _, k := range []string{"from", "to"} {
		v, has := sm[k]
		if !has {
			continue
		}
		str, ok := c.str(v)
		if !ok {
			continue
		}
		t, ok := parseDate(str, s.loc)
		if !ok {
			c.add(v.path, "%q is not a date like 2026-11-10 or an RFC 3339 time", str)
			continue
		}
		if k == "from" {
			from = t
		} else {
			if len(str) == len(time.DateOnly) {
				t = t.AddDate(0, 0, 1) // the whole last day
			}
			to = t
		}
	}
	if !from.IsZero() && !to.IsZero() && !to.After(from) {
		c.add(sc.at("to"), "ends before it starts")
	}
	return from, to
}

// checkOverlaps rejects two experiments on one slot that can run for the
// same visitor at the same time: overlapping schedules, and the same
// eligibility segment or either open to everyone. Experiments on one slot
// with different segments may overlap; a visitor in both segments enters
// only the first in document order.
func (s *Set) checkOverlaps(c *checker) {
	for i, a := range s.experiments {
		for j := 0; j < i; j++ {
			b := s.experiments[j]
			if a.Slot != b.Slot || a.Slot == "" {
				continue
			}
			if !schedulesOverlap(a, b) {
				continue
			}
			if a.seg >= 0 && b.seg >= 0 && a.seg != b.seg {
				continue
			}
			c.add(s.expNodes[i].at("slot"), "experiments %q and %q both run on slot %q for the same visitors at the same time; give them schedules that do not overlap or different segments", b.ID, a.ID, a.Slot)
		}
	}
}

func schedulesOverlap(a, b *Experiment) bool {
	// [from, to) intervals, zero meaning open.
	if !a.to.IsZero() && !b.from.IsZero() && !a.to.After(b.from) {
		return false
	}
	if !b.to.IsZero() && !a.from.IsZero() && !b.to.After(a.from) {
		return false
	}
	return true
}

// describe is a short text of a variant for explain traces.
func (v *Variant) describe(e *Experiment) string {
	var sb strings.Builder
	sb.WriteString("experiment " + e.ID + ", variant " + v.ID)
	if v.Block == nil {
		sb.WriteString(" (control: the normal decision)")
	} else {
		sb.WriteString(" (block " + v.Block.ID + ")")
	}
	return sb.String()
}
