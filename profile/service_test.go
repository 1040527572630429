package profile_test

import (
	"context"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/etalage/etalage/profile"
	"github.com/etalage/etalage/profile/embeddedstore"
	"github.com/etalage/etalage/profile/redisstore"
	"github.com/etalage/etalage/profile/redisstore/redistest"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"github.com/valyala/fastjson"
)

var (
	novNow    = time.Date(2026, 11, 24, 12, 0, 0, 0, time.UTC)
	amsterdam = mustLoc("Europe/Amsterdam")
)

func mustLoc(name string) *time.Location {
	l, err := time.LoadLocation(name)
	if err != nil {
		panic(err)
	}
	return l
}

func policy() *profile.Policy {
	return &profile.Policy{Seasons: []profile.Season{{
		ID: "sinterklaas", Location: amsterdam,
		Collect:    profile.Window{From: profile.MonthDay{Month: 11, Day: 1}, To: profile.MonthDay{Month: 12, Day: 5}},
		Active:     profile.Window{From: profile.MonthDay{Month: 11, Day: 10}, To: profile.MonthDay{Month: 12, Day: 5}},
		Gift:       true,
		Categories: []string{"toys"},
		RetainDays: 45,
	}}}
}

// stores runs a test on the embedded store and on a real Redis.
func stores(t *testing.T, run func(t *testing.T, svc *profile.Service, st profile.Store)) {
	t.Run("embedded", func(t *testing.T) {
		st, err := embeddedstore.Open(t.TempDir())
		require.NoError(t, err)
		t.Cleanup(func() { st.Close() })
		run(t, profile.NewService(st, profile.Options{Now: func() time.Time { return novNow }}), st)
	})
	t.Run("redis", func(t *testing.T) {
		st, err := redisstore.Open(context.Background(), "redis://"+redistest.Server(t)+"/0", redistest.Options())
		require.NoError(t, err)
		t.Cleanup(func() { st.Close() })
		run(t, profile.NewService(st, profile.Options{Now: func() time.Time { return novNow }}), st)
	})
}

func TestRecordAndLoad(t *testing.T) {
	stores(t, func(t *testing.T, svc *profile.Service, st profile.Store) {
		ctx := context.Background()
		pol := policy()
		pid := profile.NewID()
		snap, err := svc.Record(ctx, pid, nil, []profile.Event{
			{Type: profile.PageView, URL: "/sneakers"},
			{Type: profile.PageView, URL: "/sneakers"},
			{Type: profile.CartAdd, SKU: "shoe", Category: "sneakers", Price: 100, Quantity: 1},
		}, pol)
		require.NoError(t, err)
		assert.Equal(t, pid, snap.Primary.ID)
		loaded, err := svc.Load(ctx, pid, pol)
		require.NoError(t, err)
		assert.Equal(t, snap.Primary, loaded.Primary)
		assert.Equal(t, 100.0, loaded.Primary.Cart.Value())
		assert.Nil(t, loaded.Seasonal[0])

		// A stale cached snapshot is detected and the write retried.
		_, err = svc.Record(ctx, pid, nil, []profile.Event{{Type: profile.PageView, URL: "/other"}}, pol)
		require.NoError(t, err)
		snap2, err := svc.Record(ctx, pid, snap, []profile.Event{{Type: profile.PageView, URL: "/sneakers"}}, pol)
		require.NoError(t, err)
		var views uint32
		for _, c := range snap2.Primary.Behaviour {
			if c.Type == profile.PageView {
				views += c.Total
			}
		}
		assert.Equal(t, uint32(4), views, "no event lost to the stale cache")
	})
}

