package redisstore

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"net/url"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"
	"unsafe"

	"github.com/etalage/etalage/profile"
	"github.com/redis/go-redis/v9"
)

var _ profile.Store = (*Store)(nil)

// Options tune the client; zero values take the defaults.
type Options struct {
	Prefix       string        // key prefix, default "etl"
	DialTimeout  time.Duration // default 500ms
	ReadTimeout  time.Duration // default 250ms
	WriteTimeout time.Duration // default 250ms
	PoolSize     int           // default go-redis' (10 per CPU)
	// ReadPipelines is how many coalesced read pipelines may be in flight
	// at once (default 4); MaxBatch bounds the reads one pipeline carries
	// (default 64). See batcher.
	ReadPipelines int
	MaxBatch      int
}

// Store is a profile.Store on Redis.
type Store struct {
	c      redis.UniversalClient
	prefix string
	reads  *batcher
	links  sync.WaitGroup // cluster link expiries still running after their Put answered
}

// versionLen is the width of the decimal version that prefixes every
// record: Lua numbers are doubles, so versions are compared as strings.
const versionLen = 20

// Open connects to the Redis named by rawURL: redis://[:pass@]host:port[/db],
// rediss://…, redis-cluster://[user:pass@]h1:p,h2:p, or
// redis-sentinel://[user:pass@]master@h1:p,h2:p[/db].
func Open(ctx context.Context, rawURL string, opts Options) (*Store, error) {
	uo, err := ParseURL(rawURL)
	if err != nil {
		return nil, err
	}
	// Options first, then the URL's own (dial_timeout=…), then defaults
	// sized for a decide's deadlines.
	uo.DialTimeout = or(opts.DialTimeout, or(uo.DialTimeout, 500*time.Millisecond))
	uo.ReadTimeout = or(opts.ReadTimeout, or(uo.ReadTimeout, 250*time.Millisecond))
	uo.WriteTimeout = or(opts.WriteTimeout, or(uo.WriteTimeout, 250*time.Millisecond))
	uo.PoolSize = opts.PoolSize
	// No automatic retries: a Put whose answer timed out may have been
	// applied, and running it again is not idempotent. The service's own
	// compare-and-set loop decides what to retry.
	uo.MaxRetries = -1
	uo.ContextTimeoutEnabled = true
	// RESP2: the store uses no RESP3 feature, and with RESP3 go-redis looks
	// for pending push notifications around every command (about 6% of a
	// cold decide's CPU, profiled).
	uo.Protocol = 2
	s := &Store{c: redis.NewUniversalClient(uo), prefix: opts.Prefix}
	if s.prefix == "" {
		s.prefix = "etl"
	}
	// Redis gets five seconds to answer a first PING, asked again after
	// each failure: one answer slower than the read timeout (a Redis
	// loading its data, a busy machine) does not stop the node starting.
	pctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	for {
		err := s.c.Ping(pctx).Err()
		if err == nil {
			break
		}
		var answer redis.Error // Redis answered, with an error: asking again will not help
		if errors.As(err, &answer) {
			s.c.Close()
			return nil, fmt.Errorf("connect to redis: %w: %w", profile.ErrUnavailable, err)
		}
		select {
		case <-pctx.Done():
			s.c.Close()
			return nil, fmt.Errorf("connect to redis: %w: %w", profile.ErrUnavailable, err)
		case <-time.After(100 * time.Millisecond):
		}
	}
	s.reads = newBatcher(s.c, cmp.Or(opts.ReadPipelines, 4), cmp.Or(opts.MaxBatch, 64))
	return s, nil
}

func or(d, def time.Duration) time.Duration {
	if d > 0 {
		return d
	}
	return def
}

