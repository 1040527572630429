package edge

import (
	"context"
	"encoding/json"
	"testing"

	"github.com/etalage/etalage/profile"
	"github.com/etalage/etalage/profile/embeddedstore"
	"github.com/etalage/etalage/rules"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// experimentDefs is the demo with an experiment on its hero and a holdout.
func experimentDefs(holdout string) []byte {
	doc := string(rules.DemoHeroTest())
	if holdout != "" {
		doc += "holdout: {percent: " + holdout + ", goal: {event: purchase}}\n"
	}
	return []byte(doc)
}

type decideAnswer struct {
	Visitor     string                          `json:"visitor"`
	Blocks      map[string]*struct{ ID string } `json:"blocks"`
	Experiments []struct{ ID, Variant string }  `json:"experiments"`
}

func answer(tb testing.TB, r *response) decideAnswer {
	tb.Helper()
	require.Equal(tb, 200, r.status, string(r.body))
	var a decideAnswer
	require.NoError(tb, json.Unmarshal(r.body, &a), string(r.body))
	return a
}

func TestDecideListsExperiments(t *testing.T) {
	h := newHarness(t, func(c *Config) { c.Definitions = experimentDefs(""); c.RateLimit = 0 })
	seen := map[string]int{}
	for range 40 {
		first := h.decide(t, "", `{"slots":["home-hero","banner-top"]}`)
		a := answer(t, first)
		require.Len(t, a.Experiments, 1, string(first.body))
		x := a.Experiments[0]
		assert.Equal(t, "hero-test", x.ID)
		seen[x.Variant]++
		want := map[string]string{"control": "hero-default", "bold": "hero-bold"}[x.Variant]
		assert.Equal(t, want, a.Blocks["home-hero"].ID)
		// The next decide reads the assignment from the profile.
		again := answer(t, h.decide(t, string(first.cookie.Value()), `{"slots":["home-hero"]}`))
		assert.Equal(t, a.Experiments, again.Experiments)
		// A decide without the slot lists no experiment.
		other := h.decide(t, string(first.cookie.Value()), `{"slots":["banner-top"]}`)
		assert.NotContains(t, string(other.body), "experiments")
	}
	assert.Len(t, seen, 2, "both variants occur: %v", seen)

	r := h.adminCall(t, "GET", "/admin/v1/experiments/hero-test", "")
	require.Equal(t, 200, r.status, string(r.body))
	var rep experimentReport
	require.NoError(t, json.Unmarshal(r.body, &rep))
	assert.Equal(t, "hero-test", rep.ID)
	require.Len(t, rep.Variants, 2)
	assert.Equal(t, int64(seen["control"]), rep.Variants[0].Visitors, "each visitor counted once")
	assert.Equal(t, int64(seen["bold"]), rep.Variants[1].Visitors)
	assert.Equal(t, 404, h.adminCall(t, "GET", "/admin/v1/experiments/nope", "").status)
	assert.Equal(t, 404, h.adminCall(t, "GET", "/admin/v1/holdout", "").status, "no holdout defined")
}

func TestBotsAndPrefetchesAreNeverExposed(t *testing.T) {
	h := newHarness(t, func(c *Config) { c.Definitions = experimentDefs("50"); c.RateLimit = 0 })
	for range 10 {
		r := call(t, h.public, "POST", "/v1/decide", `{"slots":["home-hero"]}`, map[string]string{"User-Agent": "Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)"})
		assert.Empty(t, answer(t, r).Experiments)
		r = call(t, h.public, "POST", "/v1/decide", `{"slots":["home-hero"]}`, map[string]string{"Sec-Purpose": "prefetch"})
		assert.Empty(t, answer(t, r).Experiments)
	}
	r := h.adminCall(t, "GET", "/admin/v1/experiments/hero-test", "")
	assert.NotContains(t, string(r.body), `"visitors":1`)
	var rep experimentReport
	require.NoError(t, json.Unmarshal(h.adminCall(t, "GET", "/admin/v1/holdout", "").body, &rep))
	for _, v := range rep.Variants {
		assert.Zero(t, v.Visitors, v.ID)
	}
}

func TestHoldoutSeesOnlyUnsegmentedBlocks(t *testing.T) {
	h := newHarness(t, func(c *Config) { c.Definitions = experimentDefs("50"); c.RateLimit = 0 })
	events := `"events":[` + pageViews("/demo/c/sneakers", "/demo/c/sneakers", "/demo/c/sneakers") + `]`
	held, personalised := 0, 0
	for range 40 {
		a := answer(t, h.decide(t, "", `{"slots":["home-hero","home-picks"],`+events+`}`))
		require.NotEmpty(t, a.Experiments)
		require.Equal(t, "holdout", a.Experiments[0].ID, "the holdout is listed first")
		if a.Experiments[0].Variant == "holdout" {
			assert.Len(t, a.Experiments, 1, "the holdout enters no experiment")
			held++
			assert.Equal(t, "hero-default", a.Blocks["home-hero"].ID, "a held-out sneaker fan sees the block for everyone")
			assert.Equal(t, "picks-default", a.Blocks["home-picks"].ID)
			continue
		}
		personalised++
		assert.Equal(t, "personalised", a.Experiments[0].Variant)
		assert.Len(t, a.Experiments, 2)
		assert.Equal(t, "picks-sneakers", a.Blocks["home-picks"].ID)
	}
	assert.NotZero(t, held)
	assert.NotZero(t, personalised)
	var rep experimentReport
	r := h.adminCall(t, "GET", "/admin/v1/holdout", "")
	require.NoError(t, json.Unmarshal(r.body, &rep), string(r.body))
	assert.Equal(t, "holdout", rep.ID)
	assert.Equal(t, int64(held), rep.Variants[0].Visitors)
	assert.Equal(t, int64(personalised), rep.Variants[1].Visitors)
}

func TestDecideWarmExposedAllocations(t *testing.T) {
	if raceEnabled {
		t.Skip("sync.Pool drops items under the race detector; run without -race")
	}
	for _, holdout := range []string{"", "5"} {
		t.Run("holdout "+holdout, func(t *testing.T) {
			h := newHarness(t, func(c *Config) { c.Definitions = experimentDefs(holdout); c.RateLimit = 0 })
			v := visitorWithProfile(t, h)
			h.srv.cache.c.Wait()
			ctx := handlerRequest("GET", "/v1/decide?slots=home-hero,banner-top,home-picks&url=/demo/", "", v)
			h.srv.servePublic(ctx)
			require.Equal(t, 200, ctx.Response.StatusCode())
			h.srv.cache.c.Wait()
			if holdout == "" {
				assert.Contains(t, string(ctx.Response.Body()), `"experiments":[{"id":"hero-test"`)
			}
			allocs := testing.AllocsPerRun(200, func() {
				ctx.Response.Reset()
				h.srv.servePublic(ctx)
			})
			assert.Zero(t, allocs, "a visitor already exposed decides without allocating")
		})
	}
}

func TestBuildReport(t *testing.T) {
	rep := buildReport("e", []string{"control", "b"}, []float64{0.5, 0.5}, map[string]int64{"v:control": 1000, "c:control": 100, "v:b": 1000, "c:b": 150})
	assert.Equal(t, 0.1, rep.Variants[0].Rate)
	assert.Nil(t, rep.Variants[0].Uplift, "the control has no uplift over itself")
	require.NotNil(t, rep.Variants[1].Uplift)
	assert.InDelta(t, 0.5, *rep.Variants[1].Uplift, 1e-9)
	assert.InDelta(t, 0.183057, rep.Variants[1].CI95[0], 1e-6)
	assert.InDelta(t, 0.901853, rep.Variants[1].CI95[1], 1e-6)
	assert.InDelta(t, 0.999642, *rep.Variants[1].Chance, 1e-6)
	assert.Equal(t, 1.0, rep.SRMP)
	assert.False(t, rep.SRMMismatch)
	rep = buildReport("e", []string{"control", "b"}, []float64{0.5, 0.5}, map[string]int64{"v:control": 5200, "v:b": 4800})
	assert.True(t, rep.SRMMismatch)
	assert.Nil(t, rep.Variants[1].Uplift, "no conversions: no ratio")
}

// noTallies is a store whose writes that count fail, as when the store
// times out just as an exposure is recorded.
type noTallies struct{ profile.Store }

func (s noTallies) Put(ctx context.Context, pid string, writes []profile.Write) error {
	for _, w := range writes {
		if len(w.Tallies) > 0 {
			return profile.ErrUnavailable
		}
	}
	return s.Store.Put(ctx, pid, writes)
}

func TestUnrecordedExposureIsNotShown(t *testing.T) {
	st, err := embeddedstore.Open(t.TempDir())
	require.NoError(t, err)
	h := newHarnessWithStore(t, noTallies{st}, func(c *Config) { c.Definitions = experimentDefs("50"); c.RateLimit = 0 })
	for range 20 {
		a := answer(t, h.decide(t, "", `{"slots":["home-hero"],"events":[`+pageViews("/demo/")+`]}`))
		assert.Empty(t, a.Experiments, "an exposure that was not counted is not listed")
		assert.Equal(t, "hero-default", a.Blocks["home-hero"].ID, "nor shown")
	}
}

// TestDemoHeroExperiment: the demo's experiment enters visitors who come
// from a search engine and whom nothing else personalises; the hero
// follows the variant. Others (no search referrer, or a sneaker fan) see
// the normal decision and enter nothing.
func TestDemoHeroExperiment(t *testing.T) {
	h := newHarness(t, nil)
	fromGoogle := `{"slots":["home-hero"],"context":{"url":"/demo/","referrer":"https://www.google.nl/search?q=sneakers"}}`
	seen := map[string]bool{}
	for range 40 {
		a := answer(t, h.decide(t, "", fromGoogle))
		require.Len(t, a.Experiments, 1)
		x := a.Experiments[0]
		assert.Equal(t, "search-welcome", x.ID)
		assert.Equal(t, map[string]string{"control": "hero-default", "search": "hero-search"}[x.Variant], a.Blocks["home-hero"].ID)
		seen[x.Variant] = true
	}
	assert.Len(t, seen, 2, "40 visitors see both variants")

	a := answer(t, h.decide(t, "", `{"slots":["home-hero"],"context":{"url":"/demo/"}}`))
	assert.Empty(t, a.Experiments)
	assert.Equal(t, "hero-default", a.Blocks["home-hero"].ID)
	fan := `{"slots":["home-hero"],"context":{"url":"/demo/","referrer":"https://www.google.nl/"},"events":[` + pageViews("/demo/c/sneakers", "/demo/c/sneakers", "/demo/c/sneakers") + `]}`
	a = answer(t, h.decide(t, "", fan))
	assert.Empty(t, a.Experiments, "a sneaker fan sees the sneaker hero, in no experiment")
	assert.Equal(t, "hero-sneakers", a.Blocks["home-hero"].ID)

	r := h.adminCall(t, "GET", "/admin/v1/experiments/search-welcome", "")
	require.Equal(t, 200, r.status, string(r.body))
	var rep experimentReport
	require.NoError(t, json.Unmarshal(r.body, &rep))
	assert.Equal(t, int64(40), rep.Variants[0].Visitors+rep.Variants[1].Visitors)
}