func TestSeasonalRouting(t *testing.T) {
	stores(t, func(t *testing.T, svc *profile.Service, st profile.Store) {
		ctx := context.Background()
		pid := profile.NewID()
		snap, err := svc.Record(ctx, pid, nil, []profile.Event{{Type: profile.Purchase, OrderID: "o-1", Items: []profile.Item{
			{SKU: "playmobil", Category: "toys", Price: 40, Gift: true},
			{SKU: "sneaker", Category: "sneakers", Price: 100},
		}}}, policy())
		require.NoError(t, err)
		require.NotNil(t, snap.Seasonal[0])
		assert.Equal(t, 2026, snap.Seasonal[0].Cycle)
		for _, c := range snap.Primary.Behaviour {
			assert.NotEqual(t, "toys", c.Key.Category, "the gift never reaches the primary profile")
		}
		for _, c := range snap.Seasonal[0].Behaviour {
			assert.NotEqual(t, "sneakers", c.Key.Category)
		}
		assert.Len(t, snap.Primary.Orders, 1)
		assert.Len(t, snap.Seasonal[0].Orders, 1)

		// Outside the collect window the same purchase is primary.
		march := profile.NewService(st, profile.Options{Now: func() time.Time { return time.Date(2027, 3, 1, 12, 0, 0, 0, time.UTC) }})
		snap, err = march.Record(ctx, profile.NewID(), nil, []profile.Event{{Type: profile.Purchase, OrderID: "o-2", Items: []profile.Item{{SKU: "playmobil", Category: "toys", Gift: true}}}}, policy())
		require.NoError(t, err)
		assert.Nil(t, snap.Seasonal[0])
		assert.Len(t, snap.Primary.Orders, 1)

		// The seasonal record expires retain_days after the season closes.
		recs, err := st.Get(ctx, pid, []string{"sinterklaas"})
		require.NoError(t, err)
		assert.NotZero(t, recs[1].Version)
		// Next year's cycle does not see last year's seasonal profile.
		nextYear := profile.NewService(st, profile.Options{Now: func() time.Time { return novNow.AddDate(1, 0, 0) }})
		loaded, err := nextYear.Load(ctx, pid, policy())
		require.NoError(t, err)
		assert.Nil(t, loaded.Seasonal[0])
	})
}

func TestOrderCountsOnceConcurrently(t *testing.T) {
	stores(t, func(t *testing.T, svc *profile.Service, st profile.Store) {
		ctx := context.Background()
		pid := profile.NewID()
		var wg sync.WaitGroup
		for range 8 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				_, err := svc.Record(ctx, pid, nil, []profile.Event{
					{Type: profile.Purchase, OrderID: "same", Items: []profile.Item{{SKU: "a", Price: 10}}},
					{Type: profile.PageView, URL: "/thanks"},
				}, policy())
				assert.NoError(t, err)
			}()
		}
		wg.Wait()
		snap, err := svc.Load(ctx, pid, policy())
		require.NoError(t, err)
		assert.Len(t, snap.Primary.Orders, 1, "an order id counts once")
		for _, c := range snap.Primary.Behaviour {
			if c.Type == profile.PageView {
				assert.Equal(t, uint32(8), c.Total, "every other event of every request counted")
			}
			if c.Type == profile.Purchase && c.Key.SKU == "" {
				assert.Equal(t, uint32(1), c.Total)
			}
		}
	})
}

