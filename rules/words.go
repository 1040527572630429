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
	title := map[string]string{}
	for _, bs := range s.slots {
		for _, b := range bs {
			blockSeg[b.ID] = b.Segment
			title[b.ID] = "“" + b.ID + "”"
			if t := b.title(); t != "" {
				title[b.ID] = "“" + t + "” (" + b.ID + ")"
			}
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
		b.WriteString("In " + sl.Slot + " you see " + title[sl.Winner])
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
				lost = append(lost, title[c.ID]+" lost on priority ("+strconv.Itoa(c.Priority)+" against "+strconv.Itoa(win.Priority)+")")
			case c.Reason != "":
				lost = append(lost, title[c.ID]+" is not for you: "+c.Reason)
			}
		}
		if len(lost) > 0 {
			b.WriteString("; " + strings.Join(lost, "; "))
		}
		out = append(out, b.String()+".")
	}
	return out
}

// title is the first text of a block's html (its heading, say; tags
// dropped, "…" where a profile value stands), for sentences about it; ""
// for a data-only block.
func (b *Block) title() string {
	var sb strings.Builder
	for _, p := range b.x.tmpl {
		if p.field != nil {
			sb.WriteString("…")
			break
		}
		sb.WriteString(p.lit)
	}
	text, inTag := make([]rune, 0, 48), false
	for _, r := range sb.String() {
		if r == '<' {
			if strings.TrimSpace(string(text)) != "" {
				break // the first element's text is the title
			}
			inTag = true
			continue
		}
		if r == '>' {
			inTag = false
			continue
		}
		if !inTag {
			text = append(text, r)
		}
	}
	t := strings.Join(strings.Fields(string(text)), " ")
	if r := []rune(t); len(r) > 48 {
		t = string(r[:47]) + "…"
	}
	return t
}
