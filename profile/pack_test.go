package profile_test

import (
	"math/rand/v2"
	"strconv"
	"testing"
	"time"

	"github.com/etalage/etalage/profile"
	"github.com/etalage/etalage/profile/embeddedstore"
	"github.com/etalage/etalage/rules"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// randomProfile returns a profile with every part at a random count (often
// none), drawn from the demo definitions' vocabulary so that rules match
// some of it, with times around now.
func randomProfile(r *rand.Rand, now time.Time) *profile.Profile {
	pick := func(xs ...string) string { return xs[r.IntN(len(xs))] }
	at := func() int64 { return now.Unix() - r.Int64N(40*24*3600) }
	p := &profile.Profile{
		Known: r.IntN(3) == 0, FirstSeen: at(), LastSeen: now.Unix() - r.Int64N(3600), Visits: uint32(r.IntN(9)), Score: float64(r.IntN(60)),
	}
	if r.IntN(4) == 0 {
		p.Email, p.CustomerID = "sam"+strconv.Itoa(r.IntN(9))+"@example.nl", strconv.Itoa(r.IntN(100))
	}
	for range r.IntN(3) {
		p.Aliases = append(p.Aliases, profile.NewID())
	}
	if n := r.IntN(5); n > 0 {
		p.Fields = map[string]profile.Field{}
		for range n {
			var v profile.Value
			switch r.IntN(4) {
			case 0:
				v = profile.Value{Kind: profile.KindNumber, Num: float64(40 + r.IntN(8))}
			case 1:
				v = profile.Value{Kind: profile.KindList, List: []string{pick("veja", "nike", "asics"), pick("puma", "veja")}}
			case 2:
				v = profile.Value{Kind: profile.KindDate, Time: at()}
			default:
				v = profile.Value{Kind: profile.KindString, Str: pick("Anna", "Sam", "")}
			}
			p.Fields[pick("shoe_size", "favourite_brands", "first_name", "birthday", "city")] = profile.Field{Value: v, At: at()}
		}
	}
	if n := r.IntN(4); n > 0 {
		p.Interests = map[string]profile.Interest{}
		for range n {
			p.Interests[pick("sneakers", "running", "golf", "sneakers-browser")] = profile.Interest{On: r.IntN(3) > 0, Source: profile.SourceShop, At: at()}
		}
	}
	if r.IntN(3) == 0 {
		p.Consents = map[string]profile.Consent{"profiling": {Granted: r.IntN(2) == 0, At: at()}}
	}
	for range r.IntN(4) {
		p.Cart.Items = append(p.Cart.Items, profile.CartItem{SKU: pick("sneaker-air-45", "trail-runner"), Category: pick("sneakers", "toys", ""), Price: float64(r.IntN(200)), Quantity: 1 + r.IntN(3), Gift: r.IntN(2) == 0})
		p.Cart.UpdatedAt = now.Unix() - r.Int64N(7200)
	}
	for i := range r.IntN(4) {
		o := profile.Order{ID: "o-" + strconv.Itoa(i), At: at(), Value: float64(r.IntN(300))}
		for range r.IntN(3) {
			o.Counted = append(o.Counted, r.Uint64())
		}
		p.Orders = append(p.Orders, o)
	}
	types := []profile.EventType{profile.PageView, profile.Purchase, profile.CartAdd, profile.EmailOpen, profile.EmailClick, profile.FormSubmit}
	for range r.IntN(40) {
		c := profile.Counter{Type: types[r.IntN(len(types))], Total: uint32(1 + r.IntN(9))}
		c.Key.URL = pick("", "/demo/c/sneakers", "/demo/c/running", "/demo/p/sneaker-air-45", "/demo/c/toys")
		c.Key.Category = pick("", "toys", "sneakers")
		c.Key.SKU = pick("", "", "playmobil-sint")
		c.Key.Form = pick("", "newsletter")
		c.First = at()
		c.Last = max(c.First, now.Unix()-r.Int64N(3*24*3600))
		day := profile.Day(c.First)
		for range r.IntN(4) {
			c.Days = append(c.Days, profile.DayCount{Day: day, N: uint32(1 + r.IntN(4))})
			day += int32(1 + r.IntN(10))
		}
		p.Behaviour = append(p.Behaviour, c)
	}
	for range r.IntN(3) {
		p.Experiments = append(p.Experiments, profile.Assignment{Experiment: pick("hero-test", "holdout"), Variant: pick("a", "b"), At: at()})
	}
	return p
}

// encoded returns p's record, or nil for nil.
func encoded(p *profile.Profile) string {
	if p == nil {
		return "<absent>"
	}
	return string(profile.Encode(nil, p))
}

// A snapshot packed for the cache and unpacked again (into new memory, or
// into a scratch that held another visitor's profiles just before) is the
// snapshot loaded from the store, and decides the same: the same segments
// and blocks, for random profiles.
func TestUnpackedSnapshotDecidesAsLoaded(t *testing.T) {
	set, err := rules.Compile(rules.Demo())
	require.NoError(t, err)
	pol := set.Policy(profile.Policy{})
	require.Len(t, pol.Seasons, 2)
	st, err := embeddedstore.Open(t.TempDir())
	require.NoError(t, err)
	t.Cleanup(func() { st.Close() })
	now := time.Date(2026, 11, 28, 15, 0, 0, 0, time.UTC) // both demo seasons collecting
	svc := profile.NewService(st, profile.Options{Now: func() time.Time { return now }})
	slots := []string{"home-hero", "banner-top", "home-picks"}
	r := rand.New(rand.NewPCG(18, 2))
	var sc profile.Scratch
	matched := map[string]bool{}
	for i := range 400 {
		pid := profile.NewID()
		writes := []profile.Write{{Data: profile.Encode(nil, randomProfile(r, now)), Version: uint64(i + 1), TTL: time.Hour}}
		for j := range pol.Seasons {
			if r.IntN(2) == 0 {
				sp := randomProfile(r, now)
				sp.Season, sp.Cycle = pol.Seasons[j].ID, pol.Seasons[j].Cycle(now)-r.IntN(2)
				writes = append(writes, profile.Write{Season: sp.Season, Data: profile.Encode(nil, sp), Version: uint64(i + 7), TTL: time.Hour})
			}
		}
		require.NoError(t, st.Put(t.Context(), pid, writes))
		loaded, err := svc.Load(t.Context(), pid, pol)
		require.NoError(t, err)
		packed := loaded.Pack()
		var direct profile.Scratch
		viaPacked, directPacked, err := svc.LoadPacked(t.Context(), pid, pol, &direct)
		require.NoError(t, err)
		require.Equal(t, packed, directPacked, "LoadPacked packs what Load read, %d", i)
		assert.Equal(t, encoded(loaded.Primary), encoded(viaPacked.Primary), "LoadPacked's primary of %d", i)
		for j := range loaded.Seasonal {
			assert.Equal(t, encoded(loaded.Seasonal[j]), encoded(viaPacked.Seasonal[j]), "LoadPacked's season %d of %d", j, i)
		}
		for _, into := range []*profile.Scratch{nil, &sc} {
			got := svc.Unpack(pid, packed, pol, into)
			require.NotNil(t, got)
			assert.Equal(t, loaded.Records, got.Records, "records of %d", i)
			assert.Equal(t, loaded.Trigger, got.Trigger)
			assert.Equal(t, encoded(loaded.Primary), encoded(got.Primary), "primary of %d", i)
			assert.Equal(t, loaded.Primary.ID, got.Primary.ID)
			require.Len(t, got.Seasonal, len(loaded.Seasonal))
			for j := range loaded.Seasonal {
				assert.Equal(t, encoded(loaded.Seasonal[j]), encoded(got.Seasonal[j]), "season %d of %d", j, i)
			}
			var want, have rules.Decision
			set.Decide(&rules.Input{Profile: loaded.Primary, Seasonal: loaded.Seasonal, Now: now, Visitor: pid}, slots, &want)
			set.Decide(&rules.Input{Profile: got.Primary, Seasonal: got.Seasonal, Now: now, Visitor: pid}, slots, &have)
			assert.Equal(t, want.Segments, have.Segments, "segments of %d", i)
			assert.Equal(t, choices(&want), choices(&have), "blocks of %d", i)
			for _, s := range want.Segments {
				matched[s] = true
			}
		}
	}
	// The random profiles reach a good part of the demo's segments, so
	// that the comparison says something.
	assert.GreaterOrEqual(t, len(matched), 12, "segments matched: %v", matched)
	t.Logf("segments matched: %d", len(matched))
}

func choices(d *rules.Decision) []string {
	var ids []string
	for _, c := range d.Choices {
		if c.Block == nil {
			ids = append(ids, "")
		} else {
			ids = append(ids, c.Block.ID)
		}
	}
	return ids
}

// A packed snapshot unpacks only for the policy it was packed for: other
// seasons or another watcher make it a miss.
func TestUnpackRefusesAnotherPolicy(t *testing.T) {
	st, err := embeddedstore.Open(t.TempDir())
	require.NoError(t, err)
	t.Cleanup(func() { st.Close() })
	svc := profile.NewService(st, profile.Options{Now: func() time.Time { return novNow }})
	pid := profile.NewID()
	_, err = svc.Record(t.Context(), pid, nil, []profile.Event{{Type: profile.PageView, URL: "/x"}}, policy())
	require.NoError(t, err)
	snap, err := svc.Load(t.Context(), pid, policy())
	require.NoError(t, err)
	packed := snap.Pack()
	assert.NotNil(t, svc.Unpack(pid, packed, policy(), nil))
	assert.Nil(t, svc.Unpack(pid, packed, &profile.Policy{}, nil))
	assert.Nil(t, svc.Unpack(pid, profile.Packed{}, policy(), nil))
}
