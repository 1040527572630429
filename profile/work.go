package profile

import (
	"slices"
	"time"
)

// work is one attempt at applying a batch of events to a profile: mutable
// copies of the records it touches, decoded from the snapshot it started
// from (which stays untouched, since snapshots are shared).
type work struct {
	svc   *Service
	pid   string
	pol   *Policy
	base  *Snapshot
	now   time.Time
	profs []*Profile // [0] primary, then per season; nil until touched
	dirty []bool
	del   []bool
	hits  []ScoreHit
	// email, customer: the identifiers an identify may give this profile
	// (their links map here); other identify events only set fields.
	email, customer string
	merged          bool
	dropped         []string // aliases that fell off the bounded list
	unclaimed       bool     // an erasure removed a claim
	// tallies count the exposures and conversions this work records; they
	// go with the primary record's write.
	tallies []Tally
}

func (s *Service) newWork(pid string, base *Snapshot, pol *Policy) *work {
	n := 1 + len(pol.Seasons)
	return &work{svc: s, pid: pid, pol: pol, base: base, now: s.now(),
		profs: make([]*Profile, n), dirty: make([]bool, n), del: make([]bool, n)}
}

// prof returns the mutable profile at i (0 primary, 1+k season k), decoding
// it from the base record or starting an empty one. For a season it is the
// profile of the cycle that is current now (see seasonal).
func (w *work) prof(i int) *Profile {
	if i == 0 {
		if p := w.profs[0]; p != nil {
			return p
		}
		p := w.stored(0)
		if p == nil {
			p = &Profile{}
		}
		p.ID = w.pid
		w.profs[0] = p
		return p
	}
	return w.seasonal(i, w.pol.Seasons[i-1].Cycle(w.now))
}

// stored decodes the base record at i, or nil. A record deleted earlier
// in this batch (consent withdrawn) is nil: nothing of it may come back.
func (w *work) stored(i int) *Profile {
	if w.base == nil || i >= len(w.base.Records) || w.del[i] {
		return nil
	}
	return decodeRecord(w.base.Records[i])
}

// seasonal returns the mutable profile of season slot i for cycle. A
// season keeps one cycle's record: a record from an earlier cycle is
// replaced by a fresh one. An event of an earlier cycle than the one the
// record holds gets nil: that cycle's profile is no longer kept (its
// retain_days ran out, or a newer cycle has taken its place).
func (w *work) seasonal(i, cycle int) *Profile {
	s := &w.pol.Seasons[i-1]
	if !s.End(cycle).Add(s.retain()).After(w.now) {
		return nil
	}
	p := w.profs[i]
	if p == nil {
		p = w.stored(i)
		if p != nil && p.Cycle < cycle {
			p = nil
		}
	}
	switch {
	case p == nil:
		p = &Profile{Season: w.pol.Seasons[i-1].ID, Cycle: cycle}
	case p.Cycle > cycle:
		return nil
	case p.Cycle < cycle:
		// Only a profile replaced within this batch can be older here.
		p = &Profile{Season: w.pol.Seasons[i-1].ID, Cycle: cycle}
	}
	p.ID = w.pid
	w.profs[i] = p
	return p
}

// behaviourAllowed reports whether behaviour may be stored: with consent
// required only after "profiling" was granted; otherwise unless it was
// withdrawn.
func (w *work) behaviourAllowed() bool {
	p := w.prof(0)
	c, ok := p.Consents["profiling"]
	if w.pol.ConsentNeeded {
		return ok && c.Granted
	}
	return !ok || c.Granted
}

func (w *work) apply(ev *Event) {
	ts := ev.TS
	if ts == 0 {
		ts = w.now.Unix()
	}
	if ev.Type == dropClaim {
		w.unclaim(ev)
		return
	}
	if isBehaviour(ev.Type) && !w.behaviourAllowed() {
		return
	}
	t := time.Unix(ts, 0)
	if ev.Type == Purchase {
		if w.applyPurchase(ev, ts, t) {
			w.convert(ev, ts)
		}
		return
	}
	idx := 0
	if isBehaviour(ev.Type) {
		idx = route(w.pol, ev, t) + 1
	}
	if ev.Type == Identify && ev.Proven {
		// An unproven identify keeps its claim as fields (apply); only a
		// proven one takes identifiers, and only those linked here.
		ev = w.identifiers(ev)
	}
	if w.applyTo(idx, ev, ts, t) && isBehaviour(ev.Type) {
		w.convert(ev, ts)
	}
	if ev.Type == ConsentEvent {
		if granted, ok := ev.Purposes["profiling"]; ok && !granted {
			w.forget()
		}
	}
}

