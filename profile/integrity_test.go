package profile_test

import (
	"context"
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
)

// allStores runs a test on the embedded store, a single Redis and a Redis
// Cluster, where identity links live in other slots than their profiles.
func allStores(t *testing.T, now func() time.Time, run func(t *testing.T, svc *profile.Service, st profile.Store)) {
	t.Run("embedded", func(t *testing.T) {
		st, err := embeddedstore.Open(t.TempDir())
		require.NoError(t, err)
		t.Cleanup(func() { st.Close() })
		run(t, profile.NewService(st, profile.Options{Now: now}), st)
	})
	t.Run("redis", func(t *testing.T) {
		st, err := redisstore.Open(context.Background(), "redis://"+redistest.Server(t)+"/0", redistest.Options())
		require.NoError(t, err)
		t.Cleanup(func() { st.Close() })
		run(t, profile.NewService(st, profile.Options{Now: now}), st)
	})
	t.Run("cluster", func(t *testing.T) {
		st, err := redisstore.Open(context.Background(), "redis-cluster://"+strings.Join(redistest.Cluster(t), ","), redistest.Options())
		require.NoError(t, err)
		t.Cleanup(func() { st.Close() })
		run(t, profile.NewService(st, profile.Options{Now: now}), st)
	})
}

func fixedNow() time.Time { return novNow }

// holders returns the ids of the stored profiles (live records, forwards
// excluded) that hold the e-mail address or customer id.
func holders(t *testing.T, svc *profile.Service, st profile.Store, email, customer string) []string {
	t.Helper()
	ctx := context.Background()
	var out []string
	cursor := ""
	for {
		pids, next, err := st.Scan(ctx, cursor, 500)
		require.NoError(t, err)
		for _, pid := range pids {
			snap, err := svc.Load(ctx, pid, policy())
			require.NoError(t, err)
			if snap.Primary.ID != pid {
				continue // a forward to a survivor, which the scan lists too
			}
			if (email != "" && snap.Primary.Email == email) || (customer != "" && snap.Primary.CustomerID == customer) {
				out = append(out, pid)
			}
		}
		if next == "" {
			return out
		}
		cursor = next
	}
}

func views(p *profile.Profile, url string) uint32 {
	var n uint32
	for _, c := range p.Behaviour {
		if c.Type == profile.PageView && c.Key.URL == url {
			n += c.Total
		}
	}
	return n
}

// TestMergeKeepsRacingEvents: thirty page views from one anonymous cookie
// race an identify that merges it into a known contact. Every page view
// acknowledged is in the profile that the cookie points at afterwards,
// whichever answer's cookie the browser keeps, and exactly once.
func TestMergeKeepsRacingEvents(t *testing.T) {
	allStores(t, fixedNow, func(t *testing.T, svc *profile.Service, st profile.Store) {
		ctx := context.Background()
		pol := policy()
		for round := range 4 {
			email := "racer" + string(rune('a'+round)) + "@example.nl"
			contact, err := svc.Contact(ctx, "email:"+email, pol)
			require.NoError(t, err)
			_, err = svc.Record(ctx, contact, nil, []profile.Event{{Type: profile.PageView, URL: "/history"}}, pol)
			require.NoError(t, err)
			anon := profile.NewID()
			_, err = svc.Record(ctx, anon, nil, []profile.Event{{Type: profile.PageView, URL: "/race"}}, pol)
			require.NoError(t, err)

			const n = 30
			var wg sync.WaitGroup
			var mu sync.Mutex
			cookies := map[string]bool{}
			acked := 1
			for i := range n + 1 {
				wg.Add(1)
				go func() {
					defer wg.Done()
					ev := profile.Event{Type: profile.PageView, URL: "/race"}
					if i == n/2 {
						ev = profile.Event{Type: profile.Identify, Proven: true, Email: email}
					}
					snap, err := svc.Record(ctx, anon, nil, []profile.Event{ev}, pol)
					if !assert.NoError(t, err) {
						return
					}
					mu.Lock()
					defer mu.Unlock()
					cookies[snap.Primary.ID] = true
					if ev.Type == profile.PageView {
						acked++
					}
				}()
			}
			wg.Wait()
			for cookie := range cookies {
				snap, err := svc.Load(ctx, cookie, pol)
				require.NoError(t, err)
				assert.Equal(t, contact, snap.Primary.ID, "round %d: cookie %s leads to the contact", round, cookie)
				assert.Equal(t, uint32(acked), views(snap.Primary, "/race"), "round %d: every acknowledged page view, once", round)
				assert.Equal(t, uint32(1), views(snap.Primary, "/history"), "round %d: the contact's history kept", round)
			}
			recs, err := st.Get(ctx, anon, nil)
			require.NoError(t, err)
			assert.NotContains(t, string(recs[0].Data), "/race", "round %d: nothing stays under the old id", round)
		}
	})
}

