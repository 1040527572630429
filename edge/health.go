package edge

import (
	"context"
	"time"

	"github.com/valyala/fasthttp"
)

// serveHealth answers liveness: the process serves requests.
func (s *Server) serveHealth(ctx *fasthttp.RequestCtx) {
	ctx.SetContentType("application/json")
	ctx.Response.Header.Set("Cache-Control", "no-store")
	ctx.SetBodyString(`{"status":"ok"}`)
}

// serveReady answers readiness: the store answers and definitions are loaded.
func (s *Server) serveReady(ctx *fasthttp.RequestCtx) {
	pctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	d := s.defs.Load()
	err := s.store.Ping(pctx)
	body := map[string]any{"store": "ok", "definitions_revision": int64(0), "breaker_open": s.breaker.open()}
	status := fasthttp.StatusOK
	if err != nil {
		body["store"] = "unreachable"
		status = fasthttp.StatusServiceUnavailable
	}
	if d == nil {
		body["definitions"] = "not loaded"
		status = fasthttp.StatusServiceUnavailable
	} else {
		body["definitions_revision"] = d.rev
	}
	body["status"] = map[bool]string{true: "ready", false: "not ready"}[status == fasthttp.StatusOK]
	ctx.Response.Header.Set("Cache-Control", "no-store")
	s.writeJSON(ctx, status, body)
}