func TestIdentifyAndMerge(t *testing.T) {
	stores(t, func(t *testing.T, svc *profile.Service, st profile.Store) {
		ctx := context.Background()
		pol := policy()
		// Laptop: anonymous browsing, then identify. The contact is new, so
		// the laptop's profile becomes the contact's.
		laptop := profile.NewID()
		_, err := svc.Record(ctx, laptop, nil, []profile.Event{{Type: profile.PageView, URL: "/sneakers"}}, pol)
		require.NoError(t, err)
		snap, err := svc.Record(ctx, laptop, nil, []profile.Event{{Type: profile.Identify, Proven: true, Email: "sam@example.nl", Fields: map[string]profile.Value{"first_name": {Kind: profile.KindString, Str: "Sam"}}}}, pol)
		require.NoError(t, err)
		assert.Equal(t, laptop, snap.Primary.ID)
		assert.True(t, snap.Primary.Known)

		// Phone: anonymous, then identifies as the same contact: merged into
		// the laptop's profile, the cookie moves there.
		phone := profile.NewID()
		_, err = svc.Record(ctx, phone, nil, []profile.Event{{Type: profile.PageView, URL: "/sneakers"}, {Type: profile.InterestEvent, Name: "running", On: true}}, pol)
		require.NoError(t, err)
		snap, err = svc.Record(ctx, phone, nil, []profile.Event{{Type: profile.Identify, Proven: true, Email: "sam@example.nl"}}, pol)
		require.NoError(t, err)
		assert.Equal(t, laptop, snap.Primary.ID, "the surviving profile")
		assert.True(t, snap.Primary.HasInterest("running"), "interests unite")
		assert.Contains(t, snap.Primary.Aliases, phone)
		var views uint32
		for _, c := range snap.Primary.Behaviour {
			if c.Key.URL == "/sneakers" {
				views = c.Total
			}
		}
		assert.Equal(t, uint32(2), views, "counters add")
		recs, err := st.Get(ctx, phone, []string{"sinterklaas"})
		require.NoError(t, err)
		assert.NotContains(t, string(recs[0].Data), "/sneakers", "the merged anonymous profile's data is gone")
		assert.Less(t, len(recs[0].Data), 40, "only a forward to the survivor stays")
		fwd, err := svc.Load(ctx, phone, pol)
		require.NoError(t, err)
		assert.Equal(t, laptop, fwd.Primary.ID, "the phone's old id forwards to the survivor")
		var sc profile.Scratch
		fwdPacked, packed, err := svc.LoadPacked(ctx, phone, pol, &sc)
		require.NoError(t, err)
		assert.Equal(t, laptop, fwdPacked.Primary.ID, "LoadPacked follows the forward as Load does")
		assert.Equal(t, string(profile.Encode(nil, fwd.Primary)), string(profile.Encode(nil, fwdPacked.Primary)))
		assert.Equal(t, fwd.Pack(), packed, "the survivor's records are what is packed")

		resolved, err := svc.Resolve(ctx, "email: SAM@example.nl ")
		require.NoError(t, err)
		assert.Equal(t, laptop, resolved)

		// A second known contact on the laptop is never merged into Sam.
		snap, err = svc.Record(ctx, laptop, nil, []profile.Event{{Type: profile.Identify, Proven: true, Email: "kim@example.nl"}}, pol)
		require.NoError(t, err)
		assert.NotEqual(t, laptop, snap.Primary.ID, "a new profile for the other contact")
		assert.Equal(t, "kim@example.nl", snap.Primary.Email)
		sam, err := svc.Load(ctx, laptop, pol)
		require.NoError(t, err)
		assert.Equal(t, "sam@example.nl", sam.Primary.Email, "Sam's profile untouched")
		kim, err := svc.Resolve(ctx, "email:kim@example.nl")
		require.NoError(t, err)
		assert.Equal(t, snap.Primary.ID, kim)

		// Sam again on Kim's browser: switches back to Sam, no merge.
		snap, err = svc.Record(ctx, kim, nil, []profile.Event{{Type: profile.Identify, Proven: true, Email: "sam@example.nl"}}, pol)
		require.NoError(t, err)
		assert.Equal(t, laptop, snap.Primary.ID)
		kimSnap, err := svc.Load(ctx, kim, pol)
		require.NoError(t, err)
		assert.Equal(t, "kim@example.nl", kimSnap.Primary.Email)
		assert.NotContains(t, snap.Primary.Aliases, kim)
	})
}

