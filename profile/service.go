package profile

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"sync"
	"time"
)

// maxRetries bounds the optimistic retries of one Record under contention.
const maxRetries = 8

// Options configure a Service.
type Options struct {
	// Now is the clock; nil means time.Now. `--now` freezes it.
	Now func() time.Time
}

// Service applies events to profiles kept in a Store, links visitors to
// contacts and merges them, and exports and erases profiles. It is safe for
// concurrent use.
type Service struct {
	store Store
	now   func() time.Time
	// stripes serialise this node's writes to one profile: concurrent
	// requests of one visitor then queue here instead of exhausting their
	// compare-and-set retries against each other. Other nodes' writes are
	// still caught by the store's version check.
	stripes [256]sync.Mutex
}

func (s *Service) stripe(pid string) *sync.Mutex {
	h := uint32(2166136261)
	for i := 0; i < len(pid); i++ {
		h = (h ^ uint32(pid[i])) * 16777619
	}
	return &s.stripes[h%uint32(len(s.stripes))]
}

// NewService returns a Service over store.
func NewService(store Store, opts Options) *Service {
	now := opts.Now
	if now == nil {
		now = time.Now
	}
	return &Service{store: store, now: now}
}

// Snapshot is a profile as read from the store: the primary profile and one
// seasonal profile per season of the policy it was loaded with, with the
// records they were decoded from. A Snapshot is immutable once returned, so
// it may be cached and shared between goroutines.
type Snapshot struct {
	Primary  *Profile   // never nil: an absent profile is empty, with ID set
	Seasonal []*Profile // parallel to Policy.Seasons; nil when absent or from an earlier cycle
	Records  []Record   // [0] primary, then one per season, as stored
	// Trigger is the webhook state (TriggerRecord), read only when the
	// policy has a Watcher.
	Trigger Record
	seasons []string // the season ids Records were read for
	watched bool     // read with the trigger record
}

// Size is the number of bytes the snapshot's records hold, for cache costs.
func (s *Snapshot) Size() int {
	n := 0
	for _, r := range s.Records {
		n += len(r.Data)
	}
	return n
}

// fits reports whether s was read for pid with pol's seasons.
func (s *Snapshot) fits(pid string, pol *Policy) bool {
	if s == nil || s.Primary == nil || s.Primary.ID != pid || len(s.seasons) != len(pol.Seasons) || s.watched != (pol.Watcher != nil) {
		return false
	}
	for i := range pol.Seasons {
		if s.seasons[i] != pol.Seasons[i].ID {
			return false
		}
	}
	return true
}

// NewID returns a new random profile id: 32 lower-case hex characters.
func NewID() string {
	var b [16]byte
	rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// IsID reports whether s has the shape of a profile id.
func IsID(s string) bool {
	if len(s) != 32 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= '0' && c <= '9' || c >= 'a' && c <= 'f') {
			return false
		}
	}
	return true
}

func seasonIDs(pol *Policy) []string {
	ids := make([]string, len(pol.Seasons))
	for i := range pol.Seasons {
		ids[i] = pol.Seasons[i].ID
	}
	return ids
}

// Load reads pid's primary profile and its seasonal profiles for the seasons
// of pol, in one store round trip.
func (s *Service) Load(ctx context.Context, pid string, pol *Policy) (*Snapshot, error) {
	ids := seasonIDs(pol)
	get := ids
	if pol.Watcher != nil {
		// The trigger record travels with the profile in the same read.
		get = append(ids[:len(ids):len(ids)], TriggerRecord)
	}
	recs, err := s.store.Get(ctx, pid, get)
	if err != nil {
		return nil, fmt.Errorf("load profile: %w", err)
	}
	var trig Record
	if pol.Watcher != nil {
		trig, recs = recs[len(recs)-1], recs[:len(recs)-1]
	}
	snap := s.snapshot(pid, pol, ids, recs)
	snap.Trigger, snap.watched = trig, pol.Watcher != nil
	return snap, nil
}

func (s *Service) snapshot(pid string, pol *Policy, ids []string, recs []Record) *Snapshot {
	snap := &Snapshot{Records: recs, seasons: ids, Seasonal: make([]*Profile, len(ids))}
	snap.Primary = decodeRecord(recs[0])
	if snap.Primary == nil {
		snap.Primary = &Profile{ID: pid}
	}
	snap.Primary.ID = pid
	now := s.now()
	for i := range pol.Seasons {
		p := decodeRecord(recs[i+1])
		if p != nil && p.Cycle == pol.Seasons[i].Cycle(now) {
			snap.Seasonal[i] = p
		}
	}
	return snap
}

// decodeRecord decodes a stored record; an absent or unreadable record is
// nil (a corrupt record is treated as absent and overwritten on the next
// write rather than failing every request of that visitor).
func decodeRecord(r Record) *Profile {
	if r.Version == 0 || len(r.Data) == 0 {
		return nil
	}
	p, err := Decode(r.Data)
	if err != nil {
		return nil
	}
	return p
}

