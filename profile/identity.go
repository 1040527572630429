package profile

import (
	"context"
	"errors"
	"fmt"
	"time"
)

// How identities stay whole (README "Identity"):
//
//   - An identity link (email:<sha256>, customer:<id>) is the one authority
//     on which profile holds an identifier. A profile record takes an
//     identifier only after the link to it was made (Link never overwrites),
//     so two profiles never both hold one, whatever races.
//   - The record lists its identifiers, and every write of it carries its
//     links along (Write.Links): a link ends in the same millisecond as its
//     profile, on every store.
//   - An anonymous profile merged into a contact is first frozen: its primary
//     record is replaced, by compare-and-set, with a forward record naming
//     the surviving profile and still holding the frozen data. Every later
//     write to the old id fails its compare-and-set, reads the forward and
//     follows it, so an event racing the merge lands in the survivor instead
//     of an orphan. The frozen data is merged into the survivor (once: the
//     survivor lists the old id among its aliases) and only then dropped
//     from the forward; a merge cut short is finished by the next request
//     that meets the forward. The bare forward lives on, no longer than the
//     survivor, so that a browser still holding the old cookie value ends
//     up in the survivor; erasure removes it with the survivor.

// linkGrace is how long a new link lives before the write of its record
// gives it the record's expiry: a link whose record was never written
// (the write failed, the node died) ends on its own soon after.
const linkGrace = time.Minute

// forwardMark starts a forward record: forwardMark, the surviving profile
// id, then, until the merge is finished, the merged profile's own record.
const forwardMark = 0xF0

func encodeForward(target string, frozen []byte) []byte {
	b := make([]byte, 0, 1+len(target)+len(frozen))
	b = append(b, forwardMark)
	b = append(b, target...)
	return append(b, frozen...)
}

// decodeForward returns the surviving profile a forward record names and
// the frozen record it still holds (nil once the merge finished).
func decodeForward(data []byte) (target string, frozen []byte, ok bool) {
	if len(data) < 1+32 || data[0] != forwardMark || !IsID(string(data[1:33])) {
		return "", nil, false
	}
	if len(data) > 33 {
		frozen = data[33:]
	}
	return string(data[1:33]), frozen, true
}

// identity is what a proven identify decided before the events are
// written: the profile they go to, the links this call made for it, and
// the anonymous profile frozen on its way into it.
type identity struct {
	target string
	// email, customer: the identifiers the target may take (their links map
	// to it); "" when the event does not carry one or it belongs elsewhere.
	email, customer string
	created         []string // link keys this call created, undone if not used
	from            *frozen
}

// frozen is an anonymous profile frozen under a forward record on its way
// into target.
type frozen struct {
	pid     string
	target  string
	tomb    Record    // the forward record, for the compare-and-set that finishes
	snap    *Snapshot // what it held when frozen; nil when it held nothing
	seasons []string  // the seasons its records were read for
	season  []Record  // its seasonal records, deleted when finished
}

