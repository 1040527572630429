package edge

import (
	"runtime"
	"strconv"
	"testing"
	"time"

	"github.com/etalage/etalage/profile"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// typicalSnapshot returns the snapshot of a returning visitor (views, a
// cart, an interest) as loaded from the store.
func typicalSnapshot(t *testing.T) *profile.Snapshot {
	h := newHarness(t, nil)
	// About the typical profile of the README's bounds table: 40 views of
	// 20 URLs, fields, a cart, an order.
	var views []string
	for i := range 40 {
		views = append(views, "/demo/p/product-"+strconv.Itoa(i%20))
	}
	r := h.decide(t, "", `{"slots":["home-hero"],"events":[`+pageViews(views...)+
		`,{"type":"cart_add","sku":"sneaker-air-45","category":"sneakers","price":129.95}`+
		`,{"type":"purchase","order_id":"o-1","items":[{"sku":"playmobil-sint","category":"toys","price":39.99}]}`+
		`,{"type":"form_submit","form":"newsletter","fields":{"city":"Utrecht","first_name":"Anna"}},{"type":"interest","name":"running","on":true}]}`)
	require.Equal(t, 200, r.status, string(r.body))
	v := string(r.cookie.Value())
	pid, ok := h.srv.signer.Verify([]byte(v))
	require.True(t, ok)
	d := h.srv.defs.Load()
	snap, err := h.srv.profiles.Load(t.Context(), pid, d.policy)
	require.NoError(t, err)
	return snap
}

// decodeSnapshots returns n distinct snapshots decoded from snap's record,
// as the cache holds them.
func decodeSnapshots(t *testing.T, snap *profile.Snapshot, n int) []*profile.Snapshot {
	rec := snap.Records[0]
	require.NotEmpty(t, rec.Data)
	out := make([]*profile.Snapshot, n)
	for i := range out {
		data := append([]byte(nil), rec.Data...)
		p, err := profile.Decode(data)
		require.NoError(t, err)
		p.ID = NewID()
		recs := make([]profile.Record, len(snap.Records))
		recs[0] = profile.Record{Data: data, Version: rec.Version}
		out[i] = &profile.Snapshot{Primary: p, Seasonal: make([]*profile.Profile, len(snap.Seasonal)), Records: recs}
	}
	return out
}

func heapAlloc() int64 {
	runtime.GC()
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return int64(m.HeapAlloc)
}

// The cache charges each entry its estimated heap size; the estimate must
// be close to what decoded snapshots really take, or the byte budget would
// not bound memory.
func TestSnapshotMemSizeMatchesHeap(t *testing.T) {
	const n = 2000
	typical := typicalSnapshot(t)
	before := heapAlloc()
	snaps := decodeSnapshots(t, typical, n)
	real := float64(heapAlloc()-before) / n
	est := float64(snaps[0].MemSize())
	t.Logf("typical cached snapshot: %d-byte record, estimated %.0f bytes, measured %.0f bytes of heap", len(snaps[0].Records[0].Data), est, real)
	assert.InDelta(t, 1, est/real, 0.25, "estimate %.0f vs measured %.0f", est, real)
	runtime.KeepAlive(snaps)
}

// Filling the cache with three times its budget keeps the heap it holds
// within the budget.
func TestCacheStaysWithinBudget(t *testing.T) {
	const budget = 16 << 20
	typical := typicalSnapshot(t)
	per := typical.MemSize()
	n := 3 * budget / per
	pc, err := newProfileCache(budget, time.Hour)
	require.NoError(t, err)
	defer pc.close()
	pol := &profile.Policy{}
	before := heapAlloc()
	for _, s := range decodeSnapshots(t, typical, n) {
		pc.set(s.Primary.ID, s, pol)
	}
	pc.c.Wait()
	held := heapAlloc() - before
	t.Logf("%d snapshots of ~%d bytes offered to a %d-byte cache: %d bytes of heap held", n, per, budget, held)
	assert.LessOrEqual(t, held, int64(budget*11/10), "the cache holds more than its budget")
	assert.GreaterOrEqual(t, held, int64(budget/2), "the cost estimate wastes the budget")
}
