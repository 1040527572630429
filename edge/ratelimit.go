package edge

import (
	"bytes"
	"hash/maphash"
	"net"
	"sync"
	"time"

	"github.com/valyala/fasthttp"
)

// limiter is a token bucket per client (its IP, or the configured header),
// kept only in memory and only as a hash: the raw IP is never stored.
type limiter struct {
	rate   float64 // tokens per second; 0 disables
	burst  float64
	seed   maphash.Seed
	shards [64]limiterShard
}

type limiterShard struct {
	mu      sync.Mutex
	buckets map[uint64]*bucket
}

type bucket struct {
	tokens float64
	last   time.Time
}

// maxBucketsPerShard bounds memory under a flood of distinct clients; a full
// shard forgets its buckets (briefly letting those clients burst again).
const maxBucketsPerShard = 4096

func newLimiter(rate float64, burst int) *limiter {
	l := &limiter{rate: rate, burst: float64(burst), seed: maphash.MakeSeed()}
	for i := range l.shards {
		l.shards[i].buckets = make(map[uint64]*bucket)
	}
	return l
}

// allow takes one token for client key k.
func (l *limiter) allow(k []byte, now time.Time) bool {
	if l.rate <= 0 {
		return true
	}
	h := maphash.Bytes(l.seed, k)
	sh := &l.shards[h%uint64(len(l.shards))]
	sh.mu.Lock()
	defer sh.mu.Unlock()
	b, ok := sh.buckets[h]
	if !ok {
		if len(sh.buckets) >= maxBucketsPerShard {
			clear(sh.buckets)
		}
		b = &bucket{tokens: l.burst, last: now}
		sh.buckets[h] = b
	}
	b.tokens += now.Sub(b.last).Seconds() * l.rate
	if b.tokens > l.burst {
		b.tokens = l.burst
	}
	b.last = now
	if b.tokens < 1 {
		return false
	}
	b.tokens--
	return true
}

// allowClient applies the public rate limit; API-key callers (the shop's
// backend, one address for all its visitors) are exempt.
func (s *Server) allowClient(ctx *fasthttp.RequestCtx) bool {
	if s.limiter.rate <= 0 || s.hasAPIKey(ctx) {
		return true
	}
	if s.limiter.allow(s.clientKey(ctx), time.Now()) {
		return true
	}
	s.metrics.rateLimited.Inc()
	return false
}

// clientKey identifies the client for rate limiting: the rightmost address
// in the configured header (the one the shop's own proxy appended: anything
// left of it came from the client and proves nothing), else the peer
// address.
func (s *Server) clientKey(ctx *fasthttp.RequestCtx) []byte {
	if h := s.cfg.ClientIPHeader; h != "" {
		if v := rightmost(ctx.Request.Header.Peek(h)); len(v) > 0 {
			return v
		}
	}
	if a, ok := ctx.RemoteAddr().(*net.TCPAddr); ok {
		return a.IP
	}
	return []byte(ctx.RemoteAddr().String())
}

// rightmost returns the last comma-separated entry of a header value,
// without spaces.
func rightmost(v []byte) []byte {
	if i := bytes.LastIndexByte(v, ','); i >= 0 {
		v = v[i+1:]
	}
	return bytes.TrimSpace(v)
}
