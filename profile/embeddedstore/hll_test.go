package embeddedstore

import (
	"context"
	"strconv"
	"testing"

	"github.com/etalage/etalage/profile"
	"github.com/etalage/etalage/profile/redisstore/redistest"
	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestHLLMatchesRedis: the embedded sketch counts exactly what a real
// Redis's PFCOUNT answers for the same elements, from a handful (Redis's
// sparse form) to 200,000 (dense), so that a shop moving between the
// stores reads the same report.
func TestHLLMatchesRedis(t *testing.T) {
	ctx := context.Background()
	c := redis.NewClient(&redis.Options{Addr: redistest.Server(t)})
	t.Cleanup(func() { c.Close() })
	var x hll
	added := 0
	for _, n := range []int{0, 1, 2, 7, 100, 1000, 5000, 20000, 60000, 200000} {
		batch := make([]any, 0, n-added)
		for ; added < n; added++ {
			// Ids like the real ones, and lengths of every remainder mod 8.
			id := profile.NewID()[:1+added%32] + strconv.Itoa(added)
			x.add(id)
			batch = append(batch, id)
		}
		if len(batch) > 0 {
			require.NoError(t, c.PFAdd(ctx, "hll", batch...).Err())
		}
		want, err := c.PFCount(ctx, "hll").Result()
		require.NoError(t, err)
		assert.Equal(t, want, x.count(), "after %d distinct elements", n)
	}
}

func TestHLLStoredFormRoundTrips(t *testing.T) {
	for _, n := range []int{0, 10, 3000, 50000} {
		var x, y hll
		for i := range n {
			x.add("v" + strconv.Itoa(i))
		}
		b := x.appendTo(nil)
		if n < 5000 {
			assert.Equal(t, hllSparse, b[0], "%d elements stay sparse", n)
		} else {
			assert.Equal(t, hllDense, b[0])
		}
		require.NoError(t, y.merge(b))
		assert.Equal(t, x, y, "%d elements", n)
	}
	var y hll
	assert.ErrorIs(t, y.merge([]byte{hllSparse, 1}), errBadSketch)
	assert.ErrorIs(t, y.merge([]byte{hllDense, 1, 2}), errBadSketch)
}
