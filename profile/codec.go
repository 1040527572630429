package profile

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"sort"
)

// The record format is a compact binary encoding, versioned by its first
// byte. It is private to this package: stores keep it as opaque bytes.
// Version 2 appends the experiment assignments, version 3 then each
// order's counted purchase counters (Order.Counted); older records still
// decode.
const codecVersion = 3

// errCorrupt reports a record that does not decode; it is never shown to a
// visitor (Load treats such a record as absent and logs nothing private).
var errCorrupt = errors.New("corrupt profile record")

// Encode appends the binary form of p to dst.
func Encode(dst []byte, p *Profile) []byte {
	e := encoder{b: dst}
	e.byte(codecVersion)
	e.str(p.ID)
	e.str(p.Season)
	e.int(int64(p.Cycle))
	e.bool(p.Known)
	e.str(p.Email)
	e.str(p.CustomerID)
	e.strs(p.Aliases)
	e.int(p.FirstSeen)
	e.int(p.LastSeen)
	e.uint(uint64(p.Visits))
	e.uint(uint64(len(p.Fields)))
	for _, k := range sortedKeys(p.Fields) {
		f := p.Fields[k]
		e.str(k)
		e.value(f.Value)
		e.int(f.At)
	}
	e.uint(uint64(len(p.Interests)))
	for _, k := range sortedKeys(p.Interests) {
		in := p.Interests[k]
		e.str(k)
		e.bool(in.On)
		e.byte(byte(in.Source))
		e.int(in.At)
	}
	e.uint(uint64(len(p.Consents)))
	for _, k := range sortedKeys(p.Consents) {
		c := p.Consents[k]
		e.str(k)
		e.bool(c.Granted)
		e.int(c.At)
	}
	e.float(p.Score)
	e.uint(uint64(len(p.Cart.Items)))
	for _, it := range p.Cart.Items {
		e.str(it.SKU)
		e.str(it.Category)
		e.float(it.Price)
		e.int(int64(it.Quantity))
		e.bool(it.Gift)
	}
	e.int(p.Cart.UpdatedAt)
	e.uint(uint64(len(p.Orders)))
	for _, o := range p.Orders {
		e.str(o.ID)
		e.int(o.At)
		e.float(o.Value)
	}
	e.uint(uint64(len(p.Behaviour)))
	for i := range p.Behaviour {
		c := &p.Behaviour[i]
		e.byte(byte(c.Type))
		e.str(c.Key.URL)
		e.str(c.Key.Category)
		e.str(c.Key.SKU)
		e.str(c.Key.Campaign)
		e.str(c.Key.Form)
		e.str(c.Key.Target)
		e.uint(uint64(c.Total))
		e.int(c.First)
		e.int(c.Last)
		e.uint(uint64(len(c.Days)))
		prev := int32(0)
		for _, d := range c.Days {
			e.int(int64(d.Day - prev)) // ascending: deltas stay small
			prev = d.Day
			e.uint(uint64(d.N))
		}
	}
	e.uint(uint64(len(p.Experiments)))
	for _, a := range p.Experiments {
		e.str(a.Experiment)
		e.str(a.Variant)
		e.int(a.At)
		e.int(a.Converted)
	}
	for _, o := range p.Orders {
		e.uint(uint64(len(o.Counted)))
		for _, h := range o.Counted {
			e.b = binary.LittleEndian.AppendUint64(e.b, h)
		}
	}
	return e.b
}

