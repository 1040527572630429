package embeddedstore

import (
	"context"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/etalage/etalage/profile"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	bolt "go.etcd.io/bbolt"
)

func openTest(t *testing.T) *Store {
	t.Helper()
	s, err := Open(t.TempDir())
	require.NoError(t, err)
	t.Cleanup(func() { s.Close() })
	return s
}

func record(data string) []profile.Write {
	return []profile.Write{{Expect: 0, Version: 1, Data: []byte(data), TTL: time.Hour}}
}

// While bbolt's writer lock is held (a slow commit, the sweeper, an erasure),
// a Put whose deadline passes answers at once, ErrUnavailable, and is never
// committed later: its caller answers degraded and the snippet retries.
func TestPutGivesUpWhileTheWriterLockIsHeld(t *testing.T) {
	s := openTest(t)
	err := answerWhileLocked(t, s, 50*time.Millisecond, func(ctx context.Context) error {
		return s.Put(ctx, "p1", record("late"))
	})
	require.Error(t, err)
	assert.ErrorIs(t, err, profile.ErrUnavailable)

	// A later write goes through, and the abandoned one never landed.
	require.NoError(t, s.Put(context.Background(), "p2", record("on time")))
	recs, err := s.Get(context.Background(), "p1", nil)
	require.NoError(t, err)
	assert.Zero(t, recs[0].Version, "a write answered ErrUnavailable is not stored")
}

// With 64 concurrent writers and a slow disk, every Put answers by its
// deadline give or take one commit, stored exactly when it says so. Writes
// waiting together share one commit, so most make it.
func TestConcurrentWritersKeepTheirDeadline(t *testing.T) {
	const (
		writers  = 64
		deadline = 150 * time.Millisecond
		commit   = 25 * time.Millisecond
	)
	s := openTest(t)
	s.beforeCommit = func() { time.Sleep(commit) }
	var wg sync.WaitGroup
	errs := make([]error, writers)
	late := make([]time.Duration, writers)
	for i := range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			ctx, cancel := context.WithTimeout(context.Background(), deadline)
			defer cancel()
			dl, _ := ctx.Deadline()
			errs[i] = s.Put(ctx, "p"+strconv.Itoa(i), record("x"))
			late[i] = time.Since(dl)
		}()
	}
	wg.Wait()
	stored := 0
	for i := range writers {
		recs, err := s.Get(context.Background(), "p"+strconv.Itoa(i), nil)
		require.NoError(t, err)
		if errs[i] == nil {
			stored++
			assert.NotZero(t, recs[0].Version, "writer %d was told its write is stored", i)
		} else {
			assert.ErrorIs(t, errs[i], profile.ErrUnavailable)
			assert.Zero(t, recs[0].Version, "writer %d was told its write is not stored", i)
		}
		// Generous: one commit under way plus scheduling on a busy
		// machine. Writers queued behind one another's commits, as bbolt
		// alone makes them, are over a second late.
		assert.Less(t, late[i], commit+500*time.Millisecond, "writer %d answered late", i)
	}
	t.Logf("%d of %d writes stored", stored, writers)
	assert.Greater(t, stored, writers/2, "writes waiting together share a commit")
}

// answerWhileLocked holds bbolt's writer lock while call runs with
// deadline d and returns its answer; a call still waiting 5 s after its
// deadline fails the test. The lock is free again when it returns.
func answerWhileLocked(t *testing.T, s *Store, d time.Duration, call func(ctx context.Context) error) error {
	t.Helper()
	held, release := make(chan struct{}), make(chan struct{})
	go s.db.Update(func(*bolt.Tx) error {
		close(held)
		<-release
		return nil
	})
	<-held
	var once sync.Once
	free := func() { once.Do(func() { close(release) }) }
	defer free()
	ctx, cancel := context.WithTimeout(context.Background(), d)
	defer cancel()
	answered := make(chan error, 1)
	go func() { answered <- call(ctx) }()
	select {
	case err := <-answered:
		return err
	case <-time.After(d + 5*time.Second):
		free()
		<-answered
		t.Fatalf("still waiting for the writer lock 5 s after a %v deadline", d)
		return nil
	}
}

// Link, Unlink, Delete, AddClaimant and DropClaimant (identify, erasure)
// wait for the writer like a Put: while bbolt's writer lock is held, one
// whose deadline passes answers soon after it, ErrUnavailable wrapping
// the deadline, and is never committed later.
func TestWritesGiveUpWhileTheWriterLockIsHeld(t *testing.T) {
	s := openTest(t)
	bg := context.Background()
	_, err := s.Link(bg, "email:kept", "p0", time.Hour)
	require.NoError(t, err)
	require.NoError(t, s.Put(bg, "p1", record("kept")))
	require.NoError(t, s.AddClaimant(bg, "email:claimed", "p1", time.Hour))

	for _, tc := range []struct {
		name  string
		call  func(ctx context.Context) error
		check func(t *testing.T) // nothing was written
	}{
		{"link", func(ctx context.Context) error {
			_, err := s.Link(ctx, "email:new", "p2", time.Hour)
			return err
		}, func(t *testing.T) {
			_, err := s.Lookup(bg, "email:new")
			assert.ErrorIs(t, err, profile.ErrNotFound)
		}},
		{"unlink", func(ctx context.Context) error { return s.Unlink(ctx, "email:kept", "p0") }, func(t *testing.T) {
			got, err := s.Lookup(bg, "email:kept")
			require.NoError(t, err)
			assert.Equal(t, "p0", got)
		}},
		{"delete", func(ctx context.Context) error { return s.Delete(ctx, "p1") }, func(t *testing.T) {
			recs, err := s.Get(bg, "p1", nil)
			require.NoError(t, err)
			assert.Equal(t, "kept", string(recs[0].Data))
		}},
		{"add claimant", func(ctx context.Context) error { return s.AddClaimant(ctx, "email:new", "p2", time.Hour) }, func(t *testing.T) {
			got, err := s.Claimants(bg, "email:new")
			require.NoError(t, err)
			assert.Empty(t, got)
		}},
		{"drop claimant", func(ctx context.Context) error { return s.DropClaimant(ctx, "email:claimed", "") }, func(t *testing.T) {
			got, err := s.Claimants(bg, "email:claimed")
			require.NoError(t, err)
			assert.Equal(t, []string{"p1"}, got)
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := answerWhileLocked(t, s, 100*time.Millisecond, tc.call)
			require.Error(t, err)
			assert.ErrorIs(t, err, profile.ErrUnavailable)
			assert.ErrorIs(t, err, context.DeadlineExceeded)
			// A later write goes through, after which the abandoned one
			// can no longer be under way.
			require.NoError(t, s.Put(bg, "later-"+tc.name, record("x")))
			tc.check(t)
		})
	}
}
