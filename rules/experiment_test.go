package rules

import (
	"encoding/hex"
	"fmt"
	"math/rand/v2"
	"strings"
	"testing"

	"github.com/etalage/etalage/profile"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

const expDoc = `
segments:
  - {id: sneaker-fans, rule: {interest: sneakers}}
blocks:
  - {id: hero-default, slot: home-hero, html: "<h2>Welkom</h2>"}
  - {id: hero-sneakers, slot: home-hero, segment: sneaker-fans, priority: 10, html: "<h2>Sneakers</h2>"}
  - {id: hero-big, slot: home-hero, priority: -1, html: "<h1>BIG</h1>"}
  - {id: banner, slot: banner-top, segment: sneaker-fans, html: "<p>for fans</p>"}
  - {id: banner-all, slot: banner-top, html: "<p>for all</p>"}
experiments:
  - id: hero-test
    slot: home-hero
    variants:
      - {id: control, weight: %s}
      - {id: big-hero, weight: %s, block: hero-big}
    goal: {event: purchase, within: 14d}
holdout: {percent: %s, goal: {event: purchase}}
`

// ids returns n visitor ids from a fixed seed: the test is deterministic.
func ids(n int) []string {
	r := rand.New(rand.NewPCG(1, 2))
	out := make([]string, n)
	var b [16]byte
	for i := range out {
		for j := 0; j < 16; j += 8 {
			v := r.Uint64()
			for k := range 8 {
				b[j+k] = byte(v >> (8 * k))
			}
		}
		out[i] = hex.EncodeToString(b[:])
	}
	return out
}

// chiSquare is Pearson's statistic of observed counts against expected
// shares.
func chiSquare(obs []int, shares []float64) float64 {
	total := 0
	for _, o := range obs {
		total += o
	}
	x := 0.0
	for i, o := range obs {
		e := shares[i] * float64(total)
		x += (float64(o) - e) * (float64(o) - e) / e
	}
	return x
}

func TestAssignmentIsUniform(t *testing.T) {
	// Critical values of the chi-square distribution at p = 0.001
	// (NIST/SEMATECH e-Handbook, table 1.3.6.7.4): 1 degree of freedom
	// 10.828, 2 degrees 13.816. A uniform hash exceeds them one time in
	// a thousand; the ids are fixed, so the test is deterministic.
	crit := map[int]float64{1: 10.828, 2: 13.816}
	visitors := ids(100_000)
	for _, tc := range []struct {
		name    string
		weights []string
		shares  []float64
	}{
		{"50/50", []string{"1", "1"}, []float64{0.5, 0.5}},
		{"10/30/60", []string{"10", "30", "60"}, []float64{0.1, 0.3, 0.6}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var vs strings.Builder
			vs.WriteString("      - {id: v0, weight: " + tc.weights[0] + "}\n")
			for i, w := range tc.weights[1:] {
				fmt.Fprintf(&vs, "      - {id: v%d, weight: %s, block: hero-big}\n", i+1, w)
			}
			doc := "blocks: [{id: hero-big, slot: home-hero, html: x}]\nexperiments:\n  - id: split\n    slot: home-hero\n    variants:\n" + vs.String() + "    goal: {event: purchase}\n"
			e := mustCompile(t, doc).Experiment("split")
			obs := make([]int, len(tc.weights))
			for _, id := range visitors {
				v := e.Assign(id)
				require.NotNil(t, v)
				obs[v.ID[1]-'0']++
			}
			x := chiSquare(obs, tc.shares)
			t.Logf("observed %v, chi-square %.3f", obs, x)
			assert.Less(t, x, crit[len(obs)-1])
		})
	}
	t.Run("traffic and holdout shares", func(t *testing.T) {
		set := mustCompile(t, "blocks: [{id: b, slot: s, html: x}]\nexperiments: [{id: t30, slot: s, traffic: 30, variants: [{id: a}, {id: b, block: b}], goal: {event: purchase}}]\nholdout: {percent: 5, goal: {event: purchase}}\n")
		in, held := 0, 0
		for _, id := range visitors {
			if set.Experiment("t30").Assign(id) != nil {
				in++
			}
			if set.Holdout().InHoldout(id) {
				held++
			}
		}
		assert.Less(t, chiSquare([]int{in, len(visitors) - in}, []float64{0.3, 0.7}), crit[1])
		assert.Less(t, chiSquare([]int{held, len(visitors) - held}, []float64{0.05, 0.95}), crit[1])
	})
	t.Run("independent of the holdout and of other experiments", func(t *testing.T) {
		// Being held out must not predict the variant: a 2x2 table test.
		set := mustCompile(t, fmt.Sprintf(expDoc, "1", "1", "50"))
		e := set.Experiment("hero-test")
		var table [2][2]int
		for _, id := range visitors {
			h, v := 0, 0
			if set.Holdout().InHoldout(id) {
				h = 1
			}
			if e.Assign(id).ID == "big-hero" {
				v = 1
			}
			table[h][v]++
		}
		x := chiSquare([]int{table[0][0], table[0][1], table[1][0], table[1][1]}, []float64{0.25, 0.25, 0.25, 0.25})
		assert.Less(t, x, 16.266, "3 degrees of freedom at p = 0.001")
	})
}