func TestContactEventsAndErase(t *testing.T) {
	stores(t, func(t *testing.T, svc *profile.Service, st profile.Store) {
		ctx := context.Background()
		pol := policy()
		pid, err := svc.Contact(ctx, "email:erase@example.nl", pol)
		require.NoError(t, err)
		again, err := svc.Contact(ctx, "email:Erase@Example.nl", pol)
		require.NoError(t, err)
		assert.Equal(t, pid, again)
		_, err = svc.Record(ctx, pid, nil, []profile.Event{{Type: profile.EmailOpen, Campaign: "sint"}, {Type: profile.Identify, Proven: true, Email: "erase@example.nl", Customer: "42"}, {Type: profile.CartAdd, SKU: "toy", Gift: true}}, pol)
		require.NoError(t, err)
		byCustomer, err := svc.Resolve(ctx, "customer:42")
		require.NoError(t, err)
		assert.Equal(t, pid, byCustomer)

		out, err := svc.Export(ctx, "email:erase@example.nl", pol)
		require.NoError(t, err)
		m := out.(map[string]any)
		assert.Equal(t, pid, m["id"])
		assert.Contains(t, m["seasonal"], "sinterklaas")
		assert.Equal(t, "erase@example.nl", m["primary"].(map[string]any)["email"])

		require.NoError(t, svc.Erase(ctx, "customer:42", pol))
		recs, err := st.Get(ctx, pid, []string{"sinterklaas"})
		require.NoError(t, err)
		assert.Zero(t, recs[0].Version)
		assert.Zero(t, recs[1].Version, "seasonal profiles erased too")
		for _, ref := range []string{"email:erase@example.nl", "customer:42"} {
			_, err = svc.Resolve(ctx, ref)
			assert.ErrorIs(t, err, profile.ErrNotFound, "link %s erased", ref)
		}
		assert.ErrorIs(t, svc.Erase(ctx, pid, pol), profile.ErrNotFound)
		_, err = svc.Export(ctx, pid, pol)
		assert.ErrorIs(t, err, profile.ErrNotFound)
	})
}

func TestConsent(t *testing.T) {
	stores(t, func(t *testing.T, svc *profile.Service, st profile.Store) {
		ctx := context.Background()
		pol := policy()
		pol.ConsentNeeded = true
		pid := profile.NewID()
		snap, err := svc.Record(ctx, pid, nil, []profile.Event{{Type: profile.PageView, URL: "/a"}, {Type: profile.CartAdd, SKU: "toy", Gift: true}}, pol)
		require.NoError(t, err)
		assert.Empty(t, snap.Primary.Behaviour)
		recs, err := st.Get(ctx, pid, []string{"sinterklaas"})
		require.NoError(t, err)
		assert.Zero(t, recs[0].Version, "nothing stored before consent")
		assert.Zero(t, recs[1].Version)

		snap, err = svc.Record(ctx, pid, nil, []profile.Event{{Type: profile.ConsentEvent, Purposes: map[string]bool{"profiling": true}}, {Type: profile.PageView, URL: "/a"}, {Type: profile.CartAdd, SKU: "toy", Gift: true}}, pol)
		require.NoError(t, err)
		assert.Len(t, snap.Primary.Behaviour, 1)
		require.NotNil(t, snap.Seasonal[0])

		snap, err = svc.Record(ctx, pid, nil, []profile.Event{{Type: profile.ConsentEvent, Purposes: map[string]bool{"profiling": false}}, {Type: profile.PageView, URL: "/b"}}, pol)
		require.NoError(t, err)
		assert.Empty(t, snap.Primary.Behaviour, "withdrawal deletes stored behaviour, and nothing new is stored")
		assert.Nil(t, snap.Seasonal[0])
		recs, err = st.Get(ctx, pid, []string{"sinterklaas"})
		require.NoError(t, err)
		assert.Zero(t, recs[1].Version, "the seasonal record is deleted")
		assert.False(t, snap.Primary.HasConsent("profiling"))
	})
}

func TestResolveRejects(t *testing.T) {
	st, err := embeddedstore.Open(t.TempDir())
	require.NoError(t, err)
	defer st.Close()
	svc := profile.NewService(st, profile.Options{})
	for _, ref := range []string{"", "nope", "email:", "email:not-an-address", "phone:0612", strings.Repeat("a", 31)} {
		_, err := svc.Resolve(context.Background(), ref)
		assert.ErrorIs(t, err, profile.ErrInvalid, ref)
	}
}

