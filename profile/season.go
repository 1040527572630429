package profile

import "time"

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
