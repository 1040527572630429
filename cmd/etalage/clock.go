package main

import (
	"sync/atomic"
	"time"
)

// frozenClock is the clock of --now: it stands still unless an admin moves
// it forward (POST /admin/v1/clock), so that demos and tests can watch
// time-driven triggers fire without waiting.
type frozenClock struct {
	at time.Time
	by atomic.Int64 // nanoseconds moved forward
}

func newFrozenClock(t time.Time) *frozenClock { return &frozenClock{at: t} }

// Now returns the clock's time (in the zone --now was given in).
func (c *frozenClock) Now() time.Time { return c.at.Add(time.Duration(c.by.Load())) }

// Advance moves the clock forward by d and returns the new time.
func (c *frozenClock) Advance(d time.Duration) time.Time {
	return c.at.Add(time.Duration(c.by.Add(int64(max(d, 0)))))
}
