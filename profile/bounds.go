package profile

import (
	"math/bits"
	"sort"
	"time"
)

// Bounds keep every profile finite whatever a visitor sends: a visitor who
// sends a million distinct URLs keeps at most MaxCounters counters, the
// least recently used dropped first. README.md documents these figures.
const (
	MaxCounters    = 512  // behaviour counters (distinct type + URL/category/sku/campaign/form/target)
	MaxDays        = 92   // day buckets per counter: "within" windows reach back this far
	MaxOrders      = 100  // order ids remembered for counting an order once
	MaxCartItems   = 100  // lines in the cart
	MaxFields      = 64   // explicit fields
	MaxInterests   = 64   // interests
	MaxConsents    = 16   // consent purposes
	MaxAliases     = 16   // visitor ids merged into one profile
	MaxListItems   = 32   // items in a list field
	MaxEvents      = 100  // events in one request
	MaxItems       = 100  // lines in one purchase
	MaxTokenLen    = 2048 // bytes of an identify's identity token
	maxURL         = 512  // bytes of a URL path kept (longer paths are cut)
	maxValue       = 1024
	maxName        = 64
	maxIdent       = 254
	visitGap       = 30 * time.Minute // a new visit starts after this much inactivity
	defaultAnonTTL = 90 * 24 * time.Hour
	defaultKnown   = 400 * 24 * time.Hour
)

// MaxRecord is the size every stored profile record stays under. A write
// that would reach it first cuts each part that is over its share, the
// oldest first; the shares and the parts bounded by count (interests,
// consents, aliases, identifiers, experiment assignments) add up to less than MaxRecord, so the
// record then fits. TestRecordStaysUnderMaxRecord fills every part to its
// bound with maximal values.
const MaxRecord = 64 << 10

// Shares of MaxRecord, in encoded bytes, and what goes first when a part
// is over its share.
const (
	ShareBehaviour = 24 << 10 // least recently used counters first
	ShareFields    = 16 << 10 // least recently set fields first; also the most one event may set
	ShareCart      = 8 << 10  // oldest lines first
	ShareOrders    = 6 << 10  // oldest order ids first
)

// encodeBounded encodes p for storage, first cutting the parts over their
// shares when the record would reach MaxRecord. p is changed to match what
// is stored.
func encodeBounded(p *Profile) []byte {
	b := Encode(nil, p)
	if len(b) < MaxRecord {
		return b
	}
	p.fitShares()
	return Encode(b[:0], p)
}

// fitShares cuts every part of p that is over its share.
func (p *Profile) fitShares() {
	n := 0
	for i := range p.Behaviour {
		n += counterSize(&p.Behaviour[i])
	}
	for n > ShareBehaviour && len(p.Behaviour) > 0 {
		lru := 0
		for j := range p.Behaviour {
			if p.Behaviour[j].Last < p.Behaviour[lru].Last {
				lru = j
			}
		}
		n -= counterSize(&p.Behaviour[lru])
		p.Behaviour = append(p.Behaviour[:lru], p.Behaviour[lru+1:]...)
	}

	n = 0
	for k, f := range p.Fields {
		n += fieldSize(k, f)
	}
	if n > ShareFields {
		names := sortedKeys(p.Fields)
		// Least recently set first; among fields set at once, by name.
		sort.SliceStable(names, func(i, j int) bool { return p.Fields[names[i]].At < p.Fields[names[j]].At })
		for _, k := range names {
			if n <= ShareFields {
				break
			}
			n -= fieldSize(k, p.Fields[k])
			delete(p.Fields, k)
		}
	}

	n = 0
	for i := range p.Cart.Items {
		n += cartItemSize(&p.Cart.Items[i])
	}
	drop := 0
	for ; n > ShareCart && drop < len(p.Cart.Items); drop++ {
		n -= cartItemSize(&p.Cart.Items[drop])
	}
	p.Cart.Items = p.Cart.Items[drop:]

	n = 0
	for i := range p.Orders {
		n += orderSize(&p.Orders[i])
	}
	drop = 0
	for ; n > ShareOrders && drop < len(p.Orders); drop++ {
		n -= orderSize(&p.Orders[drop])
	}
	p.Orders = p.Orders[drop:]
}

// The sizes below are what Encode writes for one element.

func uvarintLen(v uint64) int { return (bits.Len64(v|1) + 6) / 7 }

func varintLen(v int64) int { return uvarintLen(uint64(v<<1) ^ uint64(v>>63)) }

func strSize(s string) int { return uvarintLen(uint64(len(s))) + len(s) }

func valueSize(v Value) int {
	n := 1
	switch v.Kind {
	case KindString:
		n += strSize(v.Str)
	case KindNumber, KindBool:
		n += 8
	case KindDate:
		n += varintLen(v.Time)
	case KindList:
		n += uvarintLen(uint64(len(v.List)))
		for _, s := range v.List {
			n += strSize(s)
		}
	}
	return n
}

func fieldSize(name string, f Field) int {
	return strSize(name) + valueSize(f.Value) + varintLen(f.At)
}

func counterSize(c *Counter) int {
	n := 1 + strSize(c.Key.URL) + strSize(c.Key.Category) + strSize(c.Key.SKU) +
		strSize(c.Key.Campaign) + strSize(c.Key.Form) + strSize(c.Key.Target) +
		uvarintLen(uint64(c.Total)) + varintLen(c.First) + varintLen(c.Last) + uvarintLen(uint64(len(c.Days)))
	prev := int32(0)
	for _, d := range c.Days {
		n += varintLen(int64(d.Day-prev)) + uvarintLen(uint64(d.N))
		prev = d.Day
	}
	return n
}

func cartItemSize(it *CartItem) int {
	return strSize(it.SKU) + strSize(it.Category) + 8 + varintLen(int64(it.Quantity)) + 1
}

func orderSize(o *Order) int {
	return strSize(o.ID) + varintLen(o.At) + 8 + uvarintLen(uint64(len(o.Counted))) + 8*len(o.Counted)
}