// TestIdentifyConcurrently: six devices with anonymous behaviour identify as
// the same new contact at once; they end in one profile holding every
// device's counts.
func TestIdentifyConcurrently(t *testing.T) {
	stores(t, func(t *testing.T, svc *profile.Service, st profile.Store) {
		ctx := context.Background()
		pol := policy()
		const devices = 6
		pids := make([]string, devices)
		for i := range pids {
			pids[i] = profile.NewID()
			_, err := svc.Record(ctx, pids[i], nil, []profile.Event{{Type: profile.PageView, URL: "/sneakers"}, {Type: profile.PageView, URL: "/sneakers"}}, pol)
			require.NoError(t, err)
		}
		survivors := recordAtOnce(t, svc, pids, []profile.Event{{Type: profile.Identify, Proven: true, Email: "many@example.nl"}, {Type: profile.PageView, URL: "/sneakers"}}, pol)
		contact, err := svc.Resolve(ctx, "email:many@example.nl")
		require.NoError(t, err)
		for i, s := range survivors {
			assert.Equal(t, contact, s, "device %d ends in the contact's profile", i)
		}
		snap, err := svc.Load(ctx, contact, pol)
		require.NoError(t, err)
		var views uint32
		for _, c := range snap.Primary.Behaviour {
			if c.Key.URL == "/sneakers" {
				views += c.Total
			}
		}
		assert.Equal(t, uint32(devices*3), views, "no count lost: 2 anonymous + 1 identified view per device")
	})
}

// TestUnprovenIdentify: an identify nobody proved (a browser typing an
// address) keeps its claim on the caller's own profile: it never reads,
// joins or changes the contact's profile, and it never pre-claims the
// address, so the owner's later proven identify links as usual.
func TestUnprovenIdentify(t *testing.T) {
	stores(t, func(t *testing.T, svc *profile.Service, st profile.Store) {
		ctx := context.Background()
		pol := policy()
		victim := profile.NewID()
		_, err := svc.Record(ctx, victim, nil, []profile.Event{
			{Type: profile.Identify, Proven: true, Email: "victim@example.nl", Customer: "1001",
				Fields: map[string]profile.Value{"first_name": {Kind: profile.KindString, Str: "Vera"}}},
			{Type: profile.PageView, URL: "/sneakers"},
		}, pol)
		require.NoError(t, err)

		for _, ev := range []profile.Event{
			{Type: profile.Identify, Email: "victim@example.nl", Fields: map[string]profile.Value{"first_name": {Kind: profile.KindString, Str: "Mallory"}}},
			{Type: profile.Identify, Customer: "1001"},
		} {
			attacker := profile.NewID()
			snap, err := svc.Record(ctx, attacker, nil, []profile.Event{ev, {Type: profile.PageView, URL: "/toys"}}, pol)
			require.NoError(t, err)
			assert.Equal(t, attacker, snap.Primary.ID, "the caller stays on its own profile")
			assert.False(t, snap.Primary.Known)
			assert.Empty(t, snap.Primary.Email)
			assert.Empty(t, snap.Primary.CustomerID)
			assert.Empty(t, snap.Primary.Aliases)
			if ev.Email != "" {
				assert.Equal(t, "victim@example.nl", snap.Primary.Fields["email"].Value.Str, "the claim is kept as a field of the caller's own profile")
			} else {
				assert.Equal(t, "1001", snap.Primary.Fields["customer_id"].Value.Str)
			}
		}

		v, err := svc.Load(ctx, victim, pol)
		require.NoError(t, err)
		assert.Equal(t, "Vera", v.Primary.Fields["first_name"].Value.Str, "the victim's fields are untouched")
		assert.Len(t, v.Primary.Behaviour, 1, "nothing of the attacker reached the victim")
		for _, ref := range []string{"email:victim@example.nl", "customer:1001"} {
			got, err := svc.Resolve(ctx, ref)
			require.NoError(t, err)
			assert.Equal(t, victim, got, "%s still points at the victim", ref)
		}

		// No pre-claiming: an address claimed without proof by a stranger
		// is linked normally when its owner proves it later.
		stranger := profile.NewID()
		_, err = svc.Record(ctx, stranger, nil, []profile.Event{{Type: profile.Identify, Email: "owner@example.nl"}}, pol)
		require.NoError(t, err)
		_, err = svc.Resolve(ctx, "email:owner@example.nl")
		assert.ErrorIs(t, err, profile.ErrNotFound, "an unproven identify links nothing")
		owner := profile.NewID()
		_, err = svc.Record(ctx, owner, nil, []profile.Event{{Type: profile.PageView, URL: "/a"}}, pol)
		require.NoError(t, err)
		snap, err := svc.Record(ctx, owner, nil, []profile.Event{{Type: profile.Identify, Proven: true, Email: "owner@example.nl"}}, pol)
		require.NoError(t, err)
		assert.Equal(t, owner, snap.Primary.ID)
		assert.True(t, snap.Primary.Known)
		got, err := svc.Resolve(ctx, "email:owner@example.nl")
		require.NoError(t, err)
		assert.Equal(t, owner, got, "the owner's proven identify links the address to the owner")
	})
}

