package profile

import "time"

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
// it from the base record or starting an empty one. A seasonal record from
// an earlier cycle starts afresh.
func (w *work) prof(i int) *Profile {
	if p := w.profs[i]; p != nil {
		return p
	}
	var p *Profile
	if w.base != nil && i < len(w.base.Records) {
		p = decodeRecord(w.base.Records[i])
	}
	if i == 0 {
		if p == nil {
			p = &Profile{}
		}
		p.ID = w.pid
	} else {
		s := &w.pol.Seasons[i-1]
		cycle := s.Cycle(w.now)
		if p == nil || p.Cycle != cycle {
			p = &Profile{Season: s.ID, Cycle: cycle}
		}
		p.ID = w.pid
	}
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
	if isBehaviour(ev.Type) && !w.behaviourAllowed() {
		return
	}
	t := time.Unix(ts, 0)
	if ev.Type == Purchase && ev.Season == "" {
		if w.applyPurchase(ev, ts, t) {
			w.convert(ev, ts)
		}
		return
	}
	idx := 0
	if isBehaviour(ev.Type) {
		idx = route(w.pol, ev, t) + 1
	}
	if w.applyTo(idx, ev, ts) && isBehaviour(ev.Type) {
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
// order to the primary one. Each profile counts the order once.
func (w *work) applyPurchase(ev *Event, ts int64, t time.Time) bool {
	groups := make(map[int][]Item, 2)
	order := make([]int, 0, 2)
	for i := range ev.Items {
		r := routeItem(w.pol, &ev.Items[i], t) + 1
		if _, ok := groups[r]; !ok {
			order = append(order, r)
		}
		groups[r] = append(groups[r], ev.Items[i])
	}
	changed := false
	for _, r := range order {
		sub := *ev
		sub.Items = groups[r]
		if w.applyTo(r, &sub, ts) {
			changed = true
		}
	}
	return changed
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

// applyTo applies ev to the profile at idx and reports whether it changed.
func (w *work) applyTo(idx int, ev *Event, ts int64) bool {
	p := w.prof(idx)
	w.hits = w.hits[:0]
	if w.pol.Scorer != nil && isBehaviour(ev.Type) {
		w.hits = w.pol.Scorer.Score(ev, w.hits)
	}
	changed := p.apply(ev, ts, w.hits)
	if changed {
		w.dirty[idx] = true
		w.del[idx] = false
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

// merge folds an anonymous visitor's snapshot into this profile, primary
// into primary and each seasonal profile into the same season's.
func (w *work) merge(from *Snapshot) {
	if from.Primary != nil && from.Records[0].Version != 0 {
		w.prof(0).Merge(from.Primary)
		w.dirty[0] = true
	}
	for i, sp := range from.Seasonal {
		if sp == nil || i >= len(w.pol.Seasons) || from.seasons[i] != w.pol.Seasons[i].ID {
			continue
		}
		p := w.prof(i + 1)
		if p.Cycle != sp.Cycle {
			continue
		}
		p.Merge(sp)
		w.dirty[i+1] = true
	}
	w.prof(0).Aliases = appendAlias(w.prof(0).Aliases, from.Primary.ID, w.pid)
}

func appendAlias(aliases []string, id, self string) []string {
	if id == "" || id == self {
		return aliases
	}
	for _, a := range aliases {
		if a == id {
			return aliases
		}
	}
	aliases = append(aliases, id)
	if len(aliases) > MaxAliases {
		aliases = aliases[len(aliases)-MaxAliases:]
	}
	return aliases
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
		wr.Data = Encode(nil, p)
		wr.TTL = w.ttl(i, p)
		if i == 0 {
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
	retain := time.Duration(max(s.RetainDays, 1)) * 24 * time.Hour
	d := s.End(p.Cycle).Add(retain).Sub(w.now)
	return max(d, time.Hour)
}

// result is the snapshot after writes were stored.
func (w *work) result(writes []Write) *Snapshot {
	n := len(w.profs)
	snap := &Snapshot{Records: make([]Record, n), Seasonal: make([]*Profile, n-1), seasons: seasonIDs(w.pol)}
	if w.base != nil {
		copy(snap.Records, w.base.Records)
	}
	for _, wr := range writes {
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
			snap.Seasonal[i-1] = w.profs[i]
		case w.base != nil:
			snap.Seasonal[i-1] = w.base.Seasonal[i-1]
		}
	}
	return snap
}
