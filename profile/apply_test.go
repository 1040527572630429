package profile

import (
	"strconv"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

var amsterdam, _ = time.LoadLocation("Europe/Amsterdam")

func sinterklaas() Season {
	return Season{
		ID: "sinterklaas", Location: amsterdam,
		Collect:    Window{From: MonthDay{11, 1}, To: MonthDay{12, 5}},
		Active:     Window{From: MonthDay{11, 10}, To: MonthDay{12, 5}},
		Gift:       true,
		Categories: []string{"toys", "games"},
		RetainDays: 45,
	}
}

func TestWindowContains(t *testing.T) {
	nov := Window{From: MonthDay{11, 1}, To: MonthDay{12, 5}}
	newYear := Window{From: MonthDay{12, 20}, To: MonthDay{1, 6}}
	for _, tc := range []struct {
		w     Window
		at    string
		in    bool
		cycle int
	}{
		{nov, "2026-11-01T00:00:00+01:00", true, 2026},
		{nov, "2026-10-31T23:59:59+01:00", false, 0},
		{nov, "2026-12-05T23:59:59+01:00", true, 2026},
		{nov, "2026-12-06T00:00:00+01:00", false, 0},
		// 23:30 UTC on 31 October is already 1 November in Amsterdam.
		{nov, "2026-10-31T23:30:00Z", true, 2026},
		{newYear, "2026-12-31T12:00:00+01:00", true, 2026},
		{newYear, "2027-01-06T12:00:00+01:00", true, 2026},
		{newYear, "2027-01-07T12:00:00+01:00", false, 0},
		{newYear, "2026-12-19T12:00:00+01:00", false, 0},
	} {
		at, err := time.Parse(time.RFC3339, tc.at)
		require.NoError(t, err)
		cycle, in := tc.w.Opened(at, amsterdam)
		assert.Equal(t, tc.in, in, "%v at %s", tc.w, tc.at)
		if in {
			assert.Equal(t, tc.cycle, cycle, "%v at %s", tc.w, tc.at)
		}
	}
}

func TestParseMonthDay(t *testing.T) {
	md, err := ParseMonthDay("02-29")
	require.NoError(t, err)
	assert.Equal(t, "02-29", md.String())
	for _, bad := range []string{"", "2-1", "13-01", "00-10", "04-31", "11/01", "ab-cd"} {
		_, err := ParseMonthDay(bad)
		assert.Error(t, err, bad)
	}
}

func TestSeasonEnd(t *testing.T) {
	s := sinterklaas()
	end := s.End(2026)
	assert.Equal(t, "2026-12-05T23:59:59+01:00", end.Format(time.RFC3339))
	assert.Equal(t, 2026, s.Cycle(time.Date(2026, 12, 20, 0, 0, 0, 0, time.UTC)))
	assert.Equal(t, 2025, s.Cycle(time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC)))
}

func TestSeasonCycles(t *testing.T) {
	day := func(y int, m time.Month, d int) time.Time { return time.Date(y, m, d, 12, 0, 0, 0, amsterdam) }
	early := sinterklaas()
	early.Collect = Window{From: MonthDay{11, 15}, To: MonthDay{12, 5}}
	early.Active = Window{From: MonthDay{11, 10}, To: MonthDay{12, 5}}
	late := sinterklaas()
	late.Collect = Window{From: MonthDay{10, 1}, To: MonthDay{10, 31}}
	late.Active = Window{From: MonthDay{11, 1}, To: MonthDay{1, 15}}
	newYear := sinterklaas()
	newYear.Collect = Window{From: MonthDay{1, 5}, To: MonthDay{2, 1}}
	newYear.Active = Window{From: MonthDay{12, 20}, To: MonthDay{2, 1}}
	for _, tc := range []struct {
		name  string
		s     Season
		cycle int
		end   string
		at    map[time.Time]int // times and the cycle they belong to
	}{
		{"sinterklaas", sinterklaas(), 2026, "2026-12-05", map[time.Time]int{
			day(2026, 10, 31): 2025, day(2026, 11, 1): 2026, day(2026, 12, 20): 2026, day(2027, 3, 1): 2026}},
		{"active opens before collect", early, 2026, "2026-12-05", map[time.Time]int{
			day(2026, 11, 9): 2025, day(2026, 11, 10): 2026, day(2026, 11, 15): 2026, day(2026, 12, 31): 2026}},
		{"active follows collect across new year", late, 2026, "2027-01-15", map[time.Time]int{
			day(2026, 10, 1): 2026, day(2027, 1, 10): 2026, day(2027, 9, 30): 2026}},
		{"active opens the year before collect", newYear, 2027, "2027-02-01", map[time.Time]int{
			day(2026, 12, 19): 2026, day(2026, 12, 20): 2027, day(2027, 1, 20): 2027}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			assert.Equal(t, tc.end, tc.s.End(tc.cycle).Format(time.DateOnly), "the cycle ends when its last window closes, not a year late")
			for at, want := range tc.at {
				assert.Equal(t, want, tc.s.Cycle(at), at.Format(time.DateOnly))
			}
		})
	}
}