// Record applies events to the profile of pid atomically, starting from
// cached when it is not nil (saving a read when it is still current) and
// retrying on concurrent changes. Events come decoded and validated. An
// identify event may move the visitor to a contact's profile: the returned
// snapshot's Primary.ID is then the surviving profile id, which the caller
// puts in the visitor's cookie.
func (s *Service) Record(ctx context.Context, pid string, cached *Snapshot, events []Event, pol *Policy) (*Snapshot, error) {
	return s.record(ctx, pid, cached, events, pol, false)
}

// Rewatch looks at pid's watched segments again without events: time
// alone may have changed them, or deliveries may be due. It writes only
// the trigger record, and only when it changed.
func (s *Service) Rewatch(ctx context.Context, pid string, pol *Policy) (*Snapshot, error) {
	if pol.Watcher == nil {
		return s.Load(ctx, pid, pol)
	}
	return s.record(ctx, pid, nil, nil, pol, true)
}

func (s *Service) record(ctx context.Context, pid string, cached *Snapshot, events []Event, pol *Policy, rewatch bool) (*Snapshot, error) {
	target := pid
	var from *Snapshot
	for i := len(events) - 1; i >= 0; i-- {
		if events[i].Type != Identify {
			continue
		}
		var err error
		if target, from, err = s.identify(ctx, pid, cached, &events[i], pol); err != nil {
			return nil, err
		}
		break
	}
	mu := s.stripe(target)
	mu.Lock()
	defer mu.Unlock()
	var snap *Snapshot
	for attempt := 0; ; attempt++ {
		base := cached
		if !base.fits(target, pol) {
			var err error
			if base, err = s.Load(ctx, target, pol); err != nil {
				return nil, err
			}
		}
		w := s.newWork(target, base, pol)
		if from != nil {
			w.merge(from)
		}
		for i := range events {
			w.apply(&events[i])
		}
		writes := w.writes()
		var watch Watch
		if pol.Watcher != nil && (len(writes) > 0 || rewatch) {
			writes, watch = w.watch(writes)
		}
		if len(writes) == 0 {
			snap = base
			break
		}
		if watch.Data != nil {
			if err := pol.Watcher.Schedule(ctx, target, watch, false); err != nil {
				return nil, fmt.Errorf("record events: %w", err)
			}
		}
		err := s.store.Put(ctx, target, writes)
		if errors.Is(err, ErrConflict) && attempt < maxRetries {
			cached = nil
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("record events: %w", err)
		}
		snap = w.result(writes)
		if watch.Data != nil {
			// Failing here is harmless: the schedule written before the
			// Put makes some node look at the profile a little later.
			_ = pol.Watcher.Schedule(ctx, target, watch, true)
		}
		break
	}
	if from != nil && from.Primary.ID != target {
		// The anonymous profile lives on in the contact's; its own records
		// go. A failure leaves an orphan that expires with its TTL.
		if err := s.store.Delete(ctx, from.Primary.ID); err != nil && !errors.Is(err, ErrNotFound) {
			return snap, nil
		}
	}
	return snap, nil
}

// identify decides which profile a visitor identifying as a contact ends up
// in, and links the contact's identifiers:
//   - the contact is new: the visitor's profile becomes the contact's;
//   - the contact is known elsewhere and the visitor is anonymous: the
//     visitor's profile merges into the contact's (returned as from);
//   - the visitor is already another known contact: the two are never
//     merged; the visitor moves to the contact's profile, or to a new one.
func (s *Service) identify(ctx context.Context, pid string, cached *Snapshot, ev *Event, pol *Policy) (string, *Snapshot, error) {
	vis := cached
	if !vis.fits(pid, pol) {
		var err error
		if vis, err = s.Load(ctx, pid, pol); err != nil {
			return "", nil, err
		}
	}
	var idents []string
	if ev.Email != "" {
		k, _ := linkKey("email:" + ev.Email)
		idents = append(idents, k)
	}
	if ev.Customer != "" {
		k, err := linkKey("customer:" + ev.Customer)
		if err != nil {
			return "", nil, err
		}
		idents = append(idents, k)
	}
	existing := ""
	for _, id := range idents {
		got, err := s.store.Lookup(ctx, id)
		if err == nil {
			existing = got
			break
		}
		if !errors.Is(err, ErrNotFound) {
			return "", nil, fmt.Errorf("identify: %w", err)
		}
	}
	p := vis.Primary
	conflict := (ev.Email != "" && p.Email != "" && p.Email != ev.Email) ||
		(ev.Customer != "" && p.CustomerID != "" && p.CustomerID != ev.Customer)
	target := pid
	switch {
	case existing != "":
		target = existing
	case conflict:
		target = NewID()
	}
	ttl := knownTTL(pol)
	for _, id := range idents {
		got, err := s.store.Link(ctx, id, target, ttl)
		if err != nil {
			return "", nil, fmt.Errorf("identify: %w", err)
		}
		if got != target && existing == "" && target == pid {
			// Another request linked the contact first: join it.
			target, existing = got, got
		}
	}
	if target == pid || (p.Known && target != pid) || isEmpty(vis) {
		return target, nil, nil
	}
	return target, vis, nil
}

