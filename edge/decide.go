package edge

import (
	"bytes"
	"context"
	"errors"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/etalage/etalage/profile"
	"github.com/etalage/etalage/rules"
	"github.com/valyala/fasthttp"
	"github.com/valyala/fastjson"
)

// Bounds on a decide request beyond the body size limit.
const (
	maxSlots     = 32
	maxSlotLen   = 64
	maxEvents    = 100
	maxURLLen    = 2048
	maxHeaderLen = 512
)

var parsers fastjson.ParserPool

// request is what decide and events read from a request; pooled, and only
// valid until the handler returns (it points into fasthttp's and fastjson's
// buffers).
type request struct {
	parser  *fastjson.Parser
	visitor []byte
	// returning: the snippet had an answer on this browser before, so a
	// request without the cookie means the cookie does not come back.
	returning bool
	contact   *fastjson.Value
	slots     []string
	events    *fastjson.Value
	ctx       rules.Context
	ua        []byte
	in        rules.Input // kept here: passed by pointer, it would escape
	decision  rules.Decision
	news      []profile.Assignment // first exposures to record, kept between requests
	out       []byte               // the response body, kept between requests
	scratch   profile.Scratch      // cached profiles are unpacked here, kept between requests
}

var requests = sync.Pool{New: func() any { return new(request) }}

func acquireRequest() *request {
	r := requests.Get().(*request)
	r.parser = parsers.Get()
	return r
}

func releaseRequest(r *request) {
	parsers.Put(r.parser)
	r.parser = nil
	r.visitor, r.contact, r.events, r.ua = nil, nil, nil, nil
	r.returning = false
	r.slots = r.slots[:0]
	r.ctx = rules.Context{}
	r.in = rules.Input{}
	r.decision.Reset()
	clear(r.news)
	r.news = r.news[:0]
	requests.Put(r)
}

// parseBody reads a JSON request body into r, accepting only the keys in
// allowed; anything else is a 400 naming the key.
func (r *request) parseBody(body []byte, allowed string) error {
	if len(bytes.TrimSpace(body)) == 0 {
		return nil
	}
	v, err := r.parser.ParseBytes(body)
	if err != nil {
		return errorf(ECodeInvalid, "malformed JSON: "+err.Error())
	}
	o, err := v.Object()
	if err != nil {
		return errorf(ECodeInvalid, "the body must be a JSON object")
	}
	var perr error
	o.Visit(func(k []byte, v *fastjson.Value) {
		if perr != nil {
			return
		}
		key := b2s(k)
		if !fieldAllowed(allowed, key) {
			perr = errorf(ECodeInvalid, "unknown field "+quote(key))
			return
		}
		switch key {
		case "visitor":
			if v.Type() == fastjson.TypeNull {
				return
			}
			b, err := v.StringBytes()
			if err != nil {
				perr = errorf(ECodeInvalid, "visitor: must be a string")
				return
			}
			r.visitor = b
		case "contact":
			r.contact = v
		case "slots":
			perr = r.parseSlots(v)
		case "events":
			if v.Type() != fastjson.TypeArray {
				perr = errorf(ECodeInvalid, "events: must be an array")
				return
			}
			r.events = v
		case "returning":
			r.returning = v.Type() == fastjson.TypeTrue
		case "context":
			perr = r.parseContext(v)
		}
	})
	return perr
}

func fieldAllowed(allowed, key string) bool {
	for len(allowed) > 0 {
		i := 0
		for i < len(allowed) && allowed[i] != ' ' {
			i++
		}
		if allowed[:i] == key {
			return true
		}
		if i == len(allowed) {
			break
		}
		allowed = allowed[i+1:]
	}
	return false
}

func quote(s string) string { return string(appendJSONString(nil, truncate(s, 64))) }

func truncate(s string, n int) string {
	if len(s) > n {
		return s[:n] + "…"
	}
	return s
}

func (r *request) parseSlots(v *fastjson.Value) error {
	a, err := v.Array()
	if err != nil {
		return errorf(ECodeInvalid, "slots: must be an array of strings")
	}
	for _, s := range a {
		b, err := s.StringBytes()
		if err != nil {
			return errorf(ECodeInvalid, "slots: must be an array of strings")
		}
		if err := r.addSlot(b); err != nil {
			return err
		}
	}
	return nil
}