// ParseURL turns a store URL into go-redis universal options.
func ParseURL(raw string) (*redis.UniversalOptions, error) {
	scheme, rest, ok := strings.Cut(raw, "://")
	if !ok {
		return nil, fmt.Errorf("redis url %q: missing scheme", raw)
	}
	switch scheme {
	case "redis", "rediss":
		o, err := redis.ParseURL(raw)
		if err != nil {
			return nil, fmt.Errorf("redis url: %w", err)
		}
		return &redis.UniversalOptions{Addrs: []string{o.Addr}, Username: o.Username, Password: o.Password, DB: o.DB, TLSConfig: o.TLSConfig,
			DialTimeout: o.DialTimeout, ReadTimeout: o.ReadTimeout, WriteTimeout: o.WriteTimeout}, nil
	case "redis-cluster", "redis-sentinel":
	default:
		return nil, fmt.Errorf("redis url %q: scheme must be redis, rediss, redis-cluster or redis-sentinel", raw)
	}
	uo := &redis.UniversalOptions{}
	rest, query, _ := strings.Cut(rest, "?")
	if err := parseTimeouts(uo, query); err != nil {
		return nil, fmt.Errorf("redis url %q: %w", raw, err)
	}
	// Credentials come first: user:pass@hosts, or for Sentinel
	// user:pass@master@hosts.
	if n := strings.Count(rest, "@"); (scheme == "redis-cluster" && n == 1) || (scheme == "redis-sentinel" && n == 2) {
		cred, tail, _ := strings.Cut(rest, "@")
		u, p, _ := strings.Cut(cred, ":")
		uo.Username, uo.Password = unescape(u), unescape(p)
		rest = tail
	}
	if scheme == "redis-sentinel" {
		master, hosts, ok := strings.Cut(rest, "@")
		if !ok || master == "" {
			return nil, fmt.Errorf("redis url %q: use redis-sentinel://master@host:port,host:port", raw)
		}
		uo.MasterName = master
		rest = hosts
	}
	hosts, db, _ := strings.Cut(rest, "/")
	if db != "" {
		if scheme == "redis-cluster" {
			return nil, fmt.Errorf("redis url %q: a cluster has no database number", raw)
		}
		n, err := strconv.Atoi(db)
		if err != nil || n < 0 {
			return nil, fmt.Errorf("redis url %q: database %q is not a number", raw, db)
		}
		uo.DB = n
	}
	for _, h := range strings.Split(hosts, ",") {
		h = strings.TrimSpace(h)
		if h == "" {
			continue
		}
		if _, port, ok := strings.Cut(h, ":"); !ok || port == "" {
			return nil, fmt.Errorf("redis url %q: %q needs a port", raw, h)
		}
		uo.Addrs = append(uo.Addrs, h)
	}
	if len(uo.Addrs) == 0 {
		return nil, fmt.Errorf("redis url %q: no hosts", raw)
	}
	uo.IsClusterMode = scheme == "redis-cluster"
	return uo, nil
}

// parseTimeouts takes the timeouts of a cluster or Sentinel URL's query,
// named as go-redis names them in a redis:// URL (dial_timeout,
// read_timeout, write_timeout: a Go duration or seconds).
func parseTimeouts(uo *redis.UniversalOptions, query string) error {
	q, err := url.ParseQuery(query)
	if err != nil {
		return err
	}
	for name, vs := range q {
		var d *time.Duration
		switch name {
		case "dial_timeout":
			d = &uo.DialTimeout
		case "read_timeout":
			d = &uo.ReadTimeout
		case "write_timeout":
			d = &uo.WriteTimeout
		default:
			return fmt.Errorf("unknown option %q (dial_timeout, read_timeout, write_timeout)", name)
		}
		v := vs[len(vs)-1]
		t, err := time.ParseDuration(v)
		if err != nil {
			secs, serr := strconv.ParseFloat(v, 64)
			if serr != nil || secs <= 0 {
				return fmt.Errorf("%s=%q: a duration like 2s", name, v)
			}
			t = time.Duration(secs * float64(time.Second))
		}
		if t <= 0 {
			return fmt.Errorf("%s=%q: a duration like 2s", name, v)
		}
		*d = t
	}
	return nil
}

func unescape(s string) string {
	if u, err := url.PathUnescape(s); err == nil {
		return u
	}
	return s
}

func (s *Store) primaryKey(pid string) string { return s.prefix + ":{" + pid + "}" }
func (s *Store) seasonKey(pid, season string) string {
	return s.prefix + ":{" + pid + "}:s:" + season
}
func (s *Store) seasonsKey(pid string) string { return s.prefix + ":{" + pid + "}:seasons" }
func (s *Store) linkKey(ident string) string  { return s.prefix + ":id:" + ident }
func (s *Store) claimKey(ident string) string { return s.prefix + ":claims:" + ident }
func (s *Store) defsKey() string              { return s.prefix + ":defs" }

// tallyKey is the shard of counter set name in the hash slot that tag
// hashes to.
func (s *Store) tallyKey(tag, name string) string { return s.prefix + ":{" + tag + "}:t:" + name }

