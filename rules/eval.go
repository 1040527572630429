package rules

import (
	"fmt"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/etalage/etalage/profile"
)

// kindDuration marks a value that is a duration in seconds (Num).
const kindDuration profile.Kind = 100

// state is the per-decision scratch: the segment memo (0 unknown, 1 in,
// 2 out) and the active seasonal profiles.
type state struct {
	set    *Set
	in     *Input
	memo   []uint8
	active []*profile.Profile // per season: the seasonal profile when visible
	now    int64
	today  int32
	tr     *tracer
	pooled bool
	// heldOut: the visitor is in the holdout and sees only blocks shown
	// to everyone.
	heldOut bool
}

var statePool = sync.Pool{New: func() any { return &state{} }}

func (s *Set) newState(in *Input) *state {
	st := statePool.Get().(*state)
	st.pooled = true
	s.initState(st, in)
	return st
}

// initState readies st for one evaluation of in, reusing its memory.
func (s *Set) initState(st *state, in *Input) {
	st.set, st.in = s, in
	if cap(st.memo) < len(s.segments) {
		st.memo = make([]uint8, len(s.segments))
	}
	st.memo = st.memo[:len(s.segments)]
	clear(st.memo)
	st.active = st.active[:0]
	for i := range s.seasons {
		var p *profile.Profile
		if i < len(in.Seasonal) && in.Seasonal[i] != nil && s.seasons[i].ActiveAt(in.Now) {
			p = in.Seasonal[i]
		}
		st.active = append(st.active, p)
	}
	st.now = in.Now.Unix()
	st.today = profile.Day(st.now)
	st.tr = nil
	st.heldOut = false
}

func (st *state) release() {
	st.set, st.in, st.tr = nil, nil, nil
	for i := range st.active {
		st.active[i] = nil
	}
	if st.pooled {
		statePool.Put(st)
	}
}

var emptyProfile = &profile.Profile{}

func (st *state) profile(season int) *profile.Profile {
	if season < 0 {
		if st.in.Profile == nil {
			return emptyProfile
		}
		return st.in.Profile
	}
	return st.active[season]
}

// segment reports whether segment i matches, evaluating it at most once.
func (st *state) segment(i int) bool {
	switch st.memo[i] {
	case 1:
		return true
	case 2:
		return false
	}
	seg := st.set.segments[i]
	ok := seg.parent < 0 || st.segment(seg.parent)
	if ok {
		ok = st.eval(seg.rule)
	}
	if ok {
		st.memo[i] = 1
	} else {
		st.memo[i] = 2
	}
	return ok
}

func (st *state) eval(c *cond) bool {
	switch c.kind {
	case condAll:
		for i := range c.children {
			if !st.eval(&c.children[i]) {
				return false
			}
		}
		return true
	case condAny:
		for i := range c.children {
			if st.eval(&c.children[i]) {
				return true
			}
		}
		return false
	case condNot:
		return !st.eval(&c.children[0])
	case condSegment:
		return st.segment(c.seg)
	case condInterest:
		return st.profile(-1).HasInterest(c.name)
	case condConsent:
		return st.profile(-1).HasConsent(c.name)
	case condScore:
		v := profile.Value{Kind: profile.KindNumber, Num: st.profile(-1).Score}
		return st.ops(c.ops, v, true)
	case condField:
		v, ok := st.value(&c.field)
		return st.ops(c.ops, v, ok)
	case condEvent:
		n := st.count(c)
		return st.ops(c.count, profile.Value{Kind: profile.KindNumber, Num: float64(n)}, true)
	}
	return false
}