// identify decides where a visitor identifying as a contact ends up:
//   - an identifier already linked names the contact's profile (a customer
//     id before an e-mail address when they name two different contacts,
//     which are never merged);
//   - with only new identifiers, the visitor's own profile becomes the
//     contact's, unless it already holds another identifier of the same
//     kind: then a new profile is made for the contact;
//   - an anonymous visitor moving to a contact's profile is merged into it
//     (frozen first, see above); a known visitor just moves, its profile
//     stays its own contact's.
//
// New identifiers are linked to the chosen profile before anything is
// written; a racing identify that linked one first wins and the decision is
// taken again.
func (s *Service) identify(ctx context.Context, pid string, ev *Event, pol *Policy) (*identity, error) {
	var refs [2]string // customer, email
	if ev.Customer != "" {
		refs[0] = "customer:" + ev.Customer
	}
	if ev.Email != "" {
		refs[1] = "email:" + ev.Email
	}
	var keys [2]string
	for i, r := range refs {
		if r == "" {
			continue
		}
		k, err := linkKey(r)
		if err != nil {
			return nil, err
		}
		keys[i] = k
	}
	id := &identity{}
	waited := time.Duration(0)
	for attempt := 0; ; attempt++ {
		if attempt > maxRetries {
			s.unlinkAll(id)
			return nil, fmt.Errorf("identify: %w", ErrConflict)
		}
		// The decision reads the store, never a cached snapshot: a stale
		// one (another node made the visitor known meanwhile) would decide
		// wrongly, and identifies are rare enough to afford the read.
		vis, err := s.read(ctx, pid, pol)
		if err != nil {
			s.unlinkAll(id)
			return nil, err
		}
		if vis.forward != "" {
			// The visitor was merged already: it identifies from where it
			// lives, once a merge cut short is finished (the cookie leaves
			// the old id, which nothing would meet again).
			if err := s.complete(ctx, frozenOf(pid, vis), pol); err != nil {
				s.unlinkAll(id)
				return nil, err
			}
			pid = vis.forward
			continue
		}
		var owners [2]string
		for i, k := range keys {
			if k == "" {
				continue
			}
			got, err := s.store.Lookup(ctx, k)
			if err != nil && !errors.Is(err, ErrNotFound) {
				s.unlinkAll(id)
				return nil, fmt.Errorf("identify: %w", err)
			}
			owners[i] = got
		}
		p := vis.Primary
		target := ""
		for _, o := range owners {
			if o != "" {
				target = o
				break
			}
		}
		if target != "" && target != pid {
			// A link can name a profile whose identify is still under
			// way: its record is not yet a contact's, and that identify
			// may yet withdraw the link and merge the profile elsewhere.
			// Merging into it then would leave a forward to a forward and
			// count the merged profile twice. Wait for the contact to be
			// written (or the link to go), then decide again.
			settled, err := s.isContact(ctx, target, pol)
			if err != nil {
				s.unlinkAll(id)
				return nil, err
			}
			if !settled && waited < linkSettle {
				s.unlinkAll(id)
				pause := min(time.Millisecond<<min(attempt, 5), linkSettle-waited)
				select {
				case <-ctx.Done():
					return nil, fmt.Errorf("identify: %w: %w", ErrUnavailable, ctx.Err())
				case <-time.After(pause):
				}
				waited += pause
				attempt--
				continue
			}
		}
		if target == "" {
			target = pid
			if (ev.Customer != "" && p.CustomerID != "" && p.CustomerID != ev.Customer) ||
				(ev.Email != "" && p.Email != "" && p.Email != ev.Email) {
				target = NewID()
			}
		}
		if id.target != "" && id.target != target {
			// A new decision: links made for the previous target go.
			s.unlinkAll(id)
		}
		id.target, id.email, id.customer = target, "", ""
		raced := false
		for i, k := range keys {
			if k == "" || (owners[i] != "" && owners[i] != target) {
				continue
			}
			if owners[i] == "" {
				got, err := s.store.Link(ctx, k, target, min(linkGrace, knownTTL(pol)))
				if err != nil {
					s.unlinkAll(id)
					return nil, fmt.Errorf("identify: %w", err)
				}
				if got != target {
					raced = true
					break
				}
				id.created = append(id.created, k)
			}
			if i == 0 {
				id.customer = ev.Customer
			} else {
				id.email = ev.Email
			}
		}
		if raced {
			// Another identify linked one of the identifiers first. The
			// links this one made go too, or they would pull the decision
			// their way: the identifiers of one identify end on one profile.
			s.unlinkAll(id)
			continue
		}
		if target != pid && !p.Known {
			f, err := s.freeze(ctx, pid, target, pol)
			if err != nil {
				s.unlinkAll(id)
				return nil, err
			}
			id.from = f
		}
		return id, nil
	}
}

// linkSettle bounds how long an identify waits for the profile a link
// names to become a contact's (see identify); past it, a link that never
// settles (its identify failed and could not withdraw it) is taken as it is.
const linkSettle = 2 * time.Second

// isContact reports whether pid's primary record is a known contact's
// (not absent, anonymous or a forward).
func (s *Service) isContact(ctx context.Context, pid string, pol *Policy) (bool, error) {
	v, err := s.read(ctx, pid, pol)
	if err != nil {
		return false, err
	}
	return v.forward == "" && v.Primary.Known, nil
}

