package rules

import (
	"testing"
	"time"

	"github.com/etalage/etalage/profile"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestNextChange: a table per condition kind. Each row names the moment the
// answer may next change with time alone (zero: never); the test also
// checks that the answer really stays the same until then (never late), by
// evaluating every minute up to it, and — where want says so — that it
// does flip by want.
func TestNextChange(t *testing.T) {
	midnight := func(days int) time.Time { // UTC midnight, days after testNow's day
		y, m, d := testNow.Date()
		return time.Date(y, m, d+days, 0, 0, 0, 0, time.UTC)
	}
	rows := []struct {
		name  string
		rule  string
		want  time.Time
		flips bool // the answer differs right at (or one second after) want
	}{
		// cart.abandoned_for: the cart was last changed 45 minutes ago
		{"abandoned past threshold stays", `{field: cart.abandoned_for, gte: 30m}`, time.Time{}, false},
		{"abandoned gte flips at threshold", `{field: cart.abandoned_for, gte: 1h}`, testNow.Add(15 * time.Minute), true},
		{"abandoned gt flips a second later", `{field: cart.abandoned_for, gt: 1h}`, testNow.Add(15 * time.Minute), true},
		{"abandoned lt flips too", `{field: cart.abandoned_for, lt: 1h}`, testNow.Add(15 * time.Minute), true},
		{"abandoned range: the nearer bound", `{field: cart.abandoned_for, gte: 50m, lt: 2h}`, testNow.Add(5 * time.Minute), true},
		{"no cart: only an event changes it", `{field: season.sint.cart.abandoned_for, gte: 30m}`, time.Date(2026, 12, 5, 23, 0, 0, 0, time.UTC), false},
		// date fields against durations (ages) and against dates
		{"first seen age", `{field: visitor.first_seen, gte: 21d}`, testNow.Add(24 * time.Hour), true},
		{"first seen age already passed", `{field: visitor.first_seen, gte: 14d}`, time.Time{}, false},
		{"last seen within", `{field: visitor.last_seen, lt: 2h}`, testNow.Add(2 * time.Hour), true},
		{"date against a date", `{field: profile.birthday, lt: "2000-01-01"}`, time.Time{}, false},
		{"text field", `{field: profile.first_name, eq: Sam}`, time.Time{}, false},
		{"number field", `{field: profile.shoe_size, gte: 40}`, time.Time{}, false},
		// within windows: page views on day-30 (outside 14d), day-2 (2) and today (1)
		{"day window: oldest counted day leaves", `{event: page_view, url_contains: /sneakers, count: {gte: 3}, within: 14d}`, midnight(12), true},
		{"day window, count still met after", `{event: page_view, url_contains: /sneakers, count: {gte: 1}, within: 14d}`, midnight(12), false},
		{"1d window: today's bucket", `{event: page_view, url_contains: /sneakers, within: 1d}`, midnight(1), true},
		{"hour window: last use plus window", `{event: purchase, within: 2h}`, testNow.Add(time.Hour + time.Second), true},
		{"hour window already passed", `{event: email_click, within: 2h}`, time.Time{}, false},
		{"no window: totals never shrink", `{event: page_view, url_contains: /sneakers, count: {gte: 5}}`, time.Time{}, false},
		{"filter matches nothing", `{event: page_view, url_contains: /nope, within: 14d}`, time.Time{}, false},
		// seasons: sint is active 11-10..12-05 in Amsterdam
		{"season closes", `{season: sint, event: purchase}`, time.Date(2026, 12, 5, 23, 0, 0, 0, time.UTC), true},
		{"season field closes", `{field: season.sint.cart.items, eq: 0}`, time.Date(2026, 12, 5, 23, 0, 0, 0, time.UTC), false},
		// composition
		{"not", `{not: {field: cart.abandoned_for, gte: 1h}}`, testNow.Add(15 * time.Minute), true},
		{"any: the nearest child", `{any: [{event: page_view, url_contains: /sneakers, within: 14d}, {field: cart.abandoned_for, gte: 1h}]}`, testNow.Add(15 * time.Minute), false},
		{"all", `{all: [{interest: running}, {field: cart.abandoned_for, gte: 1h}]}`, testNow.Add(15 * time.Minute), true},
		{"segment reference", `{segment: abandoned-1h}`, testNow.Add(15 * time.Minute), true},
		{"interest", `{interest: running}`, time.Time{}, false},
		{"consent and score", `{all: [{consent: profiling}, {score: {gte: 1}}]}`, time.Time{}, false},
	}
	seasonal := &profile.Profile{Season: "sint", Behaviour: []profile.Counter{{Type: profile.Purchase, Key: profile.Key{}, Total: 1, Last: testNow.Unix(), Days: []profile.DayCount{{Day: profile.Day(testNow.Unix()), N: 1}}}}}
	for _, row := range rows {
		t.Run(row.name, func(t *testing.T) {
			s := mustCompile(t, header+"segments: [{id: abandoned-1h, rule: {field: cart.abandoned_for, gte: 1h}}, {id: x, rule: "+row.rule+"}]\n")
			at := func(now time.Time) *Input {
				return &Input{Profile: testProfile(), Seasonal: []*profile.Profile{seasonal}, Now: now}
			}
			got, err := s.NextChange("x", at(testNow))
			require.NoError(t, err)
			assert.Equal(t, row.want.UTC(), got.UTC())
			first, err := s.Member("x", at(testNow))
			require.NoError(t, err)
			end := got
			if end.IsZero() {
				end = testNow.Add(40 * 24 * time.Hour)
			}
			step := time.Minute // every minute for two days, then every hour
			for now := testNow; now.Before(end); now = now.Add(step) {
				if now.Sub(testNow) > 48*time.Hour {
					step = time.Hour
				}
				m, _ := s.Member("x", at(now))
				require.Equal(t, first, m, "the answer changed at %s, before the promised %s", now, got)
			}
			if row.flips {
				a, _ := s.Member("x", at(got))
				b, _ := s.Member("x", at(got.Add(time.Second)))
				assert.True(t, a != first || b != first, "expected the answer to flip at %s", got)
			}
		})
	}
}

// TestNextChangeParent: a child segment changes when its parent does.
func TestNextChangeParent(t *testing.T) {
	s := mustCompile(t, header+`segments:
  - {id: abandoners, rule: {field: cart.abandoned_for, gte: 1h}}
  - {id: runners, parent: abandoners, rule: {interest: running}}
`)
	got, err := s.NextChange("runners", &Input{Profile: testProfile(), Now: testNow})
	require.NoError(t, err)
	assert.Equal(t, testNow.Add(15*time.Minute).Unix(), got.Unix())
	_, err = s.NextChange("ghost", &Input{Profile: testProfile(), Now: testNow})
	assert.Error(t, err)
}

// TestNextChangeSeasonOpens: outside the active window the season's
// profile is invisible; the answer can change when the window opens and
// again when a new cycle starts with the collect window.
func TestNextChangeSeasonOpens(t *testing.T) {
	s := mustCompile(t, header+"segments: [{id: x, rule: {season: sint, event: purchase}}]\n")
	seasonal := &profile.Profile{Behaviour: []profile.Counter{{Type: profile.Purchase, Total: 1}}}
	amsterdam, _ := time.LoadLocation("Europe/Amsterdam")
	for _, row := range []struct{ now, want time.Time }{
		{time.Date(2026, 11, 5, 12, 0, 0, 0, time.UTC), time.Date(2026, 11, 10, 0, 0, 0, 0, amsterdam)},
		{time.Date(2026, 10, 5, 12, 0, 0, 0, time.UTC), time.Date(2026, 11, 1, 0, 0, 0, 0, amsterdam)},
		{time.Date(2026, 12, 24, 12, 0, 0, 0, time.UTC), time.Date(2027, 11, 1, 0, 0, 0, 0, amsterdam)},
	} {
		got, err := s.NextChange("x", &Input{Profile: &profile.Profile{}, Seasonal: []*profile.Profile{seasonal}, Now: row.now})
		require.NoError(t, err)
		assert.Equal(t, row.want.Unix(), got.Unix(), "at %s", row.now)
	}
}

// TestWebhookDefinitions: what a webhook may list, with paths.
func TestWebhookDefinitions(t *testing.T) {
	s := mustCompile(t, header+`segments:
  - {id: abandoners, rule: {field: cart.abandoned_for, gte: 30m}}
  - {id: sint-buyers, rule: {season: sint, event: purchase}}
webhooks:
  - id: mailer
    url: https://mailer.example/hooks/etalage
    segments: [abandoners, sint-buyers]
    consent: marketing
    fields: [first_name, profile.language]
  - {id: crm, url: "http://127.0.0.1:9000/x", segments: [abandoners]}
`)
	require.Len(t, s.Webhooks(), 2)
	w, ok := s.Webhook("mailer")
	require.True(t, ok)
	assert.Equal(t, Webhook{ID: "mailer", URL: "https://mailer.example/hooks/etalage", Segments: []string{"abandoners", "sint-buyers"}, Consent: "marketing", Fields: []string{"first_name", "language"}}, *w)
	_, ok = s.Webhook("nope")
	assert.False(t, ok)

	doc := header + `segments:
  - {id: mobile, rule: {field: context.device, eq: mobile}}
  - {id: mobile-child, parent: mobile, rule: {interest: x}}
  - {id: refers, rule: {any: [{interest: y}, {segment: mobile-child}]}}
  - {id: fine, rule: {interest: z}}
webhooks:
  - {id: a, url: "ftp://x.example/", segments: [ghost, mobile]}
  - {id: a, url: "https:///nohost", segments: [mobile-child, refers, fine, fine]}
  - {id: b, url: "javascript:alert(1)", segments: []}
  - {id: c, segments: [fine], fields: ["bad name"], consent: "no way", extra: 1}
  - {url: "https://x.example/", segments: fine}
`
	_, err := Compile([]byte(doc))
	var ve *ValidationError
	require.ErrorAs(t, err, &ve)
	paths := map[string]string{}
	for _, p := range ve.Problems {
		paths[p.Path] += p.Message + " | "
	}
	for path, want := range map[string]string{
		"webhooks[0].url":         "https://",
		"webhooks[0].segments[0]": "unknown segment",
		"webhooks[0].segments[1]": "context.device",
		"webhooks[1].id":          "defined twice",
		"webhooks[1].url":         "needs a host",
		"webhooks[1].segments[0]": "through parent mobile",
		"webhooks[1].segments[1]": "through segment mobile-child",
		"webhooks[1].segments[3]": "listed twice",
		"webhooks[2].url":         "https://",
		"webhooks[2].segments":    "at least one",
		"webhooks[3].url":         "required",
		"webhooks[3].fields[0]":   "not a profile field",
		"webhooks[3].consent":     "not a consent purpose",
		"webhooks[3].extra":       "unknown key",
		"webhooks[4].id":          "required",
		"webhooks[4].segments":    "must be a list",
	} {
		assert.Contains(t, paths[path], want, "problem at %s; all: %v", path, paths)
	}
}