// fail wraps a driver error: everything but redis.Nil means the store did
// not answer as it should, which the service treats as unavailable.
func fail(op string, err error) error {
	if err == nil {
		return nil
	}
	return fmt.Errorf("%s: %w: %w", op, profile.ErrUnavailable, err)
}

func version(v uint64) string {
	s := strconv.FormatUint(v, 10)
	return strings.Repeat("0", versionLen-len(s)) + s
}

// ObserveBatches has f called with the number of reads in each coalesced
// pipeline, from the worker that sends it (f must be quick and safe for
// concurrent use); nil stops it.
func (s *Store) ObserveBatches(f func(reads int)) {
	if f == nil {
		s.reads.observe.Store(nil)
		return
	}
	s.reads.observe.Store(&f)
}

// Get reads the primary and seasonal records with one MGET, sent in a
// pipeline together with the MGETs of concurrent Gets.
func (s *Store) Get(ctx context.Context, pid string, seasons []string) ([]profile.Record, error) {
	keys := s.readKeys(pid, seasons)
	vals, err := s.reads.mget(ctx, keys)
	if err != nil {
		return nil, fail("get profile", err)
	}
	out := make([]profile.Record, len(keys))
	for i, v := range vals {
		str, ok := v.(string)
		if !ok || len(str) < versionLen {
			continue
		}
		ver, err := strconv.ParseUint(str[:versionLen], 10, 64)
		if err != nil {
			continue
		}
		// The reply's string is this read's alone (go-redis made it for
		// this answer and keeps nothing of it): its bytes become the
		// record's without a copy.
		data := str[versionLen:]
		out[i] = profile.Record{Data: unsafe.Slice(unsafe.StringData(data), len(data)), Version: ver}
	}
	return out, nil
}

// readKeys returns the primary and seasonal record keys of pid, cut from
// one string: one allocation for them all.
func (s *Store) readKeys(pid string, seasons []string) []string {
	head := len(s.prefix) + 2 + len(pid) + 1 // prefix:{pid}
	n := head
	for _, se := range seasons {
		n += head + 3 + len(se)
	}
	b := make([]byte, 0, n)
	b = append(append(append(append(b, s.prefix...), ":{"...), pid...), '}')
	for _, se := range seasons {
		b = append(append(b, b[:head]...), ":s:"...)
		b = append(b, se...)
	}
	all := unsafe.String(unsafe.SliceData(b), len(b))
	keys := make([]string, 1+len(seasons))
	keys[0] = all[:head]
	at := head
	for i, se := range seasons {
		end := at + head + 3 + len(se)
		keys[1+i], at = all[at:end], end
	}
	return keys
}

// putScript checks every expected version, then writes. ARGV: the number
// of records n, the number of links m, the profile id, then 5 per record
// (expected version, new version, absolute expiry in unix ms or 0 for none
// or -1 to delete, data, season). KEYS: the n records, the profile's season
// set, then the m links that take the primary record's expiry when they
// still map to the profile, then the t tally keys (in the profile's own
// hash slot). After the records' arguments: t, then 2 per tally (field,
// increment). Expiries are absolute so that a link and its record end in
// the same millisecond. A Put with seasonal writes gives the season set
// the latest expiry of the records it still names.
var putScript = redis.NewScript(`
local n = tonumber(ARGV[1])
local m = tonumber(ARGV[2])
for i = 1, n do
  local b = 4 + (i - 1) * 5
  local cur = redis.call('GET', KEYS[i])
  local v = '00000000000000000000'
  if cur then v = string.sub(cur, 1, 20) end
  if v ~= ARGV[b] then return 0 end
end
local set = KEYS[n + 1]
local primaryAt = nil
local seasonal = false
for i = 1, n do
  local b = 4 + (i - 1) * 5
  local season = ARGV[b + 4]
  if season ~= '' then seasonal = true end
  if ARGV[b + 2] == '-1' then
    redis.call('DEL', KEYS[i])
    if season ~= '' then redis.call('SREM', set, season) end
  else
    local at = tonumber(ARGV[b + 2])
    if at > 0 then
      redis.call('SET', KEYS[i], ARGV[b + 1] .. ARGV[b + 3], 'PXAT', at)
    else
      redis.call('SET', KEYS[i], ARGV[b + 1] .. ARGV[b + 3])
    end
    if season == '' then primaryAt = at else redis.call('SADD', set, season) end
  end
end
if seasonal then
  -- The set lives exactly as long as the latest seasonal record it
  -- names, earlier as well as later: members whose record is gone are
  -- dropped, one record without expiry keeps the set without. The
  -- records share the set's hash slot ({pid}).
  local base = string.sub(set, 1, -9) .. ':s:'
  local latest, forever = 0, false
  for _, season in ipairs(redis.call('SMEMBERS', set)) do
    local at = redis.call('PEXPIRETIME', base .. season)
    if at == -2 then
      redis.call('SREM', set, season)
    elseif at == -1 then
      forever = true
    elseif at > latest then
      latest = at
    end
  end
  if forever then
    redis.call('PERSIST', set)
  elseif latest > 0 then
    redis.call('PEXPIREAT', set, latest)
  end
end
if primaryAt then
  for j = 1, m do
    local k = KEYS[n + 1 + j]
    if redis.call('GET', k) == ARGV[3] then
      if primaryAt > 0 then redis.call('PEXPIREAT', k, primaryAt) else redis.call('PERSIST', k) end
    end
  end
end
local tb = 4 + n * 5
local t = tonumber(ARGV[tb])
for j = 1, t do
  redis.call('HINCRBY', KEYS[n + 1 + m + j], ARGV[tb + (j - 1) * 2 + 1], ARGV[tb + (j - 1) * 2 + 2])
end
return 1
`)