func TestAssignmentIsStable(t *testing.T) {
	// The same on every node and after restarts: pinned values, computed
	// independently with Python 3 (FNV-1a 64 over salt, a zero byte and
	// the id, the MurmurHash3 fmix64 finaliser, top 53 bits / 2^53).
	assert.Equal(t, 0.3931384762255389, Bucket("hero-test", "0123456789abcdef0123456789abcdef"))
	assert.Equal(t, 0.7638345656508811, Bucket("holdout", "0123456789abcdef0123456789abcdef"))
	assert.NotEqual(t, Bucket("a", "bc"), Bucket("ab", "c"), "the separator keeps salt and id apart")
}

func decideWith(set *Set, p *profile.Profile, enter bool, slots ...string) *Decision {
	d := &Decision{}
	set.Decide(&Input{Profile: p, Now: testNow, Visitor: p.ID, Enter: enter}, slots, d)
	return d
}

func TestExperimentDecisions(t *testing.T) {
	set := mustCompile(t, fmt.Sprintf(expDoc, "1", "1", "10"))
	var sawControl, sawBig, sawHoldout bool
	for _, id := range ids(400) {
		fan := &profile.Profile{ID: id, Interests: map[string]profile.Interest{"sneakers": {On: true}}}
		d := decideWith(set, fan, true, "home-hero", "banner-top")
		require.True(t, d.HoldoutNew)
		news := d.NewExposures(nil, testNow.Unix())
		if d.Holdout == profile.VariantHoldout {
			sawHoldout = true
			assert.Empty(t, d.Exposures, "the holdout enters no experiment")
			assert.Equal(t, "hero-default", d.Choices[0].Block.ID, "the holdout sees only blocks without a segment")
			assert.Equal(t, "banner-all", d.Choices[1].Block.ID)
			assert.Equal(t, []profile.Assignment{{Experiment: profile.HoldoutID, Variant: profile.VariantHoldout, At: testNow.Unix()}}, news)
			assert.Equal(t, []string{"sneaker-fans"}, d.Segments, "segments still match: the holdout is profiled")
			continue
		}
		require.Len(t, d.Exposures, 1)
		x := d.Exposures[0]
		assert.True(t, x.New)
		assert.Equal(t, "banner", d.Choices[1].Block.ID, "slots without an experiment decide as usual")
		switch x.Variant.ID {
		case "control":
			sawControl = true
			assert.Equal(t, "hero-sneakers", d.Choices[0].Block.ID, "the control keeps the normal decision")
		case "big-hero":
			sawBig = true
			assert.Equal(t, "hero-big", d.Choices[0].Block.ID)
			assert.Equal(t, "<h1>BIG</h1>", string(d.Choices[0].HTML))
		}
		assert.Len(t, news, 2)

		// Once stored, the assignment holds without entering, also after
		// the weights changed.
		fan.Experiments = news
		reweighted := mustCompile(t, fmt.Sprintf(expDoc, "1", "1000", "10"))
		again := decideWith(reweighted, fan, false, "home-hero")
		require.Len(t, again.Exposures, 1)
		assert.Equal(t, x.Variant.ID, again.Exposures[0].Variant.ID)
		assert.False(t, again.Exposures[0].New)
		assert.False(t, again.HoldoutNew)
		assert.Empty(t, again.NewExposures(nil, 0))
	}
	assert.True(t, sawControl && sawBig && sawHoldout)

	t.Run("bots and others who may not enter", func(t *testing.T) {
		d := decideWith(set, &profile.Profile{ID: ids(1)[0]}, false, "home-hero")
		assert.Empty(t, d.Exposures)
		assert.False(t, d.HoldoutNew)
		assert.Equal(t, "hero-default", d.Choices[0].Block.ID)
	})
	t.Run("a slot not requested exposes nothing", func(t *testing.T) {
		d := decideWith(set, &profile.Profile{ID: ids(1)[0]}, true, "banner-top")
		assert.Empty(t, d.Exposures)
	})
}

