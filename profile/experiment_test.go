package profile_test

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/etalage/etalage/profile"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// purchaseGoal converts experiment "hero" on a purchase within a day and
// the holdout on any purchase.
type purchaseGoal struct{}

func (purchaseGoal) Goal(id string, ev *profile.Event) (time.Duration, bool) {
	switch id {
	case "hero":
		return 24 * time.Hour, ev.Type == profile.Purchase
	case profile.HoldoutID:
		return 0, ev.Type == profile.Purchase
	}
	return 0, false
}

func goalPolicy() *profile.Policy {
	p := policy()
	p.Goals = purchaseGoal{}
	return p
}

func tallies(t *testing.T, svc *profile.Service, id string) map[string]int64 {
	t.Helper()
	got, err := svc.Tallies(context.Background(), profile.TallyName(id))
	require.NoError(t, err)
	return got
}

func TestExposeAndConvert(t *testing.T) {
	stores(t, func(t *testing.T, svc *profile.Service, st profile.Store) {
		ctx := context.Background()
		pol := goalPolicy()
		pid := profile.NewID()
		at := novNow.Unix()
		snap, err := svc.Expose(ctx, pid, nil, []profile.Assignment{{Experiment: "hero", Variant: "big", At: at}}, pol)
		require.NoError(t, err)
		require.NotNil(t, snap.Primary.Assignment("hero"))
		// Exposed again (another node, a stale cache): stored once, counted once.
		snap2, err := svc.Expose(ctx, pid, nil, []profile.Assignment{{Experiment: "hero", Variant: "control", At: at + 5}}, pol)
		require.NoError(t, err)
		assert.Equal(t, "big", snap2.Primary.Assignment("hero").Variant, "the first assignment stays")
		assert.Equal(t, map[string]int64{"v:big": 1}, tallies(t, svc, "hero"))

		// Not a goal event: no conversion. The first purchase converts,
		// the second and a repeated order id do not.
		_, err = svc.Record(ctx, pid, nil, []profile.Event{{Type: profile.PageView, URL: "/"}}, pol)
		require.NoError(t, err)
		assert.Equal(t, map[string]int64{"v:big": 1}, tallies(t, svc, "hero"))
		snap, err = svc.Record(ctx, pid, nil, []profile.Event{
			{Type: profile.Purchase, OrderID: "o1", Items: []profile.Item{{SKU: "a", Price: 5}}},
			{Type: profile.Purchase, OrderID: "o2", Items: []profile.Item{{SKU: "b", Price: 5}}},
		}, pol)
		require.NoError(t, err)
		assert.Equal(t, at, snap.Primary.Assignment("hero").Converted)
		assert.Equal(t, map[string]int64{"v:big": 1, "c:big": 1}, tallies(t, svc, "hero"))

		// Reloaded from the store: the assignment survives the codec.
		loaded, err := svc.Load(ctx, pid, pol)
		require.NoError(t, err)
		assert.Equal(t, []profile.Assignment{{Experiment: "hero", Variant: "big", At: at, Converted: at}}, loaded.Primary.Experiments)
	})
}