// TestOneIdentifierOneProfile: six devices, each already known as its own
// contact, identify at once as the same new address: one profile holds it,
// and erasing it leaves none.
func TestOneIdentifierOneProfile(t *testing.T) {
	allStores(t, fixedNow, func(t *testing.T, svc *profile.Service, st profile.Store) {
		ctx := context.Background()
		pol := policy()
		const devices = 6
		pids := make([]string, devices)
		for i := range pids {
			pids[i] = profile.NewID()
			_, err := svc.Record(ctx, pids[i], nil, []profile.Event{{Type: profile.Identify, Proven: true, Email: "own" + string(rune('a'+i)) + "@example.nl"}}, pol)
			require.NoError(t, err)
		}
		ends := recordAtOnce(t, svc, pids, []profile.Event{{Type: profile.Identify, Proven: true, Email: "shared@example.nl"}, {Type: profile.PageView, URL: "/shared"}}, pol)
		got := holders(t, svc, st, "shared@example.nl", "")
		require.Len(t, got, 1, "one profile holds the address")
		for i := range ends {
			assert.Equal(t, got[0], ends[i], "device %d moved to it", i)
		}
		snap, err := svc.Load(ctx, got[0], pol)
		require.NoError(t, err)
		assert.Equal(t, uint32(devices), views(snap.Primary, "/shared"))
		for i := range pids {
			own, err := svc.Load(ctx, pids[i], pol)
			require.NoError(t, err)
			assert.Equal(t, "own"+string(rune('a'+i))+"@example.nl", own.Primary.Email, "known profiles are never merged")
		}
		require.NoError(t, svc.Erase(ctx, "email:shared@example.nl", pol))
		assert.Empty(t, holders(t, svc, st, "shared@example.nl", ""), "erasure leaves no profile with the address")
	})
}

// TestReidentifyWithAnotherContactsCustomerID: a profile {email a,
// customer D} identifying with customer C, which another profile holds,
// moves to that profile without giving it a or taking C twice; erasing a
// leaves no link of D.
func TestReidentifyWithAnotherContactsCustomerID(t *testing.T) {
	allStores(t, fixedNow, func(t *testing.T, svc *profile.Service, st profile.Store) {
		ctx := context.Background()
		pol := policy()
		p1 := profile.NewID()
		_, err := svc.Record(ctx, p1, nil, []profile.Event{{Type: profile.Identify, Proven: true, Email: "a@example.nl", Customer: "D"}}, pol)
		require.NoError(t, err)
		p2, err := svc.Contact(ctx, "customer:C", pol)
		require.NoError(t, err)

		snap, err := svc.Record(ctx, p1, nil, []profile.Event{{Type: profile.Identify, Proven: true, Email: "a@example.nl", Customer: "C"}}, pol)
		require.NoError(t, err)
		assert.Equal(t, p2, snap.Primary.ID, "the visitor moves to C's profile")
		assert.Equal(t, []string{p2}, holders(t, svc, st, "", "C"))
		assert.Equal(t, []string{p1}, holders(t, svc, st, "a@example.nl", ""))
		assert.Equal(t, []string{p1}, holders(t, svc, st, "", "D"))
		for ref, want := range map[string]string{"email:a@example.nl": p1, "customer:D": p1, "customer:C": p2} {
			got, err := svc.Resolve(ctx, ref)
			require.NoError(t, err)
			assert.Equal(t, want, got, ref)
		}

		require.NoError(t, svc.Erase(ctx, "email:a@example.nl", pol))
		for _, ref := range []string{"email:a@example.nl", "customer:D"} {
			_, err := svc.Resolve(ctx, ref)
			assert.ErrorIs(t, err, profile.ErrNotFound, "%s erased with its profile", ref)
		}
		got, err := svc.Resolve(ctx, "customer:C")
		require.NoError(t, err)
		assert.Equal(t, p2, got, "the other contact stays")
	})
}

