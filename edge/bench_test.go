package edge

import (
	"bytes"
	"net"
	"sync/atomic"
	"testing"
	"time"

	"github.com/etalage/etalage/profile/redisstore"
	"github.com/etalage/etalage/profile/redisstore/redistest"
	"github.com/stretchr/testify/require"
	"github.com/valyala/fasthttp"
)

var benchAddr = &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 4242}

// handlerRequest prepares a RequestCtx for calling a handler directly,
// without a network: what is measured is etalage's work alone.
func handlerRequest(method, uri, body, cookie string) *fasthttp.RequestCtx {
	var req fasthttp.Request
	req.Header.SetMethod(method)
	req.SetRequestURI(uri)
	req.Header.SetUserAgent(browserUA)
	if cookie != "" {
		req.Header.SetCookie("etl", cookie)
	}
	if body != "" {
		req.SetBodyString(body)
	}
	ctx := new(fasthttp.RequestCtx)
	ctx.Init(&req, benchAddr, nil)
	return ctx
}

// visitorWithProfile records a typical browsing history and returns the
// visitor value.
func visitorWithProfile(tb testing.TB, h *harness) string {
	tb.Helper()
	events := pageViews("/demo/c/sneakers", "/demo/p/sneaker-air-45", "/demo/c/running", "/demo/", "/demo/c/sneakers") +
		`,{"type":"cart_add","sku":"sneaker-air-45","category":"sneakers","price":129.95}` +
		`,{"type":"interest","name":"running","on":true}`
	r := h.decide(tb, "", `{"slots":["home-hero"],"events":[`+events+`]}`)
	require.Equal(tb, 200, r.status, string(r.body))
	return string(r.cookie.Value())
}

func benchDecide(b *testing.B, h *harness, cookie string) {
	benchHandler(b, h, handlerRequest("GET", "/v1/decide?slots=home-hero,banner-top,home-picks&url=/demo/", "", cookie))
}

// benchHandler measures the public handler answering ctx's request.
func benchHandler(b *testing.B, h *harness, ctx *fasthttp.RequestCtx) {
	h.srv.servePublic(ctx)
	require.Equal(b, 200, ctx.Response.StatusCode(), string(ctx.Response.Body()))
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		ctx.Response.Reset()
		h.srv.servePublic(ctx)
	}
}

// BenchmarkDecideWarm: a returning visitor whose profile is in the cache;
// no store I/O.
func BenchmarkDecideWarm(b *testing.B) {
	h := newHarness(b, func(c *Config) { c.RateLimit = 0 })
	v := visitorWithProfile(b, h)
	h.srv.cache.c.Wait()
	benchDecide(b, h, v)
}

// BenchmarkDecideWarmPacked: the same, without the hot tier: the
// visitor's packed entry is unpacked on every decide, as for a visitor
// the tier does not hold.
func BenchmarkDecideWarmPacked(b *testing.B) {
	h := newHarness(b, func(c *Config) { c.RateLimit = 0 })
	h.srv.cache.hot = nil
	v := visitorWithProfile(b, h)
	h.srv.cache.c.Wait()
	benchDecide(b, h, v)
}

// BenchmarkDecideWarmPost: the same, asked the way the snippet and a shop
// backend ask: a POST with the visitor, slots and context in a JSON body
// (the form the load tests send).
func BenchmarkDecideWarmPost(b *testing.B) {
	h := newHarness(b, func(c *Config) { c.RateLimit = 0 })
	v := visitorWithProfile(b, h)
	h.srv.cache.c.Wait()
	benchHandler(b, h, handlerRequest("POST", "/v1/decide", `{"visitor":"`+v+`","slots":["home-hero","banner-top","home-picks"],"context":{"url":"/demo/"}}`, ""))
}

// BenchmarkDecideNewVisitor: no cookie, nothing to read; a cookie is issued.
func BenchmarkDecideNewVisitor(b *testing.B) {
	h := newHarness(b, func(c *Config) { c.RateLimit = 0 })
	benchDecide(b, h, "")
}