// count counts the events a condition selects, in the primary profile or
// the season's when it is visible.
func (st *state) count(c *cond) uint64 {
	p := st.profile(c.season)
	if p == nil {
		return 0
	}
	var n uint64
	lineFilter := c.filter.sku != "" || c.filter.category != ""
	from := int32(0)
	var since int64
	if c.within > 0 {
		if c.within >= 24*time.Hour {
			from = st.today - int32(c.within/(24*time.Hour)) + 1
		} else {
			// Day buckets cannot split a day: a window under a day counts
			// today's events of counters used within it.
			from = st.today
			since = st.now - int64(c.within/time.Second)
		}
	}
	for i := range p.Behaviour {
		ctr := &p.Behaviour[i]
		if ctr.Type != c.ev {
			continue
		}
		if c.ev == profile.Purchase && lineFilter != (ctr.Key.SKU != "") {
			continue // order counter vs order-line counters
		}
		if !c.filter.matchesKey(&ctr.Key) {
			continue
		}
		if c.within == 0 {
			n += uint64(ctr.Total)
			continue
		}
		if since != 0 && ctr.Last < since {
			continue
		}
		for j := len(ctr.Days) - 1; j >= 0 && ctr.Days[j].Day >= from; j-- {
			if ctr.Days[j].Day <= st.today {
				n += uint64(ctr.Days[j].N)
			}
		}
	}
	return n
}

// value returns a field's value; ok false when it is absent.
func (st *state) value(f *fieldRef) (profile.Value, bool) {
	if f.scope == scopeContext {
		return st.contextValue(f.name)
	}
	p := st.profile(f.season)
	if p == nil {
		return profile.Value{}, false
	}
	switch f.scope {
	case scopeProfile:
		switch f.name {
		case "email":
			return profile.Value{Kind: profile.KindString, Str: p.Email}, p.Email != ""
		case "customer_id":
			return profile.Value{Kind: profile.KindString, Str: p.CustomerID}, p.CustomerID != ""
		}
		fl, ok := p.Fields[f.name]
		return fl.Value, ok && fl.Value.Kind != profile.KindNone
	case scopeVisitor:
		switch f.name {
		case "first_seen":
			return profile.Value{Kind: profile.KindDate, Time: p.FirstSeen}, p.FirstSeen != 0
		case "last_seen":
			return profile.Value{Kind: profile.KindDate, Time: p.LastSeen}, p.LastSeen != 0
		case "visits":
			return profile.Value{Kind: profile.KindNumber, Num: float64(p.Visits)}, true
		case "known":
			return profile.Value{Kind: profile.KindBool, Num: boolNum(p.Known)}, true
		}
	case scopeCart:
		switch f.name {
		case "items":
			return profile.Value{Kind: profile.KindNumber, Num: float64(len(p.Cart.Items))}, true
		case "value":
			return profile.Value{Kind: profile.KindNumber, Num: p.Cart.Value()}, true
		case "abandoned_for":
			if len(p.Cart.Items) == 0 || p.Cart.UpdatedAt == 0 {
				return profile.Value{}, false
			}
			return profile.Value{Kind: kindDuration, Num: float64(st.now - p.Cart.UpdatedAt)}, true
		}
	}
	return profile.Value{}, false
}

var weekdays = [...]string{"sunday", "monday", "tuesday", "wednesday", "thursday", "friday", "saturday"}

func (st *state) contextValue(name string) (profile.Value, bool) {
	ctx := &st.in.Context
	str := func(s string) (profile.Value, bool) { return profile.Value{Kind: profile.KindString, Str: s}, s != "" }
	switch name {
	case "device":
		return str(ctx.Device)
	case "browser":
		return str(ctx.Browser)
	case "os":
		return str(ctx.OS)
	case "url":
		return str(ctx.URL)
	case "referrer":
		return str(ctx.Referrer)
	case "language":
		return str(ctx.Language)
	case "bot":
		return profile.Value{Kind: profile.KindBool, Num: boolNum(ctx.Bot)}, true
	case "weekday":
		return profile.Value{Kind: profile.KindString, Str: weekdays[st.in.Now.In(st.set.loc).Weekday()]}, true
	case "hour":
		return profile.Value{Kind: profile.KindNumber, Num: float64(st.in.Now.In(st.set.loc).Hour())}, true
	}
	return profile.Value{}, false
}

