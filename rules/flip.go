package rules

import (
	"fmt"
	"math"
	"time"

	"github.com/etalage/etalage/profile"
)

// never is the flip moment of an answer that time alone does not change.
const never = math.MaxInt64

// NextChange returns the earliest moment after in.Now at which the answer of
// segment id on this same profile could change with time alone — no event
// needed: a cart's abandoned_for passing a threshold, a within window
// sliding past the oldest behaviour it counts, a date field's age passing a
// duration, a season's active window opening or closing, a new season cycle
// starting. The zero time means that only a change of the profile can change
// the answer. The moment may be early (re-evaluating then finds the same
// answer and asks again), never late. Context conditions are taken as
// constant: segments that use them cannot be listed by a webhook.
func (s *Set) NextChange(id string, in *Input) (time.Time, error) {
	i, ok := s.segIdx[id]
	if !ok {
		return time.Time{}, fmt.Errorf("no segment %q", id)
	}
	var st state
	s.initState(&st, in)
	f := flipper{st: &st, memo: make([]int64, len(s.segments))}
	t := f.segment(i)
	if t == never {
		return time.Time{}, nil
	}
	return time.Unix(t, 0), nil
}

// flipper finds the next moment an answer can change; memo holds per
// segment 0 (not yet), the moment, or never.
type flipper struct {
	st   *state
	memo []int64
}

func (f *flipper) segment(i int) int64 {
	if f.memo[i] != 0 {
		return f.memo[i]
	}
	f.memo[i] = never // a cycle (rejected at validation) ends here
	seg := f.st.set.segments[i]
	t := int64(never)
	if seg.parent >= 0 {
		t = f.segment(seg.parent)
	}
	t = min(t, f.cond(seg.rule))
	f.memo[i] = t
	return t
}

func (f *flipper) cond(c *cond) int64 {
	if c == nil {
		return never
	}
	switch c.kind {
	case condAll, condAny, condNot:
		t := int64(never)
		for i := range c.children {
			t = min(t, f.cond(&c.children[i]))
		}
		return t
	case condSegment:
		if c.seg < 0 {
			return never
		}
		return f.segment(c.seg)
	case condField:
		t := f.field(c)
		if c.field.season >= 0 {
			t = min(t, f.seasonEdge(c.field.season))
		}
		return t
	case condEvent:
		t := f.event(c)
		if c.season >= 0 {
			t = min(t, f.seasonEdge(c.season))
		}
		return t
	}
	// interest, consent, score: only events change them.
	return never
}

// after returns the first of the moments t and t+1s that lies after now:
// an age compared with gte flips at t, with gt a second later.
func (f *flipper) after(t int64) int64 {
	switch {
	case t > f.st.now:
		return t
	case t+1 > f.st.now:
		return t + 1
	}
	return never
}

// field: only ages change with time — a date compared with a duration, and
// cart.abandoned_for. Dates compared with dates compare whole days of
// stored values and stay put.
func (f *flipper) field(c *cond) int64 {
	if c.field.scope == scopeContext {
		return never
	}
	v, ok := f.st.value(&c.field)
	if !ok {
		return never
	}
	var base int64
	switch v.Kind {
	case profile.KindDate:
		base = v.Time
	case kindDuration:
		base = f.st.now - int64(v.Num)
	default:
		return never
	}
	t := int64(never)
	for i := range c.ops {
		o := &c.ops[i]
		if !o.isDur {
			continue
		}
		t = min(t, f.after(base+int64(o.dur/time.Second)))
	}
	return t
}

// event: a count with a within window changes when behaviour leaves the
// window. Day windows count whole UTC day buckets, so the oldest counted
// day leaves at a midnight; windows under a day count today's buckets of
// counters last used inside the window, which change at the counter's
// last use plus the window and at midnight.
func (f *flipper) event(c *cond) int64 {
	st := f.st
	if c.within <= 0 {
		return never
	}
	p := st.profile(c.season)
	if p == nil {
		return never
	}
	const day = 24 * 60 * 60
	t := int64(never)
	lineFilter := c.filter.sku != "" || c.filter.category != ""
	for i := range p.Behaviour {
		ctr := &p.Behaviour[i]
		if ctr.Type != c.ev || (c.ev == profile.Purchase && lineFilter != (ctr.Key.SKU != "")) || !c.filter.matchesKey(&ctr.Key) {
			continue
		}
		if c.within >= 24*time.Hour {
			days := int32(c.within / (24 * time.Hour))
			from := st.today - days + 1
			for _, d := range ctr.Days {
				switch {
				case d.N == 0 || d.Day < from:
				case d.Day > st.today:
					t = min(t, int64(d.Day)*day) // a day bucket ahead of the clock enters
				default:
					t = min(t, int64(d.Day+days)*day) // the oldest counted day leaves
				}
			}
			continue
		}
		secs := int64(c.within / time.Second)
		if ctr.Last < st.now-secs || len(ctr.Days) == 0 || ctr.Days[len(ctr.Days)-1].Day != st.today {
			continue
		}
		t = min(t, f.after(ctr.Last+secs+1), int64(st.today+1)*day)
	}
	return t
}

// seasonEdge returns the next moment the season's profile becomes visible
// or invisible to rules: its active window opening or closing, or a new
// cycle starting with the collect window (a profile of the old cycle then
// stops counting).
func (f *flipper) seasonEdge(i int) int64 {
	se := &f.st.set.seasons[i]
	loc := se.Location
	if loc == nil {
		loc = time.UTC
	}
	now := time.Unix(f.st.now, 0).In(loc)
	t := int64(never)
	for y := now.Year() - 1; y <= now.Year()+1; y++ {
		for _, e := range []time.Time{
			dayStart(y, se.Active.From, loc),
			dayStart(y, se.Active.To, loc).AddDate(0, 0, 1),
			dayStart(y, se.Collect.From, loc),
		} {
			if u := e.Unix(); u > f.st.now {
				t = min(t, u)
			}
		}
	}
	return t
}

// dayStart is midnight in loc of month-day md in year; 02-29 in a common
// year is taken as 02-28 for a window's end and rolls to 03-01 as a start,
// which at worst asks for one re-evaluation too many.
func dayStart(year int, md profile.MonthDay, loc *time.Location) time.Time {
	d := md.Day
	if md.Month == time.February && d == 29 && time.Date(year, 3, 0, 0, 0, 0, 0, loc).Day() != 29 {
		d = 28
	}
	return time.Date(year, md.Month, d, 0, 0, 0, 0, loc)
}
