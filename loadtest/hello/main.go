// Command hello is the load tests' baseline: a fasthttp handler returning a
// fixed 300-byte JSON body, the most a Go HTTP service on fasthttp can do.
//
// With -redis it is the second anchor instead: each request first reads two
// hashes of about 1 KB from Redis in one pipelined round trip (two
// HGETALLs through go-redis), the least a service that keeps its profiles in
// Redis can do per request.
package main

import (
	"context"
	"flag"
	"fmt"
	"log"
	"strings"
	"sync/atomic"

	"github.com/redis/go-redis/v9"
	"github.com/valyala/fasthttp"
)

// keys is how many pairs of hashes -redis writes at start and reads round
// robin, so that requests do not all hit one key.
const keys = 10_000

func main() {
	addr := flag.String("listen", "127.0.0.1:8090", "address")
	redisAddr := flag.String("redis", "", "Redis address: read two hashes per request")
	flag.Parse()
	body := []byte(`{"visitor":"0123456789abcdef0123456789abcdef.AAAAAAAAAAAAAAAAAAAAAA","segments":["sneaker-fans","returning-visitors"],"blocks":{"home-hero":{"id":"hero-sneakers","html":"<h2>Nieuwe sneakers</h2>"},"banner-top":null},"degraded":false,"pad":"` + strings.Repeat("x", 300) + `"}`)
	body = body[:300]
	body[299] = '}'
	copy(body[290:], `","x":0}`)
	h := func(ctx *fasthttp.RequestCtx) {
		ctx.SetContentType("application/json")
		ctx.SetBody(body)
	}
	if *redisAddr != "" {
		h = redisHandler(*redisAddr, body)
	}
	log.Fatal((&fasthttp.Server{Handler: h, NoDefaultDate: true, NoDefaultServerHeader: true}).ListenAndServe(*addr))
}

func redisHandler(addr string, body []byte) fasthttp.RequestHandler {
	rdb := redis.NewClient(&redis.Options{Addr: addr, PoolSize: 256})
	ctx := context.Background()
	fields := map[string]any{}
	for i := range 10 {
		fields[fmt.Sprintf("field-%d", i)] = strings.Repeat("v", 90)
	}
	p := rdb.Pipeline()
	for i := range keys {
		p.HSet(ctx, fmt.Sprintf("hello:%d:a", i), fields)
		p.HSet(ctx, fmt.Sprintf("hello:%d:b", i), fields)
	}
	if _, err := p.Exec(ctx); err != nil {
		log.Fatalf("redis %s: %v", addr, err)
	}
	names := make([][2]string, keys)
	for i := range names {
		names[i] = [2]string{fmt.Sprintf("hello:%d:a", i), fmt.Sprintf("hello:%d:b", i)}
	}
	var n atomic.Uint64
	return func(c *fasthttp.RequestCtx) {
		k := names[n.Add(1)%keys]
		p := rdb.Pipeline()
		a := p.HGetAll(c, k[0])
		b := p.HGetAll(c, k[1])
		if _, err := p.Exec(c); err != nil || len(a.Val()) == 0 || len(b.Val()) == 0 {
			c.Error("redis", fasthttp.StatusServiceUnavailable)
			return
		}
		c.SetContentType("application/json")
		c.SetBody(body)
	}
}