// applyPurchase routes each order line on its own: the toys bought as
// Sinterklaas gifts go to the seasonal profile, the shoes bought in the same
// order to the primary one (an explicit season takes the whole order). An
// order id counts once across the primary and every seasonal profile: the
// primary profile's order list remembers every order id counted, also when
// all its lines went to a season, so that the same order sent again after
// the collect window closed (or after the seasonal profile expired) is
// still recognised.
//
// It reports whether the order counted (it was not counted before).
func (w *work) applyPurchase(ev *Event, ts int64, t time.Time) bool {
	if w.counted(ev.OrderID) {
		return false
	}
	groups := make(map[int][]Item, 2)
	order := make([]int, 0, 2)
	if ev.Season != "" {
		order = append(order, route(w.pol, ev, t)+1)
		groups[order[0]] = ev.Items
	} else {
		for i := range ev.Items {
			r := routeItem(w.pol, &ev.Items[i], t) + 1
			if _, ok := groups[r]; !ok {
				order = append(order, r)
			}
			groups[r] = append(groups[r], ev.Items[i])
		}
	}
	for _, r := range order {
		sub := *ev
		sub.Items = groups[r]
		w.applyTo(r, &sub, ts, t)
	}
	if _, ok := groups[0]; !ok {
		w.prof(0).rememberOrder(Order{ID: ev.OrderID, At: ts})
		w.dirty[0] = true
	}
	return true
}

// convert counts ev as the conversion of the experiments it is a goal of.
// Only an event the profile counted converts (a repeated order id does not).
func (w *work) convert(ev *Event, ts int64) {
	if w.pol.Goals == nil {
		return
	}
	p := w.prof(0)
	if len(p.Experiments) == 0 {
		return
	}
	n := len(w.tallies)
	w.tallies = p.convert(w.pol.Goals, ev, ts, w.tallies)
	if len(w.tallies) > n {
		w.dirty[0] = true
	}
}

// counted reports whether the order id was counted already, in the primary
// profile or in any seasonal record held, whatever its cycle.
func (w *work) counted(id string) bool {
	for i := range w.profs {
		p := w.profs[i]
		if p == nil {
			p = w.stored(i)
		}
		if p != nil && p.hasOrder(id) {
			return true
		}
	}
	return false
}

// applyTo applies ev to the profile at idx; for a season, to the profile
// of the cycle that the event's own time t belongs to. An event of a cycle
// whose profile is no longer kept changes only the primary's activity. It
// reports whether the event changed the profile it went to.
func (w *work) applyTo(idx int, ev *Event, ts int64, t time.Time) bool {
	var p *Profile
	changed := false
	if idx == 0 {
		p = w.prof(0)
	} else {
		p = w.seasonal(idx, w.pol.Seasons[idx-1].Cycle(t))
	}
	if p != nil {
		w.hits = w.hits[:0]
		if w.pol.Scorer != nil && isBehaviour(ev.Type) {
			w.hits = w.pol.Scorer.Score(ev, w.hits)
		}
		if p.apply(ev, ts, w.hits) {
			w.dirty[idx] = true
			w.del[idx] = false
			changed = true
		}
	}
	if idx != 0 && isBehaviour(ev.Type) {
		// Activity keeps the primary profile alive and counts visits,
		// though the behaviour itself lives in the seasonal profile.
		w.prof(0).touch(ts)
		w.dirty[0] = true
	}
	return changed
}

// forget deletes stored behaviour after "profiling" consent was withdrawn:
// the primary profile keeps fields and consents, seasonal profiles go.
func (w *work) forget() {
	w.prof(0).forgetBehaviour()
	w.dirty[0] = true
	for i := 1; i < len(w.profs); i++ {
		w.profs[i] = nil
		w.dirty[i] = false
		if w.base != nil && w.base.Records[i].Version != 0 {
			w.del[i] = true
		}
	}
}

// orderIDs returns the ids of the orders counted in any profile of the
// visitor: the primary one and every seasonal record held, whatever its
// cycle (as counted looks them up).
func (w *work) orderIDs() map[string]bool {
	seen := w.prof(0).orderIDs()
	for i := 1; i < len(w.profs); i++ {
		p := w.profs[i]
		if p == nil {
			p = w.stored(i)
		}
		if p != nil {
			for _, o := range p.Orders {
				seen[o.ID] = true
			}
		}
	}
	return seen
}

// identifiers returns ev with only the identifiers this profile may take:
// those whose links map here (w.email, w.customer), and only where the
// profile holds no other identifier of the same kind.
func (w *work) identifiers(ev *Event) *Event {
	p := w.prof(0)
	e := *ev
	if e.Email != w.email || (p.Email != "" && p.Email != e.Email) {
		e.Email = ""
	}
	if e.Customer != w.customer || (p.CustomerID != "" && p.CustomerID != e.Customer) {
		e.Customer = ""
	}
	return &e
}

