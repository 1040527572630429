package profile

import (
	"bytes"
	"strconv"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// fill returns s repeated and cut to n bytes, made distinct by tag.
func fill(tag string, n int) string {
	s := tag + strings.Repeat("x", n)
	return s[:n]
}

// maximal returns a profile with every part at its count bound and every
// value at its longest.
func maximal(at int64) *Profile {
	p := &Profile{
		ID: NewID(), Season: fill("s", maxName), Cycle: 2026, Known: true,
		Email: fill("e", maxIdent), CustomerID: fill("c", maxName*2),
		FirstSeen: at, LastSeen: at, Visits: 1 << 31, Score: 1e300,
		Fields: map[string]Field{}, Interests: map[string]Interest{}, Consents: map[string]Consent{},
	}
	for i := range MaxAliases {
		p.Aliases = append(p.Aliases, fill(strconv.Itoa(i), 32))
	}
	for i := range MaxAssignments {
		// Experiment and variant ids are at most 64 characters.
		p.Experiments = append(p.Experiments, Assignment{Experiment: fill("x"+strconv.Itoa(i), 64), Variant: fill("v", 64), At: at, Converted: at})
	}
	for i := range MaxFields {
		// One event sets at most ShareFields bytes of fields, so no value
		// is longer; each of these alone takes nearly all of it.
		list := make([]string, ShareFields/maxValue-1)
		for j := range list {
			list[j] = fill(strconv.Itoa(j), maxValue)
		}
		p.Fields[fill(strconv.Itoa(i)+"f", maxName)] = Field{Value: Value{Kind: KindList, List: list}, At: at + int64(i)}
	}
	for i := range MaxInterests {
		p.Interests[fill(strconv.Itoa(i)+"i", maxName)] = Interest{On: true, Source: SourceShop, At: at}
	}
	for i := range MaxConsents {
		p.Consents[fill(strconv.Itoa(i)+"c", maxName)] = Consent{Granted: true, At: at}
	}
	for i := range MaxCartItems {
		p.Cart.Items = append(p.Cart.Items, CartItem{SKU: fill(strconv.Itoa(i)+"k", maxName*2), Category: fill("c", maxName), Price: 1e9, Quantity: 10000, Gift: true})
	}
	p.Cart.UpdatedAt = at
	for i := range MaxOrders {
		o := Order{ID: fill(strconv.Itoa(i)+"o", maxName*2), At: at + int64(i), Value: 1e13}
		for j := range MaxItems + 1 {
			o.Counted = append(o.Counted, uint64(j)<<56)
		}
		p.Orders = append(p.Orders, o)
	}
	for i := range MaxCounters {
		c := Counter{Type: Click, Total: 1<<32 - 1, First: at, Last: at + int64(i),
			Key: Key{URL: "/" + fill(strconv.Itoa(i)+"u", maxURL-1), Category: fill("c", maxName), SKU: fill("s", maxName*2),
				Campaign: fill("a", maxName*2), Form: fill("f", maxName*2), Target: fill("t", maxName*4)}}
		for d := range MaxDays {
			c.Days = append(c.Days, DayCount{Day: Day(at) - int32(MaxDays*1000) + int32(d*1000), N: 1<<32 - 1})
		}
		p.Behaviour = append(p.Behaviour, c)
	}
	return p
}

func TestRecordStaysUnderMaxRecord(t *testing.T) {
	const at = int64(1_800_000_000)
	p := maximal(at)
	require.Greater(t, len(Encode(nil, p)), 1<<20, "the parts at their bounds are far over MaxRecord")
	b := encodeBounded(p)
	assert.Less(t, len(b), MaxRecord)
	got, err := Decode(b)
	require.NoError(t, err)
	assert.True(t, bytes.Equal(b, Encode(nil, p)), "the profile kept is the one stored")

	// The oldest went first in every part that was over its share.
	require.NotEmpty(t, got.Behaviour)
	assert.Equal(t, at+MaxCounters-1, got.Behaviour[len(got.Behaviour)-1].Last, "the most recently used counter stays")
	assert.NotEqual(t, at, got.Behaviour[0].Last, "the least recently used counter went")
	require.NotEmpty(t, got.Orders)
	assert.Equal(t, p.Orders[len(p.Orders)-1].ID, got.Orders[len(got.Orders)-1].ID, "the newest order id stays")
	assert.Less(t, len(got.Orders), MaxOrders)
	require.NotEmpty(t, got.Cart.Items)
	assert.Equal(t, fill("99k", maxName*2), got.Cart.Items[len(got.Cart.Items)-1].SKU, "the newest cart line stays")
	newest := fill("63f", maxName)
	assert.Contains(t, got.Fields, newest, "the most recently set field stays")
	assert.NotContains(t, got.Fields, fill("0f", maxName), "the least recently set field went")
	// Parts bounded by count are never cut.
	assert.Len(t, got.Interests, MaxInterests)
	assert.Len(t, got.Consents, MaxConsents)
	assert.Len(t, got.Aliases, MaxAliases)
	assert.Len(t, got.Experiments, MaxAssignments)

	// Each share holds: a record cut once needs no second cut.
	for name, size := range map[string]struct{ got, share int }{
		"behaviour": {sum(got.Behaviour, func(c Counter) int { return counterSize(&c) }), ShareBehaviour},
		"cart":      {sum(got.Cart.Items, func(c CartItem) int { return cartItemSize(&c) }), ShareCart},
		"orders":    {sum(got.Orders, func(o Order) int { return orderSize(&o) }), ShareOrders},
	} {
		assert.LessOrEqual(t, size.got, size.share, name)
	}
	fields := 0
	for k, f := range got.Fields {
		fields += fieldSize(k, f)
	}
	assert.LessOrEqual(t, fields, ShareFields)
}

func TestEncodeBoundedLeavesSmallRecords(t *testing.T) {
	p := maximal(1_800_000_000)
	p.Fields = nil // under MaxRecord once fields and a part of behaviour are gone
	p.Behaviour = p.Behaviour[:5]
	for i := range p.Orders {
		p.Orders[i].Counted = p.Orders[i].Counted[:2] // one line each
	}
	before := Encode(nil, p)
	require.Less(t, len(before), MaxRecord)
	require.Greater(t, len(before), ShareBehaviour+ShareCart, "parts over their shares")
	assert.True(t, bytes.Equal(before, encodeBounded(p)), "nothing is cut from a record under MaxRecord")
}

func TestElementSizesMatchEncode(t *testing.T) {
	p := maximal(1_800_000_000)
	base := len(Encode(nil, &Profile{}))
	one := func(q *Profile) int { return len(Encode(nil, q)) - base }
	c := p.Behaviour[7]
	c.First, c.Last = -5, 1<<40
	// A profile holding one element, less the empty profile, less the
	// one-byte count that becomes 1: the element's own bytes.
	assert.Equal(t, counterSize(&c), one(&Profile{Behaviour: []Counter{c}})-0)
	it := p.Cart.Items[3]
	assert.Equal(t, cartItemSize(&it), one(&Profile{Cart: Cart{Items: []CartItem{it}}}))
	o := p.Orders[5]
	assert.Equal(t, orderSize(&o), one(&Profile{Orders: []Order{o}}))
	for k, f := range p.Fields {
		assert.Equal(t, fieldSize(k, f), one(&Profile{Fields: map[string]Field{k: f}}))
		break
	}
	for _, v := range []int64{0, 1, -1, 63, 64, -64, -65, 1 << 40, -1 << 62} {
		assert.Equal(t, len(Encode(nil, &Profile{FirstSeen: v}))-base+1, varintLen(v), v)
	}
}

func sum[T any](xs []T, f func(T) int) int {
	n := 0
	for _, x := range xs {
		n += f(x)
	}
	return n
}
