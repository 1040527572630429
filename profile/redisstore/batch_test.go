package redisstore_test

import (
	"context"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/etalage/etalage/profile"
	"github.com/etalage/etalage/profile/redisstore"
	"github.com/etalage/etalage/profile/redisstore/redistest"
	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// batchSizes records the size of every coalesced pipeline.
type batchSizes struct {
	mu    sync.Mutex
	sizes []int
}

func (b *batchSizes) observe(n int) {
	b.mu.Lock()
	b.sizes = append(b.sizes, n)
	b.mu.Unlock()
}

func (b *batchSizes) max() int {
	b.mu.Lock()
	defer b.mu.Unlock()
	m := 0
	for _, n := range b.sizes {
		m = max(m, n)
	}
	return m
}

func (b *batchSizes) total() int {
	b.mu.Lock()
	defer b.mu.Unlock()
	t := 0
	for _, n := range b.sizes {
		t += n
	}
	return t
}

// seed stores a primary and one seasonal record per profile, each holding
// data that names the profile, and returns the profile ids.
func seed(t *testing.T, st profile.Store, n int) []string {
	t.Helper()
	pids := make([]string, n)
	for i := range pids {
		pids[i] = profile.NewID()
		require.NoError(t, st.Put(context.Background(), pids[i], []profile.Write{
			{Version: 1, Data: []byte("primary of " + pids[i])},
			{Season: "2026", Version: 1, Data: []byte("season of " + pids[i])},
		}))
	}
	return pids
}

// TestGetConcurrentAnswersEachCaller: many goroutines read different
// profiles at once; their reads are coalesced into pipelines, and each
// caller gets its own profile's records, on one Redis and on a Cluster
// (where go-redis splits each pipeline per node).
func TestGetConcurrentAnswersEachCaller(t *testing.T) {
	for name, url := range map[string]func(t *testing.T) string{
		"single":  func(t *testing.T) string { return "redis://" + redistest.Server(t) + "/0" },
		"cluster": func(t *testing.T) string { return "redis-cluster://" + strings.Join(redistest.Cluster(t), ",") },
	} {
		t.Run(name, func(t *testing.T) {
			opts := redistest.Options()
			opts.Prefix = "b" + name
			st, err := redisstore.Open(context.Background(), url(t), opts)
			require.NoError(t, err)
			t.Cleanup(func() { st.Close() })
			var sizes batchSizes
			st.ObserveBatches(sizes.observe)
			pids := seed(t, st, 50)
			const goroutines, each = 64, 40
			var wg sync.WaitGroup
			var wrong atomic.Int64
			for g := range goroutines {
				wg.Go(func() {
					for i := range each {
						pid := pids[(g*7+i)%len(pids)]
						recs, err := st.Get(context.Background(), pid, []string{"2026", "1999"})
						if !assert.NoError(t, err) || !assert.Len(t, recs, 3) {
							return
						}
						if string(recs[0].Data) != "primary of "+pid || string(recs[1].Data) != "season of "+pid || recs[2].Version != 0 {
							wrong.Add(1)
						}
					}
				})
			}
			wg.Wait()
			assert.Zero(t, wrong.Load(), "answers that went to the wrong caller")
			assert.Equal(t, goroutines*each, sizes.total(), "every read is counted in one batch")
			assert.Greater(t, sizes.max(), 1, "concurrent reads were never coalesced")
		})
	}
}

// stall makes the Redis at addr sleep for d (DEBUG SLEEP) and returns when
// it has started; the returned channel yields the command's result.
func stall(t *testing.T, addr string, d time.Duration) <-chan error {
	t.Helper()
	c := redis.NewClient(&redis.Options{Addr: addr})
	t.Cleanup(func() { c.Close() })
	require.NoError(t, c.Ping(context.Background()).Err())
	done := make(chan error, 1)
	go func() { done <- c.Do(context.Background(), "DEBUG", "SLEEP", d.Seconds()).Err() }()
	time.Sleep(50 * time.Millisecond) // the sleep has begun: Redis answers no one
	return done
}

// TestGetWaitingReadsGoAsOneBatch: reads that arrive while the only
// pipeline is out wait, and all go in the next one, whatever their number
// up to the maximum.
func TestGetWaitingReadsGoAsOneBatch(t *testing.T) {
	p := redistest.StartServer(t, "--enable-debug-command", "yes")
	st, err := redisstore.Open(context.Background(), "redis://"+p.Addr+"/0", redisstore.Options{ReadPipelines: 1, MaxBatch: 8, ReadTimeout: 2 * time.Second})
	require.NoError(t, err)
	t.Cleanup(func() { st.Close() })
	pids := seed(t, st, 12)
	var sizes batchSizes
	st.ObserveBatches(sizes.observe)

	slept := stall(t, p.Addr, 700*time.Millisecond)
	var wg sync.WaitGroup
	wg.Go(func() { // the first read takes the one pipeline and waits on Redis
		_, err := st.Get(context.Background(), pids[0], nil)
		assert.NoError(t, err)
	})
	time.Sleep(100 * time.Millisecond)
	for _, pid := range pids[1:] {
		wg.Go(func() {
			recs, err := st.Get(context.Background(), pid, nil)
			if assert.NoError(t, err) {
				assert.Equal(t, "primary of "+pid, string(recs[0].Data))
			}
		})
	}
	wg.Wait()
	require.NoError(t, <-slept)
	sizes.mu.Lock()
	defer sizes.mu.Unlock()
	assert.Equal(t, []int{1, 8, 3}, sizes.sizes, "the 11 waiting reads go as a full batch of 8, then the 3 left")
}

// TestGetRedisKilledMidBatch: Redis dies while a batch is out and more
// reads wait; every caller gets an error, none hangs, and reads work again
// once Redis is back.
func TestGetRedisKilledMidBatch(t *testing.T) {
	p := redistest.StartServer(t, "--enable-debug-command", "yes")
	st, err := redisstore.Open(context.Background(), "redis://"+p.Addr+"/0", redisstore.Options{ReadPipelines: 2, ReadTimeout: 5 * time.Second})
	require.NoError(t, err)
	t.Cleanup(func() { st.Close() })
	pids := seed(t, st, 20)

	stall(t, p.Addr, 3*time.Second)
	errs := make(chan error, len(pids))
	for _, pid := range pids {
		go func() {
			_, err := st.Get(context.Background(), pid, nil)
			errs <- err
		}()
	}
	time.Sleep(100 * time.Millisecond) // batches out, the rest waiting
	p.Kill()
	timeout := time.After(3 * time.Second)
	for range pids {
		select {
		case err := <-errs:
			assert.ErrorIs(t, err, profile.ErrUnavailable)
		case <-timeout:
			t.Fatal("a reader still waits after Redis died")
		}
	}
	p.Restart()
	require.Eventually(t, func() bool { return st.Ping(context.Background()) == nil }, 5*time.Second, 50*time.Millisecond)
	recs, err := st.Get(context.Background(), pids[0], nil)
	require.NoError(t, err)
	assert.Zero(t, recs[0].Version, "nothing was persisted")
}

// TestGetAfterClose: Close answers the reads waiting for a pipeline and
// every later read with an error; nothing hangs.
func TestGetAfterClose(t *testing.T) {
	p := redistest.StartServer(t, "--enable-debug-command", "yes")
	st, err := redisstore.Open(context.Background(), "redis://"+p.Addr+"/0", redisstore.Options{ReadPipelines: 1, ReadTimeout: 2 * time.Second})
	require.NoError(t, err)
	pids := seed(t, st, 5)
	var sizes batchSizes
	st.ObserveBatches(sizes.observe)

	slept := stall(t, p.Addr, 500*time.Millisecond)
	errs := make(chan error, len(pids))
	for _, pid := range pids {
		go func() {
			_, err := st.Get(context.Background(), pid, nil)
			errs <- err
		}()
	}
	time.Sleep(100 * time.Millisecond)
	closed := make(chan error, 1)
	go func() { closed <- st.Close() }()
	failed := 0
	timeout := time.After(3 * time.Second)
	for range pids {
		select {
		case err := <-errs:
			if err != nil {
				assert.ErrorIs(t, err, profile.ErrUnavailable)
				failed++
			}
		case <-timeout:
			t.Fatal("a reader still waits after Close")
		}
	}
	// The batch that was out is answered; the reads still waiting are not
	// sent.
	require.Len(t, sizes.sizes, 1)
	assert.Equal(t, len(pids)-sizes.sizes[0], failed)
	select {
	case <-closed:
	case <-time.After(3 * time.Second):
		t.Fatal("Close hangs")
	}
	require.NoError(t, <-slept)
	_, err = st.Get(context.Background(), pids[0], nil)
	assert.ErrorIs(t, err, profile.ErrUnavailable)
}
