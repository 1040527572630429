package profile

import (
	"context"
	"errors"
	"fmt"
	"time"
)

// TriggerRecord is the name of the record, beside the seasonal ones, that
// holds a profile's webhook state: the segments last reported per webhook
// and the outbox of membership changes not yet delivered. It is written in
// the same atomic Put as the events that change the membership, so a change
// caused by an acknowledged event is never lost; it is not a valid season
// id, and Delete (erasure) removes it with the profile.
const TriggerRecord = "~trigger"

// Watch is what a Watcher decides for one write of a profile.
type Watch struct {
	// Data is the new trigger record; nil leaves the stored one as it is.
	Data []byte
	// Due is when the profile must be looked at again: a pending delivery,
	// or the moment time alone may change a watched segment. Zero: never.
	Due time.Time
	// Queued is how many membership changes this write adds to the outbox.
	Queued int
}

// Watcher watches the segments that webhooks list (package trigger
// implements it; profile never imports it).
type Watcher interface {
	// Watch compares the profile as it will be stored (snap, with its
	// current trigger record in snap.Trigger) with what was last reported,
	// at now. It runs inside the write's retry loop: no side effects.
	Watch(snap *Snapshot, now time.Time) Watch
	// Schedule makes the profile due at w.Due, before the write (stored
	// false: an error fails the write, so a change is never stored without
	// its schedule) and after it (stored true), when deliveries can start.
	Schedule(ctx context.Context, pid string, w Watch, stored bool) error
}

// Claim is a profile taken from the schedule by one caller until Until.
type Claim struct {
	PID   string
	Until time.Time
}

// TriggerCounts are one webhook's delivery counts across every node.
type TriggerCounts struct {
	Pending   int64     // contacts with changes not yet delivered
	Oldest    time.Time // when the oldest of those changes happened; zero when none
	Delivered int64
	Failed    int64 // given up after 24 hours of retries, or dropped
	Retries   int64
	LastError string
	LastAt    time.Time // when LastError happened
}

// TriggerStore is what webhook delivery needs of a store beyond Store: the
// schedule of profiles to look at again (a set ordered by due time, claimed
// atomically so that one caller at a time works on a profile) and shared
// delivery counts. Both stores implement it; the conformance suite tests it.
type TriggerStore interface {
	// ScheduleAt makes pid due at t, unless it is due earlier already.
	ScheduleAt(ctx context.Context, pid string, t time.Time) error
	// ClaimDue takes up to n profiles due at now and leases them until
	// now+lease: nobody else claims them before Release or the lease's end
	// (then they are due again).
	ClaimDue(ctx context.Context, now time.Time, lease time.Duration, n int) ([]Claim, error)
	// Release ends a claim (when it is still the holder's) and makes the
	// profile due at next (zero: not again, unless ScheduleAt was called
	// meanwhile).
	Release(ctx context.Context, c Claim, next time.Time) error
	// SetPending records that pid has undelivered changes for webhook hook
	// since since (zero: none any more).
	SetPending(ctx context.Context, hook, pid string, since time.Time) error
	// CountTrigger adds n to one of hook's counts: "delivered", "failed" or
	// "retries".
	CountTrigger(ctx context.Context, hook, what string, n int64) error
	// TriggerError records hook's last delivery error.
	TriggerError(ctx context.Context, hook, msg string, at time.Time) error
	// TriggerCounts returns hook's counts.
	TriggerCounts(ctx context.Context, hook string) (TriggerCounts, error)
}

// UpdateTrigger rewrites pid's trigger record with fn, which gets the stored
// record (nil when none) and returns the new one (nil: leave it). It
// retries on concurrent writes, queueing behind this node's own writes to
// the profile; a profile erased meanwhile stays erased.
func (s *Service) UpdateTrigger(ctx context.Context, pid string, pol *Policy, fn func(cur []byte) []byte) error {
	mu := s.stripe(pid)
	if err := mu.lock(ctx); err != nil {
		return err
	}
	defer mu.unlock()
	for attempt := 0; ; attempt++ {
		recs, err := s.store.Get(ctx, pid, []string{TriggerRecord})
		if err != nil {
			return fmt.Errorf("update trigger record: %w", err)
		}
		cur := recs[1]
		if cur.Version == 0 {
			return nil
		}
		data := fn(cur.Data)
		if data == nil {
			return nil
		}
		err = s.store.Put(ctx, pid, []Write{{Season: TriggerRecord, Expect: cur.Version, Version: newVersion(cur.Version), Data: data, TTL: knownTTL(pol)}})
		if errors.Is(err, ErrConflict) && attempt < maxRetries {
			continue
		}
		if err != nil {
			return fmt.Errorf("update trigger record: %w", err)
		}
		return nil
	}
}

// FieldValue returns a profile field as JSON carries it to other systems
// (webhook payloads, exports): text, number, bool, a date as YYYY-MM-DD, a
// list as an array; "email" and "customer_id" are the identifiers.
func (p *Profile) FieldValue(name string) (any, bool) {
	switch name {
	case "email":
		return p.Email, p.Email != ""
	case "customer_id":
		return p.CustomerID, p.CustomerID != ""
	}
	f, ok := p.Fields[name]
	if !ok {
		return nil, false
	}
	v := f.Value
	switch v.Kind {
	case KindString:
		return v.Str, true
	case KindNumber:
		return v.Num, true
	case KindBool:
		return v.Num != 0, true
	case KindDate:
		return time.Unix(v.Time, 0).UTC().Format(time.DateOnly), true
	case KindList:
		return append([]string{}, v.List...), true
	}
	return nil, false
}

// IsContact reports whether p is a known contact that may be handed to other
// systems: linked by a proven identify, with an e-mail address or customer id.
func (p *Profile) IsContact() bool {
	return p != nil && p.Known && (p.Email != "" || p.CustomerID != "")
}
