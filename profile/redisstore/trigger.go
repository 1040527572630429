package redisstore

import (
	"context"
	"errors"
	"strconv"
	"time"

	"github.com/etalage/etalage/profile"
	"github.com/redis/go-redis/v9"
)

var _ profile.TriggerStore = (*Store)(nil)

// The trigger schedule lives in keys sharing the {wh} hash tag, so that a
// claim is one script on one node of a cluster: "due" orders profile ids by
// the time (unix ms) they must be looked at, "lease" holds the claimed ones
// until their lease ends, "pending:<hook>" the contacts with undelivered
// changes by the time of the oldest, "stats" the shared counts. The
// profiles' own outboxes live in their trigger records, in their own slots.
func (s *Store) dueKey() string                { return s.prefix + ":{wh}:due" }
func (s *Store) leaseKey() string              { return s.prefix + ":{wh}:lease" }
func (s *Store) pendingKey(hook string) string { return s.prefix + ":{wh}:pending:" + hook }
func (s *Store) statsKey() string              { return s.prefix + ":{wh}:stats" }

func ms(t time.Time) string { return strconv.FormatInt(t.UnixMilli(), 10) }

// ScheduleAt makes pid due at t unless it is due earlier (ZADD LT).
func (s *Store) ScheduleAt(ctx context.Context, pid string, t time.Time) error {
	err := s.c.ZAddLT(ctx, s.dueKey(), redis.Z{Score: float64(t.UnixMilli()), Member: pid}).Err()
	return fail("schedule", err)
}

// claimScript first returns expired leases to the due set, then moves up
// to n due members that nobody holds into the lease set.
var claimScript = redis.NewScript(`
local now, till, n = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
local expired = redis.call('ZRANGEBYSCORE', KEYS[2], '-inf', now, 'LIMIT', 0, 100)
for _, m in ipairs(expired) do
  redis.call('ZREM', KEYS[2], m)
  redis.call('ZADD', KEYS[1], 'LT', now, m)
end
local out = {}
local due = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', now, 'LIMIT', 0, n + 64)
for _, m in ipairs(due) do
  if #out >= n then break end
  if not redis.call('ZSCORE', KEYS[2], m) then
    redis.call('ZREM', KEYS[1], m)
    redis.call('ZADD', KEYS[2], till, m)
    out[#out + 1] = m
  end
end
return out
`)

// ClaimDue leases up to n due profiles in one script.
func (s *Store) ClaimDue(ctx context.Context, now time.Time, lease time.Duration, n int) ([]profile.Claim, error) {
	if n <= 0 {
		return nil, nil
	}
	until := now.Add(lease).Truncate(time.Millisecond)
	pids, err := claimScript.Run(ctx, s.c, []string{s.dueKey(), s.leaseKey()}, ms(now), ms(until), n).StringSlice()
	if err != nil {
		return nil, fail("claim due profiles", err)
	}
	out := make([]profile.Claim, len(pids))
	for i, p := range pids {
		out[i] = profile.Claim{PID: p, Until: until}
	}
	return out, nil
}

var releaseScript = redis.NewScript(`
local held = redis.call('ZSCORE', KEYS[2], ARGV[1])
if held and tonumber(held) == tonumber(ARGV[2]) then redis.call('ZREM', KEYS[2], ARGV[1]) end
if ARGV[3] ~= '0' then redis.call('ZADD', KEYS[1], 'LT', ARGV[3], ARGV[1]) end
return 1
`)

// Release drops the lease when it is still c's and schedules next.
func (s *Store) Release(ctx context.Context, c profile.Claim, next time.Time) error {
	n := "0"
	if !next.IsZero() {
		n = ms(next)
	}
	err := releaseScript.Run(ctx, s.c, []string{s.dueKey(), s.leaseKey()}, c.PID, ms(c.Until), n).Err()
	return fail("release claim", err)
}

// SetPending records the oldest undelivered change of pid for hook.
func (s *Store) SetPending(ctx context.Context, hook, pid string, since time.Time) error {
	if since.IsZero() {
		return fail("set pending", s.c.ZRem(ctx, s.pendingKey(hook), pid).Err())
	}
	return fail("set pending", s.c.ZAdd(ctx, s.pendingKey(hook), redis.Z{Score: float64(since.UnixMilli()), Member: pid}).Err())
}

// CountTrigger adds n to one of hook's counts.
func (s *Store) CountTrigger(ctx context.Context, hook, what string, n int64) error {
	return fail("count delivery", s.c.HIncrBy(ctx, s.statsKey(), hook+":"+what, n).Err())
}

// TriggerError records hook's last delivery error.
func (s *Store) TriggerError(ctx context.Context, hook, msg string, at time.Time) error {
	return fail("record delivery error", s.c.HSet(ctx, s.statsKey(), hook+":error", msg, hook+":error_at", ms(at)).Err())
}

// TriggerCounts reads hook's counts in one pipeline.
func (s *Store) TriggerCounts(ctx context.Context, hook string) (profile.TriggerCounts, error) {
	var out profile.TriggerCounts
	pipe := s.c.Pipeline()
	card := pipe.ZCard(ctx, s.pendingKey(hook))
	oldest := pipe.ZRangeWithScores(ctx, s.pendingKey(hook), 0, 0)
	stats := pipe.HMGet(ctx, s.statsKey(), hook+":delivered", hook+":failed", hook+":retries", hook+":error", hook+":error_at")
	if _, err := pipe.Exec(ctx); err != nil && !errors.Is(err, redis.Nil) {
		return out, fail("read delivery counts", err)
	}
	out.Pending = card.Val()
	if z := oldest.Val(); len(z) == 1 {
		out.Oldest = time.UnixMilli(int64(z[0].Score))
	}
	vals := stats.Val()
	num := func(v any) int64 {
		str, _ := v.(string)
		n, _ := strconv.ParseInt(str, 10, 64)
		return n
	}
	if len(vals) == 5 {
		out.Delivered, out.Failed, out.Retries = num(vals[0]), num(vals[1]), num(vals[2])
		out.LastError, _ = vals[3].(string)
		if at := num(vals[4]); at != 0 {
			out.LastAt = time.UnixMilli(at)
		}
	}
	return out, nil
}