// addSlot adds one requested slot name, from the body or the query.
func (r *request) addSlot(b []byte) error {
	if len(r.slots) >= maxSlots {
		return errorf(ECodeInvalid, "slots: at most 32")
	}
	if len(b) == 0 || len(b) > maxSlotLen || !utf8.Valid(b) {
		return errorf(ECodeInvalid, "slots: each must be a non-empty string of at most 64 bytes")
	}
	r.slots = append(r.slots, b2s(b))
	return nil
}

func (r *request) parseContext(v *fastjson.Value) error {
	o, err := v.Object()
	if err != nil {
		return errorf(ECodeInvalid, "context: must be an object")
	}
	var perr error
	o.Visit(func(k []byte, v *fastjson.Value) {
		if perr != nil {
			return
		}
		b, err := v.StringBytes()
		if err != nil {
			perr = errorf(ECodeInvalid, "context."+truncate(string(k), 32)+": must be a string")
			return
		}
		limit := maxHeaderLen
		switch string(k) {
		case "url", "referrer":
			limit = maxURLLen
		}
		if len(b) > limit {
			perr = errorf(ECodeInvalid, "context."+string(k)+": too long")
			return
		}
		switch {
		case r.setContext(b2s(k), b):
		case string(k) == "user_agent":
			r.ua = b
		default:
			perr = errorf(ECodeInvalid, "context: unknown field "+quote(string(k)))
		}
	})
	return perr
}

// setContext sets the context field the body's "context" object and the
// query share (url, referrer, language) and reports whether k was one.
func (r *request) setContext(k string, v []byte) bool {
	switch k {
	case "url":
		r.ctx.URL = b2s(v)
	case "referrer":
		r.ctx.Referrer = b2s(v)
	case "language":
		r.ctx.Language = primaryLanguage(v)
	default:
		return false
	}
	return true
}

// parseQuery reads GET /v1/decide?slots=a,b&url=…&referrer=…&language=…&visitor=….
func (r *request) parseQuery(args *fasthttp.Args) error {
	var perr error
	for k, v := range args.All() {
		if perr != nil {
			break
		}
		switch {
		case string(k) == "slots":
			for s := range bytes.SplitSeq(v, []byte(",")) {
				if len(s) == 0 {
					continue // "a,,b" and a trailing comma name no slot
				}
				if perr = r.addSlot(s); perr != nil {
					break
				}
			}
		case r.setContext(b2s(k), v):
		case string(k) == "visitor":
			r.visitor = v
		default:
			perr = errorf(ECodeInvalid, "unknown parameter "+quote(string(k)))
		}
	}
	if perr == nil && (len(r.ctx.URL) > maxURLLen || len(r.ctx.Referrer) > maxURLLen) {
		perr = errorf(ECodeInvalid, "url and referrer: at most 2048 bytes")
	}
	return perr
}

// primaryLanguage returns the primary subtag of the first language in an
// Accept-Language style value, lower-cased: "nl-NL,nl;q=0.9" -> "nl".
func primaryLanguage(b []byte) string {
	for i, c := range b {
		if c == '-' || c == '_' || c == ',' || c == ';' || c == ' ' {
			b = b[:i]
			break
		}
	}
	if len(b) == 0 || len(b) > 8 {
		return ""
	}
	for _, c := range b {
		if c >= 'A' && c <= 'Z' {
			return string(bytes.ToLower(b))
		}
	}
	return languages.intern(b)
}