// unlinkAll removes the links this identify created: nothing was written
// that holds them. It runs on its own deadline, since the request's may
// have passed.
func (s *Service) unlinkAll(id *identity) {
	if id == nil || len(id.created) == 0 {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	for _, k := range id.created {
		s.store.Unlink(ctx, k, id.target)
	}
	id.created = nil
}

// freeze replaces the anonymous profile pid by a forward to target that
// still holds its data, and returns what it froze. A profile that became
// known meanwhile is not merged (nil); one already forwarded stays as it is.
func (s *Service) freeze(ctx context.Context, pid, target string, pol *Policy) (*frozen, error) {
	mu := s.stripe(pid)
	if err := mu.lock(ctx); err != nil {
		return nil, err
	}
	defer mu.unlock()
	for attempt := 0; ; attempt++ {
		vis, err := s.read(ctx, pid, pol)
		if err != nil {
			return nil, err
		}
		if vis.forward != "" || vis.Primary.Known {
			return nil, nil
		}
		tomb := Write{Expect: vis.Records[0].Version, Version: newVersion(vis.Records[0].Version),
			Data: encodeForward(target, vis.Records[0].Data), TTL: forwardTTL(pol)}
		err = s.store.Put(ctx, pid, []Write{tomb})
		if errors.Is(err, ErrConflict) && attempt < maxRetries {
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("merge: freeze: %w", err)
		}
		f := &frozen{pid: pid, target: target, tomb: Record{Data: tomb.Data, Version: tomb.Version}, seasons: vis.seasons, season: vis.Records[1:]}
		if !isEmpty(vis) {
			f.snap = vis
		}
		return f, nil
	}
}

// forwardTTL is how long a forward lives: as long as an anonymous profile
// would have, and never longer than the known profile it points at.
func forwardTTL(pol *Policy) time.Duration {
	return min(anonTTL(pol), knownTTL(pol))
}

// frozenOf rebuilds the frozen merge from a forward record met on the way:
// a merge cut short, to be finished.
func frozenOf(pid string, snap *Snapshot) *frozen {
	f := &frozen{pid: pid, target: snap.forward, tomb: snap.Records[0], seasons: snap.seasons, season: snap.Records[1:]}
	if !isEmpty(snap) && snap.frozen {
		f.snap = snap
	}
	return f
}

// finish drops the frozen data from the forward once the survivor holds it,
// and the merged profile's seasonal records with it. A failure leaves the
// forward frozen; the next request that meets it finishes it, and the
// survivor's alias list keeps that from merging twice.
func (s *Service) finish(ctx context.Context, f *frozen, pol *Policy) {
	var writes []Write
	if _, data, _ := decodeForward(f.tomb.Data); data != nil {
		writes = append(writes, Write{Expect: f.tomb.Version, Version: newVersion(f.tomb.Version),
			Data: encodeForward(f.target, nil), TTL: forwardTTL(pol)})
	}
	for i, r := range f.season {
		if r.Version != 0 && i < len(f.seasons) {
			writes = append(writes, Write{Season: f.seasons[i], Expect: r.Version, Version: newVersion(r.Version)})
		}
	}
	if len(writes) > 0 {
		s.store.Put(ctx, f.pid, writes)
	}
}

// DecodeRecord decodes a record as a Store holds it: a profile, or, for a
// profile merged into another one, forward names the surviving profile
// (p is then the merged profile while the merge is unfinished, else nil).
// For audits of a store's contents and the integrity tests.
func DecodeRecord(data []byte) (p *Profile, forward string, err error) {
	if target, frozen, ok := decodeForward(data); ok {
		if frozen == nil {
			return nil, target, nil
		}
		p, err = Decode(frozen)
		return p, target, err
	}
	p, err = Decode(data)
	return p, "", err
}

// LinkKey returns the key an identifier reference ("email:<address>",
// "customer:<id>") has in a Store's links and claim notes: e-mail
// addresses hashed, so that no address appears in a key name.
func LinkKey(ref string) (string, error) { return linkKey(ref) }
