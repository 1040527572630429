package edge

import (
	"context"
	"io"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	vm "github.com/VictoriaMetrics/metrics"
	"github.com/etalage/etalage/profile"
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

	// Written by writeStore: atomic histograms (no lock per request).
	storeGet, storePut *histogram // store call latency, nanoseconds
	readBatches        *histogram // reads per coalesced pipeline
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
		storeGet:         newHistogram(storeBuckets),
		storePut:         newHistogram(storeBuckets),
		readBatches:      newHistogram(batchBuckets),
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
	s.metrics.writeStore(ctx, s.breaker)
	if s.cfg.Triggers != nil {
		s.cfg.Triggers.WriteMetrics(ctx)
	}
	vm.WriteProcessMetrics(ctx)
}

// storeBuckets are the upper bounds (nanoseconds) of the store latency
// histograms: a Redis round trip is tens to hundreds of microseconds, the
// decide deadline 50 ms.
var storeBuckets = []int64{
	25e3, 50e3, 100e3, 250e3, 500e3, 1e6, 2.5e6, 5e6, 10e6, 25e6, 50e6, 100e6, 250e6, 1e9,
}

// batchBuckets are the upper bounds of the read batch size histogram.
var batchBuckets = []int64{1, 2, 4, 8, 16, 32, 64, 128}

// histogram is a Prometheus histogram on atomic counters: observing is a
// few atomic adds, with no lock and no allocation.
type histogram struct {
	bounds []int64
	counts []atomic.Uint64 // per bucket, not cumulative; the last is +Inf
	sum    atomic.Int64
}

func newHistogram(bounds []int64) *histogram {
	return &histogram{bounds: bounds, counts: make([]atomic.Uint64, len(bounds)+1)}
}

func (h *histogram) observe(v int64) {
	i := 0
	for i < len(h.bounds) && v > h.bounds[i] {
		i++
	}
	h.counts[i].Add(1)
	h.sum.Add(v)
}

// observeSize is observe for the store's batch observer.
func (h *histogram) observeSize(n int) { h.observe(int64(n)) }

// write writes the samples of one labelled series; observations and
// bounds are divided by scale (1e9 turns nanoseconds into seconds).
func (h *histogram) write(w io.Writer, name, labels string, scale float64) {
	var cum uint64
	var b []byte
	for i := range h.counts {
		cum += h.counts[i].Load()
		le := "+Inf"
		if i < len(h.bounds) {
			le = strconv.FormatFloat(float64(h.bounds[i])/scale, 'g', -1, 64)
		}
		b = append(b, name+"_bucket{"...)
		b = append(b, labels...)
		if labels != "" {
			b = append(b, ',')
		}
		b = append(b, `le="`+le+`"} `...)
		b = strconv.AppendUint(b, cum, 10)
		b = append(b, '\n')
	}
	sel := ""
	if labels != "" {
		sel = "{" + labels + "}"
	}
	b = append(b, name+"_sum"+sel+" "...)
	b = strconv.AppendFloat(b, float64(h.sum.Load())/scale, 'g', -1, 64)
	b = append(b, '\n')
	b = append(b, name+"_count"+sel+" "...)
	b = strconv.AppendUint(b, cum, 10)
	b = append(b, '\n')
	w.Write(b)
}

// family writes the # HELP and # TYPE lines that announce a family.
func family(w io.Writer, name, typ, help string) {
	io.WriteString(w, "# HELP "+name+" "+help+"\n# TYPE "+name+" "+typ+"\n")
}

// writeStore writes the store's metrics: call latency, read batch sizes
// and the circuit breaker's state.
func (m *metrics) writeStore(w io.Writer, b *breaker) {
	family(w, "etalage_store_duration_seconds", "histogram", "Latency of profile store calls by operation (get: read a profile; put: write one).")
	m.storeGet.write(w, "etalage_store_duration_seconds", `op="get"`, 1e9)
	m.storePut.write(w, "etalage_store_duration_seconds", `op="put"`, 1e9)
	family(w, "etalage_store_read_batch_size", "histogram", "Profile reads sent to Redis in one coalesced pipeline.")
	m.readBatches.write(w, "etalage_store_read_batch_size", "", 1)
	family(w, "etalage_store_breaker_state", "gauge", "Circuit breaker in front of the store: 0 closed, 1 open (calls refused), 2 half-open (the next call probes).")
	io.WriteString(w, "etalage_store_breaker_state "+strconv.Itoa(b.state())+"\n")
}

// batchObserver is what a store that coalesces reads offers
// (redisstore.Store).
type batchObserver interface{ ObserveBatches(func(reads int)) }

// watchStore returns store with its Get and Put calls timed, and has a
// store that coalesces reads report its batch sizes.
func (m *metrics) watchStore(store profile.Store) profile.Store {
	if o, ok := store.(batchObserver); ok {
		o.ObserveBatches(m.readBatches.observeSize)
	}
	return &timedStore{Store: store, get: m.storeGet, put: m.storePut}
}

// timedStore times a store's profile reads and writes.
type timedStore struct {
	profile.Store
	get, put *histogram
}

func (t *timedStore) Get(ctx context.Context, pid string, seasons []string) ([]profile.Record, error) {
	start := time.Now()
	recs, err := t.Store.Get(ctx, pid, seasons)
	t.get.observe(int64(time.Since(start)))
	return recs, err
}

func (t *timedStore) Put(ctx context.Context, pid string, writes []profile.Write) error {
	start := time.Now()
	err := t.Store.Put(ctx, pid, writes)
	t.put.observe(int64(time.Since(start)))
	return err
}