// expireLinkScript gives one link the expiry of its profile's record when
// it still maps to the profile: the Redis Cluster half of a Put whose links
// live in other slots than the record (see expireLinks).
var expireLinkScript = redis.NewScript(`
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return 0 end
local at = tonumber(ARGV[2])
if at <= 0 then redis.call('PERSIST', KEYS[1]) return 1 end
redis.call('PEXPIREAT', KEYS[1], at)
return 1
`)

// maxLinkRounds bounds the rounds of expireLinks; a round is repeated
// only when another write of the record came between its steps.
const maxLinkRounds = 8

// expireLinks gives the links of pid's record, on a cluster, the expiry
// the record has, exactly, also when it is earlier than the link's (a
// lowered --known-profile-ttl). Writers of one profile on several nodes
// may set the links out of order, so each one reads the record's expiry
// after setting them and, when a later write changed it meanwhile, sets
// them again to the new one: the writer that sets the links last has
// seen the record's last expiry.
func (s *Store) expireLinks(ctx context.Context, pid string, links []string, at int64) error {
	for range maxLinkRounds {
		for _, l := range links {
			if err := expireLinkScript.Run(ctx, s.c, []string{s.linkKey(l)}, pid, at).Err(); err != nil {
				return fail("put profile: expire link", err)
			}
		}
		cur, err := s.c.Do(ctx, "PEXPIRETIME", s.primaryKey(pid)).Int64()
		if err != nil {
			return fail("put profile: expire link", err)
		}
		switch {
		case cur == -2:
			return nil // erased meanwhile: the erasure removes the links
		case cur == -1:
			cur = 0
		}
		if cur == at {
			return nil
		}
		at = cur
	}
	return nil
}

// expiry is the absolute expiry, in unix milliseconds, of a record written
// now with ttl; 0 means none.
func expiry(now time.Time, ttl time.Duration) int64 {
	if ttl <= 0 {
		return 0
	}
	return now.Add(max(ttl, time.Millisecond)).UnixMilli()
}

// Put applies the writes atomically in one Lua script. Links of the
// primary write are refreshed in the same script on a single Redis, and
// right after it on a cluster, where they live in other slots
// (followLinks): there an answer past the script is nil, the write stands.
func (s *Store) Put(ctx context.Context, pid string, writes []profile.Write) error {
	_, cluster := s.c.(*redis.ClusterClient)
	now := time.Now()
	keys := make([]string, 0, len(writes)+1)
	args := make([]any, 0, 3+5*len(writes))
	var links []string
	primaryAt := int64(-1)
	for _, w := range writes {
		if w.Season == "" {
			keys = append(keys, s.primaryKey(pid))
			if w.Data != nil {
				links = w.Links
				primaryAt = expiry(now, w.TTL)
			}
		} else {
			keys = append(keys, s.seasonKey(pid, w.Season))
		}
		at := "-1"
		if w.Data != nil {
			at = strconv.FormatInt(expiry(now, w.TTL), 10)
		}
		args = append(args, version(w.Expect), version(w.Version), at, w.Data, w.Season)
	}
	keys = append(keys, s.seasonsKey(pid))
	inScript := 0
	if !cluster {
		inScript = len(links)
		for _, l := range links {
			keys = append(keys, s.linkKey(l))
		}
	}
	args = append([]any{len(writes), inScript, pid}, args...)
	// Tallies live in keys of the profile's own hash slot, so the script
	// that writes the profile counts it too, on a cluster as well.
	var tallies []profile.Tally
	for _, w := range writes {
		tallies = append(tallies, w.Tallies...)
	}
	args = append(args, len(tallies))
	if len(tallies) > 0 {
		tag := slotTag(slot(pid))
		for _, t := range tallies {
			keys = append(keys, s.tallyKey(tag, t.Name))
			args = append(args, t.Field, t.Delta)
		}
	}
	n, err := putScript.Run(ctx, s.c, keys, args...).Int()
	if err != nil {
		return fail("put profile", err)
	}
	if n == 0 {
		return profile.ErrConflict
	}
	if cluster && len(links) > 0 {
		s.followLinks(ctx, pid, links, primaryAt)
	}
	return nil
}