func purchaseCount(p *profile.Profile) uint32 {
	if p == nil {
		return 0
	}
	for _, c := range p.Behaviour {
		if c.Type == profile.Purchase && c.Key == (profile.Key{}) {
			return c.Total
		}
	}
	return 0
}

func TestImportRoutesByEventTime(t *testing.T) {
	stores(t, func(t *testing.T, svc *profile.Service, st profile.Store) {
		ctx := context.Background()
		lastYear := time.Date(2025, 11, 20, 12, 0, 0, 0, time.UTC).Unix()
		gift := func(order string, ts int64) []profile.Event {
			return []profile.Event{{Type: profile.Purchase, OrderID: order, TS: ts, Trusted: true,
				Items: []profile.Item{{SKU: "playmobil", Category: "toys", Gift: true}}}}
		}

		// Kept long enough, last year's cycle holds the import, and rules
		// never see it this year.
		long := policy()
		long.Seasons[0].RetainDays = 400
		pid := profile.NewID()
		snap, err := svc.Record(ctx, pid, nil, gift("o-2025", lastYear), long)
		require.NoError(t, err)
		assert.Nil(t, snap.Seasonal[0], "last year's purchase does not show this year's banner")
		assert.Zero(t, purchaseCount(snap.Primary), "a gift never counts in the primary profile")
		recs, err := st.Get(ctx, pid, []string{"sinterklaas"})
		require.NoError(t, err)
		require.NotZero(t, recs[1].Version, "the import is stored in its season")
		stored, err := profile.Decode(recs[1].Data)
		require.NoError(t, err)
		assert.Equal(t, 2025, stored.Cycle, "in last year's cycle")
		assert.Equal(t, uint32(1), purchaseCount(stored))
		loaded, err := svc.Load(ctx, pid, long)
		require.NoError(t, err)
		assert.Nil(t, loaded.Seasonal[0])

		// This year's gift starts this year's cycle; an import of last
		// year sent afterwards never lands in it.
		snap, err = svc.Record(ctx, pid, nil, gift("o-2026", 0), long)
		require.NoError(t, err)
		require.NotNil(t, snap.Seasonal[0])
		assert.Equal(t, 2026, snap.Seasonal[0].Cycle)
		assert.Equal(t, uint32(1), purchaseCount(snap.Seasonal[0]))
		snap, err = svc.Record(ctx, pid, nil, gift("o-2025b", lastYear), long)
		require.NoError(t, err)
		assert.Equal(t, uint32(1), purchaseCount(snap.Seasonal[0]), "last year's order is not this year's")

		// With retain_days over, last year's cycle is gone: the import is
		// remembered (an order id counts once) but shown nowhere.
		pid = profile.NewID()
		snap, err = svc.Record(ctx, pid, nil, gift("o-old", lastYear), policy())
		require.NoError(t, err)
		assert.Nil(t, snap.Seasonal[0])
		recs, err = st.Get(ctx, pid, []string{"sinterklaas"})
		require.NoError(t, err)
		assert.Zero(t, recs[1].Version, "nothing is stored past its retention")
		assert.Zero(t, purchaseCount(snap.Primary))
	})
}