// serveDecide answers POST and GET /v1/decide: it records the request's
// events, then decides. It never fails a page for the store's sake: when the
// store is slow or down the answer comes within the deadline with the
// non-personalised blocks and "degraded": true.
func (s *Server) serveDecide(ctx *fasthttp.RequestCtx) {
	r := acquireRequest()
	defer releaseRequest(r)
	var err error
	switch {
	case ctx.IsPost():
		err = r.parseBody(ctx.PostBody(), "visitor slots context events returning")
	case ctx.IsGet() || ctx.IsHead():
		err = r.parseQuery(ctx.QueryArgs())
	default:
		s.methodNotAllowed(ctx, "GET, POST")
		return
	}
	if err != nil {
		s.writeError(ctx, err)
		return
	}
	d := s.defs.Load()
	now := s.cfg.Now()
	clock := now // the real time, even when the demo pretends: the block report counts real days
	trusted := s.hasAPIKey(ctx)
	s.fillContext(ctx, r, trusted)
	pr := s.pretending(ctx, r, trusted) // the demo's pretended time and device (pretend.go); nil elsewhere
	if pr != nil {
		now = pr.now
	}
	var events []profile.Event
	if r.events != nil {
		if events, err = profile.DecodeEvents(r.events, profile.DecodeOptions{Trusted: trusted, Fields: d.policy.Fields, Seasons: d.policy.Seasons, MaxEvents: maxEvents}); err != nil {
			s.metrics.eventsRejected.Inc()
			s.writeError(ctx, err)
			return
		}
		s.prove(events, trusted)
	}

	pid, known := s.visitorOf(ctx, r.visitor)
	var loaded *profile.Snapshot
	var loadErr error
	if known {
		loaded, loadErr = s.loadAs(pr, context.Background(), pid, d, &r.scratch)
		if loadErr == nil && loaded.Empty() && s.wasErased(pid) {
			// The erased browser starts anew: its old id never comes back.
			known, loaded = false, nil
		}
	}
	writes := !r.ctx.Bot && !isPrefetch(ctx)
	if writes && !known && !s.mayProfile(events) {
		// --consent required and none given: no cookie and nothing
		// stored; the decision comes from the request context alone.
		writes = false
	}
	// The cookie is set for the browser's own cookie (renewed) and for a
	// visitor the service creates; a forwarded value is used for this
	// request only and never becomes a cookie (no session fixation).
	setCookie := writes && (len(r.visitor) == 0 || !known)
	if !known && writes {
		pid = NewID()
	}
	// A browser that had an answer before but comes without the cookie
	// does not send it back (etalage on another site than the shop, see
	// docs/INTEGRATION.md): its events are not stored, so that no orphan
	// profile is made per page view. It still gets a cookie: a browser
	// that merely lost it sends it next time, and the snippet keeps the
	// events until then.
	cookieMissing := writes && !trusted && r.returning && len(r.visitor) == 0 &&
		len(ctx.Request.Header.Cookie(s.cfg.CookieName)) == 0
	if cookieMissing {
		events = nil
	}
	asked := pid
	var snap *profile.Snapshot
	degraded := false
	switch {
	case len(events) > 0 && writes:
		snap, err = s.recordAs(pr, context.Background(), pid, events, d, s.cfg.WriteDeadline, &r.scratch)
		if err != nil {
			degraded = true
			s.logStoreError("decide: record events", err)
		} else {
			pid = snap.Primary.ID
			s.countClicks(clock, d, snap, events)
		}
	case known:
		snap, err = loaded, loadErr
		if err != nil {
			degraded = true
			s.logStoreError("decide: load profile", err)
		} else {
			// A visitor merged into a contact (a proven identify on another
			// request) loads as the contact: the cookie follows.
			pid = snap.Primary.ID
		}
	}
	if degraded {
		s.metrics.degraded.Inc()
		snap = nil
	}

	in := &r.in
	*in = rules.Input{Context: r.ctx, Now: now, Visitor: pid}
	if snap != nil {
		in.Profile, in.Seasonal = snap.Primary, snap.Seasonal
	} else {
		in.Profile, in.Seasonal = emptyProfile, d.noSeasons
	}
	// Only a visitor who gets a cookie and whose profile answered may
	// enter an experiment or the holdout: never bots, prefetches, a
	// degraded decide, or a visitor without consent where it is required.
	in.Enter = writes && !degraded && pid != "" &&
		(!s.cfg.ConsentNeeded || in.Profile.HasConsent("profiling"))
	d.set.Decide(in, r.slots, &r.decision)
	if in.Enter {
		if r.news = r.decision.NewExposures(r.news[:0], now.Unix()); len(r.news) > 0 && !s.expose(pid, snap, r.news, d) {
			in.Enter = false
			r.decision.Reset()
			d.set.Decide(in, r.slots, &r.decision)
		}
	}

	if writes && !cookieMissing && (!s.cfg.ConsentNeeded || in.Profile.HasConsent("profiling")) {
		s.countServed(clock, d, pid, r.decision.Choices)
	}

	if pid != asked {
		// A proven identify moved the visitor to the contact's profile.
		setCookie = writes
	}
	var visitor string
	switch {
	case setCookie:
		visitor = s.setVisitorCookie(ctx, pid)
	case (known || writes) && trusted:
		visitor = s.signer.Sign(pid)
	}
	if !trusted {
		// The visitor value is a credential: page JavaScript never sees it.
		visitor = ""
	}
	h := &ctx.Response.Header
	h.Set("Cache-Control", "private, no-store")
	h.SetContentType("application/json")
	r.out = appendDecision(r.out[:0], visitor, &r.decision, degraded, d.blockJSON)
	if cookieMissing {
		r.out = append(r.out[:len(r.out)-1], `,"cookie":"missing"}`...)
	}
	ctx.SetBody(r.out)
}

