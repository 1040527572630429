package edge

import (
	"math/bits"
	"sync/atomic"
	"time"

	"github.com/dgraph-io/ristretto/v2"
	"github.com/etalage/etalage/profile"
)

// profileCache keeps profiles in memory, bounded by a byte budget and a
// TTL. Entries are packed (profile.Packed: the stored records in one
// string, about 1.4 KB for a returning visitor) and unpacked on a hit
// into the request's scratch memory, so that a node holds a million
// visitors in under 2 GiB and a warm decide still allocates nothing. Each
// entry costs its packed size plus ristretto's bookkeeping. This node's
// own writes replace entries at once; other nodes' writes are seen when
// the entry expires, so cross-node staleness is at most the TTL.
//
// Unpacking costs about as much as evaluating the rules, so visitors
// decided again soon (a session's page views) are kept decoded as well,
// in a small hot tier beside the packed entries (see hotTier).
type profileCache struct {
	c   *ristretto.Cache[string, cacheEntry]
	ttl time.Duration
	svc *profile.Service
	hot *hotTier // nil only in tests: every hit unpacks
}

// hotTier is a direct-mapped array of decoded snapshots: a visitor's slot
// is chosen by a hash of its id, and a newcomer replaces whoever held it.
// A visitor is decoded into its slot the second time in a row its slot
// sees it (seen), so that one-off visitors cost nothing but a scratch
// unpack and returning ones one allocation per session. A decoded entry
// is valid while the packed entry it was decoded from is still the one
// cached (the same string, not equal bytes): a write, a definitions swap,
// an eviction or an expiry of the packed entry ends it. Slots are atomic
// pointers: no lock on the warm path.
type hotTier struct {
	slots []atomic.Pointer[hotEntry]
	seen  []atomic.Uint64
	mask  uint64
}

type hotEntry struct {
	pid    string
	packed profile.Packed
	policy *profile.Policy
	snap   *profile.Snapshot
}

// hotEntryBytes is what a decoded entry of a returning visitor takes
// beside its packed form (its profiles' maps, counters and strings'
// headers), for sizing the tier out of the budget.
const hotEntryBytes = 8 << 10

// newHotTier sizes the tier at about 1.5% of the cache budget, a power of
// two of slots between 64 and 65,536.
func newHotTier(budget int64) *hotTier {
	n := uint64(1) << bits.Len64(uint64(max(budget/64/hotEntryBytes, 64)-1))
	n = min(n, 1<<16)
	return &hotTier{slots: make([]atomic.Pointer[hotEntry], n), seen: make([]atomic.Uint64, n), mask: n - 1}
}

// bytes is the most the tier holds.
func (h *hotTier) bytes() int64 { return int64(len(h.slots)) * hotEntryBytes }

// pidHash is FNV-1a of a visitor's profile id.
func pidHash(pid string) uint64 {
	h := uint64(14695981039346656037)
	for i := 0; i < len(pid); i++ {
		h = (h ^ uint64(pid[i])) * 1099511628211
	}
	return h | 1 // 0 marks a slot that has seen no one
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
	hot := newHotTier(budget)
	c, err := ristretto.NewCache(&ristretto.Config[string, cacheEntry]{
		NumCounters: counters,
		MaxCost:     max(budget-hot.bytes(), 1),
		BufferItems: 64,
	})
	if err != nil {
		return nil, err
	}
	return &profileCache{c: c, ttl: ttl, svc: svc, hot: hot}, nil
}

func (pc *profileCache) close() {
	if pc != nil {
		pc.c.Close()
	}
}

// get returns the cached snapshot of pid loaded under pol, or nil: from
// the hot tier, else unpacked into sc (nil: new memory), valid until the
// next use of sc. Either is read-only.
func (pc *profileCache) get(pid string, pol *profile.Policy, sc *profile.Scratch) *profile.Snapshot {
	if pc == nil {
		return nil
	}
	e, ok := pc.c.Get(pid)
	if !ok || e.policy != pol {
		return nil
	}
	if pc.hot == nil {
		return pc.svc.Unpack(pid, e.packed, pol, sc)
	}
	h := pidHash(pid)
	i := h & pc.hot.mask
	if he := pc.hot.slots[i].Load(); he != nil && he.pid == pid && he.policy == pol && he.packed.Same(e.packed) {
		return he.snap
	}
	if pc.hot.seen[i].Swap(h) != h {
		return pc.svc.Unpack(pid, e.packed, pol, sc)
	}
	snap := pc.svc.Unpack(pid, e.packed, pol, nil)
	if snap != nil {
		pc.hot.slots[i].Store(&hotEntry{pid: pid, packed: e.packed, policy: pol, snap: snap})
	}
	return snap
}

// set caches snap for pid under pol.
func (pc *profileCache) set(pid string, snap *profile.Snapshot, pol *profile.Policy) {
	if pc == nil {
		return
	}
	pc.setPacked(pid, snap.Pack(), pol)
}

// setPacked caches a snapshot already packed for pid under pol.
func (pc *profileCache) setPacked(pid string, p profile.Packed, pol *profile.Policy) {
	if pc == nil {
		return
	}
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