func TestRoute(t *testing.T) {
	pol := &Policy{Seasons: []Season{sinterklaas()}}
	inNov := time.Date(2026, 11, 24, 12, 0, 0, 0, time.UTC)
	inMarch := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	for _, tc := range []struct {
		name string
		ev   Event
		at   time.Time
		want int
	}{
		{"gift in window", Event{Type: CartAdd, Gift: true}, inNov, 0},
		{"listed category", Event{Type: PageView, Category: "toys"}, inNov, 0},
		{"explicit season", Event{Type: PageView, Season: "sinterklaas"}, inNov, 0},
		{"other category", Event{Type: PageView, Category: "sneakers"}, inNov, -1},
		{"unknown season", Event{Type: PageView, Season: "easter", Category: "toys"}, inNov, -1},
		{"gift outside window", Event{Type: CartAdd, Gift: true}, inMarch, -1},
		{"category outside window", Event{Type: PageView, Category: "toys"}, inMarch, -1},
	} {
		assert.Equal(t, tc.want, route(pol, &tc.ev, tc.at), tc.name)
	}
}

func TestCountersAndDays(t *testing.T) {
	p := &Profile{}
	day := int64(20_000 * 86400)
	for i := range 3 {
		p.apply(&Event{Type: PageView, URL: "/sneakers"}, day+int64(i)*86400, nil)
	}
	p.apply(&Event{Type: PageView, URL: "/sneakers"}, day+2*86400+60, nil)
	require.Len(t, p.Behaviour, 1)
	c := p.Behaviour[0]
	assert.Equal(t, uint32(4), c.Total)
	assert.Equal(t, []DayCount{{20000, 1}, {20001, 1}, {20002, 2}}, c.Days)
	// A day bucket further back than MaxDays is dropped; Total keeps it.
	p.apply(&Event{Type: PageView, URL: "/sneakers"}, day+(MaxDays+5)*86400, nil)
	c = p.Behaviour[0]
	assert.Equal(t, uint32(5), c.Total)
	assert.Equal(t, []DayCount{{20000 + MaxDays + 5, 1}}, c.Days)
	// An import in the past lands in order.
	p.apply(&Event{Type: PageView, URL: "/sneakers"}, day+(MaxDays)*86400, nil)
	assert.Equal(t, []DayCount{{20000 + MaxDays, 1}, {20000 + MaxDays + 5, 1}}, p.Behaviour[0].Days)
}

func TestBoundedProfile(t *testing.T) {
	p := &Profile{}
	ts := int64(1_800_000_000)
	for i := range 5000 {
		p.apply(&Event{Type: PageView, URL: "/p/" + strconv.Itoa(i)}, ts+int64(i), nil)
		p.apply(&Event{Type: Purchase, OrderID: "o" + strconv.Itoa(i), Items: []Item{{SKU: "s" + strconv.Itoa(i)}}}, ts+int64(i), nil)
		p.apply(&Event{Type: CartAdd, SKU: "c" + strconv.Itoa(i)}, ts+int64(i), nil)
	}
	assert.Len(t, p.Behaviour, MaxCounters)
	assert.Len(t, p.Orders, MaxOrders)
	assert.Len(t, p.Cart.Items, MaxCartItems)
	// The newest counters survive: the least recently used went first.
	assert.NotEqual(t, -1, p.counter(Purchase, Key{}), "the order counter is used by every purchase, so it stays")
	assert.NotEqual(t, -1, p.counter(PageView, Key{URL: "/p/4999"}))
	assert.Equal(t, -1, p.counter(PageView, Key{URL: "/p/0"}))
	assert.Less(t, len(Encode(nil, p)), 64<<10, "an encoded profile at its bounds stays small")
}

