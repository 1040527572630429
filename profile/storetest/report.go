package storetest

import (
	"context"
	"math"
	"strconv"
	"sync"
	"testing"

	"github.com/etalage/etalage/profile"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// ids returns n visitor ids, the same ones for the same prefix.
func ids(prefix string, from, to int) []string {
	out := make([]string, 0, to-from)
	for i := from; i < to; i++ {
		out = append(out, prefix+strconv.Itoa(i))
	}
	return out
}

func runReport(t *testing.T, open func(t *testing.T) profile.Store) {
	ctx := context.Background()

	t.Run("BlockCountsAdd", func(t *testing.T) {
		st := open(t)
		rows, err := st.BlockCounts(ctx, []string{"2026-11-24"})
		require.NoError(t, err)
		assert.Empty(t, rows, "nothing counted yet")
		// Two flushes (two nodes, or one node twice) of the same day: the
		// counts add up, a visitor in both is counted once.
		require.NoError(t, st.AddBlockCounts(ctx, []profile.BlockCount{
			{Day: "2026-11-24", Block: "hero-default", Served: 5, Clicks: 1, Visitors: ids("v", 0, 3)},
			{Day: "2026-11-24", Block: "banner-sint", Served: 2, Visitors: ids("v", 0, 2)},
			{Day: "2026-11-25", Block: "hero-default", Served: 1, Visitors: ids("v", 0, 1)},
		}))
		require.NoError(t, st.AddBlockCounts(ctx, []profile.BlockCount{
			{Day: "2026-11-24", Block: "hero-default", Served: 4, Clicks: 2, Visitors: ids("v", 2, 5)},
			{Day: "2026-11-24", Block: "picks-old", Clicks: 3}, // clicked, not served that day
		}))
		rows, err = st.BlockCounts(ctx, []string{"2026-11-23", "2026-11-24", "2026-11-25"})
		require.NoError(t, err)
		assert.Equal(t, []profile.BlockDay{
			{Day: "2026-11-24", Block: "banner-sint", Served: 2, Visitors: 2},
			{Day: "2026-11-24", Block: "hero-default", Served: 9, Clicks: 3, Visitors: 5},
			{Day: "2026-11-24", Block: "picks-old", Clicks: 3},
			{Day: "2026-11-25", Block: "hero-default", Served: 1, Visitors: 1},
		}, rows, "ordered by day, then block; a visitor in two flushes counts once")
		rows, err = st.BlockCounts(ctx, []string{"2026-11-25"})
		require.NoError(t, err)
		assert.Equal(t, []profile.BlockDay{{Day: "2026-11-25", Block: "hero-default", Served: 1, Visitors: 1}}, rows, "only the days asked for")
	})

	t.Run("BlockVisitorsWithinSketchError", func(t *testing.T) {
		st := open(t)
		// 20,000 distinct visitors in flushes of 1,000, each flush also
		// repeating 500 visitors of the one before.
		const n = 20000
		for from := 0; from < n; from += 1000 {
			batch := ids("visitor-", from, from+1000)
			if from > 0 {
				batch = append(batch, ids("visitor-", from-500, from)...)
			}
			require.NoError(t, st.AddBlockCounts(ctx, []profile.BlockCount{{Day: "2026-11-24", Block: "hero", Served: int64(len(batch)), Visitors: batch}}))
		}
		rows, err := st.BlockCounts(ctx, []string{"2026-11-24"})
		require.NoError(t, err)
		require.Len(t, rows, 1)
		// The standard error is 1.04/sqrt(16384) = 0.81%; 3% is more than
		// three and a half of them.
		rel := math.Abs(float64(rows[0].Visitors)-n) / n
		assert.Less(t, rel, 0.03, "estimated %d distinct visitors of %d", rows[0].Visitors, n)
		assert.Equal(t, int64(n+19*500), rows[0].Served)
	})

	t.Run("BlockCountsConcurrent", func(t *testing.T) {
		st := open(t)
		const workers, each = 8, 20
		var wg sync.WaitGroup
		for w := range workers {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for i := range each {
					err := st.AddBlockCounts(ctx, []profile.BlockCount{
						{Day: "2026-11-24", Block: "a", Served: 3, Clicks: 1, Visitors: ids("w"+strconv.Itoa(w)+"-", i, i+1)},
						{Day: "2026-11-25", Block: "a", Served: 1},
					})
					assert.NoError(t, err)
				}
			}()
		}
		wg.Wait()
		rows, err := st.BlockCounts(ctx, []string{"2026-11-24", "2026-11-25"})
		require.NoError(t, err)
		require.Len(t, rows, 2)
		assert.Equal(t, int64(3*workers*each), rows[0].Served, "no increment lost")
		assert.Equal(t, int64(workers*each), rows[0].Clicks)
		assert.InDelta(t, workers*each, rows[0].Visitors, 3, "160 visitors, within the sketch's error")
		assert.Equal(t, int64(workers*each), rows[1].Served)
	})
}