// TestLinksLiveAsLongAsTheirProfile: a link made at identify time lives on
// while its profile is written again, and a contact created for a
// server-side event takes the configured known-profile TTL, not a fixed one.
func TestLinksLiveAsLongAsTheirProfile(t *testing.T) {
	allStores(t, time.Now, func(t *testing.T, svc *profile.Service, st profile.Store) {
		ctx := context.Background()
		pol := policy()
		pol.KnownTTL = 2 * time.Second
		pid := profile.NewID()
		_, err := svc.Record(ctx, pid, nil, []profile.Event{{Type: profile.Identify, Proven: true, Email: "ttl@example.nl"}}, pol)
		require.NoError(t, err)
		time.Sleep(1200 * time.Millisecond)
		_, err = svc.Record(ctx, pid, nil, []profile.Event{{Type: profile.PageView, URL: "/again"}}, pol)
		require.NoError(t, err)
		time.Sleep(1200 * time.Millisecond)
		got, err := svc.Resolve(ctx, "email:ttl@example.nl")
		require.NoError(t, err, "the profile was written 1.2 s ago with a 2 s TTL: its link lives on")
		assert.Equal(t, pid, got)

		contact, err := svc.Contact(ctx, "customer:short", pol)
		require.NoError(t, err)
		require.Eventually(t, func() bool {
			_, err := svc.Resolve(ctx, "customer:short")
			return err != nil
		}, 5*time.Second, 50*time.Millisecond, "the contact's link ends with --known-profile-ttl")
		recs, err := st.Get(ctx, contact, nil)
		require.NoError(t, err)
		assert.Zero(t, recs[0].Version, "with its profile")
	})
}

func profiling(granted bool) profile.Event {
	return profile.Event{Type: profile.ConsentEvent, Purposes: map[string]bool{"profiling": granted}}
}

// TestConsentWithdrawnOnADeviceSurvivesTheMerge: an anonymous device that
// withdrew "profiling" and then identifies as a contact with history leaves
// the contact withdrawn and without behaviour.
func TestConsentWithdrawnOnADeviceSurvivesTheMerge(t *testing.T) {
	now := novNow
	var mu sync.Mutex
	clock := func() time.Time { mu.Lock(); defer mu.Unlock(); return now }
	tick := func() { mu.Lock(); now = now.Add(time.Minute); mu.Unlock() }
	allStores(t, clock, func(t *testing.T, svc *profile.Service, st profile.Store) {
		ctx := context.Background()
		pol := policy()
		contact, err := svc.Contact(ctx, "email:withdrawn@example.nl", pol)
		require.NoError(t, err)
		_, err = svc.Record(ctx, contact, nil, []profile.Event{profiling(true), {Type: profile.PageView, URL: "/history"}, {Type: profile.CartAdd, SKU: "toy", Gift: true}}, pol)
		require.NoError(t, err)
		tick()
		device := profile.NewID()
		_, err = svc.Record(ctx, device, nil, []profile.Event{{Type: profile.PageView, URL: "/device"}, profiling(false)}, pol)
		require.NoError(t, err)
		tick()
		snap, err := svc.Record(ctx, device, nil, []profile.Event{{Type: profile.Identify, Proven: true, Email: "withdrawn@example.nl"}}, pol)
		require.NoError(t, err)
		assert.Equal(t, contact, snap.Primary.ID)
		assert.False(t, snap.Primary.HasConsent("profiling"), "the newer withdrawal wins")
		assert.Empty(t, snap.Primary.Behaviour, "and deletes the contact's behaviour")
		assert.Empty(t, snap.Primary.Cart.Items)
		assert.Nil(t, snap.Seasonal[0])
		stored, err := svc.Load(ctx, contact, pol)
		require.NoError(t, err)
		assert.Empty(t, stored.Primary.Behaviour)
		recs, err := st.Get(ctx, contact, []string{"sinterklaas"})
		require.NoError(t, err)
		assert.Zero(t, recs[1].Version, "the seasonal record is deleted")
	})
}