// ops reports whether every operator holds. An absent value satisfies only
// ne, nin and exists: false; a value of another kind than the operand
// satisfies nothing but ne and nin (never an error at request time).
func (st *state) ops(ops []op, v profile.Value, present bool) bool {
	for i := range ops {
		if !st.op(&ops[i], v, present) {
			return false
		}
	}
	return true
}

func (st *state) op(o *op, v profile.Value, present bool) bool {
	if o.kind == opExists {
		return present == (o.num == 1)
	}
	if !present {
		return o.kind == opNe || o.kind == opNin
	}
	switch o.kind {
	case opIn, opNin:
		in := false
		switch v.Kind {
		case profile.KindString:
			_, in = o.set[v.Str]
		case profile.KindNumber:
			var buf [32]byte
			_, in = o.set[string(strconv.AppendFloat(buf[:0], v.Num, 'f', -1, 64))]
		case profile.KindList:
			for _, e := range v.List {
				if _, in = o.set[e]; in {
					break
				}
			}
		}
		return in == (o.kind == opIn)
	case opContains:
		switch v.Kind {
		case profile.KindString:
			return strings.Contains(v.Str, o.str)
		case profile.KindList:
			for _, e := range v.List {
				if e == o.str {
					return true
				}
			}
		}
		return false
	case opPrefix:
		return v.Kind == profile.KindString && strings.HasPrefix(v.Str, o.str)
	case opSuffix:
		return v.Kind == profile.KindString && strings.HasSuffix(v.Str, o.str)
	}
	// eq ne lt lte gt gte
	cmp, ok := st.compare(o, v)
	if !ok {
		return o.kind == opNe
	}
	switch o.kind {
	case opEq:
		return cmp == 0
	case opNe:
		return cmp != 0
	case opLt:
		return cmp < 0
	case opLte:
		return cmp <= 0
	case opGt:
		return cmp > 0
	case opGte:
		return cmp >= 0
	}
	return false
}

// compare orders v against the operand: -1, 0, 1, or ok false when they are
// of different kinds. A date against a duration compares its age.
func (st *state) compare(o *op, v profile.Value) (int, bool) {
	if o.isDur {
		var secs float64
		switch v.Kind {
		case kindDuration:
			secs = v.Num
		case profile.KindDate:
			secs = float64(st.now - v.Time)
		default:
			return 0, false
		}
		return cmpFloat(secs, o.dur.Seconds()), true
	}
	if v.Kind != o.vk {
		return 0, false
	}
	switch v.Kind {
	case profile.KindString:
		return strings.Compare(v.Str, o.str), true
	case profile.KindNumber, profile.KindBool:
		return cmpFloat(v.Num, o.num), true
	case profile.KindDate:
		// Dates compare by day in the shop's time zone.
		a := time.Unix(v.Time, 0).In(st.set.loc)
		b := time.Unix(o.time, 0).In(st.set.loc)
		ad := a.Year()*1000 + a.YearDay()
		bd := b.Year()*1000 + b.YearDay()
		return cmpInt(ad, bd), true
	}
	return 0, false
}

func cmpFloat(a, b float64) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

func cmpInt(a, b int) int { return cmpFloat(float64(a), float64(b)) }

// Decide appends to d the segments the visitor is in (document order) and
// one choice per requested slot (request order).
func (s *Set) Decide(in *Input, slots []string, d *Decision) {
	// The scratch state lives in the Decision the caller reuses: no pool,
	// so no allocation even where sync.Pool drops items (the race detector).
	st := &d.st
	s.initState(st, in)
	defer st.release()
	for i, seg := range s.segments {
		if st.segment(i) {
			d.Segments = append(d.Segments, seg.id)
		}
	}
	st.holdoutState(d)
	type span struct{ start, end int }
	var spans [16]span
	for si, slot := range slots {
		var b *Block
		if e, v, isNew := st.experiment(slot); e != nil {
			d.Exposures = append(d.Exposures, Exposure{Experiment: e, Variant: v, New: isNew})
			b = v.Block
		}
		if b == nil {
			b = st.choose(slot, nil)
		}
		ch := Choice{Slot: slot, Block: b}
		if b != nil && b.x.hasHTML {
			start := len(d.buf)
			d.buf = st.render(d.buf, b.x.tmpl)
			if si < len(spans) {
				spans[si] = span{start, len(d.buf)}
			} else {
				ch.HTML = append([]byte(nil), d.buf[start:]...)
			}
		}
		d.Choices = append(d.Choices, ch)
	}
	// The buffer may have moved while it grew: slice it only now.
	for i := range d.Choices[len(d.Choices)-len(slots):] {
		c := &d.Choices[len(d.Choices)-len(slots)+i]
		if c.Block != nil && c.Block.x.hasHTML && i < len(spans) {
			c.HTML = d.buf[spans[i].start:spans[i].end:spans[i].end]
		}
	}
}

