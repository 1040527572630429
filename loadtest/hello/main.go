// Command hello is the load tests' baseline: a fasthttp handler returning a
// fixed 300-byte JSON body, the most a Go HTTP service on fasthttp can do.
package main

import (
	"flag"
	"log"
	"strings"

	"github.com/valyala/fasthttp"
)

func main() {
	addr := flag.String("listen", "127.0.0.1:8090", "address")
	flag.Parse()
	body := []byte(`{"visitor":"0123456789abcdef0123456789abcdef.AAAAAAAAAAAAAAAAAAAAAA","segments":["sneaker-fans","returning-visitors"],"blocks":{"home-hero":{"id":"hero-sneakers","html":"<h2>Nieuwe sneakers</h2>"},"banner-top":null},"degraded":false,"pad":"` + strings.Repeat("x", 300) + `"}`)
	body = body[:300]
	body[299] = '}'
	copy(body[290:], `","x":0}`)
	h := func(ctx *fasthttp.RequestCtx) {
		ctx.SetContentType("application/json")
		ctx.SetBody(body)
	}
	log.Fatal((&fasthttp.Server{Handler: h, NoDefaultDate: true, NoDefaultServerHeader: true}).ListenAndServe(*addr))
}