// TestConsentWithdrawnInABatchStaysWithdrawn: [consent false, consent true,
// gift page view] keeps only the new page view; the withdrawn seasonal
// counters and cart lines do not come back.
func TestConsentWithdrawnInABatchStaysWithdrawn(t *testing.T) {
	stores(t, func(t *testing.T, svc *profile.Service, st profile.Store) {
		ctx := context.Background()
		pol := policy()
		pid := profile.NewID()
		_, err := svc.Record(ctx, pid, nil, []profile.Event{
			{Type: profile.PageView, URL: "/old-gift", Gift: true},
			{Type: profile.CartAdd, SKU: "old-toy", Gift: true},
			{Type: profile.CartAdd, SKU: "old-shoe"},
		}, pol)
		require.NoError(t, err)
		snap, err := svc.Record(ctx, pid, nil, []profile.Event{profiling(false), profiling(true), {Type: profile.PageView, URL: "/new-gift", Gift: true}}, pol)
		require.NoError(t, err)
		for _, s := range []*profile.Snapshot{snap, must(svc.Load(ctx, pid, pol))} {
			require.NotNil(t, s.Seasonal[0])
			assert.Zero(t, views(s.Seasonal[0], "/old-gift"), "withdrawn seasonal counters stay gone")
			assert.Empty(t, s.Seasonal[0].Cart.Items, "withdrawn seasonal cart lines stay gone")
			assert.Empty(t, s.Primary.Cart.Items)
			assert.Equal(t, uint32(1), views(s.Seasonal[0], "/new-gift"))
		}
	})
}

func must[T any](v T, err error) T {
	if err != nil {
		panic(err)
	}
	return v
}

// TestEraseRemovesMergedVisitors: erasing a contact removes the forwards of
// the visitors merged into it; their ids hold and point at nothing.
func TestEraseRemovesMergedVisitors(t *testing.T) {
	allStores(t, fixedNow, func(t *testing.T, svc *profile.Service, st profile.Store) {
		ctx := context.Background()
		pol := policy()
		contact, err := svc.Contact(ctx, "email:gone@example.nl", pol)
		require.NoError(t, err)
		var devices []string
		for range 3 {
			d := profile.NewID()
			devices = append(devices, d)
			_, err := svc.Record(ctx, d, nil, []profile.Event{{Type: profile.PageView, URL: "/x"}, {Type: profile.CartAdd, SKU: "toy", Gift: true}}, pol)
			require.NoError(t, err)
			_, err = svc.Record(ctx, d, nil, []profile.Event{{Type: profile.Identify, Proven: true, Email: "gone@example.nl", Customer: "77"}}, pol)
			require.NoError(t, err)
		}
		require.NoError(t, svc.Erase(ctx, "customer:77", pol))
		for _, pid := range append(devices, contact) {
			recs, err := st.Get(ctx, pid, []string{"sinterklaas"})
			require.NoError(t, err)
			assert.Zero(t, recs[0].Version, "%s erased", pid)
			assert.Zero(t, recs[1].Version, "%s: seasonal erased", pid)
		}
		for _, ref := range []string{"email:gone@example.nl", "customer:77"} {
			_, err := svc.Resolve(ctx, ref)
			assert.ErrorIs(t, err, profile.ErrNotFound)
		}
		pids, _, err := st.Scan(ctx, "", 100)
		require.NoError(t, err)
		assert.Empty(t, pids, "nothing of the person is left")
	})
}

// TestStaleSnapshotDoesNotDropEvents: a node whose cached snapshot still
// shows "profiling" withdrawn, after another node stored the grant again,
// stores the page view it acknowledges instead of deciding from the stale
// snapshot that there is nothing to write.
func TestStaleSnapshotDoesNotDropEvents(t *testing.T) {
	stores(t, func(t *testing.T, svc *profile.Service, st profile.Store) {
		ctx := context.Background()
		pol := policy()
		other := profile.NewService(st, profile.Options{Now: fixedNow})
		pid := profile.NewID()
		stale, err := svc.Record(ctx, pid, nil, []profile.Event{profiling(false)}, pol)
		require.NoError(t, err)
		_, err = other.Record(ctx, pid, nil, []profile.Event{profiling(true)}, pol)
		require.NoError(t, err)
		snap, err := svc.Record(ctx, pid, stale, []profile.Event{{Type: profile.PageView, URL: "/after-grant"}}, pol)
		require.NoError(t, err)
		assert.Equal(t, uint32(1), views(snap.Primary, "/after-grant"))
		stored, err := svc.Load(ctx, pid, pol)
		require.NoError(t, err)
		assert.Equal(t, uint32(1), views(stored.Primary, "/after-grant"), "the acknowledged page view is stored")
	})
}