func TestExperimentEligibilityAndSchedule(t *testing.T) {
	set := mustCompile(t, `
segments: [{id: fans, rule: {interest: sneakers}}]
blocks: [{id: a, slot: s, html: a}, {id: b, slot: s, html: b}, {id: b2, slot: t, html: b}]
experiments:
  - {id: fans-only, slot: s, segment: fans, variants: [{id: c}, {id: t, block: b}], goal: {event: purchase}}
  - {id: later, slot: t, variants: [{id: c}, {id: t, block: b2}], goal: {event: purchase}, schedule: {from: "2027-01-01"}}
`)
	for _, id := range ids(50) {
		d := decideWith(set, &profile.Profile{ID: id}, true, "s")
		assert.Empty(t, d.Exposures, "not in the segment: not eligible")
		fan := &profile.Profile{ID: id, Interests: map[string]profile.Interest{"sneakers": {On: true}}}
		assert.Len(t, decideWith(set, fan, true, "s").Exposures, 1)
	}
	d := &Decision{}
	set.Decide(&Input{Profile: &profile.Profile{ID: ids(1)[0]}, Now: testNow, Visitor: ids(1)[0], Enter: true}, []string{"t"}, d)
	assert.Empty(t, d.Exposures, "before its schedule an experiment does not run")
}

func TestExperimentValidation(t *testing.T) {
	const blocks = "segments: [{id: fans, rule: {interest: x}}, {id: others, rule: {interest: y}}]\n" +
		"blocks: [{id: a, slot: s, html: a}, {id: b, slot: s, html: b}, {id: z, slot: other, html: z}]\n"
	for _, tc := range []struct {
		name, doc, path, msg string
	}{
		{"unknown block", "experiments: [{id: e, slot: s, variants: [{id: c}, {id: t, block: nope}], goal: {event: purchase}}]", "experiments[0].variants[1].block", `unknown block "nope"`},
		{"block of another slot", "experiments: [{id: e, slot: s, variants: [{id: c}, {id: t, block: z}], goal: {event: purchase}}]", "experiments[0].variants[1].block", `block "z" is for slot "other"`},
		{"weight zero", "experiments: [{id: e, slot: s, variants: [{id: c, weight: 0}, {id: t, block: b}], goal: {event: purchase}}]", "experiments[0].variants[0].weight", "more than 0"},
		{"negative weight", "experiments: [{id: e, slot: s, variants: [{id: c}, {id: t, block: b, weight: -1}], goal: {event: purchase}}]", "experiments[0].variants[1].weight", "more than 0"},
		{"control with a block", "experiments: [{id: e, slot: s, variants: [{id: c, block: a}, {id: t, block: b}], goal: {event: purchase}}]", "experiments[0].variants[0].block", "control"},
		{"variant without a block", "experiments: [{id: e, slot: s, variants: [{id: c}, {id: t}], goal: {event: purchase}}]", "experiments[0].variants[1].block", "required"},
		{"one variant", "experiments: [{id: e, slot: s, variants: [{id: c}], goal: {event: purchase}}]", "experiments[0].variants", "at least two"},
		{"duplicate variant", "experiments: [{id: e, slot: s, variants: [{id: c}, {id: c, block: b}], goal: {event: purchase}}]", "experiments[0].variants[1].id", "twice"},
		{"goal not an event", "experiments: [{id: e, slot: s, variants: [{id: c}, {id: t, block: b}], goal: {interest: x}}]", "experiments[0].goal", "event condition"},
		{"goal with count", "experiments: [{id: e, slot: s, variants: [{id: c}, {id: t, block: b}], goal: {event: purchase, count: {gte: 2}}}]", "experiments[0].goal.count", "unknown key"},
		{"goal unknown event", "experiments: [{id: e, slot: s, variants: [{id: c}, {id: t, block: b}], goal: {event: buy}}]", "experiments[0].goal.event", "unknown event"},
		{"no goal", "experiments: [{id: e, slot: s, variants: [{id: c}, {id: t, block: b}]}]", "experiments[0].goal", "required"},
		{"traffic", "experiments: [{id: e, slot: s, traffic: 120, variants: [{id: c}, {id: t, block: b}], goal: {event: purchase}}]", "experiments[0].traffic", "at most 100"},
		{"unknown segment", "experiments: [{id: e, slot: s, segment: nope, variants: [{id: c}, {id: t, block: b}], goal: {event: purchase}}]", "experiments[0].segment", "unknown segment"},
		{"duplicate id", "experiments: [{id: e, slot: s, variants: [{id: c}, {id: t, block: b}], goal: {event: purchase}}, {id: e, slot: t, variants: [{id: c}, {id: t, block: b}], goal: {event: purchase}}]", "experiments[1].id", "twice"},
		{"two on one slot", "experiments: [{id: e1, slot: s, variants: [{id: c}, {id: t, block: b}], goal: {event: purchase}}, {id: e2, slot: s, segment: fans, variants: [{id: c}, {id: t, block: a}], goal: {event: purchase}}]", "experiments[1].slot", `"e1" and "e2" both run on slot "s"`},
		{"two on one slot, overlapping schedules", "experiments: [{id: e1, slot: s, schedule: {from: '2026-11-01', to: '2026-11-30'}, variants: [{id: c}, {id: t, block: b}], goal: {event: purchase}}, {id: e2, slot: s, schedule: {from: '2026-11-30'}, variants: [{id: c}, {id: t, block: a}], goal: {event: purchase}}]", "experiments[1].slot", "both run"},
		{"bad schedule", "experiments: [{id: e, slot: s, schedule: {from: '2026-12-01', to: '2026-11-01'}, variants: [{id: c}, {id: t, block: b}], goal: {event: purchase}}]", "experiments[0].schedule.to", "ends before"},
		{"holdout percent", "holdout: {percent: 100, goal: {event: purchase}}", "holdout.percent", "less than 100"},
		{"holdout goal", "holdout: {percent: 5, goal: {field: profile.x, eq: 1}}", "holdout.goal", "event condition"},
		{"holdout without goal", "holdout: {percent: 5}", "holdout.goal", "required"},
		{"goal window", "holdout: {percent: 5, goal: {event: purchase, within: soon}}", "holdout.goal.within", "not a duration"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Compile([]byte(blocks + tc.doc))
			var ve *ValidationError
			require.ErrorAs(t, err, &ve)
			found := false
			for _, p := range ve.Problems {
				if p.Path == tc.path && strings.Contains(p.Message, tc.msg) {
					found = true
				}
			}
			assert.True(t, found, "want %s: %s in %+v", tc.path, tc.msg, ve.Problems)
		})
	}
	t.Run("allowed", func(t *testing.T) {
		mustCompile(t, blocks+`
experiments:
  - {id: e1, slot: s, segment: fans, variants: [{id: c}, {id: t, block: b}], goal: {event: purchase, category: shoes, within: 7d}}
  - {id: e2, slot: s, segment: others, variants: [{id: c}, {id: t, block: a}], goal: {event: click, target: "block:a"}}
  - {id: e3, slot: other, schedule: {to: '2026-11-30'}, variants: [{id: c}, {id: t, block: z}], goal: {event: purchase}}
  - {id: e4, slot: other, schedule: {from: '2026-12-01'}, traffic: 50, variants: [{id: c, weight: 9}, {id: t, weight: 1, block: z}], goal: {event: purchase}}
holdout: {percent: 5, goal: {event: purchase, within: 14d}}
`)
	})
}

