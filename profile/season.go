package profile

import (
	"fmt"
	"strconv"
	"time"
)

// MonthDay is a day of the year, as "11-01" in definitions documents.
type MonthDay struct {
	Month time.Month
	Day   int
}

// Window is a yearly range of days, both ends included, in a time zone.
// From may come after To: the window then crosses New Year.
type Window struct {
	From, To MonthDay
}

// Season is a compiled season: when events are collected into its profile,
// when rules can see that profile, which events it takes, and how long its
// profile is kept.
type Season struct {
	ID         string
	Location   *time.Location
	Collect    Window
	Active     Window
	Gift       bool     // route events flagged gift: true
	Categories []string // route events in these categories
	RetainDays int
}

// ParseMonthDay parses "MM-DD" ("11-01"). February 29 is allowed.
func ParseMonthDay(s string) (MonthDay, error) {
	if len(s) != 5 || s[2] != '-' {
		return MonthDay{}, fmt.Errorf("%q is not a month-day like 11-01", s)
	}
	m, err1 := strconv.Atoi(s[:2])
	d, err2 := strconv.Atoi(s[3:])
	if err1 != nil || err2 != nil || m < 1 || m > 12 || d < 1 || d > daysIn[m] {
		return MonthDay{}, fmt.Errorf("%q is not a month-day like 11-01", s)
	}
	return MonthDay{Month: time.Month(m), Day: d}, nil
}

var daysIn = [13]int{0, 31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31}

// String formats m as "MM-DD".
func (m MonthDay) String() string {
	return fmt.Sprintf("%02d-%02d", int(m.Month), m.Day)
}

func (m MonthDay) ord() int { return int(m.Month)*32 + m.Day }

// Contains reports whether t, seen in loc, falls on a day of the window.
func (w Window) Contains(t time.Time, loc *time.Location) bool {
	_, ok := w.Opened(t, loc)
	return ok
}

// Opened reports whether t falls in the window and, if so, the year in
// which the current occurrence of the window opened (for a window crossing
// New Year, a day in January belongs to the occurrence that opened the year
// before).
func (w Window) Opened(t time.Time, loc *time.Location) (int, bool) {
	if loc == nil {
		loc = time.UTC
	}
	t = t.In(loc)
	d := MonthDay{Month: t.Month(), Day: t.Day()}.ord()
	from, to := w.From.ord(), w.To.ord()
	if from <= to {
		return t.Year(), d >= from && d <= to
	}
	// Crosses New Year: [from, end of year] or [start of year, to].
	if d >= from {
		return t.Year(), true
	}
	if d <= to {
		return t.Year() - 1, true
	}
	return 0, false
}

// Collecting reports whether events at t are routed to the season, and the
// cycle they belong to (see Cycle).
func (s *Season) Collecting(t time.Time) (int, bool) {
	if !s.Collect.Contains(t, s.Location) {
		return 0, false
	}
	return s.Cycle(t), true
}

// ActiveAt reports whether rules can see the season's profile at t.
func (s *Season) ActiveAt(t time.Time) bool {
	return s.Active.Contains(t, s.Location)
}

// Cycle returns the cycle t belongs to: the year in which the collect
// window of the season's most recent occurrence opened, where an occurrence
// starts on the first day of its collect or of its active window, whichever
// comes first. A seasonal profile is stored and shown for one cycle, so an
// active window that opens a few days before the collect window shows the
// coming cycle's (still empty) profile, never last year's.
func (s *Season) Cycle(t time.Time) int {
	loc := s.loc()
	t = t.In(loc)
	day := time.Date(t.Year(), t.Month(), t.Day(), 0, 0, 0, 0, time.UTC)
	for c := t.Year() + 1; ; c-- {
		if !s.opens(c).After(day) {
			return c
		}
	}
}

// retain is how long a cycle's profile is kept after the cycle ends.
func (s *Season) retain() time.Duration {
	return time.Duration(max(s.RetainDays, 1)) * 24 * time.Hour
}

func (s *Season) loc() *time.Location {
	if s.Location == nil {
		return time.UTC
	}
	return s.Location
}

// opens returns the first day (a UTC midnight standing for a day in the
// season's zone) of cycle's occurrence.
func (s *Season) opens(cycle int) time.Time {
	start, _ := s.active(cycle)
	if c := lastDay(cycle, s.Collect.From); c.Before(start) {
		return c
	}
	return start
}

// active returns the first and last day of the active window's occurrence
// that belongs to cycle: the earliest one that has not ended before the
// cycle's collect window opens. It may open before the collect window (a
// few days' head start), overlap it, or follow it.
func (s *Season) active(cycle int) (from, to time.Time) {
	collect := lastDay(cycle, s.Collect.From)
	for y := cycle - 1; ; y++ {
		from = lastDay(y, s.Active.From)
		endYear := y
		if s.Active.To.ord() < s.Active.From.ord() {
			endYear++
		}
		to = lastDay(endYear, s.Active.To)
		if !to.Before(collect) {
			return from, to
		}
	}
}

// End returns when cycle's occurrence closes: the end of the last day of
// its active or collect window, whichever closes later, in the season's
// time zone.
func (s *Season) End(cycle int) time.Time {
	_, end := s.active(cycle)
	cEnd := cycle
	if s.Collect.To.ord() < s.Collect.From.ord() {
		cEnd++
	}
	if ce := lastDay(cEnd, s.Collect.To); ce.After(end) {
		end = ce
	}
	return time.Date(end.Year(), end.Month(), end.Day(), 23, 59, 59, 0, s.loc())
}

// lastDay returns the date of md in year; 02-29 in a common year is 02-28.
func lastDay(year int, md MonthDay) time.Time {
	t := time.Date(year, md.Month, md.Day, 0, 0, 0, 0, time.UTC)
	if t.Month() != md.Month {
		t = time.Date(year, md.Month, daysIn[md.Month]-1, 0, 0, 0, 0, time.UTC)
	}
	return t
}