// emptyProfile stands for a visitor with no stored profile; shared and never
// written.
var emptyProfile = &profile.Profile{}

// appendDecision writes the decide response body. Blocks whose answer is
// the same for every visitor come pre-encoded from blockJSON.
func appendDecision(b []byte, visitor string, d *rules.Decision, degraded bool, blockJSON map[*rules.Block][]byte) []byte {
	b = append(b, '{')
	if visitor != "" {
		b = append(b, `"visitor":`...)
		b = appendJSONString(b, visitor)
		b = append(b, ',')
	}
	b = append(b, `"segments":[`...)
	for i, seg := range d.Segments {
		if i > 0 {
			b = append(b, ',')
		}
		b = appendJSONString(b, seg)
	}
	b = append(b, `],"blocks":{`...)
	for i := range d.Choices {
		c := &d.Choices[i]
		if i > 0 {
			b = append(b, ',')
		}
		b = appendJSONString(b, c.Slot)
		b = append(b, ':')
		if enc, ok := blockJSON[c.Block]; ok { // never for a nil block: the map holds blocks of the set
			b = append(b, enc...)
			continue
		}
		b = appendBlock(b, c.Block, c.HTML)
	}
	b = append(b, '}')
	if len(d.Exposures) > 0 || d.Holdout != "" {
		b = appendExposures(b, d.Holdout, d.Exposures)
	}
	b = append(b, `,"degraded":`...)
	if degraded {
		b = append(b, "true}"...)
	} else {
		b = append(b, "false}"...)
	}
	return b
}

// appendBlock writes one slot's answer: null, or the block's id, html and
// data.
func appendBlock(b []byte, block *rules.Block, html []byte) []byte {
	if block == nil {
		return append(b, "null"...)
	}
	b = append(b, `{"id":`...)
	b = appendJSONString(b, block.ID)
	if html != nil {
		b = append(b, `,"html":`...)
		b = appendJSONBytes(b, html)
	}
	if block.Data != nil {
		b = append(b, `,"data":`...)
		b = append(b, block.Data...)
	}
	return append(b, '}')
}

// encodeStaticBlocks pre-encodes the answer of every block that is the same
// for every visitor, once per definitions swap.
func encodeStaticBlocks(set *rules.Set) map[*rules.Block][]byte {
	out := map[*rules.Block][]byte{}
	for _, b := range set.Blocks() {
		html, ok := b.StaticHTML()
		if !ok {
			continue
		}
		var h []byte
		if b.HasHTML() {
			h = []byte(html)
		}
		out[b] = appendBlock(nil, b, h)
	}
	return out
}