// linkTimeout bounds the link expiries of one Put on a cluster.
const linkTimeout = 5 * time.Second

// followLinks gives the links of a record written on a cluster its expiry
// (expireLinks), waiting for that as long as ctx allows. The record is
// written by then: the Put's answer is nil, or a caller told "not stored"
// would store its events again (a degraded decide's page view retried
// through /v1/events, counted twice). So the links do not stop at the
// caller's deadline but carry on under linkTimeout. Failing that too,
// Redis is down, and they keep their expiry until the record's next
// write.
func (s *Store) followLinks(ctx context.Context, pid string, links []string, at int64) {
	done := make(chan struct{})
	s.links.Add(1)
	go func() {
		defer s.links.Done()
		defer close(done)
		lctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), linkTimeout)
		defer cancel()
		_ = s.expireLinks(lctx, pid, links, at)
	}()
	select {
	case <-done:
	case <-ctx.Done():
	}
}

var deleteScript = redis.NewScript(`
local seasons = redis.call('SMEMBERS', KEYS[2])
for _, s in ipairs(seasons) do redis.call('DEL', ARGV[1] .. s) end
redis.call('DEL', KEYS[1], KEYS[2])
return #seasons
`)

// Delete removes the primary record, every seasonal record and the set
// that lists them.
func (s *Store) Delete(ctx context.Context, pid string) error {
	err := deleteScript.Run(ctx, s.c, []string{s.primaryKey(pid), s.seasonsKey(pid)}, s.primaryKey(pid)+":s:").Err()
	return fail("delete profile", err)
}

var linkScript = redis.NewScript(`
local cur = redis.call('GET', KEYS[1])
if cur then return cur end
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
return ARGV[1]
`)

// Link maps ident to pid unless it is mapped already; an existing link
// keeps its expiry.
func (s *Store) Link(ctx context.Context, ident, pid string, ttl time.Duration) (string, error) {
	ms := ttl.Milliseconds()
	if ms <= 0 {
		ms = int64((400 * 24 * time.Hour).Milliseconds())
	}
	got, err := linkScript.Run(ctx, s.c, []string{s.linkKey(ident)}, pid, ms).Text()
	return got, fail("link", err)
}

// Lookup returns the pid ident maps to.
func (s *Store) Lookup(ctx context.Context, ident string) (string, error) {
	pid, err := s.c.Get(ctx, s.linkKey(ident)).Result()
	if errors.Is(err, redis.Nil) {
		return "", profile.ErrNotFound
	}
	return pid, fail("lookup", err)
}

var unlinkScript = redis.NewScript(`
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
`)

// Unlink removes ident's link if it maps to pid.
func (s *Store) Unlink(ctx context.Context, ident, pid string) error {
	return fail("unlink", unlinkScript.Run(ctx, s.c, []string{s.linkKey(ident)}, pid).Err())
}

var claimNoteScript = redis.NewScript(`
redis.call('SADD', KEYS[1], ARGV[1])
local ttl = redis.call('PTTL', KEYS[1])
if ttl < tonumber(ARGV[2]) then redis.call('PEXPIRE', KEYS[1], ARGV[2]) end
return 1
`)

// AddClaimant adds pid to ident's set of claiming profiles; the set lives as
// long as its longest-lived note.
func (s *Store) AddClaimant(ctx context.Context, ident, pid string, ttl time.Duration) error {
	ms := max(ttl.Milliseconds(), 1)
	return fail("claim", claimNoteScript.Run(ctx, s.c, []string{s.claimKey(ident)}, pid, ms).Err())
}

