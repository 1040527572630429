package storetest

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/etalage/etalage/profile"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// runTrigger tests what webhook delivery relies on: the trigger record lives
// and dies with its profile, the schedule hands each due profile to one
// claimer at a time, and the counts are shared.
func runTrigger(t *testing.T, open func(t *testing.T) profile.Store) {
	ctx := context.Background()
	t0 := time.Date(2026, 11, 24, 12, 0, 0, 0, time.UTC)
	trig := func(t *testing.T) (profile.Store, profile.TriggerStore) {
		st := open(t)
		ts, ok := st.(profile.TriggerStore)
		require.True(t, ok, "%T does not implement profile.TriggerStore", st)
		return st, ts
	}

	t.Run("TriggerRecordLivesWithProfile", func(t *testing.T) {
		st, _ := trig(t)
		pid := profile.NewID()
		require.NoError(t, st.Put(ctx, pid, []profile.Write{
			{Expect: 0, Version: 1, Data: []byte("p"), TTL: time.Hour},
			{Season: profile.TriggerRecord, Expect: 0, Version: 1, Data: []byte("outbox"), TTL: time.Hour},
		}))
		recs, err := st.Get(ctx, pid, []string{"sint", profile.TriggerRecord})
		require.NoError(t, err)
		assert.Equal(t, profile.Record{Data: []byte("outbox"), Version: 1}, recs[2])
		err = st.Put(ctx, pid, []profile.Write{{Expect: 1, Version: 2, Data: []byte("p2")}, {Season: profile.TriggerRecord, Expect: 0, Version: 2, Data: []byte("stale")}})
		require.ErrorIs(t, err, profile.ErrConflict, "the trigger record takes part in the compare-and-set")
		require.NoError(t, st.Delete(ctx, pid))
		recs, err = st.Get(ctx, pid, []string{profile.TriggerRecord})
		require.NoError(t, err)
		assert.Zero(t, recs[1].Version, "erasure removes the trigger record")
	})

	t.Run("ScheduleClaimRelease", func(t *testing.T) {
		_, ts := trig(t)
		a, b, c := profile.NewID(), profile.NewID(), profile.NewID()
		require.NoError(t, ts.ScheduleAt(ctx, a, t0.Add(time.Minute)))
		require.NoError(t, ts.ScheduleAt(ctx, a, t0.Add(time.Hour)), "a later time does not postpone")
		require.NoError(t, ts.ScheduleAt(ctx, b, t0.Add(2*time.Minute)))
		require.NoError(t, ts.ScheduleAt(ctx, c, t0.Add(time.Hour)))
		got, err := ts.ClaimDue(ctx, t0, time.Minute, 10)
		require.NoError(t, err)
		assert.Empty(t, got, "nothing is due yet")
		got, err = ts.ClaimDue(ctx, t0.Add(2*time.Minute), time.Minute, 10)
		require.NoError(t, err)
		require.Len(t, got, 2)
		assert.Equal(t, a, got[0].PID, "earliest first")
		assert.Equal(t, b, got[1].PID)
		again, err := ts.ClaimDue(ctx, t0.Add(2*time.Minute), time.Minute, 10)
		require.NoError(t, err)
		assert.Empty(t, again, "a claimed profile is not handed out twice")
		// Scheduled again while claimed: it waits for the release.
		require.NoError(t, ts.ScheduleAt(ctx, a, t0))
		again, err = ts.ClaimDue(ctx, t0.Add(2*time.Minute), time.Minute, 10)
		require.NoError(t, err)
		assert.Empty(t, again)
		require.NoError(t, ts.Release(ctx, got[0], t0.Add(30*time.Minute)))
		require.NoError(t, ts.Release(ctx, got[1], time.Time{}))
		again, err = ts.ClaimDue(ctx, t0.Add(3*time.Minute), time.Minute, 10)
		require.NoError(t, err)
		require.Len(t, again, 1, "the schedule made during the claim wins over the later next")
		assert.Equal(t, a, again[0].PID)
		require.NoError(t, ts.Release(ctx, again[0], time.Time{}))
		again, err = ts.ClaimDue(ctx, t0.Add(2*time.Hour), time.Minute, 10)
		require.NoError(t, err)
		require.Len(t, again, 1, "b was released without a next time; only c is left")
		assert.Equal(t, c, again[0].PID)
	})

	t.Run("LeaseExpires", func(t *testing.T) {
		_, ts := trig(t)
		pid := profile.NewID()
		require.NoError(t, ts.ScheduleAt(ctx, pid, t0))
		first, err := ts.ClaimDue(ctx, t0, time.Minute, 1)
		require.NoError(t, err)
		require.Len(t, first, 1)
		got, err := ts.ClaimDue(ctx, t0.Add(59*time.Second), time.Minute, 1)
		require.NoError(t, err)
		assert.Empty(t, got)
		second, err := ts.ClaimDue(ctx, t0.Add(61*time.Second), time.Minute, 1)
		require.NoError(t, err)
		require.Len(t, second, 1, "a claimer that died gives the profile back when its lease ends")
		// The first claimer's late release neither ends the second's lease
		// nor loses its next time.
		require.NoError(t, ts.Release(ctx, first[0], t0.Add(time.Hour)))
		got, err = ts.ClaimDue(ctx, t0.Add(62*time.Second), time.Minute, 1)
		require.NoError(t, err)
		assert.Empty(t, got)
		require.NoError(t, ts.Release(ctx, second[0], time.Time{}))
		got, err = ts.ClaimDue(ctx, t0.Add(time.Hour), time.Minute, 1)
		require.NoError(t, err)
		assert.Len(t, got, 1)
	})

	t.Run("ClaimIsExclusive", func(t *testing.T) {
		_, ts := trig(t)
		const n = 200
		for range n {
			require.NoError(t, ts.ScheduleAt(ctx, profile.NewID(), t0))
		}
		var mu sync.Mutex
		seen := map[string]int{}
		var wg sync.WaitGroup
		for range 6 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for {
					got, err := ts.ClaimDue(ctx, t0.Add(time.Second), time.Hour, 7)
					if !assert.NoError(t, err) || len(got) == 0 {
						return
					}
					mu.Lock()
					for _, c := range got {
						seen[c.PID]++
					}
					mu.Unlock()
				}
			}()
		}
		wg.Wait()
		assert.Len(t, seen, n)
		for pid, k := range seen {
			assert.Equal(t, 1, k, "%s claimed %d times", pid, k)
		}
	})

	t.Run("PendingAndCounts", func(t *testing.T) {
		_, ts := trig(t)
		a, b := profile.NewID(), profile.NewID()
		got, err := ts.TriggerCounts(ctx, "mailer")
		require.NoError(t, err)
		assert.Equal(t, profile.TriggerCounts{}, got)
		require.NoError(t, ts.SetPending(ctx, "mailer", a, t0.Add(time.Minute)))
		require.NoError(t, ts.SetPending(ctx, "mailer", b, t0))
		require.NoError(t, ts.SetPending(ctx, "mailer", b, t0.Add(2*time.Minute)))
		require.NoError(t, ts.SetPending(ctx, "crm", a, t0))
		require.NoError(t, ts.CountTrigger(ctx, "mailer", "delivered", 3))
		require.NoError(t, ts.CountTrigger(ctx, "mailer", "delivered", 2))
		require.NoError(t, ts.CountTrigger(ctx, "mailer", "retries", 4))
		require.NoError(t, ts.CountTrigger(ctx, "mailer", "failed", 1))
		require.NoError(t, ts.TriggerError(ctx, "mailer", "HTTP 500", t0))
		got, err = ts.TriggerCounts(ctx, "mailer")
		require.NoError(t, err)
		assert.Equal(t, int64(2), got.Pending)
		assert.Equal(t, t0.Add(time.Minute).UnixMilli(), got.Oldest.UnixMilli(), "b's pending time was replaced")
		assert.Equal(t, int64(5), got.Delivered)
		assert.Equal(t, int64(1), got.Failed)
		assert.Equal(t, int64(4), got.Retries)
		assert.Equal(t, "HTTP 500", got.LastError)
		assert.Equal(t, t0.UnixMilli(), got.LastAt.UnixMilli())
		require.NoError(t, ts.SetPending(ctx, "mailer", a, time.Time{}))
		require.NoError(t, ts.SetPending(ctx, "mailer", b, time.Time{}))
		got, err = ts.TriggerCounts(ctx, "mailer")
		require.NoError(t, err)
		assert.Zero(t, got.Pending)
		assert.True(t, got.Oldest.IsZero())
		crm, err := ts.TriggerCounts(ctx, "crm")
		require.NoError(t, err)
		assert.Equal(t, int64(1), crm.Pending, "webhooks are counted apart")
	})
}