func isEmpty(s *Snapshot) bool {
	for _, r := range s.Records {
		if r.Version != 0 {
			return false
		}
	}
	return true
}

func knownTTL(pol *Policy) time.Duration {
	if pol.KnownTTL > 0 {
		return pol.KnownTTL
	}
	return defaultKnown
}

func anonTTL(pol *Policy) time.Duration {
	if pol.AnonymousTTL > 0 {
		return pol.AnonymousTTL
	}
	return defaultAnonTTL
}

// Contact returns the profile id of the contact named by ref
// ("email:<address>" or "customer:<id>"), creating a linked profile when the
// contact is new.
func (s *Service) Contact(ctx context.Context, ref string) (string, error) {
	key, err := linkKey(ref)
	if err != nil {
		return "", err
	}
	pid, err := s.store.Lookup(ctx, key)
	if err == nil {
		return pid, nil
	}
	if !errors.Is(err, ErrNotFound) {
		return "", fmt.Errorf("resolve contact: %w", err)
	}
	pid = NewID()
	got, err := s.store.Link(ctx, key, pid, defaultKnown)
	if err != nil {
		return "", fmt.Errorf("link contact: %w", err)
	}
	if got != pid {
		return got, nil
	}
	p := &Profile{ID: pid, Known: true, FirstSeen: s.now().Unix()}
	kind, val, _ := cutRef(ref)
	if kind == "email" {
		p.Email, _ = NormaliseEmail(val)
	} else {
		p.CustomerID = val
	}
	err = s.store.Put(ctx, pid, []Write{{Expect: 0, Version: newVersion(0), Data: Encode(nil, p), TTL: defaultKnown}})
	if err != nil && !errors.Is(err, ErrConflict) {
		return "", fmt.Errorf("create contact: %w", err)
	}
	return pid, nil
}

func cutRef(ref string) (kind, val string, ok bool) {
	for i := 0; i < len(ref); i++ {
		if ref[i] == ':' {
			return ref[:i], ref[i+1:], true
		}
	}
	return "", ref, false
}

// Resolve turns a reference into a profile id: a 32-hex profile id is
// returned as it is, "email:<address>" and "customer:<id>" are looked up.
func (s *Service) Resolve(ctx context.Context, ref string) (string, error) {
	if IsID(ref) {
		return ref, nil
	}
	key, err := linkKey(ref)
	if err != nil {
		return "", err
	}
	pid, err := s.store.Lookup(ctx, key)
	if err != nil {
		return "", fmt.Errorf("resolve %s: %w", ref[:min(len(ref), 9)], err)
	}
	return pid, nil
}

// Scan lists profile ids in pages (see Store.Scan).
func (s *Service) Scan(ctx context.Context, cursor string, n int) ([]string, string, error) {
	return s.store.Scan(ctx, cursor, n)
}

// Erase removes everything held on the profile ref names: primary and
// seasonal records and every identity link (right to erasure). A profile
// that holds nothing is ErrNotFound.
func (s *Service) Erase(ctx context.Context, ref string) error {
	pid, err := s.Resolve(ctx, ref)
	if err != nil {
		return err
	}
	recs, err := s.store.Get(ctx, pid, nil)
	if err != nil {
		return fmt.Errorf("erase: %w", err)
	}
	p := decodeRecord(recs[0])
	found := recs[0].Version != 0
	if p != nil {
		for _, ref := range identRefs(p) {
			key, err := linkKey(ref)
			if err != nil {
				continue
			}
			if err := s.store.Unlink(ctx, key, pid); err != nil && !errors.Is(err, ErrNotFound) {
				return fmt.Errorf("erase link: %w", err)
			}
		}
	}
	if !IsID(ref) {
		// The reference itself is a link that must go even when the
		// profile record has already expired.
		key, _ := linkKey(ref)
		if err := s.store.Unlink(ctx, key, pid); err != nil && !errors.Is(err, ErrNotFound) {
			return fmt.Errorf("erase link: %w", err)
		}
		found = true
	}
	if err := s.store.Delete(ctx, pid); err != nil {
		return fmt.Errorf("erase: %w", err)
	}
	if !found {
		return ErrNotFound
	}
	return nil
}

func identRefs(p *Profile) []string {
	var refs []string
	if p.Email != "" {
		refs = append(refs, "email:"+p.Email)
	}
	if p.CustomerID != "" {
		refs = append(refs, "customer:"+p.CustomerID)
	}
	return refs
}

// newVersion returns a version for a record replacing one at old. Versions
// come from the clock so that a record deleted and written again never
// repeats a version a stale cache could still expect.
func newVersion(old uint64) uint64 {
	return max(old+1, uint64(time.Now().UnixNano()))
}
