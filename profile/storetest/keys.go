package storetest

import (
	"context"
	"testing"
	"time"

	"github.com/etalage/etalage/profile"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// KeyLister is what a store handed to Run may also implement (its test
// harness, usually, wrapping the store): every live key that belongs to
// one profile — its records and whatever index the store keeps beside
// them — by name, with its expiry (zero: none). Run checks with it that
// nothing of a profile outlives the records it serves.
type KeyLister interface {
	ProfileKeys(ctx context.Context, pid string) (map[string]time.Time, error)
}

func runKeys(t *testing.T, open func(t *testing.T) profile.Store) {
	ctx := context.Background()

	t.Run("SeasonIndexEndsWithItsRecords", func(t *testing.T) {
		// "What we erase is gone": an index of a profile's seasonal
		// records ends with the last of them, also when a record is
		// written with a shorter lifetime than before (definitions
		// lowered a season's TTL) or deleted.
		st := open(t)
		kl, ok := st.(KeyLister)
		if !ok {
			t.Skip("the store lists no keys")
		}
		pid := profile.NewID()
		keys := func() map[string]time.Time {
			t.Helper()
			ks, err := kl.ProfileKeys(ctx, pid)
			require.NoError(t, err)
			return ks
		}
		// beyond counts the keys expiring after at, or never.
		beyond := func(ks map[string]time.Time, at time.Time) int {
			n := 0
			for _, exp := range ks {
				if exp.IsZero() || exp.After(at) {
					n++
				}
			}
			return n
		}
		require.NoError(t, st.Put(ctx, pid, []profile.Write{
			{Expect: 0, Version: 1, Data: []byte("p"), TTL: time.Hour},
			{Season: "a", Expect: 0, Version: 1, Data: []byte("a"), TTL: time.Hour},
			{Season: "b", Expect: 0, Version: 1, Data: []byte("b"), TTL: time.Hour},
		}))
		require.NoError(t, st.Put(ctx, pid, []profile.Write{
			{Season: "a", Expect: 1, Version: 2, Data: []byte("a"), TTL: 1200 * time.Millisecond},
			{Season: "b", Expect: 1, Version: 2, Data: nil},
		}))
		ks := keys()
		assert.Equal(t, 1, beyond(ks, time.Now().Add(time.Minute)), "only the primary record lives on for the hour: %v", ks)
		require.Eventually(t, func() bool {
			recs, err := st.Get(ctx, pid, []string{"a"})
			return err == nil && recs[1].Version == 0
		}, 10*time.Second, 20*time.Millisecond, "season a expires")
		ks = keys()
		assert.Len(t, ks, 1, "once every seasonal record is gone, only the primary is left: %v", ks)

		// The index keeps up with a record without expiry, and one
		// record of shorter life ending does not take the index along:
		// an erasure still finds the other.
		require.NoError(t, st.Put(ctx, pid, []profile.Write{
			{Season: "c", Expect: 0, Version: 1, Data: []byte("c")},
			{Season: "d", Expect: 0, Version: 1, Data: []byte("d"), TTL: 1100 * time.Millisecond},
		}))
		require.Eventually(t, func() bool {
			recs, err := st.Get(ctx, pid, []string{"d"})
			return err == nil && recs[1].Version == 0
		}, 10*time.Second, 20*time.Millisecond, "season d expires")
		// A write after d ended: the index drops d and stays without
		// expiry for c.
		require.NoError(t, st.Put(ctx, pid, []profile.Write{{Season: "e", Expect: 0, Version: 1, Data: []byte("e"), TTL: time.Millisecond}}))
		time.Sleep(50 * time.Millisecond)
		require.NoError(t, st.Delete(ctx, pid))
		recs, err := st.Get(ctx, pid, []string{"c"})
		require.NoError(t, err)
		assert.Zero(t, recs[1].Version, "the erasure found the record without expiry")
		assert.Empty(t, keys(), "nothing of the profile is left after its erasure")
	})
}
