package profile_test

import (
	"context"
	"testing"

	"github.com/etalage/etalage/profile"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func lines(p *profile.Profile, sku string) uint32 {
	if p == nil {
		return 0
	}
	for _, c := range p.Behaviour {
		if c.Type == profile.Purchase && c.Key.SKU == sku {
			return c.Total
		}
	}
	return 0
}

// TestSharedOrderCountsOnceAcrossAMerge: an anonymous visitor and a known
// contact both counted the same order (its shoe in the primary profile, its
// gift in the Sinterklaas one) before the visitor identifies as the
// contact: after the merge the order counts once in each, its lines once,
// and the visitor's own order adds.
func TestSharedOrderCountsOnceAcrossAMerge(t *testing.T) {
	allStores(t, fixedNow, func(t *testing.T, svc *profile.Service, st profile.Store) {
		ctx := context.Background()
		pol := policy()
		shared := profile.Event{Type: profile.Purchase, OrderID: "o-shared", Trusted: true, Items: []profile.Item{
			{SKU: "shoe", Price: 50}, {SKU: "playmobil", Category: "toys", Price: 40, Gift: true},
		}}
		contact, err := svc.Contact(ctx, "email:buyer@example.nl", pol)
		require.NoError(t, err)
		_, err = svc.Record(ctx, contact, nil, []profile.Event{shared}, pol)
		require.NoError(t, err)
		anon := profile.NewID()
		_, err = svc.Record(ctx, anon, nil, []profile.Event{shared, {Type: profile.Purchase, OrderID: "o-anon", Trusted: true, Items: []profile.Item{{SKU: "shoe", Price: 50}}}}, pol)
		require.NoError(t, err)

		snap, err := svc.Record(ctx, anon, nil, []profile.Event{{Type: profile.Identify, Proven: true, Email: "buyer@example.nl"}}, pol)
		require.NoError(t, err)
		require.Equal(t, contact, snap.Primary.ID, "merged into the contact")
		assert.Equal(t, uint32(2), purchaseCount(snap.Primary), "o-shared once, o-anon once")
		assert.Equal(t, uint32(2), lines(snap.Primary, "shoe"), "o-shared's shoe once, o-anon's once")
		assert.Len(t, snap.Primary.Orders, 2)
		require.NotNil(t, snap.Seasonal[0])
		assert.Equal(t, uint32(1), purchaseCount(snap.Seasonal[0]), "the gift part of o-shared once")
		assert.Equal(t, uint32(1), lines(snap.Seasonal[0], "playmobil"))

		// As stored, too.
		loaded, err := svc.Load(ctx, contact, pol)
		require.NoError(t, err)
		assert.Equal(t, uint32(2), purchaseCount(loaded.Primary))
		assert.Equal(t, uint32(1), purchaseCount(loaded.Seasonal[0]))
	})
}