// TestNewContactRacingEvents: server-side events for a new contact arriving
// at once (an e-mail platform's opens) make one profile that holds the
// address and every event; the link points at it.
func TestNewContactRacingEvents(t *testing.T) {
	stores(t, func(t *testing.T, svc *profile.Service, st profile.Store) {
		ctx := context.Background()
		pol := policy()
		for round := range 5 {
			addr := "opener" + string(rune('a'+round)) + "@example.nl"
			const n = 8
			var wg sync.WaitGroup
			for range n {
				wg.Add(1)
				go func() {
					defer wg.Done()
					pid, err := svc.Contact(ctx, "email:"+addr, pol)
					if !assert.NoError(t, err) {
						return
					}
					_, err = svc.Record(ctx, pid, nil, []profile.Event{{Type: profile.EmailOpen, Campaign: "c", Trusted: true}}, pol)
					assert.NoError(t, err)
				}()
			}
			wg.Wait()
			owner, err := svc.Resolve(ctx, "email:"+addr)
			require.NoError(t, err)
			assert.Equal(t, []string{owner}, holders(t, svc, st, addr, ""), "round %d: the linked profile holds the address", round)
			snap, err := svc.Load(ctx, owner, pol)
			require.NoError(t, err)
			var opens uint32
			for _, c := range snap.Primary.Behaviour {
				if c.Type == profile.EmailOpen {
					opens += c.Total
				}
			}
			assert.Equal(t, uint32(n), opens, "round %d: every open", round)
		}
	})
}

// TestEraseRemovesUnprovenClaims: an address typed into a form on some
// browser (an unproven identify, kept as a field) goes with the erasure of
// that address, as does the note that found it; the browser's own profile
// stays. An erasure that finds only claims still succeeds.
func TestEraseRemovesUnprovenClaims(t *testing.T) {
	stores(t, func(t *testing.T, svc *profile.Service, st profile.Store) {
		ctx := context.Background()
		pol := policy()
		contact, err := svc.Contact(ctx, "email:claimed@example.nl", pol)
		require.NoError(t, err)
		var browsers []string
		for range 3 {
			b := profile.NewID()
			browsers = append(browsers, b)
			_, err := svc.Record(ctx, b, nil, []profile.Event{{Type: profile.PageView, URL: "/mine"}, {Type: profile.Identify, Email: "claimed@example.nl", Customer: "9"}}, pol)
			require.NoError(t, err)
		}
		// One claimant merges into its own proven contact: the claim travels.
		_, err = svc.Record(ctx, browsers[2], nil, []profile.Event{{Type: profile.Identify, Proven: true, Email: "owner@example.nl"}}, pol)
		require.NoError(t, err)
		owner, err := svc.Resolve(ctx, "email:owner@example.nl")
		require.NoError(t, err)

		require.NoError(t, svc.Erase(ctx, "email:claimed@example.nl", pol))
		for _, pid := range append(browsers[:2], owner) {
			snap, err := svc.Load(ctx, pid, pol)
			require.NoError(t, err)
			_, has := snap.Primary.Fields["email"]
			assert.False(t, has, "%s: the claimed address is gone", pid)
			assert.Equal(t, "9", snap.Primary.Fields["customer_id"].Value.Str, "%s: a claim of another identifier stays", pid)
			assert.Equal(t, uint32(1), views(snap.Primary, "/mine"), "%s: the browser's own profile stays", pid)
		}
		recs, err := st.Get(ctx, contact, nil)
		require.NoError(t, err)
		assert.Zero(t, recs[0].Version, "the contact is erased")
		got, err := st.Claimants(ctx, must(profile.LinkKey("email:claimed@example.nl")))
		require.NoError(t, err)
		assert.Empty(t, got, "no note of the address is left")

		require.NoError(t, svc.Erase(ctx, "customer:9", pol), "claims alone are something to erase")
		assert.ErrorIs(t, svc.Erase(ctx, "customer:9", pol), profile.ErrNotFound)
	})
}
