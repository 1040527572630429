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
// cycle (the year its collect window opened) they belong to.
func (s *Season) Collecting(t time.Time) (int, bool) {
	return s.Collect.Opened(t, s.Location)
}

// ActiveAt reports whether rules can see the season's profile at t.
func (s *Season) ActiveAt(t time.Time) bool {
	return s.Active.Contains(t, s.Location)
}

// Cycle returns the year in which the most recent occurrence of the
// season's collect window opened, at or before t. A seasonal profile
// written in another cycle belongs to an earlier year's season.
func (s *Season) Cycle(t time.Time) int {
	loc := s.Location
	if loc == nil {
		loc = time.UTC
	}
	t = t.In(loc)
	if (MonthDay{Month: t.Month(), Day: t.Day()}).ord() >= s.Collect.From.ord() {
		return t.Year()
	}
	return t.Year() - 1
}

// End returns when the active window of cycle closes: the end of its last
// day in the season's time zone.
func (s *Season) End(cycle int) time.Time {
	loc := s.Location
	if loc == nil {
		loc = time.UTC
	}
	// The active window's occurrence that belongs to cycle starts on or
	// after the collect window's opening day.
	startYear := cycle
	if s.Active.From.ord() < s.Collect.From.ord() {
		startYear++
	}
	endYear := startYear
	if s.Active.To.ord() < s.Active.From.ord() {
		endYear++
	}
	end := lastDay(endYear, s.Active.To)
	// The collect window may close after the active window.
	cEnd := cycle
	if s.Collect.To.ord() < s.Collect.From.ord() {
		cEnd++
	}
	if ce := lastDay(cEnd, s.Collect.To); ce.After(end) {
		end = ce
	}
	return time.Date(end.Year(), end.Month(), end.Day(), 23, 59, 59, 0, loc)
}

// lastDay returns the date of md in year; 02-29 in a common year is 02-28.
func lastDay(year int, md MonthDay) time.Time {
	t := time.Date(year, md.Month, md.Day, 0, 0, 0, 0, time.UTC)
	if t.Month() != md.Month {
		t = time.Date(year, md.Month, daysIn[md.Month]-1, 0, 0, 0, 0, time.UTC)
	}
	return t
}
