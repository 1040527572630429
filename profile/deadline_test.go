package profile_test

import (
	"context"
	"sync/atomic"
	"testing"
	"time"

	"github.com/etalage/etalage/profile"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// contactAndVisitor makes a contact with the address and an anonymous
// visitor with one page view of /before.
func contactAndVisitor(t *testing.T, svc *profile.Service, email string) (contact, anon string) {
	t.Helper()
	ctx := context.Background()
	contact, err := svc.Contact(ctx, "email:"+email, policy())
	require.NoError(t, err)
	anon = profile.NewID()
	_, err = svc.Record(ctx, anon, nil, []profile.Event{{Type: profile.PageView, URL: "/before"}}, policy())
	require.NoError(t, err)
	return contact, anon
}

// TestLockWaitHonoursTheDeadline: a write queued behind another write of
// the same profile on this node gives up when its context ends, with
// ErrUnavailable (which the edge answers as degraded), and stores
// nothing: page views, a proven identify that merges (the anonymous
// profile's lock and the contact's), an exposure.
func TestLockWaitHonoursTheDeadline(t *testing.T) {
	allStores(t, fixedNow, func(t *testing.T, svc *profile.Service, st profile.Store) {
		ctx := context.Background()
		pol := policy()
		contact, anon := contactAndVisitor(t, svc, "waiter@example.nl")

		view := []profile.Event{{Type: profile.PageView, URL: "/late"}}
		identify := []profile.Event{{Type: profile.Identify, Proven: true, Email: "waiter@example.nl"}}
		for _, tc := range []struct {
			name   string
			locked string
			call   func(ctx context.Context) error
		}{
			{"record", anon, func(ctx context.Context) error {
				_, err := svc.Record(ctx, anon, nil, view, pol)
				return err
			}},
			{"identify, the visitor's lock", anon, func(ctx context.Context) error {
				_, err := svc.Record(ctx, anon, nil, identify, pol)
				return err
			}},
			{"identify, the contact's lock", contact, func(ctx context.Context) error {
				_, err := svc.Record(ctx, anon, nil, identify, pol)
				return err
			}},
			{"expose", anon, func(ctx context.Context) error {
				_, err := svc.Expose(ctx, anon, nil, []profile.Assignment{{Experiment: "hero", Variant: "b", At: novNow.Unix()}}, pol)
				return err
			}},
		} {
			t.Run(tc.name, func(t *testing.T) {
				release := svc.HoldLock(tc.locked)
				defer release()
				cctx, cancel := context.WithTimeout(ctx, 100*time.Millisecond)
				defer cancel()
				done := make(chan error, 1)
				go func() { done <- tc.call(cctx) }()
				select {
				case err := <-done:
					require.Error(t, err)
					assert.ErrorIs(t, err, profile.ErrUnavailable)
					assert.ErrorIs(t, err, context.DeadlineExceeded)
				case <-time.After(10 * time.Second):
					t.Fatal("still waiting for the lock 10 s after a 100 ms deadline")
				}
			})
		}
		// The lock works again once free; a merge cut short by the deadline
		// (frozen, not yet written into the contact) finishes now.
		snap, err := svc.Record(ctx, anon, nil, identify, pol)
		require.NoError(t, err)
		assert.Equal(t, contact, snap.Primary.ID)
		assert.Zero(t, views(snap.Primary, "/late"), "nothing written after the deadline")
		assert.Equal(t, uint32(1), views(snap.Primary, "/before"), "the visitor's history merged once")
		assert.Empty(t, snap.Primary.Experiments, "no exposure written after the deadline")
	})
}

// failingPuts fails every Put of one profile while on: a write cut short
// (a deadline, a store that went away).
type failingPuts struct {
	profile.Store
	pid string
	on  atomic.Bool
}

func (f *failingPuts) Put(ctx context.Context, pid string, writes []profile.Write) error {
	if f.on.Load() && pid == f.pid {
		return profile.ErrUnavailable
	}
	return f.Store.Put(ctx, pid, writes)
}

// TestIdentifyFinishesAMergeCutShort: an identify whose merge was cut
// short (the visitor frozen under a forward, the contact's write failed)
// and then an identify again: the visitor's history lands in the contact,
// once. The cookie leaves the old id, so nothing else would finish it.
func TestIdentifyFinishesAMergeCutShort(t *testing.T) {
	allStores(t, fixedNow, func(t *testing.T, svc *profile.Service, st profile.Store) {
		ctx := context.Background()
		pol := policy()
		contact, anon := contactAndVisitor(t, svc, "cut@example.nl")
		f := &failingPuts{Store: st, pid: contact}
		svc = profile.NewService(f, profile.Options{Now: fixedNow})
		identify := []profile.Event{{Type: profile.Identify, Proven: true, Email: "cut@example.nl"}}
		f.on.Store(true)
		_, err := svc.Record(ctx, anon, nil, identify, pol)
		require.ErrorIs(t, err, profile.ErrUnavailable)
		f.on.Store(false)
		snap, err := svc.Record(ctx, anon, nil, identify, pol)
		require.NoError(t, err)
		assert.Equal(t, contact, snap.Primary.ID)
		assert.Equal(t, uint32(1), views(snap.Primary, "/before"), "the visitor's acknowledged page view, once")
		assert.Contains(t, snap.Primary.Aliases, anon)
	})
}
