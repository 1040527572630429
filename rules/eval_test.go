package rules

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/etalage/etalage/profile"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

var testNow = time.Date(2026, 11, 24, 12, 0, 0, 0, time.UTC)

func mustCompile(t testing.TB, doc string) *Set {
	t.Helper()
	s, err := Compile([]byte(doc))
	if err != nil {
		var ve *ValidationError
		if errors.As(err, &ve) {
			t.Fatalf("compile: %+v", ve.Problems)
		}
		t.Fatalf("compile: %v", err)
	}
	return s
}

func str(s string) profile.Field {
	return profile.Field{Value: profile.Value{Kind: profile.KindString, Str: s}}
}
func num(n float64) profile.Field {
	return profile.Field{Value: profile.Value{Kind: profile.KindNumber, Num: n}}
}

func testProfile() *profile.Profile {
	day := int64(profile.Day(testNow.Unix()))
	return &profile.Profile{
		ID: "p", Known: true, Email: "sam@example.nl", FirstSeen: testNow.Add(-20 * 24 * time.Hour).Unix(), LastSeen: testNow.Unix(), Visits: 4, Score: 12,
		Fields: map[string]profile.Field{
			"first_name": str("Sam"), "shoe_size": num(45), "city": str("Delft"),
			"newsletter": {Value: profile.Value{Kind: profile.KindBool, Num: 1}},
			"birthday":   {Value: profile.Value{Kind: profile.KindDate, Time: time.Date(1990, 2, 3, 0, 0, 0, 0, time.UTC).Unix()}},
			"brands":     {Value: profile.Value{Kind: profile.KindList, List: []string{"veja", "nike"}}},
			"age_str":    str("45"),
		},
		Interests: map[string]profile.Interest{"running": {On: true}, "golf": {On: false}},
		Consents:  map[string]profile.Consent{"profiling": {Granted: true}, "email": {Granted: false}},
		Cart:      profile.Cart{Items: []profile.CartItem{{SKU: "a", Price: 60, Quantity: 2}}, UpdatedAt: testNow.Add(-45 * time.Minute).Unix()},
		Behaviour: []profile.Counter{
			{Type: profile.PageView, Key: profile.Key{URL: "/demo/c/sneakers"}, Total: 5, Last: testNow.Unix(), Days: []profile.DayCount{{Day: int32(day - 30), N: 2}, {Day: int32(day - 2), N: 2}, {Day: int32(day), N: 1}}},
			{Type: profile.Purchase, Key: profile.Key{}, Total: 2, Last: testNow.Add(-time.Hour).Unix(), Days: []profile.DayCount{{Day: int32(day), N: 2}}},
			{Type: profile.Purchase, Key: profile.Key{SKU: "a", Category: "shoes"}, Total: 3, Last: testNow.Add(-time.Hour).Unix(), Days: []profile.DayCount{{Day: int32(day), N: 3}}},
			{Type: profile.EmailClick, Key: profile.Key{Campaign: "sint", URL: "/x"}, Total: 1, Last: testNow.Add(-3 * time.Hour).Unix(), Days: []profile.DayCount{{Day: int32(day), N: 1}}},
		},
	}
}

const header = "timezone: Europe/Amsterdam\nfields: [{name: shoe_size, type: number}, {name: newsletter, type: bool}, {name: brands, type: list}]\n" +
	"seasons: [{id: sint, collect: {from: \"11-01\", to: \"12-05\"}, active: {from: \"11-10\", to: \"12-05\"}, route: {gift: true}}]\n"