func TestPurchaseCountsOnce(t *testing.T) {
	p := &Profile{}
	ev := Event{Type: Purchase, OrderID: "o-1", Items: []Item{{SKU: "a", Price: 10, Quantity: 2}, {SKU: "b", Category: "shoes", Price: 5}}}
	assert.True(t, p.apply(&ev, 100, nil))
	assert.False(t, p.apply(&ev, 200, nil), "the same order id changes nothing")
	want := []uint64{keyHash(Key{SKU: "a"}), keyHash(Key{SKU: "b", Category: "shoes"}), keyHash(Key{})}
	assert.Equal(t, []Order{{ID: "o-1", At: 100, Value: 25, Counted: want}}, p.Orders, "the order remembers the counters it added to")
	assert.Equal(t, uint32(1), p.Behaviour[p.counter(Purchase, Key{})].Total)
	assert.Equal(t, uint32(1), p.Behaviour[p.counter(Purchase, Key{SKU: "b", Category: "shoes"})].Total)
}

func TestCart(t *testing.T) {
	p := &Profile{}
	p.apply(&Event{Type: CartAdd, SKU: "a", Price: 10, Quantity: 1}, 100, nil)
	p.apply(&Event{Type: CartAdd, SKU: "a", Price: 10, Quantity: 2}, 110, nil)
	p.apply(&Event{Type: CartAdd, SKU: "b", Price: 5, Quantity: 1}, 120, nil)
	assert.Equal(t, 35.0, p.Cart.Value())
	assert.Equal(t, int64(120), p.Cart.UpdatedAt)
	p.apply(&Event{Type: CartRemove, SKU: "a", Quantity: 1}, 130, nil)
	assert.Equal(t, 25.0, p.Cart.Value())
	p.apply(&Event{Type: CartRemove, SKU: "a"}, 140, nil)
	assert.Equal(t, []CartItem{{SKU: "b", Price: 5, Quantity: 1}}, p.Cart.Items)
	p.apply(&Event{Type: Purchase, OrderID: "o", Items: []Item{{SKU: "b", Price: 5}}}, 150, nil)
	assert.Empty(t, p.Cart.Items, "bought lines leave the cart")
}

func TestScoringDoesNotOverrideVisitor(t *testing.T) {
	p := &Profile{}
	p.apply(&Event{Type: InterestEvent, Name: "running", On: false}, 100, nil)
	p.apply(&Event{Type: PageView, URL: "/running"}, 200, []ScoreHit{{Points: 5, Interest: "running"}})
	assert.Equal(t, 5.0, p.Score)
	assert.False(t, p.HasInterest("running"), "a scoring rule never switches on what the visitor switched off")
	p.apply(&Event{Type: PageView, URL: "/training"}, 300, []ScoreHit{{Points: 1, Interest: "training"}})
	assert.True(t, p.HasInterest("training"))
	assert.Equal(t, SourceScoring, p.Interests["training"].Source)
}

func TestVisits(t *testing.T) {
	p := &Profile{}
	p.apply(&Event{Type: PageView, URL: "/"}, 1000, nil)
	p.apply(&Event{Type: PageView, URL: "/"}, 1000+60, nil)
	p.apply(&Event{Type: PageView, URL: "/"}, 1000+60+31*60, nil)
	assert.Equal(t, uint32(2), p.Visits)
	assert.Equal(t, int64(1000), p.FirstSeen)
	assert.Equal(t, int64(1000+60+31*60), p.LastSeen)
}

