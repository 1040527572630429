package profile

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"sort"
	"unsafe"
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
	p := &Profile{}
	if err := decodeInto(p, string(b), nil); err != nil {
		return nil, err
	}
	return p, nil
}

// reuse is the memory a decode into a reused profile takes its day counts
// and string lists from, so that decoding into it again allocates nothing
// once it has grown to the profiles it sees (see Scratch).
type reuse struct {
	days    []DayCount
	strs    []string
	counted []uint64
}

// decodeInto decodes the record s into p, replacing all of p. Strings are
// cut from s, which must stay unchanged while p is used. With ru nil, p is
// new and gets exactly sized memory of its own; otherwise p's maps and
// slices and ru's arrays are reused, and p is valid until the next decode
// into the same p and ru.
func decodeInto(p *Profile, s string, ru *reuse) error {
	d := decoder{b: unsafe.Slice(unsafe.StringData(s), len(s)), s: s, ru: ru}
	if ru != nil {
		ru.strs = ru.strs[:0]
	}
	v := d.byte()
	if v < 1 || v > codecVersion {
		return fmt.Errorf("%w: format %d", errCorrupt, v)
	}
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
	n := d.count()
	p.Fields = remake(p.Fields, n, ru != nil)
	for range n {
		k := d.str()
		v := d.value()
		p.Fields[k] = Field{Value: v, At: d.int()}
	}
	n = d.count()
	p.Interests = remake(p.Interests, n, ru != nil)
	for range n {
		k := d.str()
		p.Interests[k] = Interest{On: d.bool(), Source: Source(d.byte()), At: d.int()}
	}
	n = d.count()
	p.Consents = remake(p.Consents, n, ru != nil)
	for range n {
		k := d.str()
		p.Consents[k] = Consent{Granted: d.bool(), At: d.int()}
	}
	p.Score = d.float()
	p.Cart.Items = resize(p.Cart.Items, d.count(), ru != nil)
	for i := range p.Cart.Items {
		p.Cart.Items[i] = CartItem{SKU: d.str(), Category: d.str(), Price: d.float(), Quantity: int(d.int()), Gift: d.bool()}
	}
	p.Cart.UpdatedAt = d.int()
	p.Orders = resize(p.Orders, d.count(), ru != nil)
	for i := range p.Orders {
		p.Orders[i] = Order{ID: d.str(), At: d.int(), Value: d.float()}
	}
	p.Behaviour = resize(p.Behaviour, d.count(), ru != nil)
	d.behaviour(p.Behaviour)
	n = 0
	if v >= 2 {
		n = d.count()
	}
	p.Experiments = resize(p.Experiments, n, ru != nil)
	if n > 0 {
		for i := range p.Experiments {
			p.Experiments[i] = Assignment{Experiment: d.str(), Variant: d.str(), At: d.int(), Converted: d.int()}
		}
	}
	if v >= 3 && len(p.Orders) > 0 {
		d.counted(p.Orders)
	}
	if d.err != nil {
		return d.err
	}
	if len(d.b) != 0 {
		return fmt.Errorf("%w: %d trailing bytes", errCorrupt, len(d.b))
	}
	return nil
}

// behaviour decodes the counters into cs. The day counts of all counters
// share one array: exactly sized for a new profile (an estimate, or an
// array outgrown on the way, would otherwise stay allocated with it), the
// reused one otherwise.
func (d *decoder) behaviour(cs []Counter) {
	if len(cs) == 0 {
		return
	}
	var days []DayCount
	initial := len(d.b) / 8
	if d.ru != nil {
		days = d.ru.days[:0]
	} else {
		days = make([]DayCount, 0, initial)
	}
	for i := range cs {
		c := &cs[i]
		c.Type = EventType(d.byte())
		c.Key = Key{URL: d.str(), Category: d.str(), SKU: d.str(), Campaign: d.str(), Form: d.str(), Target: d.str()}
		c.Total = uint32(d.uint())
		c.First = d.int()
		c.Last = d.int()
		c.Days = nil
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
	if d.ru != nil {
		d.ru.days = days
		return
	}
	if cap(days) != initial || cap(days) > len(days)+len(days)/8 {
		exact := make([]DayCount, len(days))
		copy(exact, days)
		off := 0
		for i := range cs {
			c := &cs[i]
			if n := len(c.Days); n > 0 {
				c.Days = exact[off : off+n : off+n]
				off += n
			}
		}
	}
}

// counted decodes the orders' counted purchase counters. The record ends
// with them: its remaining bytes bound their number, so one array holds
// them all, exactly sized for a new profile, the reused one otherwise.
func (d *decoder) counted(orders []Order) {
	var all []uint64
	if d.ru != nil {
		all = d.ru.counted[:0]
	} else {
		all = make([]uint64, 0, len(d.b)/8)
	}
	for i := range orders {
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
			orders[i].Counted = all[start:len(all):len(all)]
		}
	}
	if d.ru != nil {
		d.ru.counted = all
	}
}

// remake returns m emptied for n entries: nil for none in a new profile,
// m cleared when reused.
func remake[V any](m map[string]V, n int, reused bool) map[string]V {
	if reused && m != nil {
		clear(m)
		return m
	}
	if n == 0 {
		return nil
	}
	return make(map[string]V, n)
}

// resize returns s with length n: nil for none in a new profile, s's
// array when reused and large enough.
func resize[T any](s []T, n int, reused bool) []T {
	if reused && n <= cap(s) {
		return s[:n]
	}
	if n == 0 {
		return nil
	}
	return make([]T, n)
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
	ru  *reuse
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

// uint and int read most values (lengths, counts, small deltas) from one
// byte: that case is inlined, the rest goes through encoding/binary.
func (d *decoder) uint() uint64 {
	if len(d.b) > 0 && d.b[0] < 0x80 {
		v := uint64(d.b[0])
		d.b = d.b[1:]
		return v
	}
	return d.uvarint()
}
func (d *decoder) uvarint() uint64 {
	v, n := binary.Uvarint(d.b)
	if n <= 0 {
		d.fail()
		return 0
	}
	d.b = d.b[n:]
	return v
}
func (d *decoder) int() int64 {
	if len(d.b) > 0 && d.b[0] < 0x80 {
		x := int64(d.b[0])
		d.b = d.b[1:]
		return x>>1 ^ -(x & 1)
	}
	return d.varint()
}
func (d *decoder) varint() int64 {
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
	if d.ru == nil {
		ss := make([]string, n)
		for i := range ss {
			ss[i] = d.str()
		}
		return ss
	}
	start := len(d.ru.strs)
	for range n {
		d.ru.strs = append(d.ru.strs, d.str())
	}
	return d.ru.strs[start:len(d.ru.strs):len(d.ru.strs)]
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
