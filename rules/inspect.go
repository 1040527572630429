package rules

import (
	"fmt"
	"sort"
	"time"
)

// SegmentIDs returns the segment ids in document order.
func (s *Set) SegmentIDs() []string {
	out := make([]string, len(s.segments))
	for i, seg := range s.segments {
		out[i] = seg.id
	}
	return out
}

// Slots returns the slot names that have blocks, sorted.
func (s *Set) Slots() []string {
	out := make([]string, 0, len(s.slots))
	for slot := range s.slots {
		out = append(out, slot)
	}
	sort.Strings(out)
	return out
}

// Summary is what a set holds, for people: the console's overview.
type Summary struct {
	Segments []SegmentSummary `json:"segments"`
	Slots    []SlotSummary    `json:"slots"`
	Seasons  []SeasonSummary  `json:"seasons"`
}

// SegmentSummary is one segment.
type SegmentSummary struct {
	ID     string `json:"id"`
	Parent string `json:"parent,omitempty"`
}

// SlotSummary is one slot's blocks, best first.
type SlotSummary struct {
	Slot   string         `json:"slot"`
	Blocks []BlockSummary `json:"blocks"`
}

// BlockSummary is one block: who sees it, how it ranks, when it runs.
type BlockSummary struct {
	ID       string `json:"id"`
	Segment  string `json:"segment,omitempty"`
	Priority int    `json:"priority"`
	From     string `json:"from,omitempty"`
	To       string `json:"to,omitempty"`
	Running  bool   `json:"running"` // inside its schedule at the summary's time
	HasHTML  bool   `json:"has_html"`
	HasData  bool   `json:"has_data"`
}

// SeasonSummary is one season with its windows and state at a time.
type SeasonSummary struct {
	ID         string `json:"id"`
	Collect    string `json:"collect"`
	Active     string `json:"active"`
	Collecting bool   `json:"collecting"`
	ActiveNow  bool   `json:"active_now"`
}

// Summarize describes the set as it stands at now.
func (s *Set) Summarize(now time.Time) Summary {
	out := Summary{Segments: []SegmentSummary{}, Slots: []SlotSummary{}, Seasons: []SeasonSummary{}}
	for _, seg := range s.segments {
		ss := SegmentSummary{ID: seg.id}
		if seg.parent >= 0 {
			ss.Parent = s.segments[seg.parent].id
		}
		out.Segments = append(out.Segments, ss)
	}
	for _, slot := range s.Slots() {
		sl := SlotSummary{Slot: slot}
		for _, b := range s.slots[slot] {
			bs := BlockSummary{ID: b.ID, Segment: b.Segment, Priority: b.Priority, HasHTML: b.x.hasHTML, HasData: b.Data != nil, Running: true}
			if b.x.scheduled {
				if !b.x.from.IsZero() {
					bs.From = b.x.from.In(s.loc).Format("2006-01-02")
					bs.Running = !now.Before(b.x.from)
				}
				if !b.x.to.IsZero() {
					bs.To = b.x.to.Add(-time.Nanosecond).In(s.loc).Format("2006-01-02") // the last day it runs
					bs.Running = bs.Running && now.Before(b.x.to)
				}
			}
			sl.Blocks = append(sl.Blocks, bs)
		}
		out.Slots = append(out.Slots, sl)
	}
	for i := range s.seasons {
		se := &s.seasons[i]
		_, collecting := se.Collecting(now)
		out.Seasons = append(out.Seasons, SeasonSummary{
			ID:         se.ID,
			Collect:    window(se.Collect.From.Month, se.Collect.From.Day, se.Collect.To.Month, se.Collect.To.Day),
			Active:     window(se.Active.From.Month, se.Active.From.Day, se.Active.To.Month, se.Active.To.Day),
			Collecting: collecting,
			ActiveNow:  se.ActiveAt(now),
		})
	}
	return out
}

func window(fm time.Month, fd int, tm time.Month, td int) string {
	return fmt.Sprintf("%02d-%02d – %02d-%02d", int(fm), fd, int(tm), td)
}