func TestMerge(t *testing.T) {
	dst := &Profile{ID: "contact", Known: true, Email: "sam@example.nl", FirstSeen: 500, LastSeen: 900, Visits: 3, Score: 2,
		Fields:    map[string]Field{"first_name": {Value: Value{Kind: KindString, Str: "Sam"}, At: 100}, "city": {Value: Value{Kind: KindString, Str: "Delft"}, At: 900}},
		Interests: map[string]Interest{"running": {On: true, Source: SourceShop, At: 10}},
		Consents:  map[string]Consent{"profiling": {Granted: true, At: 10}},
		Orders:    []Order{{ID: "o1", At: 50}},
	}
	dst.count(PageView, Key{URL: "/sneakers"}, 86400*3, 2)
	src := &Profile{ID: "anon", FirstSeen: 300, LastSeen: 1000, Visits: 2, Score: 3,
		Fields:    map[string]Field{"first_name": {Value: Value{Kind: KindString, Str: "Samuel"}, At: 200}, "city": {Value: Value{Kind: KindString, Str: "Gouda"}, At: 800}},
		Interests: map[string]Interest{"sneakers": {On: true, Source: SourceVisitor, At: 20}},
		Consents:  map[string]Consent{"email": {Granted: true, At: 20}},
		Orders:    []Order{{ID: "o1", At: 50}, {ID: "o2", At: 60}},
	}
	src.count(PageView, Key{URL: "/sneakers"}, 86400*3, 1)
	src.count(PageView, Key{URL: "/sneakers"}, 86400*4, 1)
	dst.Merge(src)
	assert.Equal(t, int64(300), dst.FirstSeen, "first-seen is the earliest")
	assert.Equal(t, int64(1000), dst.LastSeen)
	assert.Equal(t, uint32(5), dst.Visits, "counters add")
	assert.Equal(t, 5.0, dst.Score)
	assert.Equal(t, "Samuel", dst.Fields["first_name"].Value.Str, "newer field values win")
	assert.Equal(t, "Delft", dst.Fields["city"].Value.Str, "newer field values win")
	assert.True(t, dst.HasInterest("running") && dst.HasInterest("sneakers"), "interests unite")
	assert.True(t, dst.HasConsent("profiling") && dst.HasConsent("email"), "consents unite")
	assert.Len(t, dst.Orders, 2)
	c := dst.Behaviour[dst.counter(PageView, Key{URL: "/sneakers"})]
	assert.Equal(t, uint32(4), c.Total)
	assert.Equal(t, []DayCount{{3, 3}, {4, 1}}, c.Days)
	assert.Equal(t, []string{"anon"}, dst.Aliases)
	assert.Equal(t, "sam@example.nl", dst.Email)
}

// TestMergeCountsASharedOrderOnce: an order id both profiles counted
// before the merge counts once after it, in the order counter, the line
// counters and their day buckets; the merged profile's other orders add.
func TestMergeCountsASharedOrderOnce(t *testing.T) {
	const day = 86400
	shared := Event{Type: Purchase, OrderID: "o-shared", Items: []Item{{SKU: "shoe", Category: "shoes", Price: 50}, {SKU: "sock", Price: 5}}}
	dst := &Profile{ID: "contact"}
	require.True(t, dst.apply(&shared, 10*day, nil))
	src := &Profile{ID: "anon"}
	require.True(t, src.apply(&shared, 11*day, nil), "the same order, seen a day later on the other device")
	require.True(t, src.apply(&Event{Type: Purchase, OrderID: "o-own", Items: []Item{{SKU: "shoe", Category: "shoes", Price: 50}}}, 11*day, nil))
	require.True(t, src.apply(&Event{Type: PageView, URL: "/shoes"}, 11*day, nil))
	before := Encode(nil, src)

	dst.Merge(src)
	counter := func(k Key) Counter {
		i := dst.counter(Purchase, k)
		require.GreaterOrEqual(t, i, 0, "%+v", k)
		return dst.Behaviour[i]
	}
	orders := counter(Key{})
	assert.Equal(t, uint32(2), orders.Total, "o-shared once, o-own once")
	assert.Equal(t, []DayCount{{10, 1}, {11, 1}}, orders.Days)
	shoe := counter(Key{SKU: "shoe", Category: "shoes"})
	assert.Equal(t, uint32(2), shoe.Total, "the shared order's shoe once, o-own's shoe once")
	assert.Equal(t, []DayCount{{10, 1}, {11, 1}}, shoe.Days)
	sock := counter(Key{SKU: "sock"})
	assert.Equal(t, uint32(1), sock.Total)
	assert.Equal(t, []DayCount{{10, 1}}, sock.Days)
	assert.Equal(t, uint32(1), dst.Behaviour[dst.counter(PageView, Key{URL: "/shoes"})].Total, "other behaviour adds")
	require.Len(t, dst.Orders, 2)
	assert.Equal(t, int64(10*day), dst.Orders[0].At, "the survivor keeps its own record of the shared order")
	assert.Equal(t, before, Encode(nil, src), "the merged profile (shared with a snapshot) is not changed")

	// Merged again into a third profile, the order still counts once.
	third := &Profile{ID: "third"}
	require.True(t, third.apply(&shared, 12*day, nil))
	third.Merge(dst)
	assert.Equal(t, uint32(2), third.Behaviour[third.counter(Purchase, Key{})].Total)
	assert.Equal(t, uint32(1), third.Behaviour[third.counter(Purchase, Key{SKU: "sock"})].Total)
}

