package profile

import "unsafe"

// Estimated Go heap costs, for cache accounting: a map entry with its share
// of control bytes and slack at Go's load factor, and the fixed part of a
// small allocation's rounding.
const (
	mapEntryOverhead = 24
	allocOverhead    = 16
)

// MemSize estimates the bytes of Go heap the snapshot holds: its decoded
// profiles and the stored records kept beside them. The profile cache
// charges entries this much, so that its byte budget bounds real memory
// (TestCacheStaysWithinBudget in edge measures that it does).
func (s *Snapshot) MemSize() int {
	n := int(unsafe.Sizeof(*s)) + allocOverhead
	n += cap(s.Records)*int(unsafe.Sizeof(Record{})) + allocOverhead
	for _, r := range s.Records {
		n += cap(r.Data) + allocOverhead
	}
	n += cap(s.Seasonal)*8 + allocOverhead
	n += cap(s.seasons) * 16
	n += s.Primary.MemSize()
	for _, p := range s.Seasonal {
		if p != nil {
			n += p.MemSize()
		}
	}
	// Allocations are rounded up to Go's size classes (up to 12.5% more)
	// and maps keep slack beyond their load: measured, about a quarter.
	return n + n/4
}

// MemSize estimates the bytes of Go heap the profile holds. Strings are
// counted at their length whether or not they share a backing array.
func (p *Profile) MemSize() int {
	if p == nil {
		return 0
	}
	n := int(unsafe.Sizeof(*p)) + allocOverhead
	n += len(p.ID) + len(p.Season) + len(p.Email) + len(p.CustomerID)
	n += strs(p.Aliases)
	if p.Fields != nil {
		n += 48 + allocOverhead
		for k, f := range p.Fields {
			n += len(k) + int(unsafe.Sizeof(k)+unsafe.Sizeof(f)) + mapEntryOverhead
			n += len(f.Value.Str) + strs(f.Value.List)
		}
	}
	if p.Interests != nil {
		n += 48 + allocOverhead + len(p.Interests)*(int(unsafe.Sizeof("")+unsafe.Sizeof(Interest{}))+mapEntryOverhead)
		for k := range p.Interests {
			n += len(k)
		}
	}
	if p.Consents != nil {
		n += 48 + allocOverhead + len(p.Consents)*(int(unsafe.Sizeof("")+unsafe.Sizeof(Consent{}))+mapEntryOverhead)
		for k := range p.Consents {
			n += len(k)
		}
	}
	n += cap(p.Cart.Items)*int(unsafe.Sizeof(CartItem{})) + allocOverhead
	for _, it := range p.Cart.Items {
		n += len(it.SKU) + len(it.Category)
	}
	n += cap(p.Orders)*int(unsafe.Sizeof(Order{})) + allocOverhead
	for _, o := range p.Orders {
		n += len(o.ID) + 8*cap(o.Counted)
	}
	n += cap(p.Behaviour)*int(unsafe.Sizeof(Counter{})) + allocOverhead
	for i := range p.Behaviour {
		c := &p.Behaviour[i]
		k := &c.Key
		n += len(k.URL) + len(k.Category) + len(k.SKU) + len(k.Campaign) + len(k.Form) + len(k.Target)
		n += cap(c.Days) * int(unsafe.Sizeof(DayCount{}))
	}
	return n
}

func strs(ss []string) int {
	if ss == nil {
		return 0
	}
	n := cap(ss)*16 + allocOverhead
	for _, s := range ss {
		n += len(s)
	}
	return n
}
