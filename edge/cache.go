package edge

import (
	"time"

	"github.com/dgraph-io/ristretto/v2"
	"github.com/etalage/etalage/profile"
)

// profileCache keeps decoded profiles in memory, bounded by a byte budget
// (each entry costs its estimated heap size, profile.Snapshot.MemSize) and
// a TTL. This node's own writes replace entries at once; other nodes' writes
// are seen when the entry expires, so cross-node staleness is at most the TTL.
type profileCache struct {
	c   *ristretto.Cache[string, *cacheEntry]
	ttl time.Duration
}

// cacheEntry remembers the policy a snapshot was loaded with: its seasonal
// profiles are parallel to that policy's seasons, so a definitions swap
// makes older entries misses.
type cacheEntry struct {
	snap   *profile.Snapshot
	policy *profile.Policy
}

// entryOverhead is the cache entry itself and ristretto's bookkeeping of
// it (store map entry, expiry bucket) beyond the snapshot.
const entryOverhead = 160

// newProfileCache returns nil (no caching: every decide reads the store)
// for a negative budget.
func newProfileCache(budget int64, ttl time.Duration) (*profileCache, error) {
	if budget < 0 {
		return nil, nil
	}
	// ristretto wants ~10 counters per expected item; a returning visitor's
	// snapshot is a few KB (TestCacheStaysWithinBudget prints it).
	counters := budget / 300
	if counters < 10_000 {
		counters = 10_000
	}
	c, err := ristretto.NewCache(&ristretto.Config[string, *cacheEntry]{
		NumCounters: counters,
		MaxCost:     budget,
		BufferItems: 64,
	})
	if err != nil {
		return nil, err
	}
	return &profileCache{c: c, ttl: ttl}, nil
}

func (pc *profileCache) close() {
	if pc != nil {
		pc.c.Close()
	}
}

// get returns the cached snapshot of pid loaded under pol, or nil.
func (pc *profileCache) get(pid string, pol *profile.Policy) *profile.Snapshot {
	if pc == nil {
		return nil
	}
	e, ok := pc.c.Get(pid)
	if !ok || e.policy != pol {
		return nil
	}
	return e.snap
}

// set caches snap for pid under pol.
func (pc *profileCache) set(pid string, snap *profile.Snapshot, pol *profile.Policy) {
	if pc == nil {
		return
	}
	cost := int64(entryOverhead + snap.MemSize())
	pc.c.SetWithTTL(pid, &cacheEntry{snap: snap, policy: pol}, cost, pc.ttl)
}

// del forgets pid.
func (pc *profileCache) del(pid string) {
	if pc != nil {
		pc.c.Del(pid)
	}
}
