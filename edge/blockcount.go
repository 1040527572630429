package edge

import (
	"context"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/etalage/etalage/profile"
	"github.com/etalage/etalage/rules"
)

// The block report's counts are kept per node in memory and added to the
// store every Config.ReportFlush: a decide writes nothing for them. Each
// served block is counted under its visitor and day, so that a flush
// knows how often a block was served and to whom (the store keeps only
// a HyperLogLog of the visitors). In steady state counting allocates
// nothing: a flush swaps each shard's buffer for a spare one and clears
// it for reuse, keeping its capacity.
const (
	counterShards = 16
	// maxHits bounds the (visitor, day, block) entries a shard keeps
	// between flushes. Past half of it a flush starts early; past all of
	// it (the store down for long) blocks are still counted as served,
	// but their visitors no longer enter the sketch.
	maxHits = 1 << 16
	// maxCarry bounds the visitor ids kept from flushes the store
	// refused, for the next attempt; beyond it only the counts are kept.
	maxCarry = 1 << 18
)

// visit is one visitor on one day (in the shop's time zone).
type visit struct {
	day string
	pid string
}

// hit is one block served to one visitor on one day; a visitor's hits
// form a list through next (-1 ends it).
type hit struct {
	block  *rules.Block
	served uint32
	next   int32
}

type dayBlock struct{ day, block string }

// counterBuf is one shard's counts since the last flush.
type counterBuf struct {
	visits map[visit]int32 // the visitor's first hit
	hits   []hit
	over   map[dayBlock]int64 // served past maxHits: counted, visitors not kept
}

func newCounterBuf() *counterBuf {
	return &counterBuf{visits: map[visit]int32{}, over: map[dayBlock]int64{}}
}

type counterShard struct {
	mu         sync.Mutex
	cur, spare *counterBuf
	_          [40]byte // one shard per cache line
}

// blockCounter counts served blocks and clicks on them for the block
// report.
type blockCounter struct {
	shards  [counterShards]counterShard
	today   atomic.Pointer[dayCache]
	clickMu sync.Mutex
	clicks  map[dayBlock]int64
	flushMu sync.Mutex           // one flush at a time
	carry   []profile.BlockCount // what the store refused, tried again with the next flush
	kick    chan struct{}        // asks for an early flush
}

func newBlockCounter() *blockCounter {
	c := &blockCounter{clicks: map[dayBlock]int64{}, kick: make(chan struct{}, 1)}
	for i := range c.shards {
		c.shards[i].cur, c.shards[i].spare = newCounterBuf(), newCounterBuf()
	}
	return c
}

// dayCache is the day now falls in, in loc, as [start, end) unix seconds.
type dayCache struct {
	loc        *time.Location
	start, end int64
	day        string
}

// dayOf returns t's day (YYYY-MM-DD) in loc. The day of now is cached
// (isNow), so that a decide asks for it without allocating; a past time
// leaves the cache alone.
func (c *blockCounter) dayOf(t time.Time, loc *time.Location, isNow bool) string {
	u := t.Unix()
	if d := c.today.Load(); d != nil && d.loc == loc && u >= d.start && u < d.end {
		return d.day
	}
	y, m, dd := t.In(loc).Date()
	start := time.Date(y, m, dd, 0, 0, 0, 0, loc)
	d := &dayCache{loc: loc, start: start.Unix(), end: time.Date(y, m, dd+1, 0, 0, 0, 0, loc).Unix(), day: start.Format(time.DateOnly)}
	if isNow {
		c.today.Store(d)
	}
	return d.day
}

// served counts the blocks of choices as served to pid on day.
func (c *blockCounter) served(day, pid string, choices []rules.Choice) {
	if pid == "" {
		return
	}
	sh := &c.shards[pid[len(pid)-1]%counterShards]
	sh.mu.Lock()
	b := sh.cur
	k := visit{day, pid}
	head, ok := b.visits[k]
	if !ok {
		head = -1
	}
	first := head
	for i := range choices {
		blk := choices[i].Block
		if blk == nil {
			continue
		}
		j := first
		for j >= 0 && b.hits[j].block != blk {
			j = b.hits[j].next
		}
		switch {
		case j >= 0:
			b.hits[j].served++
		case len(b.hits) >= maxHits:
			b.over[dayBlock{day, blk.ID}]++
		default:
			b.hits = append(b.hits, hit{block: blk, served: 1, next: first})
			first = int32(len(b.hits) - 1)
		}
	}
	if first != head {
		b.visits[k] = first
	}
	full := len(b.hits) >= maxHits/2
	sh.mu.Unlock()
	if full {
		select {
		case c.kick <- struct{}{}:
		default:
		}
	}
}

