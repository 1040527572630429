package edge

import (
	"context"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/etalage/etalage/profile/redisstore"
	"github.com/etalage/etalage/profile/redisstore/redistest"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// scrape reads /metrics into sample -> value.
func scrape(tb testing.TB, h *harness) map[string]float64 {
	tb.Helper()
	r := call(tb, h.admin, "GET", "/metrics", "", nil)
	require.Equal(tb, 200, r.status)
	out := map[string]float64{}
	for _, line := range strings.Split(string(r.body), "\n") {
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		i := strings.LastIndexByte(line, ' ')
		v, err := strconv.ParseFloat(line[i+1:], 64)
		require.NoError(tb, err, line)
		out[line[:i]] = v
	}
	return out
}

// TestStoreMetricsMove: the cache, store, batch and breaker metrics count
// what happens: a write, a cache hit, a cache miss read from Redis in a
// batch, and Redis going away until the breaker opens.
func TestStoreMetricsMove(t *testing.T) {
	p := redistest.StartServer(t)
	st, err := redisstore.Open(context.Background(), "redis://"+p.Addr+"/0", redistest.Options())
	require.NoError(t, err)
	h := newHarnessWithStore(t, st, func(c *Config) { c.RateLimit = 0 })
	const (
		hits, misses = "etalage_profile_cache_hits_total", "etalage_profile_cache_misses_total"
		gets, puts   = `etalage_store_duration_seconds_count{op="get"}`, `etalage_store_duration_seconds_count{op="put"}`
		batches      = "etalage_store_read_batch_size_count"
		breaker      = "etalage_store_breaker_state"
	)
	m0 := scrape(t, h)
	assert.Zero(t, m0[breaker], "closed")

	v := visitorWithProfile(t, h) // a decide with events: a read and a write
	h.srv.cache.c.Wait()
	m1 := scrape(t, h)
	assert.Equal(t, m0[puts]+1, m1[puts])
	assert.Greater(t, m1[`etalage_store_duration_seconds_sum{op="put"}`], 0.0)

	r := h.decide(t, v, `{"slots":["home-hero"]}`)
	require.Equal(t, 200, r.status)
	m2 := scrape(t, h)
	assert.Equal(t, m1[hits]+1, m2[hits], "a cached visitor")
	assert.Equal(t, m1[misses], m2[misses])
	assert.Equal(t, m1[gets], m2[gets], "no store read for a hit")

	pid, ok := h.srv.signer.Verify([]byte(v))
	require.True(t, ok)
	h.srv.cache.del(pid)
	r = h.decide(t, v, `{"slots":["home-hero"]}`)
	require.Equal(t, 200, r.status)
	m3 := scrape(t, h)
	assert.Equal(t, m2[misses]+1, m3[misses], "a visitor not cached")
	assert.Equal(t, m2[hits], m3[hits])
	assert.Equal(t, m2[gets]+1, m3[gets], "read from the store")
	assert.Equal(t, m2[batches]+1, m3[batches], "in one batch")
	assert.Equal(t, m2[`etalage_store_read_batch_size_bucket{le="1"}`]+1, m3[`etalage_store_read_batch_size_bucket{le="1"}`], "of one read")
	assert.Zero(t, m3[breaker])

	p.Kill()
	for range failureThreshold {
		h.srv.cache.del(pid)
		r = h.decide(t, v, `{"slots":["home-hero"]}`)
		require.Equal(t, 200, r.status)
		assert.Equal(t, true, r.json(t)["degraded"])
	}
	m4 := scrape(t, h)
	assert.Equal(t, 1.0, m4[breaker], "open")
	assert.Equal(t, m3[gets]+failureThreshold, m4[gets], "failed reads are timed too")
	time.Sleep(breakerCooldown)
	assert.Equal(t, 2.0, scrape(t, h)[breaker], "half-open after the cooldown")
}