func TestConversionWindowAndOrder(t *testing.T) {
	stores(t, func(t *testing.T, svc *profile.Service, st profile.Store) {
		ctx := context.Background()
		pol := goalPolicy()
		// Exposed two days ago: a purchase now is outside hero's one-day
		// window but converts the holdout (no window).
		pid := profile.NewID()
		past := novNow.Add(-48 * time.Hour).Unix()
		_, err := svc.Expose(ctx, pid, nil, []profile.Assignment{{Experiment: "hero", Variant: "control", At: past}, {Experiment: profile.HoldoutID, Variant: profile.VariantHoldout, At: past}}, pol)
		require.NoError(t, err)
		_, err = svc.Record(ctx, pid, nil, []profile.Event{{Type: profile.Purchase, OrderID: "o1", Items: []profile.Item{{SKU: "a"}}}}, pol)
		require.NoError(t, err)
		assert.Equal(t, map[string]int64{"v:control": 1}, tallies(t, svc, "hero"))
		assert.Equal(t, map[string]int64{"v:holdout": 1, "c:holdout": 1}, tallies(t, svc, profile.HoldoutID))

		// A purchase recorded before the exposure does not convert.
		pid2 := profile.NewID()
		_, err = svc.Record(ctx, pid2, nil, []profile.Event{{Type: profile.Purchase, OrderID: "o9", Items: []profile.Item{{SKU: "a"}}}}, pol)
		require.NoError(t, err)
		_, err = svc.Expose(ctx, pid2, nil, []profile.Assignment{{Experiment: "hero", Variant: "control", At: novNow.Unix()}}, pol)
		require.NoError(t, err)
		_, err = svc.Record(ctx, pid2, nil, []profile.Event{{Type: profile.Purchase, OrderID: "o9", Items: []profile.Item{{SKU: "a"}}}}, pol)
		require.NoError(t, err)
		assert.Equal(t, map[string]int64{"v:control": 2}, tallies(t, svc, "hero"), "a repeated order id converts nothing")
	})
}

func TestMergeKeepsSurvivorsAssignment(t *testing.T) {
	stores(t, func(t *testing.T, svc *profile.Service, st profile.Store) {
		ctx := context.Background()
		pol := goalPolicy()
		at := novNow.Unix()
		// The contact's profile (laptop) was exposed to "big"; the phone,
		// anonymous, to "control" and to another experiment.
		laptop := profile.NewID()
		_, err := svc.Record(ctx, laptop, nil, []profile.Event{{Type: profile.Identify, Email: "ab@example.nl", Proven: true}}, pol)
		require.NoError(t, err)
		_, err = svc.Expose(ctx, laptop, nil, []profile.Assignment{{Experiment: "hero", Variant: "big", At: at}}, pol)
		require.NoError(t, err)
		phone := profile.NewID()
		_, err = svc.Expose(ctx, phone, nil, []profile.Assignment{{Experiment: "hero", Variant: "control", At: at}, {Experiment: "other", Variant: "b", At: at}}, pol)
		require.NoError(t, err)
		snap, err := svc.Record(ctx, phone, nil, []profile.Event{{Type: profile.Identify, Email: "ab@example.nl", Proven: true}}, pol)
		require.NoError(t, err)
		require.Equal(t, laptop, snap.Primary.ID)
		assert.Equal(t, "big", snap.Primary.Assignment("hero").Variant, "the surviving profile's assignment wins")
		assert.Equal(t, "b", snap.Primary.Assignment("other").Variant, "an experiment only the phone saw is kept")
		assert.Equal(t, map[string]int64{"v:big": 1, "v:control": 1}, tallies(t, svc, "hero"), "a merge counts nothing")
	})
}

func TestExposeConcurrently(t *testing.T) {
	stores(t, func(t *testing.T, svc *profile.Service, st profile.Store) {
		ctx := context.Background()
		pol := goalPolicy()
		// Two services over one store stand for two nodes: each exposes the
		// same 20 visitors at once; every visitor counts once.
		other := profile.NewService(st, profile.Options{Now: func() time.Time { return novNow }})
		var wg sync.WaitGroup
		for i := range 20 {
			pid := profile.NewID()
			for _, s := range []*profile.Service{svc, other} {
				wg.Add(1)
				go func() {
					defer wg.Done()
					v := "control"
					if i%2 == 1 {
						v = "big"
					}
					_, err := s.Expose(ctx, pid, nil, []profile.Assignment{{Experiment: "hero", Variant: v, At: novNow.Unix()}}, pol)
					assert.NoError(t, err)
				}()
			}
		}
		wg.Wait()
		assert.Equal(t, map[string]int64{"v:control": 10, "v:big": 10}, tallies(t, svc, "hero"))
	})
}