// TestOperators: a table per operator, positive and negative rows.
func TestOperators(t *testing.T) {
	rows := []struct {
		rule string
		want bool
	}{
		// eq / ne
		{`{field: profile.first_name, eq: Sam}`, true},
		{`{field: profile.first_name, eq: Kim}`, false},
		{`{field: profile.shoe_size, eq: 45}`, true},
		{`{field: profile.shoe_size, eq: 44}`, false},
		{`{field: profile.first_name, ne: Kim}`, true},
		{`{field: profile.first_name, ne: Sam}`, false},
		{`{field: profile.missing, ne: x}`, true},
		{`{field: profile.newsletter, eq: true}`, true},
		{`{field: profile.newsletter, eq: false}`, false},
		{`{field: profile.age_str, eq: 45}`, false}, // undeclared text vs number: false, never an error
		{`{field: visitor.known, eq: true}`, true},
		// lt lte gt gte
		{`{field: profile.shoe_size, gt: 44}`, true},
		{`{field: profile.shoe_size, gt: 45}`, false},
		{`{field: profile.shoe_size, gte: 45}`, true},
		{`{field: profile.shoe_size, lt: 45}`, false},
		{`{field: profile.shoe_size, lte: 45}`, true},
		{`{field: profile.shoe_size, gte: 40, lte: 44}`, false},
		{`{field: profile.shoe_size, gte: 40, lte: 46}`, true},
		{`{field: cart.value, gte: 120}`, true},
		{`{field: cart.value, gt: 120}`, false},
		{`{field: cart.items, eq: 1}`, true},
		{`{field: cart.abandoned_for, gte: 30m}`, true},
		{`{field: cart.abandoned_for, gte: 1h}`, false},
		{`{field: visitor.first_seen, gte: 14d}`, true},
		{`{field: visitor.first_seen, gte: 21d}`, false},
		{`{field: visitor.visits, gt: 3}`, true},
		{`{field: profile.birthday, lt: "2000-01-01"}`, true},
		{`{field: profile.birthday, gt: "2000-01-01"}`, false},
		{`{field: profile.birthday, eq: "1990-02-03"}`, true},
		{`{field: context.hour, eq: 13}`, true}, // 12:00 UTC is 13:00 in Amsterdam
		{`{field: context.hour, lt: 13}`, false},
		// in / nin
		{`{field: profile.city, in: [Delft, Gouda]}`, true},
		{`{field: profile.city, in: [Gouda]}`, false},
		{`{field: profile.city, nin: [Gouda]}`, true},
		{`{field: profile.city, nin: [Delft]}`, false},
		{`{field: profile.shoe_size, in: [44, 45]}`, true},
		{`{field: profile.shoe_size, in: [44]}`, false},
		{`{field: profile.brands, in: [nike, adidas]}`, true},
		{`{field: profile.brands, in: [adidas]}`, false},
		{`{field: context.weekday, in: [tuesday]}`, true},
		{`{field: context.weekday, in: [saturday, sunday]}`, false},
		// contains prefix suffix
		{`{field: profile.brands, contains: veja}`, true},
		{`{field: profile.brands, contains: puma}`, false},
		{`{field: profile.email, contains: "@example."}`, true},
		{`{field: profile.email, contains: "@gmail."}`, false},
		{`{field: profile.email, prefix: sam}`, true},
		{`{field: profile.email, prefix: kim}`, false},
		{`{field: profile.email, suffix: ".nl"}`, true},
		{`{field: profile.email, suffix: ".de"}`, false},
		{`{field: context.url, prefix: /demo/}`, true},
		{`{field: context.referrer, contains: google}`, false},
		// exists
		{`{field: profile.first_name, exists: true}`, true},
		{`{field: profile.last_name, exists: true}`, false},
		{`{field: profile.last_name, exists: false}`, true},
		{`{field: profile.first_name, exists: false}`, false},
		{`{field: cart.abandoned_for, exists: true}`, true},
		// interest, consent, score
		{`{interest: running}`, true},
		{`{interest: golf}`, false},
		{`{interest: chess}`, false},
		{`{consent: profiling}`, true},
		{`{consent: email}`, false},
		{`{score: {gte: 12}}`, true},
		{`{score: {gt: 12}}`, false},
		// event, count, within
		{`{event: page_view, url_contains: /sneakers, count: {gte: 5}}`, true},
		{`{event: page_view, url_contains: /sneakers, count: {gte: 6}}`, false},
		{`{event: page_view, url_contains: /sneakers, count: {gte: 3}, within: 14d}`, true},
		{`{event: page_view, url_contains: /sneakers, count: {gte: 4}, within: 14d}`, false},
		{`{event: page_view, url_contains: /sneakers, count: {eq: 1}, within: 1d}`, true},
		{`{event: page_view, url_prefix: /demo/c/}`, true},
		{`{event: page_view, url_prefix: /c/}`, false},
		{`{event: purchase, count: {eq: 2}}`, true},
		{`{event: purchase, sku: a, count: {eq: 3}}`, true},
		{`{event: purchase, category: toys}`, false},
		{`{event: email_click, campaign: sint}`, true},
		{`{event: email_click, campaign: summer}`, false},
		{`{event: email_click, within: 2h}`, false},
		{`{event: email_click, within: 4h}`, true},
		{`{event: cart_add}`, false},
		// all / any / not
		{`{all: [{interest: running}, {consent: profiling}]}`, true},
		{`{all: [{interest: running}, {consent: email}]}`, false},
		{`{any: [{interest: golf}, {consent: profiling}]}`, true},
		{`{any: [{interest: golf}, {consent: email}]}`, false},
		{`{not: {interest: golf}}`, true},
		{`{not: {interest: running}}`, false},
		// season scoping: the seasonal profile has one purchase; the primary none of toys
		{`{season: sint, event: purchase, count: {gte: 1}}`, true},
		{`{season: sint, event: purchase, count: {gte: 2}}`, false},
		{`{field: season.sint.cart.items, eq: 0}`, true},
	}
	seasonal := &profile.Profile{Season: "sint", Behaviour: []profile.Counter{{Type: profile.Purchase, Key: profile.Key{}, Total: 1, Last: testNow.Unix(), Days: []profile.DayCount{{Day: profile.Day(testNow.Unix()), N: 1}}}}}
	for _, row := range rows {
		t.Run(row.rule, func(t *testing.T) {
			s := mustCompile(t, header+"segments: [{id: x, rule: "+row.rule+"}]\n")
			in := &Input{Profile: testProfile(), Seasonal: []*profile.Profile{seasonal}, Now: testNow, Context: Context{URL: "/demo/", Device: "desktop"}}
			got, err := s.Member("x", in)
			require.NoError(t, err)
			assert.Equal(t, row.want, got)
		})
	}
}