// Claimants returns the set of profiles claiming ident.
func (s *Store) Claimants(ctx context.Context, ident string) ([]string, error) {
	pids, err := s.c.SMembers(ctx, s.claimKey(ident)).Result()
	if err != nil {
		return nil, fail("claims", err)
	}
	return pids, nil
}

// DropClaimant removes pid from ident's set, or deletes the set.
func (s *Store) DropClaimant(ctx context.Context, ident, pid string) error {
	if pid != "" {
		return fail("unclaim", s.c.SRem(ctx, s.claimKey(ident), pid).Err())
	}
	return fail("unclaim", s.c.Del(ctx, s.claimKey(ident)).Err())
}

// Scan lists profile ids. On a cluster it walks the masters one after
// another; the cursor is "<master>:<redis cursor>".
func (s *Store) Scan(ctx context.Context, cursor string, count int) ([]string, string, error) {
	if count <= 0 {
		count = 100
	}
	nodes, err := s.nodes(ctx)
	if err != nil {
		return nil, "", fail("scan", err)
	}
	node, rc := 0, uint64(0)
	if cursor != "" {
		a, b, ok := strings.Cut(cursor, ":")
		n1, err1 := strconv.Atoi(a)
		n2, err2 := strconv.ParseUint(b, 10, 64)
		if !ok || err1 != nil || err2 != nil || n1 < 0 || n1 >= len(nodes) {
			return nil, "", fmt.Errorf("scan: %w: bad cursor", profile.ErrInvalid)
		}
		node, rc = n1, n2
	}
	var pids []string
	match := s.prefix + ":{*}"
	keys, next, err := nodes[node].Scan(ctx, rc, match, int64(count)).Result()
	if err != nil {
		return nil, "", fail("scan", err)
	}
	for _, k := range keys {
		// Primary records end with the closing brace; seasonal records and
		// season sets have more after it.
		if strings.HasSuffix(k, "}") {
			pids = append(pids, k[len(s.prefix)+2:len(k)-1])
		}
	}
	if next == 0 {
		node++
		if node >= len(nodes) {
			return pids, "", nil
		}
	}
	return pids, strconv.Itoa(node) + ":" + strconv.FormatUint(next, 10), nil
}

// Sample draws keys with RANDOMKEY (pipelined, from every master in
// proportion to its DBSIZE) and keeps those that are primary records. The
// share of draws that hit a primary record, times DBSIZE, estimates how
// many profiles there are. A database with few keys is scanned instead and
// answered exactly.
func (s *Store) Sample(ctx context.Context, n int) (profile.Sample, error) {
	if n <= 0 {
		n = 1000
	}
	nodes, err := s.nodes(ctx)
	if err != nil {
		return profile.Sample{}, fail("sample profiles", err)
	}
	sizes := make([]int64, len(nodes))
	var total int64
	for i, c := range nodes {
		if sizes[i], err = c.DBSize(ctx).Result(); err != nil {
			return profile.Sample{}, fail("sample profiles", err)
		}
		total += sizes[i]
	}
	if total <= int64(2*n) {
		out := profile.Sample{Exact: true}
		cursor := ""
		for {
			pids, next, err := s.Scan(ctx, cursor, 1000)
			if err != nil {
				return profile.Sample{}, err
			}
			out.PIDs = append(out.PIDs, pids...)
			if next == "" {
				break
			}
			cursor = next
		}
		out.Population = float64(len(out.PIDs))
		return out, nil
	}
	var out profile.Sample
	var variance float64
	for i, c := range nodes {
		if sizes[i] == 0 {
			continue
		}
		want := int(math.Ceil(float64(n) * float64(sizes[i]) / float64(total)))
		hits, draws := 0, 0
		// Other keys (links, seasonal records, what else shares the
		// database) dilute the draws: draw until enough profiles, at
		// most 20 times the wanted number.
		for len(out.PIDs) < n && hits < want && draws < 20*want {
			batch := min(500, 2*(want-hits)+16)
			cmds, err := c.Pipelined(ctx, func(p redis.Pipeliner) error {
				for range batch {
					p.RandomKey(ctx)
				}
				return nil
			})
			if err != nil && !errors.Is(err, redis.Nil) {
				return profile.Sample{}, fail("sample profiles", err)
			}
			for _, cmd := range cmds {
				draws++
				k, err := cmd.(*redis.StringCmd).Result()
				if err != nil {
					continue
				}
				if pid, ok := s.primaryID(k); ok {
					out.PIDs = append(out.PIDs, pid)
					hits++
				}
			}
		}
		if draws == 0 {
			continue
		}
		q := float64(hits) / float64(draws)
		out.Population += q * float64(sizes[i])
		variance += float64(sizes[i]) * float64(sizes[i]) * q * (1 - q) / float64(draws)
	}
	if out.Population > 0 {
		out.RelErr = math.Sqrt(variance) / out.Population
	}
	return out, nil
}