// click counts one click on block on day.
func (c *blockCounter) click(day, block string) {
	c.clickMu.Lock()
	c.clicks[dayBlock{day, block}]++
	c.clickMu.Unlock()
}

// take empties the counters into one list of counts, with what an earlier
// flush could not store, ordered by day and block. Only flush calls it.
func (c *blockCounter) take() []profile.BlockCount {
	idx := map[dayBlock]int{}
	out := c.carry
	c.carry = nil
	for i := range out {
		idx[dayBlock{out[i].Day, out[i].Block}] = i
	}
	get := func(day, block string) *profile.BlockCount {
		k := dayBlock{day, block}
		i, ok := idx[k]
		if !ok {
			i = len(out)
			idx[k] = i
			out = append(out, profile.BlockCount{Day: day, Block: block})
		}
		return &out[i]
	}
	for i := range c.shards {
		sh := &c.shards[i]
		sh.mu.Lock()
		b := sh.cur
		sh.cur, sh.spare = sh.spare, b
		sh.mu.Unlock()
		for v, j := range b.visits {
			for ; j >= 0; j = b.hits[j].next {
				h := &b.hits[j]
				bc := get(v.day, h.block.ID)
				bc.Served += int64(h.served)
				bc.Visitors = append(bc.Visitors, v.pid)
			}
		}
		for k, n := range b.over {
			get(k.day, k.block).Served += n
		}
		clear(b.visits)
		clear(b.over)
		clear(b.hits) // drop the blocks of old definitions
		b.hits = b.hits[:0]
	}
	c.clickMu.Lock()
	clicks := c.clicks
	c.clicks = map[dayBlock]int64{}
	c.clickMu.Unlock()
	for k, n := range clicks {
		get(k.day, k.block).Clicks += n
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].Day != out[j].Day {
			return out[i].Day < out[j].Day
		}
		return out[i].Block < out[j].Block
	})
	return out
}

// flush adds the counts since the last flush to the store. Counts the
// store refuses are kept for the next flush (a flush that timed out
// after the store applied it may so count a few twice; one that is
// dropped would lose them all).
func (c *blockCounter) flush(ctx context.Context, svc *profile.Service) error {
	c.flushMu.Lock()
	defer c.flushMu.Unlock()
	counts := c.take()
	err := svc.AddBlockCounts(ctx, counts)
	if err != nil {
		kept := 0
		for i := range counts {
			if kept += len(counts[i].Visitors); kept > maxCarry {
				counts[i].Visitors = nil
			}
		}
		c.carry = counts
	}
	return err
}

// countServed counts the blocks a decide answered with, for a visitor
// who may be counted: one who gets a cookie and, where consent is
// required, gave it. Bots, prefetches and cookieless requests never are.
func (s *Server) countServed(now time.Time, d *defs, pid string, choices []rules.Choice) {
	s.blocks.served(s.blocks.dayOf(now, d.set.Location(), true), pid, choices)
}

// countClicks counts the stored click events on a block of the running
// definitions (target "block:<id>", as the snippet sends them).
func (s *Server) countClicks(now time.Time, d *defs, snap *profile.Snapshot, events []profile.Event) {
	if s.cfg.ConsentNeeded && !snap.Primary.HasConsent("profiling") {
		return // the profile did not store them
	}
	for i := range events {
		ev := &events[i]
		if ev.Type != profile.Click {
			continue
		}
		id, ok := strings.CutPrefix(ev.Target, "block:")
		if !ok || d.set.Block(id) == nil {
			continue
		}
		t := now
		if ev.TS != 0 {
			t = time.Unix(ev.TS, 0)
		}
		s.blocks.click(s.blocks.dayOf(t, d.set.Location(), ev.TS == 0), id)
	}
}

// flushBlocks flushes the block counts every Config.ReportFlush, or
// early when a shard fills, until the server shuts down (Shutdown
// flushes once more).
func (s *Server) flushBlocks() {
	t := time.NewTicker(s.cfg.ReportFlush)
	defer t.Stop()
	for {
		select {
		case <-s.done:
			return
		case <-t.C:
		case <-s.blocks.kick:
		}
		ctx, cancel := context.WithTimeout(context.Background(), adminDeadline)
		if err := s.blocks.flush(ctx, s.profiles); err != nil {
			s.logStoreError("block report: flush", err)
		}
		cancel()
	}
}
