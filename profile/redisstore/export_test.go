package redisstore

import (
	"context"

	"github.com/redis/go-redis/v9"
)

// The batcher, for its tests in redisstore_test (which may import
// redistest; this package's own tests may not).

type Batcher = batcher

func NewBatcher(c redis.UniversalClient, workers, max int) *Batcher {
	return newBatcher(c, workers, max)
}

func (b *batcher) MGet(ctx context.Context, keys []string) ([]any, error) { return b.mget(ctx, keys) }
func (b *batcher) Shutdown()                                              { b.shutdown() }
func (b *batcher) Observe(f func(int))                                    { b.observe.Store(&f) }

// BatchContext is the context a batch of reads with these contexts runs
// under.
func BatchContext(ctxs ...context.Context) (context.Context, context.CancelFunc) {
	batch := make([]*read, len(ctxs))
	for i, c := range ctxs {
		batch[i] = &read{ctx: c}
	}
	return batchContext(batch)
}
