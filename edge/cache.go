package edge

import (
	"time"

	"github.com/dgraph-io/ristretto/v2"
	"github.com/etalage/etalage/profile"
)

// profileCache keeps profiles in memory, bounded by a byte budget and a
// TTL. Entries are packed (profile.Packed: the stored records in one
// string, about 1 KB for a returning visitor) and unpacked on each hit
// into the request's scratch memory, so that a node holds a million
// visitors in under 2 GiB and a warm decide still allocates nothing. Each
// entry costs its packed size plus ristretto's bookkeeping. This node's
// own writes replace entries at once; other nodes' writes are seen when
// the entry expires, so cross-node staleness is at most the TTL.
type profileCache struct {
	c   *ristretto.Cache[string, cacheEntry]
	ttl time.Duration
	svc *profile.Service
}

// cacheEntry remembers the policy a snapshot was loaded with: its seasonal
// records are parallel to that policy's seasons, so a definitions swap
// makes older entries misses.
type cacheEntry struct {
	packed profile.Packed
	policy *profile.Policy
}

// entryOverhead is ristretto's bookkeeping of an entry beyond the packed
// snapshot: its store map slot (key hashes, the entry, the expiry time),
// its expiry bucket slot and its cost in the admission policy, at the
// load factors Go's maps run at (TestCacheStaysWithinBudget measures it).
const entryOverhead = 200

// MemoryLimit is the soft memory limit (runtime/debug.SetMemoryLimit) for
// a node with a profile cache of budget bytes: the budget, an eighth more
// as the garbage collector's headroom, and 96 MiB for everything else
// (connections, definitions, request buffers). Without it, GOGC=100 lets
// the heap of a full cache grow to twice its live size before collecting;
// with it a full cache costs about its budget and an eighth in resident
// memory (loadtest/density measures it).
func MemoryLimit(budget int64) int64 {
	return budget + budget/8 + 96<<20
}

// newProfileCache returns nil (no caching: every decide reads the store)
// for a negative budget. svc unpacks the entries.
func newProfileCache(budget int64, ttl time.Duration, svc *profile.Service) (*profileCache, error) {
	if budget < 0 {
		return nil, nil
	}
	// ristretto wants ~10 counters per expected item; a returning visitor's
	// entry is about 1.3 KB (TestCacheStaysWithinBudget prints it).
	counters := budget / 130
	if counters < 10_000 {
		counters = 10_000
	}
	c, err := ristretto.NewCache(&ristretto.Config[string, cacheEntry]{
		NumCounters: counters,
		MaxCost:     budget,
		BufferItems: 64,
	})
	if err != nil {
		return nil, err
	}
	return &profileCache{c: c, ttl: ttl, svc: svc}, nil
}

func (pc *profileCache) close() {
	if pc != nil {
		pc.c.Close()
	}
}

// get returns the cached snapshot of pid loaded under pol, or nil. It is
// unpacked into sc (nil: new memory) and valid until the next use of sc.
func (pc *profileCache) get(pid string, pol *profile.Policy, sc *profile.Scratch) *profile.Snapshot {
	if pc == nil {
		return nil
	}
	e, ok := pc.c.Get(pid)
	if !ok || e.policy != pol {
		return nil
	}
	return pc.svc.Unpack(pid, e.packed, pol, sc)
}

// set caches snap for pid under pol.
func (pc *profileCache) set(pid string, snap *profile.Snapshot, pol *profile.Policy) {
	if pc == nil {
		return
	}
	p := snap.Pack()
	pc.c.SetWithTTL(pid, cacheEntry{packed: p, policy: pol}, cost(p), pc.ttl)
}

// cost is what an entry is charged against the budget.
func cost(p profile.Packed) int64 { return int64(entryOverhead + p.MemSize()) }

// CacheCost is what snap costs in a node's profile cache, in bytes of
// heap: its packed form and the cache's bookkeeping of it.
func CacheCost(snap *profile.Snapshot) int64 { return cost(snap.Pack()) }

// del forgets pid.
func (pc *profileCache) del(pid string) {
	if pc != nil {
		pc.c.Del(pid)
	}
}