func TestSeasonInvisibleOutsideActiveWindow(t *testing.T) {
	s := mustCompile(t, header+"segments: [{id: x, rule: {season: sint, event: purchase}}]\n")
	seasonal := &profile.Profile{Behaviour: []profile.Counter{{Type: profile.Purchase, Total: 1}}}
	for at, want := range map[string]bool{"2026-11-24T12:00:00Z": true, "2026-11-05T12:00:00Z": false, "2026-12-06T12:00:00Z": false} {
		now, _ := time.Parse(time.RFC3339, at)
		got, err := s.Member("x", &Input{Profile: &profile.Profile{}, Seasonal: []*profile.Profile{seasonal}, Now: now})
		require.NoError(t, err)
		assert.Equal(t, want, got, at)
	}
}

func TestNestedSegments(t *testing.T) {
	s := mustCompile(t, header+`segments:
  - {id: fans, rule: {interest: sneakers}}
  - {id: fans-45, parent: fans, rule: {field: profile.shoe_size, eq: 45}}
  - {id: fans-45-nl, parent: fans-45, rule: {field: context.language, eq: nl}}
`)
	p := testProfile()
	var d Decision
	s.Decide(&Input{Profile: p, Now: testNow, Context: Context{Language: "nl"}}, nil, &d)
	assert.Empty(t, d.Segments, "a child never matches without its parent")
	p.Interests["sneakers"] = profile.Interest{On: true}
	d.Reset()
	s.Decide(&Input{Profile: p, Now: testNow, Context: Context{Language: "nl"}}, nil, &d)
	assert.Equal(t, []string{"fans", "fans-45", "fans-45-nl"}, d.Segments)
}

func TestBlocksAndTemplates(t *testing.T) {
	s := mustCompile(t, header+`segments: [{id: sam, rule: {field: profile.first_name, exists: true}}]
blocks:
  - {id: b-default, slot: hero, html: "<h2>Hallo</h2>"}
  - {id: a-named, slot: hero, segment: sam, priority: 5, html: "<h2>Hallo {{ .profile.first_name }}, maat {{ .profile.shoe_size }} {{ .profile.nick | default \"vriend\" }}</h2>"}
  - {id: a-tie, slot: banner, priority: 1, data: {x: 1}}
  - {id: b-tie, slot: banner, priority: 1, html: "b"}
  - {id: later, slot: promo, priority: 9, schedule: {from: "2026-12-01", to: "2026-12-05"}, html: "later"}
  - {id: now, slot: promo, schedule: {from: "2026-11-01", to: "2026-11-24"}, html: "now"}
`)
	p := testProfile()
	p.Fields["first_name"] = str("<b>Eve</b>")
	var d Decision
	s.Decide(&Input{Profile: p, Now: testNow}, []string{"hero", "banner", "promo", "nothing"}, &d)
	require.Len(t, d.Choices, 4)
	assert.Equal(t, "a-named", d.Choices[0].Block.ID)
	assert.Equal(t, "<h2>Hallo &lt;b&gt;Eve&lt;/b&gt;, maat 45 vriend</h2>", string(d.Choices[0].HTML), "values are escaped, missing ones take the default")
	assert.Equal(t, "a-tie", d.Choices[1].Block.ID, "ties break by id")
	assert.Nil(t, d.Choices[1].HTML)
	assert.JSONEq(t, `{"x":1}`, string(d.Choices[1].Block.Data))
	assert.Equal(t, "now", d.Choices[2].Block.ID, "the schedule's last day is included; later is not yet on")
	assert.Nil(t, d.Choices[3].Block)

	ex := s.Explain(&Input{Profile: p, Now: testNow}, []string{"promo"})
	require.Len(t, ex.Slots, 1)
	assert.Equal(t, []CandidateTrace{{ID: "later", Priority: 9, Eligible: false, Reason: "outside its schedule"}, {ID: "now", Priority: 0, Eligible: true, Reason: "winner"}}, ex.Slots[0].Candidates)
}

