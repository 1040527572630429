package edge

import (
	"os"
	"os/exec"
	"runtime"
	"strconv"
	"testing"
	"time"
	"unsafe"

	"github.com/etalage/etalage/profile"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// typicalSnapshot returns the snapshot of a returning visitor (views, a
// cart, an interest) as loaded from the store. The server that recorded it
// is shut down before it returns, so that nothing of it allocates while a
// test measures the heap.
func typicalSnapshot(t *testing.T) *profile.Snapshot {
	var snap *profile.Snapshot
	t.Run("record a typical profile", func(t *testing.T) { snap = recordTypical(t) })
	require.NotNil(t, snap)
	return snap
}

func recordTypical(t *testing.T) *profile.Snapshot {
	snap, _ := recordTypicalIn(t, newHarness(t, nil))
	return snap
}

// recordTypicalIn records a typical returning visitor on h and returns its
// snapshot and the policy it was loaded with.
func recordTypicalIn(t *testing.T, h *harness) (*profile.Snapshot, *profile.Policy) {
	r := h.decide(t, "", typicalDecide)
	require.Equal(t, 200, r.status, string(r.body))
	v := string(r.cookie.Value())
	pid, ok := h.srv.signer.Verify([]byte(v))
	require.True(t, ok)
	d := h.srv.defs.Load()
	snap, err := h.srv.profiles.Load(t.Context(), pid, d.policy)
	require.NoError(t, err)
	return snap, d.policy
}

// typicalDecide is a decide body with the events of a typical returning
// visitor: about the typical profile of the README's bounds table, 40 views
// of 20 URLs, fields, a cart, an order (in the Sinterklaas season).
var typicalDecide = func() string {
	var views []string
	for i := range 40 {
		views = append(views, "/demo/p/product-"+strconv.Itoa(i%20))
	}
	return `{"slots":["home-hero"],"events":[` + pageViews(views...) +
		`,{"type":"cart_add","sku":"sneaker-air-45","category":"sneakers","price":129.95}` +
		`,{"type":"purchase","order_id":"o-1","items":[{"sku":"playmobil-sint","category":"toys","price":39.99}]}` +
		`,{"type":"form_submit","form":"newsletter","fields":{"city":"Utrecht","first_name":"Anna","favourite_brands":["veja","nike"]}},{"type":"interest","name":"running","on":true}]}`
}()

// A warm decide of a typical returning visitor allocates nothing, from
// the hot tier and unpacked from its packed entry on every request.
func TestDecideWarmTypicalAllocations(t *testing.T) {
	if raceEnabled {
		t.Skip("sync.Pool drops items under the race detector; run without -race")
	}
	for _, tier := range []string{"hot", "packed"} {
		t.Run(tier, func(t *testing.T) {
			h := newHarness(t, func(c *Config) { c.RateLimit = 0 })
			if tier == "packed" {
				h.srv.cache.hot = nil
			}
			r := h.decide(t, "", typicalDecide)
			require.Equal(t, 200, r.status, string(r.body))
			h.srv.cache.c.Wait()
			ctx := handlerRequest("GET", "/v1/decide?slots=home-hero,banner-top,home-picks&url=/demo/", "", string(r.cookie.Value()))
			h.srv.servePublic(ctx)
			require.Equal(t, 200, ctx.Response.StatusCode())
			hits := h.srv.metrics.cacheHits.Get()
			allocs := testing.AllocsPerRun(200, func() {
				ctx.Response.Reset()
				h.srv.servePublic(ctx)
			})
			assert.Zero(t, allocs, "a warm decide allocates")
			assert.Greater(t, h.srv.metrics.cacheHits.Get(), hits+200, "the decides were answered from the cache")
			assert.Contains(t, string(ctx.Response.Body()), `"segments":[`)
		})
	}
}

// The hot tier serves a visitor's decoded snapshot from its second hit
// on, and only while the packed entry it was decoded from is cached: a
// write replaces it, a delete ends it.
func TestHotTierFollowsPackedEntry(t *testing.T) {
	h := newHarness(t, nil)
	typical, pol := recordTypicalIn(t, h)
	pc, err := newProfileCache(1<<20, time.Hour, h.srv.profiles)
	require.NoError(t, err)
	defer pc.close()
	pid := typical.Primary.ID
	var sc profile.Scratch
	pc.set(pid, typical, pol)
	pc.c.Wait()
	first := pc.get(pid, pol, &sc)
	require.NotNil(t, first)
	second := pc.get(pid, pol, &sc)
	require.NotNil(t, second)
	assert.Same(t, second, pc.get(pid, pol, &sc), "the second hit is kept decoded")
	assert.NotSame(t, second, first, "the first hit unpacks into the scratch only")
	assert.Equal(t, typical.Primary.Visits, second.Primary.Visits)

	changed := *typical
	changed.Records = append([]profile.Record(nil), typical.Records...)
	p := *typical.Primary
	p.Visits++
	changed.Records[0] = profile.Record{Data: profile.Encode(nil, &p), Version: typical.Records[0].Version + 1}
	pc.set(pid, &changed, pol)
	pc.c.Wait()
	got := pc.get(pid, pol, &sc)
	require.NotNil(t, got)
	assert.Equal(t, p.Visits, got.Primary.Visits, "a write replaces the decoded entry")
	pc.get(pid, pol, &sc)
	assert.Equal(t, p.Visits, pc.get(pid, pol, &sc).Primary.Visits)

	pc.del(pid)
	pc.c.Wait()
	assert.Nil(t, pc.get(pid, pol, &sc), "a deleted entry is gone from both tiers")
	assert.Nil(t, pc.get(pid, &profile.Policy{}, &sc), "another policy misses")
}

// packSnapshots returns n distinct packed copies of snap, as the cache
// holds them.
func packSnapshots(t *testing.T, snap *profile.Snapshot, n int) []profile.Packed {
	require.NotEmpty(t, snap.Records[0].Data)
	out := make([]profile.Packed, n)
	for i := range out {
		out[i] = snap.Pack()
	}
	return out
}

// freshProcess runs the calling test again, alone, in a new process of
// the test binary, and reports whether the caller is that process. Heap
// figures measured beside other tests (their goroutines, their garbage
// freed meanwhile, -shuffle putting a heavy test just before) are noise
// that once made a cache look over budget and once gave a negative heap;
// a process running one test measures only what that test holds.
func freshProcess(t *testing.T) bool {
	const env = "ETALAGE_FRESH_PROCESS_TEST"
	if os.Getenv(env) == t.Name() {
		return true
	}
	if testing.Short() {
		t.Skip("measures the heap in a new process")
	}
	cmd := exec.CommandContext(t.Context(), os.Args[0], "-test.run=^"+t.Name()+"$", "-test.count=1", "-test.v")
	cmd.Env = append(os.Environ(), env+"="+t.Name())
	out, err := cmd.CombinedOutput()
	t.Logf("in a fresh process:\n%s", out)
	require.NoError(t, err, "the test failed in its own process")
	require.Contains(t, string(out), "--- PASS: "+t.Name(), "the test ran in its own process")
	return false
}

func heapAlloc() int64 {
	runtime.GC()
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return int64(m.HeapAlloc)
}

// The cache charges each entry its estimated heap size; the estimate must
// be close to what packed snapshots really take, or the byte budget would
// not bound memory.
func TestPackedMemSizeMatchesHeap(t *testing.T) {
	if !freshProcess(t) {
		return
	}
	const n = 4000
	typical := typicalSnapshot(t)
	before := heapAlloc()
	packed := packSnapshots(t, typical, n)
	real := float64(heapAlloc()-before-int64(n*int(unsafe.Sizeof(packed[0])))) / n
	est := float64(packed[0].MemSize())
	t.Logf("typical cached snapshot: %d-byte record, packed estimated %.0f bytes, measured %.0f bytes of heap", len(typical.Records[0].Data), est, real)
	assert.InDelta(t, 1, est/real, 0.03, "estimate %.0f vs measured %.0f", est, real)
	runtime.KeepAlive(packed)
}

// Filling the cache with three times its budget keeps the heap it holds
// within the budget, ristretto's bookkeeping included.
func TestCacheStaysWithinBudget(t *testing.T) {
	if !freshProcess(t) {
		return
	}
	const budget = 16 << 20
	typical := typicalSnapshot(t)
	per := entryOverhead + typical.Pack().MemSize()
	n := 3 * budget / per
	pc, err := newProfileCache(budget, time.Hour, profile.NewService(nil, profile.Options{}))
	require.NoError(t, err)
	defer pc.close()
	pol := &profile.Policy{}
	ids := make([]string, n)
	for i := range ids {
		ids[i] = NewID()
	}
	before := heapAlloc()
	for i := range ids {
		pc.set(ids[i], typical, pol)
	}
	pc.c.Wait()
	held := heapAlloc() - before
	t.Logf("%d snapshots of ~%d bytes offered to a %d-byte cache: %d bytes of heap held", n, per, budget, held)
	assert.LessOrEqual(t, held, int64(budget*11/10), "the cache holds more than its budget")
	assert.GreaterOrEqual(t, held, int64(budget*3/4), "the cost estimate wastes the budget")
}