// merge folds a frozen anonymous profile into this one, primary into
// primary and each seasonal profile into the same season's, and lists its
// id among the aliases (which is what makes a merge happen once).
func (w *work) merge(from *frozen) {
	w.merged = true
	p := w.prof(0)
	aliases := p.Aliases
	if snap := from.snap; snap != nil {
		// An order id counts once across the primary and every seasonal
		// profile, also across a merge: what the merged profile counted
		// of an order this visitor counted already is not added.
		seen := w.orderIDs()
		if snap.Records[0].Version != 0 && snap.Primary != nil {
			src := *snap.Primary
			// Identifiers come only through links; a merged profile
			// brings none.
			src.Email, src.CustomerID, src.Aliases = "", "", nil
			p.merge(&src, seen)
		}
		for i, sp := range snap.Seasonal {
			if sp == nil || i >= len(w.pol.Seasons) || i >= len(snap.seasons) || snap.seasons[i] != w.pol.Seasons[i].ID {
				continue
			}
			sw := w.prof(i + 1)
			if sw == nil || sw.Cycle != sp.Cycle {
				continue
			}
			sw.merge(sp, seen)
			w.dirty[i+1] = true
		}
	}
	p.Aliases = aliases
	p.Aliases, w.dropped = appendAlias(p.Aliases, from.pid, w.pid)
	w.dirty[0] = true
}

func appendAlias(aliases []string, id, self string) ([]string, []string) {
	if id == "" || id == self || slices.Contains(aliases, id) {
		return aliases, nil
	}
	aliases = append(aliases, id)
	if n := len(aliases) - MaxAliases; n > 0 {
		dropped := slices.Clone(aliases[:n])
		return aliases[n:], dropped
	}
	return aliases, nil
}

// settle enforces what holds for the whole batch: a merge that brings a
// withdrawn "profiling" consent (newer than a grant) deletes the stored
// behaviour, the survivor's included, and a profile holds an identifier
// exactly when it is known.
func (w *work) settle() {
	if w.merged && !w.behaviourAllowed() {
		w.forget()
	}
	if w.dirty[0] {
		p := w.prof(0)
		p.Known = p.Email != "" || p.CustomerID != ""
	}
}

// writes returns the store writes for every changed record.
func (w *work) writes() []Write {
	var out []Write
	for i := range w.profs {
		if !w.dirty[i] && !w.del[i] {
			continue
		}
		var old uint64
		if w.base != nil {
			old = w.base.Records[i].Version
		}
		wr := Write{Expect: old, Version: newVersion(old)}
		if i > 0 {
			wr.Season = w.pol.Seasons[i-1].ID
		}
		if w.del[i] {
			out = append(out, wr)
			continue
		}
		p := w.profs[i]
		wr.Data = encodeBounded(p)
		wr.TTL = w.ttl(i, p)
		if i == 0 {
			wr.Links = linkKeys(p)
			wr.Tallies = w.tallies
		}
		out = append(out, wr)
	}
	return out
}

// ttl is how long a record lives after this write: anonymous profiles
// after inactivity, known ones longer, seasonal ones until retain_days
// after their season's windows close.
func (w *work) ttl(i int, p *Profile) time.Duration {
	if i == 0 {
		if p.Known {
			return knownTTL(w.pol)
		}
		return anonTTL(w.pol)
	}
	s := &w.pol.Seasons[i-1]
	d := s.End(p.Cycle).Add(s.retain()).Sub(w.now)
	// A seasonal record never outlives its primary one: an expired visitor
	// leaves nothing behind.
	return min(max(d, time.Hour), w.ttl(0, w.prof(0)))
}

// linkKeys are the keys of the identity links of the identifiers p holds.
func linkKeys(p *Profile) []string {
	var keys []string
	for _, ref := range identRefs(p) {
		if k, err := linkKey(ref); err == nil {
			keys = append(keys, k)
		}
	}
	return keys
}

// watch lets the policy's Watcher compare the profile as these writes
// leave it with what webhooks were last told, and adds the trigger record
// to the writes when it changed. While the primary record is written the
// trigger record is written too (unchanged, if so), so that it lives as
// long as the profile does.
func (w *work) watch(writes []Write) ([]Write, Watch) {
	after := w.result(writes)
	var trig Record
	if w.base != nil {
		trig = w.base.Trigger
	}
	after.Trigger = trig
	wt := w.pol.Watcher.Watch(after, w.now)
	data := wt.Data
	if data == nil && trig.Version != 0 {
		for _, wr := range writes {
			if wr.Season == "" && wr.Data != nil {
				data = trig.Data
				break
			}
		}
	}
	if data == nil {
		return writes, wt
	}
	return append(writes, Write{Season: TriggerRecord, Expect: trig.Version, Version: newVersion(trig.Version), Data: data, TTL: knownTTL(w.pol)}), wt
}

