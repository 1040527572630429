package rules

import (
	"strconv"
	"strings"
	"time"

	"github.com/etalage/etalage/profile"
)

// Explanation is a decision with its reasons, for people: each segment's
// result and the condition that decided it, each slot's candidates in
// order and why each lost.
type Explanation struct {
	At       string         `json:"at"`
	Segments []SegmentTrace `json:"segments"`
	Slots    []SlotTrace    `json:"slots"`
	Holdout  string         `json:"holdout,omitempty"`
}

// SegmentTrace says whether a segment matched and why.
type SegmentTrace struct {
	ID        string `json:"id"`
	Matched   bool   `json:"matched"`
	DecidedBy string `json:"decided_by"` // the path of the deciding condition
	Reason    string `json:"reason"`
}

// SlotTrace lists a slot's candidates, best first.
type SlotTrace struct {
	Slot       string           `json:"slot"`
	Winner     string           `json:"winner"`
	Candidates []CandidateTrace `json:"candidates"`
	// Experiment names the experiment and variant that decide the slot
	// for this visitor, when one does.
	Experiment string `json:"experiment,omitempty"`
}

// CandidateTrace is one block considered for a slot.
type CandidateTrace struct {
	ID       string `json:"id"`
	Priority int    `json:"priority"`
	Eligible bool   `json:"eligible"`
	Reason   string `json:"reason"`
}

type tracer struct{}

// Explain evaluates like Decide and records why.
func (s *Set) Explain(in *Input, slots []string) *Explanation {
	st := s.newState(in)
	defer st.release()
	ex := &Explanation{At: in.Now.UTC().Format(time.RFC3339), Segments: []SegmentTrace{}, Slots: []SlotTrace{}}
	for i, seg := range s.segments {
		tr := SegmentTrace{ID: seg.id}
		if seg.parent >= 0 && !st.segment(seg.parent) {
			tr.DecidedBy = "parent"
			tr.Reason = "parent segment " + s.segments[seg.parent].id + " not matched"
		} else {
			_, tr.DecidedBy, tr.Reason = st.explain(seg.rule)
			tr.DecidedBy = strings.TrimPrefix(tr.DecidedBy, segPathPrefix(seg.rule.path))
		}
		tr.Matched = st.segment(i)
		ex.Segments = append(ex.Segments, tr)
	}
	var d Decision
	st.holdoutState(&d)
	if st.heldOut {
		ex.Holdout = "in the holdout: only blocks without a segment, no experiments"
	}
	for _, slot := range slots {
		t := SlotTrace{Slot: slot, Candidates: []CandidateTrace{}}
		if b := st.choose(slot, &t); b != nil {
			t.Winner = b.ID
		}
		if e, v, _ := st.experiment(slot); e != nil {
			t.Experiment = v.describe(e)
			if v.Block != nil {
				t.Winner = v.Block.ID
			}
		}
		ex.Slots = append(ex.Slots, t)
	}
	return ex
}

type slotTrace = SlotTrace

// segPathPrefix turns segments[3].rule.any[1] into rule.any[1] relative
// paths by cutting what comes before "rule".
func segPathPrefix(rulePath string) string {
	i := strings.LastIndex(rulePath, ".rule")
	if i < 0 {
		return ""
	}
	return rulePath[:i+1]
}

// explain evaluates c and returns the path and reason of the condition
// that decided the result.
func (st *state) explain(c *cond) (bool, string, string) {
	switch c.kind {
	case condAll:
		for i := range c.children {
			if ok, p, r := st.explain(&c.children[i]); !ok {
				return false, p, r
			}
		}
		return true, c.path, "all " + strconv.Itoa(len(c.children)) + " conditions hold"
	case condAny:
		for i := range c.children {
			if ok, p, r := st.explain(&c.children[i]); ok {
				return true, p, r
			}
		}
		return false, c.path, "none of " + strconv.Itoa(len(c.children)) + " conditions holds"
	case condNot:
		ok, p, r := st.explain(&c.children[0])
		return !ok, p, "not: " + r
	case condSegment:
		ok := st.segment(c.seg)
		return ok, c.path, "segment " + c.name + yesNo(ok, " matched", " not matched")
	case condInterest:
		ok := st.eval(c)
		return ok, c.path, "interest " + c.name + yesNo(ok, " is set", " is not set")
	case condConsent:
		ok := st.eval(c)
		return ok, c.path, "consent " + c.name + yesNo(ok, " granted", " not granted")
	case condScore:
		ok := st.eval(c)
		return ok, c.path, "score " + strconv.FormatFloat(st.profile(-1).Score, 'f', -1, 64) + opsText(c.ops) + yesNo(ok, ": holds", ": does not hold")
	case condField:
		v, present := st.value(&c.field)
		ok := st.ops(c.ops, v, present)
		val := "absent"
		if present {
			val = string(appendValue(nil, v, st.set.loc, escHTML))
			if v.Kind == kindDuration {
				val += " minutes"
			}
		}
		return ok, c.path, c.field.text + " is " + val + ", need" + opsText(c.ops)
	case condEvent:
		n := st.count(c)
		ok := st.ops(c.count, profile.Value{Kind: profile.KindNumber, Num: float64(n)}, true)
		where := ""
		if c.season >= 0 {
			where = " in season " + st.set.seasons[c.season].ID
			if st.active[c.season] == nil {
				where += " (not active or no seasonal profile)"
			}
		}
		within := ""
		if c.within > 0 {
			within = " within " + durText(c.within)
		}
		return ok, c.path, c.ev.String() + c.filter.String() + where + ": " + strconv.FormatUint(n, 10) + within + ", need count" + opsText(c.count)
	}
	return false, c.path, "invalid condition"
}

func yesNo(ok bool, yes, no string) string {
	if ok {
		return yes
	}
	return no
}

var opSymbols = map[opKind]string{opEq: "=", opNe: "≠", opLt: "<", opLte: "<=", opGt: ">", opGte: ">="}

func opsText(ops []op) string {
	var b strings.Builder
	for i := range ops {
		o := &ops[i]
		b.WriteByte(' ')
		if sym, ok := opSymbols[o.kind]; ok {
			b.WriteString(sym)
		} else {
			b.WriteString(o.name)
		}
		b.WriteByte(' ')
		if o.kind == opExists {
			b.WriteString(yesNo(o.num == 1, "true", "false"))
		} else if o.isDur {
			b.WriteString(durText(o.dur))
		} else {
			b.WriteString(o.text)
		}
	}
	return b.String()
}

func durText(d time.Duration) string {
	switch {
	case d%(24*time.Hour) == 0:
		return strconv.Itoa(int(d/(24*time.Hour))) + "d"
	case d%time.Hour == 0:
		return strconv.Itoa(int(d/time.Hour)) + "h"
	case d%time.Minute == 0:
		return strconv.Itoa(int(d/time.Minute)) + "m"
	}
	return strconv.Itoa(int(d/time.Second)) + "s"
}
