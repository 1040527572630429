package edge

import (
	"errors"
	"sync"
	"time"
)

var errBreakerOpen = errors.New("profile store circuit open")

// breaker keeps a dead store from costing every request its full deadline:
// after failureThreshold consecutive failures it opens for cooldown, during
// which store calls fail at once; then one probe is let through, and its
// success closes the breaker again.
type breaker struct {
	mu       sync.Mutex
	fails    int
	openTill time.Time
	probing  bool
	now      func() time.Time
}

const (
	failureThreshold = 5
	breakerCooldown  = 500 * time.Millisecond
)

func newBreaker(_ func() time.Time) *breaker {
	// The breaker runs on the wall clock even when --now freezes the
	// service clock: it measures real outages.
	return &breaker{now: time.Now}
}

// allow reports whether a store call may be tried now.
func (b *breaker) allow() bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.fails < failureThreshold {
		return true
	}
	if b.now().Before(b.openTill) || b.probing {
		return false
	}
	b.probing = true
	return true
}

// done records the outcome of a store call that allow let through.
func (b *breaker) done(ok bool) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.probing = false
	if ok {
		b.fails = 0
		return
	}
	b.fails++
	if b.fails >= failureThreshold {
		b.openTill = b.now().Add(breakerCooldown)
	}
}

// open reports whether the breaker currently refuses calls.
func (b *breaker) open() bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.fails >= failureThreshold
}

// state is 0 closed, 1 open (calls refused), 2 half-open (the cooldown is
// over: the next call, or the one under way, probes).
func (b *breaker) state() int {
	b.mu.Lock()
	defer b.mu.Unlock()
	switch {
	case b.fails < failureThreshold:
		return 0
	case b.probing || !b.now().Before(b.openTill):
		return 2
	}
	return 1
}