// fillContext completes the rules context from headers where the body or
// query did not give it, and classifies the user agent.
func (s *Server) fillContext(ctx *fasthttp.RequestCtx, r *request, trusted bool) {
	ua := r.ua
	if ua == nil {
		if trusted {
			// An API-key caller is the shop backend, never a bot: its own
			// user agent (curl, python-requests, Go) says nothing about the
			// visitor. Only a forwarded context.user_agent is classified.
			s.fillHeaders(ctx, r)
			return
		}
		ua = ctx.Request.Header.UserAgent()
	}
	if len(ua) > maxHeaderLen {
		ua = ua[:maxHeaderLen]
	}
	g := s.agents.classify(ua)
	r.ctx.Device, r.ctx.Browser, r.ctx.OS, r.ctx.Bot = g.device, g.browser, g.os, g.bot
	s.fillHeaders(ctx, r)
}

// fillHeaders takes language and URL from the request headers where the
// body or query did not give them.
func (s *Server) fillHeaders(ctx *fasthttp.RequestCtx, r *request) {
	if r.ctx.Language == "" {
		r.ctx.Language = primaryLanguage(ctx.Request.Header.Peek("Accept-Language"))
	}
	if r.ctx.URL == "" {
		r.ctx.URL = b2s(ctx.Request.Header.Referer())
	}
}

// load returns pid's snapshot from the cache (unpacked into sc, see
// profileCache.get), else from the store within the store deadline
// (guarded by the circuit breaker), caching it.
func (s *Server) load(ctx context.Context, pid string, d *defs, sc *profile.Scratch) (*profile.Snapshot, error) {
	if snap := s.cache.get(pid, d.policy, sc); snap != nil {
		s.metrics.cacheHits.Inc()
		return snap, nil
	}
	s.metrics.cacheMisses.Inc()
	if !s.breaker.allow() {
		return nil, errBreakerOpen
	}
	sctx, cancel := context.WithTimeout(ctx, s.cfg.StoreDeadline)
	snap, packed, err := s.profiles.LoadPacked(sctx, pid, d.policy, sc)
	cancel()
	s.breaker.done(err == nil)
	if err != nil {
		return nil, err
	}
	s.cache.setPacked(snap.Primary.ID, packed, d.policy)
	return snap, nil
}

// record applies events to pid's profile within deadline, starting from the
// cached snapshot (unpacked into sc), and caches the result under the
// surviving profile id.
func (s *Server) record(ctx context.Context, pid string, events []profile.Event, d *defs, deadline time.Duration, sc *profile.Scratch) (*profile.Snapshot, error) {
	if !s.breaker.allow() {
		return nil, errBreakerOpen
	}
	cached := s.cache.get(pid, d.policy, sc)
	sctx, cancel := context.WithTimeout(ctx, deadline)
	snap, err := s.profiles.Record(sctx, pid, cached, events, d.policy)
	cancel()
	s.breaker.done(err == nil || !isStoreFailure(err))
	if err != nil {
		s.cache.del(pid)
		return nil, err
	}
	if snap.Primary.ID != pid {
		s.cache.del(pid)
	}
	s.cache.set(snap.Primary.ID, snap, d.policy)
	s.metrics.eventsAccepted.Add(len(events))
	return snap, nil
}

// isStoreFailure tells store outages (which feed the breaker) from request
// errors.
func isStoreFailure(err error) bool {
	return errors.Is(err, profile.ErrUnavailable) || errors.Is(err, context.DeadlineExceeded) || errors.Is(err, errBreakerOpen)
}

func (s *Server) logStoreError(op string, err error) {
	s.metrics.storeErrors.Inc()
	if !errors.Is(err, errBreakerOpen) {
		s.log.Warn(op, "err", err)
	}
}

// interner returns shared strings for a small vocabulary (language tags), so
// that the hot path does not allocate one per request; bounded.
type interner struct {
	mu sync.RWMutex
	m  map[string]string
}

var languages = &interner{m: make(map[string]string)}

func (in *interner) intern(b []byte) string {
	in.mu.RLock()
	s, ok := in.m[string(b)]
	in.mu.RUnlock()
	if ok {
		return s
	}
	s = string(b)
	in.mu.Lock()
	if len(in.m) < 1024 {
		in.m[s] = s
	}
	in.mu.Unlock()
	return s
}