// primaryID returns the profile id of a primary record's key.
func (s *Store) primaryID(key string) (string, bool) {
	if len(key) != len(s.prefix)+2+32+1 || !strings.HasPrefix(key, s.prefix+":{") || !strings.HasSuffix(key, "}") {
		return "", false
	}
	pid := key[len(s.prefix)+2 : len(key)-1]
	return pid, profile.IsID(pid)
}

// nodes returns the clients to scan: the one node, or every master of a
// cluster in a stable order.
func (s *Store) nodes(ctx context.Context) ([]redis.Cmdable, error) {
	cc, ok := s.c.(*redis.ClusterClient)
	if !ok {
		return []redis.Cmdable{s.c}, nil
	}
	var mu sync.Mutex
	type named struct {
		addr string
		c    *redis.Client
	}
	var all []named
	err := cc.ForEachMaster(ctx, func(ctx context.Context, c *redis.Client) error {
		mu.Lock()
		all = append(all, named{c.Options().Addr, c})
		mu.Unlock()
		return nil
	})
	if err != nil {
		return nil, err
	}
	sort.Slice(all, func(i, j int) bool { return all[i].addr < all[j].addr })
	out := make([]redis.Cmdable, len(all))
	for i, n := range all {
		out[i] = n.c
	}
	return out, nil
}

// The definitions live in one hash (one key, so one cluster slot): "doc"
// and "rev" are the current ones, "r:<n>" the JSON meta and "d:<n>" the
// document of each kept revision, "f:<digest>" the revision a start-up
// file was applied as.
var putDefsScript = redis.NewScript(`
local cur = redis.call('HGET', KEYS[1], 'doc')
local rev = tonumber(redis.call('HGET', KEYS[1], 'rev') or '0')
if ARGV[2] ~= '-1' and tonumber(ARGV[2]) ~= rev then return {-1, rev} end
local created = 0
if cur ~= ARGV[1] then
  if cur and redis.call('HEXISTS', KEYS[1], 'r:' .. rev) == 0 then
    redis.call('HSET', KEYS[1], 'r:' .. rev, '{}', 'd:' .. rev, cur)
  end
  rev = redis.call('HINCRBY', KEYS[1], 'rev', 1)
  redis.call('HSET', KEYS[1], 'doc', ARGV[1], 'r:' .. rev, ARGV[3], 'd:' .. rev, ARGV[1])
  created = 1
end
if ARGV[4] ~= '' then redis.call('HSET', KEYS[1], 'f:' .. ARGV[4], rev) end
return {created, rev}
`)

// revisionMeta is the JSON kept in "r:<n>".
type revisionMeta struct {
	Time time.Time `json:"time"`
	Note string    `json:"note,omitempty"`
	File string    `json:"file,omitempty"`
}

// Definitions returns the stored document and revision.
func (s *Store) Definitions(ctx context.Context) ([]byte, int64, error) {
	vals, err := s.c.HMGet(ctx, s.defsKey(), "doc", "rev").Result()
	if err != nil {
		return nil, 0, fail("read definitions", err)
	}
	doc, ok := vals[0].(string)
	if !ok {
		return nil, 0, profile.ErrNotFound
	}
	rs, _ := vals[1].(string)
	rev, _ := strconv.ParseInt(rs, 10, 64)
	return []byte(doc), rev, nil
}

// Revision returns the stored revision, 0 when none.
func (s *Store) Revision(ctx context.Context) (int64, error) {
	rev, err := s.c.HGet(ctx, s.defsKey(), "rev").Int64()
	if errors.Is(err, redis.Nil) {
		return 0, nil
	}
	return rev, fail("read revision", err)
}