func TestValidationReportsEverything(t *testing.T) {
	doc := `timezone: Mars/Olympus
fields: [{name: shoe_size, type: numbr}]
seasons:
  - {id: sint, collect: {from: "13-01", to: "12-05"}}
scoring:
  - {id: s1, when: {event: teleport}, points: 5}
segments:
  - {id: a, rule: {field: cart.value, prefix: "4"}}
  - {id: a, rule: {interest: x}}
  - {id: c, parent: d, rule: {segment: nope}}
  - {id: d, parent: c, rule: {any: [{field: cart.value, gte: abc}, {field: visitor.colour, eq: 1}]}}
  - {id: e, rule: {field: context.url, gte: 14d}}
  - {id: f, rule: {event: page_view, within: 3 weeks, colour: red}}
  - {id: g, rule: {season: winter, event: purchase}}
blocks:
  - {id: b1, slot: hero, html: "{{ .profile.first_name "}
  - {id: b2, slot: hero, segment: ghost, html: "{{ .visitor.nope }}", schedule: {from: "tomorrow"}}
  - {slot: hero}
`
	_, err := Compile([]byte(doc))
	var ve *ValidationError
	require.ErrorAs(t, err, &ve)
	paths := map[string]string{}
	for _, p := range ve.Problems {
		paths[p.Path] += p.Message + " | "
	}
	for path, want := range map[string]string{
		"timezone":                      "unknown time zone",
		"fields[0].type":                "unknown type",
		"seasons[0].collect.from":       "not a month-day",
		"scoring[0].when.event":         "unknown event",
		"segments[0].rule.prefix":       "prefix applies to text",
		"segments[1].id":                "defined twice",
		"segments[2].rule.segment":      "unknown segment",
		"segments[2]":                   "cycle: c → d → c",
		"segments[3].rule.any[0].gte":   "is a number",
		"segments[3].rule.any[1].field": "unknown field",
		"segments[4].rule.gte":          "text",
		"segments[5].rule.within":       "not a duration",
		"segments[5].rule.colour":       "unknown key",
		"segments[6].rule.season":       "unknown season",
		"blocks[0].html":                "not closed",
		"blocks[1].segment":             "unknown segment",
		"blocks[1].html":                "unknown field",
		"blocks[1].schedule.from":       "not a date",
		"blocks[2].id":                  "required",
		"blocks[2]":                     "needs html, data or both",
	} {
		assert.Contains(t, paths[path], want, "problem at %s; all: %v", path, paths)
	}
	assert.GreaterOrEqual(t, len(ve.Problems), 20)
}

func TestCompileRejectsGarbage(t *testing.T) {
	for _, doc := range []string{"{", "- a\n- b", "segments: 5", "blocks: [{id: x, slot: y, html: z, extra: 1}]", strings.Repeat("a", MaxDocument+1)} {
		_, err := Compile([]byte(doc))
		var ve *ValidationError
		assert.ErrorAs(t, err, &ve, doc[:min(len(doc), 40)])
	}
	s, err := Compile(nil)
	require.NoError(t, err, "an empty document is valid")
	var d Decision
	s.Decide(&Input{Profile: &profile.Profile{}, Now: testNow}, []string{"hero"}, &d)
	assert.Nil(t, d.Choices[0].Block)
}

func TestScore(t *testing.T) {
	s := mustCompile(t, `scoring:
  - {id: a, when: {event: page_view, url_contains: /training}, points: 5, add_interest: training}
  - {id: b, when: {event: purchase, category: toys}, points: 10}
`)
	hits := s.Score(&profile.Event{Type: profile.PageView, URL: "/demo/training/x"}, nil)
	assert.Equal(t, []profile.ScoreHit{{Points: 5, Interest: "training"}}, hits)
	assert.Empty(t, s.Score(&profile.Event{Type: profile.PageView, URL: "/demo/"}, nil))
	assert.Len(t, s.Score(&profile.Event{Type: profile.Purchase, Items: []profile.Item{{SKU: "x"}, {SKU: "y", Category: "toys"}}}, nil), 1)
}