func TestGoal(t *testing.T) {
	set := mustCompile(t, fmt.Sprintf(expDoc, "1", "1", "5"))
	w, ok := set.Goal("hero-test", &profile.Event{Type: profile.Purchase})
	assert.True(t, ok)
	assert.Equal(t, "336h0m0s", w.String())
	_, ok = set.Goal("hero-test", &profile.Event{Type: profile.PageView})
	assert.False(t, ok)
	w, ok = set.Goal(profile.HoldoutID, &profile.Event{Type: profile.Purchase})
	assert.True(t, ok)
	assert.Zero(t, w)
	_, ok = set.Goal("nope", &profile.Event{Type: profile.Purchase})
	assert.False(t, ok)
}

func TestExplainShowsExperimentAndHoldout(t *testing.T) {
	set := mustCompile(t, fmt.Sprintf(expDoc, "1", "1", "10"))
	p := &profile.Profile{ID: "x", Experiments: []profile.Assignment{{Experiment: "hero-test", Variant: "big-hero"}, {Experiment: profile.HoldoutID, Variant: profile.VariantPersonalised}}}
	ex := set.Explain(&Input{Profile: p, Now: testNow}, []string{"home-hero"})
	assert.Equal(t, "hero-big", ex.Slots[0].Winner)
	assert.Contains(t, ex.Slots[0].Experiment, "variant big-hero")
	assert.Empty(t, ex.Holdout)
	p.Experiments[1].Variant = profile.VariantHoldout
	ex = set.Explain(&Input{Profile: p, Now: testNow}, []string{"home-hero"})
	assert.Equal(t, "hero-default", ex.Slots[0].Winner)
	assert.Empty(t, ex.Slots[0].Experiment)
	assert.NotEmpty(t, ex.Holdout)
}
