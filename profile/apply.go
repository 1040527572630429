package profile

import (
	"slices"
	"sort"
	"time"
)

// isBehaviour reports whether an event type is behaviour: what consent
// "profiling" governs and what counters count.
func isBehaviour(t EventType) bool {
	switch t {
	case PageView, Click, CartAdd, CartRemove, Purchase, EmailOpen, EmailClick, FormSubmit:
		return true
	}
	return false
}

// route returns the index in pol.Seasons of the season whose collect window
// is open at t and that takes the event (explicit season, gift flag or a
// listed category), or -1 for the primary profile. Items of a purchase are
// routed one by one (routeItem); the explicit season routes the whole event.
func route(pol *Policy, ev *Event, t time.Time) int {
	for i := range pol.Seasons {
		s := &pol.Seasons[i]
		if _, ok := s.Collecting(t); !ok {
			continue
		}
		if ev.Season != "" {
			if ev.Season == s.ID {
				return i
			}
			continue
		}
		if (s.Gift && ev.Gift) || hasString(s.Categories, ev.Category) {
			return i
		}
	}
	return -1
}

func routeItem(pol *Policy, it *Item, t time.Time) int {
	ev := Event{Gift: it.Gift, Category: it.Category}
	return route(pol, &ev, t)
}

func hasString(list []string, s string) bool {
	if s == "" {
		return false
	}
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// touch records activity at ts: first and last seen, and a new visit after
// visitGap of inactivity.
func (p *Profile) touch(ts int64) {
	if p.FirstSeen == 0 || ts < p.FirstSeen {
		p.FirstSeen = ts
	}
	if p.LastSeen == 0 || ts-p.LastSeen > int64(visitGap/time.Second) {
		p.Visits++
	}
	if ts > p.LastSeen {
		p.LastSeen = ts
	}
}

// apply changes p by one event at ts and returns whether it did. Routing,
// consent and identity are decided by the caller; hits are what the
// scoring rules add.
func (p *Profile) apply(ev *Event, ts int64, hits []ScoreHit) bool {
	switch ev.Type {
	case PageView:
		p.count(PageView, Key{URL: ev.URL, Category: ev.Category, SKU: ev.SKU}, ts, 1)
	case Click:
		p.count(Click, Key{URL: ev.URL, Target: ev.Target}, ts, 1)
	case CartAdd:
		p.count(CartAdd, Key{SKU: ev.SKU, Category: ev.Category}, ts, 1)
		p.cartAdd(CartItem{SKU: ev.SKU, Category: ev.Category, Price: ev.Price, Quantity: ev.Quantity, Gift: ev.Gift}, ts)
	case CartRemove:
		p.count(CartRemove, Key{SKU: ev.SKU}, ts, 1)
		p.cartRemove(ev.SKU, ev.Quantity, ts)
	case Purchase:
		if !p.purchase(ev, ts) {
			return false
		}
	case EmailOpen:
		p.count(EmailOpen, Key{Campaign: ev.Campaign}, ts, 1)
	case EmailClick:
		p.count(EmailClick, Key{Campaign: ev.Campaign, URL: ev.URL}, ts, 1)
	case FormSubmit:
		p.count(FormSubmit, Key{Form: ev.Form}, ts, 1)
		p.setFields(ev.Fields, ts)
	case Identify:
		if !ev.Proven {
			// A claim nobody proved (a newsletter form, say): the address is
			// kept as a plain field of the caller's own profile, never as the
			// contact's identifier, so it links nothing and claims nothing.
			if ev.Email != "" {
				p.setField("email", Value{Kind: KindString, Str: ev.Email}, ts)
			}
			if ev.Customer != "" {
				p.setField("customer_id", Value{Kind: KindString, Str: ev.Customer}, ts)
			}
			p.setFields(ev.Fields, ts)
			break
		}
		// The caller passes only the identifiers whose links map to p.
		if ev.Email != "" {
			p.Email = ev.Email
		}
		if ev.Customer != "" {
			p.CustomerID = ev.Customer
		}
		p.Known = p.Email != "" || p.CustomerID != ""
		p.setFields(ev.Fields, ts)
	case InterestEvent:
		src := SourceVisitor
		if ev.Trusted {
			src = SourceShop
		}
		p.setInterest(ev.Name, ev.On, src, ts)
	case ConsentEvent:
		if p.Consents == nil {
			p.Consents = make(map[string]Consent, len(ev.Purposes))
		}
		for name, granted := range ev.Purposes {
			if _, ok := p.Consents[name]; !ok && len(p.Consents) >= MaxConsents {
				continue
			}
			p.Consents[name] = Consent{Granted: granted, At: ts}
		}
	default:
		return false
	}
	for _, h := range hits {
		p.Score += h.Points
		if h.Interest != "" {
			p.setInterest(h.Interest, true, SourceScoring, ts)
		}
	}
	if isBehaviour(ev.Type) {
		p.touch(ts)
	}
	return true
}

// setInterest sets an interest. A scoring rule never switches on an interest
// that the visitor or the shop switched off.
func (p *Profile) setInterest(name string, on bool, src Source, ts int64) {
	old, ok := p.Interests[name]
	if ok && src == SourceScoring && !old.On && old.Source != SourceScoring {
		return
	}
	if ok && old.On == on && src == SourceScoring {
		return
	}
	if !ok && len(p.Interests) >= MaxInterests {
		return
	}
	if p.Interests == nil {
		p.Interests = make(map[string]Interest)
	}
	p.Interests[name] = Interest{On: on, Source: src, At: ts}
}

// setFields sets explicit fields; a null value removes one. New fields
// beyond MaxFields are dropped.
func (p *Profile) setFields(fields map[string]Value, ts int64) {
	for name, v := range fields {
		p.setField(name, v, ts)
	}
}

// setField sets one explicit field; KindNone removes it.
func (p *Profile) setField(name string, v Value, ts int64) {
	if v.Kind == KindNone {
		delete(p.Fields, name)
		return
	}
	if _, ok := p.Fields[name]; !ok && len(p.Fields) >= MaxFields {
		return
	}
	if p.Fields == nil {
		p.Fields = make(map[string]Field, 4)
	}
	p.Fields[name] = Field{Value: v, At: ts}
}

func (p *Profile) cartAdd(it CartItem, ts int64) {
	if it.Quantity <= 0 {
		it.Quantity = 1
	}
	for i := range p.Cart.Items {
		c := &p.Cart.Items[i]
		if c.SKU == it.SKU {
			c.Quantity += it.Quantity
			if it.Price > 0 {
				c.Price = it.Price
			}
			if it.Category != "" {
				c.Category = it.Category
			}
			c.Gift = c.Gift || it.Gift
			p.Cart.UpdatedAt = max(p.Cart.UpdatedAt, ts)
			return
		}
	}
	if len(p.Cart.Items) >= MaxCartItems {
		p.Cart.Items = append(p.Cart.Items[:0], p.Cart.Items[1:]...)
	}
	p.Cart.Items = append(p.Cart.Items, it)
	p.Cart.UpdatedAt = max(p.Cart.UpdatedAt, ts)
}

// cartRemove takes quantity off a line, or the whole line when quantity is 0.
func (p *Profile) cartRemove(sku string, quantity int, ts int64) {
	for i := range p.Cart.Items {
		c := &p.Cart.Items[i]
		if c.SKU != sku {
			continue
		}
		c.Quantity -= quantity
		if quantity == 0 || c.Quantity <= 0 {
			p.Cart.Items = append(p.Cart.Items[:i], p.Cart.Items[i+1:]...)
		}
		p.Cart.UpdatedAt = max(p.Cart.UpdatedAt, ts)
		return
	}
}

// purchase counts an order once: an order id already held changes nothing.
func (p *Profile) purchase(ev *Event, ts int64) bool {
	if p.hasOrder(ev.OrderID) {
		return false
	}
	var value float64
	counted := make([]uint64, 0, len(ev.Items)+1)
	for i := range ev.Items {
		it := &ev.Items[i]
		q := max(it.Quantity, 1)
		value += it.Price * float64(q)
		k := Key{SKU: it.SKU, Category: it.Category}
		p.count(Purchase, k, ts, 1)
		counted = append(counted, keyHash(k))
		p.cartRemove(it.SKU, 0, ts)
	}
	p.count(Purchase, Key{}, ts, 1)
	counted = append(counted, keyHash(Key{}))
	p.rememberOrder(Order{ID: ev.OrderID, At: ts, Value: value, Counted: counted})
	return true
}

// keyHash identifies a purchase counter's Key in Order.Counted (FNV-1a
// over its parts).
func keyHash(k Key) uint64 {
	h := uint64(14695981039346656037)
	for _, s := range [...]string{k.URL, k.Category, k.SKU, k.Campaign, k.Form, k.Target} {
		for i := 0; i < len(s); i++ {
			h = (h ^ uint64(s[i])) * 1099511628211
		}
		h = (h ^ 0xff) * 1099511628211 // after each part
	}
	return h
}

func (p *Profile) hasOrder(id string) bool {
	for _, o := range p.Orders {
		if o.ID == id {
			return true
		}
	}
	return false
}

// rememberOrder keeps an order id counted, dropping the oldest at
// MaxOrders.
func (p *Profile) rememberOrder(o Order) {
	if len(p.Orders) >= MaxOrders {
		p.Orders = append(p.Orders[:0], p.Orders[1:]...)
	}
	p.Orders = append(p.Orders, o)
}

// count adds n events at ts to the counter of (t, k), creating it and, at
// MaxCounters, dropping the least recently used counter first.
func (p *Profile) count(t EventType, k Key, ts int64, n uint32) {
	if len(k.URL) > maxURL {
		k.URL = k.URL[:maxURL]
	}
	i := p.counter(t, k)
	if i < 0 {
		if len(p.Behaviour) >= MaxCounters {
			p.dropLRU()
		}
		p.Behaviour = append(p.Behaviour, Counter{Type: t, Key: k, First: ts, Last: ts})
		i = len(p.Behaviour) - 1
	}
	c := &p.Behaviour[i]
	c.Total += n
	c.First = min(c.First, ts)
	c.Last = max(c.Last, ts)
	c.addDay(Day(ts), n)
}

func (p *Profile) counter(t EventType, k Key) int {
	for i := range p.Behaviour {
		if p.Behaviour[i].Type == t && p.Behaviour[i].Key == k {
			return i
		}
	}
	return -1
}

// Day returns the day bucket (days since the unix epoch, UTC) of unix
// seconds ts.
func Day(ts int64) int32 {
	if ts < 0 {
		return int32((ts - 86399) / 86400)
	}
	return int32(ts / 86400)
}

// addDay adds n to the bucket of day, keeping buckets ascending and no
// older than MaxDays before the newest.
func (c *Counter) addDay(day int32, n uint32) {
	i := sort.Search(len(c.Days), func(i int) bool { return c.Days[i].Day >= day })
	if i < len(c.Days) && c.Days[i].Day == day {
		c.Days[i].N += n
	} else {
		c.Days = append(c.Days, DayCount{})
		copy(c.Days[i+1:], c.Days[i:])
		c.Days[i] = DayCount{Day: day, N: n}
	}
	newest := c.Days[len(c.Days)-1].Day
	drop := 0
	for drop < len(c.Days) && c.Days[drop].Day <= newest-MaxDays {
		drop++
	}
	if drop > 0 {
		c.Days = append(c.Days[:0], c.Days[drop:]...)
	}
}

// forgetBehaviour removes everything "profiling" consent governs: counters,
// cart, orders, score, scored interests, visits. Explicit fields, the
// visitor's own interests and consents stay.
func (p *Profile) forgetBehaviour() {
	p.Behaviour = nil
	p.Cart = Cart{}
	p.Orders = nil
	p.Score = 0
	p.Visits = 0
	for k, in := range p.Interests {
		if in.Source == SourceScoring {
			delete(p.Interests, k)
		}
	}
}

// Merge merges src into p: counters add, newer field values win, interests
// and consents are united (the newer setting wins), first-seen is the
// earliest. An order both hold counts once: src's counters of it are not
// added. p keeps its identity; src's id becomes an alias.
func (p *Profile) Merge(src *Profile) {
	p.merge(src, p.orderIDs())
}

// orderIDs returns the ids of the orders p remembers.
func (p *Profile) orderIDs() map[string]bool {
	ids := make(map[string]bool, len(p.Orders))
	for _, o := range p.Orders {
		ids[o.ID] = true
	}
	return ids
}

// counted is a purchase counter's day that an order added to.
type counted struct {
	key uint64
	day int32
}

// merge is Merge where seen holds the ids of the orders the surviving
// visitor counted already, in this profile or in another of its seasonal
// profiles: src's counters of those orders are not added.
func (p *Profile) merge(src *Profile, seen map[string]bool) {
	if src.FirstSeen != 0 && (p.FirstSeen == 0 || src.FirstSeen < p.FirstSeen) {
		p.FirstSeen = src.FirstSeen
	}
	p.LastSeen = max(p.LastSeen, src.LastSeen)
	p.Visits += src.Visits
	p.Score += src.Score
	if p.Email == "" {
		p.Email = src.Email
	}
	if p.CustomerID == "" {
		p.CustomerID = src.CustomerID
	}
	mergeNewer(&p.Fields, src.Fields, func(f Field) int64 { return f.At }, MaxFields)
	mergeNewer(&p.Interests, src.Interests, func(in Interest) int64 { return in.At }, MaxInterests)
	mergeNewer(&p.Consents, src.Consents, func(c Consent) int64 { return c.At }, MaxConsents)
	for _, it := range src.Cart.Items {
		p.cartAdd(it, src.Cart.UpdatedAt)
	}
	// What src counted of orders counted already comes off its counters.
	var minus map[counted]uint32
	for _, o := range src.Orders {
		if seen[o.ID] {
			for _, h := range o.Counted {
				if minus == nil {
					minus = make(map[counted]uint32)
				}
				minus[counted{h, Day(o.At)}]++
			}
			o.Counted = nil // remembered here, counted elsewhere
		}
		if !p.hasOrder(o.ID) {
			p.Orders = append(p.Orders, o)
		}
	}
	sort.SliceStable(p.Orders, func(i, j int) bool { return p.Orders[i].At < p.Orders[j].At })
	if len(p.Orders) > MaxOrders {
		p.Orders = p.Orders[len(p.Orders)-MaxOrders:]
	}
	for i := range src.Behaviour {
		sc := &src.Behaviour[i]
		total, days := sc.Total, sc.Days
		if minus != nil && sc.Type == Purchase {
			total, days = uncount(sc, minus)
			if total == 0 {
				continue
			}
		}
		j := p.counter(sc.Type, sc.Key)
		if j < 0 {
			p.Behaviour = append(p.Behaviour, Counter{Type: sc.Type, Key: sc.Key, First: sc.First, Last: sc.Last})
			j = len(p.Behaviour) - 1
		}
		c := &p.Behaviour[j]
		c.Total += total
		c.First = min(c.First, sc.First)
		c.Last = max(c.Last, sc.Last)
		for _, d := range days {
			c.addDay(d.Day, d.N)
		}
	}
	for len(p.Behaviour) > MaxCounters {
		p.dropLRU()
	}
	p.mergeAssignments(src.Experiments)
	if src.ID != "" && src.ID != p.ID {
		p.Aliases = append(p.Aliases, src.ID)
	}
	p.Aliases = append(p.Aliases, src.Aliases...)
	if len(p.Aliases) > MaxAliases {
		p.Aliases = p.Aliases[len(p.Aliases)-MaxAliases:]
	}
}

// uncount returns c's total and day buckets less what minus says orders
// counted already added to it; the total also loses what fell on days no
// longer kept. c itself, shared with a snapshot, stays as it is.
func uncount(c *Counter, minus map[counted]uint32) (uint32, []DayCount) {
	h := keyHash(c.Key)
	total := c.Total
	days := c.Days
	cloned := false
	for k, m := range minus {
		if k.key != h {
			continue
		}
		total -= min(m, total)
		i, ok := slices.BinarySearchFunc(days, k.day, func(d DayCount, day int32) int { return int(d.Day) - int(day) })
		if !ok {
			continue
		}
		if !cloned {
			days, cloned = slices.Clone(days), true
		}
		days[i].N -= min(m, days[i].N)
	}
	if cloned {
		days = slices.DeleteFunc(days, func(d DayCount) bool { return d.N == 0 })
	}
	return total, days
}

// dropLRU removes the least recently used behaviour counter.
func (p *Profile) dropLRU() {
	lru := 0
	for j := range p.Behaviour {
		if p.Behaviour[j].Last < p.Behaviour[lru].Last {
			lru = j
		}
	}
	p.Behaviour = append(p.Behaviour[:lru], p.Behaviour[lru+1:]...)
}

// mergeNewer unites src into *dst: on a name held by both the newer entry
// wins; new names beyond limit are dropped.
func mergeNewer[V any](dst *map[string]V, src map[string]V, at func(V) int64, limit int) {
	for k, v := range src {
		old, ok := (*dst)[k]
		if ok && at(old) > at(v) {
			continue
		}
		if !ok && len(*dst) >= limit {
			continue
		}
		if *dst == nil {
			*dst = make(map[string]V, len(src))
		}
		(*dst)[k] = v
	}
}