func TestOrderCountsOnceAcrossSeasons(t *testing.T) {
	stores(t, func(t *testing.T, svc *profile.Service, st profile.Store) {
		ctx := context.Background()
		pid := profile.NewID()
		order := []profile.Event{{Type: profile.Purchase, OrderID: "o-1", Items: []profile.Item{
			{SKU: "playmobil", Category: "toys", Price: 40, Gift: true},
		}}}
		snap, err := svc.Record(ctx, pid, nil, order, policy())
		require.NoError(t, err)
		require.NotNil(t, snap.Seasonal[0])
		assert.Equal(t, uint32(1), purchaseCount(snap.Seasonal[0]))

		// The same order again on 20 December: the collect window is
		// closed, so it would go to the primary profile; it counted already.
		dec20 := profile.NewService(st, profile.Options{Now: func() time.Time { return time.Date(2026, 12, 20, 12, 0, 0, 0, time.UTC) }})
		snap, err = dec20.Record(ctx, pid, nil, order, policy())
		require.NoError(t, err)
		assert.Zero(t, purchaseCount(snap.Primary), "an order id counts once across primary and seasonal profiles")

		// And the other way round: counted in the primary profile, then
		// sent again as a gift in the window.
		pid = profile.NewID()
		march := profile.NewService(st, profile.Options{Now: func() time.Time { return time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC) }})
		_, err = march.Record(ctx, pid, nil, []profile.Event{{Type: profile.Purchase, OrderID: "o-2", Items: []profile.Item{{SKU: "shoe"}}}}, policy())
		require.NoError(t, err)
		snap, err = svc.Record(ctx, pid, nil, []profile.Event{
			{Type: profile.Purchase, OrderID: "o-2", Items: []profile.Item{{SKU: "playmobil", Gift: true}}},
			{Type: profile.Purchase, OrderID: "o-3", Season: "sinterklaas", Items: []profile.Item{{SKU: "lego"}}},
			{Type: profile.Purchase, OrderID: "o-3", Items: []profile.Item{{SKU: "lego"}}},
		}, policy())
		require.NoError(t, err)
		assert.Equal(t, uint32(1), purchaseCount(snap.Primary))
		require.NotNil(t, snap.Seasonal[0])
		assert.Equal(t, uint32(1), purchaseCount(snap.Seasonal[0]), "o-3 once, o-2 not again")
	})
}