func TestForgetBehaviour(t *testing.T) {
	p := &Profile{Fields: map[string]Field{"first_name": {Value: Value{Kind: KindString, Str: "Sam"}}}}
	p.apply(&Event{Type: InterestEvent, Name: "mine", On: true}, 10, nil)
	p.apply(&Event{Type: PageView, URL: "/x"}, 20, []ScoreHit{{Points: 1, Interest: "scored"}})
	p.apply(&Event{Type: CartAdd, SKU: "a"}, 30, nil)
	p.forgetBehaviour()
	assert.Empty(t, p.Behaviour)
	assert.Empty(t, p.Cart.Items)
	assert.Zero(t, p.Score)
	assert.True(t, p.HasInterest("mine"))
	assert.False(t, p.HasInterest("scored"))
	assert.Equal(t, "Sam", p.Fields["first_name"].Value.Str)
}

func TestCodecRoundTrip(t *testing.T) {
	p := &Profile{ID: NewID(), Season: "sinterklaas", Cycle: 2026, Known: true, Email: "a@b.nl", CustomerID: "42",
		Aliases: []string{"x"}, FirstSeen: 1, LastSeen: 2, Visits: 3, Score: 4.5,
		Fields: map[string]Field{
			"s": {Value: Value{Kind: KindString, Str: "v"}, At: 1}, "n": {Value: Value{Kind: KindNumber, Num: 45}},
			"b": {Value: Value{Kind: KindBool, Num: 1}}, "d": {Value: Value{Kind: KindDate, Time: -86400}},
			"l": {Value: Value{Kind: KindList, List: []string{"a", ""}}},
		},
		Interests: map[string]Interest{"i": {On: true, Source: SourceScoring, At: 3}},
		Consents:  map[string]Consent{"profiling": {Granted: true, At: 4}},
		Cart:      Cart{Items: []CartItem{{SKU: "a", Category: "c", Price: 1.5, Quantity: 2, Gift: true}}, UpdatedAt: 9},
		Orders:    []Order{{ID: "o", At: 5, Value: 6.25, Counted: []uint64{1, 1 << 63}}, {ID: "p", At: 6}},
	}
	p.count(Purchase, Key{SKU: "a", Category: "c"}, 86400*10, 1)
	p.count(PageView, Key{URL: "/ü", Target: "t", Campaign: "c", Form: "f"}, 86400*12, 3)
	got, err := Decode(Encode(nil, p))
	require.NoError(t, err)
	assert.Equal(t, p, got)

	b := Encode(nil, p)
	for i := range b {
		// Every truncation is an error, never a panic.
		_, err := Decode(b[:i])
		require.Error(t, err, "truncated at %d", i)
	}
}

func FuzzDecode(f *testing.F) {
	p := &Profile{ID: "x", Fields: map[string]Field{"a": {Value: Value{Kind: KindList, List: []string{"b"}}}}}
	p.count(PageView, Key{URL: "/"}, 100, 1)
	f.Add(Encode(nil, p))
	f.Add([]byte{1, 200, 1})
	f.Fuzz(func(t *testing.T, b []byte) {
		p, err := Decode(b)
		if err != nil {
			return
		}
		q, err := Decode(Encode(nil, p))
		if err != nil {
			t.Fatalf("re-encoding a decoded record fails: %v", err)
		}
		_ = q
	})
}