// choose returns the best eligible block of a slot; with tr it also
// records why each candidate won or lost.
func (st *state) choose(slot string, tr *slotTrace) *Block {
	var win *Block
	for _, b := range st.set.slots[slot] {
		if tr == nil {
			if st.eligible(b) {
				return b
			}
			continue
		}
		var why string
		eligible := st.eligible(b)
		switch {
		case !eligible && b.x.scheduled && !st.inSchedule(b):
			why = "outside its schedule"
		case !eligible:
			why = "segment " + b.Segment + " not matched"
		case win != nil:
			why = "lower priority than " + win.ID
		default:
			win, why = b, "winner"
		}
		tr.Candidates = append(tr.Candidates, CandidateTrace{ID: b.ID, Priority: b.Priority, Eligible: eligible, Reason: why})
	}
	return win
}

func (st *state) eligible(b *Block) bool {
	if b.x.seg >= 0 && st.heldOut {
		return false
	}
	return (!b.x.scheduled || st.inSchedule(b)) && (b.x.seg < 0 || st.segment(b.x.seg))
}

func (st *state) inSchedule(b *Block) bool {
	if !b.x.from.IsZero() && st.in.Now.Before(b.x.from) {
		return false
	}
	if !b.x.to.IsZero() && !st.in.Now.Before(b.x.to) {
		return false
	}
	return true
}

// render appends a template with escaped values.
func (st *state) render(dst []byte, parts []part) []byte {
	for i := range parts {
		p := &parts[i]
		if p.field == nil {
			dst = append(dst, p.lit...)
			continue
		}
		v, ok := st.value(p.field)
		if !ok {
			dst = appendContextual(dst, p.def, p.esc)
			continue
		}
		dst = appendValue(dst, v, st.set.loc, p.esc)
	}
	return dst
}

// appendValue appends a field's value escaped by esc. Numbers, booleans
// and dates are plain ASCII that needs no escaping anywhere.
func appendValue(dst []byte, v profile.Value, loc *time.Location, esc escaper) []byte {
	switch v.Kind {
	case profile.KindString:
		return appendContextual(dst, v.Str, esc)
	case profile.KindNumber:
		return strconv.AppendFloat(dst, v.Num, 'f', -1, 64)
	case profile.KindBool:
		return strconv.AppendBool(dst, v.Num != 0)
	case profile.KindDate:
		return time.Unix(v.Time, 0).In(loc).AppendFormat(dst, time.DateOnly)
	case kindDuration:
		return strconv.AppendInt(dst, int64(v.Num/60), 10)
	case profile.KindList:
		if esc != escHTML {
			return appendContextual(dst, strings.Join(v.List, ", "), esc)
		}
		for i, e := range v.List {
			if i > 0 {
				dst = append(dst, ", "...)
			}
			dst = appendEscaped(dst, e)
		}
	}
	return dst
}

// Member reports whether the input is in segment id.
func (s *Set) Member(id string, in *Input) (bool, error) {
	i, ok := s.segIdx[id]
	if !ok {
		return false, fmt.Errorf("no segment %q", id)
	}
	st := s.newState(in)
	defer st.release()
	return st.segment(i), nil
}
