package rules

import (
	"strconv"
	"strings"
)

// Words tells an explanation in sentences, one per slot, for people who do
// not read traces: which block shows and the segment (with the condition)
// that earned it, and why the others lost.
func (s *Set) Words(ex *Explanation) []string {
	segs := map[string]SegmentTrace{}
	for _, t := range ex.Segments {
		segs[t.ID] = t
	}
	blockSeg := map[string]string{}
	for _, bs := range s.slots {
		for _, b := range bs {
			blockSeg[b.ID] = b.Segment
		}
	}
	out := make([]string, 0, len(ex.Slots))
	for _, sl := range ex.Slots {
		var b strings.Builder
		if sl.Winner == "" {
			b.WriteString("Nothing from etalage in " + sl.Slot + ": no block is eligible, so the page keeps its own content")
			if len(sl.Candidates) > 0 {
				b.WriteString(" (" + sl.Candidates[0].ID + ": " + sl.Candidates[0].Reason + ")")
			}
			out = append(out, b.String()+".")
			continue
		}
		var win CandidateTrace
		for _, c := range sl.Candidates {
			if c.ID == sl.Winner {
				win = c
			}
		}
		b.WriteString("In " + sl.Slot + " you see “" + sl.Winner + "”")
		if seg := blockSeg[sl.Winner]; seg != "" {
			b.WriteString(" because you are in segment " + seg)
			if t, ok := segs[seg]; ok && t.Reason != "" {
				b.WriteString(" (" + t.Reason + ")")
			}
		} else {
			b.WriteString(", shown to everyone")
		}
		var lost []string
		for _, c := range sl.Candidates {
			if c.ID == sl.Winner {
				continue
			}
			switch {
			case c.Eligible:
				lost = append(lost, "“"+c.ID+"” lost on priority ("+strconv.Itoa(c.Priority)+" against "+strconv.Itoa(win.Priority)+")")
			case c.Reason != "":
				lost = append(lost, "“"+c.ID+"” is not for you: "+c.Reason)
			}
		}
		if len(lost) > 0 {
			b.WriteString("; " + strings.Join(lost, "; "))
		}
		out = append(out, b.String()+".")
	}
	return out
}