func TestDemoDecisions(t *testing.T) {
	s, err := Compile(Demo())
	require.NoError(t, err)
	pol := s.Policy(profile.Policy{})
	require.Len(t, pol.Seasons, 2)
	assert.Equal(t, profile.KindNumber, pol.Fields["shoe_size"])
	p := testProfile()
	var d Decision
	s.Decide(&Input{Profile: p, Seasonal: make([]*profile.Profile, 2), Now: testNow, Context: Context{Device: "desktop"}}, []string{"home-hero", "banner-top", "home-picks"}, &d)
	assert.Contains(t, d.Segments, "sneaker-fans")
	assert.Equal(t, "hero-sneakers-45", d.Choices[0].Block.ID, "a sneaker fan in size 45 gets the nested segment's block")
	assert.Equal(t, "cart-reminder", d.Choices[1].Block.ID)
}

func BenchmarkDecide(b *testing.B) {
	s, err := Compile(Demo())
	require.NoError(b, err)
	in := &Input{Profile: testProfile(), Seasonal: make([]*profile.Profile, 2), Now: testNow, Context: Context{Device: "mobile", Language: "nl", URL: "/demo/"}}
	slots := []string{"home-hero", "banner-top", "home-picks"}
	var d Decision
	b.ReportAllocs()
	for b.Loop() {
		d.Reset()
		s.Decide(in, slots, &d)
	}
}

func TestDecideAllocations(t *testing.T) {
	s, err := Compile(Demo())
	require.NoError(t, err)
	in := &Input{Profile: testProfile(), Seasonal: make([]*profile.Profile, 2), Now: testNow, Context: Context{Device: "mobile", Language: "nl"}}
	slots := []string{"home-hero", "banner-top", "home-picks"}
	var d Decision
	s.Decide(in, slots, &d)
	allocs := testing.AllocsPerRun(200, func() {
		d.Reset()
		s.Decide(in, slots, &d)
	})
	// Weekday and hour conversions in the shop's zone are free; a reused
	// Decision and the pooled state leave nothing to allocate.
	assert.Zero(t, allocs)
}

func FuzzCompile(f *testing.F) {
	f.Add(string(Demo()))
	f.Add(header + "segments: [{id: x, rule: {any: [{field: profile.a, gte: 3}, {not: {segment: x}}]}}]")
	f.Add(`{"blocks":[{"id":"a","slot":"b","html":"{{ .profile.x | default \"y\" }}"}]}`)
	f.Fuzz(func(t *testing.T, doc string) {
		s, err := Compile([]byte(doc))
		if err != nil {
			var ve *ValidationError
			if !errors.As(err, &ve) || len(ve.Problems) == 0 {
				t.Fatalf("error without problems: %v", err)
			}
			return
		}
		var d Decision
		s.Decide(&Input{Profile: testProfile(), Now: testNow}, []string{"hero", "b"}, &d)
		s.Explain(&Input{Profile: testProfile(), Now: testNow}, []string{"hero"})
	})
}

func FuzzDecide(f *testing.F) {
	f.Add("sneakers", "/demo/c/sneakers", 45.0, int64(3), "nl", int64(0))
	f.Fuzz(func(t *testing.T, interest, url string, size float64, views int64, lang string, offset int64) {
		s, err := Compile(Demo())
		if err != nil {
			t.Fatal(err)
		}
		now := testNow.Add(time.Duration(offset%(400*24)) * time.Hour)
		p := &profile.Profile{
			Interests: map[string]profile.Interest{interest: {On: true}},
			Fields:    map[string]profile.Field{"shoe_size": num(size), "first_name": str(url)},
			Behaviour: []profile.Counter{{Type: profile.PageView, Key: profile.Key{URL: url}, Total: uint32(views), Last: now.Unix(), Days: []profile.DayCount{{Day: profile.Day(now.Unix()) - int32(views%100), N: uint32(views)}}}},
			Cart:      profile.Cart{Items: []profile.CartItem{{SKU: url, Price: size}}, UpdatedAt: now.Unix() - views},
		}
		in := &Input{Profile: p, Seasonal: []*profile.Profile{p, nil}, Now: now, Context: Context{Language: lang, URL: url, Referrer: url}}
		var d Decision
		s.Decide(in, []string{"home-hero", "banner-top", "home-picks", url}, &d)
		s.Explain(in, []string{"home-hero", url})
	})
}