// PutDefinitions stores p.Doc as the next revision unless it is the stored
// document already, or p.Expect does not hold; atomic in one script.
func (s *Store) PutDefinitions(ctx context.Context, p profile.DefinitionsPut) (int64, bool, error) {
	meta, err := json.Marshal(revisionMeta{Time: p.Time.UTC(), Note: p.Note, File: p.File})
	if err != nil {
		return 0, false, fmt.Errorf("store definitions: %w", err)
	}
	res, err := putDefsScript.Run(ctx, s.c, []string{s.defsKey()}, p.Doc, strconv.FormatInt(p.Expect, 10), meta, p.File).Int64Slice()
	if err != nil {
		return 0, false, fail("store definitions", err)
	}
	if len(res) != 2 {
		return 0, false, fmt.Errorf("store definitions: %w: unexpected script answer", profile.ErrUnavailable)
	}
	if res[0] < 0 {
		return res[1], false, fmt.Errorf("store definitions: revision %d is current: %w", res[1], profile.ErrConflict)
	}
	return res[1], res[0] == 1, nil
}

// DefinitionsRevisions lists kept revisions, newest first.
func (s *Store) DefinitionsRevisions(ctx context.Context, before int64, limit int) ([]profile.Revision, error) {
	if limit <= 0 {
		limit = 50
	}
	top := before - 1
	if before <= 0 {
		cur, err := s.Revision(ctx)
		if err != nil {
			return nil, err
		}
		top = cur
	}
	var out []profile.Revision
	// Revisions are numbered without gaps, but those stored before
	// revisions were kept have no meta: read in pages until limit or 0.
	for top > 0 && len(out) < limit {
		n := min(int64(limit-len(out)), top)
		fields := make([]string, 0, n)
		for i := range n {
			fields = append(fields, "r:"+strconv.FormatInt(top-i, 10))
		}
		vals, err := s.c.HMGet(ctx, s.defsKey(), fields...).Result()
		if err != nil {
			return nil, fail("list definitions revisions", err)
		}
		for i, v := range vals {
			str, ok := v.(string)
			if !ok {
				continue
			}
			var m revisionMeta
			_ = json.Unmarshal([]byte(str), &m)
			out = append(out, profile.Revision{Rev: top - int64(i), Time: m.Time, Note: m.Note, File: m.File})
		}
		top -= n
	}
	return out, nil
}

// DefinitionsRevision returns one kept revision with its document.
func (s *Store) DefinitionsRevision(ctx context.Context, n int64) (profile.Revision, error) {
	k := strconv.FormatInt(n, 10)
	vals, err := s.c.HMGet(ctx, s.defsKey(), "r:"+k, "d:"+k).Result()
	if err != nil {
		return profile.Revision{}, fail("read definitions revision", err)
	}
	meta, ok1 := vals[0].(string)
	doc, ok2 := vals[1].(string)
	if !ok1 || !ok2 {
		return profile.Revision{}, profile.ErrNotFound
	}
	var m revisionMeta
	_ = json.Unmarshal([]byte(meta), &m)
	return profile.Revision{Rev: n, Time: m.Time, Note: m.Note, File: m.File, Doc: []byte(doc)}, nil
}

// FileRevision returns the revision a start-up file was applied as.
func (s *Store) FileRevision(ctx context.Context, digest string) (int64, error) {
	rev, err := s.c.HGet(ctx, s.defsKey(), "f:"+digest).Int64()
	if errors.Is(err, redis.Nil) {
		return 0, profile.ErrNotFound
	}
	return rev, fail("read definitions file", err)
}

// Tallies sums the counter set name over its shards, one per hash slot,
// read with pipelined HGETALLs.
func (s *Store) Tallies(ctx context.Context, name string) (map[string]int64, error) {
	out := map[string]int64{}
	const batch = 1024
	for start := 0; start < slots; start += batch {
		pipe := s.c.Pipeline()
		cmds := make([]*redis.MapStringStringCmd, 0, batch)
		for sl := start; sl < start+batch && sl < slots; sl++ {
			cmds = append(cmds, pipe.HGetAll(ctx, s.tallyKey(slotTag(sl), name)))
		}
		if _, err := pipe.Exec(ctx); err != nil && !errors.Is(err, redis.Nil) {
			return nil, fail("read tallies", err)
		}
		for _, c := range cmds {
			for f, v := range c.Val() {
				n, err := strconv.ParseInt(v, 10, 64)
				if err != nil {
					continue
				}
				out[f] += n
			}
		}
	}
	return out, nil
}

// Ping checks that Redis answers.
func (s *Store) Ping(ctx context.Context) error {
	return fail("ping", s.c.Ping(ctx).Err())
}

// Close stops the read batcher, waits for link expiries under way, then
// closes the client.
func (s *Store) Close() error {
	s.reads.shutdown()
	s.links.Wait()
	return s.c.Close()
}
