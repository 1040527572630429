// Package storetest is the conformance suite of profile.Store: every
// adapter runs the same tests (embedded store, single Redis, Redis Cluster).
// It imports profile and testify only.
package storetest

import (
	"context"
	"encoding/binary"
	"errors"

	"sort"
	"sync"
	"testing"
	"time"

	"github.com/etalage/etalage/profile"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// Run runs the suite; open returns an empty store for each subtest.
func Run(t *testing.T, open func(t *testing.T) profile.Store) {
	ctx := context.Background()
	pid := profile.NewID()

	t.Run("GetAbsent", func(t *testing.T) {
		st := open(t)
		recs, err := st.Get(ctx, pid, []string{"a", "b"})
		require.NoError(t, err)
		require.Len(t, recs, 3)
		for _, r := range recs {
			assert.Zero(t, r.Version)
			assert.Nil(t, r.Data)
		}
	})

	t.Run("PutGet", func(t *testing.T) {
		st := open(t)
		require.NoError(t, st.Put(ctx, pid, []profile.Write{
			{Expect: 0, Version: 7, Data: []byte("primary"), TTL: time.Hour},
			{Season: "sint", Expect: 0, Version: 3, Data: []byte("seasonal"), TTL: time.Hour},
		}))
		recs, err := st.Get(ctx, pid, []string{"sint", "easter"})
		require.NoError(t, err)
		assert.Equal(t, []profile.Record{{Data: []byte("primary"), Version: 7}, {Data: []byte("seasonal"), Version: 3}, {}}, recs)
		other, err := st.Get(ctx, profile.NewID(), nil)
		require.NoError(t, err)
		assert.Zero(t, other[0].Version, "profiles do not share records")
	})

	t.Run("ConflictIsAtomic", func(t *testing.T) {
		st := open(t)
		require.NoError(t, st.Put(ctx, pid, []profile.Write{{Expect: 0, Version: 1, Data: []byte("v1")}}))
		err := st.Put(ctx, pid, []profile.Write{
			{Season: "sint", Expect: 0, Version: 1, Data: []byte("s1")},
			{Expect: 5, Version: 6, Data: []byte("stale")},
		})
		require.ErrorIs(t, err, profile.ErrConflict)
		recs, err := st.Get(ctx, pid, []string{"sint"})
		require.NoError(t, err)
		assert.Equal(t, []profile.Record{{Data: []byte("v1"), Version: 1}, {}}, recs, "a conflicting batch writes nothing")
		require.ErrorIs(t, st.Put(ctx, pid, []profile.Write{{Expect: 0, Version: 9, Data: []byte("x")}}), profile.ErrConflict, "expect 0 means absent")
	})

	t.Run("DeleteRecordByNilData", func(t *testing.T) {
		st := open(t)
		require.NoError(t, st.Put(ctx, pid, []profile.Write{{Expect: 0, Version: 1, Data: []byte("p")}, {Season: "s", Expect: 0, Version: 1, Data: []byte("s")}}))
		require.NoError(t, st.Put(ctx, pid, []profile.Write{{Season: "s", Expect: 1, Version: 2, Data: nil}}))
		recs, err := st.Get(ctx, pid, []string{"s"})
		require.NoError(t, err)
		assert.Equal(t, uint64(1), recs[0].Version)
		assert.Zero(t, recs[1].Version)
	})

	t.Run("DeleteRemovesEverything", func(t *testing.T) {
		st := open(t)
		keep := profile.NewID()
		require.NoError(t, st.Put(ctx, pid, []profile.Write{{Expect: 0, Version: 1, Data: []byte("p")}, {Season: "a", Expect: 0, Version: 1, Data: []byte("a")}, {Season: "b", Expect: 0, Version: 1, Data: []byte("b")}}))
		require.NoError(t, st.Put(ctx, keep, []profile.Write{{Expect: 0, Version: 1, Data: []byte("k")}}))
		require.NoError(t, st.Delete(ctx, pid))
		recs, err := st.Get(ctx, pid, []string{"a", "b"})
		require.NoError(t, err)
		for _, r := range recs {
			assert.Zero(t, r.Version)
		}
		recs, err = st.Get(ctx, keep, nil)
		require.NoError(t, err)
		assert.Equal(t, uint64(1), recs[0].Version, "other profiles stay")
		require.NoError(t, st.Delete(ctx, profile.NewID()), "deleting an absent profile is fine")
	})

	t.Run("TTL", func(t *testing.T) {
		st := open(t)
		require.NoError(t, st.Put(ctx, pid, []profile.Write{{Expect: 0, Version: 1, Data: []byte("p"), TTL: 1100 * time.Millisecond}}))
		_, err := st.Link(ctx, "email:ttl", pid, 1100*time.Millisecond)
		require.NoError(t, err)
		require.Eventually(t, func() bool {
			recs, err := st.Get(ctx, pid, nil)
			_, lerr := st.Lookup(ctx, "email:ttl")
			return err == nil && recs[0].Version == 0 && errors.Is(lerr, profile.ErrNotFound)
		}, 10*time.Second, 100*time.Millisecond)
		require.NoError(t, st.Put(ctx, pid, []profile.Write{{Expect: 0, Version: 2, Data: []byte("again")}}), "an expired record is absent")
	})

	t.Run("Links", func(t *testing.T) {
		st := open(t)
		other := profile.NewID()
		_, err := st.Lookup(ctx, "email:x")
		require.ErrorIs(t, err, profile.ErrNotFound)
		got, err := st.Link(ctx, "email:x", pid, time.Hour)
		require.NoError(t, err)
		assert.Equal(t, pid, got)
		got, err = st.Link(ctx, "email:x", other, time.Hour)
		require.NoError(t, err)
		assert.Equal(t, pid, got, "a link is never overwritten")
		got, err = st.Lookup(ctx, "email:x")
		require.NoError(t, err)
		assert.Equal(t, pid, got)
		require.NoError(t, st.Unlink(ctx, "email:x", other))
		got, err = st.Lookup(ctx, "email:x")
		require.NoError(t, err)
		assert.Equal(t, pid, got, "unlink leaves a link to another profile")
		require.NoError(t, st.Unlink(ctx, "email:x", pid))
		_, err = st.Lookup(ctx, "email:x")
		require.ErrorIs(t, err, profile.ErrNotFound)
	})

	t.Run("OneIdentifierOneProfile", func(t *testing.T) {
		st := open(t)
		const n = 8
		got := make([]string, n)
		var wg sync.WaitGroup
		for i := range n {
			wg.Add(1)
			go func() {
				defer wg.Done()
				p, err := st.Link(ctx, "email:race", profile.NewID(), time.Hour)
				assert.NoError(t, err)
				got[i] = p
			}()
		}
		wg.Wait()
		for i := range got {
			assert.Equal(t, got[0], got[i], "every racing Link answers the one winner")
		}
		owner, err := st.Lookup(ctx, "email:race")
		require.NoError(t, err)
		assert.Equal(t, got[0], owner)
	})

	t.Run("LinksLiveAsLongAsTheirRecord", func(t *testing.T) {
		st := open(t)
		other := profile.NewID()
		for _, l := range []string{"email:mine", "customer:mine"} {
			_, err := st.Link(ctx, l, pid, 500*time.Millisecond)
			require.NoError(t, err)
		}
		_, err := st.Link(ctx, "email:theirs", other, time.Hour)
		require.NoError(t, err)
		links := []string{"email:mine", "customer:mine", "email:theirs", "email:absent"}
		require.NoError(t, st.Put(ctx, pid, []profile.Write{{Expect: 0, Version: 1, Data: []byte("p"), TTL: 1500 * time.Millisecond, Links: links}}))
		got, err := st.Link(ctx, "email:mine", pid, time.Hour)
		require.NoError(t, err)
		assert.Equal(t, pid, got, "linking again keeps the link and its expiry")
		// The links end with the record, in the same millisecond: a link
		// seen after the record was read implies the record was there, and
		// the record seen after a link was read implies the link was.
		deadline := time.Now().Add(10 * time.Second)
		for {
			recs, err := st.Get(ctx, pid, nil)
			require.NoError(t, err)
			_, lerr := st.Lookup(ctx, "customer:mine")
			recs2, err := st.Get(ctx, pid, nil)
			require.NoError(t, err)
			if lerr == nil {
				require.NotZero(t, recs[0].Version, "a link outlived its record")
			} else {
				require.ErrorIs(t, lerr, profile.ErrNotFound)
				require.Zero(t, recs2[0].Version, "a link ended before its record")
			}
			if recs[0].Version == 0 {
				break
			}
			require.True(t, time.Now().Before(deadline), "the record does not expire")
			time.Sleep(20 * time.Millisecond)
		}
		_, err = st.Lookup(ctx, "email:mine")
		assert.ErrorIs(t, err, profile.ErrNotFound)
		owner, err := st.Lookup(ctx, "email:theirs")
		require.NoError(t, err)
		assert.Equal(t, other, owner, "a link to another profile keeps its own expiry")
		_, err = st.Lookup(ctx, "email:absent")
		assert.ErrorIs(t, err, profile.ErrNotFound, "an absent link is not created")

		// Every write of the record carries its links along: a link made
		// with a short TTL lives on while its record is written again.
		_, err = st.Link(ctx, "email:renewed", pid, 1200*time.Millisecond)
		require.NoError(t, err)
		require.NoError(t, st.Put(ctx, pid, []profile.Write{{Expect: 0, Version: 2, Data: []byte("p"), TTL: time.Hour, Links: []string{"email:renewed"}}}))
		time.Sleep(1500 * time.Millisecond)
		owner, err = st.Lookup(ctx, "email:renewed")
		require.NoError(t, err, "the link took the record's hour")
		assert.Equal(t, pid, owner)
	})

	t.Run("LinksFollowAShorterTTL", func(t *testing.T) {
		// A lowered TTL (--known-profile-ttl) reaches the links with the
		// next write of their record: they end with it, not later.
		st := open(t)
		links := []string{"email:shorter", "customer:shorter"}
		for _, l := range links {
			_, err := st.Link(ctx, l, pid, time.Minute)
			require.NoError(t, err)
		}
		require.NoError(t, st.Put(ctx, pid, []profile.Write{{Expect: 0, Version: 1, Data: []byte("p"), TTL: time.Hour, Links: links}}))
		require.NoError(t, st.Put(ctx, pid, []profile.Write{{Expect: 1, Version: 2, Data: []byte("p"), TTL: 1200 * time.Millisecond, Links: links}}))
		require.Eventually(t, func() bool {
			recs, err := st.Get(ctx, pid, nil)
			return err == nil && recs[0].Version == 0
		}, 10*time.Second, 20*time.Millisecond, "the record expires")
		for _, l := range links {
			_, err := st.Lookup(ctx, l)
			assert.ErrorIs(t, err, profile.ErrNotFound, "%s ended with its record", l)
		}
	})

	t.Run("Claimants", func(t *testing.T) {
		st := open(t)
		a, b := profile.NewID(), profile.NewID()
		got, err := st.Claimants(ctx, "email:claimed")
		require.NoError(t, err)
		assert.Empty(t, got)
		require.NoError(t, st.AddClaimant(ctx, "email:claimed", a, time.Hour))
		require.NoError(t, st.AddClaimant(ctx, "email:claimed", b, time.Hour))
		require.NoError(t, st.AddClaimant(ctx, "email:claimed", b, time.Hour))
		require.NoError(t, st.AddClaimant(ctx, "email:other", a, time.Hour))
		got, err = st.Claimants(ctx, "email:claimed")
		require.NoError(t, err)
		assert.ElementsMatch(t, []string{a, b}, got, "each claimant once")
		require.NoError(t, st.DropClaimant(ctx, "email:claimed", a))
		got, err = st.Claimants(ctx, "email:claimed")
		require.NoError(t, err)
		assert.Equal(t, []string{b}, got)
		require.NoError(t, st.DropClaimant(ctx, "email:claimed", ""))
		got, err = st.Claimants(ctx, "email:claimed")
		require.NoError(t, err)
		assert.Empty(t, got, "every note of the identifier forgotten")
		got, err = st.Claimants(ctx, "email:other")
		require.NoError(t, err)
		assert.Equal(t, []string{a}, got, "other identifiers' notes stay")

		require.NoError(t, st.AddClaimant(ctx, "email:brief", a, 1100*time.Millisecond))
		require.Eventually(t, func() bool {
			got, err := st.Claimants(ctx, "email:brief")
			return err == nil && len(got) == 0
		}, 10*time.Second, 100*time.Millisecond, "notes expire")
	})

	t.Run("Scan", func(t *testing.T) {
		st := open(t)
		want := make([]string, 0, 230)
		for range 230 {
			p := profile.NewID()
			want = append(want, p)
			require.NoError(t, st.Put(ctx, p, []profile.Write{{Expect: 0, Version: 1, Data: []byte("p"), TTL: time.Hour}, {Season: "s", Expect: 0, Version: 1, Data: []byte("s"), TTL: time.Hour}}))
		}
		_, err := st.Link(ctx, "customer:1", want[0], time.Hour)
		require.NoError(t, err)
		seen := map[string]bool{}
		cursor := ""
		for pages := 0; ; pages++ {
			require.Less(t, pages, 1000, "scan does not end")
			pids, next, err := st.Scan(ctx, cursor, 50)
			require.NoError(t, err)
			assert.LessOrEqual(t, len(pids), 100)
			for _, p := range pids {
				seen[p] = true
			}
			if next == "" {
				break
			}
			cursor = next
		}
		got := make([]string, 0, len(seen))
		for p := range seen {
			got = append(got, p)
		}
		sort.Strings(got)
		sort.Strings(want)
		assert.Equal(t, want, got, "every profile once, no seasonal records or links")
	})

	t.Run("Definitions", func(t *testing.T) {
		st := open(t)
		_, _, err := st.Definitions(ctx)
		require.ErrorIs(t, err, profile.ErrNotFound)
		rev, err := st.Revision(ctx)
		require.NoError(t, err)
		assert.Zero(t, rev)
		put := func(doc string) int64 {
			t.Helper()
			rev, created, err := st.PutDefinitions(ctx, profile.DefinitionsPut{Doc: []byte(doc), Expect: profile.AnyRevision, Time: time.Now()})
			require.NoError(t, err)
			assert.True(t, created)
			return rev
		}
		assert.Equal(t, int64(1), put("one"))
		assert.Equal(t, int64(2), put("two"))
		doc, rev, err := st.Definitions(ctx)
		require.NoError(t, err)
		assert.Equal(t, "two", string(doc))
		assert.Equal(t, int64(2), rev)
		rev, err = st.Revision(ctx)
		require.NoError(t, err)
		assert.Equal(t, int64(2), rev)
	})

	t.Run("DefinitionsUnchangedIsNoRevision", func(t *testing.T) {
		st := open(t)
		rev, created, err := st.PutDefinitions(ctx, profile.DefinitionsPut{Doc: []byte("same"), Expect: profile.AnyRevision})
		require.NoError(t, err)
		require.True(t, created)
		again, created, err := st.PutDefinitions(ctx, profile.DefinitionsPut{Doc: []byte("same"), Expect: rev, Note: "again"})
		require.NoError(t, err)
		assert.False(t, created, "the same document is no new revision")
		assert.Equal(t, rev, again)
		list, err := st.DefinitionsRevisions(ctx, 0, 10)
		require.NoError(t, err)
		assert.Len(t, list, 1)
	})

	t.Run("DefinitionsExpect", func(t *testing.T) {
		st := open(t)
		_, _, err := st.PutDefinitions(ctx, profile.DefinitionsPut{Doc: []byte("a"), Expect: 3})
		require.ErrorIs(t, err, profile.ErrConflict, "revision 3 is not current: none is")
		r1, _, err := st.PutDefinitions(ctx, profile.DefinitionsPut{Doc: []byte("a"), Expect: 0})
		require.NoError(t, err, "0 expects an empty store")
		_, _, err = st.PutDefinitions(ctx, profile.DefinitionsPut{Doc: []byte("b"), Expect: 0})
		require.ErrorIs(t, err, profile.ErrConflict)
		r2, created, err := st.PutDefinitions(ctx, profile.DefinitionsPut{Doc: []byte("b"), Expect: r1})
		require.NoError(t, err)
		assert.True(t, created)
		_, _, err = st.PutDefinitions(ctx, profile.DefinitionsPut{Doc: []byte("c"), Expect: r1})
		require.ErrorIs(t, err, profile.ErrConflict, "someone applied in between")
		doc, rev, err := st.Definitions(ctx)
		require.NoError(t, err)
		assert.Equal(t, "b", string(doc), "a refused put stores nothing")
		assert.Equal(t, r2, rev)
	})

	t.Run("DefinitionsConcurrentExpect", func(t *testing.T) {
		st := open(t)
		base, _, err := st.PutDefinitions(ctx, profile.DefinitionsPut{Doc: []byte("base"), Expect: profile.AnyRevision})
		require.NoError(t, err)
		var wg sync.WaitGroup
		var mu sync.Mutex
		won := 0
		for i := range 8 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				_, _, err := st.PutDefinitions(ctx, profile.DefinitionsPut{Doc: []byte{byte('a' + i)}, Expect: base})
				if err == nil {
					mu.Lock()
					won++
					mu.Unlock()
					return
				}
				assert.ErrorIs(t, err, profile.ErrConflict)
			}()
		}
		wg.Wait()
		assert.Equal(t, 1, won, "exactly one of the writers expecting the same revision wins")
	})

	t.Run("DefinitionsRevisions", func(t *testing.T) {
		st := open(t)
		t0 := time.Date(2026, 11, 20, 10, 0, 0, 0, time.UTC)
		for i := range 5 {
			_, _, err := st.PutDefinitions(ctx, profile.DefinitionsPut{Doc: []byte{byte('a' + i)}, Expect: int64(i), Time: t0.Add(time.Duration(i) * time.Hour), Note: "change " + string(rune('a'+i))})
			require.NoError(t, err)
		}
		list, err := st.DefinitionsRevisions(ctx, 0, 3)
		require.NoError(t, err)
		require.Len(t, list, 3)
		assert.Equal(t, []int64{5, 4, 3}, []int64{list[0].Rev, list[1].Rev, list[2].Rev}, "newest first")
		assert.Equal(t, "change e", list[0].Note)
		assert.True(t, t0.Add(4*time.Hour).Equal(list[0].Time), "time kept: %v", list[0].Time)
		assert.Nil(t, list[0].Doc, "a list carries no documents")
		older, err := st.DefinitionsRevisions(ctx, 3, 10)
		require.NoError(t, err)
		require.Len(t, older, 2)
		assert.Equal(t, []int64{2, 1}, []int64{older[0].Rev, older[1].Rev})
		r, err := st.DefinitionsRevision(ctx, 2)
		require.NoError(t, err)
		assert.Equal(t, "b", string(r.Doc))
		assert.Equal(t, "change b", r.Note)
		_, err = st.DefinitionsRevision(ctx, 9)
		require.ErrorIs(t, err, profile.ErrNotFound)
	})

	t.Run("DefinitionsFile", func(t *testing.T) {
		st := open(t)
		_, err := st.FileRevision(ctx, "sha256:aa")
		require.ErrorIs(t, err, profile.ErrNotFound)
		r1, _, err := st.PutDefinitions(ctx, profile.DefinitionsPut{Doc: []byte("v1"), Expect: profile.AnyRevision, File: "sha256:aa"})
		require.NoError(t, err)
		_, _, err = st.PutDefinitions(ctx, profile.DefinitionsPut{Doc: []byte("v2"), Expect: profile.AnyRevision, File: "sha256:bb"})
		require.NoError(t, err)
		got, err := st.FileRevision(ctx, "sha256:aa")
		require.NoError(t, err)
		assert.Equal(t, r1, got, "every file applied at a start is remembered, not only the last")
		// A file equal to the running document is remembered without a revision.
		r3, created, err := st.PutDefinitions(ctx, profile.DefinitionsPut{Doc: []byte("v2"), Expect: profile.AnyRevision, File: "sha256:cc"})
		require.NoError(t, err)
		assert.False(t, created)
		got, err = st.FileRevision(ctx, "sha256:cc")
		require.NoError(t, err)
		assert.Equal(t, r3, got)
	})

	t.Run("SampleSmallIsExact", func(t *testing.T) {
		st := open(t)
		smp, err := st.Sample(ctx, 100)
		require.NoError(t, err)
		assert.True(t, smp.Exact)
		assert.Empty(t, smp.PIDs)
		want := map[string]bool{}
		for range 40 {
			p := profile.NewID()
			want[p] = true
			require.NoError(t, st.Put(ctx, p, []profile.Write{{Expect: 0, Version: 1, Data: []byte("p"), TTL: time.Hour}, {Season: "s", Expect: 0, Version: 1, Data: []byte("s"), TTL: time.Hour}}))
		}
		smp, err = st.Sample(ctx, 100)
		require.NoError(t, err)
		assert.True(t, smp.Exact)
		assert.Equal(t, 40.0, smp.Population)
		got := map[string]bool{}
		for _, p := range smp.PIDs {
			got[p] = true
		}
		assert.Equal(t, want, got, "every profile once, no seasonal records")
	})

	t.Run("SampleIsUniform", func(t *testing.T) {
		st := open(t)
		const total = 3000
		marked := map[string]bool{}
		for i := range total {
			p := profile.NewID()
			if i%3 == 0 {
				marked[p] = true
			}
			require.NoError(t, st.Put(ctx, p, []profile.Write{{Expect: 0, Version: 1, Data: []byte("p"), TTL: time.Hour}, {Season: "s", Expect: 0, Version: 1, Data: []byte("s"), TTL: time.Hour}}))
			if i%10 == 0 {
				_, err := st.Link(ctx, "email:"+p, p, time.Hour)
				require.NoError(t, err)
			}
		}
		smp, err := st.Sample(ctx, 400)
		require.NoError(t, err)
		require.False(t, smp.Exact)
		require.GreaterOrEqual(t, len(smp.PIDs), 300)
		in := 0
		for _, p := range smp.PIDs {
			if marked[p] {
				in++
			}
		}
		share := float64(in) / float64(len(smp.PIDs))
		// Binomial: the standard error of a share of 1/3 in 400 draws is
		// 0.024; five of them make a false alarm about one in a million.
		assert.InDelta(t, 1.0/3, share, 0.12, "a uniform sample holds a third of marked profiles")
		assert.InDelta(t, total, smp.Population, total*0.25, "population estimate")
		assert.Positive(t, smp.RelErr)
	})

	t.Run("ConcurrentCAS", func(t *testing.T) {
		st := open(t)
		const workers, each = 8, 25
		var wg sync.WaitGroup
		for range workers {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for range each {
					for {
						recs, err := st.Get(ctx, pid, nil)
						if !assert.NoError(t, err) {
							return
						}
						n := uint64(0)
						if recs[0].Version != 0 {
							n = binary.BigEndian.Uint64(recs[0].Data)
						}
						data := binary.BigEndian.AppendUint64(nil, n+1)
						err = st.Put(ctx, pid, []profile.Write{{Expect: recs[0].Version, Version: recs[0].Version + 1, Data: data}})
						if errors.Is(err, profile.ErrConflict) {
							continue
						}
						if !assert.NoError(t, err) {
							return
						}
						break
					}
				}
			}()
		}
		wg.Wait()
		recs, err := st.Get(ctx, pid, nil)
		require.NoError(t, err)
		assert.Equal(t, uint64(workers*each), binary.BigEndian.Uint64(recs[0].Data), "no increment lost")
	})

	t.Run("TalliesWithPut", func(t *testing.T) {
		st := open(t)
		got, err := st.Tallies(ctx, "x:none")
		require.NoError(t, err)
		assert.Empty(t, got)
		a, b := profile.NewID(), profile.NewID()
		require.NoError(t, st.Put(ctx, a, []profile.Write{{Expect: 0, Version: 1, Data: []byte("a"),
			Tallies: []profile.Tally{{Name: "x:e", Field: "v:control", Delta: 1}, {Name: "x:f", Field: "v:b", Delta: 1}}}}))
		require.NoError(t, st.Put(ctx, b, []profile.Write{{Expect: 0, Version: 1, Data: []byte("b"),
			Tallies: []profile.Tally{{Name: "x:e", Field: "v:control", Delta: 1}, {Name: "x:e", Field: "c:control", Delta: 1}}}}))
		err = st.Put(ctx, b, []profile.Write{{Expect: 9, Version: 10, Data: []byte("stale"),
			Tallies: []profile.Tally{{Name: "x:e", Field: "v:control", Delta: 1}}}})
		require.ErrorIs(t, err, profile.ErrConflict)
		got, err = st.Tallies(ctx, "x:e")
		require.NoError(t, err)
		assert.Equal(t, map[string]int64{"v:control": 2, "c:control": 1}, got, "a conflicting put counts nothing")
		got, err = st.Tallies(ctx, "x:f")
		require.NoError(t, err)
		assert.Equal(t, map[string]int64{"v:b": 1}, got)
	})

	t.Run("TalliesConcurrent", func(t *testing.T) {
		st := open(t)
		const workers, each = 8, 25
		var wg sync.WaitGroup
		for range workers {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for range each {
					err := st.Put(ctx, profile.NewID(), []profile.Write{{Expect: 0, Version: 1, Data: []byte("p"),
						Tallies: []profile.Tally{{Name: "x:conc", Field: "v:a", Delta: 1}}}})
					assert.NoError(t, err)
				}
			}()
		}
		wg.Wait()
		got, err := st.Tallies(ctx, "x:conc")
		require.NoError(t, err)
		assert.Equal(t, int64(workers*each), got["v:a"], "spread over many profiles (and hash slots), no count lost")
	})

	t.Run("Ping", func(t *testing.T) {
		require.NoError(t, open(t).Ping(ctx))
	})

	runTrigger(t, open)
	runReport(t, open)
	runKeys(t, open)
}