// result is the snapshot after writes were stored.
func (w *work) result(writes []Write) *Snapshot {
	n := len(w.profs)
	snap := &Snapshot{Records: make([]Record, n), Seasonal: make([]*Profile, n-1), seasons: seasonIDs(w.pol), watched: w.pol.Watcher != nil}
	if w.base != nil {
		copy(snap.Records, w.base.Records)
		snap.Trigger = w.base.Trigger
	}
	for _, wr := range writes {
		if wr.Season == TriggerRecord {
			snap.Trigger = Record{Data: wr.Data, Version: wr.Version}
			continue
		}
		i := 0
		if wr.Season != "" {
			for j := range w.pol.Seasons {
				if w.pol.Seasons[j].ID == wr.Season {
					i = j + 1
				}
			}
		}
		if wr.Data == nil {
			snap.Records[i] = Record{}
		} else {
			snap.Records[i] = Record{Data: wr.Data, Version: wr.Version}
		}
	}
	snap.Primary = w.profs[0]
	if snap.Primary == nil {
		if w.base != nil {
			snap.Primary = w.base.Primary
		} else {
			snap.Primary = &Profile{ID: w.pid}
		}
	}
	for i := 1; i < n; i++ {
		switch {
		case w.del[i]:
		case w.profs[i] != nil:
			// Only the current cycle's profile is visible (an imported
			// event may have written an earlier cycle's record).
			if w.profs[i].Cycle == w.pol.Seasons[i-1].Cycle(w.now) {
				snap.Seasonal[i-1] = w.profs[i]
			}
		case w.base != nil:
			snap.Seasonal[i-1] = w.base.Seasonal[i-1]
		}
	}
	return snap
}

// claimFields are the fields an unproven identify keeps its claim in.
var claimFields = [...]struct{ field, kind string }{{"email", "email"}, {"customer_id", "customer"}}

// claimKeys are the identifier keys of the unproven claims p carries.
func claimKeys(p *Profile) []string {
	var keys []string
	for _, c := range claimFields {
		f, ok := p.Fields[c.field]
		if !ok || f.Value.Kind != KindString || f.Value.Str == "" {
			continue
		}
		if k, err := linkKey(c.kind + ":" + f.Value.Str); err == nil {
			keys = append(keys, k)
		}
	}
	return keys
}

// newClaims are the claim keys this write adds to the primary profile (all
// of them after a merge), which must be noted before it is stored.
func (w *work) newClaims() []string {
	if !w.dirty[0] {
		return nil
	}
	keys := claimKeys(w.prof(0))
	if w.merged || w.base == nil || len(keys) == 0 {
		return keys
	}
	old := claimKeys(w.base.Primary)
	return slices.DeleteFunc(keys, func(k string) bool { return slices.Contains(old, k) })
}

// unclaim removes an unproven claim of the identifier ev names (erasure).
func (w *work) unclaim(ev *Event) {
	p := w.prof(0)
	for _, c := range claimFields {
		want := ev.Email
		if c.kind == "customer" {
			want = ev.Customer
		}
		if f, ok := p.Fields[c.field]; ok && want != "" && f.Value.Kind == KindString && f.Value.Str == want {
			delete(p.Fields, c.field)
			w.dirty[0] = true
			w.unclaimed = true
		}
	}
}

// staleClaims are the notes (identifier key, profile id) this write makes
// stale: claims the profile dropped or replaced, noted under its id and its
// aliases', and the merged profile's own notes, now carried by this one.
func (w *work) staleClaims(from *frozen) [][2]string {
	if !w.dirty[0] {
		return nil
	}
	var out [][2]string
	now := claimKeys(w.prof(0))
	if w.base != nil {
		ids := append([]string{w.pid}, w.prof(0).Aliases...)
		for _, k := range claimKeys(w.base.Primary) {
			if slices.Contains(now, k) {
				continue
			}
			for _, id := range ids {
				out = append(out, [2]string{k, id})
			}
		}
	}
	if w.merged && from != nil && from.snap != nil && from.snap.Primary != nil {
		for _, k := range claimKeys(from.snap.Primary) {
			out = append(out, [2]string{k, from.pid})
		}
	}
	return out
}
