package edge

import (
	"bytes"
	"strconv"
	"strings"
	"time"

	"github.com/valyala/fasthttp"
	"github.com/valyala/fasthttp/pprofhandler"
)

// Route names, used as the metrics label; fixed strings so that a flood of
// odd paths cannot grow the metrics.
const (
	rSnippet     = "snippet"
	rDecide      = "decide"
	rEvents      = "events"
	rReset       = "reset"
	rPreflight   = "preflight"
	rDemo        = "demo"
	rDemoMe      = "demo_me"
	rDemoToken   = "demo_token"
	rDemoPretend = "demo_pretend"
	rHealth      = "healthz"
	rReady       = "readyz"
	rMetrics     = "metrics"
	rDefinitions = "definitions"
	rProfiles    = "profiles"
	rSegments    = "segments"
	rExplain     = "explain"
	rExperiments = "experiments"
	rHoldout     = "holdout"
	rReport      = "report"
	rPprof       = "pprof"
	rWebhooks    = "webhooks"
	rClock       = "clock"
	rDemoInbox   = "demo_inbox"
	rPreview     = "preview"
	rOverview    = "overview"
	rNotFound    = "not_found"
)

func routeName(ctx *fasthttp.RequestCtx) string {
	if r, ok := ctx.UserValue(routeKey{}).(string); ok {
		return r
	}
	return rNotFound
}

type routeKey struct{}

// routeValues holds each route name already boxed: SetUserValue takes an
// interface, and boxing a string on every request allocates.
var routeValues = func() map[string]any {
	m := map[string]any{}
	for _, r := range []string{rSnippet, rDecide, rEvents, rReset, rPreflight, rDemo, rDemoMe, rDemoToken, rDemoPretend, rHealth, rReady,
		rMetrics, rDefinitions, rProfiles, rSegments, rExplain, rExperiments, rHoldout, rReport, rPprof, rWebhooks, rClock, rDemoInbox,
		rPreview, rOverview, rNotFound} {
		m[r] = r
	}
	return m
}()

// servePublic routes the public listener.
func (s *Server) servePublic(ctx *fasthttp.RequestCtx) {
	start := time.Now()
	path := ctx.Path()
	route := rNotFound
	switch {
	case bytes.Equal(path, []byte("/v1/decide")):
		route = rDecide
		if ctx.IsOptions() {
			route = rPreflight
		}
	case bytes.Equal(path, []byte("/v1/events")):
		route = rEvents
		if ctx.IsOptions() {
			route = rPreflight
		}
	case bytes.Equal(path, []byte("/v1/reset")):
		route = rReset
		if ctx.IsOptions() {
			route = rPreflight
		}
	case bytes.Equal(path, []byte("/snippet.js")):
		route = rSnippet
	case bytes.Equal(path, []byte("/healthz")):
		route = rHealth
	case bytes.Equal(path, []byte("/readyz")):
		route = rReady
	case s.cfg.Demo && bytes.Equal(path, []byte("/demo/api/me")):
		route = rDemoMe
	case s.cfg.Demo && bytes.Equal(path, []byte("/demo/api/token")):
		route = rDemoToken
	case s.cfg.Demo && bytes.Equal(path, []byte("/demo/api/pretend")):
		route = rDemoPretend
	case s.cfg.Demo && (bytes.HasPrefix(path, []byte("/demo/")) || bytes.Equal(path, []byte("/demo")) || bytes.Equal(path, []byte("/"))):
		route = rDemo
	}
	ctx.SetUserValue(routeKey{}, routeValues[route])
	// Every answer to an allowed origin carries the CORS headers, errors
	// included (writeError keeps them).
	s.cors(ctx)
	switch route {
	case rDecide, rEvents, rReset, rDemoToken, rDemoPretend:
		if len(ctx.PostBody()) > s.cfg.MaxBodySize {
			// fasthttp's own limit is a hard cap well above this one, so
			// that an oversized body gets a JSON 413 on a live connection.
			s.writeError(ctx, errorf(ECodeTooLarge, "request body over "+strconv.Itoa(s.cfg.MaxBodySize)+" bytes"))
			s.metrics.observe(route, ctx.Response.StatusCode(), start)
			return
		}
		if !s.allowClient(ctx) {
			s.writeError(ctx, errorf(ECodeRateLimited, "too many requests from this client"))
			s.metrics.observe(route, ctx.Response.StatusCode(), start)
			return
		}
	}
	switch route {
	case rDecide:
		s.serveDecide(ctx)
	case rEvents:
		s.serveEvents(ctx)
	case rReset:
		s.serveReset(ctx)
	case rPreflight:
		ctx.SetStatusCode(fasthttp.StatusNoContent)
	case rSnippet:
		s.serveSnippet(ctx)
	case rHealth:
		s.serveHealth(ctx)
	case rReady:
		s.serveReady(ctx)
	case rDemoMe:
		s.serveDemoMe(ctx)
	case rDemoToken:
		s.serveDemoToken(ctx)
	case rDemoPretend:
		s.serveDemoPretend(ctx)
	case rDemo:
		s.serveDemo(ctx)
	default:
		s.writeError(ctx, errorf(ECodeNotFound, "no such route"))
	}
	s.metrics.observe(route, ctx.Response.StatusCode(), start)
}

