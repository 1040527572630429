package edge

import (
	"strconv"
	"sync"
	"time"

	vm "github.com/VictoriaMetrics/metrics"
	"github.com/valyala/fasthttp"
)

// latencyBuckets are the upper bounds (seconds) of the request latency
// histograms: fine below a millisecond, where decides live.
var latencyBuckets = []float64{0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5}

// metrics holds the Prometheus metrics of one Server (a Set of its own, so
// that tests with several servers in one process do not share counters).
type metrics struct {
	set    *vm.Set
	mu     sync.Mutex
	routes sync.Map // route name -> *routeMetrics

	cacheHits, cacheMisses *vm.Counter
	degraded               *vm.Counter
	eventsAccepted         *vm.Counter
	eventsRejected         *vm.Counter
	storeErrors            *vm.Counter
	rateLimited            *vm.Counter
	definitionsSwaps       *vm.Counter
	identifies             map[string]*vm.Counter // by proof outcome (token.go)
	exports                *vm.Counter
	exposures              *vm.Counter
}

type routeMetrics struct {
	latency *vm.PrometheusHistogram
	codes   sync.Map // status code -> *vm.Counter
	name    string
}

// Prometheus and Grafana expect "# HELP" and "# TYPE" before every family;
// VictoriaMetrics writes them only when metadata exposition is on, which is
// a process-wide switch.
func init() { vm.ExposeMetadata(true) }

func newMetrics() *metrics {
	set := vm.NewSet()
	identifies := make(map[string]*vm.Counter, len(proofOutcomes))
	for _, o := range proofOutcomes {
		identifies[o] = set.NewCounter(`etalage_identify_total{proof="` + o + `"}`)
	}
	return &metrics{
		identifies:       identifies,
		set:              set,
		cacheHits:        set.NewCounter("etalage_profile_cache_hits_total"),
		cacheMisses:      set.NewCounter("etalage_profile_cache_misses_total"),
		degraded:         set.NewCounter("etalage_decide_degraded_total"),
		eventsAccepted:   set.NewCounter("etalage_events_accepted_total"),
		eventsRejected:   set.NewCounter("etalage_events_rejected_total"),
		storeErrors:      set.NewCounter("etalage_store_errors_total"),
		rateLimited:      set.NewCounter("etalage_rate_limited_total"),
		definitionsSwaps: set.NewCounter("etalage_definitions_swaps_total"),
		exports:          set.NewCounter("etalage_segment_exports_total"),
		exposures:        set.NewCounter("etalage_experiment_exposures_total"),
	}
}

func (m *metrics) route(name string) *routeMetrics {
	if r, ok := m.routes.Load(name); ok {
		return r.(*routeMetrics)
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if r, ok := m.routes.Load(name); ok {
		return r.(*routeMetrics)
	}
	r := &routeMetrics{
		name:    name,
		latency: m.set.NewPrometheusHistogramExt(`etalage_http_request_duration_seconds{route="`+name+`"}`, latencyBuckets),
	}
	m.routes.Store(name, r)
	return r
}

// identify counts one identify event by how it was (or was not) proven.
func (m *metrics) identify(outcome string) { m.identifies[outcome].Inc() }

// observe counts one request of route with its status and latency.
func (m *metrics) observe(route string, status int, start time.Time) {
	r := m.route(route)
	r.latency.UpdateDuration(start)
	c, ok := r.codes.Load(status)
	if !ok {
		c = m.set.GetOrCreateCounter(`etalage_http_requests_total{route="` + route + `",code="` + strconv.Itoa(status) + `"}`)
		r.codes.Store(status, c)
	}
	c.(*vm.Counter).Inc()
}

// serveMetrics writes every metric in the Prometheus text format.
func (s *Server) serveMetrics(ctx *fasthttp.RequestCtx) {
	ctx.SetContentType("text/plain; version=0.0.4")
	ctx.Response.Header.Set("Cache-Control", "no-store")
	s.metrics.set.WritePrometheus(ctx)
	if s.cfg.Triggers != nil {
		s.cfg.Triggers.WriteMetrics(ctx)
	}
	vm.WriteProcessMetrics(ctx)
}