// BenchmarkDecideColdRedis: every decide reads the profile from a real
// Redis (the cache is bypassed by dropping the entry each time).
func BenchmarkDecideColdRedis(b *testing.B) {
	st, err := redisstore.Open(b.Context(), "redis://"+redistest.Server(b)+"/0", redisstore.Options{})
	require.NoError(b, err)
	h := newHarnessWithStore(b, st, func(c *Config) { c.RateLimit = 0 })
	v := visitorWithProfile(b, h)
	pid, ok := h.srv.signer.Verify([]byte(v))
	require.True(b, ok)
	ctx := handlerRequest("GET", "/v1/decide?slots=home-hero,banner-top,home-picks&url=/demo/", "", v)
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		h.srv.cache.del(pid)
		ctx.Response.Reset()
		h.srv.servePublic(ctx)
		if ctx.Response.StatusCode() != 200 {
			b.Fatal(string(ctx.Response.Body()))
		}
	}
}

// BenchmarkDecideColdRedisParallel: cold decides from many goroutines at
// once (the cache is off), as a node behind a load balancer sees them:
// concurrent reads are what the store can coalesce into one round trip.
// Run it with -cpu 2 (the load test's server core count, plus one).
func BenchmarkDecideColdRedisParallel(b *testing.B) {
	st, err := redisstore.Open(b.Context(), "redis://"+redistest.Server(b)+"/0", redisstore.Options{})
	require.NoError(b, err)
	// A generous deadline: what is measured is throughput, not the
	// degraded answers of a machine shared with other work.
	h := newHarnessWithStore(b, st, func(c *Config) { c.RateLimit = 0; c.CacheBytes = -1; c.StoreDeadline = time.Second })
	visitors := make([]string, 64)
	for i := range visitors {
		visitors[i] = visitorWithProfile(b, h)
	}
	var next atomic.Int64
	b.SetParallelism(16) // 32 goroutines at -cpu 2: many requests in flight
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		v := visitors[next.Add(1)%int64(len(visitors))]
		ctx := handlerRequest("GET", "/v1/decide?slots=home-hero,banner-top,home-picks&url=/demo/", "", v)
		for pb.Next() {
			ctx.Response.Reset()
			h.srv.servePublic(ctx)
			if ctx.Response.StatusCode() != 200 || bytes.Contains(ctx.Response.Body(), []byte(`"degraded":true`)) {
				b.Fatal(string(ctx.Response.Body()))
			}
		}
	})
}

// BenchmarkEventsRedis: one batch of 5 events stored in a real Redis.
func BenchmarkEventsRedis(b *testing.B) {
	st, err := redisstore.Open(b.Context(), "redis://"+redistest.Server(b)+"/0", redisstore.Options{})
	require.NoError(b, err)
	h := newHarnessWithStore(b, st, func(c *Config) { c.RateLimit = 0 })
	v := visitorWithProfile(b, h)
	body := `{"events":[` + pageViews("/demo/c/sneakers", "/demo/p/a", "/demo/p/b", "/demo/c/running", "/demo/") + `]}`
	ctx := handlerRequest("POST", "/v1/events", body, v)
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		ctx.Response.Reset()
		h.srv.servePublic(ctx)
		if ctx.Response.StatusCode() != 202 {
			b.Fatal(string(ctx.Response.Body()))
		}
	}
}

// BenchmarkDecideWarmExperiment: BenchmarkDecideWarm with one experiment
// running on the hero and a 5% holdout, for a visitor already exposed.
func BenchmarkDecideWarmExperiment(b *testing.B) {
	h := newHarness(b, func(c *Config) { c.RateLimit = 0; c.Definitions = experimentDefs("5") })
	v := visitorWithProfile(b, h)
	h.srv.cache.c.Wait()
	ctx := handlerRequest("GET", "/v1/decide?slots=home-hero,banner-top,home-picks&url=/demo/", "", v)
	h.srv.servePublic(ctx) // the first exposure is recorded here
	h.srv.cache.c.Wait()
	benchHandler(b, h, ctx)
}
