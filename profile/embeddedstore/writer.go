package embeddedstore

import (
	"context"
	"errors"
	"fmt"
	"sync/atomic"
	"time"

	"github.com/etalage/etalage/profile"
	bolt "go.etcd.io/bbolt"
)

// bbolt runs one write transaction at a time and looks at no context: a
// Put that waits for the writer lock behind 63 others (each with its own
// fsync) answers long after its deadline. So profile writes (Put, and the
// Link, Unlink, Delete, AddClaimant and DropClaimant of identify and
// erasure) queue here and one goroutine commits them in batches, one transaction and one fsync for
// every write waiting, and a write whose deadline has passed, or would pass
// before the commit is expected to end, is refused with ErrUnavailable and
// never committed: a caller told "not stored" can retry without counting
// twice.
const (
	maxQueue = 4096 // writes waiting; beyond it a Put fails at once
	maxBatch = 256  // writes in one transaction
)

// putReq is one write waiting for the writer: a Put's writes, or fn.
type putReq struct {
	ctx    context.Context
	op     string // what the errors name: "put profile", "link", …
	pid    string
	writes []profile.Write
	// fn, when set, is the write instead of pid's writes: it runs in the
	// batch's transaction and any error it returns fails the batch.
	fn func(tx *bolt.Tx, now time.Time) error
	// state: reqQueued until the writer claims it for a commit
	// (reqClaimed) or the caller or the writer gives it up (reqAbandoned).
	// Only a claimed write is ever committed, and a claimed write's caller
	// waits for the commit's outcome whatever its context says.
	state atomic.Int32
	done  chan error
}

const (
	reqQueued int32 = iota
	reqClaimed
	reqAbandoned
)

var (
	errQueueFull = errors.New("write queue full")
	errNothing   = errors.New("nothing to commit") // rolls back an empty batch
)

// Put applies the writes atomically if every expected version holds; the
// primary write's links take its expiry in the same transaction. It
// returns within ctx's deadline (give or take one commit under way): a
// write that cannot be committed by then is ErrUnavailable and not stored.
func (s *Store) Put(ctx context.Context, pid string, writes []profile.Write) error {
	return s.write(ctx, &putReq{ctx: ctx, op: "put profile", pid: pid, writes: writes})
}

// update runs fn in a transaction of the writer, within ctx's deadline as
// a Put: an error means nothing of fn was committed, nil that it was.
func (s *Store) update(ctx context.Context, op string, fn func(tx *bolt.Tx, now time.Time) error) error {
	return s.write(ctx, &putReq{ctx: ctx, op: op, fn: fn})
}

// write queues r for the writer and waits for its commit, or for ctx to
// end while r is still waiting.
func (s *Store) write(ctx context.Context, r *putReq) error {
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("%s: %w: %w", r.op, profile.ErrUnavailable, err)
	}
	r.done = make(chan error, 1)
	s.closing.RLock()
	if s.closed {
		s.closing.RUnlock()
		return fmt.Errorf("%s: %w: store closed", r.op, profile.ErrUnavailable)
	}
	select {
	case s.queue <- r:
	default:
		s.closing.RUnlock()
		return fmt.Errorf("%s: %w: %w", r.op, profile.ErrUnavailable, errQueueFull)
	}
	s.closing.RUnlock()
	select {
	case err := <-r.done:
		return err
	case <-ctx.Done():
		if r.state.CompareAndSwap(reqQueued, reqAbandoned) {
			return fmt.Errorf("%s: %w: %w", r.op, profile.ErrUnavailable, ctx.Err())
		}
		// Claimed: the commit is under way and its outcome stands.
		return <-r.done
	}
}

// writer commits queued writes until the store closes, then refuses what
// is left.
func (s *Store) writer() {
	defer s.wg.Done()
	batch := make([]*putReq, 0, maxBatch)
	for {
		select {
		case <-s.stop:
			for {
				select {
				case r := <-s.queue:
					r.done <- fmt.Errorf("%s: %w: store closed", r.op, profile.ErrUnavailable)
				default:
					return
				}
			}
		case r := <-s.queue:
			batch = append(batch[:0], r)
		}
	more:
		for len(batch) < maxBatch {
			select {
			case r := <-s.queue:
				batch = append(batch, r)
			default:
				break more
			}
		}
		s.commit(batch)
		clear(batch)
	}
}

// commit commits the writes of batch in one transaction. Writes are
// claimed only once the transaction has begun (bbolt's writer lock may be
// held by the sweeper or a definitions write meanwhile), and only those that
// can still be committed before their deadline. A write whose versions do
// not hold fails alone with ErrConflict; a failing transaction fails every
// claimed write.
func (s *Store) commit(batch []*putReq) {
	var claimed []*putReq
	var results []error
	start := time.Now()
	err := s.db.Update(func(tx *bolt.Tx) error {
		expect := time.Duration(s.commitTime.Load()) * 2
		for _, r := range batch {
			if dl, ok := r.ctx.Deadline(); ok && time.Until(dl) < expect {
				if r.state.CompareAndSwap(reqQueued, reqAbandoned) {
					r.done <- fmt.Errorf("%s: %w: %w", r.op, profile.ErrUnavailable, context.DeadlineExceeded)
				}
				continue
			}
			if r.state.CompareAndSwap(reqQueued, reqClaimed) {
				claimed = append(claimed, r)
			}
		}
		if len(claimed) == 0 {
			return errNothing
		}
		start = time.Now()
		results = make([]error, len(claimed))
		now := s.now()
		for i, r := range claimed {
			if r.fn != nil {
				if err := r.fn(tx, now); err != nil {
					return err
				}
				continue
			}
			if err := put(tx, r.pid, r.writes, now); err != nil {
				if !errors.Is(err, profile.ErrConflict) {
					return err
				}
				results[i] = err
			}
		}
		if s.beforeCommit != nil {
			s.beforeCommit()
		}
		return nil
	})
	if errors.Is(err, errNothing) {
		return
	}
	took := time.Since(start)
	// A moving average of commit times: how close to its deadline a write
	// may still be claimed.
	old := time.Duration(s.commitTime.Load())
	s.commitTime.Store(int64(old - old/8 + took/8))
	for i, r := range claimed {
		e := results[i]
		if err != nil {
			e = err
		}
		r.done <- wrap(r.op, e)
	}
}

// put applies one Put's writes in tx. It checks every expected version
// before it writes anything, so that ErrConflict leaves tx as it was; any
// other error must fail the whole transaction.
func put(tx *bolt.Tx, pid string, writes []profile.Write, now time.Time) error {
	b := tx.Bucket(bucketRecords)
	for _, w := range writes {
		ver, _, _ := decode(b.Get(recordKey(pid, w.Season)), now)
		if ver != w.Expect {
			return profile.ErrConflict
		}
	}
	for _, w := range writes {
		k := recordKey(pid, w.Season)
		if w.Data == nil {
			if err := b.Delete(k); err != nil {
				return err
			}
			continue
		}
		v := encode(w.Version, w.TTL, now, w.Data)
		if err := b.Put(k, v); err != nil {
			return err
		}
		if w.Season == "" {
			if err := expireLinks(tx.Bucket(bucketLinks), w.Links, pid, v[8:16], now); err != nil {
				return err
			}
		}
	}
	// Counted in the transaction that stores the profile: both or neither.
	tb := tx.Bucket(bucketTallies)
	for _, w := range writes {
		for _, t := range w.Tallies {
			if err := addTally(tb, t); err != nil {
				return err
			}
		}
	}
	return nil
}
