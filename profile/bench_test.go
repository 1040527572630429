package profile

import (
	"strconv"
	"testing"
)

// typicalProfile is a returning visitor: a few dozen counters over a couple
// of weeks, some fields, interests, a cart and orders.
func typicalProfile() *Profile {
	p := &Profile{ID: NewID(), Fields: map[string]Field{}}
	ts := int64(1_795_000_000)
	for i := range 40 {
		p.apply(&Event{Type: PageView, URL: "/demo/p/item-" + strconv.Itoa(i%20), Category: "sneakers"}, ts+int64(i)*7200, nil)
	}
	p.apply(&Event{Type: Identify, Proven: true, Email: "sam@example.nl", Fields: map[string]Value{"first_name": {Kind: KindString, Str: "Sam"}, "shoe_size": {Kind: KindNumber, Num: 45}}}, ts, nil)
	p.apply(&Event{Type: CartAdd, SKU: "sneaker-air-45", Category: "sneakers", Price: 129.95, Quantity: 1}, ts, nil)
	p.apply(&Event{Type: Purchase, OrderID: "o-1", Items: []Item{{SKU: "a", Price: 10}, {SKU: "b", Price: 20}}}, ts, []ScoreHit{{Points: 20}})
	p.apply(&Event{Type: InterestEvent, Name: "running", On: true}, ts, nil)
	return p
}

func TestTypicalProfileSize(t *testing.T) {
	n := len(Encode(nil, typicalProfile()))
	t.Logf("a typical profile encodes to %d bytes", n)
	if n > 2048 {
		t.Fatalf("a typical profile takes %d bytes, over 2 KB", n)
	}
}

func BenchmarkEncode(b *testing.B) {
	p := typicalProfile()
	buf := Encode(nil, p)
	b.ReportAllocs()
	b.SetBytes(int64(len(buf)))
	for b.Loop() {
		buf = Encode(buf[:0], p)
	}
}

func BenchmarkDecode(b *testing.B) {
	buf := Encode(nil, typicalProfile())
	b.ReportAllocs()
	b.SetBytes(int64(len(buf)))
	for b.Loop() {
		if _, err := Decode(buf); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkApplyPageView(b *testing.B) {
	p := typicalProfile()
	ev := Event{Type: PageView, URL: "/demo/p/item-3", Category: "sneakers"}
	b.ReportAllocs()
	for b.Loop() {
		p.apply(&ev, 1_795_100_000, nil)
	}
}

// BenchmarkDecodeReused: the typical profile decoded into reused memory,
// as a cache hit unpacks it.
func BenchmarkDecodeReused(b *testing.B) {
	buf := string(Encode(nil, typicalProfile()))
	var p Profile
	var ru reuse
	b.ReportAllocs()
	b.SetBytes(int64(len(buf)))
	for b.Loop() {
		if err := decodeInto(&p, buf, &ru); err != nil {
			b.Fatal(err)
		}
	}
}
