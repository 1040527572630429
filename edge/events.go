package edge

import (
	"context"
	"strconv"

	"github.com/etalage/etalage/profile"
	"github.com/valyala/fasthttp"
)

// serveEvents answers POST /v1/events: a batch valid as a whole is stored
// and acknowledged with 202; nothing is acknowledged that was not stored
// (503 with Retry-After when the store is down). Events naming a contact,
// and past timestamps, need the API key.
func (s *Server) serveEvents(ctx *fasthttp.RequestCtx) {
	if !ctx.IsPost() {
		s.methodNotAllowed(ctx, "POST")
		return
	}
	r := acquireRequest()
	defer releaseRequest(r)
	if err := r.parseBody(ctx.PostBody(), "visitor contact events returning"); err != nil {
		s.writeError(ctx, err)
		return
	}
	if r.events == nil {
		s.writeError(ctx, errorf(ECodeInvalid, "events: required"))
		return
	}
	trusted := s.hasAPIKey(ctx)
	if r.contact != nil && !trusted {
		s.writeError(ctx, errorf(ECodeUnauthorized, "events naming a contact need the API key"))
		return
	}
	d := s.defs.Load()
	events, err := profile.DecodeEvents(r.events, profile.DecodeOptions{Trusted: trusted, Fields: d.policy.Fields, Seasons: d.policy.Seasons, MaxEvents: maxEvents})
	if err != nil {
		s.metrics.eventsRejected.Inc()
		s.writeError(ctx, err)
		return
	}
	s.prove(events, trusted)
	s.fillContext(ctx, r, trusted)
	pr := s.pretending(ctx, r, trusted) // the demo's pretended time (pretend.go); nil elsewhere
	if !trusted && (r.ctx.Bot || isPrefetch(ctx)) {
		// Bots and prefetches never write to a profile. The shop backend
		// (API key) is never one, whatever HTTP client it uses: its orders
		// must not be acknowledged and lost.
		s.writeAccepted(ctx, 0, "")
		return
	}

	var pid string
	setCookie := false
	switch {
	case r.contact != nil:
		ident, err := profile.ContactIdent(r.contact)
		if err != nil {
			s.writeError(ctx, err)
			return
		}
		cctx, cancel := context.WithTimeout(context.Background(), s.cfg.EventDeadline)
		pid, err = s.profiles.Contact(cctx, ident, d.policy)
		cancel()
		if err != nil {
			s.logStoreError("events: resolve contact", err)
			s.writeError(ctx, err)
			return
		}
	default:
		var ok bool
		pid, ok = s.visitorOf(ctx, r.visitor)
		if ok {
			// The erased browser starts anew: its old id never comes back.
			if snap, err := s.load(context.Background(), pid, d, &r.scratch); err == nil && snap.Empty() && s.wasErased(pid) {
				ok, r.visitor = false, nil
			}
		}
		if !ok {
			if len(r.visitor) > 0 {
				s.writeError(ctx, errorf(ECodeInvalid, "visitor: not a valid visitor value"))
				return
			}
			if !trusted && r.returning && len(r.visitor) == 0 {
				// The cookie does not come back (see serveDecide): nothing
				// is stored, and the snippet keeps the events.
				ctx.SetStatusCode(fasthttp.StatusAccepted)
				ctx.SetContentType("application/json")
				ctx.Response.Header.Set("Cache-Control", "private, no-store")
				ctx.SetBodyString(`{"accepted":0,"cookie":"missing"}`)
				return
			}
			if !s.mayProfile(events) {
				// --consent required and none given: nothing stored, no
				// cookie (accepted 0, like a bot's events).
				s.writeAccepted(ctx, 0, "")
				return
			}
			pid = NewID()
		}
		// A forwarded value is used for this request only and never
		// becomes a cookie (no session fixation).
		setCookie = len(r.visitor) == 0
	}
	if len(events) == 0 {
		s.writeAccepted(ctx, 0, "")
		return
	}
	snap, err := s.recordAs(pr, context.Background(), pid, events, d, s.cfg.EventDeadline, &r.scratch)
	if err != nil {
		s.logStoreError("events: record", err)
		if !isStoreFailure(err) {
			s.writeError(ctx, err)
			return
		}
		s.writeError(ctx, errorf(ECodeUnavailable, "the profile store is unavailable; the events were not stored, retry later"))
		return
	}
	s.countClicks(s.cfg.Now(), d, snap, events)
	visitor := ""
	if r.contact == nil {
		switch {
		case setCookie || snap.Primary.ID != pid:
			// The visitor the service created, or the one a proven
			// identify moved to the contact's profile.
			visitor = s.setVisitorCookie(ctx, snap.Primary.ID)
		case trusted:
			visitor = s.signer.Sign(snap.Primary.ID)
		}
	}
	if !trusted {
		// The visitor value is a credential: page JavaScript never sees it.
		visitor = ""
	}
	s.writeAccepted(ctx, len(events), visitor)
}

func (s *Server) writeAccepted(ctx *fasthttp.RequestCtx, n int, visitor string) {
	ctx.SetStatusCode(fasthttp.StatusAccepted)
	ctx.SetContentType("application/json")
	ctx.Response.Header.Set("Cache-Control", "private, no-store")
	b := make([]byte, 0, 128)
	b = append(b, `{"accepted":`...)
	b = strconv.AppendInt(b, int64(n), 10)
	if visitor != "" {
		b = append(b, `,"visitor":`...)
		b = appendJSONString(b, visitor)
	}
	ctx.SetBody(append(b, '}'))
}

// serveReset answers POST /v1/reset (logout): a new visitor with a fresh
// cookie; the old profile is left as it is.
func (s *Server) serveReset(ctx *fasthttp.RequestCtx) {
	if !ctx.IsPost() {
		s.methodNotAllowed(ctx, "POST")
		return
	}
	ctx.Response.Header.Set("Cache-Control", "private, no-store")
	ctx.SetContentType("application/json")
	r := acquireRequest()
	defer releaseRequest(r)
	trusted := s.hasAPIKey(ctx)
	s.fillContext(ctx, r, trusted)
	if !trusted && (r.ctx.Bot || isPrefetch(ctx)) {
		ctx.SetBodyString(`{"reset":false}`)
		return
	}
	if s.cfg.ConsentNeeded {
		// The new visitor has given no consent yet: no cookie until it
		// does, and the old one goes.
		s.clearVisitorCookie(ctx)
		ctx.SetBodyString(`{"reset":true}`)
		return
	}
	v := s.setVisitorCookie(ctx, NewID())
	if !trusted {
		// The visitor value is a credential: page JavaScript never sees it.
		ctx.SetBodyString(`{"reset":true}`)
		return
	}
	ctx.SetBody(append(appendJSONString([]byte(`{"reset":true,"visitor":`), v), '}'))
}