func TestStoredRecordStaysUnder64KB(t *testing.T) {
	stores(t, func(t *testing.T, svc *profile.Service, st profile.Store) {
		ctx := context.Background()
		pol := policy()
		pid := profile.NewID()
		long := func(tag string, n int) string { return (tag + strings.Repeat("x", n))[:n] }
		decode := func(body string) ([]profile.Event, error) {
			return profile.DecodeEvents(fastjson.MustParse(body), profile.DecodeOptions{Now: novNow, Seasons: pol.Seasons})
		}
		record := func(body string) {
			t.Helper()
			evs, err := decode(body)
			require.NoError(t, err)
			_, err = svc.Record(ctx, pid, nil, evs, pol)
			require.NoError(t, err)
			recs, err := st.Get(ctx, pid, []string{"sinterklaas"})
			require.NoError(t, err)
			for _, r := range recs {
				require.Less(t, len(r.Data), profile.MaxRecord, "every stored record stays under 64 KB")
			}
		}

		// The finding: list fields of 32 items of 1 KB, 64 of them, is
		// refused as a whole, naming the bound.
		var b strings.Builder
		b.WriteString(`[{"type":"form_submit","form":"f","fields":{`)
		for i := range profile.MaxFields {
			if i > 0 {
				b.WriteByte(',')
			}
			b.WriteString(`"f` + strconv.Itoa(i) + `":[`)
			for j := range profile.MaxListItems {
				if j > 0 {
					b.WriteByte(',')
				}
				b.WriteString(`"` + long(strconv.Itoa(j), 1024) + `"`)
			}
			b.WriteString(`]`)
		}
		b.WriteString(`}}]`)
		_, err := decode(b.String())
		require.Error(t, err)
		assert.ErrorIs(t, err, profile.ErrInvalid)
		assert.Contains(t, err.Error(), "events[0].fields: at most 16384 bytes")

		// The most that is accepted, at every bound: fields up to the
		// bound of one event, four times over; 512 clicks with 512-byte
		// URLs and the longest targets; 100 cart lines and 100 orders with
		// the longest ids; interests and consents to their bounds.
		for r := range 4 {
			b.Reset()
			b.WriteString(`[{"type":"form_submit","form":"` + long("f", 128) + `","fields":{`)
			for i := range 16 {
				if i > 0 {
					b.WriteByte(',')
				}
				b.WriteString(`"` + long(strconv.Itoa(r*16+i)+"n", 6) + `":"` + long("v", 1000) + `"`)
			}
			b.WriteString(`}}]`)
			record(b.String())
		}
		for r := range 6 {
			b.Reset()
			b.WriteByte('[')
			for i := range 100 {
				if i > 0 {
					b.WriteByte(',')
				}
				n := r*100 + i
				b.WriteString(`{"type":"click","target":"` + long(strconv.Itoa(n)+"t", 256) + `","url":"/` + long(strconv.Itoa(n)+"u", 600) + `"}`)
			}
			b.WriteByte(']')
			record(b.String())
		}
		for _, ev := range []func(i int) string{
			func(i int) string {
				return `{"type":"cart_add","sku":"` + long(strconv.Itoa(i)+"s", 128) + `","category":"` + long("c", 64) + `","price":1e9,"quantity":10000}`
			},
			func(i int) string {
				return `{"type":"purchase","order_id":"` + long(strconv.Itoa(i)+"o", 128) + `","items":[{"sku":"` + long(strconv.Itoa(i)+"k", 128) + `","price":1e9}]}`
			},
			func(i int) string { return `{"type":"interest","name":"` + long(strconv.Itoa(i)+"i", 64) + `"}` },
		} {
			b.Reset()
			b.WriteByte('[')
			for i := range 100 {
				if i > 0 {
					b.WriteByte(',')
				}
				b.WriteString(ev(i))
			}
			b.WriteByte(']')
			record(b.String())
		}
		record(`[{"type":"page_view","url":"/last"}]`)

		snap, err := svc.Load(ctx, pid, pol)
		require.NoError(t, err)
		p := snap.Primary
		last := false
		for _, c := range p.Behaviour {
			last = last || c.Key.URL == "/last"
		}
		assert.True(t, last, "the newest behaviour is kept")
		assert.Contains(t, p.Fields, long("63n", 6), "the most recently set field is kept")
		require.NotEmpty(t, p.Orders)
		assert.Equal(t, long("99o", 128), p.Orders[len(p.Orders)-1].ID, "the newest order id is kept")
		assert.Len(t, p.Interests, profile.MaxInterests)
	})
}

// recordAtOnce records the same events on every one of pids at once, as
// devices racing each other, and returns the profile each one ended in.
func recordAtOnce(t *testing.T, svc *profile.Service, pids []string, events []profile.Event, pol *profile.Policy) []string {
	t.Helper()
	var wg sync.WaitGroup
	ends := make([]string, len(pids))
	for i := range pids {
		wg.Add(1)
		go func() {
			defer wg.Done()
			snap, err := svc.Record(context.Background(), pids[i], nil, events, pol)
			if assert.NoError(t, err) {
				ends[i] = snap.Primary.ID
			}
		}()
	}
	wg.Wait()
	return ends
}
