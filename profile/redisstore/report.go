package redisstore

import (
	"context"
	"errors"
	"sort"
	"strconv"
	"strings"

	"github.com/etalage/etalage/profile"
	"github.com/redis/go-redis/v9"
)

// A day's block counts share one hash slot ({r:<day>}), so that on a
// cluster a flush writes each day in one MULTI and its keys could be
// counted together: the hash "n" holds "s:<block>" (served) and
// "c:<block>" (clicks), and "v:<block>" is the block's HyperLogLog of
// distinct visitors (PFADD). Days are never merged: each day's visitors are
// counted on their own.
func (s *Store) countsKey(day string) string { return s.prefix + ":{r:" + day + "}:n" }
func (s *Store) visitorsKey(day, block string) string {
	return s.prefix + ":{r:" + day + "}:v:" + block
}

// AddBlockCounts adds each day's counts in one MULTI (a day's keys share
// a slot; a cluster refuses a MULTI across slots), so that a day is added
// whole or not at all.
func (s *Store) AddBlockCounts(ctx context.Context, counts []profile.BlockCount) error {
	ttl := profile.ReportRetention
	for len(counts) > 0 {
		day := counts[0].Day
		pipe := s.c.TxPipeline()
		rest := counts[:0:0]
		for _, c := range counts {
			if c.Day != day {
				rest = append(rest, c)
				continue
			}
			k := s.countsKey(c.Day)
			if c.Served != 0 {
				pipe.HIncrBy(ctx, k, "s:"+c.Block, c.Served)
			}
			if c.Clicks != 0 {
				pipe.HIncrBy(ctx, k, "c:"+c.Block, c.Clicks)
			}
			pipe.Expire(ctx, k, ttl)
			if len(c.Visitors) > 0 {
				vk := s.visitorsKey(c.Day, c.Block)
				ids := make([]any, len(c.Visitors))
				for i, id := range c.Visitors {
					ids[i] = id
				}
				pipe.PFAdd(ctx, vk, ids...)
				pipe.Expire(ctx, vk, ttl)
			}
		}
		if _, err := pipe.Exec(ctx); err != nil {
			return fail("add block counts", err)
		}
		counts = rest
	}
	return nil
}

// BlockCounts reads each day's counts, then the visitor count of each
// block found, in two pipelined round trips.
func (s *Store) BlockCounts(ctx context.Context, days []string) ([]profile.BlockDay, error) {
	pipe := s.c.Pipeline()
	hashes := make([]*redis.MapStringStringCmd, len(days))
	for i, day := range days {
		hashes[i] = pipe.HGetAll(ctx, s.countsKey(day))
	}
	if _, err := pipe.Exec(ctx); err != nil && !errors.Is(err, redis.Nil) {
		return nil, fail("read block counts", err)
	}
	var out []profile.BlockDay
	for i, h := range hashes {
		rows := map[string]*profile.BlockDay{}
		for f, v := range h.Val() {
			kind, block, ok := strings.Cut(f, ":")
			n, err := strconv.ParseInt(v, 10, 64)
			if !ok || err != nil {
				continue
			}
			r := rows[block]
			if r == nil {
				r = &profile.BlockDay{Day: days[i], Block: block}
				rows[block] = r
			}
			switch kind {
			case "s":
				r.Served = n
			case "c":
				r.Clicks = n
			}
		}
		start := len(out)
		for _, r := range rows {
			out = append(out, *r)
		}
		sort.Slice(out[start:], func(a, b int) bool { return out[start+a].Block < out[start+b].Block })
	}
	if len(out) == 0 {
		return nil, nil
	}
	pipe = s.c.Pipeline()
	counts := make([]*redis.IntCmd, len(out))
	for i, r := range out {
		counts[i] = pipe.PFCount(ctx, s.visitorsKey(r.Day, r.Block))
	}
	if _, err := pipe.Exec(ctx); err != nil && !errors.Is(err, redis.Nil) {
		return nil, fail("read block visitors", err)
	}
	for i := range out {
		out[i].Visitors = counts[i].Val()
	}
	return out, nil
}
