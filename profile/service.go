package profile

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"slices"
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
	stripes [256]stripe
}

// stripe is a lock whose waiters give up when their context ends: a
// write queued behind a slow one answers by its deadline, as the store
// calls it would have made do.
type stripe chan struct{}

func (s *Service) stripe(pid string) stripe {
	h := uint32(2166136261)
	for i := 0; i < len(pid); i++ {
		h = (h ^ uint32(pid[i])) * 16777619
	}
	return s.stripes[h%uint32(len(s.stripes))]
}

// lock takes the stripe, or fails with ErrUnavailable when ctx ends first.
func (l stripe) lock(ctx context.Context) error {
	select {
	case l <- struct{}{}:
		return nil
	default:
	}
	select {
	case l <- struct{}{}:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("wait for the profile's lock: %w: %w", ErrUnavailable, ctx.Err())
	}
}

func (l stripe) unlock() { <-l }

// NewService returns a Service over store.
func NewService(store Store, opts Options) *Service {
	now := opts.Now
	if now == nil {
		now = time.Now
	}
	s := &Service{store: store, now: now}
	for i := range s.stripes {
		s.stripes[i] = make(stripe, 1)
	}
	return s
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
	// forward is set when the primary record is a forward: the profile was
	// merged into this one. frozen: the forward still holds the merged
	// profile's data (Primary), the merge is not finished.
	forward string
	frozen  bool
	dropped bool // the write removed an unproven claim (erasure)
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
// of pol, in one store round trip. A profile merged into another one loads
// as the surviving profile (Primary.ID says which).
func (s *Service) Load(ctx context.Context, pid string, pol *Policy) (*Snapshot, error) {
	snap, err := s.read(ctx, pid, pol)
	if err != nil || snap.forward == "" {
		return snap, err
	}
	return s.read(ctx, snap.forward, pol)
}

// LoadPacked is Load for a caller that caches: it returns pid's snapshot
// (following a forward, as Load does) unpacked into sc, and its packed
// form to cache. The records are packed as they come from the store and
// decoded once, into sc: no profile is decoded into new memory.
func (s *Service) LoadPacked(ctx context.Context, pid string, pol *Policy, sc *Scratch) (*Snapshot, Packed, error) {
	p, err := s.readPacked(ctx, pid, pol)
	if err != nil {
		return nil, Packed{}, err
	}
	if target, ok := p.forward(); ok {
		pid = target
		if p, err = s.readPacked(ctx, target, pol); err != nil {
			return nil, Packed{}, err
		}
	}
	return s.Unpack(pid, p, pol, sc), p, nil
}

// readPacked is the store read of read, packed.
func (s *Service) readPacked(ctx context.Context, pid string, pol *Policy) (Packed, error) {
	recs, trig, err := s.readRecords(ctx, pid, pol, seasonIDs(pol))
	if err != nil {
		return Packed{}, err
	}
	return pack(recs, trig, pol.Watcher != nil), nil
}

// readRecords reads pid's primary record, its records of the seasons ids
// and, when pol has a Watcher, its trigger record, in one store round trip.
func (s *Service) readRecords(ctx context.Context, pid string, pol *Policy, ids []string) (recs []Record, trig Record, err error) {
	get := ids
	if pol.Watcher != nil {
		// The trigger record travels with the profile in the same read.
		get = append(ids[:len(ids):len(ids)], TriggerRecord)
	}
	if recs, err = s.store.Get(ctx, pid, get); err != nil {
		return nil, Record{}, fmt.Errorf("load profile: %w", err)
	}
	if pol.Watcher != nil {
		trig, recs = recs[len(recs)-1], recs[:len(recs)-1]
	}
	return recs, trig, nil
}

// read is Load without following a forward.
func (s *Service) read(ctx context.Context, pid string, pol *Policy) (*Snapshot, error) {
	ids := seasonIDs(pol)
	recs, trig, err := s.readRecords(ctx, pid, pol, ids)
	if err != nil {
		return nil, err
	}
	snap := s.snapshot(pid, pol, ids, recs)
	snap.Trigger, snap.watched = trig, pol.Watcher != nil
	return snap, nil
}

func (s *Service) snapshot(pid string, pol *Policy, ids []string, recs []Record) *Snapshot {
	snap := &Snapshot{Records: recs, seasons: ids, Seasonal: make([]*Profile, len(ids))}
	s.decodeSnapshot(snap, pid, pol, nil, false)
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
// identify event may move the visitor to a contact's profile, and a profile
// merged into another one forwards its events there: the returned
// snapshot's Primary.ID is the profile that holds the events, which the
// caller puts in the visitor's cookie.
func (s *Service) Record(ctx context.Context, pid string, cached *Snapshot, events []Event, pol *Policy) (*Snapshot, error) {
	var id *identity
	for i := len(events) - 1; i >= 0; i-- {
		if events[i].Type != Identify || !events[i].Proven {
			// An unproven identify never links, merges or moves: it is
			// applied to pid's own profile like any other event.
			continue
		}
		var err error
		if id, err = s.identify(ctx, pid, &events[i], pol); err != nil {
			return nil, err
		}
		break
	}
	if id == nil {
		return s.write(ctx, pid, cached, events, pol, nil, nil)
	}
	if id.target != pid {
		cached = nil
	}
	snap, err := s.write(ctx, id.target, cached, events, pol, id, id.from)
	if err != nil {
		s.unlinkAll(id)
		return nil, err
	}
	if id.from != nil {
		s.finish(ctx, id.from, pol)
	}
	// Links made for identifiers the profile did not take (it holds another
	// of that kind, or the visitor turned out merged elsewhere) go.
	held := linkKeys(snap.Primary)
	id.created = slices.DeleteFunc(id.created, func(k string) bool {
		return snap.Primary.ID == id.target && slices.Contains(held, k)
	})
	s.unlinkAll(id)
	return snap, nil
}

// write applies events (and a frozen profile to merge, and what an identify
// decided) to pid under its stripe lock with compare-and-set retries. A
// forward met on the way is followed, finishing its merge first.
func (s *Service) write(ctx context.Context, pid string, base *Snapshot, events []Event, pol *Policy, id *identity, from *frozen) (*Snapshot, error) {
	for attempt, hops := 0, 0; ; attempt++ {
		snap, fwd, err := s.attempt(ctx, pid, base, events, pol, id, from)
		switch {
		case err == nil && fwd == nil:
			return snap, nil
		case fwd != nil:
			// pid was merged into another profile: finish that merge, then
			// write there. Forwards never chain (only anonymous profiles are
			// merged, only into known ones), so hops stay few.
			if hops++; hops > 3 {
				return nil, fmt.Errorf("record events: %w: forwards do not end", ErrConflict)
			}
			if err := s.complete(ctx, fwd, pol); err != nil {
				return nil, err
			}
			pid, base = fwd.target, nil
			if id != nil {
				// The identifiers were linked to the forwarded profile; the
				// survivor does not take them, and the links go.
				id.email, id.customer = "", ""
			}
		case errors.Is(err, ErrConflict) && attempt < maxRetries:
			base = nil
		default:
			return nil, fmt.Errorf("record events: %w", err)
		}
	}
}

// complete finishes a merge cut short, met as a forward that still holds
// the merged profile's data.
func (s *Service) complete(ctx context.Context, fwd *frozen, pol *Policy) error {
	if fwd.snap == nil && len(fwd.season) == 0 {
		return nil
	}
	if _, err := s.write(ctx, fwd.target, nil, nil, pol, nil, fwd); err != nil {
		return err
	}
	s.finish(ctx, fwd, pol)
	return nil
}

// attempt is one try of write: nil snapshot and a frozen merge when pid
// turned out to be a forward.
func (s *Service) attempt(ctx context.Context, pid string, base *Snapshot, events []Event, pol *Policy, id *identity, from *frozen) (*Snapshot, *frozen, error) {
	mu := s.stripe(pid)
	if err := mu.lock(ctx); err != nil {
		return nil, nil, err
	}
	defer mu.unlock()
	fresh := false
	if !base.fits(pid, pol) || base.forward != "" {
		var err error
		if base, err = s.read(ctx, pid, pol); err != nil {
			return nil, nil, err
		}
		fresh = true
	}
	if base.forward != "" {
		return nil, frozenOf(pid, base), nil
	}
	w := s.newWork(pid, base, pol)
	if id != nil && id.target == pid {
		w.email, w.customer = id.email, id.customer
	}
	if from != nil && !slices.Contains(base.Primary.Aliases, from.pid) {
		w.merge(from)
	}
	for i := range events {
		w.apply(&events[i])
	}
	w.settle()
	writes := w.writes()
	// Without events or a merge this is a Rewatch: the watched segments
	// are looked at again even though the profile is unchanged.
	rewatch := len(events) == 0 && from == nil
	var watch Watch
	if pol.Watcher != nil && (len(writes) > 0 || rewatch) {
		writes, watch = w.watch(writes)
	}
	if len(writes) == 0 {
		if !fresh {
			// Nothing to write according to a cached snapshot, which may be
			// stale (another node granted consent, say): only the store's
			// own record may say that events change nothing.
			return nil, nil, ErrConflict
		}
		return base, nil, nil
	}
	if err := s.dropForwards(ctx, pid, w.dropped); err != nil {
		return nil, nil, err
	}
	if watch.Data != nil {
		if err := pol.Watcher.Schedule(ctx, pid, watch, false); err != nil {
			return nil, nil, err
		}
	}
	// Notes of unproven claims come before the record that holds them: a
	// note without its claim is harmless, a claim without a note would
	// escape its owner's erasure.
	for _, key := range w.newClaims() {
		if err := s.store.AddClaimant(ctx, key, pid, w.ttl(0, w.prof(0))); err != nil {
			return nil, nil, err
		}
	}
	if err := s.store.Put(ctx, pid, writes); err != nil {
		return nil, nil, err
	}
	if watch.Data != nil {
		// Failing here is harmless: the schedule made before the Put has
		// some node look at the profile a little later.
		_ = pol.Watcher.Schedule(ctx, pid, watch, true)
	}
	// Notes of claims the profile no longer carries go (a failure leaves
	// a note that finds nothing, harmless).
	for _, n := range w.staleClaims(from) {
		s.store.DropClaimant(ctx, n[0], n[1])
	}
	snap := w.result(writes)
	snap.dropped = w.unclaimed
	return snap, nil, nil
}

// Rewatch looks at pid's watched segments again without events: time
// alone may have changed them, or deliveries may be due. It writes only
// the trigger record, and only when it changed.
func (s *Service) Rewatch(ctx context.Context, pid string, pol *Policy) (*Snapshot, error) {
	if pol.Watcher == nil {
		return s.Load(ctx, pid, pol)
	}
	return s.write(ctx, pid, nil, nil, pol, nil, nil)
}

// dropForwards deletes the forwards to pid of aliases that fall off its
// bounded alias list, before the list forgets them: a forward nobody lists
// would survive the survivor's erasure.
func (s *Service) dropForwards(ctx context.Context, pid string, aliases []string) error {
	for _, a := range aliases {
		recs, err := s.store.Get(ctx, a, nil)
		if err != nil {
			return err
		}
		if target, _, ok := decodeForward(recs[0].Data); ok && target == pid {
			if err := s.store.Delete(ctx, a); err != nil {
				return err
			}
		}
	}
	return nil
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
// contact is new. The link and the profile live as long as a known profile
// of pol.
func (s *Service) Contact(ctx context.Context, ref string, pol *Policy) (string, error) {
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
	got, err := s.store.Link(ctx, key, pid, min(linkGrace, knownTTL(pol)))
	if err != nil {
		return "", fmt.Errorf("link contact: %w", err)
	}
	if got != pid {
		return got, nil
	}
	// The record takes the identifier through the ordinary write, so that
	// events racing in for the same new contact (which found the link
	// first) and this write both land, in either order.
	id := &identity{target: pid, created: []string{key}}
	ev := Event{Type: Identify, Trusted: true, Proven: true}
	kind, val, _ := cutRef(ref)
	if kind == "email" {
		ev.Email, _ = NormaliseEmail(val)
		id.email = ev.Email
	} else {
		ev.Customer = val
		id.customer = val
	}
	if _, err := s.write(ctx, pid, nil, []Event{ev}, pol, id, nil); err != nil {
		s.unlinkAll(id)
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

// Erase removes everything held on the person ref names (right to
// erasure). For "email:<address>" or "customer:<id>": the profile linked to
// it, whole, and the unproven claims of it on other profiles (the claimed
// field goes; the rest of such a profile is some browser's, not provably
// the person's). For a profile id: that profile, whole; a visitor id merged
// into a contact names the contact. A whole profile goes with its seasonal
// records, the links of its identifiers, the forwards of the visitors
// merged into it and its notes as a claimant. Nothing found is ErrNotFound.
func (s *Service) Erase(ctx context.Context, ref string, pol *Policy) error {
	var pid string
	var extra []string
	if IsID(ref) {
		pid = ref
	} else {
		key, err := linkKey(ref)
		if err != nil {
			return err
		}
		extra = []string{key}
		switch pid, err = s.store.Lookup(ctx, key); {
		case errors.Is(err, ErrNotFound):
			pid = ""
		case err != nil:
			return fmt.Errorf("erase: %w", err)
		}
	}
	found := false
	var refs []string
	if pid != "" {
		p, f, err := s.eraseProfile(ctx, pid, extra)
		if err != nil {
			return err
		}
		found = f
		if p != nil {
			refs = identRefs(p)
		}
	}
	if !IsID(ref) && !slices.Contains(refs, ref) {
		refs = append(refs, ref)
	}
	// The person's identifiers may also be claimed, unproven, on other
	// profiles: those claims go too.
	for _, r := range refs {
		f, err := s.eraseClaims(ctx, r, pol)
		if err != nil {
			return err
		}
		found = found || f
	}
	if !found {
		return ErrNotFound
	}
	return nil
}

// eraseClaims removes the unproven claims of the identifier ref from every
// profile noted as claiming it, then the notes.
func (s *Service) eraseClaims(ctx context.Context, ref string, pol *Policy) (bool, error) {
	key, err := linkKey(ref)
	if err != nil {
		return false, err
	}
	kind, val, _ := cutRef(ref)
	drop := Event{Type: dropClaim}
	if kind == "email" {
		drop.Email, _ = NormaliseEmail(val)
	} else {
		drop.Customer = val
	}
	claimants, err := s.store.Claimants(ctx, key)
	if err != nil {
		return false, fmt.Errorf("erase claims: %w", err)
	}
	found := false
	for _, pid := range claimants {
		snap, err := s.write(ctx, pid, nil, []Event{drop}, pol, nil, nil)
		if err != nil {
			return false, fmt.Errorf("erase claims: %w", err)
		}
		found = found || snap.dropped
	}
	if err := s.store.DropClaimant(ctx, key, ""); err != nil {
		return false, fmt.Errorf("erase claims: %w", err)
	}
	return found, nil
}

// eraseProfile deletes pid whole (see Erase), and the links in extra even
// when the record has expired; found says whether there was anything.
func (s *Service) eraseProfile(ctx context.Context, pid string, extra []string) (*Profile, bool, error) {
	recs, err := s.store.Get(ctx, pid, nil)
	if err != nil {
		return nil, false, fmt.Errorf("erase: %w", err)
	}
	if target, _, ok := decodeForward(recs[0].Data); ok && recs[0].Version != 0 {
		// Erasing a merged visitor erases the person it was merged into;
		// the forward itself goes with the survivor's aliases below.
		if err := s.store.Delete(ctx, pid); err != nil {
			return nil, false, fmt.Errorf("erase: %w", err)
		}
		pid = target
		if recs, err = s.store.Get(ctx, pid, nil); err != nil {
			return nil, false, fmt.Errorf("erase: %w", err)
		}
	}
	found := recs[0].Version != 0 || len(extra) > 0
	keys := extra
	p := decodeRecord(recs[0])
	if p != nil {
		keys = append(linkKeys(p), keys...)
	}
	// The record goes first: links removed before it could be taken by a
	// racing identify while the record still held the identifier.
	if err := s.store.Delete(ctx, pid); err != nil {
		return nil, false, fmt.Errorf("erase: %w", err)
	}
	for _, key := range keys {
		if err := s.store.Unlink(ctx, key, pid); err != nil && !errors.Is(err, ErrNotFound) {
			return nil, false, fmt.Errorf("erase link: %w", err)
		}
	}
	if p != nil {
		// Its own claims of other identifiers were noted under its id and
		// under the ids of the visitors merged into it.
		for _, key := range claimKeys(p) {
			for _, id := range append([]string{pid}, p.Aliases...) {
				if err := s.store.DropClaimant(ctx, key, id); err != nil {
					return nil, false, fmt.Errorf("erase claims: %w", err)
				}
			}
		}
		if err := s.dropForwards(ctx, pid, p.Aliases); err != nil {
			return nil, false, fmt.Errorf("erase merged visitors: %w", err)
		}
	}
	return p, found, nil
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
