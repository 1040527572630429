package redisstore_test

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/etalage/etalage/profile/redisstore"
	"github.com/etalage/etalage/profile/redisstore/redistest"
	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// gate is a go-redis hook that holds every MGET and pipeline until the test
// lets one through: Redis that answers exactly when told. (A new
// connection's handshake, a pipeline of its own, passes.)
type gate chan struct{}

func (g gate) DialHook(next redis.DialHook) redis.DialHook { return next }
func (g gate) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error {
		if cmd.Name() == "mget" {
			<-g
		}
		return next(ctx, cmd)
	}
}
func (g gate) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return func(ctx context.Context, cmds []redis.Cmder) error {
		if cmds[0].Name() == "mget" {
			<-g
		}
		return next(ctx, cmds)
	}
}

var _ redis.Hook = gate(nil)

// TestBatcherCallerDeadline: a caller whose context ends while its batch
// is out gets its error at once; the batch goes on, and the other caller in
// it gets its values when Redis answers.
func TestBatcherCallerDeadline(t *testing.T) {
	c := redis.NewClient(&redis.Options{Addr: redistest.Server(t), ContextTimeoutEnabled: true})
	t.Cleanup(func() { c.Close() })
	require.NoError(t, c.Set(context.Background(), "p", "patient", 0).Err())
	g := make(gate)
	c.AddHook(g)
	b := redisstore.NewBatcher(c, 1, 8)
	t.Cleanup(b.Shutdown)
	t.Cleanup(func() { close(g) }) // first: a failed test lets the worker go
	var mu sync.Mutex
	var sizes []int
	f := func(n int) { mu.Lock(); sizes = append(sizes, n); mu.Unlock() }
	b.Observe(f)

	var wg sync.WaitGroup
	wg.Go(func() { // the first read goes alone and holds the one worker
		_, err := b.MGet(context.Background(), []string{"x"})
		assert.NoError(t, err)
	})
	time.Sleep(50 * time.Millisecond)
	var patient []any
	wg.Go(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		var err error
		patient, err = b.MGet(ctx, []string{"p"})
		assert.NoError(t, err)
	})
	short := make(chan error, 1)
	start := time.Now()
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
		defer cancel()
		_, err := b.MGet(ctx, []string{"s"})
		short <- err
	}()
	time.Sleep(100 * time.Millisecond) // both wait for the worker
	g <- struct{}{}                    // the first read is answered; the two go out together
	select {
	case err := <-short:
		assert.ErrorIs(t, err, context.DeadlineExceeded)
		assert.Less(t, time.Since(start), time.Second)
	case <-time.After(3 * time.Second):
		t.Fatal("the caller waits for its batch past its deadline")
	}
	g <- struct{}{} // Redis answers the batch
	wg.Wait()
	assert.Equal(t, []any{"patient"}, patient)
	mu.Lock()
	defer mu.Unlock()
	assert.Equal(t, []int{1, 2}, sizes)
}

// TestBatcherDeadlineIsTheLatest: a batch runs under the latest deadline
// of its callers, and under none when one of them has none.
func TestBatcherDeadlineIsTheLatest(t *testing.T) {
	now := time.Now()
	at := func(d time.Duration) context.Context {
		ctx, cancel := context.WithDeadline(context.Background(), now.Add(d))
		t.Cleanup(cancel)
		return ctx
	}
	ctx, cancel := redisstore.BatchContext(at(time.Second), at(3*time.Second), at(2*time.Second))
	d, ok := ctx.Deadline()
	cancel()
	require.True(t, ok)
	assert.Equal(t, now.Add(3*time.Second), d)
	ctx, cancel = redisstore.BatchContext(at(time.Second), context.Background())
	_, ok = ctx.Deadline()
	cancel()
	assert.False(t, ok)
}