// serveAdmin routes the admin listener. Everything but health, readiness and
// metrics needs the bearer token.
func (s *Server) serveAdmin(ctx *fasthttp.RequestCtx) {
	start := time.Now()
	path := string(ctx.Path())
	route := rNotFound
	switch {
	case path == "/healthz":
		route = rHealth
	case path == "/readyz":
		route = rReady
	case path == "/metrics":
		route = rMetrics
	case path == "/admin/v1/definitions" || strings.HasPrefix(path, "/admin/v1/definitions/"):
		route = rDefinitions
	case strings.HasPrefix(path, "/admin/v1/profiles/"):
		route = rProfiles
	case strings.HasPrefix(path, "/admin/v1/segments/"):
		route = rSegments
	case path == "/admin/v1/explain":
		route = rExplain
	case path == "/admin/v1/webhooks" || strings.HasPrefix(path, "/admin/v1/webhooks/"):
		route = rWebhooks
	case path == "/admin/v1/clock":
		route = rClock
	case s.cfg.Demo && (path == DemoReceiverPath || path == "/admin/v1"+DemoReceiverPath):
		route = rDemoInbox
	case strings.HasPrefix(path, "/admin/v1/experiments/"):
		route = rExperiments
	case path == "/admin/v1/holdout":
		route = rHoldout
	case path == "/admin/v1/report":
		route = rReport
	case strings.HasPrefix(path, "/admin/v1/preview/"):
		route = rPreview
	case path == "/admin/v1/overview":
		route = rOverview
	case strings.HasPrefix(path, "/debug/pprof/"):
		route = rPprof
	}
	ctx.SetUserValue(routeKey{}, routeValues[route])
	defer func() { s.metrics.observe(route, ctx.Response.StatusCode(), start) }()
	switch route {
	case rHealth:
		s.serveHealth(ctx)
		return
	case rReady:
		s.serveReady(ctx)
		return
	case rMetrics:
		s.serveMetrics(ctx)
		return
	case rDemoInbox:
		if path == DemoReceiverPath {
			// Deliveries carry a signature, not the admin token.
			s.serveDemoReceiver(ctx, s.authorizeAdmin(ctx) == nil)
			return
		}
	}
	if err := s.authorizeAdmin(ctx); err != nil {
		s.writeError(ctx, err)
		return
	}
	ctx.Response.Header.Set("Cache-Control", "no-store")
	switch route {
	case rDefinitions:
		s.serveDefinitions(ctx, strings.TrimPrefix(path, "/admin/v1/definitions"))
	case rProfiles:
		s.serveProfile(ctx, strings.TrimPrefix(path, "/admin/v1/profiles/"))
	case rSegments:
		s.serveSegment(ctx, strings.TrimPrefix(path, "/admin/v1/segments/"))
	case rExplain:
		s.serveExplain(ctx)
	case rWebhooks:
		s.serveWebhooks(ctx, strings.TrimPrefix(strings.TrimPrefix(path, "/admin/v1/webhooks"), "/"))
	case rClock:
		s.serveClock(ctx)
	case rDemoInbox:
		// The same inbox under /admin/v1/, where the console's session
		// signs a browser in; deliveries go to DemoReceiverPath.
		if !ctx.IsGet() {
			s.methodNotAllowed(ctx, "GET")
			break
		}
		s.serveDemoReceiver(ctx, true)
	case rExperiments:
		s.serveExperiment(ctx, strings.TrimPrefix(path, "/admin/v1/experiments/"))
	case rHoldout:
		s.serveHoldout(ctx)
	case rReport:
		s.serveBlockReport(ctx)
	case rPreview:
		s.servePreview(ctx, strings.TrimPrefix(path, "/admin/v1/preview/"))
	case rOverview:
		s.serveOverview(ctx)
	case rPprof:
		// Go's profiler, for finding where a node spends its time
		// (docs/PERFORMANCE.md); behind the admin token like the rest.
		pprofhandler.PprofHandler(ctx)
	default:
		s.writeError(ctx, errorf(ECodeNotFound, "no such route"))
	}
}

// methodNotAllowed answers a known route called with another method.
func (s *Server) methodNotAllowed(ctx *fasthttp.RequestCtx, allow string) {
	s.writeError(ctx, errorf(ECodeMethod, "use "+allow))
	ctx.Response.Header.Set("Allow", allow)
}
