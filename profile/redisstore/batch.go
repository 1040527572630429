package redisstore

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"
)

// errClosed answers reads asked of a closed store.
var errClosed = errors.New("store closed")

// batcher coalesces the MGETs of concurrent reads into go-redis pipelines:
// one write and one read on the socket for a whole batch instead of one
// each per read. A few workers wait on an unbuffered channel; a worker takes
// one read, then whatever other reads are already waiting (up to max), and
// sends them at once. Nothing waits for a batch to fill: an idle store sends
// a lone read as soon as it comes, and under load the reads that arrive
// during one round trip make the next batch. On a Cluster, go-redis splits
// the pipeline per node.
type batcher struct {
	c       redis.UniversalClient
	queue   chan *read
	closed  chan struct{}
	close   sync.Once
	wg      sync.WaitGroup
	max     int
	observe atomic.Pointer[func(int)]
}

// read is one caller's MGET. The worker that takes it owns it until it
// signals done; a caller that stops waiting (its context ended) leaves it
// to the worker and the garbage collector.
type read struct {
	ctx  context.Context
	keys []string
	vals []any
	err  error
	done chan struct{} // capacity 1: the worker never blocks on it
}

var reads = sync.Pool{New: func() any { return &read{done: make(chan struct{}, 1)} }}

func newBatcher(c redis.UniversalClient, workers, max int) *batcher {
	b := &batcher{c: c, queue: make(chan *read), closed: make(chan struct{}), max: max}
	b.wg.Add(workers)
	for range workers {
		go b.run()
	}
	return b
}

// mget reads keys in the next batch. It returns as soon as ctx ends, with
// ctx's error; the batch goes on for the other callers.
func (b *batcher) mget(ctx context.Context, keys []string) ([]any, error) {
	r := reads.Get().(*read)
	r.ctx, r.keys = ctx, keys
	select {
	case b.queue <- r:
	case <-ctx.Done():
		r.ctx, r.keys = nil, nil
		reads.Put(r)
		return nil, ctx.Err()
	case <-b.closed:
		r.ctx, r.keys = nil, nil
		reads.Put(r)
		return nil, errClosed
	}
	select {
	case <-r.done:
		vals, err := r.vals, r.err
		*r = read{done: r.done}
		reads.Put(r)
		return vals, err
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

// shutdown stops the workers once their batches are answered; callers
// waiting to be taken get errClosed.
func (b *batcher) shutdown() {
	b.close.Do(func() { close(b.closed) })
	b.wg.Wait()
}

func (b *batcher) run() {
	defer b.wg.Done()
	batch := make([]*read, 0, b.max)
	cmds := make([]*redis.SliceCmd, 0, b.max)
	for {
		// Closed first: once shutdown began, no new batch goes out even
		// when reads are waiting (they get errClosed).
		select {
		case <-b.closed:
			return
		default:
		}
		select {
		case r := <-b.queue:
			batch = append(batch, r)
		case <-b.closed:
			return
		}
	more:
		for len(batch) < b.max {
			select {
			case r := <-b.queue:
				batch = append(batch, r)
			default:
				break more
			}
		}
		cmds = b.send(batch, cmds)
		clear(batch)
		batch = batch[:0]
		clear(cmds)
		cmds = cmds[:0]
	}
}

// send runs one batch as a pipeline and answers every read in it.
func (b *batcher) send(batch []*read, cmds []*redis.SliceCmd) []*redis.SliceCmd {
	if f := b.observe.Load(); f != nil {
		(*f)(len(batch))
	}
	if len(batch) == 1 {
		// A lone read goes as a plain command: a pipeline costs more
		// allocations and gains nothing.
		r := batch[0]
		r.vals, r.err = b.c.MGet(r.ctx, r.keys...).Result()
		r.done <- struct{}{}
		return cmds
	}
	ctx, cancel := batchContext(batch)
	pipe := b.c.Pipeline()
	for _, r := range batch {
		if r.ctx.Err() != nil {
			// Its caller has its answer already; send nothing for it.
			cmds = append(cmds, nil)
			continue
		}
		cmds = append(cmds, pipe.MGet(ctx, r.keys...))
	}
	var execErr error
	if pipe.Len() > 0 {
		_, execErr = pipe.Exec(ctx)
	}
	cancel()
	for i, r := range batch {
		switch c := cmds[i]; {
		case c == nil:
			r.err = r.ctx.Err()
		case c.Err() != nil:
			r.err = c.Err()
		case execErr != nil && !errors.Is(execErr, redis.Nil) && c.Val() == nil:
			// Not sent or not answered: the pipeline's error is its own.
			r.err = execErr
		default:
			r.vals = c.Val()
		}
		r.done <- struct{}{}
	}
	return cmds
}

// batchContext is the context a batch runs under: one that lasts as long as the longest-waiting caller (no deadline when
// one of them has none). Callers whose context ends sooner stop waiting on
// their own.
func batchContext(batch []*read) (context.Context, context.CancelFunc) {
	var latest time.Time
	for _, r := range batch {
		d, ok := r.ctx.Deadline()
		if !ok {
			return context.Background(), func() {}
		}
		if d.After(latest) {
			latest = d
		}
	}
	return context.WithDeadline(context.Background(), latest)
}