// Decode parses a record written by Encode.
//
// Every string of the profile is a substring of one copy of the record, and
// the day counts of all counters share backing arrays: a typical profile
// decodes in a handful of allocations instead of one per string and counter.
func Decode(b []byte) (*Profile, error) {
	d := decoder{b: b, s: string(b)}
	v := d.byte()
	if v < 1 || v > codecVersion {
		return nil, fmt.Errorf("%w: format %d", errCorrupt, v)
	}
	p := &Profile{}
	p.ID = d.str()
	p.Season = d.str()
	p.Cycle = int(d.int())
	p.Known = d.bool()
	p.Email = d.str()
	p.CustomerID = d.str()
	p.Aliases = d.strs()
	p.FirstSeen = d.int()
	p.LastSeen = d.int()
	p.Visits = uint32(d.uint())
	if n := d.count(); n > 0 {
		p.Fields = make(map[string]Field, n)
		for range n {
			k := d.str()
			v := d.value()
			p.Fields[k] = Field{Value: v, At: d.int()}
		}
	}
	if n := d.count(); n > 0 {
		p.Interests = make(map[string]Interest, n)
		for range n {
			k := d.str()
			p.Interests[k] = Interest{On: d.bool(), Source: Source(d.byte()), At: d.int()}
		}
	}
	if n := d.count(); n > 0 {
		p.Consents = make(map[string]Consent, n)
		for range n {
			k := d.str()
			p.Consents[k] = Consent{Granted: d.bool(), At: d.int()}
		}
	}
	p.Score = d.float()
	if n := d.count(); n > 0 {
		p.Cart.Items = make([]CartItem, n)
		for i := range p.Cart.Items {
			p.Cart.Items[i] = CartItem{SKU: d.str(), Category: d.str(), Price: d.float(), Quantity: int(d.int()), Gift: d.bool()}
		}
	}
	p.Cart.UpdatedAt = d.int()
	if n := d.count(); n > 0 {
		p.Orders = make([]Order, n)
		for i := range p.Orders {
			p.Orders[i] = Order{ID: d.str(), At: d.int(), Value: d.float()}
		}
	}
	if n := d.count(); n > 0 {
		p.Behaviour = make([]Counter, n)
		initial := len(d.b) / 8
		days := make([]DayCount, 0, initial)
		for i := range p.Behaviour {
			c := &p.Behaviour[i]
			c.Type = EventType(d.byte())
			c.Key = Key{URL: d.str(), Category: d.str(), SKU: d.str(), Campaign: d.str(), Form: d.str(), Target: d.str()}
			c.Total = uint32(d.uint())
			c.First = d.int()
			c.Last = d.int()
			if m := d.count(); m > 0 {
				start := len(days)
				prev := int32(0)
				for range m {
					prev += int32(d.int())
					days = append(days, DayCount{Day: prev, N: uint32(d.uint())})
				}
				// Capped: appending to one counter's days never writes into
				// the next one's. Should days grow, earlier counters keep
				// the old array.
				c.Days = days[start:len(days):len(days)]
			}
		}
		// One exact array for all the day counts: the estimate above (or an
		// array outgrown on the way) would otherwise stay allocated in
		// every cached profile.
		if cap(days) != initial || cap(days) > len(days)+len(days)/8 {
			exact := make([]DayCount, len(days))
			copy(exact, days)
			off := 0
			for i := range p.Behaviour {
				c := &p.Behaviour[i]
				if n := len(c.Days); n > 0 {
					c.Days = exact[off : off+n : off+n]
					off += n
				}
			}
		}
	}
	if v >= 2 {
		if n := d.count(); n > 0 {
			p.Experiments = make([]Assignment, n)
			for i := range p.Experiments {
				p.Experiments[i] = Assignment{Experiment: d.str(), Variant: d.str(), At: d.int(), Converted: d.int()}
			}
		}
	}
	if v >= 3 && len(p.Orders) > 0 {
		// The record ends here: its remaining bytes bound the hashes, so
		// one array holds them all.
		all := make([]uint64, 0, len(d.b)/8)
		for i := range p.Orders {
			n := d.count()
			if n > len(d.b)/8 {
				d.fail()
			}
			if d.err != nil {
				break
			}
			start := len(all)
			for range n {
				all = append(all, binary.LittleEndian.Uint64(d.b))
				d.b = d.b[8:]
			}
			if n > 0 {
				p.Orders[i].Counted = all[start:len(all):len(all)]
			}
		}
	}
	if d.err != nil {
		return nil, d.err
	}
	if len(d.b) != 0 {
		return nil, fmt.Errorf("%w: %d trailing bytes", errCorrupt, len(d.b))
	}
	return p, nil
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

type encoder struct{ b []byte }

func (e *encoder) byte(v byte) { e.b = append(e.b, v) }
func (e *encoder) bool(v bool) {
	if v {
		e.b = append(e.b, 1)
	} else {
		e.b = append(e.b, 0)
	}
}
func (e *encoder) uint(v uint64) { e.b = binary.AppendUvarint(e.b, v) }
func (e *encoder) int(v int64)   { e.b = binary.AppendVarint(e.b, v) }
func (e *encoder) float(v float64) {
	e.b = binary.LittleEndian.AppendUint64(e.b, math.Float64bits(v))
}
func (e *encoder) str(s string) {
	e.uint(uint64(len(s)))
	e.b = append(e.b, s...)
}
func (e *encoder) strs(ss []string) {
	e.uint(uint64(len(ss)))
	for _, s := range ss {
		e.str(s)
	}
}
func (e *encoder) value(v Value) {
	e.byte(byte(v.Kind))
	switch v.Kind {
	case KindString:
		e.str(v.Str)
	case KindNumber, KindBool:
		e.float(v.Num)
	case KindDate:
		e.int(v.Time)
	case KindList:
		e.strs(v.List)
	}
}

// decoder reads what encoder wrote; the first error sticks and later reads
// return zero values, so Decode checks once at the end.
type decoder struct {
	b   []byte
	s   string // the whole record, once: strings are cut from it
	err error
}

func (d *decoder) fail() {
	if d.err == nil {
		d.err = errCorrupt
	}
	d.b = nil
}

func (d *decoder) byte() byte {
	if len(d.b) < 1 {
		d.fail()
		return 0
	}
	v := d.b[0]
	d.b = d.b[1:]
	return v
}
func (d *decoder) bool() bool { return d.byte() == 1 }
func (d *decoder) uint() uint64 {
	v, n := binary.Uvarint(d.b)
	if n <= 0 {
		d.fail()
		return 0
	}
	d.b = d.b[n:]
	return v
}
func (d *decoder) int() int64 {
	v, n := binary.Varint(d.b)
	if n <= 0 {
		d.fail()
		return 0
	}
	d.b = d.b[n:]
	return v
}
func (d *decoder) float() float64 {
	if len(d.b) < 8 {
		d.fail()
		return 0
	}
	v := math.Float64frombits(binary.LittleEndian.Uint64(d.b))
	d.b = d.b[8:]
	return v
}

// count reads a collection length, refusing lengths that the remaining
// bytes cannot hold (every element takes at least one byte).
func (d *decoder) count() int {
	n := d.uint()
	if n > uint64(len(d.b)) {
		d.fail()
		return 0
	}
	return int(n)
}
func (d *decoder) str() string {
	n := d.count()
	if d.err != nil {
		return ""
	}
	if n == 0 {
		return ""
	}
	off := len(d.s) - len(d.b)
	d.b = d.b[n:]
	return d.s[off : off+n]
}
func (d *decoder) strs() []string {
	n := d.count()
	if n == 0 {
		return nil
	}
	ss := make([]string, n)
	for i := range ss {
		ss[i] = d.str()
	}
	return ss
}
func (d *decoder) value() Value {
	v := Value{Kind: Kind(d.byte())}
	switch v.Kind {
	case KindNone:
	case KindString:
		v.Str = d.str()
	case KindNumber, KindBool:
		v.Num = d.float()
	case KindDate:
		v.Time = d.int()
	case KindList:
		v.List = d.strs()
	default:
		d.fail()
	}
	return v
}
